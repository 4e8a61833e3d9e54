"""Image–text sets (`imagetext:`): a folder of images and a captions file give text→image and
image→text retrieval checks, as Flickr30k/COCO evaluations do; run through the real CLI against
the fake DashScope server on 127.0.0.1 (real HTTP)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.helpers import SPECS, harness, write_spec
from tests.servers.dashscope_server import serve

pytrec_eval = pytest.importorskip("pytrec_eval")

KEY = "sk-imagetext-test-0123456789"
CELL = "qwen3-vl-embedding-256"
SPEC = """\
version: 1
name: it
models: [qwen3-vl-embedding]
dimensions: [256]
inputs:
  - imagetext: data/CAPTIONS
    images: pictures
"""
JSONL = [{"image": "cat.png", "captions": ["a cat on a chair", "a small kitten"]},
         {"image": "dog.png", "caption": "a dog"},
         {"image": "sky.bmp", "caption": "blue sky over hills"}]


def project(tmp_path: Path, captions: str = "captions.jsonl", text: str | None = None) -> Path:
    shutil.copytree(SPECS / "images", tmp_path / "pictures")
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / captions).write_text(text if text is not None
                                              else "".join(json.dumps(r) + "\n" for r in JSONL))
    write_spec(tmp_path, SPEC.replace("CAPTIONS", captions))
    return tmp_path


def test_both_directions_are_scored_and_equal_trec_eval(tmp_path):
    project(tmp_path)
    with serve(api_key=KEY) as server:
        r = harness("run", "spec.yaml", "--execute", "--base-url", server.base_url, cwd=tmp_path,
                    env={"DASHSCOPE_API_KEY": KEY})
    assert r.returncode in (0, 1), r.stdout + r.stderr
    out = tmp_path / "output" / "it"
    lines = (out / "validate.txt").read_text()
    # no threshold: the metrics are reported, and the line says it asserts nothing (issue 23, 4)
    assert f"warn captions-t2i [{CELL}]: proves nothing: no threshold (`min`): it reports metrics and asserts " \
           "nothing (4 queries over 3 candidates: recall@1" in lines
    assert f"warn captions-i2t [{CELL}]: proves nothing: no threshold (`min`): it reports metrics and asserts " \
           "nothing (3 queries over 4 candidates: recall@1" in lines
    ids = [json.loads(l)["id"] for l in (out / "inputs.jsonl").read_text().splitlines()]
    assert ids == ["img:cat.png", "img:dog.png", "img:sky.bmp", "cap:cat.png:1", "cap:cat.png:2", "cap:dog.png:1",
                   "cap:sky.bmp:1"]
    summary = json.loads((out / "summary.json").read_text())
    for direction, qrels in (("t2i", {"cap:cat.png:1": {"img:cat.png": 1}, "cap:cat.png:2": {"img:cat.png": 1},
                                      "cap:dog.png:1": {"img:dog.png": 1}, "cap:sky.bmp:1": {"img:sky.bmp": 1}}),
                             ("i2t", {"img:cat.png": {"cap:cat.png:1": 1, "cap:cat.png:2": 1},
                                      "img:dog.png": {"cap:dog.png:1": 1}, "img:sky.bmp": {"cap:sky.bmp:1": 1}})):
        check = next(c for c in summary["checks"] if c["name"] == f"captions-{direction}")
        metrics = check["metrics"] if "metrics" in check else check["data"]["metrics"]
        run: dict = {}
        for line in (out / "runs" / CELL / f"captions-{direction}.trec").read_text().splitlines():
            q, _, d, _, score, _ = line.split()
            run.setdefault(q, {})[d] = float(score)
        trec = pytrec_eval.RelevanceEvaluator(qrels, {"recall.1,5", "recip_rank", "ndcg_cut.5"}).evaluate(run)

        def mean(m):
            return sum(trec[q][m] for q in trec) / len(trec)

        assert metrics["recall@1"] == pytest.approx(mean("recall_1"), abs=1e-6)
        assert metrics["recall@5"] == pytest.approx(mean("recall_5"), abs=1e-6) == 1.0
        assert metrics["mrr"] == pytest.approx(mean("recip_rank"), abs=1e-6)
        assert metrics["ndcg@5"] == pytest.approx(mean("ndcg_cut_5"), abs=1e-6)
        results = out / "results" / "dashscope__qwen3-vl-embedding" / "dim-256"     # MTEB's layout
        result = json.loads((results / f"captions-{direction}.json").read_text())
        assert result["task_name"] == f"captions-{direction}" and result["harness"]["dataset"] == "captions"
        assert result["scores"]["test"][0]["recall_at_1"] == metrics["recall@1"]
    v = harness("verify", "output/it", cwd=tmp_path)
    assert v.returncode == 0, v.stdout + v.stderr


def test_a_csv_captions_file_groups_rows_by_image(tmp_path):
    csv = "image,caption\ncat.png,a cat on a chair\ndog.png,a dog\ncat.png,a small kitten\n"
    project(tmp_path, "caps.csv", csv)
    r = harness("run", "spec.yaml", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    ids = [json.loads(l)["id"] for l in (tmp_path / "output/it/inputs.jsonl").read_text().splitlines()]
    assert ids == ["img:cat.png", "img:dog.png", "cap:cat.png:1", "cap:cat.png:2", "cap:dog.png:1"]


@pytest.mark.parametrize("text, message", [
    ('{"image": "cat.png", "caption": "a cat"}\n{"image": "cow.png", "caption": "a cow"}\n', "data/captions.jsonl:2: "),
    ('{"image": "cat.png", "caption": "a cat"}\n{"image": "dog.png"\n', "data/captions.jsonl:2: not valid JSON"),
    ('{"image": "cat.png"}\n', "data/captions.jsonl:1: needs `image` (a path) and `caption`"),
])
def test_bad_captions_files_are_named_with_their_line(tmp_path, text, message):
    project(tmp_path, text=text)
    r = harness("run", "spec.yaml", cwd=tmp_path)
    assert r.returncode == 3 and message in r.stderr, r.stderr
    assert not (tmp_path / "output" / "it").exists()
