"""Benchmarks for execution: quota use under an RPM-enforcing server, and the client's cost per
request side by side with the official `dashscope` SDK and a plain httpx async loop.

    .venv/bin/pip install -e '.[bench]'      # dashscope, psutil
    .venv/bin/python bench/bench_execute.py            # ≈ 2–3 minutes
    .venv/bin/python bench/bench_execute.py --quick    # ≈ 30 s, for development

The server is the stand-in of tests/servers/standin.py in its own process (pre-serialised answers,
TCP_NODELAY, a 4096 backlog), so it is not what limits the numbers. Each client runs in a child
process of its own, one measurement per child: its CPU time (user + system, of the sending part
only), wall time, and peak RSS (the whole process: interpreter, imports and the run) are its own.
Rounds are interleaved, so a busy neighbour hurts every client alike; medians are printed.
Numbers go to bench/README.md, "Execution".
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

KEY = "sk-bench-0000"
MODEL = "qwen3-vl-embedding"
DIM = 1024
TEXTS_PER_REQUEST = 4
CLIENTS = ("harness", "harness+cache", "sdk", "httpx")


class Server:
    """The stand-in in a subprocess; `stats()` reads its counters over HTTP."""

    def __init__(self, *args: str):
        self.proc = subprocess.Popen([sys.executable, "-m", "tests.servers.standin", "--port", "0", "--key", KEY,
                                      *args], cwd=ROOT, stdout=subprocess.PIPE, text=True)
        self.base_url = self.proc.stdout.readline().split()[-1]
        self.url = self.base_url + "/services/embeddings/multimodal-embedding/multimodal-embedding"

    def _control(self, path: str, data: bytes | None = None) -> dict:
        with urllib.request.urlopen(urllib.request.Request(self.base_url.removesuffix("/api/v1") + path,
                                                           data=data)) as r:
            return json.loads(r.read())

    def cpu(self) -> float:
        """The server process's CPU seconds so far (user + system)."""
        import psutil
        t = psutil.Process(self.proc.pid).cpu_times()
        return t.user + t.system

    def stats(self) -> dict:
        return self._control("/_fake/stats")

    def reset(self) -> None:
        self._control("/_fake/reset", b"{}")

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


def cell(url: str, cid: str) -> dict:
    return {"id": cid, "model": MODEL, "provider": "dashscope", "endpoint": url, "dimension": DIM,
            "required": True}


def stage(folder: Path, tag: str, n: int) -> None:
    from tests.servers.dashscope_server import stage_payloads
    shutil.rmtree(folder, ignore_errors=True)
    stage_payloads(folder, tag, bodies(n, tag))


# ---- the clients, each run in a child process ---------------------------------------------------

def run_harness(url: str, folder: Path, concurrency: int, cache_dir: Path | None) -> int:
    from harness.execute import ExecuteOptions, execute_run
    tag = folder.name
    opts = ExecuteOptions(concurrency=concurrency, rpm=0, tpm=0, use_cache=cache_dir is not None, quiet=True,
                          cache_dir=cache_dir or folder / "no-cache")
    summary = execute_run(folder, [cell(url, tag)], opts)
    return summary.cells[0].ok


def run_sdk(base_url: str, n: int, concurrency: int) -> int:
    from concurrent.futures import ThreadPoolExecutor

    import dashscope
    from dashscope import MultiModalEmbedding

    dashscope.base_http_api_url = base_url

    def one(item) -> int:
        body, _ = item
        r = MultiModalEmbedding.call(model=MODEL, input=body["input"]["contents"], api_key=KEY, dimension=DIM)
        if r.status_code != 200 or len(r.output["embeddings"]) != TEXTS_PER_REQUEST:
            raise RuntimeError(f"SDK call failed: {r.status_code} {r.code} {r.message}")
        return 1

    with ThreadPoolExecutor(concurrency) as pool:
        return sum(pool.map(one, bodies(n, f"s{concurrency}")))


