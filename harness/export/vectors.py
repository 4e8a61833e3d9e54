"""The run's vectors as `export` reads them (through `open_run`), checked before anything is loaded anywhere.

A folder that was not executed, a cell without vectors, or vectors that disagree with manifest.json
are refused here, so no collection is touched for them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from harness.errors import HarnessError, MismatchError, Problem, UsageError
from harness.folder import CellEntry, FolderError, Manifest, NotARun, Run, layout, open_run, scan

MAX_ID_LENGTH = 1024              # VARCHAR length of the input_id field (bytes)

HINT_RUN = "run `harness run SPEC --execute` first; `harness export` loads the vectors an executed run wrote"


@dataclass(frozen=True)
class ExportCell:
    """One cell's vectors as the run wrote them (rows in input order), with what the collection
    records about them: model, provider, each input's modality, the file's sha256."""

    cell: str
    model: str
    provider: str
    dimension: int
    ids: list[str]
    modalities: list[str]
    vectors: np.ndarray            # float32, shape (len(ids), dimension)
    sha256: str                    # of vectors/<cell>.npy


@dataclass
class RunFolder:
    """What `export` needs from an output folder, checked before anything is loaded anywhere."""

    opened: Run
    modality: dict[str, str]                     # input id -> modality
    input_order: list[str]
    not_executed: dict[str, str] = field(default_factory=dict)  # cell id -> reason

    @property
    def path(self) -> Path:
        return self.opened.path

    @property
    def manifest(self) -> Manifest:
        return self.opened.manifest

    @property
    def cell_ids(self) -> list[str]:
        return self.manifest.cell_ids

    @property
    def executed_cells(self) -> list[str]:
        return [c for c in self.cell_ids if c not in self.not_executed]


def damaged_folder(exc: FolderError, folder: Path) -> HarnessError:
    return MismatchError(Problem(f"{folder}: {exc}", hint="the output folder is damaged; run `harness verify` on it "
                                "or run the spec again"))


_NOT_A_RUN = {
    "missing": lambda path: Problem(f"output folder {path} does not exist", hint=HINT_RUN),
    "not a folder": lambda path: Problem(f"{path} is not a folder",
                                         hint="pass the run's output folder, e.g. output/<spec name>"),
    "no manifest": lambda path: Problem(f"{path} is not a harness output folder (no manifest.json)",
                                        hint="pass the folder `harness run` wrote, e.g. output/<spec name>"),
}


def read_run(folder: str | os.PathLike, manifest: Manifest | None = None) -> RunFolder:
    """Open an output folder and find which cells were executed; no vectors are read yet.

    `manifest` stands in for manifest.json while the runner is still building the folder
    (it exports before `finalize` writes the manifest)."""
    path = Path(folder)
    try:
        opened = open_run(path, manifest)
        inputs = opened.read.inputs()
        execution = opened.execution
    except NotARun as exc:
        raise UsageError(_NOT_A_RUN[exc.why](path)) from None
    except FolderError as exc:
        raise damaged_folder(exc, path) from None
    modality = {row["id"]: str(row.get("modality") or "unknown") for row in inputs}
    reasons = {c.id: c.reason.text if c.reason else "not executed"
               for c in (execution.cells if execution else []) if not c.executed}
    not_executed = {}
    for cid in opened.manifest.cell_ids:
        if not opened.read.has(layout.vectors_file(cid)) or not opened.read.has(layout.ids_file(cid)):
            not_executed[cid] = reasons.get(cid) or ("no vectors file" if execution else
                                                     "not executed: the run had no --execute")
        elif cid in reasons:
            not_executed[cid] = reasons[cid]
    return RunFolder(opened, modality=modality, input_order=[row["id"] for row in inputs], not_executed=not_executed)


def select_cells(run: RunFolder, cells: list[str] | None) -> tuple[list[str], list[str]]:
    """(cells to export, cells skipped because they were not executed)."""
    if cells:
        unknown = [c for c in cells if c not in run.cell_ids]
        if unknown:
            raise UsageError(Problem(f"cell {unknown[0]} is not in this run",
                                       hint=f"its cells are: {', '.join(run.cell_ids)}"))
        missing = [c for c in cells if c in run.not_executed]
        if missing:
            raise UsageError(Problem(f"cell {missing[0]} has no vectors ({run.not_executed[missing[0]]})",
                                       hint=HINT_RUN))
        return list(dict.fromkeys(cells)), []
    chosen = run.executed_cells
    if not chosen:
        raise UsageError(Problem(f"{run.path} has no vectors: the run was planned but not executed",
                                   hint=HINT_RUN))
    return chosen, [c for c in run.cell_ids if c in run.not_executed]


def load_cell(run: RunFolder, cell_id: str) -> ExportCell:
    """Read one cell's vectors and ids, checked against the manifest (shape, dimension, hashes)."""
    vrel, irel = layout.vectors_file(cell_id), layout.ids_file(cell_id)
    vpath, ipath = run.path / vrel, run.path / irel

    def damaged(message: str, file: Path, hint: str = "run `harness verify` on the folder, or run the spec again"):
        return MismatchError(Problem(message, file=str(file), hint=hint))

    recorded = run.manifest.files
    for rel, p in ((vrel, vpath), (irel, ipath)):
        if rel not in recorded:
            continue
        try:     # a regular file inside the folder, no link followed, bounded
            digest = scan.hash_file(run.path, rel, scan.limit_for(rel))
        except FolderError as exc:
            raise damaged(str(exc), p) from None
        if recorded[rel] != digest:
            raise damaged(f"{rel} changed since the run (its sha256 differs from manifest.json)", p)
    try:
        cell = run.manifest.entry(cell_id) or CellEntry(cell_id)
    except FolderError as exc:
        raise damaged_folder(exc, run.path) from None
    try:
        loaded = run.opened.read.vectors(cell_id)
    except FolderError as e:
        raise damaged(str(e), vpath) from None
    if loaded is None:
        raise damaged("no vectors file", vpath)
    ids, vectors = loaded.ids, loaded.matrix
    dimension = cell.dimension or 0
    if dimension and vectors.shape[1] != dimension:
        raise damaged(f"vectors have {vectors.shape[1]} dimensions but manifest.json says cell {cell_id} "
                      f"has {dimension}", vpath)
    if len(set(ids)) != len(ids):
        raise damaged("input ids repeat; each input must have exactly one vector per cell", ipath)
    too_long = [i for i in ids if len(i.encode("utf-8")) > MAX_ID_LENGTH]
    if too_long:
        raise damaged(f"input id {too_long[0][:40]!r}... is longer than {MAX_ID_LENGTH} bytes", ipath,
                      hint="shorten the input ids in the spec")
    if run.modality:
        unknown = [i for i in ids if i not in run.modality]
        if unknown:
            raise damaged(f"input id {unknown[0]!r} is not in inputs.jsonl", ipath)
    if not np.all(np.isfinite(vectors)):
        raise damaged("vectors contain NaN or infinity", vpath)
    return ExportCell(
        cell=cell_id,
        model=cell.model or cell_id,
        provider=cell.provider or "",
        dimension=int(vectors.shape[1]),
        ids=ids,
        modalities=[run.modality.get(i, "unknown") for i in ids],
        vectors=np.ascontiguousarray(vectors, dtype=np.float32),
        sha256=scan.hash_file(run.path, vrel),
    )
