"""Benchmark of inline specs and one-shot start-up (issue 14, goals 1 and 5), side by side.

1. `harness run` (offline: payloads and evidence) on N texts written inline in the YAML vs the same
   N texts from a CSV input set, × 1 model × 3 dimensions: CPU seconds and peak RSS of each child;
   then `harness validate` of the same two specs (CPU seconds; until issue 21 a unit test asserted
   inline < 2× CSV for it at 10,000 inputs: that ratio is measured here now).
2. `yamlpos.load` of the inline spec: libyaml's path vs the pure-Python one (CPU seconds).
3. The schema check per inline input: the quick check vs jsonschema over the same document.
4. One-shot process start: `harness prepare`, `harness validate` (a one-input spec, and the
   quickstart example with its checks) vs `python -c pass`.

    python bench/bench_inline.py            # N = 100,000, medians of 3 interleaved runs (about 2 minutes on 2 quiet cores)
    python bench/bench_inline.py --quick    # N = 5,000, for development
"""  # noqa: E501

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

OUT = Path(__file__).resolve().parent / "out"      # on the project's disk, not /tmp (git-ignored)
HEAD = "version: 1\nname: bench\nmodels: [qwen3-vl-embedding]\ndimensions: [1024, 512, 256]\ninputs:\n"
CSV_SPEC = HEAD + '  - from: texts.csv\n    id: "t-{{ row.id }}"\n    text: "{{ row.text }}"\n'


def text(i: int) -> str:
    return f"A short caption number {i} about a cat on a red chair"


def make(folder: Path, n: int) -> None:
    with open(folder / "texts.csv", "w", encoding="utf-8") as f:
        f.write("id,text\n")
        f.writelines(f"{i},{text(i)}\n" for i in range(n))
    (folder / "csv.yaml").write_text(CSV_SPEC, encoding="utf-8")
    with open(folder / "inline.yaml", "w", encoding="utf-8") as f:
        f.write(HEAD)
        f.writelines(f"  - id: t-{i}\n    text: {text(i)}\n" for i in range(n))


