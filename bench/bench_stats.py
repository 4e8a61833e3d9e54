"""The cost of "how sure": bootstrap intervals and paired comparisons (harness/checks/stats.py) for a
retrieval check's cells, against the plain numpy way of computing the same intervals.

    .venv/bin/python bench/bench_stats.py               # n = 11, 100, 1,000, 5,000 queries
    .venv/bin/python bench/bench_stats.py --sizes 50

Per size: 9 cells (3 models x 3 dimensions) x 37 metrics (a qrels check's: recall, ndcg, precision, map,
mrr at k = 1..1000, map, mrr) of random 6-decimal per-query values. Printed: CPU seconds (process_time)
and peak memory the computation allocated (tracemalloc; numpy reports its buffers to it) for
  naive        per cell and metric: values[RandomState(0).randint(0, n, (10000, n))].mean(1), np.percentile
  intervals    stats.intervals per cell (one count matrix per n, shared by every metric and cell; sums exact)
  comparisons  stats.against_best over the 9 cells on one metric (8 paired intervals and sign-flip tests:
               exact 2^n flips up to n = 20, else 10,000 random ones)
Both interval variants give the same bounds (checked, to 1e-6).
"""

from __future__ import annotations

import argparse
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from harness.checks import stats  # noqa: E402

CELLS, METRICS = 9, 37


def measure(fn):
    tracemalloc.start()
    start = time.process_time()
    out = fn()
    seconds = time.process_time() - start
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return out, seconds, peak / 2**20


def naive(data: list[np.ndarray]) -> list[list[list[float]]]:
    out = []
    for cell in data:
        n = cell.shape[0]
        index = np.random.RandomState(0).randint(0, n, size=(10_000, n))
        out.append([np.percentile(cell[index, m].mean(axis=1), [2.5, 97.5]).tolist() for m in range(cell.shape[1])])
    return out


def harness_intervals(data: list[np.ndarray]) -> list[list[list[float]]]:
    stats._cached_counts.cache_clear()      # the first cell pays for the draw, as in a run
    names = [f"m{i}" for i in range(METRICS)]
    return [list(stats.intervals(columns=cell, names=names).values()) for cell in data]


def comparisons(data: list[np.ndarray]) -> list[dict]:
    queries = [f"q{i:05d}" for i in range(data[0].shape[0])]
    cells = [(f"c{i}", float(cell[:, 0].mean()), dict(zip(queries, cell[:, 0].tolist())))
             for i, cell in enumerate(data)]
    return stats.against_best(cells)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--sizes", type=int, nargs="+", default=[11, 100, 1000, 5000])
    args = p.parse_args()
    print(f"{'queries':>8} {'variant':>12} {'CPU s':>8} {'peak MB':>8}")
    for n in args.sizes:
        rng = np.random.default_rng(n)
        data = [np.round(rng.random((n, METRICS)), 6) for _ in range(CELLS)]
        want, s1, m1 = measure(lambda: naive(data))
        got, s2, m2 = measure(lambda: harness_intervals(data))
        assert np.allclose(np.array(got), np.array(want), atol=1.01e-6), "the two ways disagree"
        _, s3, m3 = measure(lambda: comparisons(data))
        for name, s, m in (("naive", s1, m1), ("intervals", s2, m2), ("comparisons", s3, m3)):
            print(f"{n:>8} {name:>12} {s:>8.2f} {m:>8.1f}")


if __name__ == "__main__":
    main()
