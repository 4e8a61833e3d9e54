"""What a run's execution produced: per-cell outcomes, their evidence in the folder, their check lines.

Vectors are kept for the inputs that came back: when a request failed, its inputs have no row and
`ids.json` lists only the inputs that do (row i ↔ ids[i] always holds), and `execution.json` and
the checks say how many are missing. Nothing is padded, so no file looks whole when it is not.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from harness.folder import CellExecution, CellVectors, RunWriter
from harness.providers.base import ProviderError
from harness.folder.verdict import CheckResult

if TYPE_CHECKING:
    from harness.execute.engine import _Cell

SHOWN_FAILURES = 5        # failures listed per cell in execution.json and the checks


def brief_reason(reason: str | None) -> str:
    """Why a cell was not executed, without its how-to-fix (the part after the first ": "), so a
    long hint such as where to put the API key is said once per run, not on every line."""
    return (reason or "not executed").split(": ", 1)[0]


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
    written: dict[str, str] = field(default_factory=dict)   # evidence files written → sha256 (not a record field)

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


def usage_reported(records: Iterable[dict[str, Any] | None]) -> bool:
    """Did every answered request report the tokens it used? Only then do the reported tokens say
    what the cell was billed; a proxy that strips `usage` from some answers would make them a
    partial count, and a cell priced on it would look cheaper than it was."""
    answered = [r for r in records if r and r.get("error") is None]
    return bool(answered) and all(any(usage_tokens(r.get("usage") or {}).values()) for r in answered)


def spent(cell: dict[str, Any], info: Any) -> dict[str, Any] | None:
    """What a cell spent, and on what the figures rest: `usage` (the tokens the provider reported,
    priced at the catalog's price for the cell's region) or `estimate` (the plan's estimate, when
    not every answer reported usage). None when nothing was sent (the cell was not executed)."""
    if info is None or not info.executed:
        return None
    tokens = sum(usage_tokens(info.usage or {}).values())
    billed = bool((cell.get("estimated_cost") or {}).get("currency"))
    if tokens and (info.estimated_cost or not billed):   # priced on usage only when all of it came back
        cost = info.estimated_cost
        return {"basis": "usage", "tokens": tokens,
                "cost": {"amount": cost["amount"], "currency": cost["currency"]} if cost else None}
    est = cell.get("estimated_cost")
    return {"basis": "estimate", "tokens": (cell.get("estimated_tokens") or {}).get("total", 0),
            "cost": {"amount": est["amount"], "currency": est["currency"]} if est and est.get("currency") else None}


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


def write_cell_evidence(folder: Path, cell: "_Cell", catalog: Any) -> None:
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


def execution_checks(cells: list["_Cell"], summary: ExecutionSummary) -> list[CheckResult]:
    """Per cell: did every request succeed, and did vectors of the right length come back."""
    results: list[CheckResult] = []
    fatal = summary.fatal
    first_with: dict[str, str] = {}     # reason -> the cell whose line says it in full
    for cell in cells:
        out = cell.outcome
        cid = out.id
        if not out.executed:
            # A required cell that did not run fails; any other is a skip, never a pass.
            data = {"executed": False, "reason": out.reason}
            said = first_with.setdefault(out.reason or "", cid)
            why = out.reason if said == cid else f"{brief_reason(out.reason)} (as for {said} above)"
            results.append(CheckResult("execution", not out.required, f"not executed: {why}"
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
        limiter = getattr(cell, "limiter", None)
        if limiter is not None and limiter.adaptive and limiter.cuts:
            per_minute = limiter.rate * 60 / limiter.window
            notes.append(f"no published quota: the rate adapted to the throttles, ending at {per_minute:,.0f} "
                         "requests/min")
            data["adapted_rpm"] = round(per_minute, 1)
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
