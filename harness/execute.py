"""Send a staged run's payload files and collect what comes back: the only step on the network.

It knows no wire protocol: a provider (`harness.providers`) turns a body into vectors or a typed
`ProviderError`. This module owns everything around that call:

- bounded concurrency (one worker per slot, one shared client: `ClientPool`, httpx underneath);
- a client-side limiter per model for requests and input tokens per minute, defaulting to the
  catalog's quota, that spaces requests evenly (the service also enforces RPM/60 per second, so
  bursts get throttled even under the minute's quota);
- retries with exponential backoff and jitter, honouring Retry-After, a bounded number of
  attempts; a throttle pauses the whole model, not only the worker that saw it;
- an early stop when an error will fail every request (bad key, unknown model, wrong URL);
- a content-addressed response cache (`harness.cache`), written as each answer arrives, so an
  interrupted run (Ctrl-C, SIGTERM, kill -9) loses nothing received and a re-run sends only what
  is missing;
- the evidence of the output-folder contract: `vectors/<cell>.npy` + `.ids.json`,
  `responses/<cell>.jsonl` and `execution.json`, written through `harness.folder.RunWriter`.

Vectors are kept for the inputs that came back: when a request failed, its inputs have no row and
`ids.json` lists only the inputs that do (row i ↔ ids[i] always holds), and `execution.json` and
the checks say how many are missing. Nothing is padded, so no file looks whole when it is not.
"""

from __future__ import annotations

import asyncio
import base64
import collections
import json
import random
import signal
import threading
import time
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from harness.cache import ResponseCache, cache_key, default_cache_dir
from harness.evidence import sha256_bytes
from harness.folder import CellExecution, CellVectors, Execution, FolderError, RunReader, RunWriter, layout
from harness.progress import RunProgress
from harness.providers.base import NotExecutable, ProviderError
from harness.verdict import CheckResult

MAX_RETRY_AFTER = 300.0   # a Retry-After longer than this is a misconfigured server, not advice
SHOWN_FAILURES = 5        # failures listed per cell in execution.json and the checks


@dataclass
class ExecuteOptions:
    """How to execute. Quotas: None → the catalog's for the model, 0 → no limit."""

    concurrency: int = 8
    rpm: int | None = None
    tpm: int | None = None
    timeout: float = 60.0
    max_attempts: int = 5
    cache_dir: Path = field(default_factory=default_cache_dir)
    use_cache: bool = True
    refresh: bool = False
    quiet: bool = False
    workspace: str | None = None
    backoff_base: float = 0.5        # first retry waits about this long, doubling each time
    backoff_max: float = 30.0
    quota_window: float = 60.0       # seconds the rpm/tpm quota is counted over (tests scale it down)
    quota_headroom: float = 0.98     # share of the quota the limiter aims at
    http_client: Any = field(default=None, repr=False, compare=False)  # set by execute_run


@dataclass
class CellOutcome:
    """What happened to one cell; `to_record()` is its entry in execution.json."""

    id: str
    model: str | None
    provider: str | None
    required: bool
    executed: bool
    reason: str | None = None
    requests: int = 0
    ok: int = 0
    failed: int = 0
    not_sent: int = 0
    cache_hits: int = 0
    attempts: int = 0            # HTTP requests made, retries included
    retries: int = 0
    throttled: int = 0
    expected_vectors: int = 0
    vectors: int = 0
    dimension: int | None = None
    wrong_dimension: int = 0     # requests refused because a vector had the wrong length
    norms: dict[str, float] | None = None
    usage: dict[str, Any] = field(default_factory=dict)
    estimated_cost: dict[str, Any] | None = None
    failures: list[dict[str, Any]] = field(default_factory=list)

    def to_record(self) -> CellExecution:
        return CellExecution(
            id=self.id, model=self.model, provider=self.provider, required=self.required,
            executed=self.executed, reason=self.reason,
            requests={"total": self.requests, "ok": self.ok, "failed": self.failed,
                      "not_sent": self.not_sent, "cache_hits": self.cache_hits,
                      "http_attempts": self.attempts, "retries": self.retries,
                      "throttled": self.throttled},
            vectors=self.vectors, expected_vectors=self.expected_vectors,
            dimension=self.dimension, norms=self.norms, usage=self.usage,
            estimated_cost=self.estimated_cost, failures=self.failures[:SHOWN_FAILURES])


