"""How fast a model may be asked: requests and input tokens per window, and how long to back off.

A model with a published quota is paced under it. A model without one (the dated 2026-03-06
snapshots: limited more tightly than the stable models, no figure published) is not sent to
unlimited: its limiter adapts to the throttles it gets (AIMD, as TCP does with congestion). The
first 429 sets the rate to half of what got through in the last window, each later throttle
halves it (once per burst: answers to requests sent before the last cut do not cut again), and
answered requests raise it slowly, by a tenth of the rate the last cut left per window's worth of
answers.

Every wait goes through a clock (`now()`, `async sleep(seconds)`): real time by default, a
`VirtualClock` in tests and simulations, where a minute of pacing takes no time at all.
"""

from __future__ import annotations

import asyncio
import collections
import heapq
import itertools
import random
import time
from typing import Any

MAX_RETRY_AFTER = 300.0   # a Retry-After longer than this is a misconfigured server, not advice
DECREASE = 0.5            # a throttle multiplies the adaptive rate by this
INCREASE = 0.1            # share of the post-cut rate added back per window's worth of answers


class RealClock:
    """Real time: monotonic seconds, and asyncio's sleep."""

    @staticmethod
    def now() -> float:
        return time.monotonic()

    @staticmethod
    async def sleep(seconds: float) -> None:
        await asyncio.sleep(seconds)

    @staticmethod
    def request_out() -> None:
        pass

    @staticmethod
    def request_in() -> None:
        pass


