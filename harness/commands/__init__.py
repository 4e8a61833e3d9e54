"""Sub-commands, discovered by harness.cli: one module each."""

from __future__ import annotations

import argparse
from pathlib import Path

from harness.errors import ExitCode


def _folder(value: str) -> Path:
    path = Path(value).expanduser()
    if not path.is_dir() and not path.is_file():   # a single file: a credential file read on purpose
        raise argparse.ArgumentTypeError(f"{value!r} is not a folder or a file")
    return path.resolve()


def add_allow_path(parser) -> None:
    """`--allow-path DIR` (repeatable): the commands that read a spec's input files share it."""
    parser.add_argument("--allow-path", action="append", default=[], type=_folder, metavar="DIR",
                        dest="allow_paths",
                        help="also read input files (images, CSV/JSONL sets) from DIR (or the one file DIR names); "
                             "by default they must lie in the spec's project: the git work tree holding the spec, "
                             "else the spec's folder (repeatable). Also what lets a spec read a well-known "
                             "credential file (.netrc, .env, *.pem, .ssh/, ...); nothing reads a git directory")


def add_allow_host(parser: argparse.ArgumentParser) -> None:
    """`--allow-host HOST[:PORT]`, shared by the commands that check a spec's endpoints."""
    from harness.providers.credentials import ALLOW_ENV, parse_host

    def host(value: str) -> str:
        try:
            parse_host(value)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
        return value

    parser.add_argument("--allow-host", action="append", default=[], type=host, metavar="HOST[:PORT]",
                        help="a host the spec's endpoint/base_url may send a credential to (repeatable; also "
                             f"${ALLOW_ENV}, comma-separated). Without it keys go only to the official "
                             "DashScope hosts, --base-url and $DASHSCOPE_HTTP_BASE_URL; in CI mode the "
                             "inputs too (loopback aside), key or not")
    parser.add_argument("--trusted-hosts-only", action="store_true", default=None,
                        help="CI mode whatever the environment says: every send, key or not, goes only to the "
                             "official hosts, loopback, --base-url, $DASHSCOPE_HTTP_BASE_URL, --allow-host and "
                             f"${ALLOW_ENV} (on by itself when $CI is true; for Jenkins, which sets no CI, this "
                             "or HARNESS_CI=1; HARNESS_CI=0 turns CI mode off)")


def host_grants(args):
    """What `add_allow_host`'s flags allow, as one value every stage passes on (`HostGrants`)."""
    from harness.providers.credentials import HostGrants

    return HostGrants(args.allow_host, trusted_only=bool(args.trusted_hosts_only))


def add_max_payload(parser) -> None:
    """`--max-payload-bytes N`: the bound on all request bodies of a run, set outside the spec."""
    from harness.commands.flags import number
    from harness.plan.build import DEFAULT_MAX_PAYLOAD, MAX_PAYLOAD_ENV

    parser.add_argument("--max-payload-bytes", type=number(int, minimum=1), metavar="N", dest="max_payload",
                        help=f"refuse a spec whose request bodies would take more than N bytes in all (default "
                             f"${MAX_PAYLOAD_ENV}, else {DEFAULT_MAX_PAYLOAD >> 30} GiB); a spec cannot raise it")


def add_filters(parser, verb: str = "plan") -> None:
    """`--model`, `--dimension`, `--cell` (repeatable globs): a slice of the spec's cells, without editing it."""
    for flag, what in (("model", "model name"), ("dimension", "dimension"), ("cell", "cell id")):
        parser.add_argument(f"--{flag}", action="append", default=[], metavar="GLOB", dest=f"filter_{flag}",
                            help=f"{verb} only the cells whose {what} matches GLOB (shell-style: *, ?, [..]; "
                                 "repeatable: any may match; all flags given must match; none matching: exit 2)")


def cell_filter(args):
    """The CellFilter of `add_filters`' flags (empty when none is given)."""
    from harness.plan.cells import CellFilter

    return CellFilter(tuple(args.filter_model), tuple(args.filter_dimension), tuple(args.filter_cell))


def verified_folder(value: str, *, vouched: str, key_check=None) -> Path:
    """The output folder a command vouches for (`sign`, `attest`): refused when it is not one (exit 2)
    and when it does not verify (its findings printed, exit 5, nothing written); `key_check` runs
    between the two, so a key that cannot sign fails before the folder is read."""
    from harness.audit.verify.checker import verify_folder
    from harness.audit.verify.reporter import render_report
    from harness.errors import MismatchError, Problem, UsageError

    folder = Path(value)
    if not (folder / "manifest.json").is_file():
        raise UsageError(Problem(f"{folder} is not an output folder (no manifest.json)",
                                 hint="give the output folder of a run, e.g. output/<spec name>"))
    if key_check is not None:
        key_check()
    report = verify_folder(folder)
    if not report.ok:
        print(render_report(report))
        raise MismatchError(Problem(f"{folder} does not verify, so it is not {vouched}"))
    return folder


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


def exit_for(failed: set[str], selected: set[str]) -> ExitCode:
    """The exit code of a run (or a merged one) whose failure categories are `failed`: the most serious
    one `--fail-on` selected, else 0."""
    for name, code in SEVERITY:
        if name in failed and name in selected:
            return code
    return ExitCode.OK
