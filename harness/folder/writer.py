"""The one writer of an output folder's evidence files (`harness.report.finalize` writes the
reports and the manifest)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterable

from harness.evidence import atomic_write, atomic_writer, canonical_json, sha256_bytes
from harness.folder import layout
from harness.folder.records import CellVectors, Execution

BLOCK_BYTES = 4 << 20     # rows of a vectors file are converted and written this many bytes at a time


class RunWriter:
    """Write the records of the output folder at `path`, each file atomically. `hashes` holds
    the sha256 of every file written, so `finalize` need not read them back."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.hashes: dict[str, str] = {}

    def _write(self, rel: str, data: bytes) -> None:
        atomic_write(self.path / rel, data)
        self.hashes[rel] = sha256_bytes(data)

    def execution(self, execution: Execution) -> None:
        self._write(layout.EXECUTION, canonical_json(execution.to_json(), pretty=True))

    def vectors(self, cell_id: str, vectors: CellVectors, keep=None) -> None:
        """vectors/<cell>.npy (float32) and .ids.json; with `keep` (a mask over the rows) only the
        rows and ids it keeps. Streamed: the .npy header (np.save's very bytes), then the rows a
        block at a time, so memory stays at one block, not a copy of the matrix."""
        import numpy as np  # here: commands that read no vectors need not load it
        from numpy.lib import format as npy

        matrix, ids = vectors.matrix, list(vectors.ids)
        if keep is not None and not keep.all():
            ids = [i for i, k in zip(ids, keep) if k]
        else:
            keep = None
        f32 = np.dtype(np.float32)
        shape = (len(ids), *matrix.shape[1:]) if keep is not None else matrix.shape
        rows = max(1, BLOCK_BYTES // max(1, f32.itemsize * int(np.prod(matrix.shape[1:], dtype=np.int64))))
        rel = layout.vectors_file(cell_id)
        with atomic_writer(self.path / rel) as f:
            npy.write_array_header_1_0(f, {"descr": npy.dtype_to_descr(f32), "fortran_order": False, "shape": shape})
            for start in range(0, len(matrix), rows):
                block = matrix[start:start + rows]
                if keep is not None:
                    block = block[keep[start:start + rows]]
                if block.size:
                    f.write(memoryview(np.ascontiguousarray(block, dtype=f32)).cast("B"))
        self.hashes[rel] = f.sha256
        self._write(layout.ids_file(cell_id), canonical_json(ids, pretty=True))

    def responses(self, cell_id: str, rows: Iterable[dict[str, Any]]) -> None:
        lines = [json.dumps(r, sort_keys=True, ensure_ascii=False, separators=(",", ":")) for r in rows]
        self._write(layout.responses_file(cell_id), ("\n".join(lines) + "\n").encode("utf-8") if lines else b"")

    def check_output(self, rel: str, data: bytes) -> None:
        """A file a check gives the folder (a retrieval check's MTEB result and model_meta.json, run file
        and qrels: checks/retrieval_files.py)."""
        self._write(rel, data)

    def run_facts(self, facts: dict[str, Any]) -> None:
        self._write(layout.RUN, canonical_json(facts, pretty=True))
