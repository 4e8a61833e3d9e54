"""`harness diff RUN_A RUN_B`: what differs between two output folders, and by how much.

Vectors compare by input id, never by row position, so two runs of different providers or
models over the same inputs compare (the cloud model against a self-hosted one). Cells pair by
id; cells left over pair when the match is unambiguous (one each, or one per dimension), or as
the user says (`pairs`). Without a tolerance the diff only informs; with one it is a gate.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from harness.audit import diff_stats
from harness.checks import metrics as M
from harness.checks.context import listed
from harness.errors import MismatchError, Problem, UsageError
from harness.folder import FolderError, NotARun, Run, Summary, open_run
from harness.words import counted

WORST_SHOWN = 5    # ids named per finding in the text output
MOVED_SHOWN = 10   # inputs kept per cell in `worst`: the ones that moved most (lowest cosine A↔B)
BINS = 20          # histogram bins of a cell's per-input cosines


def load_run(folder: str | Path) -> Run:
    """The output folder at `folder`, opened as every command opens one; its manifest's cells typed."""
    try:
        run = open_run(folder)
        run.manifest.entries()      # each cell's fields of their types: one of another type is said here
    except NotARun as exc:
        if exc.why == "no manifest":
            raise UsageError(Problem(f"{exc.path} has no manifest.json", hint="give the output folder of a run, "
                                       "e.g. output/<spec name>")) from None
        raise UsageError(Problem(f"no such folder: {exc.path}",
                                 hint="give two output folders of `harness run`")) from None
    except FolderError as exc:
        raise MismatchError(Problem(f"{Path(folder)}: {exc}", hint="check it with `harness verify`")) from None
    return run


def _summary(run: Run) -> Summary | None:
    """summary.json as its record; None when there is none or it breaks the contract (nothing to compare)."""
    try:
        return run.summary
    except FolderError:
        return None


def _inputs(run: Run) -> dict[str, dict]:
    try:
        return {r["id"]: r for r in run.read.inputs()}
    except FolderError:
        return {}


def _requests(run: Run, cid: str) -> dict[str, Any]:
    """A cell's requests by name (NNNNN.json): the sha256 of the body and the inputs, as its index says,
    the same in every payload layout (one file per request before evidence format 3, one JSON Lines
    file from it), so runs of either layout compare request by request. A folder whose index cannot
    be read compares by the payload files its manifest records."""
    try:
        return {e["file"]: (e["sha256"], e["inputs"]) for e in run.read.payload_index(cid)}
    except FolderError:
        prefix = f"payloads/{cid}/"
        return {k[len(prefix):]: v for k, v in run.manifest.files.items() if k.startswith(prefix)}


def _vectors(run: Run, cid: str):
    try:
        v = run.read.vectors(cid)
    except FolderError:
        return None
    return v if v is not None and len(v.ids) else None


