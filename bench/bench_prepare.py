"""Benchmark of the offline main job (issue 2).

Writes a synthetic spec of N text inputs (a CSV input set) × 2 models × 3 dimensions, runs
`harness run` on it in a child process, and reports contents written per second and the child's
peak RSS, for several N (memory should stay flat in N: inputs are streamed through a spool file).
In the same run it times the one-shot path the public quick-start script stands for — one
`harness prepare` process per request — on a sample of requests, and reports the ratio per request.

    python bench/bench_prepare.py                # N = 10,000, 50,000, 100,000; 40 one-shot requests
    python bench/bench_prepare.py --sizes 100000 --sample 20
    python bench/bench_prepare.py --dir /dev/shm/harness-bench   # the same on tmpfs: no disk in the way
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

OUT = Path(__file__).resolve().parent / "out"      # on the project's disk, not /tmp (git-ignored)
MODELS = ["qwen3-vl-embedding", "tongyi-embedding-vision-plus-2026-03-06"]
DIMS = [1024, 512, 256]
SPEC = """\
version: 1
name: bench
models: {models}
dimensions: {dims}
inputs:
  - from: texts.csv
    id: "t-{{{{ row.id }}}}"
    text: "{{{{ row.text }}}}"
"""


def child(cmd: list[str], cwd: Path) -> tuple[float, float, int, subprocess.CompletedProcess]:
    """Wall seconds, CPU seconds and peak RSS (MB) of one child process."""
    t0 = time.perf_counter()
    pid = os.fork()
    if pid == 0:  # the child: exec the command with output captured to files
        os.chdir(cwd)
        out = os.open("stdout.txt", os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
        os.dup2(out, 1)
        os.dup2(out, 2)
        os.execv(cmd[0], cmd)
    _, status, usage = os.wait4(pid, 0)
    wall = time.perf_counter() - t0
    rc = os.waitstatus_to_exitcode(status)
    cpu = usage.ru_utime + usage.ru_stime
    return wall, cpu, usage.ru_maxrss // 1024, subprocess.CompletedProcess(
        cmd, rc, (cwd / "stdout.txt").read_text(), "")


def file_floor(folder: Path, count: int, size: int) -> float:
    """Seconds this disk needs just to create `count` files of `size` bytes in 6 folders — the
    floor under any "one file per request" layout, measured in the same run for comparison."""
    payload = b"x" * size
    t0 = time.perf_counter()
    for d in range(6):
        sub = folder / f"floor-{d}"
        sub.mkdir()
        for i in range(count // 6):
            fd = os.open(sub / f"{i:05d}.json", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            os.write(fd, payload)
            os.close(fd)
    return time.perf_counter() - t0


def make(folder: Path, n: int) -> None:
    with open(folder / "texts.csv", "w", encoding="utf-8") as f:
        f.write("id,text\n")
        for i in range(n):
            f.write(f"{i},A short caption number {i} about a cat on a red chair\n")
    (folder / "spec.yaml").write_text(SPEC.format(models=json.dumps(MODELS), dims=json.dumps(DIMS)), encoding="utf-8")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", type=int, nargs="+", default=[10_000, 50_000, 100_000])
    ap.add_argument("--sample", type=int, default=40, help="one-shot `harness prepare` processes to time")
    ap.add_argument("--dir", type=Path, default=OUT, help="where the runs are written (default bench/out; "
                    "/dev/shm shows the harness's own speed without the disk)")
    args = ap.parse_args()
    py = sys.executable
    args.dir.mkdir(exist_ok=True)
    rows = []
    floors = []
    per_request_batch = None
    for n in args.sizes:
        with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
            folder = Path(tmp)
            make(folder, n)
            wall, cpu, rss, r = child([py, "-m", "harness", "run", "spec.yaml", "--quiet"], folder)
            assert r.returncode == 0, r.stdout
            manifest = json.loads((folder / "output/bench/manifest.json").read_text())
            contents = sum(c["contents"] for c in manifest["cells"])
            requests = sum(c["requests"] for c in manifest["cells"])
            rows.append((n, contents, requests, wall, cpu, contents / wall, contents / cpu, rss))
            per_request_batch = wall / requests
            floors.append(file_floor(folder, requests, 1100))   # a body of 20 short texts is about 1.1 kB
    # The one-shot path: one process per request, each writing one body of 20 texts.
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        folder = Path(tmp)
        t0 = time.perf_counter()
        for k in range(args.sample):
            texts = [a for i in range(20) for a in ("--text", f"A short caption number {k * 20 + i} about a cat")]
            r = subprocess.run([py, "-m", "harness", "prepare", *texts, "--dimension", "1024",
                                "--output", f"req-{k}.json"], cwd=folder, capture_output=True, text=True)
            assert r.returncode == 0, r.stderr
        one_shot = (time.perf_counter() - t0) / args.sample
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} cores, runs written under {args.dir}")
    print(f"load average before: {os.getloadavg()[0]:.2f}")
    print("| inputs | contents | requests | wall s | CPU s | contents/s (wall) | peak RSS MB "
          "| creating as many files alone, s |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|")
    for (n, contents, requests, wall, cpu, rate, cpu_rate, rss), floor in zip(rows, floors):
        print(f"| {n:,} | {contents:,} | {requests:,} | {wall:.1f} | {cpu:.1f} | {rate:,.0f} | {rss} | {floor:.1f} |")
    print(f"\nper request: batch run {per_request_batch * 1000:.2f} ms (largest size), "
          f"one-shot `harness prepare` process {one_shot * 1000:.0f} ms over {args.sample} requests "
          f"→ the batch run is {one_shot / per_request_batch:,.0f}× faster per request")


if __name__ == "__main__":
    main()
