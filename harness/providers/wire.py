"""Small pieces every HTTP provider needs: its own client when outside the engine, Retry-After,
a body snippet for messages, compact index ranges, and what may be kept of an answer.

httpx and numpy are imported where a request is sent or an answer read, never at the top of a
provider module: `harness prepare` and `validate` shape request bodies (`request_body`) with the
providers' own code, and need neither.
"""

from __future__ import annotations

import email.utils
import functools
import json
import math
import re
import time
from typing import Any

from harness.providers.base import Embedded, ProviderError
from harness.providers.credentials import scrub

try:  # parses an answer of 4 × 1024 floats ~8× faster than json; optional (it comes with pymilvus)
    from orjson import loads as _fast_loads
except ImportError:  # pragma: no cover - depends on what is installed
    _fast_loads = None

MAX_KEPT_TEXT = 1000      # characters of one string kept from an answer (a message, a code, an id)
MAX_KEPT_DEPTH = 4        # nesting kept of a usage object (input_tokens_details is one level)
# A line break in a message could forge a line of validate.txt: the C0 and C1 controls, and Unicode's
# line and paragraph separators (U+2028, U+2029), which str.splitlines() and many viewers break on too.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_DROP = object()


@functools.lru_cache(maxsize=1)
def tls_context() -> Any:
    """The process's one TLS context: building one loads the CA bundle (≈ 20 ms of CPU), and every
    client of every run in the process can share it."""
    import httpx

    return httpx.create_ssl_context()


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
            import httpx

            limits = httpx.Limits(max_connections=self._max_connections,
                                  max_keepalive_connections=self._max_connections)
            self._client = httpx.AsyncClient(timeout=httpx.Timeout(self._timeout), limits=limits,
                                             trust_env=False, follow_redirects=False, verify=tls_context())
        return self._client

    async def aclose(self) -> None:
        if self._own and self._client is not None:
            await self._client.aclose()
            self._client = None


def loads(content: bytes) -> Any:
    """An answer's JSON. orjson when installed; whatever it refuses (NaN, integers beyond 64 bits,
    deep nesting, lone surrogates) goes to `json`, so what is accepted and every error the providers
    report is the same either way."""
    if _fast_loads is not None:
        try:
            return _fast_loads(content)
        except ValueError:
            pass
    return json.loads(content)


def fast_rows(items: list, expected: int, dimension: int | None) -> list | None:
    """The vectors in index order when every item is plainly right (`expected` dicts, each index
    0..expected-1 once, a non-empty list of the expected length); else None and the provider's
    parser checks item by item, naming the first fault. The numbers are checked by `number_matrix`."""
    if len(items) != expected:
        return None
    rows: list[Any] = [None] * expected
    for item in items:
        if type(item) is not dict:
            return None
        index, vec = item.get("index"), item.get("embedding")
        if type(index) is not int or not 0 <= index < expected or rows[index] is not None \
                or type(vec) is not list or not vec or (dimension and len(vec) != dimension):
            return None
        rows[index] = vec
    return rows


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


# -- what is kept of an answer ---------------------------------------------------------------
# Everything a server says ends up in responses/*.jsonl, execution.json, validate.txt, the reports
# and the cache; a server that echoes the key must not get it written anywhere, in any field.

def kept_text(text: str, secret: str | None) -> str:
    text = _CONTROL.sub(" ", scrub(text, secret))
    return text if len(text) <= MAX_KEPT_TEXT else text[:MAX_KEPT_TEXT] + "…"


def kept_id(value: Any, secret: str | None) -> str | None:
    """A request id as a short clean string; anything that is not a string or an integer is dropped."""
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) < 10**30:
        value = str(value)
    return kept_text(value, secret)[:200] if isinstance(value, str) else None


def kept_usage(value: Any, secret: str | None, depth: int = 0) -> Any:
    """A JSON-safe copy: strings cleaned, numbers a float can hold, bounded nesting; the rest dropped."""
    if depth > MAX_KEPT_DEPTH:
        return _DROP
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            v = kept_usage(v, secret, depth + 1)
            if v is not _DROP:
                out[kept_text(str(k), secret)] = v
        return out
    if isinstance(value, list):
        return [x for x in (kept_usage(v, secret, depth + 1) for v in value) if x is not _DROP]
    if isinstance(value, str):
        return kept_text(value, secret)
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):
        return value if abs(value) < 2**63 else _DROP
    if isinstance(value, float):
        return value if math.isfinite(value) else _DROP
    return _DROP


def kept_answer(got: Embedded, secret: str | None) -> Embedded:
    usage = kept_usage(got.usage, secret) if isinstance(got.usage, dict) else {}
    got.usage = usage if isinstance(usage, dict) else {}
    got.request_id = kept_id(got.request_id, secret)
    return got


def kept_error(exc: ProviderError, secret: str | None) -> ProviderError:
    exc.message = kept_text(str(exc.message), secret)
    exc.args = (exc.message,)
    exc.code = kept_text(str(exc.code), secret)[:200] if exc.code is not None else None
    exc.request_id = kept_id(exc.request_id, secret)
    return exc


# -- numbers --------------------------------------------------------------------------------

def number_matrix(rows: list) -> Any:
    """`rows` (one list per vector, in order) as a float64 matrix when the answer is plainly well
    formed: every item of every row a JSON number (int or float: not `true`, a string, null), all
    rows of one length, all finite. Else None, and the caller's item-by-item checks find and name
    what is wrong. One pass of `set(map(type, row))` per row and one numpy conversion: the cheapest
    exact check found (a substring search for `true` in a 91 kB answer costs more than both)."""
    for row in rows:
        if not set(map(type, row)) <= _NUMBER_TYPES:
            return None
    import numpy as np

    try:
        matrix = np.array(rows, dtype=np.float64)
    except (ValueError, TypeError, OverflowError):
        return None
    return matrix if matrix.ndim == 2 and np.isfinite(matrix).all() else None


_NUMBER_TYPES = {int, float}


def first_non_number(values: list) -> str | None:
    """None when every item is a JSON number; else what the first other item is, and where.
    JSON `true` and "0.5" are not numbers, though Python and numpy would take them for 1.0 and 0.5."""
    if set(map(type, values)) <= {int, float}:
        return None
    for i, x in enumerate(values):
        if type(x) not in (int, float):
            kind = ("true" if x is True else "false" if x is False else "null" if x is None
                    else "a string" if isinstance(x, str) else "a list" if isinstance(x, list) else "an object")
            return f"{kind} at position {i}"
    return None  # pragma: no cover - the set said otherwise


def redirect_hint(headers: Any) -> str:
    """Why a 30x is not followed: the key would go along to wherever it points."""
    where = headers.get("location") or "elsewhere"
    return (f"the server redirects to {where}; redirects are not followed (the key would go along): "
            "use the final address as the base URL")


class KeptAnswers:
    """Mixin of the providers that hold a key: everything `send` returns or raises, and every
    cached answer reused (`clean`), is scrubbed of it; a subclass implements `_send`."""

    _api_key: str | None

    def clean(self, got: Embedded) -> Embedded:
        return kept_answer(got, self._api_key)

    async def send(self, body: dict[str, Any], expected: int, data: bytes | None = None) -> Embedded:
        # A server may echo the key back ("Incorrect API key provided: sk-..."); it stops here.
        try:
            got = await self._send(body, expected, data)
        except ProviderError as exc:
            raise kept_error(exc, self._api_key) from None
        return kept_answer(got, self._api_key)

    async def _send(self, body: dict[str, Any], expected: int, data: bytes | None) -> Embedded:
        raise NotImplementedError