@dataclass
class DiffReport:
    a: Path
    b: Path
    spec: dict = field(default_factory=dict)
    inputs: dict = field(default_factory=dict)
    cells: dict = field(default_factory=dict)
    payloads: list[dict] = field(default_factory=list)
    vectors: list[dict] = field(default_factory=list)
    metrics: list[dict] = field(default_factory=list)
    checks: list[dict] = field(default_factory=list)
    tolerance: float | None = None
    metric_tolerance: float | None = None
    breaches: list[str] = field(default_factory=list)
    max_drop: dict[str, float] = field(default_factory=dict)    # metric → margin (`--max-drop`)
    alpha: float = diff_stats.ALPHA                              # significance level of `--max-drop`
    warnings: list[str] = field(default_factory=list)           # drops beyond a margin that are not significant

    @property
    def gated(self) -> bool:
        return self.tolerance is not None or self.metric_tolerance is not None or bool(self.max_drop)

    @property
    def ok(self) -> bool:
        return not self.breaches

    @property
    def compared(self) -> int:
        """How many cell pairs' vectors or metrics were compared: none means the gate judged nothing
        (e.g. two keyless CI runs, where no cell executed on either side)."""
        return sum(v["status"] == "compared" for v in self.vectors) + len(self.metrics)

    @property
    def skipped(self) -> list[str]:
        """The cell pairs executed in neither run: nothing to compare, so they gate nothing (as pytest
        skips a test), unlike a cell executed on one side only, which is a difference."""
        return [v["a"] if v["a"] == v["b"] else f"{v['a']} ↔ {v['b']}" for v in self.vectors
                if v["status"] == NEITHER]

    def as_dict(self) -> dict[str, Any]:
        return {"a": str(self.a), "b": str(self.b), "spec": self.spec, "inputs": self.inputs, "cells": self.cells,
                "payloads": self.payloads, "vectors": self.vectors, "metrics": self.metrics, "checks": self.checks,
                "tolerance": self.tolerance, "metric_tolerance": self.metric_tolerance,
                "max_drop": self.max_drop, "alpha": self.alpha, "warnings": self.warnings,
                "breaches": self.breaches, "passed": self.ok}


def pair_cells(a: Run, b: Run, pairs: list[tuple[str, str]] | None = None) -> list[tuple[str, str]]:
    """Cells to compare: explicit pairs, then equal ids, then unambiguous leftovers
    (one executed cell each, or a single cell per dimension on both sides)."""
    out = list(pairs or [])
    used_a, used_b = {p[0] for p in out}, {p[1] for p in out}
    for cid in a.manifest.cell_ids:
        if cid in b.manifest.cell_ids and cid not in used_a and cid not in used_b:
            out.append((cid, cid))
            used_a.add(cid)
            used_b.add(cid)
    left_a = [c for c in a.manifest.cell_ids if c not in used_a and _vectors(a, c) is not None]
    left_b = [c for c in b.manifest.cell_ids if c not in used_b and _vectors(b, c) is not None]
    if len(left_a) == 1 and len(left_b) == 1:
        return out + [(left_a[0], left_b[0])]
    dim_a: dict[Any, list[str]] = {}
    dim_b: dict[Any, list[str]] = {}
    for c in left_a:
        dim_a.setdefault(a.manifest.entry(c).dimension, []).append(c)
    for c in left_b:
        dim_b.setdefault(b.manifest.entry(c).dimension, []).append(c)
    for d, cs in dim_a.items():
        if len(cs) == 1 and len(dim_b.get(d, [])) == 1:
            out.append((cs[0], dim_b[d][0]))
    return out


NEITHER = "not executed in A and B"


def compare_vectors(a: Run, b: Run, ca: str, cb: str) -> dict:
    """Per-input cosine between two cells' vectors, matched by input id."""
    va, vb = _vectors(a, ca), _vectors(b, cb)
    row: dict[str, Any] = {"a": ca, "b": cb}
    if va is None and vb is None:
        row["status"] = NEITHER
        return row
    if va is None or vb is None:
        row["status"] = f"not executed in {'A' if va is None else 'B'}"
        return row
    row.update({"dimension_a": va.dimension, "dimension_b": vb.dimension, "count_a": len(va.ids),
                "count_b": len(vb.ids),
                "only_a": [i for i in va.ids if i not in vb.index], "only_b": [i for i in vb.ids if i not in va.index]})
    if va.dimension != vb.dimension:
        row["status"] = f"dimension {va.dimension} vs {vb.dimension}: vectors not comparable"
        return row
    common = [i for i in va.ids if i in vb.index]
    if not common:
        row["status"] = "no input ids in common"
        return row
    cos = M.rowwise_cosine(va.rows(common), vb.rows(common))
    bad = [common[i] for i in np.flatnonzero(~np.isfinite(cos))]
    cos = np.where(np.isfinite(cos), cos, -1.0)  # a non-finite vector matches nothing
    if bad:
        row["non_finite"] = bad
    order = np.argsort(cos, kind="stable")
    row.update({"status": "compared", "compared": len(common),
                "min_cosine": round(float(cos.min()), 6), "median_cosine": round(float(np.median(cos)), 6),
                "mean_cosine": round(float(cos.mean()), 6),
                "worst": [{"id": common[i], "cosine": round(float(cos[i]), 6)} for i in order[:MOVED_SHOWN]],
                "distribution": distribution(cos)})
    return row


