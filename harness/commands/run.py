"""harness run SPEC: write the payload files and the evidence; with --execute, send them too."""

from __future__ import annotations

from pathlib import Path

from rich.markup import escape

from harness.catalog.estimate import by_currency, money_totals
from harness.commands import (
    CATEGORIES,
    DEFAULT_FAIL_ON,
    add_allow_host,
    add_allow_path,
    add_filters,
    add_max_payload,
    cell_filter,
    exit_for,
    fail_on,
    flags,
    host_grants,
)
from harness.errors import Problem, UsageError
from harness.folder import RunReader
from harness.providers.credentials import unsendable
from harness.report import outcome
from harness.report.terminal import (
    make_console,
    print_cells,
    print_recommendation,
    print_table,
    result_columns,
    result_rows,
)
from harness.runner import output_base
from harness.runner import run as run_pipeline
from harness.words import counted

NAME = "run"
HELP = "write payloads and evidence to output/<name>/ (and execute them with --execute)"
ORDER = 30



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
    p.add_argument("--attest", action="store_true", help="write an in-toto attestation of the run folder "
                   "(attestation.intoto.json: every evidence file's sha256, the spec, inputs, models, verdict, "
                   "headline metrics; docs/attestation.md)")
    p.add_argument("--attest-key", metavar="KEY", help="sign the attestation with this unencrypted private key file "
                   "(OpenSSH or PEM; a DSSE envelope); implies --attest")
    p.add_argument("--max-cost", type=flags.amount, metavar="AMOUNT",
                   help="with --execute: refuse to send anything when the estimated cost of what the response "
                        "cache does not hold is above AMOUNT, in the spec's region's currency (exit 2)")
    p.add_argument("--quiet", action="store_true", help="print only the verdict line")
    p.add_argument("--verbose", action="store_true", help="print every FAIL and warn line (the disputed API "
                   "facts among them) and the full reason a cell was not executed; by default failures are "
                   "grouped by check and warnings counted (validate.txt holds every line)")
    add_allow_path(p)
    add_max_payload(p)
    add_filters(p, "write and run")
    return p


def run(args) -> int:
    if args.require_executed and not args.execute:   # a gate that silently gates nothing
        raise UsageError(Problem("--require-executed needs --execute: without it no cell is executed, "
                                   "so there is nothing to require",
                                   hint="add --execute, or drop --require-executed"))
    if args.max_cost is not None and not args.execute:
        raise UsageError(Problem("--max-cost needs --execute: without it nothing is sent, so nothing costs",
                                   hint="add --execute, or drop --max-cost"))
    bad = unsendable(args.workspace) if args.workspace else None
    if bad:
        raise UsageError(Problem(f"--workspace holds {bad}, which an HTTP header cannot carry",
                                   hint="give the workspace id (printable ASCII)"))
    if args.sign:
        from harness.audit.signing import check_key
        check_key(args.sign)          # before anything is spent
    if args.attest_key:
        from harness.audit.attest import load_private_key
        load_private_key(args.attest_key)   # before anything is spent
    console = make_console(quiet=args.quiet)
    options = {"concurrency": args.concurrency, "rpm": args.rpm, "tpm": args.tpm, "timeout": args.timeout,
               "max_attempts": args.max_attempts, "quiet": args.quiet or None,
               "use_cache": False if args.no_cache else None, "refresh": args.refresh or None,
               "workspace": args.workspace}

    def on_plan(body, pending) -> None:     # before the first request, as `terraform apply` shows its plan
        title = f"{body.spec['name']}: {counted(body.inputs['count'], 'input')} × {counted(len(body.cells), 'cell')}"
        print_cells(console, body.cells, title, edge=False)
        for line in joined(estimate_lines(body.cells, pending), console.width):
            console.print(escape(line), highlight=False)
        refuse_above(args.max_cost, pending)

    outcome = run_pipeline(args.spec, base=output_base(args.output), execute=args.execute,
                           execute_options=options, base_url=args.base_url, allow_hosts=host_grants(args),
                           console=console, require_executed=args.require_executed, allow_paths=args.allow_paths,
                           max_payload=args.max_payload, sign_key=args.sign, attest=args.attest,
                           attest_key=args.attest_key,
                           cell_filter=cell_filter(args), on_plan=on_plan)
    m = outcome.manifest
    execution = RunReader(outcome.folder).execution() if args.execute else None
    if execution is not None:
        print_table(console, "results (tokens, cost: actual if reported, else est.)",
                    result_columns(outcome.results), result_rows(m["cells"], execution, outcome.results), edge=False)
        print_recommendation(console, outcome.folder)
    for line in outcome_lines(outcome.results, args.verbose):
        style = "red" if line.startswith("FAIL") else "yellow"
        console.print(f"[{style}]{escape(line)}[/]", highlight=False)
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
    if outcome.attested:
        console.print(f"attested: {escape(str(outcome.folder))}/{escape(outcome.attested)}", highlight=False)
    if outcome.signed_by:
        console.print(f"signed: {escape(str(outcome.folder))}/manifest.sig ({escape(outcome.signed_by)})",
                      highlight=False)
    verdict = "PASS" if outcome.passed and not failed else "FAIL"
    if args.quiet:
        print(f"{verdict}: {outcome.folder}/validate.txt")
    else:
        for line in last_lines(verdict, outcome, execution, args.execute):
            colour = "green" if line.startswith("PASS") else "red" if line.startswith("FAIL") else None
            console.print(f"[{colour}]{escape(line)}[/]" if colour else escape(line), highlight=False)
    return int(exit_for(failed, args.fail_on))