def run_httpx(url: str, n: int, concurrency: int) -> int:
    """The floor for an asyncio client: post, parse the JSON (with the parser the harness uses), nothing else."""
    import asyncio

    import httpx

    from harness.providers.wire import loads

    payloads = [json.dumps(b, separators=(",", ":")).encode() for b, _ in bodies(n, f"x{concurrency}")]
    headers = {"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"}

    async def main() -> int:
        ok = 0
        it = iter(payloads)
        limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
        async with httpx.AsyncClient(limits=limits, timeout=60) as client:
            async def worker() -> None:
                nonlocal ok
                for data in it:
                    r = await client.post(url, content=data, headers=headers)
                    ok += len(loads(r.content)["output"]["embeddings"]) == TEXTS_PER_REQUEST
            await asyncio.gather(*(worker() for _ in range(concurrency)))
        return ok

    return asyncio.run(main())


def child(args: argparse.Namespace) -> int:
    """One measurement: print {"ok", "wall", "cpu", "rss_mb"} as JSON."""
    import psutil  # noqa: F401  (imported by the parent too; keeps the children alike)
    os.environ["DASHSCOPE_API_KEY"] = KEY
    folder = Path(args.folder)
    if args.client.startswith("harness"):
        import harness.execute  # noqa: F401  (imports are start-up, not per-request cost)
        from harness.catalog.load import load_catalog
        load_catalog()          # `harness run` has read the catalog while planning, before it sends
        go = lambda: run_harness(args.url, folder, args.concurrency,  # noqa: E731
                                 folder.parent / f"cache-{folder.name}" if args.client == "harness+cache" else None)
    elif args.client == "sdk":
        import dashscope  # noqa: F401
        go = lambda: run_sdk(args.base_url, args.requests, args.concurrency)  # noqa: E731
    else:
        import httpx  # noqa: F401
        go = lambda: run_httpx(args.url, args.requests, args.concurrency)  # noqa: E731
    t0, c0 = time.perf_counter(), time.process_time()
    ok = go()
    cpu, wall = time.process_time() - c0, time.perf_counter() - t0
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"ok": ok, "wall": wall, "cpu": cpu, "rss_mb": rss}))
    return 0


def measure(client: str, server: Server, work: Path, n: int, concurrency: int, tag: str) -> dict:
    folder = work / tag
    if client.startswith("harness"):
        stage(folder, tag, n)
    server.reset()
    busy0 = server.cpu()
    out = subprocess.run([sys.executable, __file__, "--child", client, "--url", server.url, "--base-url",
                          server.base_url, "--folder", str(folder), "--requests", str(n), "--concurrency",
                          str(concurrency)], cwd=ROOT, capture_output=True, text=True)
    if out.returncode:
        raise RuntimeError(f"{client} failed:\n{out.stderr[-2000:]}")
    r = json.loads(out.stdout.strip().splitlines()[-1])
    if r["ok"] != n:
        raise RuntimeError(f"{client}: {r['ok']} of {n} requests succeeded; the numbers would mean nothing")
    # the server's CPU over the client's sending time: well under 100 % means the server waited for
    # the client, so the client is what is measured (goal 6)
    return {"rps": n / r["wall"], "cpu_ms": r["cpu"] / n * 1000, "rss_mb": r["rss_mb"],
            "server_busy": (server.cpu() - busy0) / r["wall"]}


