"""Layer 4a: the execution lines. Every cell's `execution` and `dimensions` lines (and `repeat:` ones,
and the run's `executed` line) re-derived from the evidence, through the run's own
`harness.execute.results.cell_lines`, never taken from the lines or from execution.json's flags:

- executed or not: a cell with a responses file or a vectors file was executed, whatever
  execution.json says; one recorded as not executed that has them is a finding;
- the requests: one line of responses/<cell>.jsonl per entry of the payload index (re-derived from
  the spec in layer 3), in its order; those without an error succeeded, `NotSent` ones were not
  sent, the others failed;
- the vectors: ids.json lists exactly the inputs of the requests that succeeded, in index order;
  their count, length and norms are read from vectors/<cell>.npy.

What the evidence does not hold is taken from execution.json and changes no status: the retry and
throttle counts, the fatal error's words, which failure came first (when it is one of the failed
requests), a not-executed cell's reason; and from the recorded line, where an adaptive rate ended.
execution.json's own counts and flags must agree with the evidence.
"""

from __future__ import annotations

import re
from typing import Any

from harness.audit.verify.parse import VerifyContext
from harness.audit.verify.result import VerifyReport
from harness.execute.results import CellOutcome, cell_lines, fatal_text, nothing_executed, row_norms
from harness.folder import EVIDENCE_FORMAT, CellExecution, FolderError, RunReader, layout
from harness.folder.verdict import CheckResult

NOT_SENT = "NotSent"


def check_execution(context: VerifyContext, report: VerifyReport) -> None:
    reader = context.run.read
    if not reader.has(layout.SUMMARY):
        return      # older runs wrote no summary; one the manifest records is reported missing already
    try:
        recorded = [r for r in reader.results() if r.kind == "execution"]
    except FolderError:
        return      # the reports layer names it
    # a cell whose files differ from the manifest is named already; re-deriving it would only echo that
    damaged = {f.cell for f in report.findings if f.cell is not None and f.kind in ("changed", "missing", "extra")}
    derived, repeat = derive_lines(context, recorded, report, damaged)
    if derived and not damaged:     # an executed run: `executed` says whether any cell was
        empty = nothing_executed(derived)
        if empty is not None:
            derived.append(empty)
    compare(context, report, derived + repeat, [r for r in recorded if r.cell not in damaged
                                                and not (damaged and r.name == "executed")])


def derive_lines(context: VerifyContext, recorded: list[CheckResult], report: VerifyReport,
                 damaged: set[str]) -> tuple[list[CheckResult], list[CheckResult]]:
    """The execution lines the folder's evidence gives (verify's, and `harness merge`'s for the merged
    folder): the run's, and its repeat/ folder's renamed `repeat:` ([] when there is none)."""
    reader = context.run.read
    lines = _derive(context, reader, "", recorded, report, damaged)
    if not reader.has(layout.REPEAT_DIR):
        return lines, []
    # `stability: {repeat: true}`: the same payloads sent again
    again = reader.within(layout.REPEAT_DIR)    # through the run's folder: a link there is not followed
    return lines, [_renamed(r, "repeat:") for r in _derive(context, again, "repeat", recorded, report, damaged)]


def _renamed(r: CheckResult, prefix: str) -> CheckResult:
    return CheckResult(prefix + r.name, r.passed, r.detail, r.cell, r.kind, r.data, status=r.status)


def _derive(context: VerifyContext, reader: RunReader, where: str, recorded: list[CheckResult],
            report: VerifyReport, damaged: set[str]) -> list[CheckResult]:
    """The execution lines of the run (or of its repeat/ folder) as the evidence gives them; []
    for a folder that was never executed (no execution.json, no responses, no vectors)."""
    at = f"{where}/" if where else ""
    try:
        execution = reader.execution()
    except FolderError as exc:
        report.add("execution", at + layout.EXECUTION, str(exc))
        execution = None
    cells = [c for c in context.cells if not where or reader.has(layout.payload_index(c.id))]
    evidence = {c.id: (reader.has(layout.responses_file(c.id)), reader.has(layout.vectors_file(c.id)))
                for c in cells}
    if execution is None and not any(a or b for a, b in evidence.values()):
        return []
    said: dict[str, str] = {}
    stopped = fatal_text(execution.fatal) if execution is not None else None
    lines: list[CheckResult] = []
    for cell in cells:
        info = execution.get(cell.id) if execution is not None else None
        if cell.id in damaged and any(evidence[cell.id]):
            continue
        out = _outcome(context, reader, cell, info, evidence[cell.id], at, report)
        if out is None:
            continue
        mine = cell_lines(out, stopped=stopped, adapted_rpm=_adapted(recorded, cell.id, where), said=said,
                          skip_unmeasured=context.record.format >= 3)   # formats 1, 2: a FAIL line
        lines += mine if cell.id not in damaged else []    # still said: a later cell's line refers to it
    return lines