@dataclass
class ExecutionSummary:
    cells: list[CellOutcome]
    checks: list[CheckResult]
    fatal: ProviderError | None = None
    fatal_cell: str | None = None
    elapsed: float = 0.0

    @property
    def ok(self) -> bool:
        return self.fatal is None and all(c.passed for c in self.checks)

    @property
    def attempts(self) -> int:
        return sum(c.attempts for c in self.cells)

    @property
    def cache_hits(self) -> int:
        return sum(c.cache_hits for c in self.cells)

    @property
    def retries(self) -> int:
        return sum(c.retries for c in self.cells)

    @property
    def throttled(self) -> int:
        return sum(c.throttled for c in self.cells)


# ---- rate limiting -------------------------------------------------------------------------

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


# ---- tokens and cost -----------------------------------------------------------------------

def estimate_body_tokens(body: dict[str, Any], info: Any) -> int:
    """Input tokens one body will likely cost, for the TPM limiter (corrected by actual usage)."""
    from harness import estimate
    return max(1, sum(estimate.body_tokens(body, info).values()))


def usage_tokens(usage: dict[str, Any]) -> dict[str, int]:
    """Input tokens by modality from a usage object, whichever shape the model reports."""
    def num(x: Any) -> int:
        return int(x) if isinstance(x, (int, float)) and not isinstance(x, bool) else 0
    details = usage.get("input_tokens_details")
    if isinstance(details, dict):
        image = num(details.get("image_tokens")) + num(details.get("video_tokens"))
        text = num(details.get("text_tokens")) or max(0, num(usage.get("input_tokens")) - image)
    else:
        text = num(usage.get("input_tokens")) or num(usage.get("prompt_tokens"))
        image = num(usage.get("image_tokens")) + num(usage.get("video_tokens"))
    return {"text": text, "image": image}


def _add_usage(total: dict[str, Any], usage: dict[str, Any]) -> None:
    """Sum every numeric field, nested ones too (`input_tokens_details`)."""
    for k, v in usage.items():
        if isinstance(v, bool):
            continue
        if isinstance(v, (int, float)):
            total[k] = total.get(k, 0) + v
        elif isinstance(v, dict):
            _add_usage(total.setdefault(k, {}), v)


# ---- the run -------------------------------------------------------------------------------

@dataclass
class _Request:
    cell: "_Cell"
    file: str
    path: Path
    sha256: str | None
    inputs: list[str]
    row0: int                       # first row of this request's inputs in the cell's matrix
    record: dict[str, Any] = field(default_factory=dict)


@dataclass
class _Cell:
    spec: dict[str, Any]
    outcome: CellOutcome
    requests: list[_Request] = field(default_factory=list)
    provider: Any = None
    limiter: RateLimiter | None = None
    info: Any = None
    matrix: np.ndarray | None = None
    received: np.ndarray | None = None
    tokens: dict[str, int] = field(default_factory=lambda: {"text": 0, "image": 0})


