"""What a check kind reads in one cell (`Ctx`) and the shape of what it gives back, shared by every kind.

A kind is a function `(body, ctx) -> (trials, failures, detail, data)`: `body` is the check's mapping in the
spec, `detail` the line's text, `data` what summary.json records for it.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Callable, Iterable

from harness.folder import EVIDENCE_FORMAT, CellExecution, CellVectors
from harness.inputs.files import InputFiles

SKIP = "skip"          # key in a kind's data: every trial was about inputs this cell does not take
OUTPUTS = "_outputs"   # key in a kind's data: files it gives the run folder ({what: (relative path, bytes)})
VACUOUS = "vacuous"    # key in a kind's data: why the check holds for any vectors (a pass then proves nothing)

Outcome = tuple[int, int, str, dict]   # trials, failures, detail, data


class Ctx:
    """What every check in one cell can read. `input_ids` are the inputs planned for this
    cell: an input the cell never takes (an image for a text-only model) is left out of its
    trials, while a planned input without a vector is a failure."""

    def __init__(self, folder: Path, cell: dict, vectors: CellVectors, input_ids: list[str], spec_dir: Path,
                 name: str = "", files: InputFiles | None = None, evidence_format: int = EVIDENCE_FORMAT,
                 info: CellExecution | None = None):
        self.folder, self.cell, self.vectors, self.input_ids, self.spec_dir = folder, cell, vectors, input_ids, spec_dir
        self.name = name
        # the folder's evidence format (`verify` re-derives an earlier one as it was written) and the
        # cell's entry in execution.json (None when there is none)
        self.format, self.info = evidence_format, info
        # the confinement the run was planned with: a check reading the spec's files (qrels,
        # captions) reads them as the plan did, never a link out of the project or a FIFO
        self.files = files if files is not None else InputFiles.for_spec(spec_dir)
        self.planned = set(input_ids) if input_ids else set(vectors.ids)

    def missing(self, ids: Iterable[str]) -> list[str]:
        return [i for i in ids if i not in self.vectors.index]

    def takes(self, *ids: str) -> bool:
        return all(i in self.planned for i in ids)


Kind = Callable[[dict, Ctx], Outcome]


def json_number(x: float) -> float:
    """A number safe for canonical JSON (no NaN/Infinity), rounded for stable reports."""
    return round(float(x), 6) if math.isfinite(x) else 0.0


def listed(items: list[str], limit: int = 5) -> str:
    """The first `limit` items, comma separated, and how many more: a detail line stays short."""
    shown = ", ".join(items[:limit])
    return shown + (f" and {len(items) - limit} more" if len(items) > limit else "")
