"""`harness diff`'s statistics: a retrieval check's queries paired across the two runs, and the
`--max-drop` gate that fails only on a drop that is larger than a margin and not noise.

For each compared cell pair and retrieval check, the queries both runs ranked (each run's summary.json
`per_query`, recorded by every evidence format) are paired; per metric, the mean difference B − A over
them, its percentile bootstrap interval at 1 − alpha and the two-sided paired sign-flip test's p-value
(`harness.checks.stats`: exact up to 20 queries, else 10,000 random flips, seed 0), so the same two
folders always give the same numbers.

`--max-drop METRIC=MARGIN` fails (exit 5) when B is worse than A on METRIC by more than MARGIN *and*
the drop is significant (p < alpha); a drop beyond the margin that is not significant is a warning that
gives the p-value. `--metric-tolerance` keeps judging any change beyond it, significant or not.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from harness.checks import stats
from harness.errors import Problem, UsageError
from harness.folder import Summary
from harness.words import counted

ALPHA = stats.ALPHA


def _number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def add_significance(rows: list[dict], summary_a: Summary | None, summary_b: Summary | None,
                     alpha: float = ALPHA) -> None:
    """Give each metric of each compared row (`{"check", "a", "b", "metrics": {m: {"a", "b", "delta"}}}`)
    its paired `interval`, `p_value`, `test` and `queries`, over the queries both runs ranked."""
    if summary_a is None or summary_b is None:
        return
    for row in rows:
        pa, pb = summary_a.per_query(row["check"], row["a"]), summary_b.per_query(row["check"], row["b"])
        if not pa or not pb:
            continue
        common = sorted(q for q in pa if q in pb and isinstance(pa[q], dict) and isinstance(pb[q], dict))
        names = [m for m in row["metrics"]
                 if common and all(_number(pa[q].get(m)) and _number(pb[q].get(m)) for q in common)]
        if not names:
            continue
        a = np.array([[pa[q][m] for m in names] for q in common], dtype=np.float64)
        b = np.array([[pb[q][m] for m in names] for q in common], dtype=np.float64)
        row["queries"] = len(common)
        for m, res in zip(names, stats.paired_columns(a, b, confidence=1.0 - alpha)):
            row["metrics"][m].update(interval=res["interval"], p_value=res["p_value"], test=res["test"],
                                     paired_delta=res["delta"])


def drop_gate(rows: list[dict], max_drop: dict[str, float], alpha: float) -> tuple[list[str], list[str]]:
    """`--max-drop`: (breaches, warnings). A metric B lost more than its margin on is a breach when the drop
    is significant (p < alpha), else a warning with its p-value. A metric no compared check reports in
    both runs is a usage error: the gate would judge nothing."""
    breaches: list[str] = []
    warnings: list[str] = []
    for metric, margin in max_drop.items():
        found = [(row, row["metrics"][metric]) for row in rows if metric in row["metrics"]]
        if not found and rows:
            known = sorted({m for row in rows for m in row["metrics"]})
            raise UsageError(Problem(f"--max-drop {metric}: no retrieval check of both runs reports {metric}",
                                     hint="name one they report: " + ", ".join(known[:12])))
        for row, d in found:
            drop = round(d["a"] - d["b"], 6)     # the metrics have 6 decimals: 0.90 − 0.88 is 0.02
            if drop <= margin:
                continue
            where = row["a"] if row["a"] == row["b"] else f"{row['a']} ↔ {row['b']}"
            said = f"{row['check']} [{where}]: {metric} {d['a']:.4f} → {d['b']:.4f} ({-drop:+.4f}"
            if d.get("p_value") is None:
                warnings.append(f"{said}), a drop beyond {margin:g}, but no per-query values to test it with")
            elif d["p_value"] < alpha:
                breaches.append(f"{said} {interval_text(d['interval'])}, p = {d['p_value']:.3g} < {alpha:g}): "
                                f"a significant drop beyond {margin:g}")
            else:
                warnings.append(f"{said} {interval_text(d['interval'])}, p = {d['p_value']:.3g} ≥ {alpha:g}): a drop "
                                f"beyond {margin:g} but not significant over "
                                f"{counted(row.get('queries') or 0, 'query')}: noise, "
                                "or more queries are needed to tell")
    return breaches, warnings


def interval_text(bounds: list[float]) -> str:
    return f"[{bounds[0]:+.3f}, {bounds[1]:+.3f}]"


def moved_text(name: str, d: dict) -> str:
    """`ndcg@10 0.921 → 0.850 (-0.071 [-0.120, -0.030], p = 0.002)`: a metric that moved, with its paired
    interval and p-value when the runs recorded per-query values."""
    if d.get("p_value") is None:
        return f"{name} {d['a']:.3f} → {d['b']:.3f} ({d['delta']:+.3f})"
    return (f"{name} {d['a']:.3f} → {d['b']:.3f} ({d['delta']:+.3f} {interval_text(d['interval'])}, "
            f"p = {d['p_value']:.3g})")