def _required(context: VerifyContext, cell: Any, info: CellExecution | None) -> bool:
    """Whether a cell had to execute: the spec copy, the manifest or execution.json saying so
    (`run --require-executed` is recorded in execution.json alone); none can lower another."""
    return bool(_spec_required(context).get(cell.model) or cell.required or (info is not None and info.required))


def _spec_required(context: VerifyContext) -> dict[str, bool]:
    """Model name → whether the spec copy makes its cells required (`required:` on the model, else
    `execution.required`), as the plan reads it."""
    from harness.errors import HarnessError
    from harness.plan.cells import model_entries

    spec = context.spec
    if isinstance(spec, HarnessError):
        return {}
    everything = bool((spec.data.get("execution") or {}).get("required", False))
    return {e["name"]: bool(e.get("required", everything)) for e, _, _ in model_entries(spec)}


def _outcome(context: VerifyContext, reader: RunReader, cell: Any, info: CellExecution | None,
             evidence: tuple[bool, bool], at: str, report: VerifyReport) -> CellOutcome | None:
    cid = cell.id
    has_responses, has_vectors = evidence
    out = CellOutcome(id=cid, model=cell.model, provider=cell.provider, required=_required(context, cell, info),
                      executed=has_responses or has_vectors, dimension=cell.dimension)
    if not out.executed:
        if info is not None and info.executed:
            report.add("execution", at + layout.EXECUTION, f"cell {cid} is recorded as executed, but the folder "
                       "holds neither its responses nor its vectors", cell=cid)
        out.reason = (info.reason.text if info is not None and info.reason is not None else None) or "not executed"
        return out
    if info is not None and not info.executed:
        held = "its vectors" if has_vectors else "its answered requests"
        report.add("execution", at + layout.EXECUTION, f"cell {cid} is recorded as not executed, but the folder "
                   f"holds {held} ({layout.responses_file(cid) if not has_vectors else layout.vectors_file(cid)})",
                   cell=cid)
    try:
        entries = reader.payload_index(cid)
        records = reader.responses(cid)
        vectors = reader.vectors(cid)
    except FolderError as exc:
        report.add("execution", at + layout.payload_dir(cid), f"its execution cannot be re-derived: {exc}", cell=cid)
        return None
    rel = at + layout.responses_file(cid)
    files = [e["file"] for e in entries]
    if [r.get("file") for r in records] != files:
        report.add("execution", rel, f"does not answer the {len(files)} requests of {layout.payload_index(cid)} "
                   f"one for one, in order ({len(records)} lines)", cell=cid)
        return None
    out.requests, out.expected_vectors = len(entries), sum(len(e.get("inputs") or []) for e in entries)
    succeeded: list[str] = []
    failed: list[dict[str, Any]] = []
    for entry, record in zip(entries, records):
        error = record.get("error")
        if error is None:
            out.ok += 1
            out.cache_hits += bool(record.get("cache_hit"))
            succeeded += [str(i) for i in entry.get("inputs") or []]
        elif isinstance(error, dict) and error.get("code") == NOT_SENT:
            out.not_sent += 1
        else:
            error = error if isinstance(error, dict) else {"message": str(error)}
            out.failed += 1
            out.wrong_dimension += error.get("code") == "WrongDimension"
            failed.append({"file": entry["file"], **{k: error.get(k) for k in ("status", "code", "message",
                                                                                "request_id")}})
    # which failure came first is the order they happened in: execution.json's, when it names one of them
    first = (info.failures[0] if info is not None and info.failures else None)
    out.failures = ([first] + [f for f in failed if f != first]) if first in failed else failed
    if info is not None:
        out.retries = _count(info.requests.get("retries"))
        out.throttled = _count(info.requests.get("throttled"))
    ids = list(vectors.ids) if vectors is not None else []
    if ids != succeeded:
        report.add("execution", at + layout.ids_file(cid), f"lists {len(ids)} inputs, but the requests that "
                   f"succeeded carry {len(succeeded)}" + _first_difference(ids, succeeded), cell=cid)
    if vectors is not None:
        out.vectors, out.dimension = len(ids), vectors.dimension or out.dimension
        if out.vectors:
            norms = row_norms(vectors.matrix, _all(len(ids)))
            out.norms = {"min": round(float(norms.min()), 6), "mean": round(float(norms.mean()), 6),
                         "max": round(float(norms.max()), 6)}
    if info is not None:
        _agrees(info, out, at, report)
    return out


