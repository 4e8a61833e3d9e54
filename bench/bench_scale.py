"""Issue 25's scale benchmark: a million CSV texts, one cell (qwen3-vl-embedding at 256), side by side.

    .venv/bin/pip install -e '.[bench]'          # dashscope, psutil (the SDK comparison)
    .venv/bin/python bench/bench_scale.py                          # 1,000,000 planned, 200,000 executed
    .venv/bin/python bench/bench_scale.py --n 200000 --execute-n 50000 --rounds 1   # quicker

Every measurement is a child process of its own (fork + exec, `wait4`): wall time, CPU time (user +
system) and peak RSS are that process's. In one run, interleaved round by round:

- plan: `harness run SPEC` (no --execute) against `bench/minimal_plan.py`, 25 lines that read the
  same CSV and write the same requests.jsonl and index.jsonl (checked byte for byte), nothing else;
  the files in the run folder and the manifest's size;
- verify: `harness verify` of that run folder, against the run it checks;
- execute: `harness run SPEC --execute` of the first `--execute-n` texts against the stand-in
  (tests/servers/standin.py, its own process), with a fresh response cache: time, peak RSS against
  1.5 × the cell's float32 vector matrix + 200 MB, files in the run folder and in the cache folder;
- margin: the process CPU of `harness run --execute --concurrency 1` over 800 requests minus over 200
  (20 texts each, everything the run writes included, the cache too), per request, against the
  official `dashscope` SDK calling the same requests in a loop (800 minus 200 as well).

Numbers go to bench/README.md, "A million inputs (issue 25)".
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "bench" / "out" / "scale"          # on the project's disk, git-ignored
KEY = "sk-bench-scale-0000"
MODEL, DIM, PER_REQUEST = "qwen3-vl-embedding", 256, 20
WORDS = ("alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu nu xi omicron pi rho sigma tau "
         "upsilon phi chi psi omega cat chair red market river 猫 椅子 café naïve").split()
SPEC = f"""\
version: 1
name: scale
models: [{MODEL}]
dimensions: [{DIM}]
inputs:
  - from: texts.csv
    id: "t-{{{{ row.id }}}}"
    text: "{{{{ row.text }}}}"
"""


def texts(folder: Path, n: int) -> Path:
    """folder/texts.csv: n rows of 6-12 seeded words (a few non-ASCII), made once per folder."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "spec.yaml").write_text(SPEC)
    path = folder / "texts.csv"
    if path.is_file() and (folder / "n").is_file() and (folder / "n").read_text() == str(n):
        return path
    rng = random.Random(25)
    with open(path, "w", encoding="utf-8", newline="") as f:
        f.write("id,text\n")
        for i in range(n):
            f.write(f"{i},{' '.join(rng.choice(WORDS) for _ in range(rng.randint(6, 12)))}\n")
    (folder / "n").write_text(str(n))
    return path


def child(cmd: list[str], cwd: Path, env: dict | None = None) -> dict:
    """Run `cmd`; its wall and CPU seconds, peak RSS (MB) and exit code."""
    t0 = time.perf_counter()
    log = open(cwd / "child.log", "wb")
    pid = os.fork()
    if pid == 0:  # the child: exec the command, its output to a file
        try:
            os.chdir(cwd)
            os.dup2(log.fileno(), 1)
            os.dup2(log.fileno(), 2)
            os.execve(cmd[0], cmd, env or os.environ)
        finally:
            os._exit(127)
    _, status, usage = os.wait4(pid, 0)
    log.close()
    out = {"wall": time.perf_counter() - t0, "cpu": usage.ru_utime + usage.ru_stime,
           "rss_mb": usage.ru_maxrss / 1024, "rc": os.waitstatus_to_exitcode(status)}
    if out["rc"] not in (0, 1):
        raise RuntimeError(f"{' '.join(cmd)} exited {out['rc']}:\n{(cwd / 'child.log').read_text()[-3000:]}")
    return out


def harness(*args: str) -> list[str]:
    return [sys.executable, "-m", "harness", *args]


def env(cache: Path) -> dict:
    e = {k: v for k, v in os.environ.items() if not k.startswith(("DASHSCOPE_", "ALIBABA_CLOUD_"))}
    return {**e, "DASHSCOPE_API_KEY": KEY, "HARNESS_CACHE_DIR": str(cache), "PYTHONPATH": str(ROOT)}


def files_in(folder: Path) -> int:
    return sum(1 for p in folder.rglob("*") if p.is_file()) if folder.exists() else 0


class Server:
    """The stand-in (tests/servers/standin.py) in its own process."""

    def __enter__(self):
        self.proc = subprocess.Popen([sys.executable, "-m", "tests.servers.standin", "--port", "0", "--key", KEY],
                                     cwd=ROOT, stdout=subprocess.PIPE, text=True)
        self.base_url = self.proc.stdout.readline().split()[-1]
        return self

    def __exit__(self, *exc):
        self.proc.terminate()
        self.proc.wait(timeout=10)


