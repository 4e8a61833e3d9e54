"""Checks over hand-built output folders with real .npy files."""

from __future__ import annotations

import json

import pytest
from jsonschema import Draft202012Validator

from harness.checks.evaluate import evaluate_checks
from harness.folder.verdict import render_validate_txt
from harness.spec.checkrefs import validate_check_refs
from tests.test_checks_support import VECTORS, make_run, pad, unit

SCHEMA = json.loads((__import__("pathlib").Path(__file__).parents[1] / "schemas" / "checks.schema.json").read_text())
CELL4 = "qwen3-vl-embedding-4"


@pytest.fixture
def run(tmp_path):
    folder = tmp_path / "out"
    manifest = make_run(folder)
    return folder, manifest.cells


def by_name(results):
    return {(r.name, r.cell): r for r in results}


def test_nearest_passes_when_caption_finds_its_photo(run):
    folder, cells = run
    [r] = evaluate_checks([{"nearest": {"query": "cat-caption", "among": ["cat-photo", "dog-photo"],
                                        "expect": "cat-photo"}}], folder, cells)
    assert r.passed and r.kind == "check" and r.cell == CELL4
    assert r.name == "nearest:cat-caption"
    assert "cat-caption → cat-photo first of 2" in r.detail
    assert r.data["pairs"][0]["rank"] == 1


def test_nearest_fails_and_says_what_ranked_first(run):
    folder, cells = run
    [r] = evaluate_checks([{"nearest": {"query": "cat-caption", "among": ["cat-photo", "dog-photo"],
                                        "expect": "dog-photo"}}], folder, cells)
    assert not r.passed
    assert "cat-caption → cat-photo" in r.detail and "expected dog-photo at rank 2 of 2" in r.detail
    assert "FAIL nearest:cat-caption [qwen3-vl-embedding-4]" in render_validate_txt([r]).decode()


def test_nearest_pairs_with_pass_rate(run):
    folder, cells = run
    pairs = {"cat-caption": "cat-photo", "dog-caption": "cat-photo"}  # second is wrong
    strict = evaluate_checks([{"nearest": {"pairs": pairs}}], folder, cells)[0]
    lenient = evaluate_checks([{"nearest": {"pairs": pairs, "pass_rate": 0.5}}], folder, cells)[0]
    counted = evaluate_checks([{"nearest": {"pairs": pairs, "max_failures": 1}}], folder, cells)[0]
    assert not strict.passed and "1/2 queries" in strict.detail
    assert lenient.passed and "pass rate 0.50 ≥ 0.5" in lenient.detail
    assert counted.passed and "1 failure ≤ max 1" in counted.detail
    assert strict.data["trials"] == 2 and strict.data["failures"] == 1


def test_similarity_bounds(run):
    folder, cells = run
    ok = evaluate_checks([{"similarity": {"a": "cat-caption", "b": "cat-photo", "min": 0.9}}], folder, cells)[0]
    bad = evaluate_checks([{"similarity": {"a": "cat-caption", "b": "dog-photo", "min": 0.9}}], folder, cells)[0]
    assert ok.passed and ok.data["pairs"][0]["cosine"] > 0.9
    assert not bad.passed and "want ≥ 0.9" in bad.detail and bad.data["want"] == "≥ 0.9"
    assert bad.name == "similarity:cat-caption~dog-photo"


def test_vectors_sanity_dimension_and_norms(tmp_path):
    vecs = {k: pad(v, 4) for k, v in VECTORS.items()}
    vecs["dog-photo"] = [x * 3 for x in vecs["dog-photo"]]  # norm 3
    folder = tmp_path / "out"
    cells = make_run(folder, {CELL4: vecs}).cells
    [r] = evaluate_checks([{"vectors": {"norm_min": 0.99, "norm_max": 1.01}}], folder, cells)
    assert not r.passed and "dog-photo (3.0000)" in r.detail and r.data["failures"] == 1
    [r] = evaluate_checks([{"vectors": {"norm_min": 0.99, "norm_max": 1.01, "max_failures": 1}}], folder, cells)
    assert r.passed


def test_vectors_wrong_dimension_and_nan(tmp_path):
    folder = tmp_path / "out"
    vecs = {k: pad(v, 4) for k, v in VECTORS.items()}
    cells = make_run(folder, {CELL4: vecs}).cells
    cells[0]["dimension"] = 8  # the cell asked for 8, the provider returned 4
    [r] = evaluate_checks([{"vectors": {}}], folder, cells)
    assert not r.passed and "dimension 4, asked for 8" in r.detail
    vecs["cat-photo"][0] = float("nan")
    folder2 = tmp_path / "out2"
    cells = make_run(folder2, {CELL4: vecs}).cells
    [r] = evaluate_checks([{"vectors": {}}], folder2, cells)
    assert not r.passed and "non-finite values in cat-photo" in r.detail


