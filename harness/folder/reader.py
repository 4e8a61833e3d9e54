"""The one reader of an output folder: every module that reads a run reads it through here."""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.folder import layout
from harness.folder.records import CellEntry, CellVectors, Execution, FolderError, Manifest
from harness.folder.summary import Summary
from harness.folder.verdict import WORD, CheckResult

STATUS = {word: status for status, word in WORD.items()}   # summary.json's word → CheckResult status


class RunReader:
    """Read the files of the output folder at `path`; a file that breaks the contract raises
    `FolderError` naming it."""

    def __init__(self, path: str | Path):
        self.path = Path(path)

    def _json(self, rel: str) -> Any:
        try:
            return json.loads((self.path / rel).read_text(encoding="utf-8"))
        except (ValueError, UnicodeDecodeError, RecursionError) as exc:   # RecursionError: nesting too deep
            raise FolderError(f"{rel} is not JSON ({exc})") from None
        except OSError as exc:
            raise FolderError(f"cannot read {rel}: {exc.strerror or exc}") from None

    def _jsonl(self, rel: str) -> list[Any]:
        try:
            lines = (self.path / rel).read_text(encoding="utf-8").splitlines()
        except UnicodeDecodeError as exc:
            raise FolderError(f"{rel} is not UTF-8 ({exc})") from None
        except OSError as exc:
            raise FolderError(f"cannot read {rel}: {exc.strerror or exc}") from None
        out = []
        for n, line in enumerate(lines, 1):
            if line.strip():
                try:
                    out.append(json.loads(line))
                except (ValueError, RecursionError):
                    raise FolderError(f"{rel} line {n} is not JSON") from None
        return out

    def has(self, rel: str) -> bool:
        return (self.path / rel).is_file()

    # --- the records

    def manifest(self) -> Manifest:
        return Manifest.from_json(self._json(layout.MANIFEST))

    def execution(self) -> Execution | None:
        """execution.json, or None for a run that was not executed."""
        if not self.has(layout.EXECUTION):
            return None
        return Execution.from_json(self._json(layout.EXECUTION))

    def vectors(self, cell_id: str, *, mmap: bool = False) -> CellVectors | None:
        """vectors/<cell>.npy and .ids.json, or None when the cell has no vectors file.
        `mmap` maps the file instead of reading it (for counting rows of large runs)."""
        npy, ids_rel = layout.vectors_file(cell_id), layout.ids_file(cell_id)
        if not self.has(npy):
            return None
        try:
            import numpy as np  # here: commands that read no vectors need not load it
            matrix = np.load(self.path / npy, allow_pickle=False, mmap_mode="r" if mmap else None)
        except Exception as exc:  # a truncated or foreign file
            raise FolderError(f"{npy} is not a readable .npy file ({exc})") from None
        if not self.has(ids_rel):
            raise FolderError(f"{ids_rel} is missing beside {npy}")
        ids = self._json(ids_rel)
        if matrix.ndim == 1 and matrix.size == 0:
            matrix = matrix.reshape(0, 0)
        if matrix.ndim != 2 or not isinstance(ids, list) or len(ids) != matrix.shape[0]:
            raise FolderError(
                f"vectors/{cell_id}: {len(ids) if isinstance(ids, list) else '?'} ids for "
                f"{matrix.shape[0] if matrix.ndim else '?'} rows (shape {tuple(matrix.shape)})")
        return CellVectors([str(i) for i in ids], matrix)

    def inputs(self) -> list[dict[str, Any]]:
        """inputs.jsonl rows in order; empty when the file is absent."""
        if not self.has(layout.INPUTS):
            return []
        rows = self._jsonl(layout.INPUTS)
        for n, row in enumerate(rows, 1):
            if not isinstance(row, dict) or not isinstance(row.get("id"), str):
                raise FolderError(f"{layout.INPUTS} line {n} is not an input (no \"id\")")
        return rows

    def input_ids(self) -> list[str]:
        return [r["id"] for r in self.inputs()]

    def planned_ids(self, cell_id: str) -> list[str] | None:
        """The inputs the plan sent to a cell (payloads/<cell>/index.jsonl), in order; a cell may
        take fewer than all inputs (a text-only model). None when the index is absent."""
        rel = layout.payload_index(cell_id)
        if not self.has(rel):
            return None
        return [str(i) for row in self.payload_index(cell_id) for i in row.get("inputs") or []]

    def payload_index(self, cell_id: str) -> list[dict[str, Any]]:
        rel = layout.payload_index(cell_id)
        rows = self._jsonl(rel)
        for n, row in enumerate(rows, 1):
            if not isinstance(row, dict) or not isinstance(row.get("file"), str):
                raise FolderError(f"{rel} line {n} is not a payload entry")
        return rows

    def responses(self, cell_id: str) -> list[dict[str, Any]]:
        """responses/<cell>.jsonl rows; empty when the cell was not executed."""
        rel = layout.responses_file(cell_id)
        return [r for r in self._jsonl(rel) if isinstance(r, dict)] if self.has(rel) else []

    def summary(self) -> dict[str, Any] | None:
        """summary.json's content as JSON (the bytes the other reports project); `Run.summary` is its record."""
        return self._json(layout.SUMMARY) if self.has(layout.SUMMARY) else None

    def results(self) -> list[CheckResult]:
        """The run's check results, as summary.json recorded them (the reports' one source)."""
        summary = self.summary()
        if summary is None:
            raise FolderError(f"no {layout.SUMMARY}: the folder was written by an older harness; run the spec again")
        checks = summary.get("checks") if isinstance(summary, dict) else None
        if not isinstance(checks, list):
            raise FolderError(f"{layout.SUMMARY} has no \"checks\" list")
        try:
            return [CheckResult(c["name"], bool(c["passed"]), c.get("detail") or "", c.get("cell"),
                                c.get("kind") or "offline", c.get("data") or {}, status=STATUS.get(c.get("status"), ""))
                    for c in checks]
        except (KeyError, TypeError):
            raise FolderError(f"{layout.SUMMARY}: a check has no name or passed flag") from None

    def validate_lines(self) -> list[str]:
        if not self.has(layout.VALIDATE):
            return []
        return (self.path / layout.VALIDATE).read_text(encoding="utf-8", errors="replace").splitlines()


