"""harness models: what each model in the catalog accepts and what each region bills for it."""

from __future__ import annotations

import dataclasses
import sys

from harness.catalog.load import load_catalog
from harness.evidence import canonical_json
from harness.report.terminal import make_console, print_table

NAME = "models"
HELP = "list the model catalog: modalities, dimensions, fusion, limits, quotas, prices per region"
ORDER = 70
PER = 1_000_000     # prices are shown per this many input tokens, whatever unit the catalog writes them in
COLUMNS = [(h, False) for h in ("model", "provider", "modalities", "dimensions", "fusion", "per request",
                                  "RPM/TPM")]
LEGEND = ("legend: * the sources disagree on a fact of the model (`harness models --json` shows each dispute and "
          "the value chosen); (default) the dimension sent when the spec names none; - none documented; prices: "
          "text/image/video per 1M input tokens, in the region's currency; not offered: the model is not served in "
          "that region; not billed: self-hosted, nothing is billed")


def add_parser(sub):
    p = sub.add_parser(NAME, help=HELP, description=HELP + ". Disputed facts are marked with *.")
    p.add_argument("--json", action="store_true",
                   help="print the catalog as one JSON document (every field of every model) instead of a table")
    return p


def _plain(value):
    """Catalog values as JSON data: sets sorted, tuples and mappings as lists and objects."""
    if dataclasses.is_dataclass(value):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, (set, frozenset)):
        return sorted(_plain(v) for v in value)
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if hasattr(value, "items"):
        return {str(k): _plain(v) for k, v in value.items()}
    return str(value) if not isinstance(value, (str, int, float, bool, type(None))) else value


def run(args) -> int:
    cat = load_catalog()
    if args.json:
        doc = {"version": cat.version, "path": str(cat.path),
               "models": [_plain(cat.get(name)) for name in cat.names()]}
        sys.stdout.buffer.write(canonical_json(doc, pretty=True))
        return 0
    rows = []
    for name in cat.names():
        m = cat.get(name)
        star = " *" if m.disputes else ""
        # The default in words, not only in bold: it must survive a pipe and a colourless terminal.
        dims = ", ".join(f"{d} (default)" if d == m.default_dimension else str(d) for d in m.dimensions)
        limits = f"{m.max_contents or '-'} items, {m.max_images or '-'} img, {m.max_videos or '-'} vid"
        quota = f"{m.rpm or '-'}/{m.tpm or '-'}"
        rows.append([name + star, m.provider, ", ".join(sorted(m.modalities)), dims, m.fusion, limits, quota])
    console = make_console()
    print_table(console, f"model catalog {cat.version} ({cat.path})", COLUMNS, rows)
    regions = list(cat.regions)
    print_table(console, "prices per 1M input tokens: text/image/video",
                [("model", False)] + [(r, False) for r in regions],
                [[name + (" *" if cat.get(name).disputes else ""), *price_cells(cat.get(name), regions)]
                 for name in cat.names()])
    console.print(LEGEND, highlight=False, markup=False)
    return 0


def price_cells(model, regions: list[str]) -> list[str]:
    """What each of `regions` bills for `model` per 1M input tokens, text/image/video in its currency
    (`0.7/1.8/1.8 CNY`); `not offered` where the model is not served; `not billed` when self-hosted."""
    if not model.prices:
        return ["not billed"] * len(regions)
    cells = []
    for region in regions:
        p = model.prices.get(region)
        cells.append("not offered" if p is None else
                     "/".join(f"{round(getattr(p, k) * PER / p.per, 9):g}" for k in ("text", "image", "video"))
                     + f" {p.currency}")
    return cells
