"""The floor under `harness run` (no --execute) for bench_scale.py: read the CSV, build the same
request bodies (sorted keys, compact, UTF-8), 20 texts a request, and write them as the harness
does (requests.jsonl, and index.jsonl with each body's sha256 and input ids). Nothing else.

    python bench/minimal_plan.py texts.csv OUT_DIR 256
"""
import csv
import hashlib
import itertools
import json
import sys
from pathlib import Path

src, out, dim = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])
out.mkdir(parents=True, exist_ok=True)
dump = json.JSONEncoder(sort_keys=True, ensure_ascii=False, separators=(",", ":")).encode
with open(src, newline="", encoding="utf-8") as f, open(out / "requests.jsonl", "wb") as bodies, \
        open(out / "index.jsonl", "wb") as index:
    batch, n = [], 0
    for row in itertools.chain(csv.DictReader(f), [None]):
        if row is not None:
            batch.append((f"t-{row['id']}", row["text"]))
        if len(batch) == 20 or (row is None and batch):
            n += 1
            body = dump({"input": {"contents": [{"text": t} for _, t in batch]}, "model": "qwen3-vl-embedding",
                         "parameters": {"dimension": dim}}).encode()
            bodies.write(body + b"\n")
            index.write(dump({"contents": len(batch), "file": f"{n:05d}.json", "inputs": [i for i, _ in batch],
                              "sha256": hashlib.sha256(body).hexdigest()}).encode() + b"\n")
            batch = []
