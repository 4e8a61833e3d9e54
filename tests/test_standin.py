"""The benchmarks' DashScope stand-in (tests/servers/standin.py) in its own process: the harness
executes against it like against the service (answers it accepts, the key checked, the RPM quota
enforced), so the benchmark numbers measure the client."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request

import pytest

from harness.execute import ExecuteOptions, execute_run
from tests.helpers import REPO
from tests.servers.dashscope_server import stage_payloads, text_requests

KEY = "sk-standin-test-0000"
MODEL = "qwen3-vl-embedding"


@pytest.fixture
def standin(request):
    args = getattr(request, "param", [])
    proc = subprocess.Popen([sys.executable, "-m", "tests.servers.standin", "--key", KEY, *args], cwd=REPO,
                            stdout=subprocess.PIPE, text=True)
    base = proc.stdout.readline().split()[-1]
    yield base
    proc.terminate()
    proc.wait(timeout=10)


def cell(base: str) -> dict:
    return {"id": "c", "model": MODEL, "provider": "dashscope", "dimension": 1024, "required": True,
            "endpoint": base + "/services/embeddings/multimodal-embedding/multimodal-embedding"}


def stats(base: str) -> dict:
    with urllib.request.urlopen(base.removesuffix("/api/v1") + "/_fake/stats") as r:
        return json.loads(r.read())


def test_the_harness_executes_against_the_standin(tmp_path, standin, monkeypatch):
    monkeypatch.setenv("DASHSCOPE_API_KEY", KEY)
    stage_payloads(tmp_path, "c", text_requests(MODEL, 1024, 40, per_request=4))
    summary = execute_run(tmp_path, [cell(standin)], ExecuteOptions(concurrency=8, rpm=0, tpm=0, use_cache=False,
                                                                    quiet=True))
    out = summary.cells[0]
    assert (out.ok, out.vectors, out.dimension, out.retries) == (40, 160, 1024, 0)
    assert stats(standin)["200"] == 40


def test_a_wrong_key_is_refused(tmp_path, standin, monkeypatch):
    monkeypatch.setenv("DASHSCOPE_API_KEY", "sk-not-the-one")
    stage_payloads(tmp_path, "c", text_requests(MODEL, 1024, 3))
    summary = execute_run(tmp_path, [cell(standin)], ExecuteOptions(use_cache=False, quiet=True, rpm=0, tpm=0))
    assert summary.fatal is not None and summary.fatal.status == 401


@pytest.mark.parametrize("standin", [["--rpm", "5", "--window", "30"]], indirect=True)
def test_the_rpm_quota_is_enforced(tmp_path, standin, monkeypatch):
    monkeypatch.setenv("DASHSCOPE_API_KEY", KEY)
    stage_payloads(tmp_path, "c", text_requests(MODEL, 1024, 8))
    summary = execute_run(tmp_path, [cell(standin)], ExecuteOptions(concurrency=8, rpm=0, tpm=0, use_cache=False,
                                                                    quiet=True, max_attempts=1))
    assert summary.cells[0].ok == 5 and stats(standin)["429:rpm"] == 3
