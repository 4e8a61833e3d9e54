"""Layer 5: the reports. summary.json carries the manifest's digest and validate.txt's lines and
verdict, and (for a folder of this harness version) summary.json, junit.xml, report.md and
report.html are exactly what the folder and summary.json render to, so every report tells one story."""

from __future__ import annotations

from harness import __version__
from harness.audit.verify.parse import VerifyContext
from harness.audit.verify.result import VerifyReport, short
from harness.folder import FolderError, layout


def check_reports(context: VerifyContext, report: VerifyReport) -> None:
    folder, reader, record = context.folder, context.run.read, context.record
    if record.manifest_version >= 2:
        # The digest leaves the reports' hashes out, so their entries must be there to be checked.
        for name in layout.REPORTS:
            if name not in record.files:
                report.add("reports", name, "not in the manifest's file table, which records every report")
    if not reader.has(layout.SUMMARY):
        return  # older runs wrote no summary; one the manifest records is reported missing already
    try:
        results = reader.results()
        summary = context.run.summary       # typed: a field of another type is a finding, not a guess
    except FolderError as exc:
        report.add("reports", layout.SUMMARY, str(exc))
        return
    if record.manifest_version >= 2 and summary.manifest_digest != record.digest:
        report.add("reports", layout.SUMMARY, f"manifest_digest {short(summary.manifest_digest)} is not the "
                   f"manifest's digest {short(record.digest)}: it reports another state of the folder")
    lines = reader.validate_lines()
    if lines and ([c.line for c in summary.checks] != lines[:-1] or summary.verdict != lines[-1]):
        report.add("reports", layout.SUMMARY, f"its checks or verdict ({summary.verdict}) differ from "
                   f"validate.txt ({lines[-1]})")
    if any(f.kind in ("missing", "extra", "changed") for f in report.findings):
        return  # the files differ from the manifest already; re-rendering would only echo that
    version = record.harness.get("version")
    if version != __version__:
        report.notes.append(f"reports not re-rendered: written by harness {version}, this is {__version__}")
        return
    from harness.report.finalize import render_reports
    from harness.report.junit import recorded_timestamp

    # JUnit's timestamp is the run's start: it is re-rendered as recorded (its hash is in the file table);
    # the other reports project the summary.json the folder holds, so each is compared with what it shows.
    expected = render_reports(folder, record, results, timestamp=recorded_timestamp(folder / layout.JUNIT),
                              summary=summary.to_json())
    for name, content in expected.items():
        path = folder / name
        if path.is_file() and path.read_bytes() != content:
            report.add("reports", name, "differs from what the folder and summary.json render to: "
                       "it tells another story than the other reports")
