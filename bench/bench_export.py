"""Export benchmark: vectors/s loaded into Milvus Lite and query latency (issue 6).

Builds a synthetic executed output folder (one cell, N unit vectors of D dimensions, the layout
of docs/architecture.md), then times `harness.export.run.export_run` into a fresh Milvus Lite
database (upsert + flush + primary-key count + smoke search), a second idempotent export, and
single-vector top-k searches after a reopen + load_collection: right away (Milvus Lite builds its
HNSW index in a background thread after flush; until then it searches by brute force) and once
the index is built.

    .venv/bin/python bench/bench_export.py                  # 100,000 x 1,024 (the issue's size)
    .venv/bin/python bench/bench_export.py --n 10000 --dim 256
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

import harness.export.milvus as hx
import harness.export.smoke as hs
from harness.evidence import canonical_json, hash_tree, sha256_bytes
from harness.export.run import export_run

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


hx._upsert = timed("write_and_flush", hx._upsert)
hx._present = timed("count_check", hx._present)
hs.search = timed("smoke_search", hs.search)
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


def index_built(db: Path) -> bool:
    """Milvus Lite builds each sealed segment's HNSW index in a background thread after flush and
    writes it beside the segment as <segment>.vector.autoindex.idx."""
    data = list(db.rglob("data_*.parquet"))
    return bool(data) and all(list(p.parent.parent.glob(f"indexes/{p.stem}.*idx")) for p in data)


def timed_queries(client, name: str, v: np.ndarray, picks, top_k: int) -> tuple[list[float], int]:
    lat, self_first = [], 0
    for i in picks:
        q = v[i].tolist()
        t = time.perf_counter()
        hit = client.search(name, data=[q], limit=top_k, output_fields=["input_id"])
        lat.append((time.perf_counter() - t) * 1000)
        self_first += hit[0][0]["entity"]["input_id"] == f"doc-{i:07d}"
    return lat, self_first


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--dim", type=int, default=1024)
    ap.add_argument("--queries", type=int, default=200, help="single-vector searches timed once indexed")
    ap.add_argument("--early-queries", type=int, default=20, help="searches timed right after the export")
    ap.add_argument("--top-k", type=int, default=10)
    ap.add_argument("--index-wait", type=float, default=1800, help="seconds to wait for the HNSW build")
    ap.add_argument("--no-reexport", action="store_true", help="skip timing the idempotent re-export")
    ap.add_argument("--keep", action="store_true", help="keep the temporary folder and database")
    args = ap.parse_args()

    from milvus_lite.server_manager import server_manager_instance
    from pymilvus import MilvusClient

    MilvusClient.flush = timed("flush", MilvusClient.flush)

    root = Path(tempfile.mkdtemp(prefix="bench-export-"))
    out: dict = {"vectors": args.n, "dimension": args.dim, "top_k": args.top_k}
    try:
        folder = build_folder(root, args.n, args.dim)
        db = root / "bench.db"
        cell = f"qwen3-vl-embedding-{args.dim}"
        name = f"qwen3_vl_embedding_{args.dim}"

        t = time.perf_counter()
        results = export_run(folder, to=str(db), top_k=args.top_k)
        first = time.perf_counter() - t
        assert all(r.passed for r in results), [r.line() for r in results]
        phases = {k: round(x, 1) for k, x in PHASES.items()}
        phases["insert"] = round(phases.pop("write_and_flush") - phases["flush"], 1)
        out.update({"export_s": round(first, 1), "export_vectors_per_s": round(args.n / first),
                    "insert_vectors_per_s": round(args.n / max(phases["insert"], 1e-9)),
                    "export_phases_s": phases})

        v = np.load(folder / "vectors" / f"{cell}.npy", mmap_mode="r")
        rng = np.random.default_rng(1)
        t = time.perf_counter()
        client = MilvusClient(uri=str(db))
        client.load_collection(name)
        out["reopen_and_load_s"] = round(time.perf_counter() - t, 2)
        early, _ = timed_queries(client, name, v, rng.choice(args.n, args.early_queries, replace=False), args.top_k)
        out["early_query_ms_p50"] = round(statistics.median(early), 1)

        t = time.perf_counter()
        while not index_built(db) and time.perf_counter() - t < args.index_wait:
            time.sleep(2)
        out["index_built"] = index_built(db)
        out["index_wait_s"] = round(time.perf_counter() - t, 1)
        lat, self_first = timed_queries(client, name, v, rng.choice(args.n, args.queries, replace=False), args.top_k)
        out.update({"query_ms_p50": round(statistics.median(lat), 1), "query_ms_p95": round(percentile(lat, 95), 1),
                    "queries": len(lat), "self_at_rank_1": self_first})
        client.close()
        server_manager_instance.release_server(str(db))  # else it writes into the folder at exit

        if not args.no_reexport:
            PHASES.clear()
            t = time.perf_counter()
            again = export_run(folder, to=str(db), top_k=args.top_k)
            took = time.perf_counter() - t
            assert all(r.passed for r in again), [r.line() for r in again]
            out.update({"reexport_s": round(took, 1), "reexport_vectors_per_s": round(args.n / took),
                        "reexport_phases_s": {k: round(x, 1) for k, x in PHASES.items()},
                        "count_after_reexport": again[0].data["collection_count"]})

        out["db_size_mb"] = round(sum(f.stat().st_size for f in db.rglob("*") if f.is_file()) / 2**20)
        out.update({"python": platform.python_version(), "machine": platform.machine(), "cpus": os.cpu_count()})
        print(json.dumps(out, indent=2))
    finally:
        if args.keep:
            print(f"kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