SDK_LOOP = """
import csv, sys, dashscope
from dashscope import MultiModalEmbedding
dashscope.base_http_api_url = sys.argv[2]
with open(sys.argv[1], newline="", encoding="utf-8") as f:
    rows = [r["text"] for r in csv.DictReader(f)]
for i in range(0, len(rows), {per}):
    r = MultiModalEmbedding.call(model="{model}", input=[{{"text": t}} for t in rows[i:i + {per}]],
                                 api_key="{key}", dimension={dim})
    assert r.status_code == 200 and len(r.output["embeddings"]) == len(rows[i:i + {per}]), r
""".format(per=PER_REQUEST, model=MODEL, key=KEY, dim=DIM)


def plan_round(work: Path, csv_path: Path, baseline: Path | None = None) -> dict:
    run_dir = work / "plan"
    shutil.rmtree(run_dir / "out", ignore_errors=True)
    shutil.rmtree(run_dir / "minimal", ignore_errors=True)
    shutil.rmtree(run_dir / "before", ignore_errors=True)
    b = None
    if baseline is not None:    # the same command in a checkout of earlier code (`--baseline`), on the same CSV
        b = child(harness("run", "spec.yaml", "--output", "before", "--quiet"), run_dir,
                  {**env(work / "cache-plan"), "PYTHONPATH": str(baseline)})
        shutil.rmtree(run_dir / "before", ignore_errors=True)
    h = child(harness("run", "spec.yaml", "--output", "out", "--quiet"), run_dir, env(work / "cache-plan"))
    m = child([sys.executable, str(ROOT / "bench" / "minimal_plan.py"), "texts.csv", "minimal", str(DIM)], run_dir)
    folder = run_dir / "out" / "scale"
    cell = folder / "payloads" / f"{MODEL}-{DIM}"
    same = all((cell / name).read_bytes() == (run_dir / "minimal" / name).read_bytes()
               for name in ("requests.jsonl", "index.jsonl"))
    v = child(harness("verify", str(folder)), run_dir, env(work / "cache-plan"))
    return {"harness": h, "minimal": m, "verify": v, "before": b, "same_bodies": same, "files": files_in(folder),
            "manifest_kb": (folder / "manifest.json").stat().st_size / 1024,
            "requests": sum(1 for _ in open(cell / "index.jsonl", "rb")),
            "payload_mb": (cell / "requests.jsonl").stat().st_size / 1e6, "verify_rc": v["rc"]}


