"""Same evidence as a baseline checkout: every example spec planned offline by both, compared.

Issue 14's "byte-identical" promise, checked against another checkout of the harness (a commit
before the performance work) in its own venv. For each spec in `specs/` that both checkouts
ship, `harness run SPEC` (offline) runs in each, and the script prints:

- whether every request body of every cell is byte-identical, whichever payload layout each
  checkout writes (one file per request before evidence format 3, one requests.jsonl per cell
  from it), whether the payload indexes are, which other files differ, and whether the two
  folders hold the same other file names;
- which manifest fields differ, with their values when short (the manifest digest covers the
  whole manifest, so any fact the newer harness records moves it; the payload bytes must not).

    python bench/same_evidence.py --baseline /path/to/old-checkout/.venv/bin/python

Exit 1 when a request body differs.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run(python: str, checkout: Path, spec: Path, out: Path) -> Path:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DASHSCOPE_", "ALIBABA_CLOUD_"))}
    proc = subprocess.run([python, "-m", "harness", "run", str(spec), "--output", str(out), "--quiet"],
                          cwd=checkout, env=env, capture_output=True, text=True, timeout=600)
    if proc.returncode not in (0, 1):
        raise SystemExit(f"{python} run {spec.name} exited {proc.returncode}:\n{proc.stderr[-2000:]}")
    (folder,) = [p for p in out.iterdir() if p.is_dir()]
    return folder


def bodies(folder: Path) -> dict[str, list[bytes]]:
    """Each cell's request bodies in request order, whichever payload layout the folder has: one
    requests.jsonl per cell (evidence format 3) or one file per request named by the index."""
    out = {}
    for index in sorted((folder / "payloads").glob("*/index.jsonl")):
        cell = index.parent
        if (cell / "requests.jsonl").is_file():
            out[cell.name] = (cell / "requests.jsonl").read_bytes().split(b"\n")[:-1]
        else:
            names = [json.loads(line)["file"] for line in index.read_text().splitlines() if line.strip()]
            out[cell.name] = [(cell / name).read_bytes() for name in names]
    return out


def files(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def differing(a: object, b: object, at: str = "") -> list[tuple[str, object, object]]:
    """(path, old value, new value) where two JSON values differ, paths as a.b[2].c; the file table
    is left to the byte comparison."""
    if isinstance(a, dict) and isinstance(b, dict):
        return [d for k in sorted(set(a) | set(b)) if not (at == "" and k == "files")
                for d in differing(a.get(k), b.get(k), f"{at}.{k}" if at else k)]
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        return [d for i, (x, y) in enumerate(zip(a, b)) for d in differing(x, y, f"{at}[{i}]")]
    return [] if a == b else [(at, a, b)]


def short(v: object) -> str:
    text = json.dumps(v, ensure_ascii=False)
    return text if len(text) <= 60 else text[:57] + "..."


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--baseline", required=True, help="python of the baseline checkout's venv (its harness)")
    ap.add_argument("--baseline-root", type=Path, help="the baseline checkout (default: two levels above its venv)")
    args = ap.parse_args()
    # not resolve(): the venv python is a symlink
    base_root = args.baseline_root or Path(args.baseline).absolute().parents[2]
    specs = sorted(p.name for p in (ROOT / "specs").glob("*.yaml") if (base_root / "specs" / p.name).is_file())
    bad = 0
    # each output folder at the same place inside its checkout, so the spec path the manifest
    # records (relative to the folder) is the same in both
    outs = [base_root / "bench" / "out" / "same-evidence", ROOT / "bench" / "out" / "same-evidence"]
    try:
        for name in specs:
            old = run(args.baseline, base_root, base_root / "specs" / name, outs[0] / name)
            new = run(sys.executable, ROOT, ROOT / "specs" / name, outs[1] / name)
            a, b = files(old), files(new)
            body_a, body_b = bodies(old), bodies(new)
            same = body_a == body_b
            bad += not same
            count = sum(map(len, body_b.values()))
            print(f"\n{name}: {count} request bodies in {len(body_b)} cells, "
                  f"{'byte-identical' if same else 'DIFFERENT'}")
            index = [k for k in set(a) & set(b) if k.endswith("/index.jsonl")]
            print(f"  payload indexes: {'identical' if all(a[k] == b[k] for k in index) else 'DIFFERENT'}")
            other = sorted(k for k in set(a) & set(b) if not k.startswith("payloads/") and a[k] != b[k])
            print(f"  other files that differ: {', '.join(other) or 'none'}")
            only = sorted(k for k in set(a) ^ set(b) if not k.startswith("payloads/"))
            if only:
                print(f"  files in one folder only: {', '.join(only)}")
            ma, mb = json.loads(a["manifest.json"]), json.loads(b["manifest.json"])
            print(f"  manifest digest {'same' if ma.get('digest') == mb.get('digest') else 'differs'}")
            for path, va, vb in differing(ma, mb):
                if path != "digest" and not path.startswith("environment"):
                    print(f"  manifest.{path}: {short(va)} -> {short(vb)}")
    finally:
        for out in outs:
            shutil.rmtree(out, ignore_errors=True)
    print(f"\n{len(specs)} specs; payloads {'identical in all' if not bad else f'differ in {bad}'}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
