"""The terminal report: one rich table of cells, then the verdict."""

from __future__ import annotations

import sys

from rich.console import Console
from rich.table import Table

from harness.report.markdown import mix


def cells_table(cells: list[dict], title: str) -> Table:
    table = Table(title=title, title_justify="left")
    for name, justify in (("cell", "left"), ("model", "left"), ("dim", "right"), ("modality mix", "left"),
                          ("requests", "right"), ("contents", "right"), ("est. tokens", "right"),
                          ("est. cost CNY", "right")):
        table.add_column(name, justify=justify, no_wrap=name in ("cell", "model"))
    for c in cells:
        dim = f"{c['dimension']}" + (" fixed" if c.get("dimension_sent") is None else "")
        table.add_row(c["id"], c["model"], dim, mix(c["modality_mix"]), f"{c['requests']:,}", f"{c['contents']:,}",
                      f"{c['estimated_tokens']['total']:,}", f"{c['estimated_cost']['amount']:.4f}")
    return table


def print_cells(console: Console, cells: list[dict], title: str) -> None:
    console.print(cells_table(cells, title))


def make_console(quiet: bool = False) -> Console:
    """A console for stdout: the terminal's width, or a wide fixed one when piped (CI logs)."""
    return Console(quiet=quiet, width=None if sys.stdout.isatty() else 160)
