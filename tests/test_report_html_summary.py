"""summary.json: versioned, valid against its schema, deterministic, the numbers reports use."""

import json
from pathlib import Path

from jsonschema import Draft202012Validator

from harness.checks.evaluate import evaluate_checks
from harness.folder import SUMMARY_VERSION, Summary
from harness.folder.verdict import CheckResult
from harness.report.finalize import finalize
from tests.test_checks_support import VECTORS, make_run, pad

SCHEMA = json.loads((Path(__file__).parents[1] / "schemas" / "summary.schema.json").read_text())


def _run(tmp_path, name="run"):
    folder = tmp_path / name
    cells = {f"{m}-{d}": {k: pad(v, d) for k, v in VECTORS.items()}
             for m in ("qwen3-vl-embedding", "tongyi-vision") for d in (4, 8)}
    manifest = make_run(folder, cells)
    checks = [{"vectors": {"norm_min": 0.99, "norm_max": 1.01}},
              {"retrieval": {"queries": {"cat-caption": ["cat-photo"], "dog-caption": ["dog-photo"]},
                             "k": [1], "min": {"recall@1": 0.9}}}]
    results = [CheckResult("schema", True, "ok")] + evaluate_checks(checks, folder, manifest.cells)
    return folder, manifest, results


def test_summary_valid_and_carries_counts_cells_quality(tmp_path):
    folder, manifest, results = _run(tmp_path)
    written = finalize(folder, manifest, results)
    assert {"summary.json", "junit.xml", "report.md", "report.html"} <= set(written.files)
    assert all((folder / p).is_file() for p in written.files)
    s = json.loads((folder / "summary.json").read_text())
    assert list(Draft202012Validator(SCHEMA).iter_errors(s)) == []
    assert s["summary_version"] == SUMMARY_VERSION == 1
    assert s["verdict"] == "PASS" and s["counts"] == {"total": 9, "passed": 9, "failed": 0, "skipped": 0, "warnings": 0}
    assert [c["id"] for c in s["cells"]] == [c["id"] for c in manifest.cells]
    assert s["cells"][0]["latency_ms"]["p50"] == 120.0 and s["cells"][0]["usage"]["input_tokens"] == 30
    assert {(q["model"], q["dimension"]) for q in s["quality"]} == {
        ("qwen3-vl-embedding", 4), ("qwen3-vl-embedding", 8), ("tongyi-vision", 4), ("tongyi-vision", 8)}
    assert s["quality"][0]["metrics"]["recall@1"] == 1.0 and s["quality"][0]["thresholds"] == {"recall@1": 0.9}
    assert s["manifest_digest"] == written.digest


def test_summary_is_byte_identical_for_the_same_folder(tmp_path):
    folder, manifest, results = _run(tmp_path)
    finalize(folder, manifest, results)
    first = {p: (folder / p).read_bytes() for p in ("summary.json", "junit.xml", "report.html")}
    finalize(folder, manifest, results)
    assert first == {p: (folder / p).read_bytes() for p in first}
    assert str(tmp_path) not in first["summary.json"].decode()  # no absolute paths


def test_summary_failed_and_skipped(tmp_path):
    folder = tmp_path / "run"
    cells = {f"{m}-{d}": {k: pad(v, d) for k, v in VECTORS.items()}
             for m in ("qwen3-vl-embedding", "tongyi-vision") for d in (4, 8)}
    manifest = make_run(folder, cells, skip=("tongyi-vision-8",))
    results = evaluate_checks([{"similarity": {"a": "cat-caption", "b": "dog-photo", "min": 0.9}}],
                              folder, manifest.cells)
    finalize(folder, manifest, results)
    s = json.loads((folder / "summary.json").read_text())
    assert s["verdict"] == "FAIL"
    assert s["counts"] == {"total": 4, "passed": 0, "failed": 3, "skipped": 1, "warnings": 0}
    skipped = next(c for c in s["cells"] if c["id"] == "tongyi-vision-8")
    assert skipped["executed"] is False and skipped["vectors"] == 0 and "no DashScope API key" in skipped["reason"]
    assert skipped["latency_ms"] is None and skipped["usage"] == {}
    assert list(Draft202012Validator(SCHEMA).iter_errors(s)) == []


def test_non_finite_and_numpy_data_do_not_break_canonical_json(tmp_path):
    import numpy as np
    folder, manifest, _ = _run(tmp_path)
    odd = CheckResult("odd", True, "x", data={"v": np.float32(0.5), "nan": float("nan"), "t": (1, 2), "p": Path("/x")})
    finalize(folder, manifest, [odd])
    s = json.loads((folder / "summary.json").read_text())
    assert s["checks"][0]["data"] == {"v": 0.5, "nan": None, "t": [1, 2], "p": "/x"}


def test_headline_metric_is_the_first_threshold_the_spec_gives(tmp_path):
    """summary.json sorts object keys; the reports still headline the metric the user wrote first."""
    from harness.report.recommend import headline as headline_metric
    for order in (["recall@1", "mrr"], ["mrr", "recall@1"]):
        folder = tmp_path / order[0]
        cells = {"qwen3-vl-embedding-8": {k: pad(v, 8) for k, v in VECTORS.items()}}
        manifest = make_run(folder, cells)
        limits = {"recall@1": 0.9, "mrr": 0.5}
        checks = [{"retrieval": {"queries": {"cat-caption": ["cat-photo"], "dog-caption": ["dog-photo"]},
                                 "k": [1], "min": {m: limits[m] for m in order}}}]
        finalize(folder, manifest, evaluate_checks(checks, folder, manifest.cells))
        summary = json.loads((folder / "summary.json").read_text())
        assert list(summary["quality"][0]["thresholds"]) == ["mrr", "recall@1"]     # sorted on disk
        assert headline_metric(Summary.from_json(summary)) == ("retrieval", order[0], limits[order[0]])
