"""Export benchmark: vectors/s loaded into Milvus Lite and query latency (issue 6).

Builds a synthetic executed output folder (one cell, N unit vectors of D dimensions, the layout
of docs/architecture.md), then times `harness.export.export_run` into a fresh Milvus Lite
database (upsert + flush + primary-key count + smoke search), a second idempotent export, and
single-vector top-k searches after a reopen + load_collection.

    /work/venv/bin/python bench/bench_export.py                  # 100,000 x 1,024 (the issue's size)
    /work/venv/bin/python bench/bench_export.py --n 10000 --dim 256
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

import harness.export as hx
from harness.evidence import canonical_json, hash_tree, sha256_bytes
from harness.export import export_run

PHASES: dict[str, float] = {}


def timed(name: str, fn):
    """Wrap one step of export_run so the first export can be split into phases."""
    def wrapper(*a, **kw):
        t = time.perf_counter()
        try:
            return fn(*a, **kw)
        finally:
            PHASES[name] = PHASES.get(name, 0.0) + time.perf_counter() - t
    return wrapper


hx._upsert = timed("upsert_and_flush", hx._upsert)
hx._present = timed("count_by_primary_key", hx._present)
hx._smoke_search = timed("smoke_search", hx._smoke_search)
hx._create = timed("create_collection", hx._create)


def build_folder(root: Path, n: int, dim: int, seed: int = 0) -> Path:
    folder = root / "bench-run"
    (folder / "vectors").mkdir(parents=True)
    ids = [f"doc-{i:07d}" for i in range(n)]
    (folder / "inputs.jsonl").write_bytes(
        b"".join(canonical_json({"id": i, "modality": "text", "parts": []}) + b"\n" for i in ids))
    rng = np.random.default_rng(seed)
    v = rng.standard_normal((n, dim), dtype=np.float32)
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    cell = f"qwen3-vl-embedding-{dim}"
    np.save(folder / "vectors" / f"{cell}.npy", v)
    (folder / "vectors" / f"{cell}.ids.json").write_bytes(canonical_json(ids))
    (folder / "validate.txt").write_text("PASS\n")
    manifest = {"manifest_version": 1, "harness": {"version": "bench"},
                "spec": {"name": "bench", "sha256": "0" * 64},
                "cells": [{"id": cell, "model": "qwen3-vl-embedding", "provider": "dashscope", "dimension": dim}],
                "files": hash_tree(folder)}
    manifest["digest"] = sha256_bytes(canonical_json(manifest))
    (folder / "manifest.json").write_bytes(canonical_json(manifest, pretty=True))
    return folder


def percentile(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--dim", type=int, default=1024)
    ap.add_argument("--queries", type=int, default=200, help="single-vector searches timed after reopen")
    ap.add_argument("--top-k", type=int, default=10)
    ap.add_argument("--keep", action="store_true", help="keep the temporary folder and database")
    args = ap.parse_args()

    root = Path(tempfile.mkdtemp(prefix="bench-export-"))
    try:
        folder = build_folder(root, args.n, args.dim)
        db = root / "bench.db"
        cell = f"qwen3-vl-embedding-{args.dim}"
        name = f"qwen3_vl_embedding_{args.dim}"

        t = time.perf_counter()
        results = export_run(folder, to=str(db), top_k=args.top_k)
        first = time.perf_counter() - t
        phases = {k: round(x, 1) for k, x in PHASES.items()}
        assert all(r.passed for r in results), [r.line() for r in results]

        t = time.perf_counter()
        export_run(folder, to=str(db), top_k=args.top_k)
        again = time.perf_counter() - t

        from pymilvus import MilvusClient

        v = np.load(folder / "vectors" / f"{cell}.npy", mmap_mode="r")
        rng = np.random.default_rng(1)
        picks = rng.choice(args.n, size=args.queries, replace=False)
        t = time.perf_counter()
        client = MilvusClient(uri=str(db))
        client.load_collection(name)
        reopen = time.perf_counter() - t
        lat, self_first = [], 0
        for i in picks:
            q = v[i].tolist()
            t = time.perf_counter()
            hit = client.search(name, data=[q], limit=args.top_k, output_fields=["input_id"])
            lat.append((time.perf_counter() - t) * 1000)
            self_first += hit[0][0]["entity"]["input_id"] == f"doc-{i:07d}"
        client.close()
        from milvus_lite.server_manager import server_manager_instance
        server_manager_instance.release_server(str(db))  # else it writes into the folder at exit

        out = {
            "vectors": args.n, "dimension": args.dim, "top_k": args.top_k,
            "first_export_s": round(first, 1), "first_export_vectors_per_s": round(args.n / first),
            "first_export_phases_s": phases,
            "reexport_s": round(again, 1), "reexport_vectors_per_s": round(args.n / again),
            "reopen_and_load_s": round(reopen, 2),
            "query_ms_p50": round(statistics.median(lat), 1), "query_ms_p95": round(percentile(lat, 95), 1),
            "queries": len(lat), "self_at_rank_1": self_first,
            "db_size_mb": round(sum(f.stat().st_size for f in db.rglob("*") if f.is_file()) / 2**20),
            "python": platform.python_version(), "machine": platform.machine(),
        }
        print(json.dumps(out, indent=2))
    finally:
        if args.keep:
            print(f"kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
