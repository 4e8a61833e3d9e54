"""Input tokens a request body will likely cost, for the engine's TPM limiter (corrected by the
usage the answer reports). Each provider picks the contents out of its own body shape (`tokens`)."""

from __future__ import annotations

from typing import Any

from harness.catalog import estimate


def estimate_tokens(contents: Any, params: dict[str, Any], info: Any) -> int:
    """`contents`: a string, or a list of strings and DashScope-style items ({"text"}, {"image"},
    {"multi_images"}, {"video"}); `params` sizes images and videos; `info` is the catalog's model.
    The same estimate `harness plan` and `verify --reexecute` price, summed over modalities."""
    return max(1, sum(estimate.content_tokens(contents, params, info).values()))
