"""`harness diff` over hand-built runs: by input id, across providers, and as a gate."""

from __future__ import annotations

import json

import pytest

from harness.audit.diff import diff_runs
from harness.checks.evaluate import evaluate_checks
from harness.cli import main
from harness.errors import ExitCode
from harness.report.finalize import finalize
from tests.test_checks_support import VECTORS, make_run, pad, unit

CELL = "qwen3-vl-embedding-4"
RETRIEVAL = [{"retrieval": {"queries": {"cat-caption": ["cat-photo"], "dog-caption": ["dog-photo"]},
                            "among": ["cat-photo", "dog-photo"], "k": [1]}}]


def vectors(dim=4, **override):
    v = {k: pad(x, dim) for k, x in VECTORS.items()}
    v.update(override)
    return v


def build(folder, cells, checks=RETRIEVAL):
    manifest = make_run(folder, cells)
    finalize(folder, manifest, evaluate_checks(checks, folder, manifest.cells))
    return folder


def diff(capsys, *args):
    code = main(["diff", *map(str, args)])
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def test_identical_runs_pass_a_tight_tolerance(tmp_path, capsys):
    a = build(tmp_path / "a", {CELL: vectors()})
    b = build(tmp_path / "b", {CELL: vectors()})
    code, out = diff(capsys, a, b, "--tolerance", "0.000001")
    assert code == ExitCode.OK, out
    assert "spec: same" in out and "payloads: identical in the 1 common cells" in out
    assert f"{CELL}: 4 inputs, min 1.000000" in out and "PASS: within tolerance" in out


def test_drift_is_reported_and_gated(tmp_path, capsys):
    a = build(tmp_path / "a", {CELL: vectors()})
    b = build(tmp_path / "b", {CELL: vectors(**{"dog-photo": unit([0.1, 0.9, 0.0, 0.4])})})
    code, out = diff(capsys, a, b)
    assert code == ExitCode.OK  # informs only
    assert "(dog-photo)" in out and "median 1.000000" in out
    code, out = diff(capsys, a, b, "--tolerance", "0.01")
    assert code == ExitCode.VERIFY_MISMATCH
    assert "FAIL: outside tolerance (cosine ≥ 0.99)" in out
    assert f"{CELL}: cosine" in out and "for dog-photo (" in out
    assert "cat-photo (" not in out.split("FAIL:")[1]  # only the drifted input is named


def test_cloud_and_self_hosted_compare_by_input_id(tmp_path, capsys):
    a = build(tmp_path / "cloud", {CELL: vectors()})
    shuffled = dict(reversed(list(vectors().items())))  # rows in another order
    b = build(tmp_path / "local", {"openai--qwen3-vl-embedding-2b-4": shuffled})
    r = diff_runs(a, b, tolerance=1e-6)
    assert r.cells["only_a"] == [CELL] and r.cells["only_b"] == ["openai--qwen3-vl-embedding-2b-4"]
    [v] = r.vectors
    assert (v["a"], v["b"], v["status"], v["compared"]) == (CELL, "openai--qwen3-vl-embedding-2b-4", "compared", 4)
    assert v["min_cosine"] == pytest.approx(1.0, abs=1e-6) and r.ok
    assert r.metrics and r.metrics[0]["metrics"]["recall@1"]["delta"] == 0.0


def test_dimension_and_count_mismatch(tmp_path, capsys):
    a = build(tmp_path / "a", {CELL: vectors()})
    b = build(tmp_path / "b", {"qwen3-vl-embedding-8": vectors(8)})
    code, out = diff(capsys, a, b, "--tolerance", "0.1", "--pair", f"{CELL}:qwen3-vl-embedding-8")
    assert code == ExitCode.VERIFY_MISMATCH
    assert f"{CELL} ↔ qwen3-vl-embedding-8: dimension 4 vs 8: vectors not comparable" in out
    few = {k: v for k, v in vectors().items() if k != "dog-photo"}
    c = build(tmp_path / "c", {CELL: few}, checks=[])
    code, out = diff(capsys, a, c, "--tolerance", "0.1")
    assert code == ExitCode.VERIFY_MISMATCH
    assert "inputs: 3 in both; only in A: dog-photo" in out
    assert f"{CELL}: inputs in one run only: dog-photo" in out


def test_metric_deltas_and_metric_gate(tmp_path, capsys):
    a = build(tmp_path / "a", {CELL: vectors()})
    worse = vectors(**{"dog-caption": unit([0.9, 0.2, 0.1, 0.0])})  # dog caption now finds the cat photo
    b = build(tmp_path / "b", {CELL: worse})
    code, out = diff(capsys, a, b)
    assert code == ExitCode.OK
    # each with its paired interval and sign-flip p-value over the 2 queries (one moved: p = 1)
    assert (f"retrieval [{CELL}]: recall@1 1.000 → 0.500 (-0.500 [-1.000, +0.000], p = 1), ndcg@1 1.000 → 0.500 "
            "(-0.500 [-1.000, +0.000], p = 1), mrr 1.000 → 0.750 (-0.250 [-0.500, +0.000], p = 1)") in out
    code, out = diff(capsys, a, b, "--metric-tolerance", "0.1")
    assert code == ExitCode.VERIFY_MISMATCH and "recall@1 1.0000 → 0.5000 (-0.5000, tolerance 0.1)" in out
    code, _ = diff(capsys, a, b, "--metric-tolerance", "0.6")
    assert code == ExitCode.OK


