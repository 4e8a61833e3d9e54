"""What `harness verify` and finishing a cell cost (issue 14, goals 2 and 4), side by side in one run.

1. Two offline runs of N text inputs × 2 models × 3 dimensions: one with the inputs inline in the
   spec's YAML, one reading them from a CSV file. For each: `harness run`, `harness verify`,
   `harness verify --hashes-only`, and plain sha256 of every file of the folder (a Python process
   doing nothing else), each in a child process whose CPU time and peak RSS come from `wait4`.
   Ratios: verify / run (target ≤ 1.2) and --hashes-only / plain sha256 (target ≤ 3).
2. Finishing one executed cell of M × 1024 float32 vectors through the real writer
   (`execute.results.write_cell_evidence`, a stand-in cell whose matrix is filled with random
   vectors as answers would fill it), in a child process: its memory before the matrix, with
   it, and the peak while the cell's files are written. Ratio: memory for the cell (peak − before
   the matrix) / the matrix's bytes (target ≤ 1.5).

    python bench/bench_verify.py              # N = 100,000, M = 20,000 (≈ 3 minutes on 2 cores)
    python bench/bench_verify.py --quick      # N = 5,000: for development
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_prepare import DIMS, MODELS, OUT, child, make  # noqa: E402  (the CSV spec of the prepare bench)

INLINE = """\
version: 1
name: bench
models: {models}
dimensions: {dims}
inputs:
"""

HASH_ALL = """
import hashlib, os, sys
for d, _, names in os.walk(sys.argv[1]):
    for n in names:
        h = hashlib.sha256()
        with open(os.path.join(d, n), "rb") as f:
            while b := f.read(1 << 20):
                h.update(b)
"""

IN_PROCESS = """
import sys, time
from harness.evidence import hash_tree
from harness.audit.verify.checker import verify_folder
t = time.process_time(); ok = verify_folder(sys.argv[1], hashes_only=True).ok; a = time.process_time() - t
t = time.process_time(); hash_tree(sys.argv[1]); b = time.process_time() - t
print(ok, a, b)
"""

FINISH = """
import os, resource, sys
from pathlib import Path
import numpy as np
from types import SimpleNamespace as Stand
from harness.execute.results import CellOutcome, write_cell_evidence

def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

n, dim, folder = int(sys.argv[1]), int(sys.argv[2]), Path(sys.argv[3])
cid = f"stand-in-{dim}"
before = rss()
# what write_cell_evidence reads of the engine's cell: its spec, outcome, requests, matrix and mask
cell = Stand(spec={"id": cid}, outcome=CellOutcome(cid, "stand-in", "stand-in", True, True, expected_vectors=n),
             requests=[], info=None, tokens={})
cell.matrix = np.empty((n, dim), dtype=np.float32)
rng = np.random.default_rng(7)
for s in range(0, n, 1024):           # answers fill the matrix a request at a time
    cell.matrix[s:s + 1024] = rng.standard_normal((min(1024, n - s), dim), dtype=np.float32)
cell.received = np.ones(n, dtype=bool)
for k in range(0, n, 10):             # requests of 10 inputs
    ids = [f"in-{i}" for i in range(k, min(n, k + 10))]
    cell.requests.append(Stand(inputs=ids, record={"file": f"{k // 10 + 1:05d}.json", "ok": True}))
