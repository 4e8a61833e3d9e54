"""Parse: the run folder's manifest, where its spec and local inputs are, and the spec copy, read
once into a `VerifyContext` that every check layer (and re-execution) reads instead of the files."""

from __future__ import annotations

import dataclasses
import functools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.audit.verify.result import VerifyReport, short
from harness.errors import HarnessError, Problem, SpecError
from harness.evidence import sha256_bytes
from harness.folder import CellEntry, FolderError, Manifest, Run, RunReader, layout, open_run, scan
from harness.inputs.files import InputFiles, project_root
from harness.inputs.types import InputProblem
from harness.spec import yamlpos

if TYPE_CHECKING:
    from harness.catalog.load import Catalog
    from harness.spec.load import Spec


@dataclass
class VerifyContext:
    """An output folder as verify reads it. `spec` and `catalog` are read on first use, `spec`
    after `locate_spec` has set `base`."""

    run: Run                    # the folder, opened once: its typed manifest and its one reader
    raw: bytes                  # manifest.json as stored: its canonical form is checked on these bytes
    manifest: dict[str, Any]    # manifest.json as JSON: its digest is recomputed from it
    cells: list[CellEntry]      # the manifest's cells, typed
    files_table: bool = True    # False: the manifest has no `files` table, so no layer can check the folder
    base: Path | None = None    # where the spec's relative input paths start (None: unknown)
    roots: tuple[Path, ...] = ()   # where a recorded path may lead (`verify_roots`): never the folder's choice

    @property
    def folder(self) -> Path:
        return self.run.path

    @property
    def record(self) -> Manifest:
        return self.run.manifest

    def cell(self, cell_id: str) -> CellEntry | None:
        """The manifest's entry for `cell_id`; None when the run has no such cell."""
        return next((c for c in self.cells if c.id == cell_id), None)

    @functools.cached_property
    def spec(self) -> Spec | HarnessError:
        """The spec copy (spec.yaml), parsed once for everything verify re-derives from it, with its
        relative paths starting at `base`; or the HarnessError that says why it cannot be read."""
        from harness.spec.load import read_spec

        try:
            self.run.read.raw(layout.SPEC_COPY, yamlpos.MAX_BYTES)   # a regular file, no link, bounded
            spec = read_spec(self.folder / layout.SPEC_COPY)
        except FolderError as exc:
            return SpecError(Problem(str(exc), layout.SPEC_COPY))
        except HarnessError as exc:
            return exc
        return dataclasses.replace(spec, base_dir=self.base if self.base is not None else self.folder.resolve())

    @functools.cached_property
    def catalog(self) -> Catalog:
        """This machine's model catalog (re-derivation and re-execution plan with it)."""
        from harness.catalog.load import load_catalog

        return load_catalog()

    def local_files(self, roles: tuple[str, ...] = ("image", "video")) -> dict[str, Path]:
        """sha256 → path of the local files of `roles` the manifest records, resolved from `base` as a
        run resolves its inputs (inside `roots`); one that leads elsewhere, or any when `base` is
        unknown, is left out (a request naming it then fails, and says so)."""
        if self.base is None:
            return {}
        files, out = InputFiles(self.base, self.roots), {}
        for f in self.record.inputs.get("files") or []:
            if f.get("role") in roles and f.get("sha256"):
                try:
                    out[f["sha256"]] = files.resolve(f["path"], f["role"], ())
                except InputProblem:
                    continue
        return out

    def cell_of(self, path: str) -> str | None:
        """The cell whose payload files, vectors or responses `path` is one of, if any."""
        return next((cid for cid in self.record.cell_ids if path.startswith(f"{layout.payload_dir(cid)}/")
                     or path in (layout.vectors_file(cid), layout.ids_file(cid), layout.responses_file(cid))), None)


def open_folder(folder: Path, report: VerifyReport) -> VerifyContext | None:
    """The folder's manifest, or None when there is none to check against (said in `report`)."""
    reader = RunReader(folder)
    if not reader.has(layout.MANIFEST):
        report.add("missing", layout.MANIFEST, "no manifest.json: this is not a harness output folder, "
                   "or its manifest was deleted")
        return None
    try:
        raw = bytes(reader.raw(layout.MANIFEST))    # a regular file, no link followed, bounded
        manifest = json.loads(raw.decode("utf-8"))
    except FolderError as exc:
        report.add("manifest", layout.MANIFEST, str(exc))
        return None
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:   # RecursionError: nesting too deep
        report.add("manifest", layout.MANIFEST, f"is not valid JSON ({exc}); it was damaged or edited")
        return None
    untabled = not isinstance(manifest, dict) or "files" not in manifest
    try:
        record = Manifest.from_json(manifest)    # every field of its type (files, inputs, spec, filter, ...)
        cells = record.entries()                 # and each cell's fields of their types
    except FolderError as exc:
        report.add("manifest", layout.MANIFEST, "has no `files` table; it was damaged or edited" if untabled
                   else f"{exc}; it was damaged or edited")
        return None
    if untabled:      # still a manifest re-execution can read
        report.add("manifest", layout.MANIFEST, "has no `files` table; it was damaged or edited")
    run = open_run(folder, record)
    run.read.sizes = record.sizes or {}          # no read goes past the size the manifest records
    return VerifyContext(run, raw, manifest, cells, files_table=not untabled)


