"""Parse: the run folder's manifest, where its spec and local inputs are, and the spec copy, read
once into a `VerifyContext` that every check layer (and re-execution) reads instead of the files."""

from __future__ import annotations

import dataclasses
import functools
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.audit.verify.result import VerifyReport, short
from harness.errors import HarnessError
from harness.evidence import sha256_file
from harness.folder import CellEntry, FolderError, Manifest, Run, layout, open_run

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
    base: Path | None = None    # the project root: where the spec's relative input paths start (None: unknown)

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
            spec = read_spec(self.folder / layout.SPEC_COPY)
        except HarnessError as exc:
            return exc
        return dataclasses.replace(spec, base_dir=self.base if self.base is not None else self.folder.resolve())

    @functools.cached_property
    def catalog(self) -> Catalog:
        """This machine's model catalog (re-derivation and re-execution plan with it)."""
        from harness.catalog.load import load_catalog

        return load_catalog()

    def cell_of(self, path: str) -> str | None:
        """The cell whose payload files, vectors or responses `path` is one of, if any."""
        return next((cid for cid in self.record.cell_ids if path.startswith(f"{layout.payload_dir(cid)}/")
                     or path in (layout.vectors_file(cid), layout.ids_file(cid), layout.responses_file(cid))), None)


def open_folder(folder: Path, report: VerifyReport) -> VerifyContext | None:
    """The folder's manifest, or None when there is none to check against (said in `report`)."""
    path = folder / layout.MANIFEST
    if not path.is_file():
        report.add("missing", layout.MANIFEST, "no manifest.json: this is not a harness output folder, "
                   "or its manifest was deleted")
        return None
    raw = path.read_bytes()
    try:
        manifest = json.loads(raw.decode("utf-8"))
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:   # RecursionError: nesting too deep
        report.add("manifest", layout.MANIFEST, f"is not valid JSON ({exc}); it was damaged or edited")
        return None
    untabled = not isinstance(manifest, dict) or "files" not in manifest
    try:
        record = Manifest.from_json(manifest)    # the record's shape (a cells list of objects with ids, ...)
        cells = record.entries()                 # and each cell's fields of their types
    except FolderError as exc:
        report.add("manifest", layout.MANIFEST, "has no `files` table; it was damaged or edited" if untabled
                   else f"{exc}; it was damaged or edited")
        return None
    if untabled:      # still a manifest re-execution can read
        report.add("manifest", layout.MANIFEST, "has no `files` table; it was damaged or edited")
    return VerifyContext(open_run(folder, record), raw, manifest, cells, files_table=not untabled)


def locate_spec(context: VerifyContext, spec_dir: Path | None, report: VerifyReport) -> None:
    """Set `context.base`, where the local inputs live: `spec_dir` if given, else beside the
    original spec when the manifest's relative path still leads to it (and it is the same spec,
    changed or not)."""
    folder, spec = context.folder, context.record.spec
    copy = folder / (spec.get("copy") or "spec.yaml")
    if copy.is_file() and spec.get("sha256") and sha256_file(copy) != spec["sha256"]:
        report.add("spec", copy.name, "the spec copy differs from the spec that was run (sha256 "
                   f"{short(sha256_file(copy))}, recorded {short(spec['sha256'])})")
    rel = spec.get("path")
    original = Path(os.path.normpath(folder / rel)) if rel else None
    if original is not None and original.is_file():
        digest = sha256_file(original)
        if digest == spec.get("sha256"):
            report.spec_source = str(original)
            report.notes.append(f"original spec unchanged at {original}")
        elif _same_spec_name(original, spec.get("name")):
            report.spec_source = str(original)
            report.add("spec", str(rel), f"the spec at {original} changed since the run (sha256 {short(digest)}, "
                       f"recorded {short(spec.get('sha256'))}); payloads are re-derived from the copy spec.yaml")
        else:
            original = None
    elif original is not None:
        report.notes.append(f"the original spec is not at {original} (the folder was moved or copied); "
                            "the copy spec.yaml is used")
        original = None
    if spec_dir is not None:
        context.base = Path(spec_dir).resolve()
    else:
        context.base = original.parent if original is not None else None


def _same_spec_name(path: Path, name: str | None) -> bool:
    """A file at the recorded relative path may be another spec when the folder moved."""
    try:
        from harness.spec import yamlpos
        data, _ = yamlpos.load(path.read_text(encoding="utf-8"))
    except Exception:
        return False
    return isinstance(data, dict) and data.get("name") == name
