"""harness models: what each model in the catalog accepts."""

from __future__ import annotations

from harness.catalog import load_catalog
from harness.report.terminal import make_console, print_table

NAME = "models"
HELP = "list the model catalog: modalities, dimensions, fusion, limits, quotas"
ORDER = 70
COLUMNS = [(h, False) for h in ("model", "provider", "modalities", "dimensions", "fusion", "per request",
                                  "RPM/TPM")]


def add_parser(sub):
    return sub.add_parser(NAME, help=HELP, description=HELP + ". Disputed facts are marked with *.")


def run(args) -> int:
    cat = load_catalog()
    rows = []
    for name in cat.names():
        m = cat.get(name)
        star = " *" if m.disputes else ""
        # The default in words, not only in bold: it must survive a pipe and a colourless terminal.
        dims = ", ".join(f"{d} (default)" if d == m.default_dimension else str(d) for d in m.dimensions)
        limits = f"{m.max_contents or '-'} items, {m.max_images or '-'} img, {m.max_videos or '-'} vid"
        quota = f"{m.rpm or '-'}/{m.tpm or '-'}"
        rows.append([name + star, m.provider, ", ".join(sorted(m.modalities)), dims, m.fusion, limits, quota])
    print_table(make_console(), f"model catalog {cat.version} ({cat.path})", COLUMNS, rows)
    return 0
