"""Layer 4: the verdict. The execution lines re-derived from the evidence (`execution`) and the
spec's checks re-evaluated over the folder's vectors must give the very lines validate.txt holds,
with the data summary.json records for them, and its last line must follow from them, so an edited
verdict is caught even when someone also rewrote the manifest's hashes.

Nothing the folder records switches a comparison off: a folder of this evidence format is compared
word for word; one of an earlier format too, and where its words differ from this harness's, by
status, name, cell and the data both formats record (the metric values among them), said in a note."""

from __future__ import annotations

import re

from harness.audit.verify import execution
from harness.audit.verify.parse import VerifyContext
from harness.audit.verify.result import VerifyReport
from harness.errors import HarnessError
from harness.folder import EVIDENCE_FORMAT, FolderError, layout


def check_verdict(context: VerifyContext, report: VerifyReport) -> None:
    folder, reader = context.folder, context.run.read
    if not reader.has(layout.VALIDATE):
        return  # reported as missing
    lines = reader.validate_lines()
    if not lines or lines[-1] not in ("PASS", "FAIL"):
        report.add("verdict", layout.VALIDATE, "does not end in PASS or FAIL")
        return
    failed = any(line.startswith("FAIL ") for line in lines[:-1])
    if (lines[-1] == "PASS") == failed:
        report.add("verdict", layout.VALIDATE, f"ends in {lines[-1]} but "
                   + ("a line failed" if failed else "no line failed"))
    execution.check_execution(context, report)
    spec = context.spec
    if isinstance(spec, HarnessError):
        return  # the spec copy is reported already
    from harness.inputs.datasets import all_checks
    checks = all_checks(spec.document)     # as written: checks the schema refuses are still compared
    try:
        held = {(r.name, r.cell): r for r in reader.results()}
    except FolderError:
        held = {}       # the reports layer names it
    given: set[tuple[str, str | None]] = set()
    if checks and ((folder / "vectors").is_dir() or reader.has(layout.EXECUTION)):   # executed: checked
        _recheck(context, report, checks, lines, held, given)
    for r in held.values():     # a check line no check of the spec gives (an `ok` added to the count)
        if r.kind == "check" and (r.name, r.cell) not in given:
            report.add("verdict", layout.VALIDATE, f"{r.line()!r} follows from no check of the spec over "
                       "this folder", cell=r.cell)


def _recheck(context: VerifyContext, report: VerifyReport, checks: list, lines: list[str], held: dict,
             given: set) -> None:
    """The spec's checks re-evaluated over the vectors against the lines and data the folder holds;
    `given` collects the (name, cell) of every result they give."""
    from harness.checks.evaluate import evaluate_checks
    from harness.plan.cells import CellFilter

    folder, reader = context.folder, context.run.read
    present = set(lines)
    same = context.record.format == EVIDENCE_FORMAT
    spec_dir = context.base if context.base is not None else folder
    sliced = CellFilter.from_dict(context.manifest.get("filter")).describe() or None
    outputs: dict[str, bytes] = {}
    # a check's own files (qrels, captions) are read through the roots the run's inputs were: the
    # spec's project and --allow-path, as `run --allow-path` read them
    for r in evaluate_checks(checks, folder, context.record.cells, spec_dir=spec_dir, sliced=sliced,
                             write=outputs.__setitem__, allow_paths=context.roots,
                             skip_failed=context.record.format >= 3,    # formats 1, 2: FAIL lines
                             evidence_format=context.record.format):    # its files, its query count
        given.add((r.name, r.cell))
        if r.data.get("earlier_found") is False:     # a stability check whose earlier run is not here
            report.add("not-derived", layout.VALIDATE, f"{r.name} [{r.cell}]: the earlier run it compares with is "
                       "not here", mismatch=False, cell=r.cell)
            continue
        if r.data.get("qrels_unavailable"):
            report.add("not-derived", layout.VALIDATE, f"{r.name} [{r.cell}]: {r.detail} (pass --spec-dir DIR, "
                       "the folder the spec's relative paths start from)", mismatch=False, cell=r.cell)
            continue
        # The whole line, detail included (an `ok` over a detail that says "expected X at rank 2"
        # is a forgery), and the data the reports draw. A folder of an earlier evidence format may
        # word a line otherwise: there status, name, cell and the data both formats hold must agree.
        head = r.head()
        got = held.get((r.name, r.cell))
        if r.line() in present:
            if got is not None and execution.data_differs(got.data, r.data, every=same):
                report.add("verdict", layout.SUMMARY, f"{head}: the data summary.json records for it differ from "
                           "what the check gives from the vectors (metric values, counts)", cell=r.cell)
            else:
                report.rechecked += 1
            continue
        said = next((line for line in lines if line == head or line.startswith(head + ": ")), None)
        earlier = _earlier_line(r, got) if not same else None
        if earlier is not None and execution.data_differs(got.data, r.data):
            report.add("verdict", layout.SUMMARY, f"{head}: the data summary.json records for it differ from "
                       "what the check gives from the vectors (metric values, counts)", cell=r.cell)
            continue
        if earlier is not None:
            report.rechecked += 1
            report.reworded.append(earlier)
            continue
        report.add("verdict", layout.VALIDATE, f"re-evaluated from the vectors, the check gives {r.line()!r}, "
                   + (f"but validate.txt says {said!r}" if said else "which validate.txt does not hold"), cell=r.cell)
    # A retrieval check's result and run files, derived again from the vectors: byte for byte.
    for rel, content in sorted(outputs.items()):
        if not reader.has(rel):
            report.add("verdict", rel, "the retrieval check gives this file, which the folder does not hold")
            continue
        try:
            held = reader.raw(rel)        # a regular file inside the folder, no link followed, bounded
        except FolderError as exc:
            report.add("verdict", rel, str(exc))
            continue
        if held != content:
            report.add("verdict", rel, "differs from what the retrieval check derives from the vectors")
        else:
            report.derived += 1


def _earlier_line(r, got) -> str | None:
    """How a line of an earlier evidence format that words `r` otherwise is accepted: the same status,
    name and cell, showing the same numbers; or an `ok` this harness makes a `warn` (a check that
    proves nothing, which that format counted as a pass). None when it is another line."""
    if got is None or got.name != r.name or got.cell != r.cell:
        return None
    if got.status == r.status:
        return r.head() if execution.numbers(got.detail) == execution.numbers(without_intervals(r.detail)) else None
    if got.status == "pass" and r.status == "warn" and (r.data or {}).get("vacuous"):
        return f"{r.head()} (counted as a pass by that format: {r.detail})"
    return None


# what format 3 added to a retrieval line (issue 27): each metric's interval and their confidence level
_INTERVALS = re.compile(r" \[-?\d+\.\d+, -?\d+\.\d+\]| \(\d+(?:\.\d+)?% intervals\)")


def without_intervals(detail: str) -> str:
    """A retrieval line's detail as formats 1 and 2 worded it: without the metrics' intervals, which
    they did not record (the same means and thresholds must still be shown)."""
    return _INTERVALS.sub("", detail or "")
