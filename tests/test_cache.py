"""The response cache: content-addressed (any change to the body or endpoint is a new key), never
keyed or filled with the API key; one SQLite file written in batches, read back by SQLite itself;
the earlier one-file-per-entry cache imported once; a network filesystem gets a rollback journal;
`harness cache info|prune`."""

from __future__ import annotations

import base64
import copy
import json
import sqlite3
import time

import numpy as np

from harness.execute.cache import DB_NAME, ResponseCache, cache_key, filesystem_type
from harness.execute.limiter import VirtualClock
from tests.helpers import cli_env, run_cli

ENDPOINT = "https://dashscope.aliyuncs.com/api/v1/services/embeddings/multimodal-embedding/multimodal-embedding"
BODY = {"model": "qwen3-vl-embedding",
        "input": {"contents": [{"text": "A cat sitting on a red chair"}, {"image": "https://example.com/cat.png"}]},
        "parameters": {"dimension": 1024, "instruct": "Retrieve the image.", "enable_fusion": False}}


def _paths(obj, prefix=()):
    """Every leaf path of a JSON value."""
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _paths(v, prefix + (k,))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from _paths(v, prefix + (i,))
    else:
        yield prefix


def _changed(body, path):
    out = copy.deepcopy(body)
    node = out
    for k in path[:-1]:
        node = node[k]
    old = node[path[-1]]
    node[path[-1]] = (not old) if isinstance(old, bool) else (old + 1 if isinstance(old, int) else old + "x")
    return out


def test_changing_any_body_field_or_the_endpoint_changes_the_key():
    base = cache_key(ENDPOINT, BODY)
    paths = list(_paths(BODY))
    assert len(paths) == 6
    keys = {cache_key(ENDPOINT, _changed(BODY, p)) for p in paths}
    assert base not in keys and len(keys) == len(paths)
    # adding or removing a field, and reordering contents, are changes too
    extra = copy.deepcopy(BODY)
    extra["parameters"]["fps"] = 0.5
    swapped = copy.deepcopy(BODY)
    swapped["input"]["contents"].reverse()
    fewer = copy.deepcopy(BODY)
    del fewer["parameters"]["instruct"]
    assert len({base, cache_key(ENDPOINT, extra), cache_key(ENDPOINT, swapped), cache_key(ENDPOINT, fewer)}) == 4
    assert cache_key(ENDPOINT.replace("dashscope.", "dashscope-intl."), BODY) != base
    assert cache_key(ENDPOINT + "/", BODY) != base


def test_key_ignores_dict_order_only():
    reordered = {"parameters": BODY["parameters"], "input": BODY["input"], "model": BODY["model"]}
    assert cache_key(ENDPOINT, reordered) == cache_key(ENDPOINT, BODY)


def entry(request_id="r1", values=(0.25, -1.0, 3.5)):
    vectors = np.asarray([values], dtype="<f8")
    return {"endpoint": ENDPOINT, "shape": list(vectors.shape), "dtype": "<f8", "usage": {"input_tokens": 7},
            "vectors": base64.b64encode(vectors.tobytes()).decode("ascii"), "request_id": request_id, "status": 200}


def rows(root):
    """What the database holds, read by SQLite itself (not by the cache)."""
    db = sqlite3.connect(root / DB_NAME)
    try:
        return {k: (json.loads(e), v) for k, e, v in db.execute("SELECT key, entry, vectors FROM responses")}
    finally:
        db.close()


def test_put_get_refresh_and_disabled(tmp_path):
    key = cache_key(ENDPOINT, BODY)
    with ResponseCache(tmp_path) as cache:
        assert cache.get(key) is None
        cache.put(key, entry("r1"))
        got = cache.get(key)                     # seen at once, before its batch is committed
        assert got["request_id"] == "r1" and len(cache) == 1
        # float32, as the run folder keeps them: the same numbers a run's matrix gets from the answer
        assert np.frombuffer(base64.b64decode(got["vectors"]), got["dtype"]).tolist() == [0.25, -1.0, 3.5]
        assert got["dtype"] == "<f4" and got["shape"] == [1, 3]
    [(stored, vectors)] = rows(tmp_path).values()
    assert np.frombuffer(vectors, "<f4").tolist() == [0.25, -1.0, 3.5]      # raw bytes, not base64
    assert stored["request_id"] == "r1" and "vectors" not in stored and "key" not in stored
    assert [p.name for p in tmp_path.iterdir() if p.is_file() and not p.name.startswith(DB_NAME)] == []
    with ResponseCache(tmp_path, refresh=True) as refresh:
        assert refresh.get(key) is None                      # --refresh never reads ...
        refresh.put(key, entry("r2"))
    with ResponseCache(tmp_path) as cache:
        assert cache.get(key)["request_id"] == "r2"          # ... but replaces what it fetched
        assert len(cache) == 1
    off = ResponseCache(tmp_path / "off", enabled=False)      # --no-cache neither reads nor writes
    off.put(key, entry())
    off.close()
    assert off.get(key) is None and not (tmp_path / "off").exists()


