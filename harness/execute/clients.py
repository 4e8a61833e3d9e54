"""The run's one HTTP client, shared by every provider of the run."""

from __future__ import annotations

from typing import Any

import httpx

from harness.providers.wire import tls_context


class ClientPool:
    """The run's shared HTTP client: httpx clients of at most `shard` connections each, used as one.

    httpcore's connection pool does work in proportion to its size on every request; one pool of
    32 connections cost about twice the CPU per request of four pools of 8 (bench/README.md).
    Each request goes to the least busy shard, so connections stay warm and reused. The shards
    share the process's TLS context (`wire.tls_context`).

    Providers call `post(url, content=, headers=, timeout=)` as on an `httpx.AsyncClient`, and get
    an `httpx.Response` whose body is read. The request goes straight to the client's transport for
    that URL (the same one `AsyncClient.send` would pick, so proxies from the environment still
    apply), skipping what the harness never uses and which cost ≈ 0.3 ms of CPU per request:
    cookies (none is stored or sent back, so one answer cannot change the next request), auth flows,
    redirect handling (redirects are never followed anyway: the key would go along), event hooks.
    The client's default headers (Accept-Encoding, User-Agent, ...) are sent as before.
    """

    def __init__(self, concurrency: int, timeout: float, shard: int = 8):
        concurrency = max(1, concurrency)
        n = -(-concurrency // shard)
        size = -(-concurrency // n)
        limits = httpx.Limits(max_connections=size, max_keepalive_connections=size)
        tls = tls_context()
        self.clients = [httpx.AsyncClient(limits=limits, timeout=httpx.Timeout(timeout), follow_redirects=False,
                                          verify=tls)
                        for _ in range(n)]
        self.busy = [0] * n
        self._defaults = dict(self.clients[0].headers.items())   # lower-case names
        self._routes: list[dict[str, Any]] = [{} for _ in range(n)]
        self._timeouts: dict[float, dict[str, Any]] = {}

    def _transport(self, i: int, url: httpx.URL) -> Any:
        key = f"{url.scheme}://{url.netloc.decode('ascii')}"
        route = self._routes[i].get(key)
        if route is None:
            client = self.clients[i]
            pick = getattr(client, "_transport_for_url", None)   # httpx's own choice (proxies, mounts)
            route = self._routes[i][key] = pick(url) if pick is not None else None
        return route

    async def post(self, url: str, *, content: bytes, headers: dict[str, str], timeout: float | None = None
                   ) -> httpx.Response:
        i = min(range(len(self.clients)), key=self.busy.__getitem__)
        client = self.clients[i]
        target = httpx.URL(url)
        transport = self._transport(i, target)
        self.busy[i] += 1
        try:
            if transport is None:   # an httpx without the private hook: the ordinary way
                return await client.post(url, content=content, headers=headers, timeout=timeout)
            limits = self._timeouts.get(timeout) if timeout is not None else None
            if limits is None:
                limits = (httpx.Timeout(timeout) if timeout is not None else client.timeout).as_dict()
                if timeout is not None:
                    self._timeouts[timeout] = limits
            merged = dict(self._defaults)
            merged.update((k.lower(), v) for k, v in headers.items())
            request = httpx.Request("POST", target, content=content, headers=merged,
                                    extensions={"timeout": limits})
            response = await transport.handle_async_request(request)
            response.request = request
            try:
                await response.aread()
            finally:
                await response.aclose()
            return response
        finally:
            self.busy[i] -= 1

    async def request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        """Off the hot path (DashScope's upload policy and storage form): the ordinary httpx way.
        Cookies an answer sets are dropped, so none reaches a later request."""
        i = min(range(len(self.clients)), key=self.busy.__getitem__)
        self.busy[i] += 1
        try:
            return await self.clients[i].request(method, url, **kwargs)
        finally:
            self.busy[i] -= 1
            self.clients[i].cookies.clear()

    async def aclose(self) -> None:
        for c in self.clients:
            await c.aclose()
