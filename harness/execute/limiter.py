"""How fast a model may be asked: requests and input tokens per window, and how long to back off."""

from __future__ import annotations

import asyncio
import collections
import random
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from harness.execute.engine import ExecuteOptions

MAX_RETRY_AFTER = 300.0   # a Retry-After longer than this is a misconfigured server, not advice


class RateLimiter:
    """Requests and input tokens per window, spaced evenly, never more than the quota in any window.

    Two rules, both needed:
    - even spacing (GCRA) at `headroom` × the quota: no bursts, which the service punishes even
      under the minute's quota (it also enforces RPM/60 per second);
    - a sliding-window guard: request k+N (N = the quota) goes out only after request k was
      *answered* plus one window. The server counted k before it answered, so no window it can
      count holds more than N, however late a busy machine sends or the network delivers.
    Tokens are charged on the estimate and corrected with the usage the provider reports.
    A throttle answer pushes every later slot back (`hold`).
    """

    def __init__(self, rpm: int | None, tpm: int | None, window: float = 60.0, headroom: float = 0.98):
        self.rpm = rpm or 0
        self.window = window
        self.interval = window / (rpm * headroom) if rpm else 0.0
        self.token_rate = tpm * headroom / window if tpm else 0.0    # tokens per second
        self._next = 0.0           # monotonic time of the next request slot
        self._tokens_free = 0.0    # monotonic time at which the token debt is paid off
        self._sent: collections.deque[_Slot] = collections.deque()

    async def acquire(self, tokens: int = 0) -> "_Slot":
        """Wait for a slot; `release` the returned slot when the answer (or error) is in."""
        now = time.monotonic()
        at = max(now, self._next, self._tokens_free)
        self._next = at + self.interval
        if self.token_rate:
            self._tokens_free = at + tokens / self.token_rate
        slot = _Slot()
        earlier = None
        if self.rpm:
            if len(self._sent) >= self.rpm:
                earlier = self._sent[-self.rpm]
            self._sent.append(slot)
            while len(self._sent) > self.rpm and self._sent[0].done_at is not None:
                self._sent.popleft()
        try:
            if at > now:
                await asyncio.sleep(at - now)
            if earlier is not None:
                if earlier.done_at is None:
                    await earlier.done.wait()
                wait = earlier.done_at + self.window - time.monotonic()
                if wait > 0:
                    await asyncio.sleep(wait)
        except BaseException:
            self.release(slot)
            raise
        return slot

    @staticmethod
    def release(slot: "_Slot") -> None:
        if slot.done_at is None:
            slot.done_at = time.monotonic()
            slot.done.set()

    def correct(self, delta_tokens: int) -> None:
        if self.token_rate and delta_tokens:
            self._tokens_free += delta_tokens / self.token_rate

    def hold(self, seconds: float) -> None:
        until = time.monotonic() + seconds
        self._next = max(self._next, until)


class _Slot:
    __slots__ = ("done", "done_at")

    def __init__(self) -> None:
        self.done = asyncio.Event()
        self.done_at: float | None = None


def backoff_delay(attempt: int, options: ExecuteOptions, retry_after: float | None) -> float:
    """Retry-After when given; else base·2^(attempt-1), capped, with jitter in [½, 1]."""
    if retry_after is not None:
        return min(retry_after, MAX_RETRY_AFTER)
    delay = min(options.backoff_max, options.backoff_base * 2 ** (attempt - 1))
    return delay * random.uniform(0.5, 1.0)
