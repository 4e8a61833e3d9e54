"""A DashScope multimodal-embedding server on 127.0.0.1, for tests and benchmarks.

It speaks the wire protocol of `POST /api/v1/services/embeddings/multimodal-embedding/multimodal-embedding`
(see shared/reference/dashscope-multimodal-embedding.md): Bearer auth, `input.contents`,
`parameters.dimension` (else the model's default), fusion as each model does it, usage shaped per
model family, errors as `{"code", "message", "request_id"}`. Vectors are deterministic: seeded from
the sha256 of the content item and the dimension, L2-normalised, so a test can recompute them.

Faults are injected per request (`add_fault`), optionally only for bodies containing a marker:
429 with and without Retry-After, 500/503, slow answers, dropped connections, malformed JSON,
wrong vector length, a missing index, a NaN, an HTTP 200 with an error body, 401, 400; answers
that are JSON but not numbers (a 400-digit integer, `true`, a numeric string, 200k nested
brackets; `bad-usage`: good vectors with usage numbers a float cannot hold; `no-usage`: good vectors
and no usage at all); a server echoing the caller's key into every field (`echo-key`: request_id and usage
of a good answer; `echo-key-error`: code, message and request_id of a 400; `echo-key-cut`: a 400
whose HTML body holds the key where a 120-character snippet ends); a 307 redirect to
`location`.
Temporary storage (the SDK's `oss_utils` protocol): `GET /api/v1/uploads?action=getPolicy&model=M`
answers a policy whose `upload_host` is this server's `/_oss` (or `storage_host` when set); a form
POST there stores the file (`objects`), refusing a wrong signature, a key outside the policy's
upload_dir, an overwrite, or any Authorization header (the API key must never reach storage). An
`oss://` URL in a request needs `X-DashScope-OssResourceResolve: enable` and a stored object, and
embeds as the object's sha256, so the vectors do not change from one upload to the next. Upload
faults: `policy-refused` (403), `policy-500`, `storage-403` (an OSS XML error that echoes the
signature), `storage-500`.
`rpm=N, window=W` rejects requests beyond N per sliding window of W seconds with 429
Throttling.RateQuota, as the service does. The window and the log's times are read from `clock`
(an object with `now()`, e.g. the engine's `VirtualClock`; None: real monotonic time), so a test
can run a minute's quota in milliseconds with the client and the server on one clock.

In tests: `with serve(api_key=...) as server: server.base_url, server.add_fault(...), server.log`.
From the command line (benchmarks): `python -m tests.servers.dashscope_server --port 0 --rpm 120
--window 6` prints `listening on http://127.0.0.1:PORT/api/v1`; `GET /_fake/stats` returns counters.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import functools
import hashlib
import json
import socket
import sys
import threading
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Iterator

import numpy as np

PATH = "/api/v1/services/embeddings/multimodal-embedding/multimodal-embedding"
DEFAULT_KEY = "sk-fake-0123456789abcdef"

# The server's own model table (dimensions, default, how fusion works, usage shape). A test
# server must not borrow the client's catalog, or a wrong catalog row would pass its own test.
MODELS: dict[str, dict[str, Any]] = {
    "qwen3-vl-embedding": {"dims": [2560, 2048, 1536, 1024, 768, 512, 256], "default": 2560,
                           "fusion": "enable_fusion", "usage": "qwen3", "image_tokens": 1247},
    "qwen2.5-vl-embedding": {"dims": [2048, 1024, 768, 512], "default": 1024,
                             "fusion": "always", "usage": "qwen25", "image_tokens": 1247},
    "tongyi-embedding-vision-plus-2026-03-06": {"dims": [1152, 1024, 512, 256, 128, 64], "default": 1152,
                                                "fusion": "object", "usage": "tongyi", "image_tokens": 402},
    "tongyi-embedding-vision-flash-2026-03-06": {"dims": [768, 512, 256, 128, 64], "default": 768,
                                                 "fusion": "object", "usage": "tongyi", "image_tokens": 402},
    "tongyi-embedding-vision-plus": {"dims": [1152, 1024, 512, 256, 128, 64], "default": 1152,
                                     "fusion": None, "usage": "tongyi", "image_tokens": 402},
    "tongyi-embedding-vision-flash": {"dims": [768, 512, 256, 128, 64], "default": 768,
                                      "fusion": None, "usage": "tongyi", "image_tokens": 402},
    "multimodal-embedding-v1": {"dims": [1024], "default": 1024, "fusion": None, "usage": "v1",
                                "image_tokens": 1000},
}
MODALITIES = ("text", "image", "video", "multi_images")

# kind → (HTTP status, code, message); the body-shaped faults are handled in `_embed`.
ERROR_FAULTS: dict[str, tuple[int, str, str]] = {
    "429": (429, "Throttling", "Requests rate limit exceeded, please try again later."),
    "429-retry-after": (429, "Throttling.RateQuota", "Requests rate limit exceeded, please try again later."),
    "500": (500, "InternalError", "An internal error has occured, please try again later."),
    "503": (503, "ServiceUnavailable", "The service is temporarily unavailable."),
    "401": (401, "InvalidApiKey", "Invalid API-key provided."),
    "403": (403, "AccessDenied", "Access denied."),
    "400": (400, "InvalidParameter", "url error, please check url!"),
    "error-200": (200, "InternalError.Algo", "An algorithm error occurred."),
    # a message with Unicode line separators and raw HTML/Markdown, as a hostile or broken server may send
    "400-hostile": (400, "InvalidParameter", "bad input\u2028FAIL forged line\u2029ok   forged too "
                    "<img src=x onerror=alert(1)> <script>alert(2)</script> **bold** [link](http://evil.example) | a"),
}
BODY_FAULTS = ("slow", "drop", "malformed", "wrong-length", "missing-index", "nan",
               "huge-int", "true-number", "string-number", "deep-nesting", "echo-key", "echo-key-error", "redirect",
               "bad-usage", "echo-key-cut", "no-usage")
UPLOAD_FAULTS = ("policy-refused", "policy-500", "storage-403", "storage-500")
FAULT_KINDS = tuple(ERROR_FAULTS) + BODY_FAULTS + UPLOAD_FAULTS
# The policy's credentials (a test looks for them in every file and message the harness writes).
POLICY_SIGNATURE = "fakeSignatureTHATmustNOTleak="
POLICY_ACCESS_KEY_ID = "STS.fakeAccessKeyIdNOTtoLEAK"
POLICY_DOCUMENT = "eyJmYWtlLXBvbGljeSI6ICJkb2N1bWVudC1ub3QtdG8tbGVhayJ9"


def vector(item: Any, dimension: int) -> np.ndarray:
    """The deterministic unit vector the server returns for one content item (or fused group)."""
    return np.array(json.loads(_vector_json(_item_key(item), dimension)))


def _item_key(item: Any) -> str:
    return json.dumps(item, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


@functools.lru_cache(maxsize=8192)
def _vector_json(item_key: str, dimension: int) -> str:
    seed = int.from_bytes(hashlib.sha256(f"{item_key}|{dimension}".encode()).digest()[:8], "big")
    v = np.random.default_rng(seed).standard_normal(dimension)
    v /= np.linalg.norm(v)
    return json.dumps(v.tolist())


@dataclass
class Fault:
    kind: str
    times: int = 1                 # requests it applies to; -1 = every matching request
    match: str | None = None       # only bodies containing this text
    retry_after: float | None = None
    delay: float = 5.0             # for "slow"
    location: str | None = None    # for "redirect"


@dataclass
class Logged:
    t: float
    status: int
    model: str | None
    contents: int
    fault: str | None
    workspace: str | None
    body: dict | None = field(default=None, repr=False)


class FakeDashScope:
    """The ASGI app and its control handle (faults, latency, RPM mode, request log)."""

    def __init__(self, api_key: str = DEFAULT_KEY, *, latency: float = 0.0, rpm: int | None = None,
                 window: float = 60.0, keep_bodies: bool = True, vector_pool: int | None = None,
                 clock: Any = None):
        self.api_key = api_key
        self.clock = clock           # what `rpm`'s window and the log's times are read from (None: real time)
        self.vector_pool = vector_pool   # benchmarks: pick from N precomputed vectors (cheap, still deterministic)
        self.latency = latency
        self.rpm = rpm
        self.window = window
        self.keep_bodies = keep_bodies
        self.faults: list[Fault] = []
        self.log: list[Logged] = []
        self.counts: collections.Counter[str] = collections.Counter()
        self._accepted: collections.deque[float] = collections.deque()
        self.first_ok = self.last_ok = 0.0   # when the first and the last vectors were served
        self.in_flight = 0
        self._lock = threading.Lock()
        self.base_url = ""        # set by serve(): http://127.0.0.1:PORT/api/v1
        self.storage_host: str | None = None    # the policy's upload_host (default: this server's /_oss)
        self.objects: dict[str, bytes] = {}     # temporary storage: key → bytes
        self.upload_log: list[dict[str, Any]] = []   # {"kind": "policy"|"storage", "status", "auth", "model"}
        self._policies = 0

    # ---- control -------------------------------------------------------------------
    def add_fault(self, kind: str, times: int = 1, *, match: str | None = None,
                  retry_after: float | None = None, delay: float = 5.0, location: str | None = None) -> None:
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault {kind!r}; one of {', '.join(FAULT_KINDS)}")
        with self._lock:
            self.faults.append(Fault(kind, times, match, retry_after, delay, location))

    def reset(self) -> None:
        with self._lock:
            self.faults.clear()
            self.log.clear()
            self.counts.clear()
            self._accepted.clear()
            self.first_ok = self.last_ok = 0.0
            self.objects.clear()
            self.upload_log.clear()
            self.storage_host = None

    @property
    def url(self) -> str:
        return self.base_url + PATH.removeprefix("/api/v1")

    def served(self) -> list[Logged]:
        """Requests answered with vectors (status 200, no fault)."""
        return [r for r in self.log if r.status == 200 and r.fault is None]

    def stats(self) -> dict[str, Any]:
        return {"requests": len(self.log) if self.keep_bodies else sum(self.counts.values()),
                "served_seconds": round(self.last_ok - self.first_ok, 4), **dict(self.counts)}

    def _take_fault(self, raw: bytes, kinds: tuple[str, ...] | None = None) -> Fault | None:
        with self._lock:
            for f in self.faults:
                if (f.kind in UPLOAD_FAULTS) != (kinds is not None) or (kinds is not None and f.kind not in kinds):
                    continue
                if f.times != 0 and (f.match is None or f.match.encode() in raw):
                    if f.times > 0:
                        f.times -= 1
                    return f
        return None

    def now(self) -> float:
        return self.clock.now() if self.clock is not None else time.monotonic()

    def _rate_ok(self) -> bool:
        if not self.rpm:
            return True
        now = self.now()
        with self._lock:
            while self._accepted and self._accepted[0] <= now - self.window:
                self._accepted.popleft()
            if len(self._accepted) >= self.rpm:
                return False
            self._accepted.append(now)
            return True

    # ---- ASGI ----------------------------------------------------------------------
    async def __call__(self, scope, receive, send):
        if scope["type"] == "lifespan":
            while True:
                msg = await receive()
                if msg["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif msg["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        self.in_flight += 1
        try:
            await self._http(scope, receive, send)
        finally:
            self.in_flight -= 1

    def settle(self, timeout: float = 10.0) -> None:
        """Wait (bounded) until no request is being answered, e.g. a slow fault a client gave up on,
        so its log entry does not land in the next test's log."""
        deadline = time.monotonic() + timeout
        while self.in_flight and time.monotonic() < deadline:
            time.sleep(0.01)

    async def _http(self, scope, receive, send):
        raw = b""
        while True:
            msg = await receive()
            raw += msg.get("body", b"")
            if not msg.get("more_body"):
                break
        path = scope["path"]
        if path == "/_fake/stats":
            return await _respond(send, 200, json.dumps(self.stats()).encode())
        if path == "/_fake/reset" and scope["method"] == "POST":
            self.reset()
            return await _respond(send, 200, b"{}")
        if path == "/api/v1/uploads":
            return await self._policy(scope, send)
        if path == "/_oss":
            return await self._storage(scope, raw, send)
        if path != PATH:
            return await self._error(send, 404, "NotFound", f"no such path {path}", None, None, raw)
        if scope["method"] != "POST":
            return await self._error(send, 405, "MethodNotAllowed", "use POST", None, None, raw)
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        workspace = headers.get("x-dashscope-workspace")
        auth = headers.get("authorization", "")
        key = auth[7:] if auth.startswith("Bearer ") else headers.get("x-dashscope-apikey", "")
        try:
            body = json.loads(raw)
        except ValueError:
            body = None
        model = body.get("model") if isinstance(body, dict) else None

        def record(status: int, fault: str | None = None, n: int = 0) -> None:
            self.counts[str(status) if fault is None else f"{status}:{fault}"] += 1
            now = self.now()
            if status == 200 and fault is None:
                self.first_ok = self.first_ok or now
                self.last_ok = now
            if self.keep_bodies:
                self.log.append(Logged(now, status, model, n, fault, workspace, body))

        if key != self.api_key:
            record(401)
            return await _respond(send, 401, _err("InvalidApiKey", "Invalid API-key provided."))
        if not self._rate_ok():
            record(429, "rpm")
            return await _respond(send, 429, _err("Throttling.RateQuota", "Requests rate limit exceeded, "
                                                  "please try again later."))
        fault = self._take_fault(raw)
        if fault is not None and fault.kind in ERROR_FAULTS:
            status, code, message = ERROR_FAULTS[fault.kind]
            extra = []
            if fault.kind == "429-retry-after":
                extra.append((b"retry-after", str(fault.retry_after if fault.retry_after is not None else 1).encode()))
            record(status, fault.kind)
            return await _respond(send, status, _err(code, message), extra)
        if fault is not None and fault.kind == "redirect":
            record(307, "redirect")
            return await _respond(send, 307, b"", [(b"location", (fault.location or "http://127.0.0.1:9/").encode())])
        if fault is not None and fault.kind == "echo-key-error":
            record(400, "echo-key-error")
            return await _respond(send, 400, json.dumps({"code": key, "message": f"Bad key {key} in request",
                                                         "request_id": key}).encode())
        if fault is not None and fault.kind == "echo-key-cut":   # not JSON: the client's snippet cuts the key short
            record(400, "echo-key-cut")
            return await _respond(send, 400, b"<html>" + b"x" * 108 + key.encode() + b"</html>")
        if fault is not None and fault.kind == "deep-nesting":
            record(200, "deep-nesting")
            return await _respond(send, 200, b'{"output": {"embeddings": ' + b"[" * 200_000 + b"]" * 200_000 + b"}}")
        if self.latency:
            await asyncio.sleep(self.latency)
        if fault is not None and fault.kind == "slow":
            await asyncio.sleep(fault.delay)
        try:
            if isinstance(body, dict):
                body = self._resolve_oss(body, headers)
            answer, n = self._embed(body, fault.kind if fault else None, key)
        except _BadRequest as exc:
            record(exc.status, None)
            return await _respond(send, exc.status, _err(exc.code, exc.message))
        if fault is not None and fault.kind == "drop":
            record(200, "drop", n)
            await send({"type": "http.response.start", "status": 200,
                        "headers": [(b"content-type", b"application/json"),
                                    (b"content-length", str(len(answer)).encode())]})
            await send({"type": "http.response.body", "body": answer[: len(answer) // 3], "more_body": True})
            raise ConnectionAbortedError("fault: drop the connection mid-answer")
        if fault is not None and fault.kind == "malformed":
            answer = answer[: len(answer) // 2]
        record(200, fault.kind if fault else None, n)
        await _respond(send, 200, answer)

    # ---- temporary storage ---------------------------------------------------------------
    async def _policy(self, scope, send):
        from urllib.parse import parse_qs

        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        query = {k: v[0] for k, v in parse_qs(scope.get("query_string", b"").decode()).items()}
        auth = headers.get("authorization", "")
        entry = {"kind": "policy", "auth": bool(auth), "model": query.get("model")}
        self.upload_log.append(entry)
        if auth != f"Bearer {self.api_key}":
            entry["status"] = 401
            return await _respond(send, 401, _err("InvalidApiKey", "Invalid API-key provided."))
        if scope["method"] != "GET" or query.get("action") != "getPolicy" or not query.get("model"):
            entry["status"] = 400
            return await _respond(send, 400, _err("InvalidParameter", "action=getPolicy and model are required"))
        fault = self._take_fault(b"", ("policy-refused", "policy-500"))
        if fault is not None:
            entry["status"] = 403 if fault.kind == "policy-refused" else 500
            return await _respond(send, entry["status"], _err(
                "AccessDenied" if fault.kind == "policy-refused" else "InternalError",
                "Access to model denied." if fault.kind == "policy-refused" else "An internal error has occured."))
        with self._lock:
            self._policies += 1
            n = self._policies
        entry["status"] = 200
        host = self.storage_host or self.base_url.removesuffix("/api/v1") + "/_oss"
        data = {"policy": POLICY_DOCUMENT, "signature": POLICY_SIGNATURE,
                "upload_dir": f"dashscope-instant/fake/{n:04d}", "upload_host": host, "expire_in_seconds": 300,
                "max_file_size_mb": 100, "capacity_limit_mb": 999999, "oss_access_key_id": POLICY_ACCESS_KEY_ID,
                "x_oss_object_acl": "private", "x_oss_forbid_overwrite": "true"}
        await _respond(send, 200, json.dumps({"request_id": str(uuid.uuid4()), "data": data}).encode())

    async def _storage(self, scope, raw, send):
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        entry = {"kind": "storage", "auth": "authorization" in headers or "x-dashscope-apikey" in headers}
        self.upload_log.append(entry)

        async def refuse(status, code, message):
            entry["status"] = status
            body = (f"<?xml version=\"1.0\"?><Error><Code>{code}</Code><Message>{message}</Message>"
                    f"<SignatureProvided>{POLICY_SIGNATURE}</SignatureProvided>"
                    f"<OSSAccessKeyId>{POLICY_ACCESS_KEY_ID}</OSSAccessKeyId></Error>").encode()
            await _respond(send, status, body, content_type=b"application/xml")

        if scope["method"] != "POST":
            return await refuse(405, "MethodNotAllowed", "use POST")
        fault = self._take_fault(b"", ("storage-403", "storage-500"))
        if fault is not None:
            return await (refuse(403, "AccessDenied", "Invalid according to Policy: Policy expired.")
                          if fault.kind == "storage-403" else refuse(500, "InternalError", "Please try again."))
        if entry["auth"]:
            return await refuse(400, "KeySent", "an API key was sent to the storage host")
        form = _multipart(headers.get("content-type", ""), raw)
        if form is None or "file" not in form:
            return await refuse(400, "InvalidArgument", "not a multipart form with a file")
        if form.get("Signature") != POLICY_SIGNATURE.encode() \
                or form.get("OSSAccessKeyId") != POLICY_ACCESS_KEY_ID.encode() \
                or form.get("policy") != POLICY_DOCUMENT.encode():
            return await refuse(403, "SignatureDoesNotMatch", "The request signature we calculated does not match.")
        key = form.get("key", b"").decode()
        if not key.startswith("dashscope-instant/fake/") or form.get("success_action_status") != b"200":
            return await refuse(403, "AccessDenied", "Invalid according to Policy: key or status")
        with self._lock:
            if key in self.objects and form.get("x-oss-forbid-overwrite") == b"true":
                return await refuse(409, "FileAlreadyExists", "The object you specified already exists.")
            self.objects[key] = form["file"]
        entry["status"] = 200
        entry["key"] = key
        await _respond(send, 200, b"")

    def _resolve_oss(self, body: dict, headers: dict) -> dict:
        """oss:// URLs → `sha256:<hex of the object>`; a missing object or header is the service's 400."""
        def walk(v):
            if isinstance(v, str) and v.startswith("oss://"):
                if headers.get("x-dashscope-ossresourceresolve") != "enable":
                    raise _BadRequest(400, "InvalidParameter", "url error, please check url! (oss:// needs "
                                                               "X-DashScope-OssResourceResolve: enable)")
                data = self.objects.get(v[len("oss://"):])
                if data is None:
                    raise _BadRequest(400, "InvalidParameter", "url error, please check url! (no such object)")
                return "sha256:" + hashlib.sha256(data).hexdigest()
            if isinstance(v, list):
                return [walk(x) for x in v]
            if isinstance(v, dict):
                return {k: walk(x) for k, x in v.items()}
            return v
        return walk(body)

    async def _error(self, send, status, code, message, model, workspace, raw):
        self.counts[str(status)] += 1
        await _respond(send, status, _err(code, message))

    def _embed(self, body: Any, fault: str | None, caller_key: str = "") -> tuple[bytes, int]:
        if not isinstance(body, dict):
            raise _BadRequest(400, "InvalidParameter", "The request body is not valid JSON.")
        model = body.get("model")
        if not model:
            raise _BadRequest(400, "BadRequest.EmptyModel", "Required parameter(s) missing or invalid: model.")
        info = MODELS.get(model)
        if info is None:
            raise _BadRequest(400, "InvalidParameter", f"Model not exist: {model}")
        contents = (body.get("input") or {}).get("contents")
        if not contents or not isinstance(contents, list):
            raise _BadRequest(400, "BadRequest.EmptyInput", "Required input parameter missing from request.")
        params = body.get("parameters") or {}
        dim = params.get("dimension", info["default"])
        if dim not in info["dims"]:
            raise _BadRequest(400, "InvalidParameter",
                              f"Dimension {dim} is not supported; choose one of {info['dims']}.")
        items = [{"text": c} if isinstance(c, str) else c for c in contents]
        for it in items:
            if not isinstance(it, dict) or not it or any(k not in MODALITIES for k in it):
                raise _BadRequest(400, "InvalidParameter", "Each content item needs text, image, video "
                                                           "or multi_images.")
        fuse_all = info["fusion"] == "always" or (info["fusion"] == "enable_fusion" and params.get("enable_fusion"))
        if fuse_all:
            groups = [("fusion", items)]
        else:
            groups = [("fused" if len(it) > 1 and info["fusion"] == "object" else next(iter(it)), it)
                      for it in items]
        parts = []
        for index, (kind, item) in enumerate(groups):
            key = _item_key(item)
            if self.vector_pool:
                key = f"pool-{int(hashlib.sha256(key.encode()).hexdigest()[:8], 16) % self.vector_pool}"
            text = _vector_json(key, dim)
            if fault == "wrong-length":
                text = _vector_json(key, dim - 1)
            elif fault == "nan" and index == 0:
                text = "[NaN" + text[text.index(","):]
            elif fault in ("huge-int", "true-number", "string-number") and index == 0:
                first = {"huge-int": "9" * 400, "true-number": "true", "string-number": '"0.5"'}[fault]
                text = "[" + first + text[text.index(","):]
            parts.append('{"index":%d,"embedding":%s,"type":"%s"}' % (index, text, kind))
        if fault == "missing-index":
            parts = parts[:-1] if len(parts) > 1 else ['{"embedding":%s,"type":"text"}' % text]
        usage = _usage(info, items, len(groups))
        request_id = str(uuid.uuid4())
        if fault == "echo-key":
            usage = {**usage, caller_key: 1, "echo": f"billed to {caller_key}", "details": {"key": caller_key}}
            request_id = caller_key
        usage_json = json.dumps(usage)
        if fault == "bad-usage":   # good vectors, usage numbers no float holds: Infinity, 400 digits
            usage_json = '{"input_tokens": Infinity, "image_tokens": %s, "total_tokens": 7}' % ("9" * 400)
        usage_part = "" if fault == "no-usage" else ',"usage":' + usage_json   # a proxy that drops it
        answer = ('{"output":{"embeddings":[' + ",".join(parts) + ']}' + usage_part
                  + ',"request_id":' + json.dumps(request_id) + '}')
        return answer.encode(), len(groups)


class _BadRequest(Exception):
    def __init__(self, status: int, code: str, message: str):
        self.status, self.code, self.message = status, code, message


def _usage(info: dict, items: list[dict], vectors: int) -> dict[str, Any]:
    text = images = videos = 0
    for it in items:
        if "text" in it:
            text += max(1, len(str(it["text"]).encode()) // 4)
        if "image" in it:
            images += 1
        if "multi_images" in it:
            images += len(it["multi_images"] or [])
        if "video" in it:
            videos += 1
    image_tokens = info["image_tokens"] * (images + 8 * videos)
    shape = info["usage"]
    if shape == "qwen3":
        return {"input_tokens": text + 6, "image_tokens": image_tokens, "total_tokens": text + 6 + image_tokens}
    if shape == "qwen25":
        return {"input_tokens": text, "image_tokens": image_tokens}
    if shape == "v1":
        return {"input_tokens": text, "image_tokens": image_tokens, "image_count": images, "duration": 0}
    return {"input_tokens": text + image_tokens,
            "input_tokens_details": {"image_tokens": image_tokens, "text_tokens": text},
            "output_tokens": vectors, "total_tokens": text + image_tokens + vectors}


def _err(code: str, message: str) -> bytes:
    return json.dumps({"code": code, "message": message, "request_id": str(uuid.uuid4())}).encode()


def _multipart(content_type: str, raw: bytes) -> dict[str, bytes] | None:
    """A multipart/form-data body → {field name: bytes}; None when it is not one."""
    if not content_type.startswith("multipart/form-data") or "boundary=" not in content_type:
        return None
    boundary = b"--" + content_type.split("boundary=", 1)[1].strip('"').encode()
    form = {}
    for chunk in raw.split(boundary)[1:]:
        if chunk.startswith(b"--"):
            break
        head, _, value = chunk.removeprefix(b"\r\n").partition(b"\r\n\r\n")
        name = None
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"content-disposition"):
                for bit in line.split(b";"):
                    bit = bit.strip()
                    if bit.startswith(b"name="):
                        name = bit[5:].strip(b'"').decode()
        if name is not None:
            form[name] = value.removesuffix(b"\r\n")
    return form


async def _respond(send, status: int, body: bytes, extra: list | None = None,
                   content_type: bytes = b"application/json") -> None:
    headers = [(b"content-type", content_type), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers + (extra or [])})
    await send({"type": "http.response.body", "body": body})


def stage_payloads(folder, cell_id: str, requests: list[tuple[dict, list[str]]]) -> None:
    """Write payloads/<cell>/requests.jsonl + index.jsonl as the runner does (the output-folder contract)."""
    from pathlib import Path

    from harness.evidence import canonical_json, sha256_bytes

    d = Path(folder) / "payloads" / cell_id
    d.mkdir(parents=True, exist_ok=True)
    lines, bodies = [], []
    for n, (body, inputs) in enumerate(requests):
        data = canonical_json(body)
        name = f"{n:05d}.json"
        bodies.append(data + b"\n")
        given = body.get("input")
        contents = len(given.get("contents") or []) if isinstance(given, dict) else len(given or [])
        lines.append(json.dumps({"file": name, "sha256": sha256_bytes(data), "inputs": inputs,
                                 "contents": contents}) + "\n")
    (d / "index.jsonl").write_text("".join(lines))
    (d / "requests.jsonl").write_bytes(b"".join(bodies))


def text_requests(model: str, dimension: int | None, n_requests: int, per_request: int = 2,
                  prefix: str = "t", **parameters: Any) -> list[tuple[dict, list[str]]]:
    """`n_requests` bodies of `per_request` texts each, with input ids `<prefix><i>`."""
    out = []
    for r in range(n_requests):
        ids = [f"{prefix}{r * per_request + k}" for k in range(per_request)]
        params = dict(parameters)
        if dimension is not None:
            params["dimension"] = dimension
        body = {"model": model, "input": {"contents": [{"text": f"text number {i}"} for i in ids]}}
        if params:
            body["parameters"] = params
        out.append((body, ids))
    return out


def _tcp_socket() -> socket.socket:
    """A listening socket whose connections get TCP_NODELAY: asyncio sets it only when the socket's
    proto is IPPROTO_TCP, and a plain socket() has proto 0, which made every small answer wait
    ~40 ms for a delayed ACK (Nagle) and turned the benchmark into a measure of that."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    return sock


def _quick_server(config):
    """uvicorn's server, checking for shutdown every 10 ms instead of every 100 ms: a test that
    starts its own server should not spend a tenth of a second waiting for it to stop."""
    import uvicorn

    class QuickServer(uvicorn.Server):
        async def main_loop(self) -> None:
            counter = 0
            while not await self.on_tick(counter):
                counter = (counter + 1) % 864000
                await asyncio.sleep(0.01)

    return QuickServer(config)


@contextmanager
def serve(api_key: str = DEFAULT_KEY, **options: Any) -> Iterator[FakeDashScope]:
    """Run the server in a background thread on an ephemeral loopback port."""
    import uvicorn

    app = FakeDashScope(api_key, **options)
    sock = _tcp_socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, log_level="critical", access_log=False, lifespan="off",
                            timeout_keep_alive=30, timeout_graceful_shutdown=1)
    server = _quick_server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the fake DashScope server did not start")
        time.sleep(0.002)
    app.base_url = f"http://127.0.0.1:{port}/api/v1"
    try:
        yield app
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tests.servers.dashscope_server", description=__doc__.split("\n")[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000, help="0 picks a free port")
    p.add_argument("--key", default=DEFAULT_KEY, help="the API key the server accepts")
    p.add_argument("--latency", type=float, default=0.0, help="seconds added to every answer")
    p.add_argument("--rpm", type=int, default=None, help="accept at most N requests per window, 429 beyond")
    p.add_argument("--window", type=float, default=60.0, help="the RPM window in seconds (scaled-down minute)")
    p.add_argument("--vector-pool", type=int, default=None, metavar="N",
                   help="answer with one of N precomputed vectors per dimension (fast, for benchmarks)")
    p.add_argument("--fault", action="append", default=[], metavar="KIND[:TIMES]",
                   help=f"inject a fault ({', '.join(FAULT_KINDS)}); TIMES -1 = always")
    args = p.parse_args(argv)
    import uvicorn

    app = FakeDashScope(args.key, latency=args.latency, rpm=args.rpm, window=args.window, keep_bodies=False,
                        vector_pool=args.vector_pool)
    for spec in args.fault:
        kind, _, times = spec.partition(":")
        app.add_fault(kind, int(times or 1))
    sock = _tcp_socket()
    sock.bind((args.host, args.port))
    sock.listen(2048)  # connections made before uvicorn is up wait in the backlog instead of being refused
    print(f"listening on http://{args.host}:{sock.getsockname()[1]}/api/v1", flush=True)
    uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off")).run(sockets=[sock])
    return 0


if __name__ == "__main__":
    sys.exit(main())