def bench_quota(work: Path, rpm: int, window: float, windows: int) -> dict:
    from harness.execute import ExecuteOptions, execute_run
    n = rpm * windows
    with Server("--rpm", str(rpm), "--window", str(window)) as server:
        folder = work / "quota"
        stage(folder, "quota", n)
        opts = ExecuteOptions(concurrency=8, rpm=rpm, quota_window=window, use_cache=False, quiet=True,
                              cache_dir=work / "cache-quota")
        start = time.perf_counter()
        summary = execute_run(folder, [cell(server.url, "quota")], opts)
        elapsed = time.perf_counter() - start
        stats = server.stats()
    ok = summary.cells[0].ok
    throttled = stats.get("429:rpm", 0)
    served = stats["served_seconds"]   # first to last answer with vectors, as the server saw them
    return {"rpm": rpm, "window_s": window, "requests": n, "ok": ok, "elapsed_s": round(elapsed, 2),
            "quota_use": ok / (elapsed / window) / rpm,
            "steady_use": (stats.get("200", 0) - 1) / (served / window) / rpm if served else 0.0,
            "throttled": throttled, "throttled_share": throttled / max(1, stats["requests"])}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="small sizes for development (≈ 30 s)")
    p.add_argument("--requests", type=int, default=None, help="requests per measurement (default 600; quick 150)")
    p.add_argument("--concurrency", type=int, nargs="+", default=[1, 32])
    p.add_argument("--clients", nargs="+", default=list(CLIENTS), choices=CLIENTS)
    p.add_argument("--rounds", type=int, default=None, help="interleaved rounds; medians (default 3; quick 1)")
    p.add_argument("--rpm", type=int, default=120, help="quota the server enforces per window")
    p.add_argument("--window", type=float, default=5.0, help="the scaled-down minute, in seconds")
    p.add_argument("--windows", type=int, default=None, help="windows the quota run lasts (default 4; quick 2)")
    p.add_argument("--skip-quota", action="store_true")
    p.add_argument("--child", choices=CLIENTS, help=argparse.SUPPRESS)
    p.add_argument("--url", help=argparse.SUPPRESS)
    p.add_argument("--base-url", help=argparse.SUPPRESS)
    p.add_argument("--folder", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        args.client, args.concurrency, args.requests = args.child, args.concurrency[0], args.requests
        return child(args)
    n = args.requests or (150 if args.quick else 600)
    rounds = args.rounds or (1 if args.quick else 3)
    windows = args.windows or (2 if args.quick else 4)
    import psutil
    os.environ["DASHSCOPE_API_KEY"] = KEY
    work = Path(tempfile.mkdtemp(prefix="bench-execute-"))
    try:
        print(f"# python {sys.version.split()[0]}, {psutil.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}; "
              f"{TEXTS_PER_REQUEST} texts × {DIM}-d per request (a 91 kB answer)")
        if not args.skip_quota:
            q = bench_quota(work, args.rpm, args.window, windows)
            print(f"quota: server enforces {q['rpm']} per {q['window_s']} s; {q['requests']} requests in "
                  f"{q['elapsed_s']} s end to end → {q['quota_use']:.1%} of the quota "
                  f"(steady rate at the server: {q['steady_use']:.1%}); {q['throttled']} throttled "
                  f"({q['throttled_share']:.2%})")
        with Server() as server:
            print("\n| concurrency | client | req/s | CPU ms/req | peak RSS MB | server busy |"
                  "\n|---|---|---|---|---|---|")
            for c in args.concurrency:
                runs: dict[str, list[dict]] = {k: [] for k in args.clients}
                for r in range(rounds):
                    for k in args.clients:
                        runs[k].append(measure(k, server, work, n, c, f"{k.replace('+', '-')}-{c}-{r}"))
                med = {k: {m: statistics.median(x[m] for x in v) for m in v[0]} for k, v in runs.items()}
                for k, m in med.items():
                    print(f"| {c} | {k} | {m['rps']:.0f} | {m['cpu_ms']:.2f} | {m['rss_mb']:.0f} | "
                          f"{m['server_busy']:.0%} |")
                h = med.get("harness")
                for other in ("sdk", "httpx"):
                    o = med.get(other)
                    if h and o:
                        print(f"|   | harness ÷ {other} | {h['rps'] / o['rps']:.2f}× req/s | "
                              f"{o['cpu_ms'] / h['cpu_ms']:.2f}× requests per CPU-second | "
                              f"{h['rss_mb'] / o['rss_mb']:.2f}× RSS |")
            print(f"\n# medians of {rounds} interleaved round(s) of {n} requests; load average at the end: "
                  f"{', '.join(f'{x:.1f}' for x in os.getloadavg())}")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
