"""kill -9 at half of a 200,000-input execution, then the same command again (issue 25, item 5).

    .venv/bin/python bench/bench_kill_resume.py                  # 200,000 inputs, ≈ 3–5 minutes
    .venv/bin/python bench/bench_kill_resume.py --inputs 20000   # ≈ 30 s, for development

The server is the test stand-in `tests/servers/dashscope_server.py` in this process (each text's
vector drawn from a pool of 4,096 by the text's hash, so two executions of one request give the same
bytes, and a log of every body it answered); `harness run --execute` runs in a child process,
which is killed with SIGKILL once the server has answered half of the requests. Then the same
command runs again (the resume), and once more into another folder with an empty cache (the
uninterrupted run). Printed, and copied into bench/README.md: the answers the kill lost (served but
not in the cache: at most the last batch), the requests the resume sent and whether any of them was
already stored (must be none), whether the resumed vectors are the uninterrupted run's bytes, the
times, and the files in the run folder and in the cache.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

KEY = "sk-bench-kill-0000"
PER_REQUEST = 20          # qwen3-vl-embedding's max_contents
CID = "qwen3-vl-embedding-256"


def files(folder: Path) -> int:
    return sum(1 for p in folder.rglob("*") if p.is_file()) if folder.exists() else 0


def main(argv: list[str] | None = None) -> int:
    from harness.execute.cache import BATCH, ResponseCache, cache_info, cache_key
    from tests.servers.dashscope_server import serve

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--inputs", type=int, default=200_000)
    p.add_argument("--concurrency", type=int, default=8)
    p.add_argument("--work", type=Path, default=None, help="keep the folders here (default: a temp folder)")
    args = p.parse_args(argv)
    work = args.work or Path(tempfile.mkdtemp(prefix="bench-kill-"))
    work.mkdir(parents=True, exist_ok=True)
    requests = -(-args.inputs // PER_REQUEST)
    (work / "texts.csv").write_text("id,text\n" + "".join(f"{i},text number {i} of the corpus\n"
                                                           for i in range(args.inputs)))
    (work / "spec.yaml").write_text(
        "version: 1\nname: big\nmodels: [qwen3-vl-embedding]\ndimensions: [256]\n"
        f"batching: {{max_contents: {PER_REQUEST}}}\n"
        "inputs:\n  - from: texts.csv\n    id: \"t{{ row.id }}\"\n    text: \"{{ row.text }}\"\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DASHSCOPE_", "HARNESS_"))}
    env.update(DASHSCOPE_API_KEY=KEY, HARNESS_CACHE_DIR=str(work / "cache"), NO_COLOR="1")

    with serve(api_key=KEY, vector_pool=4096) as server:   # deterministic per text, cheap
        def command(out: str) -> list[str]:
            return [sys.executable, "-m", "harness", "run", "spec.yaml", "--output", out, "--execute", "--quiet",
                    "--concurrency", str(args.concurrency), "--rpm", "1000000", "--tpm", "1000000000",
                    "--base-url", server.base_url]

        t0 = time.monotonic()
        proc = subprocess.Popen(command("out"), cwd=work, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        while len(server.served()) < requests // 2 and proc.poll() is None:
            time.sleep(0.005)
        proc.send_signal(signal.SIGKILL)
        proc.communicate()
        killed_after = time.monotonic() - t0
        server.settle()
        sent = [r.body for r in server.served()]
        with ResponseCache(work / "cache") as cache:
            stored = cache.keys()
        server.reset()

        t0 = time.monotonic()
        resumed = subprocess.run(command("out"), cwd=work, env=env, capture_output=True, text=True)
        resume_s = time.monotonic() - t0
        assert resumed.returncode == 0, resumed.stdout + resumed.stderr
        folder = work / "out" / "big"
        endpoint = json.loads((folder / "manifest.json").read_text())["cells"][0]["endpoint"]
        before = {cache_key(endpoint, b) for b in sent}
        again = [cache_key(endpoint, r.body) for r in server.log]
        server.reset()

        t0 = time.monotonic()
        whole = subprocess.run(command("whole"), cwd=work, capture_output=True, text=True,
                               env={**env, "HARNESS_CACHE_DIR": str(work / "cache-whole")})
        whole_s = time.monotonic() - t0
        assert whole.returncode == 0, whole.stdout + whole.stderr

    same = all((folder / rel).read_bytes() == (work / "whole" / "big" / rel).read_bytes()
               for rel in (f"vectors/{CID}.npy", f"vectors/{CID}.ids.json"))
    info = cache_info(work / "cache")
    rows = [
        ("inputs / requests", f"{args.inputs:,} / {requests:,} ({PER_REQUEST} texts each), "
                              f"concurrency {args.concurrency}"),
        ("killed (SIGKILL) after", f"{killed_after:.1f} s, {len(before):,} requests answered"),
        ("in the cache after the kill", f"{len(stored):,} (lost {len(before) - len(stored):,}; a batch is {BATCH})"),
        ("stored answers not received", f"{len(stored - before)} (must be 0)"),
        ("resume: requests sent", f"{len(again):,} = {requests:,} − {len(stored):,}: "
                                  f"{'yes' if len(again) == requests - len(stored) else 'NO'}"),
        ("resume: stored requests sent again", f"{len(set(again) & stored)} (must be 0)"),
        ("resume time / uninterrupted run time", f"{resume_s:.1f} s / {whole_s:.1f} s"),
        ("vectors (.npy, .ids.json) = uninterrupted run's bytes", "yes" if same else "NO"),
        ("files in the run folder", f"{files(folder):,}"),
        ("files in the cache folder / bytes", f"{files(work / 'cache')} / {info['bytes']:,} "
                                              f"({info['entries']:,} entries)"),
    ]
    print(f"| kill -9 at half, then resume ({time.strftime('%H:%M UTC', time.gmtime())}) | |\n|---|---|")
    for name, value in rows:
        print(f"| {name} | {value} |")
    ok = not (stored - before) and not (set(again) & stored) and len(again) == requests - len(stored) and same
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
