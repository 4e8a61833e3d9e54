"""harness validate SPEC...: check specs against the schema, the catalog and their inputs."""

from __future__ import annotations

import dataclasses
import sys

from harness.commands import add_allow_host, add_allow_path, add_filters, add_max_payload, cell_filter, host_grants
from harness.errors import ExitCode, HarnessError
from harness.evidence import canonical_json
from harness.plan.build import load_plan
from harness.plan.write import counting
from harness.words import counted

NAME = "validate"
HELP = "check one or more specs (schema, model catalog, inputs); writes nothing"
ORDER = 10


def add_parser(sub):
    p = sub.add_parser(NAME, help=HELP, description=HELP + ". Reports every mistake of each spec at once "
                       "(a YAML syntax error: the first only, with its source line and a caret under the column), "
                       "each as file:line:col: message (hint), in file order; "
                       "exit 3 if any spec is invalid.")
    p.add_argument("specs", nargs="+", metavar="SPEC", help="spec files (YAML)")
    p.add_argument("--base-url", help="DashScope native API base URL to check against (as `run` would use)")
    add_allow_path(p)
    add_max_payload(p)
    add_filters(p, "check")
    add_allow_host(p)
    p.add_argument("--json", action="store_true",
                   help="print one JSON document on stdout instead: per spec its problems (file, line, col, "
                        "message, hint, severity, source: the line and caret of a YAML syntax error) and "
                        "verdict; the exit code is the same")
    return p


def run(args) -> int:
    worst = ExitCode.OK
    report = []   # for --json: one entry per spec
    for path in args.specs:
        entry = {"spec": path, "valid": True}
        try:
            with load_plan(path, base_url=args.base_url, allow_paths=args.allow_paths, max_payload=args.max_payload,
                           allow_hosts=host_grants(args), cell_filter=cell_filter(args), writer=counting) as plan:
                entry.update(cells=len(plan.cells), inputs=plan.input_count, problems=plan.warnings)
                if not args.json:
                    for w in plan.warnings:
                        print(w.render(), file=sys.stderr)
                    print(f"{path}: ok ({counted(len(plan.cells), 'cell')}, {counted(plan.input_count, 'input', ',')})")
        except HarnessError as e:
            entry.update(valid=False, exit_code=int(e.exit_code), problems=e.problems)
            if not args.json:
                for problem in e.problems:
                    print(problem.render(), file=sys.stderr)
            worst = max(worst, e.exit_code)
        entry["problems"] = [dataclasses.asdict(p) for p in entry["problems"]]
        report.append(entry)
    if args.json:
        sys.stdout.buffer.write(canonical_json({"valid": worst == ExitCode.OK, "exit_code": int(worst),
                                                "specs": report}, pretty=True))
    return int(worst)
