"""Layers 1 and 2: the manifest's canonical bytes and roll-up digest; every file against the sha256
the manifest recorded (missing, extra, changed). All a folder moved to another machine still proves."""

from __future__ import annotations

from harness.audit.verify.parse import VerifyContext
from harness.audit.verify.result import VerifyReport, short
from harness.evidence import canonical_json, hash_tree
from harness.folder import layout
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
    """Hash the folder; returns {relative path: sha256} of what is there, for the later layers."""
    recorded = context.record.files
    actual = hash_tree(context.folder, exclude=layout.UNHASHED)
    for path in sorted(set(recorded) - set(actual)):
        report.add("missing", path, "recorded in the manifest but not in the folder", cell=context.cell_of(path))
    for path in sorted(set(actual) - set(recorded)):
        report.add("extra", path, "in the folder but not in the manifest", cell=context.cell_of(path))
    for path in sorted(set(recorded) & set(actual)):
        if recorded[path] != actual[path]:
            report.add("changed", path, f"sha256 {short(actual[path])}, the manifest recorded {short(recorded[path])}",
                       cell=context.cell_of(path))
        else:
            report.hashed += 1
    inputs_sha = context.record.inputs.get("sha256")
    if inputs_sha and "inputs.jsonl" in actual and actual["inputs.jsonl"] != inputs_sha:
        report.add("changed", "inputs.jsonl", "differs from inputs.sha256 in the manifest")
    return actual
