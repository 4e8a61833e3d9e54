"""`harness export`: load an executed run's vectors into Milvus Lite (a .db path) or a Milvus server.

Parsing and exit codes only; the work is `harness.export.run`. The folder must verify first; after
loading, the export checks join the folder's evidence: export.json, validate.txt (export lines
before the final PASS/FAIL), every report and manifest.json (`harness.report.finalize`).
"""

from __future__ import annotations

import argparse
import sys
import time

from harness.commands import flags
from harness.errors import ExitCode, HarnessError
from harness.evidence import COMMITTED
from harness.words import counted

NAME = "export"
HELP = "load an executed run's vectors into Milvus Lite (a .db file) or a Milvus server"

DESCRIPTION = """\
Load the vectors of an executed run into Milvus, one collection per model and dimension, then
count them and run a smoke search (each query input should find itself at rank 1). The results
go into the output folder: export.json, new lines in validate.txt, refreshed reports (summary.json,
junit.xml, report.md, report.html) and manifest.json. A folder that does not pass `harness verify`
is refused (exit 5) before anything is loaded or written. The folder's new files are written
beside it and swapped in whole, as `harness run` does: Ctrl-C (exit 130) or a kill before the swap
leaves the folder as it was, and it still verifies.

--to PATH.db           embedded Milvus Lite (no server; a folder is created at PATH.db)
--to http://host:19530 a Milvus standalone server or cluster (with --token-env or --token)

Exporting a different model or dimension into an existing collection is refused: one model and
one dimension per index. Re-exporting the same run is idempotent (upsert on a key derived from
input id + model + dimension).
"""

EPILOG = """\
exit codes: 0 exported and validate.txt ends in PASS; 1 exported but validate.txt ends in FAIL
(an export check or an earlier check failed); 2 bad arguments, a folder that was not executed,
or a refused collection; 4 Milvus unreachable or failing; 5 the folder does not verify (its
files disagree with its manifest or with what its spec re-derives).
examples:
  harness export output/cat-retrieval --to vectors.db
  harness export output/cat-retrieval --to http://127.0.0.1:19530 --token-env MILVUS_TOKEN \\
      --collection 'cats_{cell}' --top-k 10
"""


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(NAME, help=HELP, description=DESCRIPTION, epilog=EPILOG,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    _add_arguments(p)
    return p


def _add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("output_dir", metavar="OUTPUT_DIR", help="the folder an executed `harness run` wrote")
    p.add_argument("--to", required=True, metavar="URI",
                   help="Milvus Lite database path ending in .db, or http(s)://host:port of a Milvus server")
    p.add_argument("--collection", metavar="NAME",
                   help="collection name (default: the cell id, sanitised). With several cells a plain "
                        "NAME becomes the prefix NAME_<cell>; or place {cell} yourself, e.g. 'proj_{cell}_v2'")
    tok = p.add_mutually_exclusive_group()
    tok.add_argument("--token-env", metavar="VAR",
                     help="environment variable holding the Milvus token (user:password or API key)")
    tok.add_argument("--token", metavar="T",
                     help="the Milvus token itself (visible in the process list; prefer --token-env)")
    p.add_argument("--top-k", type=flags.setting(flags.TOP_K), default=5, metavar="K",
                   help=f"hits per smoke-search query ({flags.range_of(flags.TOP_K)}; default 5)")
    p.add_argument("--cell", action="append", metavar="CELL_ID", dest="cells",
                   help="export only this cell (repeatable; default: every executed cell)")
    p.add_argument("--query", action="append", metavar="INPUT_ID", dest="queries",
                   help="smoke-search this input (repeatable; default: the run's text inputs, up to 20)")


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from harness.export.run import EXPORT_FILE, export_folder
    from harness.export.target import token_from_env

    folder = Path(args.output_dir)
    try:
        token = token_from_env(args.token_env) if args.token_env else args.token
        started = time.perf_counter()
        results, every = export_folder(folder, to=args.to, collection=args.collection, token=token,
                                       top_k=args.top_k, queries=args.queries, cells=args.cells,
                                       warn=lambda text: print(f"warning: {text}", file=sys.stderr))
        elapsed = time.perf_counter() - started
        passed = all(r.passed for r in every)
    except HarnessError as e:
        for problem in e.problems:
            print(problem.render(), file=sys.stderr)
        return int(e.exit_code)
    except KeyboardInterrupt:   # the rewrite is staged and swapped in whole: in full, or not at all
        done = any(path == folder for path, _ in COMMITTED)
        print(f"interrupted after the export was complete: {folder} was rewritten in full" if done else
              "interrupted: the output folder was not changed; exporting again upserts the same rows",
              file=sys.stderr)
        return int(ExitCode.INTERRUPTED)

    for r in results:
        print(r.line())
    vectors = sum(r.data.get("vectors", 0) for r in results if r.name == "export")
    rate = f" ({vectors / elapsed:,.0f} vectors/s)" if elapsed > 0 and vectors else ""
    print(f"exported {counted(vectors, 'vector')} in {elapsed:.1f}s{rate}; wrote {folder / EXPORT_FILE}")
    export_ok = all(r.passed for r in results)
    if passed:
        print("validate.txt: PASS")
        return int(ExitCode.OK)
    print("validate.txt: FAIL" + ("" if not export_ok else " (an earlier check failed; the export itself passed)"))
    return int(ExitCode.CHECKS_FAILED)


def main(argv: list[str] | None = None) -> int:
    """`python -m harness.commands.export` — the same command without the umbrella CLI."""
    p = argparse.ArgumentParser(prog="harness export", description=DESCRIPTION, epilog=EPILOG,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    _add_arguments(p)
    return run(p.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