class NotARun(FolderError):
    """`open_run` was given a path that holds no output folder; `why` says how: "missing", "not a
    folder" or "no manifest" (no manifest.json in it), so each command words it its own way."""

    def __init__(self, path: Path, why: str):
        super().__init__(f"{path}: {why}")
        self.path, self.why = path, why


@dataclass
class Run:
    """An output folder opened by `open_run`: its manifest read and typed once, the other records
    read when first asked, every file through `read`, the folder's one reader."""

    path: Path
    manifest: Manifest
    read: RunReader

    @property
    def cells(self) -> list[CellEntry]:
        return self.manifest.entries()

    @functools.cached_property
    def execution(self) -> Execution | None:
        """execution.json, or None for a run that was not executed."""
        return self.read.execution()

    @functools.cached_property
    def summary(self) -> Summary | None:
        """summary.json, or None for a folder an older harness wrote."""
        data = self.read.summary()
        return Summary.from_json(data) if data is not None else None


def open_run(path: str | Path, manifest: Manifest | None = None) -> Run:
    """Open the output folder at `path`: `NotARun` when there is none, `FolderError` when its
    manifest.json breaks the contract. `manifest` stands in for manifest.json while a run is still
    building the folder (the runner exports before `finalize` writes it)."""
    path = Path(path)
    if not path.exists():
        raise NotARun(path, "missing")
    if not path.is_dir():
        raise NotARun(path, "not a folder")
    read = RunReader(path)
    if manifest is None and not read.has(layout.MANIFEST):
        raise NotARun(path, "no manifest")
    return Run(path, manifest or read.manifest(), read)
