"""`harness models`: every model's price in every region, as models.yaml gives it (converted to 1M input
tokens), and a legend line that explains every mark the tables use (`*`, `(default)`, `-`, `not offered`,
`not billed`)."""

from __future__ import annotations

import re

import yaml

from harness.catalog.load import load_catalog
from tests.helpers import harness

WIDE = {"COLUMNS": "200", "NO_COLOR": "1"}


def test_models_shows_each_regions_price_per_million_tokens_as_the_catalog_gives_it(tmp_path):
    r = harness("models", cwd=tmp_path, env=WIDE)
    assert r.returncode == 0, r.stderr
    out = r.stdout
    raw = yaml.safe_load(load_catalog().path.read_text(encoding="utf-8"))
    regions = list(raw["regions"])
    table = out[out.index("prices per 1M input tokens: text/image/video"):]
    header = next(ln for ln in table.splitlines() if "model" in ln)
    assert [c.strip() for c in header.strip("┃│ ").split("┃")][1:] == regions
    for name, row in raw["models"].items():
        line = next(ln for ln in table.splitlines() if re.match(rf"[│┃] {re.escape(name)}( \*)? +[│┃]", ln))
        cells = [c.strip() for c in line.strip("│ ").split("│")][1:]
        for region, cell in zip(regions, cells):
            price = (row.get("prices") or {}).get(region)
            if not row.get("prices"):
                assert cell == "not billed", (name, region, cell)
            elif price is None:
                assert cell == "not offered", (name, region, cell)
            else:   # the catalog's amount per `per` tokens, per 1M: Beijing's 0.0007 CNY per 1K is 0.7
                amounts = [float(x) for x in cell.removesuffix(" " + price["currency"]).split("/")]
                want = [price[k] * 1_000_000 / price["per"] for k in ("text", "image", "video")]
                assert amounts == [round(w, 9) for w in want], (name, region, cell)
    assert "│ qwen3-vl-embedding *" in table and "0.7/1.8/1.8 CNY" in table
    assert "0.09/0.03/0.03 USD" in table            # flash in Singapore: text and image priced apart


def test_every_mark_the_tables_use_is_explained_in_the_legend(tmp_path):
    r = harness("models", cwd=tmp_path, env=WIDE)
    tables, legend = r.stdout.split("\nlegend:")
    legend = " ".join(legend.split())      # one line (a terminal narrower than it wraps it)
    for mark, said in (("*", "* the sources disagree"), ("(default)", "(default) the dimension sent"),
                       ("- items", "- none documented"), ("not offered", "not offered: the model is not served"),
                       ("not billed", "not billed: self-hosted"), ("text/image/video", "prices: text/image/video")):
        assert mark in tables and said in legend, (mark, legend)
    # a model is starred exactly when the catalog records a dispute about it
    cat = load_catalog()
    for name in cat.names():
        starred = re.search(rf"[│┃] {re.escape(name)} \* ", tables) is not None
        assert starred == bool(cat.get(name).disputes), name
