"""Small pieces every HTTP provider needs: its own client when outside the engine, Retry-After,
a body snippet for messages, compact index ranges."""

from __future__ import annotations

import email.utils
import math
import time
from typing import Any

import httpx


class ClientSlot:
    """The client a provider sends with: the engine's shared one when it passes one (never closed
    here), else one of the provider's own, made on first use so it binds to the event loop that
    sends. No proxies from the environment and no redirects, so a request goes exactly where the
    manifest says."""

    def __init__(self, shared: Any, timeout: float, max_connections: int | None):
        self._client = shared
        self._own = shared is None
        self._timeout = timeout
        self._max_connections = max_connections

    def get(self) -> Any:
        if self._client is None:
            limits = httpx.Limits(max_connections=self._max_connections,
                                  max_keepalive_connections=self._max_connections)
            self._client = httpx.AsyncClient(timeout=httpx.Timeout(self._timeout), limits=limits,
                                             trust_env=False, follow_redirects=False)
        return self._client

    async def aclose(self) -> None:
        if self._own and self._client is not None:
            await self._client.aclose()
            self._client = None


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
