"""What the terminal says about a run's lines, root cause first and short enough for one screen:
failures grouped by check ("nearest:cat-caption failed in 7 of 9 cells"), warnings counted (the
lines themselves stay in validate.txt; `--verbose` prints them), the cells that could not execute
named by their cause and host, and the last line.

Every function returns plain text (no markup); `commands/run.py` colours and prints it.
"""

from __future__ import annotations

from harness.checks.context import listed
from harness.folder import CellEntry, Execution
from harness.folder.verdict import CheckResult, failure_cause, unexecuted
from harness.words import counted


def grouped_failures(results: list[CheckResult], verbose: bool = False) -> list[str]:
    """The FAIL lines: one line each, or one per check failing in several cells, naming the first."""
    failed = [r for r in results if r.status == "fail"]
    if verbose:
        return [r.line() for r in failed]
    # no cell executed: the last line says so and why, the not-executed lines name the cells
    failed = [r for r in failed if not (r.kind == "execution" and r.name == "executed")]
    seen: dict[str, list[CheckResult]] = {}
    for r in failed:
        seen.setdefault(r.name, []).append(r)
    lines = []
    for name, mine in seen.items():
        if len(mine) == 1:
            lines.append(mine[0].line())
            continue
        cells = sum(1 for r in results if r.name == name and r.cell is not None)
        first = mine[0]
        said = _first_clause(first.detail)     # what it measured; the rest (worst queries...) is in validate.txt
        lines.append(f"FAIL {name} failed in {len(mine)} of {counted(cells, 'cell')} (first [{first.cell}]: {said})")
    return lines


def _first_clause(text: str) -> str:
    """`text` up to its first "; " outside parentheses (a hint in parentheses stays whole)."""
    depth = 0
    for i, ch in enumerate(text):
        depth += (ch in "([") - (ch in ")]")
        if depth == 0 and text.startswith("; ", i):
            return text[:i]
    return text


def warning_lines(results: list[CheckResult], verbose: bool = False) -> list[str]:
    """Every warn line with `verbose`, else one line counting them by name."""
    warned = [r for r in results if r.status == "warn"]
    if verbose or not warned:
        return [r.line() for r in warned]
    names: dict[str, int] = {}
    for r in warned:
        names[r.name] = names.get(r.name, 0) + 1
    count = ", ".join(f"{name} {n}" for name, n in names.items())
    return [f"{counted(len(warned), 'warning')} ({count}): in validate.txt; --verbose prints them"]


def not_executed(results: list[CheckResult], verbose: bool = False) -> list[str]:
    """Cells skipped (not sent: no key, no package), one line per reason: the brief reason and the
    cells; the full reason (how to set a key) with `verbose`."""
    skipped: dict[str, list[str]] = {}
    for r in results:
        if r.status == "skip" and r.kind == "execution" and r.name == "execution":
            skipped.setdefault((r.data or {}).get("reason") or "not executed", []).append(r.cell or "?")
    lines = []
    for reason, cells in skipped.items():
        brief, sep, _ = reason.partition(": ")
        said = reason if verbose or not sep else f"{brief} (--verbose for the fix)"
        lines.append(f"not executed: {said}: {_cells(cells)}")
    return lines


def could_not_execute(cells: list[dict], execution: Execution | None) -> str | None:
    """'2 cells could not execute: HTTP 401 InvalidApiKey at 127.0.0.1:18733': the cells that were
    sent and got no vector at all, by cause (and host); None when there are none."""
    if execution is None:
        return None
    causes: dict[str, int] = {}
    for c in map(CellEntry.from_json, cells):
        error = unexecuted(execution.get(c.id), execution.fatal)
        if error is None:
            continue
        cause = failure_cause(error, c.endpoint)
        causes[cause] = causes.get(cause, 0) + 1
    if not causes:
        return None
    total = sum(causes.values())
    said = "; ".join(cause if len(causes) == 1 else f"{cause} ({n})" for cause, n in causes.items())
    return f"{counted(total, 'cell')} could not execute: {said}"


def failed_checks(results: list[CheckResult]) -> str | None:
    """'2 checks failed: nearest:cat-caption (7 of 9 cells), retrieval (1 of 9 cells)', else None."""
    names: dict[str, int] = {}
    for r in results:
        if r.status == "fail" and r.kind == "check":
            names[r.name] = names.get(r.name, 0) + 1
    if not names:
        return None
    shown = [f"{name} ({n} of {counted(sum(1 for r in results if r.name == name and r.cell is not None), 'cell')})"
             for name, n in list(names.items())[:3]]
    more = f" and {len(names) - 3} more" if len(names) > 3 else ""
    return f"{counted(len(names), 'check')} failed: {', '.join(shown)}{more}"


def no_cell_executed(results: list[CheckResult]) -> str | None:
    """'no cell executed: no DashScope API key (2 cells)', when the run's `executed` line failed."""
    if not any(r.status == "fail" and r.kind == "execution" and r.name == "executed" for r in results):
        return None
    why: dict[str, int] = {}
    for r in results:
        if r.kind == "execution" and r.name == "execution" and r.status != "pass":
            brief = ((r.data or {}).get("reason") or "not executed").partition(": ")[0]
            why[brief] = why.get(brief, 0) + 1
    said = "; ".join(f"{brief} ({counted(n, 'cell')})" for brief, n in why.items())
    return f"no cell executed: {said}" if said else "no cell executed"


def _cells(cells: list[str], limit: int = 2) -> str:
    return f"{counted(len(cells), 'cell')} ({listed(cells, limit)})"
