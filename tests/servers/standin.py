"""The benchmarks' DashScope stand-in: so fast that the client, not the server, is what is measured.

`dashscope_server.FakeDashScope` is for tests (faults, a request log, vectors derived from each
input) and runs on uvicorn + h11, which costs more CPU per request than the clients it serves. This
one is a bare `asyncio.Protocol` speaking just enough HTTP/1.1 (keep-alive, Content-Length bodies),
in its own process:

- answers are pre-serialised: one byte string per (model, dimension, number of contents), built
  once from precomputed unit vectors; only the request id is filled in per answer;
- the listen backlog is large (4096), so a burst of new connections is queued, not refused;
- TCP_NODELAY on every connection, so a small answer does not wait for a delayed ACK (Nagle);
- the body is parsed only to count its contents; the Bearer key is checked, so a client that
  sends none is refused as the service would.

It also enforces `--rpm N --window W` (429 Throttling.RateQuota beyond N answers per sliding window)
for the quota benchmark, and serves `GET /_fake/stats` and `POST /_fake/reset` like the test server.

    python -m tests.servers.standin --port 0 --key sk-... [--rpm 120 --window 5]
    # prints: listening on http://127.0.0.1:PORT/api/v1
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import socket
import sys
import time

import numpy as np

PATH = b"/api/v1/services/embeddings/multimodal-embedding/multimodal-embedding"
DEFAULT_DIMENSION = {"qwen3-vl-embedding": 2560, "qwen2.5-vl-embedding": 1024, "multimodal-embedding-v1": 1024}
POOL = 64       # distinct vectors per dimension; answers cycle through them


class Answers:
    """Pre-serialised answer bodies, split around the request id, by (model, dimension, contents)."""

    def __init__(self) -> None:
        self._vectors: dict[int, list[str]] = {}
        self._bodies: dict[tuple, tuple[bytes, bytes]] = {}

    def _pool(self, dim: int) -> list[str]:
        if dim not in self._vectors:
            rng = np.random.default_rng(dim)
            v = rng.standard_normal((POOL, dim))
            v /= np.linalg.norm(v, axis=1, keepdims=True)
            self._vectors[dim] = [json.dumps(row.tolist()) for row in v]
        return self._vectors[dim]

    def get(self, model: str, dim: int, n: int) -> tuple[bytes, bytes]:
        key = (model, dim, n)
        if key not in self._bodies:
            pool = self._pool(dim)
            items = ",".join('{"index":%d,"embedding":%s,"type":"text"}' % (i, pool[i % POOL]) for i in range(n))
            usage = json.dumps({"input_tokens": 8 * n + 6, "image_tokens": 0, "total_tokens": 8 * n + 6})
            head = ('{"output":{"embeddings":[' + items + ']},"usage":' + usage + ',"request_id":"').encode()
            self._bodies[key] = (head, b'"}')
        return self._bodies[key]


class Stats:
    def __init__(self, rpm: int | None, window: float):
        self.rpm, self.window = rpm, window
        self.counts: collections.Counter[str] = collections.Counter()
        self.accepted: collections.deque[float] = collections.deque()
        self.first_ok = self.last_ok = 0.0
        self.serial = 0

    def rate_ok(self) -> bool:
        if not self.rpm:
            return True
        now = time.monotonic()
        while self.accepted and self.accepted[0] <= now - self.window:
            self.accepted.popleft()
        if len(self.accepted) >= self.rpm:
            return False
        self.accepted.append(now)
        return True

    def json(self) -> bytes:
        return json.dumps({"requests": sum(self.counts.values()),
                           "served_seconds": round(self.last_ok - self.first_ok, 4), **self.counts}).encode()


def _response(status: int, body: bytes) -> bytes:
    reason = {200: b"OK", 401: b"Unauthorized", 404: b"Not Found", 400: b"Bad Request",
              429: b"Too Many Requests"}.get(status, b"Error")
    return (b"HTTP/1.1 %d %s\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n"
            % (status, reason, len(body))) + body


def _error(status: int, code: str, message: str) -> bytes:
    return _response(status, json.dumps({"code": code, "message": message, "request_id": "standin"}).encode())


class Connection(asyncio.Protocol):
    def __init__(self, key: str, answers: Answers, stats: Stats):
        self.auth = b"bearer " + key.encode()
        self.answers, self.stats = answers, stats
        self.buf = bytearray()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport) -> None:  # type: ignore[override]
        self.transport = transport
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def data_received(self, data: bytes) -> None:
        self.buf += data
        while True:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(self.buf[:end]).split(b"\r\n")
            length = 0
            auth = b""
            for line in head[1:]:
                name, _, value = line.partition(b":")
                name = name.strip().lower()
                if name == b"content-length":
                    length = int(value)
                elif name == b"authorization":
                    auth = value.strip()
            if len(self.buf) < end + 4 + length:
                return
            body = bytes(self.buf[end + 4:end + 4 + length])
            del self.buf[:end + 4 + length]
            method, path = (head[0].split(b" ") + [b"", b""])[:2]
            self.transport.write(self.answer(method, path, auth, body))

    def answer(self, method: bytes, path: bytes, auth: bytes, body: bytes) -> bytes:
        stats = self.stats
        if path == b"/_fake/stats":
            return _response(200, stats.json())
        if path == b"/_fake/reset":
            stats.__init__(stats.rpm, stats.window)
            return _response(200, b"{}")
        if path != PATH or method != b"POST":
            stats.counts["404"] += 1
            return _error(404, "NotFound", "no such path")
        if auth[:7].lower() + auth[7:] != self.auth:
            stats.counts["401"] += 1
            return _error(401, "InvalidApiKey", "Invalid API-key provided.")
        if not stats.rate_ok():
            stats.counts["429:rpm"] += 1
            return _error(429, "Throttling.RateQuota", "Requests rate limit exceeded, please try again later.")
        try:
            doc = json.loads(body)
            model = doc["model"]
            n = len(doc["input"]["contents"])
            dim = int((doc.get("parameters") or {}).get("dimension") or DEFAULT_DIMENSION.get(model, 1024))
        except (ValueError, KeyError, TypeError):
            stats.counts["400"] += 1
            return _error(400, "InvalidParameter", "the body is not a multimodal-embedding request")
        head, tail = self.answers.get(model, dim, n)
        stats.serial += 1
        now = time.monotonic()
        stats.first_ok = stats.first_ok or now
        stats.last_ok = now
        stats.counts["200"] += 1
        return _response(200, head + b"standin-%d" % stats.serial + tail)


def listening_socket(host: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(4096)
    return sock


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tests.servers.standin", description=__doc__.split("\n")[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0, help="0 picks a free port")
    p.add_argument("--key", required=True, help="the API key the server accepts")
    p.add_argument("--rpm", type=int, default=None, help="accept at most N requests per window, 429 beyond")
    p.add_argument("--window", type=float, default=60.0, help="the RPM window in seconds")
    args = p.parse_args(argv)
    sock = listening_socket(args.host, args.port)
    answers, stats = Answers(), Stats(args.rpm, args.window)

    async def serve() -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(lambda: Connection(args.key, answers, stats), sock=sock, backlog=4096)
        print(f"listening on http://{args.host}:{sock.getsockname()[1]}/api/v1", flush=True)
        await server.serve_forever()

    try:
        asyncio.run(serve())
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
