"""The JSON summary: the one canonical result that JUnit and HTML are projections of.

`summary.json` is versioned (`summary_version`, schemas/summary.schema.json) so CI scripts can
rely on its shape. It holds no timestamps or absolute paths: the same folder gives the same
bytes, which keeps the manifest reproducible. It is written by `harness.report.finalize`,
after the manifest digest it carries (`manifest_digest`) exists.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from harness.evidence import canonical_json
from harness.folder import (
    CellEntry,
    CellExecution,
    Execution,
    FolderError,
    Manifest,
    Quality,
    Reason,
    RunReader,
    Summary,
    SummaryCell,
    SummaryCheck,
)
from harness.folder.summary import Comparison
from harness.folder.usage import usage_tokens
from harness.folder.verdict import CheckResult, counts, verdict

NOT_EXECUTED = Reason("not executed")   # a cell without a vectors file whose execution.json says no more


def plain(value: Any) -> Any:
    """A value canonical JSON accepts: numpy scalars unwrapped, non-finite floats as None,
    tuples as lists, anything else unknown as its string."""
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if value is None or isinstance(value, (bool, int, str)):
        return value
    return str(value)


def _num(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def latency_stats(rows: list[dict]) -> dict | None:
    values = [float(r["latency_ms"]) for r in rows if _num(r.get("latency_ms"))]
    if not values:
        return None
    a = np.asarray(values)
    return {"count": len(values), "p50": round(float(np.percentile(a, 50)), 3),
            "p95": round(float(np.percentile(a, 95)), 3), "max": round(float(a.max()), 3),
            "mean": round(float(a.mean()), 3)}


def usage_totals(rows: list[dict]) -> dict[str, float]:
    """Sum of each numeric usage field over a cell's requests (cache hits included)."""
    totals: dict[str, float] = {}
    for r in rows:
        for k, v in (r.get("usage") or {}).items():
            if _num(v):
                totals[k] = totals.get(k, 0) + v
    return {k: totals[k] for k in sorted(totals)}


def input_tokens(rows: list[dict]) -> dict[str, int] | None:
    """Input tokens by modality as the provider reported them, one shape for every provider
    (DashScope's input_tokens/image_tokens/input_tokens_details, OpenAI's prompt_tokens);
    None when no request reported usage."""
    reported = [r["usage"] for r in rows if isinstance(r.get("usage"), dict) and r["usage"]]
    if not reported:
        return None
    total = {"text": 0, "image": 0}
    for usage in reported:
        for k, v in usage_tokens(usage).items():
            total[k] += v
    return total


def cell_cost(cell: CellEntry, info: CellExecution | None, executed: bool) -> dict | None:
    """The cell's cost: the reported usage priced by the catalog once it executed ("usage"),
    else the plan's estimate ("estimate"); per 1,000 inputs too, to compare cells."""
    recorded = info.estimated_cost if executed and info is not None else None
    basis = "usage" if isinstance(recorded, dict) and recorded.get("tokens") is not None else "estimate"
    cost = recorded if basis == "usage" else cell.estimated_cost
    if not isinstance(cost, dict) or not _num(cost.get("amount")) or not cost.get("currency"):
        return None     # nothing to price, or a cell no region bills (local, openai-compatible)
    inputs = cell.inputs
    per_1k = round(cost["amount"] * 1000 / inputs, 6) if isinstance(inputs, int) and inputs > 0 else None
    return {"amount": cost["amount"], "currency": cost["currency"], "basis": basis,
            "per_1k_inputs": per_1k}


