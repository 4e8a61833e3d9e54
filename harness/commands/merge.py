"""harness merge RUN... --output DIR: shards of one spec (runs filtered by --cell) into one run folder."""

from __future__ import annotations

from pathlib import Path

from harness.commands import DEFAULT_FAIL_ON, add_allow_path, exit_for, fail_on
from harness.errors import ExitCode

NAME = "merge"
HELP = "merge the shards of one spec (runs filtered by --cell, e.g. one CI job per cell) into one run folder"
ORDER = 58


def add_parser(sub):
    p = sub.add_parser(NAME, help=HELP, description=HELP + ". The shards must agree on the spec, the inputs, "
                       "the catalog, the schema and the evidence format; each cell is taken from the shard that "
                       "ran it, the checks are evaluated again and the folder is finalized as `harness run` does, "
                       "so `harness verify` accepts it. See docs/ci.md.",
                       epilog="exit codes: 0 merged, PASS · 1 merged, a check failed · 4 merged, a cell's requests "
                              "had failed · 6 merged, no cell executed · 2 bad command line or output folder · "
                              "5 the shards disagree (the field is named) or hold one cell with different bytes "
                              "(the cell is named): nothing written. The spec's `export:` is not run: run "
                              "`harness export` on the merged folder.")
    p.add_argument("shards", nargs="+", metavar="RUN", help="a shard's output folder (output/<spec name>)")
    p.add_argument("--output", required=True, metavar="DIR",
                   help="where the merged run goes: DIR/<spec name>, replacing only an earlier run there; give "
                        "the --output the shards ran with, so the spec's recorded relative path still holds")
    p.add_argument("--spec-dir", metavar="DIR", help="the folder the spec's relative paths start from (a retrieval "
                   "check's qrels); default: beside the original spec, else the current folder")
    add_allow_path(p)
    return p


def run(args) -> int:
    from harness.audit.merge import merge
    from harness.folder.verdict import verdict

    outcome = merge([Path(s) for s in args.shards], Path(args.output), spec_dir=args.spec_dir,
                    allow_paths=args.allow_paths)
    taken = ", ".join(f"{cid} from {path}" for cid, path in outcome.cells.items())
    passed = verdict(outcome.results)
    print(f"merged {len(args.shards)} shards into {outcome.folder}: {taken}"
          + ("" if outcome.complete else " (not every cell of the spec: the folder is still a slice)"))
    print(f"{'PASS' if passed else 'FAIL'}: {outcome.folder / 'validate.txt'}")
    return int(exit_code(outcome.results))


def exit_code(results) -> ExitCode:
    """As `harness run` says it (its default --fail-on): a cell whose requests failed 4, a failed
    check 1, no cell executed 6, else 0."""
    failed = {"checks" if r.kind != "execution" else "nothing-executed" if r.name == "executed" else "provider"
              for r in results if r.status == "fail"}
    return exit_for(failed, fail_on(DEFAULT_FAIL_ON))
