"""Input-token and cost estimates, for planning only (the provider's `usage` is the truth).

Texts: about 4 ASCII characters per token and one token per other character (CJK text runs
close to a token per character). Images and videos: the catalog's per-item figure, or the
`res_level` tier when the request sets one (documented: 127/402/578/1026 tokens per image).
"""

from __future__ import annotations

from typing import Any

from harness.catalog import ModelInfo

RES_LEVEL_TOKENS = {0: 127, 1: 402, 2: 578, 3: 1026}


def text_tokens(text: str) -> int:
    ascii_chars = sum(1 for c in text if ord(c) < 128) if not text.isascii() else len(text)
    return max(1, (ascii_chars + 3) // 4 + (len(text) - ascii_chars))


def image_tokens(model: ModelInfo, parameters: dict) -> int:
    level = parameters.get("res_level")
    return RES_LEVEL_TOKENS[level] if level in RES_LEVEL_TOKENS else model.image_tokens_estimate


def video_tokens(model: ModelInfo, parameters: dict) -> int:
    frames = parameters.get("max_video_frames")
    if frames:
        return frames * image_tokens(model, parameters)
    return model.video_tokens_estimate


def content_tokens(contents: Any, params: dict, model: ModelInfo | None) -> dict[str, int]:
    """Estimated input tokens by modality of request contents: a string, or a list of strings and
    DashScope-style items ({"text"}, {"image"}, {"multi_images"}, {"video"}); `params` size images and
    videos. Without a catalog row: 1000 per image, 8000 per video."""
    if isinstance(contents, str):
        contents = [contents]
    per_image = image_tokens(model, params) if model else 1000
    per_video = video_tokens(model, params) if model else 8000
    out = {"text": 0, "image": 0, "video": 0}
    for item in contents if isinstance(contents, list) else []:
        if isinstance(item, str):
            out["text"] += text_tokens(item)
            continue
        if not isinstance(item, dict):
            continue
        if isinstance(item.get("text"), str):
            out["text"] += text_tokens(item["text"])
        out["image"] += per_image * (("image" in item) + len(item.get("multi_images") or []))
        out["video"] += per_video * ("video" in item)
    return out


def body_tokens(body: dict, model: ModelInfo | None) -> dict[str, int]:
    """`content_tokens` of a request body of either wire shape: DashScope's `input.contents` (with
    `parameters`) or an embeddings `input` list."""
    raw = body.get("input") or []
    contents = raw.get("contents") or [] if isinstance(raw, dict) else raw
    params = body.get("parameters")
    return content_tokens(contents, params if isinstance(params, dict) else {}, model)


def cost(model: ModelInfo, tokens: dict[str, int]) -> float:
    """Estimated cost in the catalog's currency for tokens by modality."""
    return sum(tokens.get(k, 0) / 1000.0 * model.prices.get(k, 0.0) for k in ("text", "image", "video"))
