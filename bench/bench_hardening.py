"""What the hardening of issues 9 and 10 costs: `validate`, `run` and `verify` of one CSV-driven
spec, timed side by side against another checkout of the harness (the baseline) in the same run.

Both interpreters run the same spec (N text rows × 2 models × 3 dimensions), interleaved, each
command `--repeat` times; the table gives medians of wall and CPU seconds and the peak RSS of the
child process, and the ratio current/baseline.

    python bench/bench_hardening.py --baseline /path/to/other/checkout/.venv/bin/python
    python bench/bench_hardening.py --baseline ... --size 50000 --repeat 3 --dir /dev/shm/hardening
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_prepare import OUT, child, make  # noqa: E402  (the same spec and timing as the prepare bench)


def command(python: str, verb: str, folder: Path) -> list[str]:
    if verb == "validate":
        return [python, "-m", "harness", "validate", "spec.yaml"]
    if verb == "run":
        return [python, "-m", "harness", "run", "spec.yaml", "--output", "out", "--quiet"]
    return [python, "-m", "harness", "verify", "out/bench"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--baseline", required=True, help="python of the checkout to compare with")
    ap.add_argument("--current", default=sys.executable, help="python of this checkout (default: this one)")
    ap.add_argument("--size", type=int, default=20_000, help="CSV rows (default 20,000)")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--dir", type=Path, default=OUT)
    args = ap.parse_args()

    pythons = {"baseline": args.baseline, "current": args.current}
    root = args.dir / f"hardening-{os.getpid()}"
    folders = {}
    for name in pythons:
        folders[name] = root / name
        folders[name].mkdir(parents=True)
        make(folders[name], args.size)
    times: dict[tuple[str, str], list[tuple[float, float, int]]] = {}
    try:
        for _ in range(args.repeat):
            for verb in ("validate", "run", "verify"):
                for name, python in pythons.items():     # interleaved: the same load for both
                    wall, cpu, rss, proc = child(command(python, verb, folders[name]), folders[name])
                    if proc.returncode != 0:
                        sys.exit(f"{name} {verb} failed ({proc.returncode}):\n{proc.stdout[-2000:]}")
                    times.setdefault((verb, name), []).append((wall, cpu, rss))
    finally:
        shutil.rmtree(root, ignore_errors=True)

    print(f"{args.size:,} CSV rows × 2 models × 3 dimensions; medians of {args.repeat}; "
          f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    print(f"{'command':<9} {'baseline wall/CPU s, MB':>26} {'current wall/CPU s, MB':>26} {'wall ratio':>11}")
    for verb in ("validate", "run", "verify"):
        row = {}
        for name in pythons:
            runs = times[(verb, name)]
            row[name] = (statistics.median(r[0] for r in runs), statistics.median(r[1] for r in runs),
                         max(r[2] for r in runs))
        b, c = row["baseline"], row["current"]
        print(f"{verb:<9} {b[0]:>10.2f} /{b[1]:>6.2f}, {b[2]:>4d} {c[0]:>10.2f} /{c[1]:>6.2f}, {c[2]:>4d} "
              f"{c[0] / b[0]:>10.2f}×")


if __name__ == "__main__":
    main()
