"""The `vectors` check: every planned input has a vector of the asked dimension, finite, its norm within bounds."""

from __future__ import annotations

import numpy as np

from harness.checks.context import Ctx, Outcome, json_number, listed
from harness.words import counted


def check_vectors(body: dict, ctx: Ctx) -> Outcome:
    v = ctx.vectors
    want = ctx.cell.get("dimension")
    lo, hi = body.get("norm_min"), body.get("norm_max")
    expected_ids = ctx.input_ids or v.ids
    missing = ctx.missing(expected_ids)
    problems: list[str] = []
    failures = len(missing)
    if missing:
        problems.append(f"no vector for {listed(missing)}")
    if want is not None and v.dimension != int(want):
        problems.append(f"dimension {v.dimension}, asked for {want}")
        failures = len(expected_ids)
        norms = np.zeros(0)
    else:
        finite = np.isfinite(v.matrix).all(axis=1) if v.matrix.size else np.ones(len(v.ids), bool)
        norms = np.linalg.norm(np.where(np.isfinite(v.matrix), v.matrix, 0).astype(np.float64), axis=1)
        bad_finite = [v.ids[i] for i in np.flatnonzero(~finite)]
        in_range = np.ones(len(v.ids), bool)
        if lo is not None:
            in_range &= norms >= float(lo) - 1e-9
        if hi is not None:
            in_range &= norms <= float(hi) + 1e-9
        bad_norm = [v.ids[i] for i in np.flatnonzero(finite & ~in_range)]
        if bad_finite:
            problems.append(f"non-finite values in {listed(bad_finite)}")
        if bad_norm:
            worst = [f"{i} ({norms[v.index[i]]:.4f})" for i in bad_norm]
            bounds = f"[{lo if lo is not None else 0}, {hi if hi is not None else '∞'}]"
            problems.append(f"norm outside {bounds} for {listed(worst)}")
        failures += len(bad_finite) + len(bad_norm)
    trials = len(expected_ids)
    data = {"dimension": v.dimension, "expected_dimension": want, "count": len(v.ids),
            "norm_min": json_number(norms.min()) if norms.size else None,
            "norm_max": json_number(norms.max()) if norms.size else None}
    detail = "; ".join(problems) if problems else (
        f"{counted(trials, 'vector')} of dimension {v.dimension}, finite"
        + (f", norms {data['norm_min']:.4f}..{data['norm_max']:.4f}" if norms.size else ""))
    return trials, failures, detail, data
