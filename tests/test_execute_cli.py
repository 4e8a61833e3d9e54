"""End to end: the real `harness run SPEC --execute` against the fake DashScope server on 127.0.0.1,
in-process (its backoff on a virtual clock) except where the test is about the process (SIGTERM)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from harness.execute import limiter
from harness.execute.cache import ResponseCache
from harness.execute.limiter import VirtualClock
from tests.helpers import Result, cli_env, dashscope_fixture, run_cli
from tests.servers.dashscope_server import vector

KEY = "sk-cli-e2e-00112233445566"
ROOT = Path(__file__).resolve().parents[1]
CID = "qwen3-vl-embedding-256"

SPEC = """\
version: 1
name: e2e
region: cn-beijing
models:
  - qwen3-vl-embedding
dimensions: [256]
inputs:
{inputs}
checks:
  - vectors: {{norm_min: 0.5, norm_max: 2.0}}
"""


server = dashscope_fixture(KEY)


@pytest.fixture(autouse=True)
def fresh(server, monkeypatch):
    server.reset()
    server.latency = 0.0
    monkeypatch.setattr(limiter, "DEFAULT_CLOCK", VirtualClock())   # retries wait no real time
    yield
    server.settle()


def write_spec(tmp_path: Path, n_texts: int = 3, image: bool = True) -> Path:
    items = [f"  - id: text-{i}\n    text: caption number {i}" for i in range(n_texts)]
    if image:
        items.append("  - id: cat-photo\n    image: https://example.com/cat.png")
    path = tmp_path / "spec.yaml"
    path.write_text(SPEC.format(inputs="\n".join(items)))
    return path


def env(tmp_path: Path, key: str | None = KEY, **extra: str) -> dict[str, str]:
    """A user's shell: no key but `key`, HOME and the cache in tmp_path, 200 columns, no colour."""
    return cli_env(tmp_path / "home", tmp_path / "cache", NO_COLOR="1", COLUMNS="200", DASHSCOPE_API_KEY=key,
                   **extra)


def harness(args: list[str], tmp_path: Path, server=None, base_url: bool = True,
            environ: dict[str, str] | None = None) -> Result:
    cmd = ["run", tmp_path / "spec.yaml", "--output", tmp_path / "out", "--execute", *args]
    if base_url and server is not None:
        cmd += ["--base-url", server.base_url]
    return run_cli(*cmd, cwd=tmp_path, env=environ or env(tmp_path))


def test_run_execute_writes_vectors_and_passes(server, tmp_path):
    write_spec(tmp_path)
    proc = harness(["--quiet"], tmp_path, server)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    folder = tmp_path / "out" / "e2e"
    validate = (folder / "validate.txt").read_text()
    assert f"ok   execution [{CID}]: the 1 request succeeded" in validate
    assert f"ok   dimensions [{CID}]: 4 vectors of 256 floats, as requested" in validate
    assert validate.endswith("PASS\n")
    ids = json.loads((folder / "vectors" / f"{CID}.ids.json").read_text())
    matrix = np.load(folder / "vectors" / f"{CID}.npy")
    assert ids == ["text-0", "text-1", "text-2", "cat-photo"] and matrix.shape == (4, 256)
    np.testing.assert_allclose(matrix[3], vector({"image": "https://example.com/cat.png"}, 256), rtol=1e-6)
    manifest = json.loads((folder / "manifest.json").read_text())
    for name in (f"vectors/{CID}.npy", f"responses/{CID}.jsonl", "execution.json"):
        assert name in manifest["files"]
    assert proc.stdout.strip() == f"PASS: {folder}/validate.txt" and proc.stderr == ""


def test_rerun_uses_the_cache_and_refresh_and_no_cache_send_again(server, tmp_path):
    write_spec(tmp_path, n_texts=2, image=False)
    assert harness(["--quiet"], tmp_path, server).returncode == 0
    assert len(server.log) == 1
    assert harness(["--quiet"], tmp_path, server).returncode == 0
    assert len(server.log) == 1, "the second run is served from the cache"
    assert "(1 from cache)" in (tmp_path / "out" / "e2e" / "validate.txt").read_text()
    assert harness(["--quiet", "--refresh"], tmp_path, server).returncode == 0
    assert len(server.log) == 2
    assert harness(["--quiet", "--no-cache"], tmp_path, server).returncode == 0
    assert len(server.log) == 3


def test_base_url_from_the_sdk_environment_variable(server, tmp_path):
    write_spec(tmp_path, n_texts=1, image=False)
    proc = harness(["--quiet"], tmp_path, server, base_url=False,
                   environ=env(tmp_path, DASHSCOPE_HTTP_BASE_URL=server.base_url))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert len(server.log) == 1


def test_bad_key_exits_4_with_code_and_request_id_and_no_traceback(server, tmp_path):
    write_spec(tmp_path)
    proc = harness([], tmp_path, server, environ=env(tmp_path, key="sk-wrong-e2e-key"))
    assert proc.returncode == 4
    out = proc.stdout + proc.stderr
    assert "InvalidApiKey" in out and "request_id=" in out and "Traceback" not in out
    assert "sk-wrong-e2e-key" not in out


