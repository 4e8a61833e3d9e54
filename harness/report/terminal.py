"""The terminal report: tables of cells (planned, then their results) and the verdict.

Every table is printed whole or not at all: when its columns do not fit the console's width
it is stacked instead, one block per row of `column: value` lines, so no value is ever cut to
"…" and nothing depends on colour (a piped log reads the same).
"""

from __future__ import annotations

import os
import sys
from typing import NamedTuple

from rich.cells import cell_len
from rich.console import Console
from rich.markup import escape
from rich.segment import Segment, Segments
from rich.table import Table

from harness.catalog.estimate import money
from harness.folder import CellEntry, CellExecution, Execution, FolderError, RunReader, Summary
from harness.folder.verdict import CheckResult, failure_cause, unexecuted
from harness.report.charts import size
from harness.report.markdown import mix
from harness.report.recommend import deciding_p, p_text, plus_minus, recommend, signed


class Column(NamedTuple):
    """A column of a terminal table. At a width too narrow for the whole table, the columns that only
    repeat the row's first value (the cell id) go first, then those with a `drop` rank, lowest
    first; only when the rest still does not fit is the table stacked."""

    header: str
    right: bool = False          # right-aligned (numbers)
    drop: int | None = None      # left out to fit, lowest first; None: always shown
    repeats_id: bool = False     # left out to fit when every value is already in its row's cell id

    @property
    def name(self) -> str:
        """The header on one line (a table may break it in two)."""
        return self.header.replace("\n", " ")


PLAN_COLUMNS = [Column("cell"), Column("model", repeats_id=True), Column("dim", True, repeats_id=True),
                Column("modality mix", drop=2), Column("requests", True, drop=3), Column("contents", True, drop=1),
                Column("est. tokens", True, drop=4), Column("est. cost", True)]
RESULT_COLUMNS = [Column("cell"), Column("executed"), Column("vectors", True, drop=2),
                  Column("checks pass/fail/skip", True, drop=3), Column("tokens", True, drop=1), Column("cost", True)]


def _in_id(value: str, cell_id: str) -> bool:
    return value.replace("/", "--") in cell_id      # a cell id writes a model's `/` as `--`


def _table(title: str, columns: list[Column], rows: list[list[str]], edge: bool = True) -> Table:
    table = Table(title=escape(title), title_justify="left", show_edge=edge, pad_edge=edge)
    for c in columns:
        table.add_column(c.header, justify="right" if c.right else "left", no_wrap=True)
    for row in rows:
        table.add_row(*(escape(v) for v in row))
    return table


def _print(console: Console, table: Table, edge: bool) -> None:
    """A table; without its edge, each line with no trailing space (the last column's padding)."""
    if edge:
        console.print(table)
        return
    for line in console.render_lines(table, console.options, pad=False):
        while line and not line[-1].text.rstrip():
            line = line[:-1]
        if line:
            line = [*line[:-1], Segment(line[-1].text.rstrip(), line[-1].style)]
        console.print(Segments([*line, Segment.line()]), end="")


