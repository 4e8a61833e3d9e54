"""Several servers answering for one model (replicas of a self-hosted server, e.g. vLLM on several
GPUs): which one a request goes to, how many are in flight at each, and which are down.

A request goes to the up replica with the fewest requests in flight, waiting for a free slot there
when every up replica has `per_replica` in flight. A replica that refuses the connection, drops it,
or answers 5xx is down for `down_for` seconds: no request goes to it then, the one that failed
goes on to another, and after that time it gets requests again (the next failure puts it down
again). Only when every replica is down does a request fail: retryable, to be tried again when
the first comes back; the engine stops the run when the retries run out (exit 4).
"Down for" is counted on the clock the engine passes down (`now()`: real time, or a test's virtual clock).
"""

from __future__ import annotations

import asyncio
from typing import Any, Awaitable, Callable

from harness.providers.base import Embedded, ProviderError

DOWN_FOR = 10.0   # seconds a failed replica gets no requests


class Replica:
    __slots__ = ("url", "shown", "in_flight", "down_until", "why", "_slots")

    def __init__(self, url: str, shown: str, per_replica: int):
        self.url, self.shown = url, shown
        self.in_flight = 0                  # requests sent or waiting for a slot here
        self.down_until = 0.0
        self.why = ""
        self._slots = asyncio.Semaphore(per_replica)

    def up(self, now: float) -> bool:
        return self.down_until <= now


def takes_down(exc: ProviderError) -> bool:
    """A dead or broken server, not a problem with this request: connection refused or dropped, 5xx."""
    return exc.code == "ConnectionError" or (exc.status is not None and exc.status >= 500)


class Replicas:
    def __init__(self, urls: list[tuple[str, str]], per_replica: int, clock: Any, down_for: float = DOWN_FOR):
        """`urls`: (endpoint, the endpoint as messages show it) per replica; `clock`: the engine's."""
        self.replicas = [Replica(url, shown, max(1, per_replica)) for url, shown in urls]
        self.down_for = down_for
        self.clock = clock

    def _pick(self, tried: set[int]) -> Replica | None:
        now = self.clock.now()
        best = None
        for i, r in enumerate(self.replicas):
            if i not in tried and r.up(now) and (best is None or r.in_flight < best.in_flight):
                best = r
        return best

    async def send(self, post: Callable[[Replica], Awaitable[Embedded]]) -> Embedded:
        """`post(replica)` on the best replica, on another if that one is down (see the module doc);
        the answer says which replica gave it."""
        tried: set[int] = set()
        while True:
            replica = self._pick(tried)
            if replica is None:
                raise self._all_down()
            tried.add(self.replicas.index(replica))
            replica.in_flight += 1
            try:
                async with replica._slots:
                    if not replica.up(self.clock.now()):
                        continue                     # it went down while this request waited
                    got = await post(replica)
                    got.replica = replica.url
                    return got
            except ProviderError as exc:
                if not takes_down(exc):
                    raise
                replica.down_until = self.clock.now() + self.down_for
                replica.why = exc.message.replace(f" to {replica.shown}", "").replace(f" from {replica.shown}", "")
            finally:
                replica.in_flight -= 1

    def _all_down(self) -> ProviderError:
        now = self.clock.now()
        down = [r for r in self.replicas if not r.up(now)]
        if len(down) < len(self.replicas):   # all up ones were tried by this request and failed just now
            down = self.replicas
        back = min((r.down_until for r in down), default=now) - now
        reasons = "; ".join(f"{r.shown}: {r.why or 'failed'}" for r in down)
        return ProviderError(f"all {len(self.replicas)} replicas are down ({reasons})", code="ReplicasDown",
                             retryable=True, retry_after=max(0.0, back), fatal_when_exhausted=True)
