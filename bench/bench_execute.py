"""Benchmarks for issue 3 (execution): quota use under an RPM-enforcing server, and client
overhead against a zero-latency server compared with the official `dashscope` SDK.

    /work/venv/bin/pip install -e '.[bench]'      # dashscope, psutil
    /work/venv/bin/python bench/bench_execute.py [--requests 1000] [--rpm 120 --window 5 --windows 3]

The fake DashScope server (tests/servers/dashscope_server.py) runs in its own process on
127.0.0.1, so the client's CPU is measured alone (psutil, this process: user + system). Every
loop is bounded by a request count. Numbers go to bench/README.md, "Execution (issue 3)".
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
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "servers"))
from dashscope_server import stage_payloads  # noqa: E402

from harness.execute import ExecuteOptions, execute_run  # noqa: E402

KEY = "sk-bench-0000"
MODEL = "qwen3-vl-embedding"
DIM = 1024
TEXTS_PER_REQUEST = 4


class Server:
    """The fake server in a subprocess; `stats()` reads its counters over HTTP."""

    def __init__(self, *args: str):
        self.proc = subprocess.Popen([sys.executable, "-m", "tests.servers.dashscope_server", "--port", "0",
                                      "--key", KEY, *args], cwd=ROOT, stdout=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline()
        self.base_url = line.split()[-1]
        self.url = self.base_url + "/services/embeddings/multimodal-embedding/multimodal-embedding"

    def stats(self) -> dict:
        with urllib.request.urlopen(self.base_url.removesuffix("/api/v1") + "/_fake/stats") as r:
            return json.loads(r.read())

    def reset(self) -> None:
        req = urllib.request.Request(self.base_url.removesuffix("/api/v1") + "/_fake/reset", data=b"{}")
        urllib.request.urlopen(req).read()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.proc.terminate()
        self.proc.wait(timeout=10)


def bodies(n: int, tag: str) -> list[tuple[dict, list[str]]]:
    out = []
    for r in range(n):
        ids = [f"{tag}{r}-{k}" for k in range(TEXTS_PER_REQUEST)]
        out.append(({"model": MODEL, "input": {"contents": [{"text": f"benchmark text {i}"} for i in ids]},
                     "parameters": {"dimension": DIM}}, ids))
    return out


def cell(server: Server, cid: str) -> dict:
    return {"id": cid, "model": MODEL, "provider": "dashscope", "endpoint": server.url, "dimension": DIM,
            "required": True}


def measure(fn) -> tuple[float, float]:
    proc = psutil.Process()
    c0, t0 = proc.cpu_times(), time.perf_counter()
    fn()
    c1, t1 = proc.cpu_times(), time.perf_counter()
    return t1 - t0, (c1.user - c0.user) + (c1.system - c0.system)


def bench_quota(work: Path, rpm: int, window: float, windows: int) -> dict:
    n = rpm * windows
    with Server("--rpm", str(rpm), "--window", str(window)) as server:
        folder = work / "quota"
        stage_payloads(folder, "quota", bodies(n, "q"))
        opts = ExecuteOptions(concurrency=8, rpm=rpm, quota_window=window, use_cache=False, quiet=True,
                              cache_dir=work / "cache-quota")
        start = time.perf_counter()
        summary = execute_run(folder, [cell(server, "quota")], opts)
        elapsed = time.perf_counter() - start
        stats = server.stats()
    ok = summary.cells[0].ok
    throttled = stats.get("429:rpm", 0)
    served = stats["served_seconds"]   # first to last answer with vectors, as the server saw them
    return {"rpm": rpm, "window_s": window, "requests": n, "ok": ok, "elapsed_s": round(elapsed, 2),
            "quota_use": ok / (elapsed / window) / rpm,
            "steady_use": (stats.get("200", 0) - 1) / (served / window) / rpm if served else 0.0,
            "throttled": throttled,
            "throttled_share": throttled / max(1, stats["requests"])}


def bench_harness(server: Server, work: Path, n: int, concurrency: int, use_cache: bool) -> dict:
    tag = f"h{concurrency}{'c' if use_cache else ''}"
    folder = work / tag
    shutil.rmtree(folder, ignore_errors=True)
    stage_payloads(folder, tag, bodies(n, tag))
    opts = ExecuteOptions(concurrency=concurrency, rpm=0, tpm=0, use_cache=use_cache, quiet=True,
                          cache_dir=work / f"cache-{tag}")
    server.reset()
    result = {}
    wall, cpu = measure(lambda: result.setdefault("s", execute_run(folder, [cell(server, tag)], opts)))
    assert result["s"].cells[0].ok == n, "every request must succeed for the numbers to mean anything"
    return {"wall": wall, "cpu": cpu, "rps": n / wall, "cpu_ms": cpu / n * 1000}


def bench_sdk(server: Server, n: int, concurrency: int) -> dict:
    import dashscope
    from dashscope import MultiModalEmbedding

    dashscope.base_http_api_url = server.base_url
    work = bodies(n, f"s{concurrency}")

    def one(item):
        body, _ = item
        r = MultiModalEmbedding.call(model=MODEL, input=body["input"]["contents"], api_key=KEY, dimension=DIM)
        if r.status_code != 200 or len(r.output["embeddings"]) != TEXTS_PER_REQUEST:
            raise RuntimeError(f"SDK call failed: {r.status_code} {r.code} {r.message}")

    def run():
        with ThreadPoolExecutor(concurrency) as pool:
            list(pool.map(one, work))

    server.reset()
    wall, cpu = measure(run)
    return {"wall": wall, "cpu": cpu, "rps": n / wall, "cpu_ms": cpu / n * 1000}


def median(runs: list[dict]) -> dict:
    return {k: statistics.median(r[k] for r in runs) for k in runs[0]}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--requests", type=int, default=1000, help="requests per overhead measurement")
    p.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32])
    p.add_argument("--rpm", type=int, default=120, help="quota the server enforces per window")
    p.add_argument("--window", type=float, default=5.0, help="the scaled-down minute, in seconds")
    p.add_argument("--windows", type=int, default=6, help="how many windows the quota run lasts")
    p.add_argument("--rounds", type=int, default=3, help="interleaved repetitions; medians are reported")
    p.add_argument("--skip-quota", action="store_true")
    p.add_argument("--skip-sdk", action="store_true")
    p.add_argument("--skip-overhead", action="store_true")
    args = p.parse_args()
    os.environ["DASHSCOPE_API_KEY"] = KEY
    work = Path(tempfile.mkdtemp(prefix="bench-execute-"))
    try:
        print(f"# python {sys.version.split()[0]}, {psutil.cpu_count()} CPUs; {TEXTS_PER_REQUEST} texts × "
              f"{DIM}-d per request")
        if not args.skip_quota:
            q = bench_quota(work, args.rpm, args.window, args.windows)
            print(f"quota: server enforces {q['rpm']} per {q['window_s']} s; {q['requests']} requests in "
                  f"{q['elapsed_s']} s end to end → {q['quota_use']:.1%} of the quota "
                  f"(steady rate at the server: {q['steady_use']:.1%}); {q['throttled']} throttled "
                  f"({q['throttled_share']:.2%})")
        if args.skip_overhead:
            return 0
        with Server("--vector-pool", "256") as server:
            # warm up both clients (imports, first connections)
            bench_harness(server, work / "warm", 20, 4, False)
            if not args.skip_sdk:
                bench_sdk(server, 20, 4)
            print("| concurrency | harness req/s | harness CPU ms/req | harness+cache req/s | harness+cache CPU ms/req "
                  "| SDK req/s | SDK CPU ms/req | req/s ratio (harness/SDK) | CPU ratio (SDK/harness) |")
            print("|---|---|---|---|---|---|---|---|---|")
            for c in args.concurrency:
                runs: dict[str, list[dict]] = {"h": [], "hc": [], "s": []}
                for r in range(args.rounds):  # interleaved, so a busy neighbour hurts every client alike
                    runs["h"].append(bench_harness(server, work / f"r{r}", args.requests, c, False))
                    runs["hc"].append(bench_harness(server, work / f"r{r}", args.requests, c, True))
                    if not args.skip_sdk:
                        runs["s"].append(bench_sdk(server, args.requests, c))
                h, hc = median(runs["h"]), median(runs["hc"])
                s = median(runs["s"]) if runs["s"] else None
                ratio = f"{h['rps'] / s['rps']:.2f}×" if s else "–"
                cpu_ratio = f"{s['cpu_ms'] / h['cpu_ms']:.2f}×" if s else "–"
                srow = f"{s['rps']:.0f} | {s['cpu_ms']:.2f}" if s else "– | –"
                print(f"| {c} | {h['rps']:.0f} | {h['cpu_ms']:.2f} | {hc['rps']:.0f} | {hc['cpu_ms']:.2f} | {srow} "
                      f"| {ratio} | {cpu_ratio} |", flush=True)
            print(f"# medians of {args.rounds} interleaved rounds of {args.requests} requests; "
                  f"load average at the end: {', '.join(f'{x:.1f}' for x in os.getloadavg())}")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
