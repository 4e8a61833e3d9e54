"""The `stability` check: this cell's vectors against an earlier run's (`against:` a folder) or a second
execution in this run (`repeat:`), input by input, by cosine."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from harness.checks import metrics as M
from harness.checks.context import Ctx, Outcome, json_number, listed
from harness.folder import FolderError, RunReader
from harness.folder.layout import REPEAT_DIR
from harness.inputs.types import InputProblem
from harness.words import counted

DEFAULT_MIN_COSINE = 0.99


def check_stability(body: dict, ctx: Ctx) -> Outcome:
    """Data: `against` (what it compares with), `earlier_found` (False when that folder, or this cell's vectors in
    it, is not there: `verify` then cannot re-derive the line), and the cosines when it compared."""
    if body.get("repeat"):
        base, other = ctx.folder / REPEAT_DIR, "a second execution in this run"
    else:
        against = Path(body["against"])
        base, other = (against if against.is_absolute() else ctx.spec_dir / against), str(body["against"])
    cell_id = ctx.cell["id"]
    data: dict[str, Any] = {"against": other, "earlier_found": True}
    if not body.get("repeat"):
        # the earlier run is read through the run's confinement, as every file a spec names: a
        # stranger's spec cannot point it outside the project (nor into a git directory)
        try:
            ctx.files.resolve(other, "the earlier run", ())
        except InputProblem as exc:
            return 1, 1, f"cannot compare with {other}: {exc.message}", data
    # repeat/ is read through the run's folder, so a link there is not followed (RunReader(base) would)
    reader = RunReader(ctx.folder).within(REPEAT_DIR) if body.get("repeat") else RunReader(base)
    try:
        earlier = reader.vectors(cell_id)
    except FolderError as exc:
        return 1, 1, f"earlier run {base}: {exc}", data
    if earlier is None:
        where = "no such folder" if not base.is_dir() else f"it has no vectors/{cell_id}.npy"
        data["earlier_found"] = False
        return 1, 1, f"cannot compare with {base}: {where} (point `against` at an executed run's output folder)", data
    need = float(body.get("min_cosine", DEFAULT_MIN_COSINE))
    ids = ctx.input_ids or ctx.vectors.ids
    both = [i for i in ids if i in ctx.vectors.index and i in earlier.index]
    lacking = [i for i in ids if i not in both]
    if earlier.dimension != ctx.vectors.dimension:
        return len(ids), len(ids), (f"dimension {ctx.vectors.dimension} here, {earlier.dimension} in {other}"), data
    cos = M.rowwise_cosine(ctx.vectors.rows(both), earlier.rows(both)) if both else np.zeros(0)
    low = [(i, c) for i, c in zip(both, cos.tolist()) if not c >= need]  # NaN (non-finite vectors) fails
    failures = len(low) + len(lacking)
    data.update({"min_cosine": json_number(cos.min()) if cos.size else None,
                 "median_cosine": json_number(float(np.median(cos))) if cos.size else None,
                 "threshold": need, "compared": len(both)})
    parts = [f"{counted(len(both), 'input')} compared with {other}"]
    if cos.size:
        parts.append(f"cosine min {cos.min():.4f}, median {np.median(cos):.4f} (want ≥ {need:g})")
    if low:
        parts.append("below: " + listed([f"{i} ({c:.4f})" for i, c in sorted(low, key=lambda x: x[1])]))
    if lacking:
        parts.append(f"missing in one run: {listed(lacking)}")
    return len(ids), failures, "; ".join(parts), data
