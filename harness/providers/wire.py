"""Small pieces every HTTP provider needs: its own client when outside the engine, Retry-After,
a body snippet for messages, compact index ranges."""

from __future__ import annotations

import email.utils
import math
import time
from typing import Any

import httpx


def own_client(timeout: float, max_connections: int | None) -> httpx.AsyncClient:
    """A provider's own client, when it is used outside the engine (which passes its shared one).
    Made lazily by the caller, so it binds to the event loop that sends; no proxies from the
    environment and no redirects, so a request goes exactly where the manifest says."""
    limits = httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections)
    return httpx.AsyncClient(timeout=httpx.Timeout(timeout), limits=limits, trust_env=False, follow_redirects=False)


def retry_after(headers: Any) -> float | None:
    """Seconds to wait from `retry-after-ms`, or `Retry-After` as delta-seconds or an HTTP date."""
    ms = headers.get("retry-after-ms")
    if ms:
        try:
            value = float(ms) / 1000
            return max(0.0, value) if math.isfinite(value) else None
        except ValueError:
            pass
    value = (headers.get("retry-after") or "").strip()
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when is None:
            return None
        seconds = when.timestamp() - time.time()
    return max(0.0, seconds) if math.isfinite(seconds) else None


def snippet(content: bytes, limit: int = 120) -> str:
    text = content.decode("utf-8", "replace").strip().replace("\n", " ")
    return repr(text[:limit] + ("…" if len(text) > limit else ""))


def ranges(ints: list[int]) -> str:
    out: list[str] = []
    for i in ints:
        if out and out[-1].split("-")[-1] == str(i - 1):
            out[-1] = f"{out[-1].split('-')[0]}-{i}"
        else:
            out.append(str(i))
    return ", ".join(out)