def print_table(console: Console, title: str, columns: list, rows: list[list[str]], *, edge: bool = True) -> None:
    """`rows` of plain text (no markup): a table when it fits (columns left out as `Column` says,
    named below it), else stacked with every column. `edge=False`: no outer border (two lines and
    four columns less: the run's own tables, so a run fits one screen)."""
    if console.quiet:       # rich would lay the table out only to drop it
        return
    columns = [Column(*c) for c in columns]
    keep = list(range(len(columns)))

    widths = [max([cell_len(part) for part in c.header.split("\n")] + [cell_len(row[i]) for row in rows])
              for i, c in enumerate(columns)]

    def width(kept: list[int]) -> int:
        """What rich's measure of the table gives (each column padded by 1 each side, a border between
        columns and, with `edge`, around them), without building it."""
        n = len(kept)
        return sum(widths[i] for i in kept) + (3 * n + 1 if edge else 3 * n - 3)

    order = ([i for i, c in enumerate(columns) if c.repeats_id and rows and all(_in_id(r[i], r[0]) for r in rows)]
             + sorted((i for i, c in enumerate(columns) if c.drop is not None), key=lambda i: columns[i].drop))
    left_out: list[int] = []
    for i in [None, *order]:
        if i is not None:
            keep.remove(i)
            left_out.append(i)
        if width(keep) <= console.width:
            _print(console, _table(title, [columns[j] for j in keep], [[row[j] for j in keep] for row in rows], edge),
                   edge)
            dropped = [columns[j].name for j in left_out if not columns[j].repeats_id]
            if dropped:      # a column that repeats the cell id goes unsaid: the id shows it
                console.print(f"(left out to fit {console.width} columns: {', '.join(dropped)})", highlight=False)
            return
    console.print(title, highlight=False)
    label = max(len(c.name) for c in columns[1:]) if len(columns) > 1 else 0
    for row in rows:
        console.print(f"- {columns[0].name}: {row[0]}", highlight=False)
        for c, value in zip(columns[1:], row[1:]):
            console.print(f"  {c.name + ':':<{label + 1}} {value}", highlight=False)


def plan_rows(cells: list[dict]) -> list[list[str]]:
    """`cells`: manifest cell entries, as the plan or manifest.json has them."""
    rows = []
    for c in map(CellEntry.from_json, cells):
        dim = f"{c.dimension}" + (" fixed" if c.dimension_sent is None else "")
        rows.append([c.id, c.model, dim, mix(c.modality_mix), f"{c.requests:,}", f"{c.contents:,}",
                     f"{c.estimated_tokens['total']:,}", money(c.estimated_cost)])
    return rows


def print_cells(console: Console, cells: list[dict], title: str, *, edge: bool = True) -> None:
    print_table(console, title, PLAN_COLUMNS, plan_rows(cells), edge=edge)


def retrieval_names(results: list[CheckResult]) -> list[str]:
    """The retrieval checks of a run, in order: each gets a column of its headline metric."""
    names: list[str] = []
    for r in results:
        if r.kind == "check" and (r.data or {}).get("check") == "retrieval" and r.name not in names:
            names.append(r.name)
    return names


def headline(r: CheckResult | None) -> str:
    """A retrieval check's headline metric in one cell, with its threshold: 'recall@1 0.667 (min 0.66)';
    the first threshold the spec sets, else nDCG@10 or the first metric; '-' when none was measured."""
    data = (r.data or {}) if r is not None else {}
    metrics, thresholds = data.get("metrics") or {}, data.get("thresholds") or {}
    if not metrics:
        return "-" if r is None or r.status != "skip" else "skipped"
    order = list(data.get("threshold_order") or thresholds)
    name = (next((m for m in order if m in metrics), None)
            or ("ndcg@10" if "ndcg@10" in metrics else next(iter(metrics))))
    iv = (data.get("intervals") or {}).get(name)     # its bootstrap interval, as ± half its width
    shown = f"{name} {metrics[name]:.3f}" + (f" {plus_minus(iv)}" if isinstance(iv, list) and len(iv) == 2 else "")
    if name in thresholds:
        shown += f" {'<' if metrics[name] < thresholds[name] else '≥'} min {thresholds[name]:g}"
    return shown


def result_columns(results: list[CheckResult]) -> list[Column]:
    return RESULT_COLUMNS + [Column(name) for name in retrieval_names(results)]


