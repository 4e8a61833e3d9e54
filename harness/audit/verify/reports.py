"""Layer 5: the reports. summary.json carries the manifest's digest and validate.txt's lines and
verdict, and summary.json, junit.xml, report.md and report.html are exactly what the folder and
summary.json render to, so every report tells one story.

The evidence format (`evidence_format`, never the harness version) says how: a folder of this format
is re-rendered byte for byte; one of an earlier format in `AS_WRITTEN_BY` too, once what later formats
changed in a report is undone (junit.xml's timestamps); one of another earlier format has summary.json's
data compared with what this harness builds from the folder (statuses, metric values, counts, the
verdict and the digest), and a note names the byte-level comparisons that were not made. A folder of
a newer format than this harness reads is a finding: nothing it records switches a check off.

Format 3 laid report.md and report.html out anew (a recommendation first, intervals, folded detail), which
no undo of bytes gives back: for a folder of an earlier format they are compared by what they show of
summary.json (`RELAID`): the verdict and every check line's status, in order."""

from __future__ import annotations

import re
from typing import Callable

from harness.audit.verify.parse import VerifyContext
from harness.audit.verify.result import VerifyReport, short
from harness.folder import EVIDENCE_FORMAT, FolderError, layout
from harness.report.junit import format_2_junit
from harness.words import counted

# Earlier evidence formats whose reports this harness still renders as they were written, once what the
# later formats changed is undone: format → {report: undo}; a report not named is rendered as it is.
# (format 3 moved JUnit's timestamp to each suite and dropped `skipped` from <testsuites>: `format_2_junit`)
# (their report.md and report.html are `RELAID`: compared by what they show, no undo needed)
AS_WRITTEN_BY: dict[int, dict[str, Callable[[bytes], bytes]]] = {1: {layout.JUNIT: format_2_junit},
                                                                 2: {layout.JUNIT: format_2_junit}}

# Reports an earlier format laid out otherwise than this harness does: compared by what they show (`shows`).
RELAID: dict[int, set[str]] = {1: {layout.REPORT_MD, layout.REPORT_HTML}, 2: {layout.REPORT_MD, layout.REPORT_HTML}}
_MD_STATUS = {"ok": "passed", "**FAIL**": "failed", "skip": "skipped", "warn": "warning"}
_MD_ROW = re.compile(r"^\| (ok|\*\*FAIL\*\*|skip|warn) \|", re.M)
_HTML_ROW = re.compile(r'<tr class="check-(\w+)">')
_MD_VERDICT = re.compile(r"^Verdict: \*\*(PASS|FAIL)\*\*", re.M)
_HTML_VERDICT = re.compile(r'id="verdict">(PASS|FAIL)<')


def shows(name: str, held: bytes, summary) -> bool:
    """Whether a report laid out by an earlier format shows summary.json's verdict and its check lines'
    statuses (report.md in the order of the lines, report.html failed first)."""
    text = held.decode("utf-8", errors="replace")
    if name == layout.REPORT_MD:
        verdict, statuses = _MD_VERDICT.findall(text), [_MD_STATUS[w] for w in _MD_ROW.findall(text)]
        want = [c.status for c in summary.checks]
    else:
        from harness.report.html import sorted_checks

        verdict, statuses = _HTML_VERDICT.findall(text), _HTML_ROW.findall(text)
        want = [c.status for c in sorted_checks(summary)]
    return verdict == [summary.verdict] and statuses == want


