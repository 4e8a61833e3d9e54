"""Scoring a retrieval check at scale: the harness's blocked top-k ranking against a plain numpy
baseline (the full query x corpus cosine matrix, then a full argsort), side by side.

    .venv/bin/python bench/bench_retrieval.py            # 50,000 passages, 1,000 queries
    .venv/bin/python bench/bench_retrieval.py --quick    # 5,000 passages, 100 queries

Random unit vectors (dimension 384, local/e5-small's) with 1-4 graded relevant passages per query.
Each variant runs in a fresh child process; printed per variant: CPU seconds (process_time, one
untraced call) and the peak memory the scoring allocated (tracemalloc, a second call; numpy reports
its buffers to it), over the vectors already loaded:
  baseline  full cosine matrix (float32) + np.argsort per row, metrics on the top 1000
  top_k     harness.checks.metrics.top_k (blocks of 256 queries, argpartition), the same metrics
  check     the whole retrieval check through harness.checks.evaluate.evaluate_checks over a run folder:
            qrels read, ranking, every MTEB metric at k = 1..1000, per-query data, the TREC run
            file and the MTEB-layout result
Both rankings give the same metrics (checked; ties aside, which random floats do not have).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

KS = (1, 3, 5, 10, 20, 100, 1000)
DIM = 384
CELL = "local--e5-small-384"


def make(folder: Path, passages: int, queries: int, seed: int = 0) -> None:
    """A run folder with the vectors (through RunWriter) and a BEIR-style qrels file beside it."""
    from harness.folder import CellVectors, RunWriter
    rng = np.random.default_rng(seed)
    docs = rng.standard_normal((passages, DIM), dtype=np.float32)
    qs = rng.standard_normal((queries, DIM), dtype=np.float32)
    lines = ["query-id\tcorpus-id\tscore"]
    for q in range(queries):
        rel = rng.choice(passages, int(rng.integers(1, 5)), replace=False)
        for j, d in enumerate(rel):
            qs[q] += docs[d] * (0.25 if j == 0 else 0.12)   # relevant ones rank high, not always first
            lines.append(f"{q}\t{d}\t{2 if j == 0 else 1}")
    ids = [f"q:{q}" for q in range(queries)] + [f"d:{d}" for d in range(passages)]
    RunWriter(folder).vectors(CELL, CellVectors(ids, np.vstack([qs, docs])))
    (folder / "qrels.tsv").write_text("\n".join(lines) + "\n")


def load(folder: Path):
    from harness.folder import RunReader
    from harness.inputs.datasets.qrels import read_qrels
    v = RunReader(folder).vectors(CELL)
    qrels, _, _ = read_qrels(folder / "qrels.tsv")
    q_ids = [i for i in v.ids if i.startswith("q:")]
    d_ids = [i for i in v.ids if i.startswith("d:")]
    return v.rows(q_ids), v.rows(d_ids), [i[2:] for i in q_ids], [i[2:] for i in d_ids], qrels


def metrics_of(rankings, d_ids, q_ids, qrels) -> dict[str, float]:
    from harness.checks import metrics as M
    names = M.metric_names(KS, ["map"], ("recall", "ndcg", "precision", "map", "mrr"))
    per = []
    for q, cols in zip(q_ids, rankings):
        grades = qrels[q]
        per.append(M.graded_scores(np.array([grades.get(d_ids[c], 0) for c in cols]), np.array(list(grades.values())),
                                   names))
    return {m: float(np.mean([p[m] for p in per])) for m in names}


def traced(fn):
    """(result, CPU seconds, peak MB allocated during fn): CPU from an untraced call, memory from a
    second call under tracemalloc (numpy reports its buffers to it)."""
    t = time.process_time()
    result = fn()
    cpu = time.process_time() - t
    tracemalloc.start()
    fn()
    peak = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    return result, cpu, peak


def child(variant: str, folder: Path) -> dict:
    from harness.checks import metrics as M
    if variant == "check":
        from harness.checks.evaluate import evaluate_checks
        outputs: dict[str, bytes] = {}
        body = {"name": "bench", "qrels": "qrels.tsv", "query_prefix": "q:", "doc_prefix": "d:", "k": list(KS)}
        cell = {"id": CELL, "model": "local/e5-small", "dimension": DIM}
        [r], cpu, peak = traced(lambda: evaluate_checks([{"retrieval": body}], folder, [cell], spec_dir=folder,
                                                        write=outputs.__setitem__))
        assert r.passed, r.detail
        return {"cpu": cpu, "mem": peak, "ndcg@10": r.data["metrics"]["ndcg@10"],
                "run_mb": sum(len(b) for b in outputs.values()) / 2**20}
    queries, docs, q_ids, d_ids, qrels = load(folder)
    depth = min(max(KS), len(docs))

    def baseline():
        qn = queries / np.linalg.norm(queries, axis=1, keepdims=True)
        dn = docs / np.linalg.norm(docs, axis=1, keepdims=True)
        full = qn @ dn.T                                   # queries x passages
        return list(np.argsort(-full, axis=1, kind="stable")[:, :depth])

    def blocked():
        return [top.columns for top in M.top_k(queries, docs, depth)]

    rankings, rank_cpu, peak = traced(baseline if variant == "baseline" else blocked)
    t = time.process_time()
    means = metrics_of(rankings, d_ids, q_ids, qrels)
    return {"rank_cpu": rank_cpu, "cpu": rank_cpu + time.process_time() - t, "mem": peak,
            "ndcg@10": means["ndcg@10"], "map": means["map"]}


def run_child(variant: str, folder: Path) -> dict:
    out = subprocess.run([sys.executable, __file__, "--child", variant, str(folder)], capture_output=True, text=True,
                         check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="5,000 passages and 100 queries")
    ap.add_argument("--passages", type=int)
    ap.add_argument("--queries", type=int)
    ap.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(args.child[0], Path(args.child[1]))))
        return
    passages = args.passages or (5_000 if args.quick else 50_000)
    queries = args.queries or (100 if args.quick else 1_000)
    with tempfile.TemporaryDirectory(prefix="bench-retrieval-") as tmp:
        folder = Path(tmp)
        make(folder, passages, queries)
        print(f"{passages:,} passages x {queries:,} queries, dimension {DIM}, load {os.getloadavg()[0]:.1f}")
        res = {v: run_child(v, folder) for v in ("baseline", "top_k", "check")}
    b, k, c = res["baseline"], res["top_k"], res["check"]
    assert abs(b["ndcg@10"] - k["ndcg@10"]) < 1e-9 and abs(b["map"] - k["map"]) < 1e-9, (b, k)
    assert abs(round(k["ndcg@10"], 6) - c["ndcg@10"]) < 1e-6
    print(f"{'variant':<10} {'ranking CPU s':>14} {'total CPU s':>12} {'peak MB allocated':>18}")
    print(f"{'baseline':<10} {b['rank_cpu']:>14.2f} {b['cpu']:>12.2f} {b['mem']:>18.1f}")
    print(f"{'top_k':<10} {k['rank_cpu']:>14.2f} {k['cpu']:>12.2f} {k['mem']:>18.1f}")
    print(f"{'check':<10} {'':>14} {c['cpu']:>12.2f} {c['mem']:>18.1f}   (run + result files {c['run_mb']:.1f} MB)")
    print(f"ratios baseline/top_k: ranking CPU {b['rank_cpu'] / max(k['rank_cpu'], 1e-9):.2f}x, "
          f"peak memory {b['mem'] / max(k['mem'], 1e-9):.1f}x; same metrics (ndcg@10 {k['ndcg@10']:.4f})")


if __name__ == "__main__":
    main()