def estimate_lines(cells: list[dict], pending: list | None) -> list[str]:
    """The plan's estimate in total and, when executing, what is left to send after the cache."""
    requests = sum(int(c.get("requests") or 0) for c in cells)
    billed = money_totals(c.get("estimated_cost") for c in cells)
    total = "estimated cost: " + (f"{counted(requests, 'request', ',')}, not billed" if billed == "nothing billed"
                                  else f"{billed} for {counted(requests, 'request', ',')}")
    if pending is None:
        return [total + " (nothing is sent without --execute)"]
    left = sum(p.left for p in pending)
    cached = sum(p.cached for p in pending)
    unsent = [p for p in pending if p.unsent]
    billed = money_totals(p.left_cost for p in pending if not p.unsent)
    line = "left to send after the cache: " + (
        "nothing" if not left else f"{counted(left, 'request', ',')}, not billed" if billed == "nothing billed"
        else f"{billed} for {counted(left, 'request', ',')}") + (f" ({cached:,} cached)" if cached else "")
    if unsent:
        line += f"; {counted(len(unsent), 'cell', ',')} not sent ({', '.join(sorted({p.unsent for p in unsent}))})"
    return [total, line]


def joined(lines: list[str], width: int) -> list[str]:
    """The estimate's lines as one when it fits the terminal's width."""
    one = "; ".join(lines)
    return [one] if len(one) <= width else lines


def refuse_above(max_cost: float | None, pending: list | None) -> None:
    """`--max-cost`: exit 2 before anything is sent when what is left to send would cost more, in any currency."""
    if max_cost is None or pending is None:
        return
    over = {k: v for k, v in by_currency(p.left_cost for p in pending if not p.unsent).items() if v > max_cost}
    if over:
        shown = {k: f"{v:.4f}" if float(f"{v:.4f}") > max_cost else f"{v:.6f}" for k, v in over.items()}
        raise UsageError(Problem(f"the run would cost about {' + '.join(f'{v} {k}' for k, v in shown.items())} "
                                   f"to send (what the cache does not hold), above --max-cost {max_cost:g}; "
                                   "nothing was sent",
                                   hint="run fewer cells (--model, --dimension, --cell) or raise --max-cost"))


def outcome_lines(results: list, verbose: bool) -> list[str]:
    """The run's problems, root cause first: failures grouped by check, skipped cells by reason, warnings counted."""
    return (outcome.grouped_failures(results, verbose) + outcome.not_executed(results, verbose)
            + outcome.warning_lines(results, verbose))


def last_lines(verdict: str, run, execution, executed: bool) -> list[str]:
    """Where the evidence is, and the verdict with its first cause ('FAIL: 2 cells could not execute: ...')."""
    validate = f"{run.folder}/validate.txt"
    if verdict == "PASS":
        return [f"evidence: {validate}", "PASS (dry run: nothing executed)"] if not executed else [f"PASS: {validate}"]
    cause = (outcome.could_not_execute(run.manifest["cells"], execution) or outcome.failed_checks(run.results)
             or outcome.no_cell_executed(run.results))
    return [f"evidence: {validate}", f"FAIL: {cause}"] if cause else [f"FAIL: {validate}"]
