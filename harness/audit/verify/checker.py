"""`harness verify`: re-derive and re-hash an output folder, trusting nothing in it.

Independent lines of evidence, each named when it breaks (one module each):
1. the manifest itself: canonical bytes and its roll-up digest (files);
2. every file against the sha256 the manifest recorded: missing, extra, changed (files);
3. the payloads, index files and inputs.jsonl re-derived from the spec copy (spec.yaml) and
   the local inputs, in memory; and the original spec and local inputs compared with the hashes
   recorded at run time, "changed since the run" (parse, payloads);
4. the verdict: validate.txt's lines given again, the execution lines and each cell's executed
   state by the evidence (responses, vectors, payload index: execution), the checks' lines and
   summary.json's data for them by the spec's checks over the vectors (verdict);
5. the reports: summary.json, junit.xml, report.md and report.html tell validate.txt's and the
   manifest's story (reports), compared by the folder's evidence format, never its harness version.
With `--allowed-signers` and `--reexecute`, who vouches for the folder and whether the model gives
its vectors (provenance). The folder and its spec are parsed once (parse.VerifyContext).

A folder moved elsewhere still verifies (1) and (2) completely; (3) needs the local inputs,
found beside the original spec (via the relative path the manifest recorded) or in `spec_dir`.
What cannot be re-derived is said, and only fails the verification under `strict`.
`hashes_only` (`--hashes-only`) stops after (1) and (2) and says what that leaves unproved.
"""

from __future__ import annotations

from pathlib import Path

from harness.audit.verify import files, payloads, reports, verdict
from harness.audit.verify.parse import VerifyContext, locate_spec, open_folder
from harness.audit.verify.result import VerifyReport
from harness.folder import FolderError, layout, scan


def verify(folder: str | Path, *, spec_dir: str | Path | None = None, strict: bool = False,
           allow_paths: tuple | list = (), max_payload: int | None = None,
           hashes_only: bool = False) -> tuple[VerifyContext | None, VerifyReport]:
    """Verify an output folder; see the module docstring. Never raises for a damaged folder:
    every problem is a finding. `allow_paths`: the `--allow-path` folders the run was given.
    `hashes_only`: layers (1) and (2) alone; the report says what that leaves unproved.
    Returns the folder as parsed (None without a readable manifest), for re-execution, and the report."""
    folder = Path(folder)
    report = VerifyReport(folder=folder, strict=strict, hashes_only=hashes_only)
    context = open_folder(folder, report)
    if context is None or not context.files_table:
        return context, report
    files.check_manifest(context, report)
    actual = files.check_files(context, report)
    if hashes_only:
        return context, report
    locate_spec(context, Path(spec_dir) if spec_dir else None, report, allow_paths)
    complete = payloads.check_local_inputs(context, report)
    if scan.entry_kind(folder, layout.SPEC_COPY) == "file":   # parsed once: payloads and verdict start from it
        _guarded(report, "payload", "payloads/", payloads.check_derived, context, report, actual, complete,
                 allow_paths, max_payload)
        _guarded(report, "verdict", layout.VALIDATE, verdict.check_verdict, context, report)
    _guarded(report, "reports", layout.SUMMARY, reports.check_reports, context, report)
    return context, report


def _guarded(report: VerifyReport, kind: str, path: str, layer, *args) -> None:
    """Run one layer; a file it reads that breaks the contract (`FolderError`: not a regular file,
    larger than recorded, not of its type) is a finding of that layer, never a crash."""
    try:
        layer(*args)
    except FolderError as exc:
        report.add(kind, path, str(exc))


def verify_folder(folder: str | Path, **options) -> VerifyReport:
    """`verify`'s report alone (run, sign and export verify a folder without re-executing it)."""
    return verify(folder, **options)[1]
