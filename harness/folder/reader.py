"""The one reader of an output folder: every module that reads a run reads it through here."""

from __future__ import annotations

import contextlib
import functools
import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from harness.folder import layout, scan
from harness.folder.records import CellEntry, CellVectors, Execution, FolderError, Manifest, shaped
from harness.folder.summary import Summary, SummaryCheck
from harness.folder.verdict import WORD, CheckResult

STATUS = {word: status for status, word in WORD.items()}   # summary.json's word → CheckResult status

# The fields of a line of each JSONL file and their JSON types (`shaped`); a line of other types is a FolderError.
ROWS = {
    layout.INPUTS: {"id": str, "modality": (str, None), "parts": [dict]},
    "index": {"file": str, "sha256": str, "inputs": [str], "contents": int},
    "responses": {"file": (str, None), "request_id": (str, None), "status": (int, None), "attempts": (int, None),
                  "latency_ms": (float, None), "cache_hit": (bool, None), "usage": (dict, None),
                  "error": ({"status": (int, None), "code": (str, None), "message": (str, None),
                             "request_id": (str, None)}, None),
                  "replica": (str, None), "uploads": (list, None)},
}


class RunReader:
    """Read the files of the output folder at `path`; a file that breaks the contract raises
    `FolderError` naming it. Every read goes through `scan`: regular files only, no link followed,
    none longer than a cap, nor than `sizes` records (`verify` gives the manifest's sizes, format 2)."""

    def __init__(self, path: str | Path, sizes: dict[str, int] | None = None):
        self.path = Path(path)
        self.sizes = sizes or {}
        self._root, self._prefix = self.path, ""    # `within`: a folder inside, read through this one

    def within(self, sub: str) -> "RunReader":
        """A reader of the folder `sub` inside this one (`repeat/`), reading through this folder, so a
        link on the way is not followed either (a RunReader of `path / sub` would follow `sub`)."""
        scan.parts(sub)
        inner = RunReader(self.path / sub, {k[len(sub) + 1:]: v for k, v in self.sizes.items()
                                            if k.startswith(sub + "/")})
        inner._root, inner._prefix = self._root, f"{self._prefix}{sub}/"
        return inner

    def raw(self, rel: str, limit: int = scan.MAX_RECORD) -> bytearray:
        """The bytes of the file `rel` (see `scan.read_file`)."""
        return scan.read_file(self._root, self._prefix + rel, limit, self.sizes.get(rel), exact=False)

    def text(self, rel: str) -> str:
        try:
            return self.raw(rel).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise FolderError(f"{rel} is not UTF-8 ({exc})") from None

    def _json(self, rel: str) -> Any:
        try:
            return json.loads(self.text(rel))
        except (ValueError, RecursionError) as exc:   # RecursionError: nesting too deep
            raise FolderError(f"{rel} is not JSON ({exc})") from None

    def _jsonl(self, rel: str) -> list[Any]:
        out = []
        for n, line in enumerate(self.text(rel).split("\n"), 1):   # split on \n alone, as the writers write
            if line.strip():
                try:
                    out.append(json.loads(line))
                except (ValueError, RecursionError):
                    raise FolderError(f"{rel} line {n} is not JSON") from None
        return out

    def has(self, rel: str) -> bool:
        """Something is at `rel` (a link or a FIFO too: reading it then says what it is)."""
        return scan.entry_kind(self._root, self._prefix + rel) is not None

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
        data = (scan.map_file(self._root, self._prefix + npy, scan.MAX_FILE, self.sizes.get(npy), exact=False)
                if mmap else self.raw(npy, scan.MAX_FILE))
        matrix = _matrix(npy, data)
        if not self.has(ids_rel):
            raise FolderError(f"{ids_rel} is missing beside {npy}")
        ids = self._json(ids_rel)
        if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
            raise FolderError(f"{ids_rel} is not a list of input ids")
        if len(set(ids)) != len(ids):
            raise FolderError(f"{ids_rel} names an input twice")
        if len(ids) != matrix.shape[0]:
            raise FolderError(f"vectors/{cell_id}: {len(ids)} ids for {matrix.shape[0]} rows "
                              f"(shape {tuple(matrix.shape)})")
        return CellVectors(ids, matrix)

    def inputs(self) -> list[dict[str, Any]]:
        """inputs.jsonl rows in order; empty when the file is absent."""
        if not self.has(layout.INPUTS):
            return []
        rows = self._jsonl(layout.INPUTS)
        for n, row in enumerate(rows, 1):
            if not isinstance(row, dict) or not isinstance(row.get("id"), str):
                raise FolderError(f"{layout.INPUTS} line {n} is not an input (no \"id\")")
            shaped(row, ROWS[layout.INPUTS], f"{layout.INPUTS} line {n}")
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
            shaped(row, ROWS["index"], f"{rel} line {n}")
        return rows

    def payload_spans(self, cell_id: str) -> list[tuple[int, int]]:
        """(offset, length) of each request body in payloads/<cell>/requests.jsonl (evidence format 3
        on), in request order, the newline left out. A file that does not end in a newline (cut short)
        is a FolderError."""
        rel = layout.payload_bodies(cell_id)
        with self._bodies_file(cell_id) as data:
            spans, at, end = [], 0, len(data)
            while at < end:
                nl = data.find(b"\n", at)
                if nl < 0:
                    raise FolderError(f"{rel} does not end with a newline: its last request is cut short")
                spans.append((at, nl - at))
                at = nl + 1
        return spans

    @contextlib.contextmanager
    def _bodies_file(self, cell_id: str):
        """payloads/<cell>/requests.jsonl's bytes (mapped where it can be), closed after use."""
        rel = layout.payload_bodies(cell_id)
        data = scan.map_file(self._root, self._prefix + rel, scan.limit_for(rel), self.sizes.get(rel), exact=False)
        try:
            yield data
        finally:
            if hasattr(data, "close"):
                data.close()

    def payload_bodies(self, cell_id: str, evidence_format: int,
                       only: set[int] | None = None) -> Iterator[tuple[dict[str, Any], bytes]]:
        """(index entry, body bytes) of every request of a cell (`only`: of those numbers, 1-based), in
        request order, in the layout of `evidence_format` (the manifest's): from format 3 line N of
        requests.jsonl is request N; before, each entry names its own file, a plain name inside
        payloads/<cell>/. More or fewer bodies than the index lists is a FolderError."""
        entries = self.payload_index(cell_id)
        if evidence_format < layout.BODIES_FROM_FORMAT:
            for n, entry in enumerate(entries, 1):
                if only is None or n in only:
                    yield entry, bytes(self.raw(self._legacy_file(cell_id, entry["file"], n)))
            return
        rel = layout.payload_bodies(cell_id)
        spans = self.payload_spans(cell_id)
        if len(spans) != len(entries):
            raise FolderError(f"{rel} holds {len(spans)} request bodies, {layout.payload_index(cell_id)} "
                              f"lists {len(entries)}")
        with self._bodies_file(cell_id) as data:
            for n, (entry, (at, size)) in enumerate(zip(entries, spans), 1):
                if only is None or n in only:
                    yield entry, data[at:at + size]

    def payload_body(self, cell_id: str, n: int, evidence_format: int) -> bytes:
        """Request `n`'s body (1-based, the index's line `n`), byte for byte; FolderError when the
        cell has no request `n`."""
        entries = self.payload_index(cell_id)
        if not 1 <= n <= len(entries):
            raise FolderError(f"{layout.payload_index(cell_id)} lists {len(entries)} requests, not a request {n}")
        if evidence_format < layout.BODIES_FROM_FORMAT:
            return bytes(self.raw(self._legacy_file(cell_id, entries[n - 1]["file"], n)))
        spans = self.payload_spans(cell_id)
        if len(spans) < n:
            raise FolderError(f"{layout.payload_bodies(cell_id)} holds {len(spans)} request bodies, "
                              f"not a request {n}")
        at, size = spans[n - 1]
        with self._bodies_file(cell_id) as data:
            return bytes(data[at:at + size])

    @staticmethod
    def _legacy_file(cell_id: str, name: str, n: int) -> str:
        if "/" in name or "\\" in name or name in (".", ".."):
            raise FolderError(f"{layout.payload_index(cell_id)} entry {n} names {name!r}, not a payload file")
        return layout.payload_file(cell_id, name)

    def responses(self, cell_id: str) -> list[dict[str, Any]]:
        """responses/<cell>.jsonl rows; empty when the cell was not executed."""
        rel = layout.responses_file(cell_id)
        if not self.has(rel):
            return []
        rows = self._jsonl(rel)
        for n, row in enumerate(rows, 1):
            shaped(row, ROWS["responses"], f"{rel} line {n}")
        return rows

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
        out = []
        for n, c in enumerate(checks):
            c = SummaryCheck.from_json(c, f"{layout.SUMMARY}: checks[{n}]")   # each field of its type
            out.append(CheckResult(c.name, c.passed, c.detail or "", c.cell, c.kind or "offline", c.data or {},
                                   status=STATUS.get(c.status, "")))
        return out

    def validate_lines(self) -> list[str]:
        if not self.has(layout.VALIDATE):
            return []
        text = self.raw(layout.VALIDATE).decode("utf-8", errors="replace")
        return text.split("\n")[:-1] if text.endswith("\n") else text.split("\n")