def verify_roots(folder: Path, spec_dir: Path | None, allow_paths: tuple | list = ()) -> tuple[Path, ...]:
    """Where the paths a folder records may lead, as for a run's inputs, and never chosen by the
    folder: the project of `--spec-dir` (the git work tree holding it, else it), else the git work
    tree holding the run folder, else the current folder; then each `--allow-path` folder."""
    if spec_dir is not None:
        first = project_root(Path(spec_dir).resolve())
    else:
        tree = project_root(folder.resolve())
        first = tree if (tree / ".git").exists() else Path.cwd().resolve()
    return (first, *(Path(a).resolve() for a in allow_paths))


def locate_spec(context: VerifyContext, spec_dir: Path | None, report: VerifyReport,
                allow_paths: tuple | list = ()) -> None:
    """Set `context.base`, where the local inputs live: `spec_dir` if given, else beside the
    original spec when the manifest's relative path still leads to it (and it is the same spec,
    changed or not) inside `verify_roots`: a recorded path that leads elsewhere is not read."""
    folder, spec = context.folder, context.record.spec
    context.roots = verify_roots(folder, spec_dir, allow_paths)
    copy = spec.get("copy")
    if copy is not None and copy != layout.SPEC_COPY:
        report.add("manifest", layout.MANIFEST, f"spec.copy is {copy!r}: a run's spec copy is {layout.SPEC_COPY}, "
                   "which is the one read")
    try:
        digest = sha256_bytes(context.run.read.raw(layout.SPEC_COPY, yamlpos.MAX_BYTES))
    except FolderError:
        digest = None                            # missing or not a file: the files layer says so
    if digest is not None and spec.get("sha256") and digest != spec["sha256"]:
        report.add("spec", layout.SPEC_COPY, "the spec copy differs from the spec that was run (sha256 "
                   f"{short(digest)}, recorded {short(spec['sha256'])})")
    original = _original(context, spec.get("path"), report)
    if original is not None:
        path, raw = original
        digest = sha256_bytes(raw)
        if digest == spec.get("sha256"):
            report.spec_source = str(path)
            report.notes.append(f"original spec unchanged at {path}")
        elif _same_spec_name(raw, spec.get("name")):
            report.spec_source = str(path)
            report.add("spec", str(spec.get("path")), f"the spec at {path} changed since the run (sha256 "
                       f"{short(digest)}, recorded {short(spec.get('sha256'))}); payloads are re-derived from the "
                       "copy spec.yaml")
        else:
            original = None
    if spec_dir is not None:
        context.base = Path(spec_dir).resolve()
    else:
        context.base = original[0].parent if original is not None else None


def _original(context: VerifyContext, rel: str | None, report: VerifyReport) -> tuple[Path, bytes] | None:
    """The original spec the manifest's relative `spec.path` leads to and its bytes, when it lies
    inside `context.roots` (confined as a run's inputs are) and is a regular file; else None,
    with a note saying why (nothing of a file outside the roots is read or shown)."""
    if not rel:
        return None
    files = InputFiles(context.folder.resolve(), context.roots)
    try:
        path = files.resolve(rel, "the original spec", ())
    except InputProblem:
        report.notes.append(f"the original spec recorded at {rel!r} is not looked for: that path leads outside "
                            f"{context.roots[0]} (pass --spec-dir DIR, the spec's folder); the copy spec.yaml is used")
        return None
    try:
        return path, scan.read_path(path, yamlpos.MAX_BYTES)
    except (FolderError, OSError):
        report.notes.append(f"the original spec is not at {path} (the folder was moved or copied); "
                            "the copy spec.yaml is used")
        return None


def _same_spec_name(raw: bytes, name: str | None) -> bool:
    """A file at the recorded relative path may be another spec when the folder moved."""
    try:
        data, _ = yamlpos.load(raw.decode("utf-8"))
    except Exception:
        return False
    return isinstance(data, dict) and data.get("name") == name
