"""How fast a model may be asked: requests and input tokens per window, and how long to back off.

A model with a published quota is paced under it. A model without one (the dated 2026-03-06
snapshots: limited more tightly than the stable models, no figure published) is not sent to
unlimited: its limiter adapts to the throttles it gets (AIMD, as TCP does with congestion). The
first 429 sets the rate to half of what got through in the last window, each later throttle
halves it (once per burst: answers to requests sent before the last cut do not cut again), and
answered requests raise it slowly, by a tenth of the rate the last cut left per window's worth of
answers.
"""

from __future__ import annotations

import asyncio
import collections
import random
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from harness.execute.engine import ExecuteOptions

MAX_RETRY_AFTER = 300.0   # a Retry-After longer than this is a misconfigured server, not advice
DECREASE = 0.5            # a throttle multiplies the adaptive rate by this
INCREASE = 0.1            # share of the post-cut rate added back per window's worth of answers


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
    `adaptive` (no known request quota): unlimited until the first throttle, then AIMD (`throttled`,
    `answered`); `rate` is then a float of requests per window.
    """

    def __init__(self, rpm: int | None, tpm: int | None, window: float = 60.0, headroom: float = 0.98,
                 adaptive: bool = False):
        self.window = window
        self.headroom = headroom
        self.adaptive = adaptive and not rpm
        self.rate = 0.0            # requests per window; 0: no limit
        self.rpm = 0               # the sliding-window guard's count (whole requests)
        self.interval = 0.0
        self._set_rate(float(rpm or 0))
        self.token_rate = tpm * headroom / window if tpm else 0.0    # tokens per second
        self._next = 0.0           # monotonic time of the next request slot
        self._tokens_free = 0.0    # monotonic time at which the token debt is paid off
        self._sent: collections.deque[_Slot] = collections.deque()
        self._answers: collections.deque[float] = collections.deque()   # adaptive: when answers came in
        self._cut_at = 0.0         # adaptive: when the rate was last cut
        self._step = 0.0           # adaptive: requests per window added back per window of answers
        self.cuts = 0              # adaptive: how often a throttle cut the rate

    def _set_rate(self, rate: float) -> None:
        self.rate = rate
        self.rpm = max(1, int(rate)) if rate else 0
        self.interval = self.window / (rate * self.headroom) if rate else 0.0

    async def acquire(self, tokens: int = 0) -> "_Slot":
        """Wait for a slot; `release` the returned slot when the answer (or error) is in."""
        now = time.monotonic()
        at = max(now, self._next, self._tokens_free)
        self._next = at + self.interval
        if self.token_rate:
            self._tokens_free = at + tokens / self.token_rate
        slot = _Slot(at)
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

    def throttled(self, slot: "_Slot") -> None:
        """A 429 answered the request of `slot`: multiplicative decrease (adaptive limiters only),
        once per burst (a request sent before the last cut was paced by the old rate)."""
        if not self.adaptive or slot.at < self._cut_at:
            return
        now = time.monotonic()
        if self.rate:
            rate = self.rate * DECREASE
        else:   # the first throttle: what got through in the last window is about the quota
            while self._answers and self._answers[0] < now - self.window:
                self._answers.popleft()
            rate = len(self._answers) * DECREASE
        self._set_rate(max(1.0, rate))
        self._step = max(1.0, self.rate * INCREASE)
        self._cut_at = now
        self.cuts += 1

    def answered(self) -> None:
        """A request was answered (not throttled): additive increase, `_step` per `rate` answers."""
        if not self.adaptive:
            return
        if self.rate:
            self._set_rate(self.rate + self._step / self.rate)
        else:
            self._answers.append(time.monotonic())
            while len(self._answers) > 100_000:    # bounded: only the last window counts
                self._answers.popleft()


class _Slot:
    __slots__ = ("at", "done", "done_at")

    def __init__(self, at: float = 0.0) -> None:
        self.at = at               # monotonic time the request was allowed out
        self.done = asyncio.Event()
        self.done_at: float | None = None


def backoff_delay(attempt: int, options: ExecuteOptions, retry_after: float | None) -> float:
    """Retry-After when given; else base·2^(attempt-1), capped, with jitter in [½, 1]."""
    if retry_after is not None:
        return min(retry_after, MAX_RETRY_AFTER)
    delay = min(options.backoff_max, options.backoff_base * 2 ** (attempt - 1))
    return delay * random.uniform(0.5, 1.0)
