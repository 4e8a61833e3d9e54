"""Several processes on one host sharing the cache folder: two writers committing batches into the
same SQLite file at once (WAL, busy timeout, retry) lose nothing and corrupt nothing."""

from __future__ import annotations

import sqlite3
import subprocess
import sys

import numpy as np
import pytest

from harness.execute.cache import DB_NAME
from tests.helpers import REPO

WRITER = """
import base64, sys, time
from pathlib import Path
import numpy as np
from harness.execute.cache import ResponseCache
root, name, start, go = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3]), Path(sys.argv[4])
said = []
cache = ResponseCache(root, batch=25, note=said.append)
while not go.exists():
    time.sleep(0.001)
for i in range(start, start + 1500):
    v = np.full((1, 8), i, dtype="<f8")
    cache.put(f"{i:064x}", {"shape": [1, 8], "dtype": "<f8", "vectors": base64.b64encode(v.tobytes()).decode(),
                            "request_id": f"{name}-{i}", "usage": {}, "status": 200})
    if i % 100 == 0:
        assert cache.get(f"{i - 50:064x}") is not None or i - 50 < start
cache.close()
print("\\n".join(said))
"""


@pytest.mark.slow                 # two processes of their own
def test_two_processes_writing_the_same_cache_at_once(tmp_path):
    cache, go = tmp_path / "cache", tmp_path / "go"
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, str(cache), name, str(start), str(go)], cwd=REPO,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for name, start in (("a", 0), ("b", 1000))]          # keys 1000..1499 written by both
    go.touch()
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        assert out.strip() == "" and err == ""                   # no warning: no answer was dropped
    with sqlite3.connect(cache / DB_NAME) as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        rows = dict(db.execute("SELECT key, vectors FROM responses").fetchall())
    assert sorted(int(k, 16) for k in rows) == list(range(2500))
    assert all(np.frombuffer(v, "<f4").tolist() == [int(k, 16)] * 8 for k, v in rows.items())   # kept as float32