def distribution(cos: np.ndarray) -> dict:
    """Quartiles and a histogram of per-input cosines over [lo, 1], where lo is the minimum
    rounded down to 1 − 10^n: two runs that agree to the 4th decimal get an axis that shows it."""
    low = float(cos.min())
    gap = max(1.0 - low, 1e-6)
    lo = max(-1.0, 1.0 - 10.0 ** math.ceil(math.log10(gap) - 1e-9))
    counts, _ = np.histogram(np.clip(cos, lo, 1.0), bins=BINS, range=(lo, 1.0))
    q = np.percentile(cos, [0, 25, 50, 75, 100])
    return {"lo": lo, "hi": 1.0, "quartiles": [round(float(x), 6) for x in q],
            "counts": [int(c) for c in counts]}


def _quality(summary: Summary | None) -> dict[tuple[str, str | None], dict]:
    return {(q.check, q.cell): q.metrics for q in summary.quality} if summary is not None else {}


def _statuses(summary: Summary | None) -> dict[tuple[str, str | None], str]:
    return {(c.name, c.cell): c.status for c in summary.checks} if summary is not None else {}


def diff_runs(a: str | Path | Run, b: str | Path | Run, *, pairs: list[tuple[str, str]] | None = None,
              tolerance: float | None = None, metric_tolerance: float | None = None,
              max_drop: dict[str, float] | None = None, alpha: float = diff_stats.ALPHA) -> DiffReport:
    """Compare two output folders. `tolerance` gates vectors (every compared input's cosine
    ≥ 1 − tolerance, same dimension and inputs); `metric_tolerance` gates retrieval metrics
    (|B − A| ≤ it for each); `max_drop` ({metric: margin}) fails a drop beyond the margin that is
    significant at `alpha` (`harness.audit.diff_stats`)."""
    a = a if isinstance(a, Run) else load_run(a)
    b = b if isinstance(b, Run) else load_run(b)
    cells_a, cells_b = a.manifest.cell_ids, b.manifest.cell_ids
    for name, run, cells in (("A", a, cells_a), ("B", b, cells_b)):
        for p in pairs or []:
            cid = p[0] if name == "A" else p[1]
            if cid not in cells:
                raise UsageError(Problem(f"run {name} ({run.path}) has no cell {cid!r}",
                                           hint=f"its cells: {', '.join(cells)}"))
    r = DiffReport(a.path, b.path, tolerance=tolerance, metric_tolerance=metric_tolerance,
                   max_drop=dict(max_drop or {}), alpha=alpha)
    sa, sb = a.manifest.spec, b.manifest.spec
    r.spec = {"same": sa.get("sha256") == sb.get("sha256"), "a": sa.get("sha256"), "b": sb.get("sha256"),
              "name_a": sa.get("name"), "name_b": sb.get("name")}
    ia, ib = _inputs(a), _inputs(b)
    r.inputs = {"both": len(set(ia) & set(ib)), "only_a": [i for i in ia if i not in ib],
                "only_b": [i for i in ib if i not in ia],
                "changed": [i for i in ia if i in ib and ia[i] != ib[i]]}
    r.cells = {"both": [c for c in cells_a if c in cells_b], "only_a": [c for c in cells_a if c not in cells_b],
               "only_b": [c for c in cells_b if c not in cells_a]}
    for cid in r.cells["both"]:
        pa, pb = _requests(a, cid), _requests(b, cid)
        differ = sorted(k for k in set(pa) & set(pb) if pa[k] != pb[k])
        only = sorted(set(pa) ^ set(pb))
        if differ or only:
            r.payloads.append({"cell": cid, "differ": differ, "only_in_one": only, "files": len(set(pa) | set(pb))})
    paired = pair_cells(a, b, pairs)
    r.vectors = [compare_vectors(a, b, ca, cb) for ca, cb in paired]
    summary_a, summary_b = _summary(a), _summary(b)
    qa, qb = _quality(summary_a), _quality(summary_b)
    for ca, cb in paired:
        for (check, cell), ma in qa.items():
            if cell != ca or (check, cb) not in qb:
                continue
            mb = qb[(check, cb)]
            names = [n for n in M.metric_names([], [m for m in ma if M.METRIC_PATTERN.match(m)]) if n in ma and n in mb]
            deltas = {m: {"a": ma[m], "b": mb[m], "delta": round(mb[m] - ma[m], 6)} for m in names}
            r.metrics.append({"check": check, "a": ca, "b": cb, "metrics": deltas})
    diff_stats.add_significance(r.metrics, summary_a, summary_b, alpha)   # the queries paired: interval, p
    st_a, st_b = _statuses(summary_a), _statuses(summary_b)
    pair_of = dict(paired)
    for (name, cell), s in st_a.items():
        other = st_b.get((name, pair_of.get(cell, cell)))
        if other is not None and other != s:
            r.checks.append({"check": name, "a": cell, "b": pair_of.get(cell, cell), "status_a": s, "status_b": other})
    _gate(r, a)
    return r


