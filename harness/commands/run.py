"""harness run SPEC: write the payload files and the evidence; with --execute, send them too."""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.markup import escape

from harness.commands import (
    add_allow_host,
    add_allow_path,
    add_filters,
    add_max_payload,
    cell_filter,
    flags,
    host_grants,
)
from harness.errors import ExitCode, Problem, UsageError
from harness.folder import RunReader
from harness.providers.credentials import unsendable
from harness.report.terminal import RESULT_COLUMNS, make_console, print_cells, print_table, result_rows
from harness.runner import output_base
from harness.runner import run as run_pipeline

NAME = "run"
HELP = "write payloads and evidence to output/<name>/ (and execute them with --execute)"
ORDER = 30

# Which failure categories give a non-zero exit code; the most serious selected one wins.
# validate.txt always says PASS or FAIL, whatever is chosen here. "nothing-executed" comes last:
# a CI job may accept 6 (a fork's pull request has no key), so any real failure must outrank it.
SEVERITY = [("provider", ExitCode.PROVIDER_ERROR), ("verify", ExitCode.VERIFY_MISMATCH),
            ("checks", ExitCode.CHECKS_FAILED), ("nothing-executed", ExitCode.NOTHING_EXECUTED)]
CATEGORIES = [name for name, _ in SEVERITY]
DEFAULT_FAIL_ON = "checks,provider,nothing-executed"


def fail_on(value: str) -> set[str]:
    parts = {p.strip() for p in value.split(",") if p.strip()}
    if parts == {"any"}:
        return set(CATEGORIES)
    if parts == {"never"}:
        return set()
    unknown = parts - set(CATEGORIES)
    if unknown or not parts:
        raise argparse.ArgumentTypeError(f"expected any, never, or a comma list of {', '.join(CATEGORIES)}")
    return parts


def add_parser(sub):
    p = sub.add_parser(NAME, help=HELP, description=HELP + ". Without --execute nothing touches the network "
                       "and no API key is needed.")
    p.add_argument("spec", metavar="SPEC")
    p.add_argument("--output", metavar="DIR", help="base output folder (default: $OUTPUT_DIR or ./output); "
                   "the run goes to DIR/<spec name>/, which it replaces only if that holds an earlier run "
                   "(else exit 2)")
    p.add_argument("--execute", action="store_true", help="send the requests and record the vectors")
    p.add_argument("--base-url", help="DashScope native API base URL (overrides the spec, "
                   "$DASHSCOPE_HTTP_BASE_URL and the region), e.g. http://127.0.0.1:8000/api/v1")
    add_allow_host(p)
    g = p.add_argument_group("execution (with --execute; override the spec's `execution:`)")
    for flag, key, text in (
            ("--concurrency", "concurrency", "requests in flight at once (%s; default 8)"),
            ("--rpm", "rpm", "requests per minute per model (%s; default: the model's quota, or adapting "
                                 "to 429s when none is published)"),
            ("--tpm", "tpm", "input tokens per minute per model (%s; default: the model's quota)"),
            ("--timeout", "timeout", "seconds to wait for one response (%s; default 60)"),
            ("--max-attempts", "max_attempts", "attempts per request, retries included (%s; default 5)")):
        pointer = flags.EXECUTION + key
        g.add_argument(flag, type=flags.setting(pointer), metavar="N",
                       help=text % flags.range_of(pointer).replace("%", "%%"))
    g.add_argument("--no-cache", action="store_true", help="neither read nor write the response cache")
    g.add_argument("--refresh", action="store_true", help="ignore cached responses but store the new ones")
    g.add_argument("--workspace", help="DashScope workspace id (header X-DashScope-WorkSpace; "
                   "default $DASHSCOPE_WORKSPACE, else $DASHSCOPE_WORKSPACE_ID)")
    g.add_argument("--require-executed", action="store_true",
                   help="with --execute (else exit 2), every cell must execute: one that does not (e.g. no API key) "
                        "is a FAIL line and exit code 4, as with the spec's `execution.required`; without this flag "
                        "it is a `skip` line, and a run in which no cell executed is FAIL with exit code 6")
    p.add_argument("--fail-on", type=fail_on, default=DEFAULT_FAIL_ON, metavar="WHAT",
                   help="which failures give a non-zero exit code: a comma list of checks (1), provider (4), "
                        "verify (5: re-verify the folder just written, which costs a second pass), "
                        "nothing-executed (6: --execute but no cell executed); or any (all four) or never. "
                        f"The most serious wins, in the order {', '.join(CATEGORIES)}. Default: {DEFAULT_FAIL_ON}")
    p.add_argument("--sign", metavar="KEY", help="sign the manifest digest with this SSH key (ssh-keygen -Y sign) "
                   "into manifest.sig; `harness verify --allowed-signers FILE` checks it")
    p.add_argument("--quiet", action="store_true", help="print only the verdict line")
    add_allow_path(p)
    add_max_payload(p)
    add_filters(p, "write and run")
    return p


