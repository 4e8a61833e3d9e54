"""The run's one HTTP client, shared by every provider of the run."""

from __future__ import annotations

from typing import Any

import httpx


class ClientPool:
    """The run's shared HTTP client: httpx clients of at most `shard` connections each, used as one.

    httpcore's connection pool does work in proportion to its size on every request; one pool of
    32 connections cost about twice the CPU per request of four pools of 8 (bench/README.md).
    Each request goes to the least busy shard, so connections stay warm and reused. Providers
    call `post` exactly as on an `httpx.AsyncClient`.
    """

    def __init__(self, concurrency: int, timeout: float, shard: int = 8):
        concurrency = max(1, concurrency)
        n = -(-concurrency // shard)
        size = -(-concurrency // n)
        limits = httpx.Limits(max_connections=size, max_keepalive_connections=size)
        self.clients = [httpx.AsyncClient(limits=limits, timeout=httpx.Timeout(timeout), follow_redirects=False)
                        for _ in range(n)]
        self.busy = [0] * n

    async def request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        i = min(range(len(self.clients)), key=self.busy.__getitem__)
        self.busy[i] += 1
        try:
            return await self.clients[i].request(method, url, **kwargs)
        finally:
            self.busy[i] -= 1

    async def post(self, url: str, **kwargs: Any) -> httpx.Response:
        return await self.request("POST", url, **kwargs)

    async def aclose(self) -> None:
        for c in self.clients:
            await c.aclose()
