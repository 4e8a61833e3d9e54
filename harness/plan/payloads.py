"""A batch of inputs → the exact request body of its cell, as the cell's wire protocol shapes it.

Each protocol's provider decides its own body, the dimension included (`request_body` in
`harness.providers.dashscope`, `openai_compat` and `local`); the plan only says what one request
carries (`harness.providers.base.Request`) and writes the body.
"""

from __future__ import annotations

from typing import Any

from harness.plan.batching import Batch
from harness.plan.cells import Cell
from harness.providers.base import Request
from harness.providers.registry import provider_class


def render(cell: Cell, batch: Batch) -> dict[str, Any]:
    request = Request(cell.model, batch.inputs, cell.dimension_sent, cell.parameters, fused=batch.fused,
                      upload=cell.upload)
    return provider_class(cell.protocol).request_body(request)