def execute_run(folder: Path, cells: list[dict], options: ExecuteOptions | None = None,
                console: Any = None) -> ExecutionSummary:
    """Execute every cell's payloads in `folder` and write the execution evidence there.

    A cell that cannot run here (no key, optional package missing) is reported, not fatal.
    Ctrl-C and SIGTERM raise KeyboardInterrupt after the cache holds every answer received;
    nothing is written to `folder` then (the runner discards its staging folder).
    """
    options = options or ExecuteOptions()
    folder = Path(folder)
    started = time.monotonic()
    catalog = _catalog()
    run_cells = [_load_cell(folder, spec, catalog) for spec in cells]
    cache = ResponseCache(options.cache_dir, enabled=options.use_cache, refresh=options.refresh)
    progress = RunProgress(console, quiet=options.quiet)
    state: dict[str, Any] = {"fatal": None, "fatal_cell": None, "terminated": False}
    try:
        asyncio.run(_execute(run_cells, options, cache, progress, state))
    except asyncio.CancelledError:
        if state["terminated"]:
            raise KeyboardInterrupt("terminated (SIGTERM)") from None
        raise
    finally:
        progress.stop()

    for cell in run_cells:
        _finish_cell(folder, cell, catalog)
    summary = ExecutionSummary(cells=[c.outcome for c in run_cells], checks=[], fatal=state["fatal"],
                               fatal_cell=state["fatal_cell"], elapsed=time.monotonic() - started)
    summary.checks = _checks(run_cells, summary)
    RunWriter(folder).execution(Execution(cells=[c.outcome.to_record() for c in run_cells],
                                          fatal=_error_json(summary.fatal) if summary.fatal else None))
    return summary


def _catalog() -> Any:
    try:
        from harness.catalog import load_catalog
        return load_catalog()
    except ImportError:  # pragma: no cover - the catalog ships with the package
        return None


def _load_cell(folder: Path, spec: dict[str, Any], catalog: Any) -> _Cell:
    cid = spec["id"]
    outcome = CellOutcome(id=cid, model=spec.get("model"), provider=spec.get("provider"),
                          required=bool(spec.get("required", True)), executed=True,
                          dimension=spec.get("dimension"))
    cell = _Cell(spec=spec, outcome=outcome)
    cell.info = catalog.get(spec.get("model")) if catalog is not None and spec.get("model") else None
    reader = RunReader(folder)
    if not reader.has(layout.payload_index(cid)):
        outcome.executed, outcome.reason = False, f"no payload index at {layout.payload_index(cid)}"
        return cell
    try:
        entries = reader.payload_index(cid)
    except FolderError as exc:
        outcome.executed, outcome.reason = False, f"{exc}; run the plan again"
        return cell
    row = 0
    for entry in entries:
        path = folder / layout.payload_dir(cid) / entry["file"]
        inputs = list(entry.get("inputs") or [])
        cell.requests.append(_Request(cell, entry["file"], path, entry.get("sha256"), inputs, row))
        row += len(inputs)
    outcome.requests = len(cell.requests)
    outcome.expected_vectors = row
    return cell