def test_retrieval_metrics_and_thresholds(run):
    folder, cells = run
    check = {"retrieval": {"queries": {"cat-caption": ["cat-photo"], "dog-caption": ["dog-photo"]},
                           "among": ["cat-photo", "dog-photo"], "k": [1], "min": {"recall@1": 0.9, "mrr": 0.9}}}
    [r] = evaluate_checks([check], folder, cells)
    assert r.passed
    assert r.data["metrics"]["recall@1"] == 1.0 and r.data["metrics"]["mrr"] == 1.0
    assert r.data["dimension"] == 4 and r.data["model"] == "qwen3-vl-embedding"
    check["retrieval"]["queries"] = {"cat-caption": ["dog-photo"], "dog-caption": ["dog-photo"]}
    [r] = evaluate_checks([check], folder, cells)
    assert not r.passed and "recall@1 0.500 [0.000, 1.000] < 0.9" in r.detail and r.data["failures"] == 2


def test_retrieval_default_pool_excludes_queries(run):
    folder, cells = run
    [r] = evaluate_checks([{"retrieval": {"queries": {"cat-caption": ["cat-photo"]}}}], folder, cells)
    assert r.passed and r.data["candidates"] == 3  # cat-photo, dog-caption, dog-photo
    assert set(r.data["metrics"]) == {"recall@1", "recall@5", "recall@10", "ndcg@1", "ndcg@5", "ndcg@10", "mrr"}


def test_stability_against_earlier_run(tmp_path):
    earlier = tmp_path / "baseline"
    make_run(earlier)
    drifted = {k: pad(v, 4) for k, v in VECTORS.items()}
    drifted["dog-photo"] = unit([0.1, 0.9, 0.0, 0.5])  # moved
    now = tmp_path / "now"
    cells = make_run(now, {CELL4: drifted}).cells
    [r] = evaluate_checks([{"stability": {"against": "baseline", "min_cosine": 0.99}}], now, cells, spec_dir=tmp_path)
    assert not r.passed and "below: dog-photo" in r.detail
    assert r.data["compared"] == 4 and r.data["min_cosine"] < 0.99 and r.data["median_cosine"] > 0.99
    assert r.data["earlier_found"] is True
    [r] = evaluate_checks([{"stability": {"against": str(earlier), "pass_rate": 0.75}}], now, cells, spec_dir=tmp_path)
    assert r.passed


def test_stability_reads_no_earlier_run_outside_the_project(tmp_path):
    """`against:` is a path a spec names: confined like every other (issue 24), so a stranger's spec
    cannot make the check read vectors from elsewhere on the machine."""
    make_run(tmp_path / "elsewhere" / "baseline")
    now = tmp_path / "proj" / "now"
    cells = make_run(now).cells
    for against in (str(tmp_path / "elsewhere" / "baseline"), "../elsewhere/baseline"):
        [r] = evaluate_checks([{"stability": {"against": against}}], now, cells, spec_dir=tmp_path / "proj")
        assert not r.passed and "outside the project" in r.detail, r.detail
    [r] = evaluate_checks([{"stability": {"against": "../elsewhere/baseline"}}], now, cells,
                          spec_dir=tmp_path / "proj", allow_paths=[tmp_path / "elsewhere"])
    assert r.passed, r.detail


def test_stability_missing_baseline_fails_with_hint(run, tmp_path):
    folder, cells = run
    [r] = evaluate_checks([{"stability": {"against": "nowhere"}}], folder, cells, spec_dir=tmp_path)
    assert not r.passed and "no such folder" in r.detail
    assert r.detail.startswith("cannot compare with ") and r.data["earlier_found"] is False   # verify reads the data


def test_filters_and_unexecuted_cells(tmp_path):
    folder = tmp_path / "out"
    vecs = {k: pad(v, 4) for k, v in VECTORS.items()}
    cells = make_run(folder, {CELL4: vecs, "tongyi-4": vecs}).cells
    (folder / "vectors" / "tongyi-4.npy").unlink()
    check = {"similarity": {"a": "cat-caption", "b": "cat-photo", "min": 0.5}}
    results = evaluate_checks([check], folder, cells)
    assert [r.cell for r in results] == [CELL4, "tongyi-4"]
    assert results[1].status == "skip" and results[1].data["status"] == "skipped"
    assert results[1].line() == "skip similarity:cat-caption~cat-photo [tongyi-4]: cell not executed"
    only = evaluate_checks([{"similarity": {**check["similarity"], "models": ["tongyi"]}}], folder, cells)
    assert [r.cell for r in only] == ["tongyi-4"]
    none = evaluate_checks([{"similarity": {**check["similarity"], "cells": ["typo-4"]}}], folder, cells)
    assert len(none) == 1 and not none[0].passed and "selects no cell" in none[0].detail