held = rss()
write_cell_evidence(folder, cell, None)
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(before, held, peak, cell.matrix.nbytes)
"""


def make_inline(folder: Path, n: int) -> None:
    with open(folder / "spec.yaml", "w", encoding="utf-8") as f:
        f.write(INLINE.format(models=json.dumps(MODELS), dims=json.dumps(DIMS)))
        for i in range(n):
            f.write(f"  - id: t-{i}\n    text: A short caption number {i} about a cat on a red chair\n")


def measure(py: str, folder: Path, repeat: int) -> dict[str, tuple[float, float, int]]:
    """Median wall s, median CPU s and max peak RSS MB of each step on the spec in `folder`."""
    steps = {"run": [py, "-m", "harness", "run", "spec.yaml", "--output", "out", "--quiet"],
             "verify": [py, "-m", "harness", "verify", "out/bench"],
             "verify --hashes-only": [py, "-m", "harness", "verify", "--hashes-only", "out/bench"],
             "sha256 of every file": [py, "-c", HASH_ALL, "out/bench"]}
    times: dict[str, list] = {name: [] for name in steps}
    inside: list[tuple[float, float]] = []
    for _ in range(repeat):
        shutil.rmtree(folder / "out", ignore_errors=True)
        for name, cmd in steps.items():
            wall, cpu, rss, proc = child(cmd, folder)
            if proc.returncode != 0:
                sys.exit(f"{name} failed ({proc.returncode}):\n{proc.stdout[-2000:]}")
            times[name].append((wall, cpu, rss))
        # the same two inside one process: what --hashes-only costs without the CLI's start-up
        _, _, _, proc = child([py, "-c", IN_PROCESS, "out/bench"], folder)
        ok, verify_cpu, hash_cpu = proc.stdout.split()[-3:]
        assert ok == "True", proc.stdout
        inside.append((float(verify_cpu), float(hash_cpu)))
    out = {name: (statistics.median(t[0] for t in runs), statistics.median(t[1] for t in runs), max(t[2] for t in runs))
           for name, runs in times.items()}
    out["in process"] = (statistics.median(v for v, _ in inside), statistics.median(h for _, h in inside))
    return out


def finish(py: str, folder: Path, n: int, dim: int) -> tuple[int, int, int, int, float]:
    """RSS before the matrix, with it, the peak while finishing (bytes), the matrix's bytes, CPU s."""
    folder.mkdir(parents=True, exist_ok=True)
    wall, cpu, _, proc = child([py, "-c", FINISH, str(n), str(dim), str(folder)], folder)
    if proc.returncode != 0:
        sys.exit(f"finishing the cell failed:\n{proc.stdout[-2000:]}")
    before, held, peak, size = (int(x) for x in proc.stdout.split()[-4:])
    return before, held, peak, size, cpu


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, default=100_000, help="text inputs of each run (default 100,000)")
    ap.add_argument("--vectors", type=int, default=20_000, help="rows of the finished cell (default 20,000)")
    ap.add_argument("--dimension", type=int, default=1024)
    ap.add_argument("--repeat", type=int, default=1, help="runs of each step (medians are printed)")
    ap.add_argument("--quick", action="store_true", help="N = 5,000 for development (M stays: finishing is cheap)")
    ap.add_argument("--dir", type=Path, default=OUT)
    args = ap.parse_args()
    if args.quick:
        args.size = 5_000
    py = sys.executable
    args.dir.mkdir(parents=True, exist_ok=True)
    load = os.getloadavg()[0]
    results = {}
    with tempfile.TemporaryDirectory(dir=args.dir, prefix="verify-") as tmp:
        root = Path(tmp)
        for name, build in (("inline", make_inline), ("CSV", make)):
            folder = root / name
            folder.mkdir()
            build(folder, args.size)
            results[name] = measure(py, folder, args.repeat)
        cell = finish(py, root / "cell", args.vectors, args.dimension)

    print(f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, python {sys.version.split()[0]}, "
          f"{os.cpu_count()} cores, load average {load:.1f} at start; medians of {args.repeat}")
    print(f"\n{args.size:,} text inputs × {len(MODELS)} models × {len(DIMS)} dimensions, offline run\n")
    print("| spec | step | wall s | CPU s | peak RSS MB |")
    print("|---|---|---:|---:|---:|")
    for name, steps in results.items():
        for step, (wall, cpu, rss) in ((k, v) for k, v in steps.items() if k != "in process"):
            print(f"| {name} | {step} | {wall:.2f} | {cpu:.2f} | {rss} |")
    print("\n| spec | verify / run (CPU; wall) | target | --hashes-only / sha256, processes (CPU; wall) | "
          "in one process (CPU s) | target |")
    print("|---|---|---|---|---|---|")
    for name, s in results.items():
        v, r, h, p = s["verify"], s["run"], s["verify --hashes-only"], s["sha256 of every file"]
        vi, hi = s["in process"]
        print(f"| {name} | {v[1] / r[1]:.2f}×; {v[0] / r[0]:.2f}× | ≤ 1.2× | {h[1] / p[1]:.2f}×; {h[0] / p[0]:.2f}× | "
              f"{vi / hi:.2f}× ({vi:.2f} / {hi:.2f}) | ≤ 3× |")
    before, held, peak, size, cpu = cell
    mb = 1 << 20
    print(f"\nfinishing a cell of {args.vectors:,} × {args.dimension} float32 vectors (matrix {size / mb:.0f} MB), "
          f"{cpu:.2f} s CPU for the whole process\n")
    print("| before the matrix MB | with the matrix MB | peak while finishing MB "
          "| memory for the cell / matrix | target |")
    print("|---:|---:|---:|---:|---|")
    print(f"| {before / mb:.0f} | {held / mb:.0f} | {peak / mb:.0f} | {(peak - before) / size:.2f}× | ≤ 1.5× |")


if __name__ == "__main__":
    main()
