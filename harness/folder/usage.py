"""What a provider's `usage` object says, whichever shape the model reports it in: the engine
counts it as answers arrive, the records and the reports read it back from the folder."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any


def usage_tokens(usage: dict[str, Any]) -> dict[str, int]:
    """Input tokens by modality from a usage object, whichever shape the model reports."""
    def num(x: Any) -> int:
        return int(x) if isinstance(x, (int, float)) and not isinstance(x, bool) else 0
    details = usage.get("input_tokens_details")
    if isinstance(details, dict):
        image = num(details.get("image_tokens")) + num(details.get("video_tokens"))
        text = num(details.get("text_tokens")) or max(0, num(usage.get("input_tokens")) - image)
    else:
        text = num(usage.get("input_tokens")) or num(usage.get("prompt_tokens"))
        image = num(usage.get("image_tokens")) + num(usage.get("video_tokens"))
    return {"text": text, "image": image}


def usage_reported(records: Iterable[dict[str, Any] | None]) -> bool:
    """Did every answered request report the tokens it used? Only then do the reported tokens say
    what the cell was billed; a proxy that strips `usage` from some answers would make them a
    partial count, and a cell priced on it would look cheaper than it was."""
    answered = [r for r in records if r and r.get("error") is None]
    return bool(answered) and all(any(usage_tokens(r.get("usage") or {}).values()) for r in answered)
