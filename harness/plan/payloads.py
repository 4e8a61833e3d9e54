"""A batch of inputs → the exact request body of its cell's wire protocol.

DashScope: `{"model", "input": {"contents": [...]}, "parameters": {...}}` with `dimension` and
every other option INSIDE `parameters` (the public quick-start script put `dimension` at the top
level, which the API does not read). OpenAI-compatible and local cells: the embeddings shape
`{"model", "input": [texts], "encoding_format": "float"}` plus `dimensions` where allowed.

A local file a DashScope cell sends through temporary storage (`upload_local_files`: every local
video, and an image over the model's per-image limit) is written as `upload:sha256:<hex>`, a
stand-in tied to its bytes; the provider puts the `oss://` URL of the upload in its place when it
sends, and records that URL in the response evidence. So the payload, the cache key and what
`verify` re-derives stay the same from one upload to the next.
"""

from __future__ import annotations

from typing import Any

from harness.inputs.types import Input, Part
from harness.plan.batching import Batch
from harness.plan.cells import Cell


def wire_value(part: Part, cell: Cell) -> str:
    """What stands for `part` in this cell's request body."""
    image = part.image
    if cell.upload and image is not None and cell.model.image_max_bytes and image.size > cell.model.image_max_bytes:
        return image.placeholder()
    return part.wire()


def content_items(inp: Input, cell: Cell) -> list[dict[str, Any]]:
    """The `input.contents` items one input becomes for this cell's model."""
    if inp.modality == "multi_images":
        return [{"multi_images": [wire_value(p, cell) for p in inp.parts]}]
    if inp.modality == "fused":
        if cell.model.fusion == "enable_fusion":
            return [{p.kind: wire_value(p, cell)} for p in inp.parts]
        return [{p.kind: wire_value(p, cell) for p in inp.parts}]
    part = inp.parts[0]
    return [{part.kind: wire_value(part, cell)}]


def dashscope_body(cell: Cell, batch: Batch) -> dict[str, Any]:
    contents: list[dict[str, Any]] = []
    for inp in batch.inputs:
        contents.extend(content_items(inp, cell))
    parameters = dict(cell.parameters)
    if batch.fused:
        parameters["enable_fusion"] = True
    return {"model": cell.model.wire_model, "input": {"contents": contents}, "parameters": parameters}


def embeddings_body(cell: Cell, batch: Batch) -> dict[str, Any]:
    body: dict[str, Any] = {"model": cell.model.wire_model,
                            "input": [inp.parts[0].value for inp in batch.inputs],
                            "encoding_format": "float"}
    if cell.dimension_sent is not None:
        body["dimensions"] = cell.dimension_sent
    return body


BODIES = {"dashscope": dashscope_body, "openai": embeddings_body, "local": embeddings_body}


def render(cell: Cell, batch: Batch) -> dict[str, Any]:
    return BODIES[cell.protocol](cell, batch)