def _first_difference(ids: list[str], succeeded: list[str]) -> str:
    extra = [i for i in ids if i not in set(succeeded)]
    missing = [i for i in succeeded if i not in set(ids)]
    if extra:
        return f"; {extra[0]} has a vector though no request that succeeded carries it"
    if missing:
        return f"; {missing[0]} has no vector though its request succeeded"
    return "; not in the order of the payload index"


def _all(n: int):
    import numpy as np

    return np.ones(n, dtype=bool)


def _count(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _agrees(info: CellExecution, out: CellOutcome, at: str, report: VerifyReport) -> None:
    """execution.json's counts against the evidence's."""
    recorded = {"requests": info.requests.get("total"), "ok": info.requests.get("ok"),
                "failed": info.requests.get("failed"), "not sent": info.requests.get("not_sent"),
                "cache hits": info.requests.get("cache_hits"), "vectors": info.vectors,
                "expected vectors": info.expected_vectors}
    derived = {"requests": out.requests, "ok": out.ok, "failed": out.failed, "not sent": out.not_sent,
               "cache hits": out.cache_hits, "vectors": out.vectors, "expected vectors": out.expected_vectors}
    wrong = [f"{k} {recorded[k]} (the evidence: {v})" for k, v in derived.items() if recorded[k] != v]
    if wrong:
        report.add("execution", at + layout.EXECUTION, f"cell {out.id}: " + ", ".join(wrong), cell=out.id)


def _adapted(recorded: list[CheckResult], cell_id: str, where: str) -> float | None:
    """Where the adaptive rate ended, as the recorded line's data says (the limiter's state is not evidence)."""
    name = f"{where}:execution" if where else "execution"
    for r in recorded:
        if r.name == name and r.cell == cell_id:
            value = (r.data or {}).get("adapted_rpm")
            return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None
    return None


def compare(context: VerifyContext, report: VerifyReport, derived: list[CheckResult],
            recorded: list[CheckResult]) -> None:
    """The derived lines against validate.txt's (as summary.json records them, with their data): the whole
    line and its data for a folder of this evidence format; for an earlier one, when the words differ,
    status, name, cell and the data both formats hold."""
    same = context.record.format == EVIDENCE_FORMAT
    held = {(r.name, r.cell): r for r in recorded}
    for r in derived:
        got = held.pop((r.name, r.cell), None)
        if got is None:
            report.add("execution", layout.VALIDATE, f"the evidence gives {r.line()!r}, which validate.txt does "
                       "not hold", cell=r.cell)
        elif got.line() != r.line() and (same or got.head() != r.head() or data_differs(got.data, r.data)
                                         or numbers(got.detail) != numbers(r.detail)):
            report.add("execution", layout.VALIDATE, f"re-derived from the evidence, the line is {r.line()!r}, "
                       f"but validate.txt says {got.line()!r}", cell=r.cell)
        elif data_differs(got.data, r.data, every=same):
            report.add("execution", layout.SUMMARY, f"{r.head()}: its data differs from what the evidence gives",
                       cell=r.cell)
        else:
            report.rechecked += 1
            if got.line() != r.line():
                report.reworded.append(r.head())
    for r in held.values():
        report.add("execution", layout.VALIDATE, f"{r.line()!r} follows from no evidence in the folder", cell=r.cell)


_NUMBER = re.compile(r"\d+(?:[.,]\d+)*")
# Where a relevant input ranked, as format 3 words it (`at rank 7 (cosine 0.612)`, `below rank 10 (cosine
# 0.009)`, `not a candidate (cosine 0.104)`); formats 1 and 2 wrote `at rank 7` and `not among the candidates`.
_PLACED = re.compile(r" (at rank \d+|below rank \d+|not a candidate) \(cosine -?\d+\.\d+\)")


def numbers(text: str) -> list[str]:
    """The numbers a line shows, in order: a line of an earlier format worded otherwise must show the
    same ones (its counts and metric values; a placement as those formats worded it)."""
    text = _PLACED.sub(lambda m: " " + m.group(1) if m.group(1).startswith("at ") else " not among the candidates",
                       text or "")
    return _NUMBER.findall(text)


def data_differs(recorded: dict, derived: dict, every: bool = False) -> bool:
    """Do the values both hold differ (`every`: or does `recorded` lack one of `derived`'s)?"""
    from harness.report.summary import plain

    recorded, derived = plain(recorded or {}), plain(derived or {})
    return any((k in recorded or every) and recorded.get(k) != v for k, v in derived.items())
