"""The terminal report: tables of cells (planned, then their results) and the verdict.

Every table is printed whole or not at all: when its columns do not fit the console's width
it is stacked instead, one block per row of `column: value` lines, so no value is ever cut to
"…" and nothing depends on colour (a piped log reads the same).
"""

from __future__ import annotations

import os
import sys

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from harness.catalog.estimate import money
from harness.folder import CellEntry, Execution
from harness.folder.verdict import CheckResult
from harness.report.markdown import mix

# (header, right-aligned?) of the plan's table, in order.
PLAN_COLUMNS = [("cell", False), ("model", False), ("dim", True), ("modality mix", False), ("requests", True),
                ("contents", True), ("est. tokens", True), ("est. cost", True)]
RESULT_COLUMNS = [("cell", False), ("executed", False), ("vectors", True), ("checks pass/fail/skip", True),
                  ("tokens", True), ("cost", True)]


def print_table(console: Console, title: str, columns: list[tuple[str, bool]], rows: list[list[str]]) -> None:
    """`rows` of plain text (no markup): a table when it fits, else stacked."""
    table = Table(title=escape(title), title_justify="left")
    for header, right in columns:
        table.add_column(header, justify="right" if right else "left", no_wrap=True)
    for row in rows:
        table.add_row(*(escape(v) for v in row))
    natural = console.measure(table, options=console.options.update_width(10_000)).maximum
    if natural <= console.width:
        console.print(table)
        return
    console.print(title, highlight=False)
    label = max(len(h) for h, _ in columns[1:]) if len(columns) > 1 else 0
    for row in rows:
        console.print(f"- {columns[0][0]}: {row[0]}", highlight=False)
        for (header, _), value in zip(columns[1:], row[1:]):
            console.print(f"  {header + ':':<{label + 1}} {value}", highlight=False)


def plan_rows(cells: list[dict]) -> list[list[str]]:
    """`cells`: manifest cell entries, as the plan or manifest.json has them."""
    rows = []
    for c in map(CellEntry.from_json, cells):
        dim = f"{c.dimension}" + (" fixed" if c.dimension_sent is None else "")
        rows.append([c.id, c.model, dim, mix(c.modality_mix), f"{c.requests:,}", f"{c.contents:,}",
                     f"{c.estimated_tokens['total']:,}", money(c.estimated_cost)])
    return rows


def print_cells(console: Console, cells: list[dict], title: str) -> None:
    print_table(console, title, PLAN_COLUMNS, plan_rows(cells))


def result_rows(cells: list[dict], execution: Execution | None, results: list[CheckResult]) -> list[list[str]]:
    """Per cell after a run: executed or why not, vectors, its check lines by status, and tokens and
    cost (in the cell's region's currency): `actual` from the usage the provider reported, `est.` from the
    plan's estimate otherwise. `cells`: manifest.json's cell entries."""
    rows = []
    for c in map(CellEntry.from_json, cells):
        cid = c.id
        info = execution.get(cid) if execution is not None else None
        mine = [r for r in results if r.cell == cid]
        counts = "/".join(str(sum(1 for r in mine if r.status == s)) for s in ("pass", "fail", "skip"))
        why = info.reason.brief if info is not None and info.reason else "not executed"
        executed = "yes" if info is not None and info.executed else f"no: {why}"
        got = info.spent(c) if info is not None else None
        if got is None:
            spent_cols = ["-", "-"]           # nothing was sent, nothing spent
        else:
            word = "actual" if got["basis"] == "usage" else "est."
            spent_cols = [f"{got['tokens']:,} {word}", f"{money(got['cost'])} {word}" if got["cost"] else "not billed"]
        rows.append([cid, executed, f"{info.vectors:,}" if info is not None else "0", counts, *spent_cols])
    return rows


PIPED_WIDTH = 10_000   # piped with no $COLUMNS: no line is ever wrapped (a CI log, a file, grep)


def make_console(quiet: bool = False) -> Console:
    """A console for stdout: the terminal's width, $COLUMNS when set; piped, no wrapping at all (a
    hard wrap at some width breaks words and leaves trailing spaces in logs and greps)."""
    piped = not sys.stdout.isatty() and not os.environ.get("COLUMNS")
    return Console(quiet=quiet, width=PIPED_WIDTH if piped else None, soft_wrap=piped)
