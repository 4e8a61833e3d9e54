"""MTEB reads a run folder's retrieval results as it reads its own (issue 28, items 1 and 2), checked
with MTEB itself (the `mteb` extra: mteb 2.26 and torch on CPU; importing it takes seconds, so every
test here is slow): `mteb.ResultCache(cache_path=<run folder>).load_results()` finds one model result
per executed cell (the dimension as its revision), `TaskResult.from_disk` loads each with `get_score()`
the check's nDCG@10, `ModelMeta` accepts model_meta.json, and MTEB's own retrieval evaluator, over the
run file and the qrels beside it, gives the check's metrics, the query judged only grade 0 counted.
The run is the real CLI against the fake DashScope server on 127.0.0.1 (real HTTP), two dimensions."""

from __future__ import annotations

import hashlib
import json
import math
import shutil
from importlib.metadata import version
from pathlib import Path

import pytest

from tests.helpers import REPO, harness, write_spec
from tests.servers.dashscope_server import serve

mteb = pytest.importorskip("mteb", reason="needs the `mteb` extra (mteb and torch): pip install -e '.[mteb]'")
pytestmark = pytest.mark.slow     # importing mteb loads torch
from mteb.models import ModelMeta  # noqa: E402  (after the skip: without the extra there is no mteb)

KEY = "sk-mteb-test-0123456789abcdef"
ZERO = REPO / "tests" / "fixtures" / "format-2" / "data" / "beir"    # beir-mini + q13, judged only grade 0
SPEC = """\
version: 1
name: m
models: [qwen3-vl-embedding]
dimensions: [256, 512]
inputs:
  - beir: data/beir
    languages: [eng-Latn, fra-Latn]
    retrieval: {name: MiniBEIR, k: [1, 3, 5, 10], min: {ndcg@10: 0.01}}
"""
CELLS = {"qwen3-vl-embedding-256": "dim-256", "qwen3-vl-embedding-512": "dim-512"}
_RUNS: dict[str, Path] = {}


def run_folder(tmp_path_factory) -> Path:
    """The spec run once for the module: its output folder."""
    if "out" not in _RUNS:
        root = tmp_path_factory.mktemp("mteb")
        shutil.copytree(ZERO, root / "data" / "beir")
        write_spec(root, SPEC)
        with serve(api_key=KEY) as server:
            r = harness("run", "spec.yaml", "--execute", "--base-url", server.base_url, cwd=root,
                        env={"DASHSCOPE_API_KEY": KEY})
        assert r.returncode in (0, 1), r.stdout + r.stderr
        _RUNS["out"] = root / "output" / "m"
    return _RUNS["out"]


def check_data(out: Path) -> dict[str, dict]:
    """The check's data per cell, from summary.json."""
    summary = json.loads((out / "summary.json").read_text())
    return {c["cell"]: c["data"] for c in summary["checks"] if c["name"] == "MiniBEIR"}


def test_result_cache_finds_one_model_result_per_cell_and_each_task_result_loads(tmp_path_factory):
    out = run_folder(tmp_path_factory)
    data = check_data(out)
    assert set(data) == set(CELLS)
    results = mteb.ResultCache(cache_path=out).load_results()
    found = {(m.model_name, m.model_revision): m for m in results.model_results}
    # MTEB's names are organization/model: a DashScope model is filed under its provider
    assert set(found) == {("dashscope/qwen3-vl-embedding", rev) for rev in CELLS.values()}
    execution = {c["id"]: c for c in json.loads((out / "execution.json").read_text())["cells"]}
    folder = out.parent.parent / "data" / "beir"
    names = sorted(["corpus.jsonl", "qrels/test.tsv", "queries.jsonl"])
    digest = hashlib.sha256("".join(f"{hashlib.sha256((folder / n).read_bytes()).hexdigest()}  {n}\n"
                                    for n in names).encode()).hexdigest()
    for cell, revision in CELLS.items():
        model = found[("dashscope/qwen3-vl-embedding", revision)]
        assert [t.task_name for t in model.task_results] == ["MiniBEIR"]
        assert model.task_results[0].get_score() == data[cell]["metrics"]["ndcg@10"]
        path = out / "results" / "dashscope__qwen3-vl-embedding" / revision / "MiniBEIR.json"
        task = mteb.TaskResult.from_disk(path)
        assert task.get_score() == data[cell]["metrics"]["ndcg@10"] == task.scores["test"][0]["ndcg_at_10"]
        assert task.get_score(languages=["fra"]) == task.get_score()       # the entry's languages
        assert math.isnan(task.get_score(languages=["deu"]))
        assert task.dataset_revision == digest and task.mteb_version == version("mteb")
        assert task.evaluation_time == execution[cell]["elapsed_s"]
        meta = ModelMeta.model_validate(json.loads((path.parent / "model_meta.json").read_text()))
        assert (meta.name, meta.revision, meta.embed_dim, meta.framework) == \
            ("dashscope/qwen3-vl-embedding", revision, int(revision[4:]), ["API"])
    # the folder is untouched by MTEB's reading and verifies
    v = harness("verify", "output/m", cwd=out.parent.parent)
    assert v.returncode == 0, v.stdout + v.stderr


def test_mteb_evaluator_over_the_run_file_and_its_qrels_gives_the_checks_metrics(tmp_path_factory):
    from mteb._evaluators.retrieval_metrics import calculate_retrieval_scores  # MTEB's own retrieval scoring

    out = run_folder(tmp_path_factory)
    for cell, data in check_data(out).items():
        run: dict[str, dict[str, float]] = {}
        for line in (out / "runs" / cell / "MiniBEIR.trec").read_text().splitlines():
            q, _, d, _, score, _ = line.split()
            run.setdefault(q, {})[d] = float(score)
        qrels: dict[str, dict[str, int]] = {}
        for line in (out / "runs" / cell / "MiniBEIR.qrels").read_text().splitlines():
            q, _, d, g = line.split()
            qrels.setdefault(q, {})[d] = int(g)
        scores = calculate_retrieval_scores(run, qrels, [1, 3, 5, 10])
        assert len(scores.all_scores) == data["queries"] == 12         # q13 (grade 0 only) counted, as MTEB does
        assert all(v == 0 for v in scores.all_scores["q13"].values())
        for k in (1, 3, 5, 10):      # MTEB rounds to 5 decimals
            assert data["metrics"][f"ndcg@{k}"] == pytest.approx(scores.ndcg[f"NDCG@{k}"], abs=1e-5)
            assert data["metrics"][f"recall@{k}"] == pytest.approx(scores.recall[f"Recall@{k}"], abs=1e-5)
            assert data["metrics"][f"precision@{k}"] == pytest.approx(scores.precision[f"P@{k}"], abs=1e-5)
            assert data["metrics"][f"map@{k}"] == pytest.approx(scores.map[f"MAP@{k}"], abs=1e-5)