def result_rows(cells: list[dict], execution: Execution | None, results: list[CheckResult]) -> list[list[str]]:
    """Per cell after a run (the columns of `result_columns`): executed, or why not, or why it failed;
    vectors, its check lines by status, and tokens and cost (in the cell's region's currency): `actual`
    from the usage the provider reported, `est.` from the plan's estimate otherwise; then each retrieval
    check's headline metric. `cells`: manifest.json's cell entries."""
    rows = []
    retrieval = retrieval_names(results)
    for c in map(CellEntry.from_json, cells):
        cid = c.id
        info = execution.get(cid) if execution is not None else None
        mine = [r for r in results if r.cell == cid]
        counts = "/".join(str(sum(1 for r in mine if r.status == s)) for s in ("pass", "fail", "skip"))
        why = info.reason.brief if info is not None and info.reason else "not executed"
        cause = failed_cause(info, execution)
        executed = (f"failed: {cause}" if cause else _partly(info, execution) or "yes") \
            if info is not None and info.executed else f"no: {why}"
        got = info.spent(c) if info is not None and not cause else None
        if got is None:
            spent_cols = ["-", "-"]           # nothing was sent, nothing spent
        else:
            word = "actual" if got["basis"] == "usage" else "est."
            spent_cols = [f"{got['tokens']:,} {word}", f"{money(got['cost'])} {word}" if got["cost"] else "not billed"]
        metric = [headline(next((r for r in mine if r.name == name), None)) for name in retrieval]
        rows.append([cid, executed, f"{info.vectors:,}" if info is not None else "0", counts, *spent_cols, *metric])
    return rows


def _partly(info: CellExecution, execution: Execution | None) -> str | None:
    """'partly: 1 of 6 requests failed (HTTP 400 InvalidParameter)' for a cell some of whose requests
    failed or were not sent (its checks ran on the vectors that came back), else None."""
    bad = (info.requests.get("failed") or 0) + (info.requests.get("not_sent") or 0)
    if not bad:
        return None
    first = info.failures[0] if info.failures else (execution.fatal if execution is not None else None)
    return f"partly: {bad} of {info.requests.get('total') or '?'} requests failed ({failure_cause(first)})"


def failed_cause(info: CellExecution | None, execution: Execution | None) -> str | None:
    """Why a cell that was sent got no vector at all ('HTTP 401 InvalidApiKey'), else None."""
    error = unexecuted(info, execution.fatal if execution is not None else None)
    return failure_cause(error) if error is not None else None


PIPED_WIDTH = 10_000   # piped with no $COLUMNS: no line is ever wrapped (a CI log, a file, grep)


def make_console(quiet: bool = False) -> Console:
    """A console for stdout: the terminal's width, $COLUMNS when set; piped, no wrapping at all (a
    hard wrap at some width breaks words and leaves trailing spaces in logs and greps)."""
    piped = not sys.stdout.isatty() and not os.environ.get("COLUMNS")
    return Console(quiet=quiet, width=PIPED_WIDTH if piped else None, soft_wrap=piped)


def print_recommendation(console: Console, folder) -> None:
    """The cells of the headline retrieval check as report.md and report.html show them (the headline
    metric ± half its interval, against the best, cost per 1,000 inputs, float32 storage per million
    vectors and for the corpus), then the recommendation in the words the reports use
    (report/recommend.py: one rule everywhere), from the run folder's summary.json."""
    try:
        rec = recommend(Summary.from_json(RunReader(folder).summary()))
    except FolderError:
        return          # no summary to read: the verdict line says what happened
    if rec is None:
        return
    if len(rec.options) > 1:
        rows = []
        for o in rec.options:
            vs = o.vs_best
            versus = ("best" if o is rec.best and rec.compared else "-" if not vs else
                      f"{'~' if o.tied else 'worse'} {signed(vs['delta'])}, "
                      f"{p_text(deciding_p(vs))}")
            rows.append([o.cell + (" *" if o.recommended else ""), f"{o.value:.3f} {plus_minus(o.interval)}".strip(),
                         versus, o.cost, f"{size(o.per_million)} / {size(o.corpus_bytes)}"])
        corpus = rec.options[0].corpus_vectors
        print_table(console, f"which cell: {rec.metric} of {rec.check} (* recommended; size: float32, 1M "
                    f"vectors / the {corpus or '-'} of the corpus)",
                    [Column("cell"), Column(rec.metric, True), Column("vs best", True, drop=2),
                     Column("cost/1k", True), Column("size", True, drop=1)], rows, edge=False)   # as run's others
    for text in rec.sentences:
        console.print(escape(text), highlight=False)
