"""Input tokens a request body will likely cost, for the engine's TPM limiter (corrected by the
usage the answer reports). Each provider picks the contents out of its own body shape (`tokens`)."""

from __future__ import annotations

from typing import Any


def estimate_tokens(contents: Any, params: dict[str, Any], info: Any) -> int:
    """`contents`: a string, or a list of strings and DashScope-style items ({"text"}, {"image"},
    {"multi_images"}, {"video"}); `params` sizes images and videos; `info` is the catalog's model."""
    if isinstance(contents, str):
        contents = [contents]
    try:
        from harness import estimate
        per_image = estimate.image_tokens(info, params) if info else 1000
        per_video = estimate.video_tokens(info, params) if info else 8000
        text_tokens = estimate.text_tokens
    except ImportError:  # pragma: no cover - estimate.py ships with the package
        per_image, per_video = 1000, 8000
        text_tokens = lambda s: max(1, len(s) // 3)  # noqa: E731
    total = 0
    for item in contents if isinstance(contents, list) else []:
        if isinstance(item, str):
            total += text_tokens(item)
            continue
        if not isinstance(item, dict):
            continue
        if isinstance(item.get("text"), str):
            total += text_tokens(item["text"])
        total += per_image * (("image" in item) + len(item.get("multi_images") or []))
        total += per_video * ("video" in item)
    return max(1, total)