def _matrix(rel: str, data) -> Any:
    """A .npy file's bytes (or a map of them) as a float32 matrix (rows, dimension), its header read
    before anything is allocated: another dtype, a shape its bytes do not hold, a header that is not
    numpy's is a FolderError."""
    import numpy as np  # here: commands that read no vectors need not load it
    from numpy.lib import format as npy

    try:
        head = io.BytesIO(bytes(data[:65536]))
        version = npy.read_magic(head)
        if version not in ((1, 0), (2, 0)):
            raise ValueError(f"format version {version}")
        read = npy.read_array_header_1_0 if version == (1, 0) else npy.read_array_header_2_0
        shape, fortran, dtype = read(head)
    except Exception as exc:  # a truncated or foreign file
        raise FolderError(f"{rel} is not a readable .npy file ({exc})") from None
    if dtype != np.dtype("<f4") or fortran:
        raise FolderError(f"{rel} holds {dtype}{' in Fortran order' if fortran else ''}, not float32 vectors")
    if shape == (0,):
        shape = (0, 0)
    if len(shape) != 2:
        raise FolderError(f"{rel} holds an array of shape {shape}, not a matrix of vectors")
    count = shape[0] * shape[1]
    if head.tell() + count * 4 != len(data):
        raise FolderError(f"{rel} is {len(data)} bytes, not the {head.tell() + count * 4} its header "
                          f"(shape {shape}) needs")
    return np.frombuffer(data, dtype=np.float32, count=count, offset=head.tell()).reshape(shape)


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
