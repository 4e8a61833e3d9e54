"""harness models: what each model in the catalog accepts."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from harness.catalog import load_catalog

NAME = "models"
HELP = "list the model catalog: modalities, dimensions, fusion, limits, quotas"
ORDER = 70


def add_parser(sub):
    return sub.add_parser(NAME, help=HELP, description=HELP + ". Disputed facts are marked with *.")


def run(args) -> int:
    cat = load_catalog()
    table = Table(title=f"model catalog {cat.version} ({cat.path})", title_justify="left")
    for col in ("model", "provider", "modalities", "dimensions (default)", "fusion", "per request", "RPM/TPM"):
        table.add_column(col)
    for name in cat.names():
        m = cat.get(name)
        star = " *" if m.disputes else ""
        dims = ", ".join(str(d) if d != m.default_dimension else f"[b]{d}[/]" for d in m.dimensions)
        limits = f"{m.max_contents or '-'} items, {m.max_images or '-'} img, {m.max_videos or '-'} vid"
        quota = f"{m.rpm or '-'}/{m.tpm or '-'}"
        table.add_row(name + star, m.provider, ", ".join(sorted(m.modalities)), dims, m.fusion, limits, quota)
    Console().print(table)
    return 0