async def _execute(cells: list[_Cell], options: ExecuteOptions, cache: ResponseCache,
                   progress: RunProgress, state: dict[str, Any]) -> None:
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    previous_term = None
    if threading.current_thread() is threading.main_thread():
        def on_term() -> None:
            state["terminated"] = True
            task.cancel()
        try:
            previous_term = signal.getsignal(signal.SIGTERM)
            loop.add_signal_handler(signal.SIGTERM, on_term)
        except (NotImplementedError, RuntimeError, ValueError):  # pragma: no cover - Windows
            previous_term = None
    client = ClientPool(options.concurrency, options.timeout)
    provider_options = replace(options, http_client=client)
    limiters: dict[str, RateLimiter] = {}
    try:
        from harness.providers.registry import provider_class
        for cell in cells:
            if not cell.outcome.executed:
                continue
            try:
                cls = provider_class(cell.spec.get("provider") or "dashscope")
                cell.provider = cls.from_cell(cell.spec, provider_options)
            except NotExecutable as exc:
                cell.outcome.executed, cell.outcome.reason = False, str(exc)
                continue
            except (KeyError, ImportError) as exc:
                cell.outcome.executed = False
                cell.outcome.reason = f"provider {cell.spec.get('provider')!r} is not available here ({exc})"
                continue
            dim = cell.spec.get("dimension")
            if dim:
                cell.matrix = np.zeros((cell.outcome.expected_vectors, int(dim)), dtype=np.float32)
            cell.received = np.zeros(cell.outcome.expected_vectors, dtype=bool)
            name = cell.spec.get("model") or cell.spec["id"]
            if name not in limiters:
                rpm = options.rpm if options.rpm is not None else getattr(cell.info, "rpm", None)
                tpm = options.tpm if options.tpm is not None else getattr(cell.info, "tpm", None)
                limiters[name] = RateLimiter(rpm or None, tpm or None, options.quota_window,
                                             options.quota_headroom)
            cell.limiter = limiters[name]

        queue: list[_Request] = [r for c in cells if c.provider is not None for r in c.requests]
        progress.start(len(queue))
        pending = iter(queue)

        async def worker() -> None:
            for request in pending:
                if state["fatal"] is not None:
                    return
                await _process(request, options, cache, progress, state)

        workers = [asyncio.create_task(worker()) for _ in range(max(1, min(options.concurrency, len(queue))))]
        try:
            await asyncio.gather(*workers)
        finally:
            for w in workers:
                w.cancel()
        for request in queue:
            if not request.record:
                request.cell.outcome.not_sent += 1
                request.record = _record(request, error={"code": "NotSent", "message":
                                         "not sent: the run stopped early after a fatal error"})
    finally:
        for cell in cells:
            if cell.provider is not None:
                try:
                    await cell.provider.aclose()
                except Exception:  # pragma: no cover - closing must not hide the real outcome
                    pass
        await client.aclose()
        if previous_term is not None:
            # asyncio would leave SIG_DFL behind; give back the caller's handler (the CLI's)
            loop.remove_signal_handler(signal.SIGTERM)
            signal.signal(signal.SIGTERM, previous_term)


def _record(request: _Request, **fields: Any) -> dict[str, Any]:
    base = {"file": request.file, "request_id": None, "status": None, "attempts": 0, "latency_ms": None,
            "cache_hit": False, "usage": None, "error": None}
    base.update(fields)
    return base


def _error_json(exc: ProviderError) -> dict[str, Any]:
    return {"status": exc.status, "code": exc.code, "message": exc.message, "request_id": exc.request_id}