def test_corrupt_vector_file_fails_the_check_not_the_harness(run):
    folder, cells = run
    (folder / "vectors" / f"{CELL4}.npy").write_bytes(b"not numpy")
    [r] = evaluate_checks([{"vectors": {}}], folder, cells)
    assert not r.passed and "not a readable .npy file" in r.detail


def test_duplicate_names_are_numbered_and_locate_recorded(run):
    folder, cells = run
    c = {"vectors": {}}
    rs = evaluate_checks([c, c], folder, cells, locate=lambda path: (10 + path[0], 5))
    assert [r.name for r in rs] == ["vectors", "vectors#2"]
    assert rs[1].data["line"] == 11


def test_validate_check_refs_names_unknown_ids_with_position():
    checks = [
        {"nearest": {"query": "cat-captoin", "among": ["cat-photo"], "expect": "cat-photo"}},
        {"similarity": {"a": "cat-caption", "b": "cat-photo", "min": 0.9, "max": 0.1}},
        {"retrieval": {"queries": {"q": ["nope"]}}},
        {"vectors": {"models": ["qwen3-vl-embeding"]}},
    ]
    positions = {(0, "nearest", "query"): (7, 14)}
    probs = validate_check_refs(checks, ["cat-caption", "cat-photo", "q"], lambda p: positions.get(p),
                                file="spec.yaml", models=["qwen3-vl-embedding"])
    rendered = [p.render() for p in probs]
    assert rendered[0] == ("spec.yaml:7:14: check nearest: unknown input id 'cat-captoin' "
                           "(did you mean 'cat-caption'?)")
    assert any("min 0.9 is greater than max 0.1" in r for r in rendered)
    assert any("unknown input id 'nope'" in r for r in rendered)
    assert any("model 'qwen3-vl-embeding' is not in this spec's matrix" in r and "qwen3-vl-embedding" in r
               for r in rendered)


def test_validate_check_refs_expect_must_be_among():
    probs = validate_check_refs([{"nearest": {"query": "a", "among": ["b"], "expect": "c"}}], ["a", "b", "c"])
    assert len(probs) == 1 and "expected 'c' is not in `among`" in probs[0].message


def test_validate_check_refs_clean_spec_has_no_problems():
    checks = [{"nearest": {"pairs": {"a": "b"}}}, {"retrieval": {"queries": {"a": ["b", "c"]}}}]
    assert validate_check_refs(checks, ["a", "b", "c"]) == []


@pytest.mark.parametrize("check", [
    {"vectors": {"norm_min": 0.99, "norm_max": 1.01}},
    {"nearest": {"query": "a", "among": ["b", "c"], "expect": "b", "cells": ["m-256"]}},
    {"nearest": {"pairs": {"a": "b"}, "pass_rate": 0.9}},
    {"similarity": {"a": "a", "b": "b", "max": 0.5, "models": ["qwen3-vl-embedding"]}},
    {"similarity": {"pairs": [["a", "b"], ["c", "d"]], "min": 0.2, "max_failures": 1}},
    {"retrieval": {"queries": {"q": ["a"]}, "k": [1, 5, 10], "min": {"recall@5": 0.8, "mrr": 0.5, "ndcg@10": 0.3}}},
    {"stability": {"against": "baseline/run", "min_cosine": 0.99}},
])
def test_schema_accepts(check):
    assert list(Draft202012Validator(SCHEMA).iter_errors(check)) == []


@pytest.mark.parametrize("check", [
    {"vectors": {}, "nearest": {"query": "a", "expect": "b"}},       # two kinds in one item
    {"vectors": {"norm_minimum": 1}},                                  # typo
    {"nearest": {"query": "a"}},                                       # no expect
    {"nearest": {"query": "a", "expect": "b", "pairs": {"a": "b"}}},   # both forms
    {"similarity": {"a": "a", "b": "b"}},                              # no bound
    {"similarity": {"a": "a", "b": "b", "min": 0.1, "pass_rate": 0.5, "max_failures": 1}},
    {"retrieval": {"queries": {"q": ["a"]}, "min": {"f1@5": 0.1}}},             # precision@5 is known since qrels
    {"stability": {"min_cosine": 0.9}},                                # no against
    {"vectors": {"pass_rate": 1.5}},
])
def test_schema_rejects(check):
    assert list(Draft202012Validator(SCHEMA).iter_errors(check)) != []