def run(args) -> int:
    if args.require_executed and not args.execute:   # a gate that silently gates nothing
        raise UsageError(Problem("--require-executed needs --execute: without it no cell is executed, "
                                   "so there is nothing to require",
                                   hint="add --execute, or drop --require-executed"))
    bad = unsendable(args.workspace) if args.workspace else None
    if bad:
        raise UsageError(Problem(f"--workspace holds {bad}, which an HTTP header cannot carry",
                                   hint="give the workspace id (printable ASCII)"))
    if args.sign:
        from harness.audit.signing import check_key
        check_key(args.sign)          # before anything is spent
    console = make_console(quiet=args.quiet)
    options = {"concurrency": args.concurrency, "rpm": args.rpm, "tpm": args.tpm, "timeout": args.timeout,
               "max_attempts": args.max_attempts, "quiet": args.quiet or None,
               "use_cache": False if args.no_cache else None, "refresh": args.refresh or None,
               "workspace": args.workspace}
    outcome = run_pipeline(args.spec, base=output_base(args.output), execute=args.execute,
                           execute_options=options, base_url=args.base_url, allow_hosts=host_grants(args),
                           console=console, require_executed=args.require_executed, allow_paths=args.allow_paths,
                           max_payload=args.max_payload, sign_key=args.sign,
                           cell_filter=cell_filter(args))
    m = outcome.manifest
    print_cells(console, m["cells"], f"{m['spec']['name']}: {m['inputs']['count']} inputs × {len(m['cells'])} cells")
    for r in outcome.results:
        if r.status == "fail":
            console.print(f"[red]{escape(r.line())}[/]", highlight=False)
        elif r.status == "warn":
            console.print(f"[yellow]{escape(r.line())}[/]", highlight=False)
    execution = RunReader(outcome.folder).execution() if args.execute else None
    if execution is not None:
        print_table(console, "results (tokens and cost: actual where usage was reported, else est.)",
                    RESULT_COLUMNS, result_rows(m["cells"], execution, outcome.results))
        # Why cells were skipped, each reason in full once (the table gives it briefly).
        skipped: dict[str, list[str]] = {}
        for r in outcome.results:
            if r.status == "skip" and r.kind == "execution":
                skipped.setdefault((r.data or {}).get("reason") or "not executed", []).append(r.cell or "?")
        for reason, cells in skipped.items():
            console.print(f"[yellow]not executed: {escape(reason)}[/]: {len(cells)} cell(s) ({', '.join(cells)})",
                          highlight=False)
    failed = set(outcome.failed)
    if "verify" in args.fail_on:
        from harness.audit.verify.checker import verify_folder
        from harness.audit.verify.reporter import render_report
        # the root of the paths the folder records is the run's own spec folder, never the folder's say
        spec_dir = Path(args.spec).resolve().parent if Path(args.spec).is_file() else None
        report = verify_folder(outcome.folder, spec_dir=spec_dir, allow_paths=args.allow_paths,
                               max_payload=args.max_payload)
        if not report.ok:
            failed.add("verify")
            console.print(escape(render_report(report)), highlight=False)
    if outcome.signed_by:
        console.print(f"signed: {escape(str(outcome.folder))}/manifest.sig ({escape(outcome.signed_by)})",
                      highlight=False)
    verdict = "PASS" if outcome.passed and not failed else "FAIL"
    line = f"{verdict}: {outcome.folder}/validate.txt"
    if args.quiet:
        print(line)
    else:
        console.print(f"[{'green' if verdict == 'PASS' else 'red'}]{line}[/]", highlight=False)
    for name, code in SEVERITY:
        if name in failed and name in args.fail_on:
            return int(code)
    return int(ExitCode.OK)