async def _process(request: _Request, options: ExecuteOptions, cache: ResponseCache,
                   progress: RunProgress, state: dict[str, Any]) -> None:
    cell, out = request.cell, request.cell.outcome
    expected = len(request.inputs)
    try:
        data = request.path.read_bytes()
    except OSError as exc:
        return _fail(request, progress, {"code": "PayloadMissing", "message": f"cannot read {request.file}: "
                                         f"{exc.strerror or exc}"})
    if request.sha256 and sha256_bytes(data) != request.sha256:
        return _fail(request, progress, {"code": "PayloadChanged", "message": f"{request.file} does not match "
                                         "the sha256 in index.jsonl; run the plan again"})
    body = json.loads(data)
    endpoint = getattr(cell.provider, "endpoint", cell.spec.get("endpoint"))
    key = cache_key(endpoint, body) if cache.enabled else ""
    hit = cache.get(key) if key else None
    if hit is not None:
        vectors = _decode(hit)
        if vectors is not None and vectors.shape[0] == expected and _dim_ok(cell, vectors):
            _accept(request, vectors, hit.get("usage") or {})
            out.cache_hits += 1
            request.record = _record(request, request_id=hit.get("request_id"), status=hit.get("status"),
                                     cache_hit=True, usage=hit.get("usage"))
            progress.advance(cached=True)
            return

    tokens = estimate_body_tokens(body, cell.info) if cell.limiter.token_rate else 0
    attempt = 0
    while True:
        attempt += 1
        slot = await cell.limiter.acquire(tokens)
        out.attempts += 1
        t0 = time.perf_counter()
        try:
            got = await cell.provider.send(body, expected)
        except ProviderError as exc:
            RateLimiter.release(slot)
            latency = round((time.perf_counter() - t0) * 1000, 1)
            if exc.fatal:
                if state["fatal"] is None:
                    state["fatal"], state["fatal_cell"] = exc, cell.spec["id"]
                return _fail(request, progress, _error_json(exc), attempts=attempt, latency_ms=latency)
            if exc.retryable and attempt < options.max_attempts and state["fatal"] is None:
                delay = backoff_delay(attempt, options, exc.retry_after)
                out.retries += 1
                out.throttled += bool(exc.throttled)
                if exc.throttled:
                    cell.limiter.hold(delay)
                progress.retry(throttled=bool(exc.throttled))
                await asyncio.sleep(delay)
                continue
            if exc.code == "WrongDimension":
                out.wrong_dimension += 1
            error = _error_json(exc)
            if exc.retryable:
                error["message"] = f"{exc.message} (gave up after {attempt} attempts)"
            return _fail(request, progress, error, attempts=attempt, latency_ms=latency,
                         status=exc.status)
        finally:
            RateLimiter.release(slot)  # also when cancelled: a later request must not wait forever
        latency = round((time.perf_counter() - t0) * 1000, 1)
        vectors = np.asarray(got.vectors, dtype=np.float64)
        if vectors.ndim != 2 or vectors.shape[0] != expected or not _dim_ok(cell, vectors):
            out.wrong_dimension += 1
            return _fail(request, progress, {"code": "WrongDimension", "status": got.status,
                                             "request_id": got.request_id,
                                             "message": f"got vectors of shape {vectors.shape}, expected "
                                                        f"({expected}, {cell.spec.get('dimension')})"},
                         attempts=attempt, latency_ms=latency, status=got.status)
        usage = dict(got.usage or {})
        if usage and cell.limiter.token_rate:
            actual = sum(usage_tokens(usage).values())
            if actual:
                cell.limiter.correct(actual - tokens)
        if key:
            cache.put(key, {"endpoint": endpoint, "shape": list(vectors.shape), "dtype": "<f8",
                            "vectors": base64.b64encode(vectors.astype("<f8").tobytes()).decode("ascii"),
                            "usage": usage, "request_id": got.request_id, "status": got.status,
                            "fetched_at": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")})
        _accept(request, vectors, usage)
        request.record = _record(request, request_id=got.request_id, status=got.status, attempts=attempt,
                                 latency_ms=latency, usage=usage)
        progress.advance()
        return


def _dim_ok(cell: _Cell, vectors: np.ndarray) -> bool:
    dim = cell.spec.get("dimension")
    return vectors.ndim == 2 and (not dim or vectors.shape[1] == int(dim))


def _decode(hit: dict[str, Any]) -> np.ndarray | None:
    try:
        raw = base64.b64decode(hit["vectors"], validate=True)
        vectors = np.frombuffer(raw, dtype=hit.get("dtype", "<f8")).reshape(hit["shape"])
    except (KeyError, TypeError, ValueError):
        return None
    return vectors if np.isfinite(vectors).all() else None


def _accept(request: _Request, vectors: np.ndarray, usage: dict[str, Any]) -> None:
    cell, out = request.cell, request.cell.outcome
    if cell.matrix is None:  # a cell without a declared dimension takes the first answer's
        cell.matrix = np.zeros((out.expected_vectors, vectors.shape[1]), dtype=np.float32)
        out.dimension = int(vectors.shape[1])
    rows = slice(request.row0, request.row0 + vectors.shape[0])
    cell.matrix[rows] = vectors
    cell.received[rows] = True
    out.ok += 1
    _add_usage(out.usage, usage)
    for k, v in usage_tokens(usage).items():
        cell.tokens[k] += v


def _fail(request: _Request, progress: RunProgress, error: dict[str, Any], **fields: Any) -> None:
    out = request.cell.outcome
    out.failed += 1
    out.failures.append({"file": request.file, **{k: error.get(k) for k in ("status", "code", "message",
                                                                             "request_id")}})
    request.record = _record(request, error=error, **fields)
    progress.advance(failed=True)


# ---- evidence and checks -------------------------------------------------------------------

def _finish_cell(folder: Path, cell: _Cell, catalog: Any) -> None:
    out = cell.outcome
    if not out.executed:
        return
    cid = cell.spec["id"]
    writer = RunWriter(folder)
    writer.responses(cid, [r.record for r in cell.requests])
    ids = [i for r in cell.requests for i in r.inputs]
    if cell.matrix is None or cell.received is None:
        return
    keep = cell.received
    matrix = cell.matrix[keep]
    out.vectors = int(matrix.shape[0])
    out.dimension = int(cell.matrix.shape[1])
    if out.vectors:
        norms = np.linalg.norm(matrix.astype(np.float64), axis=1)
        out.norms = {"min": round(float(norms.min()), 6), "mean": round(float(norms.mean()), 6),
                     "max": round(float(norms.max()), 6)}
    writer.vectors(cid, CellVectors([i for i, k in zip(ids, keep) if k], matrix))
    if cell.info is not None and getattr(cell.info, "prices", None):
        from harness import estimate
        amount = estimate.cost(cell.info, cell.tokens)
        out.estimated_cost = {"amount": round(amount, 6), "currency": getattr(catalog, "currency", "CNY"),
                              "tokens": dict(cell.tokens), "basis": "usage returned × catalog prices"}


def _checks(cells: list[_Cell], summary: ExecutionSummary) -> list[CheckResult]:
    results: list[CheckResult] = []
    fatal = summary.fatal
    for cell in cells:
        out = cell.outcome
        cid = out.id
        if not out.executed:
            # A required cell that did not run fails; any other is a skip, never a pass.
            data = {"executed": False, "reason": out.reason}
            results.append(CheckResult("execution", not out.required, f"not executed: {out.reason}"
                                       + ("" if out.required else " (optional cell, so the run goes on)"),
                                       cell=cid, kind="execution", data=data,
                                       status="fail" if out.required else "skip"))
            continue
        data = {"requests": out.requests, "ok": out.ok, "failed": out.failed, "not_sent": out.not_sent,
                "cache_hits": out.cache_hits, "retries": out.retries, "throttled": out.throttled}
        notes = []
        if out.cache_hits:
            notes.append(f"{out.cache_hits} from cache")
        if out.retries:
            notes.append(f"{out.retries} retries, {out.throttled} throttled")
        note = f" ({', '.join(notes)})" if notes else ""
        if out.ok == out.requests:
            results.append(CheckResult("execution", True, f"all {out.requests} requests succeeded{note}",
                                       cell=cid, kind="execution", data=data))
        else:
            bits = []
            if out.failed:
                first = out.failures[0]
                what = ": ".join(str(x) for x in (f"HTTP {first['status']}" if first.get("status") else None,
                                                  first.get("code"), first.get("message")) if x)
                rid = f" request_id={first['request_id']}" if first.get("request_id") else ""
                bits.append(f"{out.failed} of {out.requests} requests failed (first: {first['file']}: {what}{rid})")
            if out.not_sent:
                why = f"stopped early: {fatal.describe()}" if fatal else "stopped early"
                bits.append(f"{out.not_sent} not sent ({why})")
            results.append(CheckResult("execution", False, "; ".join(bits) + note, cell=cid, kind="execution",
                                       data=data))
        dim = out.dimension
        if out.wrong_dimension:
            results.append(CheckResult("dimensions", False, f"{out.wrong_dimension} requests answered with "
                                       f"vectors that are not {dim} long", cell=cid, kind="execution"))
        elif out.vectors == 0:
            results.append(CheckResult("dimensions", False, "no vectors came back", cell=cid, kind="execution"))
        else:
            missing = out.expected_vectors - out.vectors
            extra = f"; {missing} inputs have none" if missing else ""
            results.append(CheckResult("dimensions", True, f"{out.vectors} vectors of {dim} floats, as "
                                       f"requested{extra}", cell=cid, kind="execution",
                                       data={"vectors": out.vectors, "dimension": dim, "norms": out.norms}))
    return results