def _gate(r: DiffReport, a: Run) -> None:
    if r.tolerance is not None:
        need = 1.0 - r.tolerance
        compared_a = {v["a"] for v in r.vectors}
        for cid in a.manifest.cell_ids:
            if cid not in compared_a and _vectors(a, cid) is not None:
                r.breaches.append(f"{cid}: no cell in B to compare with (pair it with --pair {cid}:CELL_B)")
        for v in r.vectors:
            where = v["a"] if v["a"] == v["b"] else f"{v['a']} ↔ {v['b']}"
            if v["status"] == NEITHER:      # nothing to compare: skipped, not a difference
                continue
            if v["status"] != "compared":
                r.breaches.append(f"{where}: {v['status']}")
                continue
            if v["only_a"] or v["only_b"]:
                one = ", ".join((v["only_a"] + v["only_b"])[:WORST_SHOWN])
                r.breaches.append(f"{where}: inputs in one run only: {one}")
            low = [w for w in v["worst"] if w["cosine"] < need]
            if v["min_cosine"] < need:
                r.breaches.append(f"{where}: cosine {v['min_cosine']:.6f} < {need:.6f} for "
                                  + ", ".join(f"{w['id']} ({w['cosine']:.4f})" for w in low[:WORST_SHOWN]))
    if r.metric_tolerance is not None:
        for m in r.metrics:
            for name, d in m["metrics"].items():
                if abs(d["delta"]) > r.metric_tolerance:
                    r.breaches.append(f"{m['check']} [{m['a']}]: {name} {d['a']:.4f} → {d['b']:.4f} "
                                      f"({d['delta']:+.4f}, tolerance {r.metric_tolerance:g})")
    if r.max_drop:
        breaches, warnings = diff_stats.drop_gate(r.metrics, r.max_drop, r.alpha)
        r.breaches += breaches
        r.warnings += warnings


def _ids(items: list[str], limit: int = 8) -> str:
    return listed(items, limit)


