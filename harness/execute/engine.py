"""Send a staged run's payload files and collect what comes back: the only step on the network.

It knows no wire protocol: a provider (`harness.providers`) turns a body into vectors or a typed
`ProviderError`, estimates a body's input tokens (`tokens`) and cleans what it answered (`clean`).
This module owns everything around that call:

- bounded concurrency (one worker per slot, one shared client: `ClientPool`, httpx underneath);
  `concurrency` is per server: a model with several replicas (`harness.providers.replicas`) gets
  that many in flight at each;
- a client-side limiter per model (`RateLimiter`) for requests and input tokens per minute,
  defaulting to the catalog's quota;
- retries with exponential backoff and jitter, honouring Retry-After, a bounded number of
  attempts; a throttle pauses the whole model, not only the worker that saw it; every such wait
  is on `options.clock` (real time unless a test or a simulation gives a `limiter.VirtualClock`);
- an early stop when an error will fail every request (bad key, unknown model, wrong URL);
- a content-addressed response cache (`harness.execute.cache`, one SQLite file), written in batches, so an
  interrupted run loses nothing received (Ctrl-C, SIGTERM) or at most its last batch (kill -9) and a
  re-run sends only what is missing. An answer read back from the cache is cleaned by the provider like a fresh one: an
  entry written before answers were scrubbed, or by someone else, may hold an echoed key;
- the evidence of the output-folder contract (`harness.execute.results`).
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import signal
import threading
import time
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from harness.catalog.load import Catalog, load_catalog
from harness.evidence import sha256_bytes
from harness.execute.cache import ResponseCache, cache_key
from harness.execute.clients import ClientPool
from harness.execute.limiter import RateLimiter, backoff_delay, clock_of
from harness.execute.options import ExecuteOptions
from harness.execute.progress import RunProgress
from harness.execute.results import CellOutcome, ExecutionSummary, add_usage, execution_checks, write_cell_evidence
from harness.folder import Execution, FolderError, RunReader, RunWriter, layout
from harness.folder.usage import usage_tokens
from harness.providers.base import Embedded, NotExecutable, ProviderError
from harness.providers.registry import provider_class

# ---- the run -------------------------------------------------------------------------------

@dataclass
class _Request:
    cell: "_Cell"
    file: str
    path: Path
    sha256: str | None
    inputs: list[str]
    row0: int                       # first row of this request's inputs in the cell's matrix
    span: tuple[int, int]           # (offset, length) of the body in `path`, the cell's requests.jsonl
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
    gate: asyncio.Semaphore | None = None   # this cell's requests in flight, when workers outnumber them

    @property
    def servers(self) -> int:
        return max(1, len(self.spec.get("replicas") or []))


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
    catalog = load_catalog()
    run_cells = [_load_cell(folder, spec, catalog) for spec in cells]
    cache = ResponseCache(options.cache_dir, enabled=options.use_cache, refresh=options.refresh,
                          now=clock_of(options).now)
    progress = RunProgress(console, quiet=options.quiet)
    state: dict[str, Any] = {"fatal": None, "fatal_cell": None, "terminated": False}
    try:
        asyncio.run(_execute(run_cells, options, cache, progress, state))
    except asyncio.CancelledError:
        if state["terminated"]:
            raise KeyboardInterrupt("terminated (SIGTERM)") from None
        raise
    finally:
        cache.close()           # the last batch of answers, also at an interrupt
        progress.stop()

    for cell in run_cells:
        write_cell_evidence(folder, cell, catalog)
    summary = ExecutionSummary(cells=[c.outcome for c in run_cells], checks=[], fatal=state["fatal"],
                               fatal_cell=state["fatal_cell"], elapsed=time.monotonic() - started)
    summary.checks = execution_checks(run_cells, summary)
    RunWriter(folder).execution(Execution(cells=[c.outcome.to_record() for c in run_cells],
                                          fatal=_error_json(summary.fatal) if summary.fatal else None))
    return summary


def _load_cell(folder: Path, spec: dict[str, Any], catalog: Catalog) -> _Cell:
    cid = spec["id"]
    outcome = CellOutcome(id=cid, model=spec.get("model"), provider=spec.get("provider"),
                          required=bool(spec.get("required", True)), executed=True,
                          dimension=spec.get("dimension"))
    cell = _Cell(spec=spec, outcome=outcome)
    cell.info = catalog.get(spec.get("model")) if spec.get("model") else None
    reader = RunReader(folder)
    if not reader.has(layout.payload_index(cid)):
        outcome.executed, outcome.reason = False, f"no payload index at {layout.payload_index(cid)}"
        return cell
    try:
        entries = reader.payload_index(cid)
    except FolderError as exc:
        outcome.executed, outcome.reason = False, f"{exc}; run the plan again"
        return cell
    path = folder / layout.payload_bodies(cid)      # line N is request N's body (evidence format 3)
    try:
        spans = reader.payload_spans(cid)
    except FolderError as exc:
        outcome.executed, outcome.reason = False, f"{exc}; run the plan again"
        return cell
    if len(spans) != len(entries):
        outcome.executed, outcome.reason = False, (f"{layout.payload_bodies(cid)} holds {len(spans)} bodies for "
                                                   f"{len(entries)} requests; run the plan again")
        return cell
    row = 0
    for entry, span in zip(entries, spans):
        inputs = list(entry.get("inputs") or [])
        cell.requests.append(_Request(cell, entry["file"], path, entry.get("sha256"), inputs, row, span))
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
    servers = max((c.servers for c in cells if c.outcome.executed), default=1)
    slots = max(1, options.concurrency) * servers
    client = ClientPool(slots, options.timeout)
    clock = clock_of(options)      # read now, not at import: a test may have put the default on virtual time
    provider_options = replace(options, http_client=client, clock=clock)
    limiters: dict[str, RateLimiter] = {}
    try:
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
                # no quota given and none published: adapt to the throttles (an explicit 0 means no limit)
                limiters[name] = RateLimiter(rpm or None, tpm or None, options.quota_window,
                                             options.quota_headroom, adaptive=rpm is None, clock=clock)
            cell.limiter = limiters[name]

        queue: list[_Request] = [r for c in cells if c.provider is not None for r in c.requests]
        for cell in cells:
            if cell.provider is not None and cell.servers < servers:
                cell.gate = asyncio.Semaphore(max(1, options.concurrency) * cell.servers)
        progress.start(len(queue))
        pending = iter(queue)

        async def worker() -> None:
            for request in pending:
                if state["fatal"] is not None:
                    return
                gate = request.cell.gate
                began = clock.now()
                if gate is None:
                    await _process(request, options, cache, progress, state)
                else:
                    async with gate:
                        await _process(request, options, cache, progress, state)
                request.cell.outcome.timed(began, clock.now())

        workers = [asyncio.create_task(worker()) for _ in range(max(1, min(slots, len(queue))))]
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
        data = _read(request.path, request.span)
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
            kept = cell.provider.clean(Embedded(vectors=[], usage=hit.get("usage") or {},
                                                request_id=hit.get("request_id"), status=hit.get("status")))
            _accept(request, vectors, kept.usage)
            out.cache_hits += 1
            request.record = _record(request, request_id=kept.request_id, status=hit.get("status"),
                                     cache_hit=True, usage=kept.usage if hit.get("usage") is not None else None)
            progress.advance(cached=True)
            return

    tokens = cell.provider.tokens(body, cell.info) if cell.limiter.token_rate else 0
    attempt = 0
    while True:
        attempt += 1
        slot = await cell.limiter.acquire(tokens)
        out.attempts += 1
        t0 = time.perf_counter()
        try:
            got = await cell.provider.send(body, expected, data)
        except ProviderError as exc:
            RateLimiter.release(slot)
            latency = round((time.perf_counter() - t0) * 1000, 1)
            if exc.fatal:
                if state["fatal"] is None:
                    state["fatal"], state["fatal_cell"] = exc, cell.spec["id"]
                return _fail(request, progress, _error_json(exc), attempts=attempt, latency_ms=latency,
                             **_uploads(exc))
            if exc.retryable and attempt < options.max_attempts and state["fatal"] is None:
                delay = backoff_delay(attempt, exc.retry_after, options.backoff_base, options.backoff_max)
                out.retries += 1
                out.throttled += bool(exc.throttled)
                if exc.throttled:
                    cell.limiter.throttled(slot)
                    cell.limiter.hold(delay)
                progress.retry(throttled=bool(exc.throttled))
                await cell.limiter.clock.sleep(delay)
                continue
            if exc.fatal_when_exhausted and state["fatal"] is None:
                state["fatal"], state["fatal_cell"] = exc, cell.spec["id"]
            if exc.code == "WrongDimension":
                out.wrong_dimension += 1
            error = _error_json(exc)
            if exc.retryable:
                error["message"] = f"{exc.message} (gave up after {attempt} attempts)"
            return _fail(request, progress, error, attempts=attempt, latency_ms=latency,
                         status=exc.status, **_uploads(exc))
        finally:
            RateLimiter.release(slot)  # also when cancelled: a later request must not wait forever
        latency = round((time.perf_counter() - t0) * 1000, 1)
        cell.limiter.answered()
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
                                 latency_ms=latency, usage=usage, **_uploads(got))
        if got.replica:   # only for a model with several replicas: which one answered
            request.record["replica"] = got.replica
        progress.advance()
        return


def _uploads(outcome: Any) -> dict[str, Any]:
    """`{"uploads": [...]}` when the request named uploaded files by their oss:// URLs (evidence of what
    was sent, also when it failed), else nothing: lines of other requests keep their shape."""
    uploads = getattr(outcome, "uploads", None)
    return {"uploads": uploads} if uploads else {}


def _read(path: Path, span: tuple[int, int]) -> bytes:
    """A payload's bytes, the (offset, length) `span` of the cell's requests.jsonl: os.pread without a
    buffered file object (a third of the cost)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        data = os.pread(fd, span[1], span[0])
    finally:
        os.close(fd)
    if len(data) != span[1]:
        raise OSError(f"{path.name} is shorter than its index says")
    return data


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
    add_usage(out.usage, usage)
    for k, v in usage_tokens(usage).items():
        cell.tokens[k] += v


def _fail(request: _Request, progress: RunProgress, error: dict[str, Any], **fields: Any) -> None:
    out = request.cell.outcome
    out.failed += 1
    out.failures.append({"file": request.file, **{k: error.get(k) for k in ("status", "code", "message",
                                                                             "request_id")}})
    request.record = _record(request, error=error, **fields)
    progress.advance(failed=True)


