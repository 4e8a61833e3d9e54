"""End to end over the real pipeline: `harness run --execute` against the fake DashScope server on
127.0.0.1, then the spec's checks, the reports, `harness verify` and `harness diff` on the result."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest

from harness.checks.metrics import cosine_matrix
from tests.helpers import Result, cli_env, dashscope_fixture, run_cli
from tests.servers.dashscope_server import vector

KEY = "sk-verify-e2e-00112233445566"
TEXTS = {"q-cat": "a cat on a chair", "q-dog": "a dog on a beach",
         "cat": "photo of a cat", "dog": "photo of a dog", "car": "photo of a car"}
DIMS = (256, 1024)


def nearest(query: str, among: list[str], dim: int) -> str:
    """What the fake server's vectors make the nearest neighbour (they are seeded by content)."""
    q = vector({"text": TEXTS[query]}, dim)[None, :]
    c = np.stack([vector({"text": TEXTS[i]}, dim) for i in among])
    return among[int(np.argmax(cosine_matrix(q, c)[0]))]


def spec_text(name: str, extra_checks: str = "") -> str:
    inputs = "\n".join(f"  - id: {k}\n    text: {v}" for k, v in TEXTS.items())
    expect = nearest("q-cat", ["cat", "dog", "car"], 256)
    return f"""\
version: 1
name: {name}
models: [qwen3-vl-embedding]
dimensions: [{", ".join(map(str, DIMS))}]
inputs:
{inputs}
checks:
  - vectors: {{norm_min: 0.99, norm_max: 1.01}}
  - nearest: {{query: q-cat, among: [cat, dog, car], expect: {expect}, cells: [qwen3-vl-embedding-256]}}
  - retrieval: {{queries: {{q-cat: [cat], q-dog: [dog]}}, among: [cat, dog, car], k: [1, 2]}}
{extra_checks}"""


server = dashscope_fixture(KEY)


def harness(tmp_path: Path, *args: str) -> Result:
    env = cli_env(tmp_path / "home", tmp_path / "cache", NO_COLOR="1", COLUMNS="200", DASHSCOPE_API_KEY=KEY)
    return run_cli(*args, cwd=tmp_path, env=env)


def run_spec(tmp_path: Path, server, name: str, extra_checks: str = "") -> tuple[Result, Path]:
    spec = tmp_path / f"{name}.yaml"
    spec.write_text(spec_text(name, extra_checks))
    proc = harness(tmp_path, "run", str(spec), "--output", str(tmp_path / "out"), "--execute", "--quiet",
                   "--base-url", server.base_url)
    return proc, tmp_path / "out" / name


def test_executed_run_checks_reports_verify_and_diff(server, tmp_path):
    proc, a = run_spec(tmp_path, server, "first")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    validate = (a / "validate.txt").read_text()
    assert "ok   nearest:q-cat [qwen3-vl-embedding-256]" in validate
    # no threshold: a warning that it proves nothing, never a pass (issue 23, 4)
    assert "warn retrieval [qwen3-vl-embedding-1024]: proves nothing: no threshold" in validate
    assert validate.endswith("PASS\n")

    # the reports are in the folder and under the manifest
    files = json.loads((a / "manifest.json").read_text())["files"]
    assert {"summary.json", "junit.xml", "report.html"} <= set(files)
    summary = json.loads((a / "summary.json").read_text())
    assert sorted(q["dimension"] for q in summary["quality"]) == list(DIMS)
    cases = ET.parse(a / "junit.xml").getroot().iter("testcase")
    assert {(c.get("classname"), c.get("name")) for c in cases} >= {
        ("first.qwen3-vl-embedding-256", "nearest:q-cat"), ("first.qwen3-vl-embedding-1024", "retrieval")}
    html = (a / "report.html").read_text()
    assert html.count('class="plot heatmap"') == 2 and 'class="plot quality"' in html

    # verify: the untouched folder verifies; a flipped vector byte is named
    proc = harness(tmp_path, "verify", str(a))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.startswith("verified:")

    # a second run of the same inputs, with a stability check against the first
    proc, b = run_spec(tmp_path, server, "second",
                       f"  - stability: {{against: {a}, min_cosine: 0.999999}}\n")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "ok   stability [qwen3-vl-embedding-1024]: 5 inputs compared" in (b / "validate.txt").read_text()

    proc = harness(tmp_path, "diff", str(a), str(b), "--tolerance", "0.000001", "--metric-tolerance", "0")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "qwen3-vl-embedding-1024: 5 inputs, min 1.000000" in proc.stdout
    assert "payloads: identical in the 2 common cells" in proc.stdout

    npy = a / "vectors" / "qwen3-vl-embedding-1024.npy"
    data = bytearray(npy.read_bytes())
    data[-1] ^= 0x80  # the sign of the last component of the last vector
    npy.write_bytes(bytes(data))
    proc = harness(tmp_path, "verify", str(a))
    assert proc.returncode == 5
    assert "changed     vectors/qwen3-vl-embedding-1024.npy" in proc.stdout
    proc = harness(tmp_path, "diff", str(a), str(b), "--tolerance", "0.000001")
    assert proc.returncode == 5 and "qwen3-vl-embedding-1024: cosine" in proc.stdout


