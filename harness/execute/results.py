"""What a run's execution produced: per-cell outcomes, their evidence in the folder, their check lines.

Vectors are kept for the inputs that came back: when a request failed, its inputs have no row and
`ids.json` lists only the inputs that do (row i ↔ ids[i] always holds), and `execution.json` and
the checks say how many are missing. Nothing is padded, so no file looks whole when it is not.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from harness.folder import CellExecution, CellVectors, Reason, RunWriter
from harness.folder.usage import usage_reported
from harness.folder.verdict import CheckResult
from harness.providers.base import ProviderError
from harness.words import counted, plural

SHOWN_FAILURES = 5        # failures listed per cell in execution.json and the checks


@dataclass
class CellOutcome:
    """What happened to one cell; `to_record()` is its entry in execution.json."""

    id: str
    model: str | None
    provider: str | None
    required: bool
    executed: bool
    reason: str | None = None    # why it was not executed, as the engine says it (`why` is its record)
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
    written: dict[str, str] = field(default_factory=dict)   # evidence files written → sha256 (not a record field)
    began: float | None = None       # the engine's clock when the cell's first request was taken up
    elapsed_s: float | None = None   # from then to its last answer, on the same clock

    def timed(self, began: float, ended: float) -> None:
        """One request of the cell, taken up at `began` and done at `ended` (the engine's clock)."""
        self.began = began if self.began is None else min(self.began, began)
        self.elapsed_s = round(max(self.elapsed_s or 0.0, ended - self.began), 3)

    @property
    def why(self) -> Reason | None:
        return Reason.parse(self.reason) if self.reason is not None else None

    def to_record(self) -> CellExecution:
        return CellExecution(
            id=self.id, model=self.model, provider=self.provider, required=self.required,
            executed=self.executed, reason=self.why,
            requests={"total": self.requests, "ok": self.ok, "failed": self.failed,
                      "not_sent": self.not_sent, "cache_hits": self.cache_hits,
                      "http_attempts": self.attempts, "retries": self.retries,
                      "throttled": self.throttled},
            vectors=self.vectors, expected_vectors=self.expected_vectors,
            dimension=self.dimension, norms=self.norms, usage=self.usage,
            estimated_cost=self.estimated_cost, failures=self.failures[:SHOWN_FAILURES],
            elapsed_s=self.elapsed_s if self.executed else None)


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
    def written(self) -> dict[str, str]:
        """sha256 of the evidence files the cells wrote, from the bytes written (for `finalize`)."""
        return {rel: sha for c in self.cells for rel, sha in c.written.items()}

    @property
    def cache_hits(self) -> int:
        return sum(c.cache_hits for c in self.cells)

    @property
    def retries(self) -> int:
        return sum(c.retries for c in self.cells)

    @property
    def throttled(self) -> int:
        return sum(c.throttled for c in self.cells)


# ---- usage -------------------------------------------------------------------------------

def add_usage(total: dict[str, Any], usage: dict[str, Any]) -> None:
    """Sum every numeric field, nested ones too (`input_tokens_details`)."""
    for k, v in usage.items():
        if isinstance(v, bool):
            continue
        if isinstance(v, (int, float)):
            total[k] = total.get(k, 0) + v
        elif isinstance(v, dict):
            add_usage(total.setdefault(k, {}), v)


# ---- evidence and checks -------------------------------------------------------------------

NORM_BLOCK_BYTES = 4 << 20   # float64 bytes of rows whose norms are computed at a time


def row_norms(matrix: np.ndarray, keep: np.ndarray) -> np.ndarray:
    """The L2 norm, in float64, of each kept row, a block at a time (no float64 copy of the
    matrix); each row's norm is computed as `np.linalg.norm(matrix[keep].astype(float64), axis=1)`
    computes it."""
    rows = max(1, NORM_BLOCK_BYTES // (8 * max(1, matrix.shape[1])))
    parts = [np.linalg.norm(matrix[s:s + rows][keep[s:s + rows]].astype(np.float64), axis=1)
             for s in range(0, len(matrix), rows)]
    return np.concatenate(parts) if parts else np.zeros(0)


class SentCell(Protocol):
    """What the engine knows of a cell once its requests are done (engine._Cell)."""

    spec: dict[str, Any]
    outcome: CellOutcome
    requests: list[Any]                 # each with its `inputs` (ids, in row order) and its response `record`
    matrix: np.ndarray | None           # a row per planned input
    received: np.ndarray | None         # which rows came back
    info: Any                           # the model's catalog entry
    tokens: dict[str, int]
    limiter: Any


def write_cell_evidence(folder: Path, cell: SentCell, catalog: Any) -> None:
    """The cell's responses/<cell>.jsonl, and its vectors (rows for the inputs that came back),
    streamed from the cell's matrix: finishing a cell holds no second copy of it."""
    out = cell.outcome
    if not out.executed:
        return
    cid = cell.spec["id"]
    writer = RunWriter(folder)
    writer.responses(cid, [r.record for r in cell.requests])
    out.written = writer.hashes
    ids = [i for r in cell.requests for i in r.inputs]
    if cell.matrix is None or cell.received is None:
        return
    keep = cell.received
    out.vectors = int(keep.sum())
    out.dimension = int(cell.matrix.shape[1])
    if out.vectors:
        norms = row_norms(cell.matrix, keep)
        out.norms = {"min": round(float(norms.min()), 6), "mean": round(float(norms.mean()), 6),
                     "max": round(float(norms.max()), 6)}
    writer.vectors(cid, CellVectors(ids, cell.matrix), keep=keep)
    if cell.info is not None and usage_reported(r.record for r in cell.requests):
        from harness.catalog import estimate
        # a cell recorded before regions were (an older manifest): the spec's default region
        region = cell.spec.get("region", "cn-beijing" if cell.info.provider == "dashscope" else None)
        cost = estimate.cost(cell.info, cell.tokens, region)
        if cost["currency"]:     # the cell's region bills it: the usage returned × that region's price
            out.estimated_cost = {**cost, "tokens": dict(cell.tokens), "basis": "usage returned × catalog prices"}


def execution_checks(cells: list[SentCell], summary: ExecutionSummary) -> list[CheckResult]:
    """Per cell: did every request succeed, and did vectors of the right length come back."""
    stopped = summary.fatal.describe() if summary.fatal else None
    said: dict[str, str] = {}
    results: list[CheckResult] = []
    for cell in cells:
        limiter = getattr(cell, "limiter", None)
        adapted = (round(limiter.rate * 60 / limiter.window, 1)
                   if limiter is not None and limiter.adaptive and limiter.cuts else None)
        results += cell_lines(cell.outcome, stopped=stopped, adapted_rpm=adapted, said=said)
    return results


def fatal_text(error: dict[str, Any] | None) -> str | None:
    """A fatal error as the lines describe it, from its JSON (execution.json's `fatal`): the words
    of `ProviderError.describe`."""
    if not isinstance(error, dict):
        return None
    bits = [f"HTTP {error['status']}" if error.get("status") else None, error.get("code"), error.get("message"),
            f"request_id={error['request_id']}" if error.get("request_id") else None]
    return ": ".join(str(b) for b in bits if b)


def cell_lines(out: CellOutcome, *, stopped: str | None = None, adapted_rpm: float | None = None,
               said: dict[str, str] | None = None, skip_unmeasured: bool = True) -> list[CheckResult]:
    """A cell's `execution` and `dimensions` lines from its outcome: the one derivation the run
    writes and `verify` re-derives from the folder's evidence. `stopped`: the fatal error that
    ended the run early, in words; `adapted_rpm`: where an adaptive rate ended; `said`: reason →
    the cell whose line said it in full (shared across a run's cells). A cell whose requests all failed
    has a `skip` dimensions line (nothing was measured; its execution line is the FAIL), or with
    `skip_unmeasured=False` the FAIL line evidence formats 1 and 2 wrote (verify)."""
    said = {} if said is None else said
    cid = out.id
    if not out.executed:
        # A required cell that did not run fails; any other is a skip, never a pass.
        data = {"executed": False, "reason": out.reason}
        first = said.setdefault(out.reason or "", cid)
        brief = out.why.brief if out.reason else "not executed"
        why = out.reason if first == cid else f"{brief} (as for {first} above)"
        return [CheckResult("execution", not out.required, f"not executed: {why}"
                            + ("" if out.required else " (optional cell, so the run goes on)"),
                            cell=cid, kind="execution", data=data, status="fail" if out.required else "skip")]
    results: list[CheckResult] = []
    data = {"requests": out.requests, "ok": out.ok, "failed": out.failed, "not_sent": out.not_sent,
            "cache_hits": out.cache_hits, "retries": out.retries, "throttled": out.throttled}
    notes = []
    if out.cache_hits:
        notes.append(f"{out.cache_hits} from cache")
    if out.retries:
        notes.append(f"{counted(out.retries, 'retry')}, {out.throttled} throttled")
    if adapted_rpm is not None:
        notes.append(f"no published quota: the rate adapted to the throttles, ending at {adapted_rpm:,.0f} "
                     "requests/min")
        data["adapted_rpm"] = adapted_rpm
    note = f" ({', '.join(notes)})" if notes else ""
    if out.ok == out.requests:
        every = f"all {out.requests} requests" if out.requests != 1 else "the 1 request"
        results.append(CheckResult("execution", True, f"{every} succeeded{note}",
                                   cell=cid, kind="execution", data=data))
    else:
        bits = []
        if out.failed:
            first = out.failures[0]
            what = ": ".join(str(x) for x in (f"HTTP {first['status']}" if first.get("status") else None,
                                              first.get("code"), first.get("message")) if x)
            rid = f" request_id={first['request_id']}" if first.get("request_id") else ""
            bits.append(f"{out.failed} of {counted(out.requests, 'request')} failed "
                        f"(first: {first['file']}: {what}{rid})")
        if out.not_sent:
            why = f"stopped early: {stopped}" if stopped else "stopped early"
            bits.append(f"{out.not_sent} not sent ({why})")
        results.append(CheckResult("execution", False, "; ".join(bits) + note, cell=cid, kind="execution",
                                   data=data))
    dim = out.dimension
    if out.wrong_dimension:
        results.append(CheckResult("dimensions", False, f"{counted(out.wrong_dimension, 'request')} answered with "
                                   f"vectors that are not {dim} long", cell=cid, kind="execution"))
    elif out.vectors == 0 and skip_unmeasured and (out.failed or out.not_sent):
        results.append(CheckResult.skip("dimensions", "not measured: no vector came back (the cell failed to "
                                        "execute)", cell=cid, kind="execution"))
    elif out.vectors == 0:
        results.append(CheckResult("dimensions", False, "no vectors came back", cell=cid, kind="execution"))
    else:
        missing = out.expected_vectors - out.vectors
        extra = f"; {counted(missing, 'input')} {plural('has', missing)} none" if missing else ""
        results.append(CheckResult("dimensions", True, f"{counted(out.vectors, 'vector')} of {dim} floats, as "
                                   f"requested{extra}", cell=cid, kind="execution",
                                   data={"vectors": out.vectors, "dimension": dim, "norms": out.norms}))
    return results


def nothing_executed(results: list[CheckResult]) -> CheckResult | None:
    """With --execute: the failed `executed` line when no cell was executed (no key, no provider),
    naming why: a run that measured nothing has nothing to gate on, so it must not PASS. A cell
    that was sent but failed counts as executed; its own FAIL line and exit code 4 say so."""
    lines = [r for r in results if r.kind == "execution" and r.name == "execution"]
    if any((r.data or {}).get("executed") is not False for r in lines):
        return None
    why: dict[str, list[str]] = {}
    for r in lines:
        why.setdefault((r.data or {}).get("reason") or "not executed", []).append(r.cell or "?")
    text = "; ".join(f"{counted(len(cells), 'cell')}: {reason}" for reason, cells in why.items())
    return CheckResult("executed", False, f"no cell executed ({text or 'the plan has no cells'})", kind="execution")
