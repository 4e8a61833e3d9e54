"""harness verify OUTPUT_DIR: re-hash the evidence and re-derive the payloads from the spec."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from harness.commands import add_allow_path, add_max_payload
from harness.errors import ExitCode, HarnessError, Problem

NAME = "verify"
HELP = "re-derive every payload and re-hash every file of an output folder; exit 5 on any difference"
ORDER = 60


def add_parser(sub):
    p = sub.add_parser(NAME, help=HELP, description=HELP + ". Names each file that is missing, extra or "
                       "changed, a spec or local input that changed since the run, and a report that disagrees "
                       "with validate.txt or the manifest digest. Works on a copy moved to another path or machine.",
                       epilog="exit codes: 0 verified · 5 mismatch (VERIFY_MISMATCH) · 2 no such folder")
    p.add_argument("folder", metavar="OUTPUT_DIR", help="an output folder written by `harness run`")
    p.add_argument("--spec-dir", metavar="DIR", help="folder the spec's relative input paths start from, when the "
                   "output folder was moved away from the spec (default: found via the manifest)")
    p.add_argument("--strict", action="store_true", help="also fail when something cannot be re-derived here "
                   "(e.g. a local input image is not available)")
    p.add_argument("--json", action="store_true", help="print the findings as JSON")
    add_max_payload(p)
    add_allow_path(p)   # the same folders the run was given: the manifest records no host paths
    return p


def run(args) -> int:
    from harness.verify import render_report, verify_folder

    folder = Path(args.folder)
    if not folder.is_dir():
        raise HarnessError(Problem(f"no such folder: {folder}", hint="give the output folder of a run, "
                                   "e.g. output/<spec name>"), ExitCode.USAGE)
    report = verify_folder(folder, spec_dir=args.spec_dir, strict=args.strict,
                           allow_paths=args.allow_paths, max_payload=args.max_payload)
    if args.json:
        sys.stdout.write(json.dumps(report.as_dict(), indent=2, ensure_ascii=False) + "\n")
    else:
        print(render_report(report))
    return int(ExitCode.OK if report.ok else ExitCode.VERIFY_MISMATCH)