def check_reports(context: VerifyContext, report: VerifyReport) -> None:
    folder, reader, record = context.folder, context.run.read, context.record
    if record.format > EVIDENCE_FORMAT:
        report.add("manifest", layout.MANIFEST, f"evidence format {record.format} is newer than this harness "
                   f"reads ({EVIDENCE_FORMAT}): it cannot be checked here; verify it with the harness that wrote it")
        return
    if report.reworded:
        shown = "; ".join(report.reworded[:3]) + (f" and {len(report.reworded) - 3} more" if len(report.reworded) > 3
                                                  else "")
        report.notes.append(f"{counted(len(report.reworded), 'line')} of evidence format {record.format} "
                            f"{'is' if len(report.reworded) == 1 else 'are'} worded otherwise "
                            f"by this harness (format {EVIDENCE_FORMAT}): compared by status, name, cell and the data "
                            f"both formats record, not word for word: {shown}")
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
    undo = {} if record.format == EVIDENCE_FORMAT else AS_WRITTEN_BY.get(record.format)
    if undo is None:
        compare_data(context, report, results, summary)
        return
    from harness.report.finalize import render_reports
    from harness.report.junit import recorded_timestamp

    # JUnit's timestamp is the run's start: it is re-rendered as recorded (its hash is in the file table);
    # the other reports project the summary.json the folder holds, so each is compared with what it shows.
    expected = render_reports(folder, record, results, timestamp=recorded_timestamp(folder / layout.JUNIT),
                              summary=summary.to_json())
    relaid = RELAID.get(record.format, set()) if record.format != EVIDENCE_FORMAT else set()
    if relaid:
        report.notes.append(f"{' and '.join(sorted(relaid))} of evidence format {record.format} are laid out "
                            f"otherwise by this harness (format {EVIDENCE_FORMAT}): their verdict and check "
                            "statuses were compared with summary.json, not their bytes")
    for name, content in expected.items():
        try:
            held = reader.raw(name)       # a regular file inside the folder, no link followed, bounded
        except FolderError:
            continue                      # missing or not a file: the files layer names it
        if name in relaid:
            if not shows(name, held, summary):
                report.add("reports", name, "differs from what the folder and summary.json render to: its "
                           "verdict or check statuses are not summary.json's")
            continue
        if name in undo:
            content = undo[name](content)
        if held != content:
            report.add("reports", name, "differs from what the folder and summary.json render to: "
                       "it tells another story than the other reports")


def compare_data(context: VerifyContext, report: VerifyReport, results: list, summary) -> None:
    """summary.json of an earlier evidence format against what this harness builds from the folder and
    the recorded results: the verdict, the counts, the digest, and each check's status and the data
    both formats hold (`verdict` compared the results with the vectors); the other reports are named
    as not compared byte for byte."""
    from harness.audit.verify.execution import data_differs
    from harness.report.summary import build_summary

    record = context.record
    built = build_summary(context.folder, record, results)
    for what, got, want in (("verdict", summary.verdict, built.verdict), ("counts", summary.counts, built.counts),
                            ("manifest_digest", summary.manifest_digest, built.manifest_digest)):
        if got != want:
            report.add("reports", layout.SUMMARY, f"{what} {got} is not what the folder gives ({want})")
    theirs = {(c.name, c.cell): c for c in summary.checks}
    for c in built.checks:
        got = theirs.get((c.name, c.cell))
        if got is None or got.status != c.status or data_differs(got.data, c.data):
            report.add("reports", layout.SUMMARY, f"check {c.name} [{c.cell}]: its status or data differ from the "
                       "results it records", cell=c.cell)
    cells = {c.id: c for c in summary.cells}
    for c in built.cells:
        got = cells.get(c.id)
        mine, want = (got.to_json() if got else {}), c.to_json()
        wrong = sorted(k for k in ("executed", "vectors", "cache_hits", "errors", "usage", "tokens")
                       if k in mine and mine[k] != want[k])
        if got is None or wrong:
            report.add("reports", layout.SUMMARY, f"cell {c.id}: {', '.join(wrong) or 'missing'} differ from the "
                       "folder's evidence", cell=c.id)
    report.notes.append(f"written in evidence format {record.format}, whose reports this harness (format "
                        f"{EVIDENCE_FORMAT}) does not render byte for byte: summary.json's data were compared; "
                        f"{layout.SUMMARY}, {layout.JUNIT}, {layout.REPORT_MD} and {layout.REPORT_HTML} were not "
                        "compared byte for byte with what they render to")