def test_answers_are_committed_every_batch_every_few_seconds_of_the_clock_and_at_close(tmp_path):
    clock = VirtualClock()
    writer = ResponseCache(tmp_path, batch=3, seconds=10, now=clock.now)
    for i in range(7):
        writer.put(f"{i:064x}", entry(f"r{i}"))
    assert len(rows(tmp_path)) == 6                          # two batches of 3; the 7th waits
    clock.advance(9.9)
    writer.put(f"{7:064x}", entry("r7"))
    assert len(rows(tmp_path)) == 6
    clock.advance(0.2)                                       # 10 s since the last commit
    writer.put(f"{8:064x}", entry("r8"))
    assert len(rows(tmp_path)) == 9
    writer.put(f"{9:064x}", entry("r9"))
    assert len(rows(tmp_path)) == 9
    writer.close()                                           # the end of a run, or an interrupt
    assert sorted(e["request_id"] for e, _ in rows(tmp_path).values()) == sorted(f"r{i}" for i in range(10))
    with sqlite3.connect(tmp_path / DB_NAME) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_a_damaged_entry_is_a_miss(tmp_path):
    keys = [cache_key(ENDPOINT, BODY), cache_key(ENDPOINT + "/", BODY)]
    with ResponseCache(tmp_path) as cache:
        for key in keys:
            cache.put(key, entry())
    with sqlite3.connect(tmp_path / DB_NAME) as db:
        db.execute("UPDATE responses SET entry = '{not json' WHERE key = ?", (keys[0],))
        db.execute("UPDATE responses SET entry = '[1, 2]' WHERE key = ?", (keys[1],))
    with ResponseCache(tmp_path) as cache:
        assert cache.get(keys[0]) is None and cache.get(keys[1]) is None


def test_a_file_that_is_no_database_is_warned_about_once_and_the_run_goes_on(tmp_path):
    (tmp_path / DB_NAME).write_bytes(b"\x00\xff not sqlite " * 100)
    said = []
    cache = ResponseCache(tmp_path, note=said.append)
    assert cache.get("0" * 64) is None
    cache.put("0" * 64, entry())
    cache.put("1" * 64, entry())
    cache.close()
    assert len(said) == 1 and "cannot write the response cache" in said[0] and "going on without it" in said[0]
    assert str(tmp_path) in said[0]


def test_the_earlier_one_file_per_entry_cache_is_imported_once(tmp_path):
    good = [cache_key(ENDPOINT, {**BODY, "n": i}) for i in range(3)]
    for i, key in enumerate(good):
        path = tmp_path / "responses" / key[:2] / f"{key}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"v": 1, "key": key, **entry(f"old{i}")}))
    moved = tmp_path / "responses" / "ab" / ("ab" + "0" * 62 + ".json")       # under another key's name
    moved.parent.mkdir(parents=True, exist_ok=True)
    moved.write_text(json.dumps({"v": 1, "key": good[0], **entry("moved")}))
    (tmp_path / "responses" / "cd").mkdir()
    (tmp_path / "responses" / "cd" / ("cd" + "1" * 62 + ".json")).write_bytes(b"{torn")
    said = []
    with ResponseCache(tmp_path, note=said.append) as cache:
        assert [cache.get(k)["request_id"] for k in good] == ["old0", "old1", "old2"]
        assert len(cache) == 3                                 # the moved and the torn file are not entries
    assert len(said) == 1 and "imported 3 entries" in said[0] and "can be removed" in said[0]
    # read once: a file added to the old folder afterwards is not read, and nothing is said again
    late = cache_key(ENDPOINT, {**BODY, "late": True})
    (tmp_path / "responses" / late[:2]).mkdir(exist_ok=True)
    (tmp_path / "responses" / late[:2] / f"{late}.json").write_text(json.dumps({"v": 1, "key": late, **entry()}))
    again = []
    with ResponseCache(tmp_path, note=again.append) as cache:
        assert cache.get(late) is None and len(cache) == 3
    assert again == []