def cell_summary(run: RunReader, cell: CellEntry, execution: Execution | None) -> SummaryCell:
    try:
        rows = run.responses(cell.id)
    except FolderError:
        rows = []
    try:
        vec = run.vectors(cell.id, mmap=True)
    except FolderError:
        vec = None
    info = execution.get(cell.id) if execution is not None else None
    executed = vec is not None
    return SummaryCell(
        id=cell.id, model=cell.model, provider=cell.provider, dimension=cell.dimension, requests=cell.requests,
        executed=executed,
        reason=None if executed else ((info.reason if info is not None else None) or NOT_EXECUTED),
        vectors=len(vec.ids) if vec is not None else 0,
        latency_ms=latency_stats(rows),
        usage=usage_totals(rows),
        cache_hits=sum(1 for r in rows if r.get("cache_hit")),
        errors=sum(1 for r in rows if r.get("error")),
        estimated_cost=cell.estimated_cost,
        inputs=cell.inputs,
        tokens=input_tokens(rows),
        cost=cell_cost(cell, info, executed),
        spent=info.spent(cell) if info is not None else None,
        elapsed_s=info.elapsed_s if info is not None and executed else None)


def build_summary(folder: Path, manifest: Manifest, results: list[CheckResult]) -> Summary:
    """Everything the reports show, from the folder, its manifest and the check results."""
    run = RunReader(folder)
    try:
        execution = run.execution()
    except FolderError:
        execution = None
    checks = [SummaryCheck(name=r.name, kind=r.kind, cell=r.cell, passed=bool(r.passed), status=r.word,
                           detail=r.detail, line=r.line(), data=plain(r.data or {}))
              for r in results]
    scored = [r for r in results if r.kind == "check" and (r.data or {}).get("check") == "retrieval"
              and r.data.get("metrics")]
    quality = [Quality(check=r.name, cell=r.cell, model=r.data.get("model"), dimension=r.data.get("dimension"),
                       metrics=plain(r.data.get("metrics") or {}), thresholds=plain(r.data.get("thresholds") or {}),
                       threshold_order=list(r.data.get("threshold_order") or r.data.get("thresholds") or {}),
                       **_sureness(r.data))
               for r in scored]
    spec = manifest.spec
    return Summary(spec={"name": spec.get("name"), "sha256": spec.get("sha256")},
                   manifest_digest=manifest.digest,
                   verdict="PASS" if verdict(results) else "FAIL",
                   counts=counts(results),
                   cells=[cell_summary(run, c, execution) for c in manifest.entries()],
                   checks=checks,
                   quality=quality,
                   comparisons=comparisons(scored) if manifest.format >= 3 else None)


# a retrieval check's data → Quality's fields for how sure its means are (evidence format 3)
_SURENESS = ("intervals", "confidence", "queries", "resamples", "seed", "min_lower", "headline")


def _sureness(data: dict) -> dict[str, Any]:
    if data.get("intervals") is None:
        return {}       # a check of an earlier evidence format recorded none: its row keeps its bytes
    return {k: plain(data[k]) for k in _SURENESS if data.get(k) is not None}


def comparisons(scored: list[CheckResult]) -> list[Comparison]:
    """Per retrieval check, every cell against the best on the check's headline metric, query by query
    (`harness.checks.stats.against_best`, from the per-query values the results record), in check order."""
    from harness.checks import stats

    by_check: dict[str, list[CheckResult]] = {}
    for r in scored:
        if r.data.get("intervals") is not None and isinstance(r.data.get("per_query"), dict):
            by_check.setdefault(r.name, []).append(r)
    out = []
    for check, rows in by_check.items():
        metric = rows[0].data.get("headline")
        rows = [r for r in rows if metric in r.data["metrics"]]
        cells = [(str(r.cell), r.data["metrics"][metric],
                  {q: v[metric] for q, v in r.data["per_query"].items() if isinstance(v, dict) and metric in v})
                 for r in rows]
        first = rows[0].data if rows else {}
        for c in stats.against_best(cells, confidence=first.get("confidence") or stats.CONFIDENCE,
                                    resamples=first.get("resamples") or stats.RESAMPLES,
                                    seed=first.get("seed") or stats.SEED):
            out.append(Comparison(check=check, metric=metric, **c))
    return out


def render_summary(summary: Summary) -> bytes:
    return canonical_json(summary.to_json(), pretty=True)