def subset(src: Path, folder: Path, n: int) -> None:
    """folder/texts.csv: the first n rows of src, and the spec."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "spec.yaml").write_text(SPEC)
    with open(src, encoding="utf-8") as f, open(folder / "texts.csv", "w", encoding="utf-8") as out:
        for i, line in enumerate(f):
            if i > n:
                break
            out.write(line)


def execute(work: Path, csv_path: Path, n: int, server: Server) -> dict:
    folder = work / f"exec-{n}"
    subset(csv_path, folder, n)
    shutil.rmtree(folder / "out", ignore_errors=True)
    cache = folder / "cache"
    shutil.rmtree(cache, ignore_errors=True)
    r = child(harness("run", "spec.yaml", "--output", "out", "--quiet", "--execute", "--base-url", server.base_url,
                      "--concurrency", "8", "--rpm", "1000000", "--tpm", "1000000000"), folder, env(cache))
    run = folder / "out" / "scale"
    execution = json.loads((run / "execution.json").read_text())
    matrix_mb = n * DIM * 4 / 2**20
    return {**r, "n": n, "ok": execution["cells"][0].get("vectors"), "matrix_mb": matrix_mb,
            "rss_goal_mb": 1.5 * matrix_mb + 200, "run_files": files_in(run), "cache_files": files_in(cache),
            "cache_mb": sum(p.stat().st_size for p in cache.rglob("*") if p.is_file()) / 1e6 if cache.exists() else 0}


def margin(work: Path, csv_path: Path, server: Server, low: int, high: int) -> dict:
    """Process CPU per request between `low` and `high` requests at concurrency 1: harness and SDK."""
    out = {}
    for requests in (low, high):
        folder = work / f"margin-{requests}"
        subset(csv_path, folder, requests * PER_REQUEST)
        shutil.rmtree(folder / "out", ignore_errors=True)
        shutil.rmtree(folder / "cache", ignore_errors=True)
        out[("harness", requests)] = child(harness(
            "run", "spec.yaml", "--output", "out", "--quiet", "--execute", "--base-url", server.base_url,
            "--concurrency", "1", "--rpm", "1000000", "--tpm", "1000000000"), folder, env(folder / "cache"))
        (folder / "sdk_loop.py").write_text(SDK_LOOP)
        out[("sdk", requests)] = child([sys.executable, "sdk_loop.py", "texts.csv", server.base_url], folder,
                                       env(folder / "cache"))
    per = {who: (out[(who, high)]["cpu"] - out[(who, low)]["cpu"]) / (high - low) * 1000 for who in ("harness", "sdk")}
    return {"ms": per, "raw": {f"{w}-{r}": v for (w, r), v in out.items()}}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--n", type=int, default=1_000_000, help="texts planned and verified (default 1,000,000)")
    p.add_argument("--execute-n", type=int, default=200_000, help="texts executed against the stand-in (0: none)")
    p.add_argument("--rounds", type=int, default=2, help="interleaved plan rounds; the best of each side")
    p.add_argument("--margin", type=int, nargs=2, default=[200, 800], metavar=("LOW", "HIGH"))
    p.add_argument("--skip-margin", action="store_true")
    p.add_argument("--dir", type=Path, default=OUT)
    p.add_argument("--baseline", type=Path, help="a checkout of earlier code: its plan time beside")
    args = p.parse_args()
    work = args.dir
    csv_path = texts(work / "plan", args.n)
    print(f"# python {sys.version.split()[0]}, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}; "
          f"{args.n:,} texts, one cell {MODEL}-{DIM}, {PER_REQUEST} texts a request")
    rounds = [plan_round(work, csv_path, args.baseline) for _ in range(args.rounds)]
    kinds = ("harness", "minimal", "verify") + (("before",) if args.baseline else ())
    best = {k: min((r[k] for r in rounds), key=lambda x: x["cpu"]) for k in kinds}
    last = rounds[-1]
    print("\n| plan, " + f"{args.n:,} texts" + " | wall s | CPU s | peak RSS MB |\n|---|---:|---:|---:|")
    for k in kinds:
        b = best[k]
        print(f"| {k} | {b['wall']:.1f} | {b['cpu']:.1f} | {b['rss_mb']:.0f} |")
    print(f"\nharness ÷ minimal: {best['harness']['cpu'] / best['minimal']['cpu']:.2f}× CPU, "
          f"{best['harness']['wall'] / best['minimal']['wall']:.2f}× wall (goal ≤ 2×); "
          f"verify ÷ run: {best['verify']['cpu'] / best['harness']['cpu']:.2f}× CPU, "
          f"{best['verify']['wall'] / best['harness']['wall']:.2f}× wall (goal ≤ 1.0×; verify exit "
          f"{last['verify_rc']}); same bodies and index as the minimal script: {last['same_bodies']}; "
          f"{last['requests']:,} requests, {last['payload_mb']:.0f} MB of bodies; run folder: {last['files']} files, "
          f"manifest {last['manifest_kb']:.1f} kB")
    if args.baseline:
        print(f"baseline {args.baseline} ÷ minimal: {best['before']['cpu'] / best['minimal']['cpu']:.2f}× CPU; "
              f"now ÷ before: {best['harness']['cpu'] / best['before']['cpu']:.2f}× CPU")
    print("# every round (wall / CPU s): " + "; ".join(
        f"{k} {r[k]['wall']:.1f}/{r[k]['cpu']:.1f}" for r in rounds for k in kinds))
    with Server() as server:
        if args.execute_n:
            e = execute(work, csv_path, args.execute_n, server)
            print(f"\nexecute {e['n']:,} texts (concurrency 8): {e['wall']:.1f} s wall, {e['cpu']:.1f} s CPU, "
                  f"peak RSS {e['rss_mb']:.0f} MB (goal ≤ 1.5 × {e['matrix_mb']:.0f} MB float32 matrix + 200 MB = "
                  f"{e['rss_goal_mb']:.0f} MB); {e['ok']:,} vectors; run folder {e['run_files']} files; cache "
                  f"{e['cache_files']} files, {e['cache_mb']:.0f} MB")
        if not args.skip_margin:
            m = margin(work, csv_path, server, *args.margin)
            h, s = m["ms"]["harness"], m["ms"]["sdk"]
            print(f"\nCPU per request at the margin ({args.margin[1]} minus {args.margin[0]} requests, concurrency 1, "
                  f"process CPU, everything written): harness {h:.2f} ms, SDK {s:.2f} ms: {h / s:.2f}× "
                  f"(goal ≤ 1.0×, aim 0.5×)")
            print("# " + "; ".join(f"{k} {v['cpu']:.2f} s CPU, {v['wall']:.1f} s" for k, v in m["raw"].items()))
    print(f"# load average at the end: {', '.join(f'{x:.1f}' for x in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