def test_a_network_filesystem_gets_a_rollback_journal_and_a_note(tmp_path):
    mounts = tmp_path / "mounts"
    share = tmp_path / "share"
    share.mkdir()
    mounts.write_text(f"/dev/sda1 / ext4 rw 0 0\nserver:/export {share} nfs4 rw,relatime 0 0\n")
    assert filesystem_type(share / "cache", str(mounts)) == "nfs4"
    assert filesystem_type(tmp_path, str(mounts)) == "ext4"
    said = []
    with ResponseCache(share / "cache", mounts=str(mounts), note=said.append) as cache:
        assert cache.get("0" * 64) is None             # opened on first use
        cache.put("0" * 64, entry())
        assert cache.journal == "delete"
    assert len(said) == 1 and "network filesystem (nfs4)" in said[0] and "WAL" in said[0]
    with sqlite3.connect(share / "cache" / DB_NAME) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
    assert len(rows(share / "cache")) == 1
    local = []
    with ResponseCache(tmp_path / "local", mounts=str(mounts), note=local.append) as cache:
        assert cache.get("0" * 64) is None
        assert cache.journal == "wal"
    assert local == []


def test_cache_info_and_prune_through_the_cli(tmp_path):
    cache_dir = tmp_path / "cache"
    env = cli_env(tmp_path, cache_dir)
    empty = run_cli("cache", "info", cwd=tmp_path, env=env)
    assert empty.returncode == 0 and "(not created yet)" in empty.stdout and "entries:  0" in empty.stdout
    assert not cache_dir.exists()                              # asking never creates it
    with ResponseCache(cache_dir) as cache:
        for i in range(5):
            cache.put(f"{i:064x}", entry(f"r{i}"))
    old = int(time.time()) - 10 * 86400
    with sqlite3.connect(cache_dir / DB_NAME) as db:             # three answers stored ten days ago
        db.execute("UPDATE responses SET created = ? WHERE key IN (?, ?, ?)", (old, *(f"{i:064x}" for i in range(3))))
    info = run_cli("cache", "info", cwd=tmp_path, env=env)
    assert info.returncode == 0, info.stderr
    assert f"path:     {cache_dir / DB_NAME}\n" in info.stdout and "entries:  5\n" in info.stdout
    size = sum(p.stat().st_size for p in cache_dir.iterdir())
    assert f"bytes:    {size} (" in info.stdout
    assert time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(old)) in info.stdout
    pruned = run_cli("cache", "prune", "--older-than", "5", cwd=tmp_path, env=env)
    assert pruned.returncode == 0 and pruned.stdout.startswith("removed 3 answers stored more than 5 days ago")
    assert sorted(e["request_id"] for e, _ in rows(cache_dir).values()) == ["r3", "r4"]
    assert "entries:  2\n" in run_cli("cache", "info", cwd=tmp_path, env=env).stdout
    bad = run_cli("cache", "prune", "--older-than", "-1", cwd=tmp_path, env=env)
    assert bad.returncode == 2 and "out of range" in bad.stderr


def test_the_database_follows_the_umask_as_the_earlier_cache_files_did(tmp_path):
    import os
    import stat

    old = os.umask(0o022)
    try:
        with ResponseCache(tmp_path / "shared") as cache:
            cache.put("0" * 64, entry())
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "shared" / DB_NAME).stat().st_mode) == 0o644


def test_a_cache_is_true_once_it_holds_an_answer_pending_or_committed(tmp_path):
    """`pending` asks whether the cache holds anything before every execution: one row looked up."""
    key = cache_key(ENDPOINT, BODY)
    with ResponseCache(tmp_path) as cache:
        assert not cache
        cache.put(key, entry("r1"))
        assert cache                                # pending, not yet committed
    with ResponseCache(tmp_path) as cache:
        assert cache and len(cache) == 1            # committed
    assert not ResponseCache(tmp_path / "off", enabled=False)