def test_payload_and_input_changes_are_named(tmp_path, capsys):
    a = build(tmp_path / "a", {CELL: vectors()})
    b = build(tmp_path / "b", {CELL: vectors()})
    index = b / "payloads" / CELL / "index.jsonl"
    rows = [json.loads(line) for line in index.read_text().splitlines()]
    rows[0]["sha256"] = "0" * 64          # request 1's body changed (the index names each body's sha256)
    index.write_text("".join(json.dumps(r) + "\n" for r in rows))
    lines = (b / "inputs.jsonl").read_text().splitlines()
    row = json.loads(lines[0])
    row["parts"][0]["chars"] += 1
    lines[0] = json.dumps(row)
    (b / "inputs.jsonl").write_text("\n".join(lines) + "\n")
    code, out = diff(capsys, a, b, "--json")
    data = json.loads(out)
    assert data["payloads"] == [{"cell": CELL, "differ": ["00001.json"], "only_in_one": [], "files": 1}]
    assert data["inputs"]["changed"] == ["cat-caption"]


def test_user_mistakes_exit_2_with_a_message(tmp_path, capsys):
    a = build(tmp_path / "a", {CELL: vectors()})
    code, out = diff(capsys, a, tmp_path / "nowhere")
    assert code == ExitCode.USAGE and "no such folder" in out
    (tmp_path / "empty").mkdir()
    code, out = diff(capsys, a, tmp_path / "empty")
    assert code == ExitCode.USAGE and "has no manifest.json" in out
    code, out = diff(capsys, a, a, "--pair", f"{CELL}:typo-4")
    assert code == ExitCode.USAGE and "has no cell 'typo-4'" in out and CELL in out
    with pytest.raises(SystemExit) as exc:
        main(["diff", str(a), str(a), "--pair", "nocolon"])
    assert exc.value.code == 2


def test_non_finite_vectors_never_pass_the_gate(tmp_path, capsys):
    a = build(tmp_path / "a", {CELL: vectors()}, checks=[])
    b = build(tmp_path / "b", {CELL: vectors(**{"cat-photo": [float("inf"), 0.0, 0.0, 0.0]})}, checks=[])
    code, out = diff(capsys, a, b, "--tolerance", "0.5")
    assert code == ExitCode.VERIFY_MISMATCH
    assert "non-finite values (counted as cosine -1): cat-photo" in out and "for cat-photo (-1.0000)" in out


OTHER = "qwen3-vl-embedding-8"


def test_cells_executed_in_neither_run_are_skipped_and_gate_nothing(tmp_path, capsys):
    """The keyless CI case: a cell no run could execute is skipped, not a mismatch; one executed on
    one side only is still a difference."""
    cells = {CELL: vectors(), OTHER: vectors(8)}
    a = build(tmp_path / "a", cells, checks=[])
    both_skip_a = tmp_path / "sa"
    both_skip_b = tmp_path / "sb"
    for f in (both_skip_a, both_skip_b):
        finalize(f, make_run(f, cells, skip=(OTHER,)), [])
    code, out = diff(capsys, both_skip_a, both_skip_b, "--tolerance", "0.001")
    assert code == ExitCode.OK, out
    assert f"skipped (executed in neither run): {OTHER}" in out and "PASS: within tolerance" in out
    code, out = diff(capsys, a, both_skip_b, "--tolerance", "0.001")
    assert code == ExitCode.VERIFY_MISMATCH and f"{OTHER}: not executed in B" in out, out


def test_a_gate_that_compared_nothing_says_so_and_exits_6(tmp_path, capsys):
    cells = {CELL: vectors()}
    for f in (tmp_path / "a", tmp_path / "b"):
        finalize(f, make_run(f, cells, skip=(CELL,)), [])
    code, out = diff(capsys, tmp_path / "a", tmp_path / "b", "--tolerance", "0.001")
    assert code == ExitCode.NOTHING_EXECUTED, out
    assert "nothing compared" in out and "FAIL" not in out and "PASS" not in out
    code, out = diff(capsys, tmp_path / "a", tmp_path / "b")       # no gate: it only informs
    assert code == ExitCode.OK, out


def test_metrics_that_did_not_move_are_counted_not_listed(tmp_path, capsys):
    """What moved is named; the rest is said to be unchanged, not listed at +0.000 (issue 26, 12)."""
    a = build(tmp_path / "a", {CELL: vectors()})
    b = build(tmp_path / "b", {CELL: vectors()})
    code, out = diff(capsys, a, b)
    assert code == ExitCode.OK and f"retrieval [{CELL}]: unchanged (" in out and "+0.000" not in out, out
    worse = build(tmp_path / "w", {CELL: vectors(**{"dog-caption": unit([0.9, 0.2, 0.1, 0.0])})})
    code, out = diff(capsys, a, worse)
    line = next(x for x in out.splitlines() if x.startswith(f"  retrieval [{CELL}]"))
    assert "recall@1 1.000 → 0.500 (-0.500 [" in line and "(+0.000" not in line, line
