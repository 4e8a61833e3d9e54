"""Input-token and cost estimates, for planning only (the provider's `usage` is the truth).

Texts: about 4 ASCII characters per token and one token per other character (CJK text runs
close to a token per character). Images: the `res_level` tier when the request sets one
(documented: 127/402/578/1026 tokens per image), else the catalog's per-image figure. Videos: the
frames they are sampled to (`max_video_frames`, else the catalog's default), each an image;
`fps` only lowers the count below that cap and the video's length is not known before sending,
so the cap bounds the estimate. Per vector, the prompt template (qwen-vl: `input_tokens` includes
the system template) and the `instruct` text are billed as text.

Costs are per region, in that region's currency; amounts in two currencies are never added
(`by_currency` keeps one total per currency).
"""

from __future__ import annotations

import operator
from typing import Any, Iterable

from harness.catalog.load import ModelInfo

RES_LEVEL_TOKENS = {0: 127, 1: 402, 2: 578, 3: 1026}


def text_tokens(text: str) -> int:
    # the ASCII characters are what an "ignore" encoding keeps: counted in C, not a char at a time
    ascii_chars = len(text) if text.isascii() else len(text.encode("ascii", "ignore"))
    return max(1, (ascii_chars + 3) // 4 + (len(text) - ascii_chars))


_ASCII_PART = operator.methodcaller("encode", "ascii", "ignore")


def texts_tokens(texts: list[str]) -> int:
    """`text_tokens` summed over many texts (a chunk of an input set), without a call per text."""
    if "".join(texts).isascii():
        return sum([(n + 3) // 4 or 1 for n in map(len, texts)])
    return sum([(a + 3) // 4 + (n - a) or 1 for n, a in zip(map(len, texts), map(len, map(_ASCII_PART, texts)))])


def image_tokens(model: ModelInfo, parameters: dict) -> int:
    level = parameters.get("res_level")
    return RES_LEVEL_TOKENS[level] if level in RES_LEVEL_TOKENS else model.image_tokens_estimate


def video_frames(model: ModelInfo, parameters: dict) -> int:
    """Frames a video is sampled to: `max_video_frames` where the model takes it, else the default."""
    frames = parameters.get("max_video_frames") if "max_video_frames" in model.parameters else None
    return frames if isinstance(frames, int) and frames > 0 else model.video_frames


def video_tokens(model: ModelInfo, parameters: dict) -> int:
    return video_frames(model, parameters) * image_tokens(model, parameters)


def vector_tokens(model: ModelInfo | None, parameters: dict) -> int:
    """Text tokens billed once per vector: the prompt template and the `instruct` text."""
    instruct = parameters.get("instruct")
    return (model.template_tokens if model else 0) + (text_tokens(instruct) if isinstance(instruct, str) else 0)


def vectors(model: ModelInfo | None, parameters: dict, contents: int) -> int:
    """Vectors a request of `contents` items comes back with: one when everything fuses."""
    fuses = bool(parameters.get("enable_fusion")) or (model is not None and model.fusion == "always")
    return min(1, contents) if fuses else contents


def content_tokens(contents: Any, params: dict, model: ModelInfo | None) -> dict[str, int]:
    """Estimated input tokens by modality of request contents: a string, or a list of strings and
    DashScope-style items ({"text"}, {"image"}, {"multi_images"}, {"video"}); `params` size images and
    videos and add the per-vector text. Without a catalog row: 1000 per image, 8000 per video."""
    if isinstance(contents, str):
        contents = [contents]
    contents = contents if isinstance(contents, list) else []
    per_image = image_tokens(model, params) if model else 1000
    per_video = video_tokens(model, params) if model else 8000
    out = {"text": 0, "image": 0, "video": 0}
    for item in contents:
        if isinstance(item, str):
            out["text"] += text_tokens(item)
            continue
        if not isinstance(item, dict):
            continue
        if isinstance(item.get("text"), str):
            out["text"] += text_tokens(item["text"])
        out["image"] += per_image * (("image" in item) + len(item.get("multi_images") or []))
        out["video"] += per_video * ("video" in item)
    out["text"] += vector_tokens(model, params) * vectors(model, params, len(contents))
    return out


def body_tokens(body: dict, model: ModelInfo | None) -> dict[str, int]:
    """`content_tokens` of a request body of either wire shape: DashScope's `input.contents` (with
    `parameters`) or an embeddings `input` list."""
    raw = body.get("input") or []
    contents = raw.get("contents") or [] if isinstance(raw, dict) else raw
    params = body.get("parameters")
    return content_tokens(contents, params if isinstance(params, dict) else {}, model)


def cost(model: ModelInfo | None, tokens: dict[str, int], region: str | None) -> dict[str, Any]:
    """{"amount", "currency"} for input tokens by modality, at what `region` bills; currency None
    (amount 0) when nothing is billed there (a self-hosted model)."""
    price = model.price(region) if model is not None else None
    if price is None:
        return {"amount": 0.0, "currency": None}
    amount = sum(tokens.get(k, 0) * price.of(k) for k in ("text", "image", "video"))
    return {"amount": round(amount, 6), "currency": price.currency}


def by_currency(costs: Iterable[dict[str, Any] | None]) -> dict[str, float]:
    """One total per currency (sorted), never one number across currencies; unbilled costs drop out."""
    totals: dict[str, float] = {}
    for c in costs:
        if c and c.get("currency"):
            totals[c["currency"]] = totals.get(c["currency"], 0.0) + float(c.get("amount") or 0)
    return {k: round(totals[k], 6) for k in sorted(totals)}


def money(cost: dict[str, Any] | None) -> str:
    """A cell's cost in words: '0.0123 CNY', or 'not billed'."""
    if not cost or not cost.get("currency"):
        return "not billed"
    return f"{cost['amount']:.4f} {cost['currency']}"


def money_totals(costs: Iterable[dict[str, Any] | None]) -> str:
    """Totals per currency in words: '0.0123 CNY + 0.0009 USD', or 'nothing billed'."""
    totals = by_currency(costs)
    return " + ".join(f"{v:.4f} {k}" for k, v in totals.items()) or "nothing billed"