def _bad_spec_run(tmp_path: Path) -> tuple[Result, int, int]:
    spec = tmp_path / "bad.yaml"
    spec.write_text(spec_text("bad").replace("queries: {q-cat: [cat]", "queries: {q-cat: [catt]"))
    proc = harness(tmp_path, "run", str(spec), "--output", str(tmp_path / "out"))
    line, col = next((i, t.index("catt") + 1) for i, t in enumerate(spec.read_text().splitlines(), 1) if "catt" in t)
    return proc, line, col


def test_unknown_input_id_in_a_check_stops_the_run_before_anything_is_written(tmp_path):
    proc, _, _ = _bad_spec_run(tmp_path)
    assert proc.returncode == 3, proc.stdout + proc.stderr
    assert "unknown input id 'catt' (did you mean 'cat'?)" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "out" / "bad").exists()


def test_unknown_input_id_in_a_check_is_reported_at_file_line_col(tmp_path):
    proc, line, col = _bad_spec_run(tmp_path)
    assert proc.returncode == 3, proc.stdout + proc.stderr
    assert f"bad.yaml:{line}:{col}: check retrieval: unknown input id 'catt'" in proc.stderr, proc.stderr


REGION_SPEC = """\
version: 1
name: {name}
region: ap-southeast-1
models: [qwen3-vl-embedding]
dimensions: [256]
inputs:
  - {{id: cat, text: photo of a cat}}
  - {{id: dog, text: photo of a dog}}
"""


@pytest.mark.parametrize("how", ["--base-url", "DASHSCOPE_HTTP_BASE_URL"])
def test_run_at_a_base_url_outside_the_spec_region_verifies(server, tmp_path, how):
    """qwen3-vl-embedding is not offered in ap-southeast-1; a run sent to an explicit base URL is
    still valid, and verify re-plans it at the endpoint the run recorded (issue 9, case 6)."""
    spec = tmp_path / "region.yaml"
    spec.write_text(REGION_SPEC.format(name="region"))
    args = ["run", str(spec), "--output", str(tmp_path / "out"), "--execute", "--quiet"]
    env = cli_env(tmp_path / "home", tmp_path / "cache", DASHSCOPE_API_KEY=KEY)
    if how == "--base-url":
        args += ["--base-url", server.base_url]
    else:
        env["DASHSCOPE_HTTP_BASE_URL"] = server.base_url
    proc = run_cli(*args, cwd=tmp_path, env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    env.pop("DASHSCOPE_HTTP_BASE_URL", None)  # verify runs elsewhere, without the variable
    proc = run_cli("verify", str(tmp_path / "out" / "region"), cwd=tmp_path, env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.startswith("verified:") and "re-derived byte for byte" in proc.stdout