def render_diff(r: DiffReport) -> str:
    """What `harness diff` prints."""
    out = [f"diff A: {r.a}", f"     B: {r.b}"]
    s = r.spec
    out.append("spec: same" if s["same"] else f"spec: differs (A {str(s['a'])[:12]}, B {str(s['b'])[:12]})")
    i = r.inputs
    line = f"inputs: {i['both']} in both"
    for key, label in (("only_a", "only in A"), ("only_b", "only in B"), ("changed", "changed")):
        if i[key]:
            line += f"; {label}: {_ids(i[key])}"
    out.append(line)
    c = r.cells
    line = f"cells: {len(c['both'])} in both"
    if c["only_a"]:
        line += f"; only in A: {_ids(c['only_a'])}"
    if c["only_b"]:
        line += f"; only in B: {_ids(c['only_b'])}"
    out.append(line)
    if r.payloads:
        out.append("payloads:")
        for p in r.payloads:
            bits = []
            if p["differ"]:
                bits.append(f"{len(p['differ'])} of {counted(p['files'], 'request')} differ ({_ids(p['differ'], 4)})")
            if p["only_in_one"]:
                bits.append(f"in one run only: {_ids(p['only_in_one'], 4)}")
            out.append(f"  {p['cell']}: {'; '.join(bits)}")
    elif c["both"]:
        out.append(f"payloads: identical in the {len(c['both'])} common cells")
    if r.vectors:
        out.append("vectors (cosine per input, matched by id):")
        for v in r.vectors:
            where = v["a"] if v["a"] == v["b"] else f"{v['a']} ↔ {v['b']}"
            if v["status"] != "compared":
                out.append(f"  {where}: {v['status']}")
                continue
            text = (f"  {where}: {counted(v['compared'], 'input')}, min {v['min_cosine']:.6f} ({v['worst'][0]['id']}), "
                    f"median {v['median_cosine']:.6f}")
            if v["only_a"] or v["only_b"]:
                text += f"; only in A: {len(v['only_a'])}, only in B: {len(v['only_b'])}"
            if v.get("non_finite"):
                text += f"; non-finite values (counted as cosine -1): {_ids(v['non_finite'], 4)}"
            out.append(text)
    if r.metrics:
        out.append("metrics (A → B):")
        for m in r.metrics:
            where = m["a"] if m["a"] == m["b"] else f"{m['a']} ↔ {m['b']}"
            # what moved (as printed, to 3 decimals); the rest is counted, not listed at +0.000
            moved = {k: d for k, d in m["metrics"].items() if f"{d['delta']:+.3f}" not in ("+0.000", "-0.000")}
            vals = ", ".join(diff_stats.moved_text(k, d) for k, d in moved.items())
            still = len(m["metrics"]) - len(moved)
            if not moved:
                vals = f"unchanged ({still} metric{'s' if still != 1 else ''})"
            elif still:
                vals += f"; {still} other{'s' if still != 1 else ''} unchanged"
            out.append(f"  {m['check']} [{where}]: {vals}")
    if r.checks:
        out.append("checks that changed status:")
        for ch in r.checks:
            out.append(f"  {ch['check']} [{ch['a']}]: {ch['status_a']} → {ch['status_b']}")
    if r.skipped:
        out.append(f"skipped (executed in neither run): {_ids(r.skipped)}")
    if r.gated and not r.compared:
        out.append("nothing compared: no cell executed in both runs, so the tolerance judged nothing")
    elif r.gated:
        rule = " and ".join(x for x in (
            f"cosine ≥ {1 - r.tolerance:g}" if r.tolerance is not None else "",
            f"|metric delta| ≤ {r.metric_tolerance:g}" if r.metric_tolerance is not None else "",
            " and ".join(f"no significant {m} drop beyond {v:g} (p < {r.alpha:g})" for m, v in r.max_drop.items()))
            if x)
        out.extend(f"warn: {w}" for w in r.warnings)
        if r.ok:
            out.append(f"PASS: within tolerance ({rule})")
        else:
            out.append(f"FAIL: outside tolerance ({rule}):")
            out.extend(f"  {b}" for b in r.breaches)
    return "\n".join(out)