def test_schema_documents_every_property():
    def walk(node, path):
        if isinstance(node, dict):
            for key, sub in (node.get("properties") or {}).items():
                if sub is True:        # declared beside a `required` for ajv's strictRequired; described elsewhere
                    continue
                assert "description" in sub or "$ref" in sub, f"{path}.{key} has no description"
            for k, v in node.items():
                walk(v, f"{path}.{k}")
        elif isinstance(node, list):
            for i, v in enumerate(node):
                walk(v, f"{path}[{i}]")
    walk(SCHEMA, "$")
    Draft202012Validator.check_schema(SCHEMA)
    for example in SCHEMA["examples"]:
        assert list(Draft202012Validator(SCHEMA).iter_errors(example)) == []


def test_stability_fails_on_non_finite_vectors(tmp_path):
    make_run(tmp_path / "baseline")
    broken = {k: pad(v, 4) for k, v in VECTORS.items()}
    broken["cat-photo"] = [float("nan")] * 4
    cells = make_run(tmp_path / "now", {CELL4: broken}).cells
    [r] = evaluate_checks([{"stability": {"against": "baseline"}}], tmp_path / "now", cells, spec_dir=tmp_path)
    assert not r.passed and "below: cat-photo" in r.detail


def test_text_only_cell_skips_inputs_it_never_takes(tmp_path):
    """local/e5-small takes only texts: its checks leave the photos out instead of failing."""
    folder = tmp_path / "out"
    texts = {k: pad(v, 4) for k, v in VECTORS.items() if "caption" in k}
    cells = make_run(folder, {CELL4: {k: pad(v, 4) for k, v in VECTORS.items()}, "local--e5-small-4": texts},
                     models={"local--e5-small-4": ("local/e5-small", 4)}).cells
    index = folder / "payloads" / "local--e5-small-4" / "index.jsonl"
    index.write_text(json.dumps({"file": "00000.json", "inputs": list(texts), "contents": 2}) + "\n")
    checks = [{"vectors": {"norm_min": 0.99, "norm_max": 1.01}},
              {"nearest": {"query": "cat-caption", "among": ["cat-photo", "dog-photo"], "expect": "cat-photo"}},
              {"similarity": {"a": "cat-caption", "b": "dog-caption", "max": 0.5}}]
    got = by_name(evaluate_checks(checks, folder, cells))
    v = got[("vectors", "local--e5-small-4")]
    assert v.passed and v.data["trials"] == 2 and "2 vectors of dimension 4" in v.detail
    n = got[("nearest:cat-caption", "local--e5-small-4")]
    assert n.passed and n.data["status"] == "skipped" and "does not take cat-caption→cat-photo" in n.detail
    assert got[("nearest:cat-caption", CELL4)].data["status"] == "passed"
    assert got[("similarity:cat-caption~dog-caption", "local--e5-small-4")].data["status"] == "passed"


def test_planned_input_without_a_vector_fails(tmp_path):
    folder = tmp_path / "out"
    some = {k: pad(v, 4) for k, v in VECTORS.items() if k != "dog-photo"}  # index still plans dog-photo
    cells = make_run(folder, {CELL4: some}).cells
    index = folder / "payloads" / CELL4 / "index.jsonl"
    index.write_text(json.dumps({"file": "00000.json", "inputs": list(VECTORS), "contents": 4}) + "\n")
    [r] = evaluate_checks([{"vectors": {}}], folder, cells)
    assert not r.passed and "no vector for dog-photo" in r.detail and r.data["trials"] == 4


def test_check_mistakes_read_well_through_harness_validate(tmp_path, capsys):
    from harness.cli import main

    spec = tmp_path / "bad.yaml"
    spec.write_text(
        "version: 1\nname: bad\nmodels: [qwen3-vl-embedding]\ndimensions: [256]\n"
        "inputs:\n  - id: a\n    text: hello\n  - id: b\n    text: world\n"
        "checks:\n"
        "  - nearest: {query: a}\n"                                         # line 11
        "  - similarity: {a: a, b: b}\n"                                    # line 12
        "  - vectors: {norm_minimum: 1}\n"                                  # line 13
        "  - retrieval: {queries: {a: [b]}, min: {f1@5: 0.5}}\n"     # line 14
        "  - stability: {against: x, pass_rate: 0.9, max_failures: 2}\n")   # line 15
    assert main(["validate", str(spec)]) == 3
    err = capsys.readouterr().err
    assert f"{spec}:11:5: checks[0].nearest: give `query` with `expect`, or `pairs`" in err
    assert f"{spec}:12:5: checks[1].similarity: give `min` and/or `max`" in err
    assert f"{spec}:13:15: unknown key 'norm_minimum' in checks[2].vectors (did you mean 'norm_min'?)" in err
    assert "checks[3].retrieval.min \"f1@5\" is not allowed here (A metric name: `recall@K`" in err
    assert f"{spec}:15:5: checks[4].stability: use either `pass_rate` or `max_failures`, not both" in err