class VirtualClock:
    """Time that passes only when someone sleeps, for tests and simulations (a minute of pacing in
    milliseconds). A sleep ends at once with `now()` moved to its end, provided nothing else is
    going on: sleepers wake one at a time in the order of their ends (concurrent sleeps overlap as
    in real time, nobody wakes early), and not while a request is out. The limiter tells the clock
    when a request goes out (`request_out`) and when its answer is in (`request_in`), so a request
    takes no virtual time: a test server reading `now()` (from its own thread) counts it at the
    time it was sent. `advance(seconds)` moves the time by hand (e.g. an answer that took that long).
    """

    def __init__(self, start: float = 0.0):
        self._now = float(start)
        self._sleepers: list[tuple[float, int, asyncio.Future]] = []
        self._order = itertools.count()
        self._waking: asyncio.AbstractEventLoop | None = None   # the loop a wake-up is scheduled on
        self.out = 0               # requests sent and not yet answered

    def now(self) -> float:
        return self._now

    def advance(self, seconds: float) -> None:
        self._now += max(0.0, seconds)

    async def sleep(self, seconds: float) -> None:
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        loop = asyncio.get_running_loop()
        done = loop.create_future()
        heapq.heappush(self._sleepers, (self._now + seconds, next(self._order), done))
        self._schedule(loop)
        await done

    def request_out(self) -> None:
        self.out += 1

    def request_in(self) -> None:
        self.out -= 1
        if not self.out and self._sleepers:
            try:
                self._schedule(asyncio.get_running_loop())
            except RuntimeError:   # released outside a loop: the next sleep schedules the wake-up
                pass

    def _schedule(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._waking is not loop and not self.out:
            self._waking = loop
            loop.call_soon(self._wake_next)

    def _wake_next(self) -> None:
        """Wake the sleeper that ends first; the next one after it has had its turn of the loop."""
        self._waking = None
        if self.out:
            return                 # `request_in` schedules it again
        while self._sleepers:
            end, _, done = heapq.heappop(self._sleepers)
            if done.done():        # cancelled (Ctrl-C, a run that stopped early)
                continue
            self._now = max(self._now, end)
            done.set_result(None)
            break
        if self._sleepers:
            self._schedule(asyncio.get_running_loop())


DEFAULT_CLOCK: Any = RealClock()   # what `ExecuteOptions(clock=None)` waits on; a test may monkeypatch it


def clock_of(options: Any) -> Any:
    """The clock `options` (ExecuteOptions) names, else the default (real time)."""
    return getattr(options, "clock", None) or DEFAULT_CLOCK


def _nothing() -> None:   # a clock without request_out/request_in (only now and sleep)
    pass


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
    `clock`: what it reads the time from and waits on (default: real time).
    """

    def __init__(self, rpm: int | None, tpm: int | None, window: float = 60.0, headroom: float = 0.98,
                 adaptive: bool = False, clock: Any = None):
        self.clock = clock or DEFAULT_CLOCK
        self.window = window
        self.headroom = headroom
        self.adaptive = adaptive and not rpm
        self.rate = 0.0            # requests per window; 0: no limit
        self.rpm = 0               # the sliding-window guard's count (whole requests)
        self.interval = 0.0
        self._set_rate(float(rpm or 0))
        self.token_rate = tpm * headroom / window if tpm else 0.0    # tokens per second
        self._next = 0.0           # the clock's time of the next request slot
        self._tokens_free = 0.0    # the clock's time at which the token debt is paid off
        self._sent: collections.deque[_Slot] = collections.deque()
        self._answers: collections.deque[float] = collections.deque()   # adaptive: when answers came in
        self._sent_out = 0         # requests let out so far (a slot's `n` is its place in that count)
        self._cut_after = 0        # adaptive: how many had gone out when the rate was last cut
        self._step = 0.0           # adaptive: requests per window added back per window of answers
        self.cuts = 0              # adaptive: how often a throttle cut the rate

    def _set_rate(self, rate: float) -> None:
        self.rate = rate
        self.rpm = max(1, int(rate)) if rate else 0
        self.interval = self.window / (rate * self.headroom) if rate else 0.0

    async def acquire(self, tokens: int = 0) -> "_Slot":
        """Wait for a slot; `release` the returned slot when the answer (or error) is in."""
        clock = self.clock
        now = clock.now()
        at = max(now, self._next, self._tokens_free)
        self._next = at + self.interval
        if self.token_rate:
            self._tokens_free = at + tokens / self.token_rate
        slot = _Slot(at, clock)
        earlier = None
        if self.rpm:
            if len(self._sent) >= self.rpm:
                earlier = self._sent[-self.rpm]
            self._sent.append(slot)
            while len(self._sent) > self.rpm and self._sent[0].done_at is not None:
                self._sent.popleft()
        try:
            if at > now:
                await clock.sleep(at - now)
            if earlier is not None:
                if earlier.done_at is None:
                    await earlier.done.wait()
                wait = earlier.done_at + self.window - clock.now()
                if wait > 0:
                    await clock.sleep(wait)
        except BaseException:
            self.release(slot)
            raise
        self._sent_out += 1
        slot.n = self._sent_out
        getattr(clock, "request_out", _nothing)()
        return slot

    @staticmethod
    def release(slot: "_Slot") -> None:
        if slot.done_at is None:
            slot.done_at = slot.clock.now()
            slot.done.set()
            if slot.n:
                getattr(slot.clock, "request_in", _nothing)()

    def correct(self, delta_tokens: int) -> None:
        if self.token_rate and delta_tokens:
            self._tokens_free += delta_tokens / self.token_rate

    def hold(self, seconds: float) -> None:
        until = self.clock.now() + seconds
        self._next = max(self._next, until)

    def throttled(self, slot: "_Slot") -> None:
        """A 429 answered the request of `slot`: multiplicative decrease (adaptive limiters only),
        once per burst (a request sent before the last cut was paced by the old rate)."""
        if not self.adaptive or slot.n <= self._cut_after:
            return
        now = self.clock.now()
        if self.rate:
            rate = self.rate * DECREASE
        else:   # the first throttle: what got through in the last window is about the quota
            while self._answers and self._answers[0] < now - self.window:
                self._answers.popleft()
            rate = len(self._answers) * DECREASE
        self._set_rate(max(1.0, rate))
        self._step = max(1.0, self.rate * INCREASE)
        self._cut_after = self._sent_out
        self.cuts += 1

    def answered(self) -> None:
        """A request was answered (not throttled): additive increase, `_step` per `rate` answers."""
        if not self.adaptive:
            return
        if self.rate:
            self._set_rate(self.rate + self._step / self.rate)
        else:
            self._answers.append(self.clock.now())
            while len(self._answers) > 100_000:    # bounded: only the last window counts
                self._answers.popleft()


class _Slot:
    __slots__ = ("at", "clock", "done", "done_at", "n")

    def __init__(self, at: float = 0.0, clock: Any = None) -> None:
        self.at = at               # the clock's time the request was allowed out
        self.clock = clock or DEFAULT_CLOCK
        self.n = 0                 # the how-manieth request it let out (0: none yet)
        self.done = asyncio.Event()
        self.done_at: float | None = None


def backoff_delay(attempt: int, retry_after: float | None, base: float, most: float) -> float:
    """Retry-After when given; else base·2^(attempt-1), at most `most`, with jitter in [½, 1]."""
    if retry_after is not None:
        return min(retry_after, MAX_RETRY_AFTER)
    delay = min(most, base * 2 ** (attempt - 1))
    return delay * random.uniform(0.5, 1.0)
