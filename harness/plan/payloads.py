"""A batch of inputs → the exact request body of its cell, as the cell's wire protocol shapes it.

Each protocol's provider decides its own body, the dimension included (`request_body` in
`harness.providers.dashscope`, `openai_compat` and `local`); the plan only says what one request
carries (`harness.providers.base.Request`) and writes the body. A batch of plain texts can skip the
body's dict: `text_body` cuts the provider's own body into the bytes around the texts, once per cell.
"""

from __future__ import annotations

from typing import Any

from harness.evidence import canonical_json
from harness.inputs.types import text_input
from harness.plan.batching import Batch
from harness.plan.cells import Cell
from harness.providers.base import Request
from harness.providers.registry import provider_class


def render(cell: Cell, batch: Batch) -> dict[str, Any]:
    request = Request(cell.model, batch.inputs, cell.dimension_sent, cell.parameters, fused=batch.fused,
                      upload=cell.upload)
    return provider_class(cell.protocol).request_body(request)


# Texts that mark where the texts sit in a body (should a body hold one elsewhere, in a parameter
# say, the counts below refuse the cut)
_SLOTS = ("\ue000\x01\ue000", "\ue000\x02\ue000", "\ue000\x03\ue000")


def text_body(cell: Cell) -> tuple[bytes, bytes, bytes] | None:
    """(head, between, tail) such that a batch of texts' canonical body is `head + between.join(each
    text's JSON string) + tail`, or None when this cell's body is not of that shape. Derived from the
    provider's own body of one, two and three texts, and kept only if all three are reproduced exactly
    (a body that counts its texts, or holds anything else that depends on them, is not)."""
    def body(k: int) -> bytes:
        inputs = [text_input(f"slot-{i}", _SLOTS[i], ("inputs", 0), None) for i in range(k)]
        return canonical_json(render(cell, Batch(1, inputs, k, False)))

    marks = [canonical_json(s) for s in _SLOTS]
    one, two, three = body(1), body(2), body(3)
    if one.count(marks[0]) != 1 or two.count(marks[0]) != 1 or two.count(marks[1]) != 1:
        return None
    head, tail = one.split(marks[0])
    between = two[len(head) + len(marks[0]):len(two) - len(tail) - len(marks[1])]
    for k, made in ((1, one), (2, two), (3, three)):
        if head + between.join(marks[:k]) + tail != made:
            return None
    return head, between, tail
