"""Layers 1 and 2: the manifest's canonical bytes and roll-up digest; every file against the sha256
the manifest recorded (missing, extra, changed). All a folder moved to another machine still proves."""

from __future__ import annotations

from harness.audit.verify.parse import VerifyContext
from harness.audit.verify.result import VerifyReport, short
from harness.evidence import canonical_json
from harness.folder import FolderError, layout, scan
from harness.folder import manifest as manifest_mod


def check_manifest(context: VerifyContext, report: VerifyReport) -> None:
    manifest = context.manifest
    try:
        canonical = canonical_json(manifest, pretty=True)
    except ValueError:
        canonical = b""
    if context.raw != canonical:
        report.add("manifest", layout.MANIFEST, "bytes differ from its canonical form: it was edited after "
                   "the run")
    try:
        recomputed = manifest_mod.digest(manifest)
    except ValueError:                  # NaN or Infinity, which canonical JSON refuses
        recomputed = None
    if recomputed != context.record.digest:
        report.add("manifest", layout.MANIFEST, f"digest mismatch: recorded {short(context.record.digest)}, "
                   f"recomputed {short(recomputed)}; a recorded field was changed")


def check_files(context: VerifyContext, report: VerifyReport) -> dict[str, str]:
    """Hash the folder; returns {relative path: sha256} of what is there, for the later layers.

    The folder is walked without following a link (`scan`): a link, a FIFO, a device or an empty
    folder is extra (or, under a recorded name, a changed file), never read. A file whose size is not
    the one the manifest records (evidence format 2) is changed without being read; every other read
    stops at the recorded size (a format-1 folder records none) and at what a run writes into such a
    file at most (`scan.limit_for`: a forger may record any size)."""
    record, folder = context.record, context.folder
    recorded, sizes = record.files, record.sizes or {}
    found = scan.scan(folder, exclude=layout.UNHASHED)
    if record.format >= 2:
        for path in sorted(set(recorded) - set(sizes)):
            report.add("manifest", layout.MANIFEST, f"records no size for {path}, which its format "
                       f"({record.format}) records for every file", cell=context.cell_of(path))
        for path in sorted(set(sizes) - set(recorded)):
            report.add("manifest", layout.MANIFEST, f"records a size for {path}, which its file table does not list")
    for entry in found.odd:
        name = entry.path.rstrip("/")
        kind = "changed" if name in recorded else "extra"
        report.add(kind, entry.path, entry.describe(), cell=context.cell_of(name))
    odd = {e.path.rstrip("/") for e in found.odd}
    actual: dict[str, str] = {}
    for path, size in found.files.items():
        if path not in recorded:
            report.add("extra", path, "in the folder but not in the manifest", cell=context.cell_of(path))
        elif path in sizes and size != sizes[path]:
            report.add("changed", path, f"{size} bytes, the manifest recorded {sizes[path]} (not read)",
                       cell=context.cell_of(path))
            continue
        try:   # an extra file is hashed only for the payload layer's sake: never one larger than a record
            limit = scan.limit_for(path) if path in recorded else scan.MAX_RECORD
            actual[path] = scan.hash_file(folder, path, limit, sizes.get(path))
        except FolderError as exc:
            if path in recorded:
                report.add("changed", path, str(exc), cell=context.cell_of(path))
    for path in sorted(set(recorded) - set(found.files) - odd):
        report.add("missing", path, "recorded in the manifest but not in the folder", cell=context.cell_of(path))
    for path in sorted(set(recorded) & set(actual)):
        if recorded[path] != actual[path]:
            report.add("changed", path, f"sha256 {short(actual[path])}, the manifest recorded {short(recorded[path])}",
                       cell=context.cell_of(path))
        else:
            report.hashed += 1
    inputs_sha = context.record.inputs.get("sha256")
    if inputs_sha and "inputs.jsonl" in actual and actual["inputs.jsonl"] != inputs_sha:
        report.add("changed", "inputs.jsonl", "differs from inputs.sha256 in the manifest")
    by_design = [f"{name} ({why})" for name, why in layout.UNHASHED_WHY.items()
                 if scan.entry_kind(folder, name) == "file"]
    if by_design:
        report.notes.append(f"not hashed, by design: {', '.join(by_design)}")
    return actual