def test_missing_key_reports_the_cell_not_executed_and_names_the_places(server, tmp_path):
    write_spec(tmp_path)
    proc = harness(["--quiet"], tmp_path, server, environ=env(tmp_path, key=None))
    # cells are optional unless the spec says so, but a run that executed no cell is not a PASS
    assert proc.returncode == 6 and len(server.log) == 0
    validate = (tmp_path / "out" / "e2e" / "validate.txt").read_text()
    assert f"skip execution [{CID}]: not executed: no DashScope API key: set DASHSCOPE_API_KEY" in validate
    assert validate.splitlines()[-2:] == [validate.splitlines()[-2], "FAIL"]
    assert validate.splitlines()[-2].startswith("FAIL executed: no cell executed (1 cell: no DashScope API key")
    assert ".alibabacloud/credentials" in validate and ".dashscope/api_key" in validate
    assert "optional cell" in validate
    spec = tmp_path / "spec.yaml"
    spec.write_text(spec.read_text() + "execution:\n  required: true\n")
    proc = harness([], tmp_path, server, environ=env(tmp_path, key=None))
    assert proc.returncode == 4 and len(server.log) == 0
    assert f"FAIL execution [{CID}]: not executed: no DashScope API key" in \
        (tmp_path / "out" / "e2e" / "validate.txt").read_text()
    assert "Traceback" not in proc.stdout + proc.stderr


def test_faults_are_retried_and_the_key_is_never_written_or_printed(server, tmp_path):
    write_spec(tmp_path, n_texts=6)
    server.add_fault("500")
    server.add_fault("429-retry-after", retry_after=0.1)
    server.add_fault("drop")
    proc = harness(["--concurrency", "2", "--timeout", "5"], tmp_path, server)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    validate = (tmp_path / "out" / "e2e" / "validate.txt").read_text()
    assert "the 1 request succeeded (3 retries, 1 throttled)" in validate
    texts = [proc.stdout, proc.stderr]
    files = [p for p in (tmp_path / "out").rglob("*") if p.is_file()]
    files += [p for p in (tmp_path / "cache").rglob("*") if p.is_file()]
    assert any(p.suffix == ".npy" for p in files) and any("cache" in p.parts for p in files)
    for text in texts:
        assert KEY not in text
    for path in files:
        assert KEY.encode() not in path.read_bytes(), path


@pytest.mark.slow                 # a process of its own: what SIGTERM does to it
def test_sigterm_mid_run_exits_130_and_the_rerun_sends_only_the_rest(server, tmp_path):
    server.latency = 0.05
    write_spec(tmp_path, n_texts=60, image=False)        # 60 texts → 3 requests of 20 contents per cell
    spec = tmp_path / "spec.yaml"                        # × 6 cells = 18 requests
    spec.write_text(spec.read_text().replace("dimensions: [256]", "dimensions: [256, 512, 768, 1024, 1536, 2048]"))
    cmd = [sys.executable, "-m", "harness", "run", str(spec), "--output", str(tmp_path / "out"), "--execute",
           "--quiet", "--concurrency", "1", "--base-url", server.base_url]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env(tmp_path), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    deadline = time.monotonic() + 60
    while len(server.served()) < 4 and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.01)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, out + err
    assert "Traceback" not in err and not (tmp_path / "out" / "e2e").exists()
    server.settle()                                      # the answer in flight when the signal came
    received = len(server.served())
    with ResponseCache(tmp_path / "cache") as stored:
        cached = len(stored)
    # every answer kept was served; one request at a time, so at most the one in flight is lost
    assert 4 <= received < 18 and cached <= received <= cached + 1
    server.latency = 0.0
    # the re-run, told apart from any straggler of the killed process by its workspace header
    done = harness(["--quiet", "--workspace", "rerun"], tmp_path, server)
    assert done.returncode == 0, done.stdout + done.stderr
    assert sum(r.workspace == "rerun" for r in server.log) == 18 - cached
    records = [json.loads(line) for f in (tmp_path / "out" / "e2e" / "responses").glob("*.jsonl")
               for line in f.read_text().splitlines()]
    assert len(records) == 18 and sum(r["cache_hit"] for r in records) == cached


def test_workspace_and_max_attempts_flags_reach_the_engine(server, tmp_path):
    write_spec(tmp_path, n_texts=1, image=False)
    server.add_fault("503", times=-1)
    proc = harness(["--workspace", "llm-ws-e2e", "--max-attempts", "2", "--timeout", "5"], tmp_path, server)
    assert proc.returncode == 4
    assert [r.workspace for r in server.log] == ["llm-ws-e2e", "llm-ws-e2e"]     # two attempts, then stop
    validate = (tmp_path / "out" / "e2e" / "validate.txt").read_text()
    assert "HTTP 503: ServiceUnavailable" in validate and "gave up after 2 attempts" in validate
