"""harness run SPEC: write the payload files and the evidence; with --execute, send them too."""

from __future__ import annotations

import argparse

from rich.markup import escape


from harness.commands import add_allow_host
from harness.errors import ExitCode
from harness.report.terminal import make_console, print_cells
from harness.runner import output_base, run as run_pipeline

NAME = "run"
HELP = "write payloads and evidence to output/<name>/ (and execute them with --execute)"
ORDER = 30

# Which failure categories give a non-zero exit code; the most serious selected one wins.
# validate.txt always says PASS or FAIL, whatever is chosen here.
SEVERITY = [("provider", ExitCode.PROVIDER_ERROR), ("verify", ExitCode.VERIFY_MISMATCH),
            ("checks", ExitCode.CHECKS_FAILED)]
CATEGORIES = [name for name, _ in SEVERITY]


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
                   "the run goes to DIR/<spec name>/")
    p.add_argument("--execute", action="store_true", help="send the requests and record the vectors")
    p.add_argument("--base-url", help="DashScope native API base URL (overrides the spec, "
                   "$DASHSCOPE_HTTP_BASE_URL and the region), e.g. http://127.0.0.1:8000/api/v1")
    add_allow_host(p)
    g = p.add_argument_group("execution (with --execute; override the spec's `execution:`)")
    g.add_argument("--concurrency", type=int, help="requests in flight at once (default 8)")
    g.add_argument("--rpm", type=int, help="requests per minute per model (default: the model's quota)")
    g.add_argument("--tpm", type=int, help="input tokens per minute per model (default: the model's quota)")
    g.add_argument("--timeout", type=float, help="seconds to wait for one response (default 60)")
    g.add_argument("--max-attempts", type=int, help="attempts per request, retries included (default 5)")
    g.add_argument("--no-cache", action="store_true", help="neither read nor write the response cache")
    g.add_argument("--refresh", action="store_true", help="ignore cached responses but store the new ones")
    g.add_argument("--workspace", help="DashScope workspace id (header X-DashScope-WorkSpace; "
                   "default $DASHSCOPE_WORKSPACE)")
    p.add_argument("--fail-on", type=fail_on, default="checks,provider", metavar="WHAT",
                   help="which failures give a non-zero exit code: a comma list of checks (1), provider (4), "
                        "verify (5: re-verify the folder just written, which costs a second pass); "
                        "or any (all three) or never. Default: checks,provider")
    p.add_argument("--quiet", action="store_true", help="print only the verdict line")
    return p


def run(args) -> int:
    console = make_console(quiet=args.quiet)
    options = {"concurrency": args.concurrency, "rpm": args.rpm, "tpm": args.tpm, "timeout": args.timeout,
               "max_attempts": args.max_attempts, "quiet": args.quiet or None,
               "use_cache": False if args.no_cache else None, "refresh": args.refresh or None,
               "workspace": args.workspace}
    outcome = run_pipeline(args.spec, base=output_base(args.output), execute=args.execute,
                           execute_options=options, base_url=args.base_url, allow_hosts=args.allow_host,
                           console=console)
    m = outcome.manifest
    print_cells(console, m["cells"], f"{m['spec']['name']}: {m['inputs']['count']} inputs × {len(m['cells'])} cells")
    skipped: dict[str, list[str]] = {}
    for r in outcome.results:
        if not r.passed:
            console.print(f"[red]{escape(r.line())}[/]", highlight=False)
        elif r.kind == "execution" and r.detail.startswith("not executed"):
            skipped.setdefault(r.detail.split(" (optional")[0], []).append(r.cell or "?")
    for reason, cells in skipped.items():
        console.print(f"[yellow]{escape(reason)}[/]: {len(cells)} cell(s) ({', '.join(cells)})", highlight=False)
    failed = set(outcome.failed)
    if "verify" in args.fail_on:
        from harness.verify import render_report, verify_folder
        report = verify_folder(outcome.folder)
        if not report.ok:
            failed.add("verify")
            console.print(escape(render_report(report)), highlight=False)
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