def child(args: list[str], cwd: Path, env: dict | None = None) -> tuple[float, int]:
    """CPU seconds (user + system) and peak RSS (MB) of one child process, from wait4."""
    pid = os.fork()
    if pid == 0:
        os.chdir(cwd)
        fd = os.open("child.log", os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        # bytecode cached as an installed package has it (this machine's $PYTHONDONTWRITEBYTECODE
        # would make every start compile the harness again), kept out of the source tree
        environ = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
        os.execve(args[0], args, {**environ, "PYTHONPATH": str(ROOT), "PYTHONPYCACHEPREFIX": str(OUT / "pycache"),
                                  **(env or {})})
    _, status, usage = os.wait4(pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{' '.join(args)} failed:\n{(cwd / 'child.log').read_text()[-2000:]}")
    return usage.ru_utime + usage.ru_stime, usage.ru_maxrss // 1024


def cpu(fn, repeat: int = 1) -> float:
    best = float("inf")
    for _ in range(repeat):
        t0 = time.process_time()
        fn()
        best = min(best, time.process_time() - t0)
    return best


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--inputs", type=int, default=100_000, help="inline inputs for the run (default 100,000)")
    ap.add_argument("--yaml-inputs", type=int, default=20_000, help="inputs for the yamlpos comparison")
    ap.add_argument("--repeat", type=int, default=3, help="interleaved runs of each spec; medians (default 3; quick 1)")
    ap.add_argument("--starts", type=int, default=10, help="one-shot processes timed per command")
    ap.add_argument("--quick", action="store_true", help="5,000 inputs, 2,000 for yamlpos, 3 starts")
    ap.add_argument("--dir", type=Path, default=OUT)
    args = ap.parse_args()
    if args.quick:
        args.inputs, args.yaml_inputs, args.starts, args.repeat = 5_000, 2_000, 3, 1
    py = sys.executable
    args.dir.mkdir(exist_ok=True)
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f}; "
          f"CPU seconds (user + system) unless said")

    from harness.spec import load as spec_mod
    from harness.spec import schemafast, yamlpos

    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        folder = Path(tmp)
        # 1. the run, inline vs CSV (first a small run of each, to fill the bytecode cache)
        make(folder, 10)
        for name in ("csv", "inline"):
            child([py, "-m", "harness", "run", f"{name}.yaml", "--output", f"warm-{name}", "--quiet"], folder)
        make(folder, args.inputs)
        runs: dict[str, list[tuple[float, int]]] = {"csv": [], "inline": []}
        checks: dict[str, list[float]] = {"csv": [], "inline": []}
        for _ in range(args.repeat):             # interleaved, so both see the same load
            for name in runs:
                runs[name].append(child([py, "-m", "harness", "run", f"{name}.yaml", "--output", f"out-{name}",
                                         "--quiet"], folder))
                checks[name].append(child([py, "-m", "harness", "validate", f"{name}.yaml"], folder)[0])
        rows = {name: (statistics.median(s for s, _ in got), int(statistics.median(m for _, m in got)))
                for name, got in runs.items()}
        contents = 3 * args.inputs
        print(f"\n1. harness run, {args.inputs:,} texts × 3 cells ({contents:,} contents), medians of {args.repeat}")
        print("| inputs from | CPU s | contents/s | peak RSS MB |\n|---|---:|---:|---:|")
        for name, (sec, rss) in rows.items():
            print(f"| {name} | {sec:.2f} | {contents / sec:,.0f} | {rss} |")
        print(f"inline / CSV: {rows['inline'][0] / rows['csv'][0]:.2f}× the CPU (goal ≤ 1.5×), "
              f"{rows['inline'][1]} MB (goal < 150 MB)")
        validate = {name: statistics.median(got) for name, got in checks.items()}
        print(f"harness validate, the same specs: CSV {validate['csv']:.2f} s, inline {validate['inline']:.2f} s "
              f"CPU → inline / CSV {validate['inline'] / validate['csv']:.2f}× (goal < 2×)")

        # 2. yamlpos.load, C vs pure
        make(folder, args.yaml_inputs)
        doc_text = (folder / "inline.yaml").read_text(encoding="utf-8")
        c_sec = cpu(lambda: yamlpos.load(doc_text, pure=False), 2)
        pure_sec = cpu(lambda: yamlpos.load(doc_text, pure=True))
        print(f"\n2. yamlpos.load, {args.yaml_inputs:,} inline inputs: libyaml {c_sec:.3f} s, "
              f"pure Python {pure_sec:.3f} s → {pure_sec / c_sec:.1f}× faster")

        # 3. the schema check per input
        doc, _ = yamlpos.load(doc_text)
        checker = schemafast.Checker(spec_mod.schema_documents())
        quick = cpu(lambda: checker.valid(doc, spec_mod.SPEC_SCHEMA), 3)
        import jsonschema

        schema, registry = spec_mod.load_schemas()
        full = jsonschema.Draft202012Validator(schema, registry=registry)
        slow = cpu(lambda: list(full.iter_errors(doc)))
        n = args.yaml_inputs
        print(f"\n3. schema check per inline input: quick check {quick / n * 1e6:.2f} µs, "
              f"jsonschema {slow / n * 1e6:.1f} µs → {slow / quick:.0f}× less")

        # 4. one-shot process start
        (folder / "one.yaml").write_text("version: 1\nname: one\ninputs: [{id: a, text: a cat}]\n", encoding="utf-8")
        starts = {
            "python -c pass": [py, "-c", "pass"],
            "harness prepare --text": [py, "-m", "harness", "prepare", "--text", "a cat", "--output", "req.json"],
            "harness validate (1 input)": [py, "-m", "harness", "validate", "one.yaml"],
            "harness validate specs/quickstart.yaml": [py, "-m", "harness", "validate",
                                                       str(ROOT / "specs" / "quickstart.yaml")],
        }
        print(f"\n4. one-shot process start, best of {args.starts}")
        print("| command | CPU ms | wall ms |\n|---|---:|---:|")
        for label, cmd in starts.items():
            child(cmd, folder)                      # writes the bytecode cache
            best_cpu = best_wall = float("inf")
            for _ in range(args.starts):
                t0 = time.perf_counter()
                sec, _ = child(cmd, folder)
                best_wall = min(best_wall, time.perf_counter() - t0)
                best_cpu = min(best_cpu, sec)
            print(f"| {label} | {best_cpu * 1000:.0f} | {best_wall * 1000:.0f} |")


if __name__ == "__main__":
    main()
