"""kill -9 in the middle of a few-thousand-input execution, then the same command again: the cache
lost at most its last batch, the re-run sends only what is missing (the server's log shows nothing
stored was sent again), and the vectors are bit-identical to an uninterrupted run's."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import pytest

from harness.execute.cache import BATCH, ResponseCache, cache_key
from tests.helpers import TEST_KEY, cli_env, run_cli

INPUTS = 3000
PER_REQUEST = 2
REQUESTS = INPUTS // PER_REQUEST
CONCURRENCY = 4
CID = "qwen3-vl-embedding-256"


@pytest.fixture
def server():
    from tests.servers.dashscope_server import serve

    with serve(api_key=TEST_KEY) as srv:
        yield srv


def command(server, out: str) -> list[str]:
    return ["run", "spec.yaml", "--output", out, "--execute", "--quiet", "--concurrency", str(CONCURRENCY),
            "--rpm", "1000000", "--base-url", server.base_url]


@pytest.mark.slow                 # a process of its own, killed; three executions of 1,500 requests
def test_kill_9_at_half_then_resume_sends_only_what_is_missing(server, tmp_path):
    (tmp_path / "texts.csv").write_text("id,text\n" + "".join(f"{i},text number {i} of the corpus\n"
                                                                for i in range(INPUTS)))
    (tmp_path / "spec.yaml").write_text(
        "version: 1\nname: big\nmodels: [qwen3-vl-embedding]\ndimensions: [256]\n"
        f"batching: {{max_contents: {PER_REQUEST}}}\n"
        "inputs:\n  - from: texts.csv\n    id: \"t{{ row.id }}\"\n    text: \"{{ row.text }}\"\n"
        "checks:\n  - vectors: {norm_min: 0.5, norm_max: 2.0}\n")
    env = cli_env(tmp_path / "home", tmp_path / "cache", DASHSCOPE_API_KEY=TEST_KEY, NO_COLOR="1")
    proc = subprocess.Popen([sys.executable, "-m", "harness", *command(server, "out")], cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while len(server.served()) < REQUESTS // 2 and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.002)
    proc.send_signal(signal.SIGKILL)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL, err[-2000:]
    server.settle()
    assert not (tmp_path / "out" / "big").exists()
    killed = [r.body for r in server.served()]
    assert REQUESTS // 2 <= len(killed) < REQUESTS

    with ResponseCache(tmp_path / "cache") as cache:
        stored = cache.keys()
    # what the killed run sent, after the run: the endpoint is the manifest's
    server.reset()
    resumed = run_cli(*command(server, "out"), cwd=tmp_path, env=env)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    folder = tmp_path / "out" / "big"
    endpoint = json.loads((folder / "manifest.json").read_text())["cells"][0]["endpoint"]
    sent_before = {cache_key(endpoint, body) for body in killed}
    # every answer kept was received; at most the last batch (and the answers in flight) were lost
    assert stored <= sent_before and len(sent_before) - len(stored) < BATCH + CONCURRENCY
    assert len(stored) >= BATCH                                 # batches were committed before the kill
    resent = [cache_key(endpoint, r.body) for r in server.log]
    assert not set(resent) & stored                            # nothing stored was sent again ...
    assert len(resent) == len(set(resent)) == REQUESTS - len(stored)   # ... and only what was missing
    assert f"({len(stored)} from cache)" in (folder / "validate.txt").read_text()

    whole = run_cli(*command(server, "whole"), cwd=tmp_path,
                    env={**env, "HARNESS_CACHE_DIR": str(tmp_path / "fresh-cache")})
    assert whole.returncode == 0, whole.stdout + whole.stderr
    for name in (f"vectors/{CID}.npy", f"vectors/{CID}.ids.json"):
        assert (folder / name).read_bytes() == (tmp_path / "whole" / "big" / name).read_bytes(), name
