"""harness verify OUTPUT_DIR: re-hash the evidence and re-derive the payloads from the spec; with
--allowed-signers, check who signed it; with --reexecute, send a sample again and compare vectors."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from harness.commands import (
    add_allow_host,
    add_allow_path,
    add_filters,
    add_max_payload,
    cell_filter,
    flags,
    host_grants,
)
from harness.errors import Problem, UsageError

NAME = "verify"
HELP = "re-derive every payload and re-hash every file of an output folder; exit 5 on any difference"
ORDER = 60


def _count(text: str) -> int | str:
    if text in ("all", "default"):    # "default": --reexecute without N (argparse passes its const here)
        return text
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: give a number of requests per cell, or all") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value}: at least 1 request per cell")
    return value


def _tolerance(text: str):
    from harness.audit.reexecute import Tolerance
    try:
        return Tolerance.parse(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _seed(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if not 0 <= value < 2 ** 32:
        raise argparse.ArgumentTypeError(f"{value} is outside 0..{2 ** 32 - 1}")
    return value


def add_parser(sub):
    p = sub.add_parser(NAME, help=HELP, description=HELP + ". Names each file that is missing, extra or "
                       "changed, a spec or local input that changed since the run, and a report that disagrees "
                       "with validate.txt or the manifest digest. Works on a copy moved to another path or machine. "
                       "Hashes stop accidents, not forgers: --reexecute proves the vectors come from the model, "
                       "--allowed-signers who vouches for the folder.",
                       epilog="exit codes: 0 verified · 5 mismatch (VERIFY_MISMATCH), a vector the model does not "
                              "give, or a signature that does not hold · 4 re-execution failed (provider, key, "
                              "network) · 2 no such folder or not a run folder, or the estimate is above "
                              "--max-cost (nothing sent)")
    p.add_argument("folder", metavar="OUTPUT_DIR", help="an output folder written by `harness run`")
    p.add_argument("--spec-dir", metavar="DIR", help="folder the spec's relative input paths start from, when the "
                   "output folder was moved away from the spec (default: the spec the manifest's relative path "
                   "leads to, looked for only inside the git work tree holding OUTPUT_DIR, else the current "
                   "folder: a path the folder records never leads verify elsewhere)")
    p.add_argument("--strict", action="store_true", help="also fail when something cannot be re-derived here "
                   "(e.g. a local input image is not available)")
    p.add_argument("--json", action="store_true", help="print the findings as JSON")
    p.add_argument("--hashes-only", action="store_true",
                   help="only check that every file has the sha256 the manifest recorded and the manifest its "
                        "digest (about as fast as hashing the files). Does NOT prove that the payloads follow from "
                        "the spec and local inputs, that those inputs are unchanged, that validate.txt follows from "
                        "the vectors, or that the reports agree with it: plain `harness verify` checks those")
    add_max_payload(p)
    add_allow_path(p)   # the same folders the run was given: the manifest records no host paths
    a = p.add_argument_group("audit")
    a.add_argument("--allowed-signers", metavar="FILE", help="check manifest.sig (made by `harness run --sign` or "
                   "`harness sign`) against these keys (OpenSSH allowed-signers format, as git uses) and say who "
                   "signed; an unsigned folder fails")
    a.add_argument("--attestation", metavar="FILE", help="check an in-toto attestation of the folder (`harness "
                   "attest`, `run --attest`): its subject must be the manifest's file table, and a DSSE envelope's "
                   "signature must hold for --key")
    a.add_argument("--key", metavar="PUB", help="with --attestation: the signer's public key (an OpenSSH .pub line "
                   "or PEM)")
    a.add_argument("--reexecute", nargs="?", const="default", type=_count, metavar="N",
                   help="send N requests per cell again, past the cache, and compare each vector with the stored "
                        "one by input id (default: every request of a local model, 5 per cell of a network provider; "
                        "`all`: every request); on top of them, always the requests carrying the inputs the spec's "
                        "checks name, and a seeded sample of each data-set check's queries with their judged "
                        "documents. Re-evaluates every check line, detail included. Costs money on a paid provider: "
                        "the estimate, by kind, is printed first")
    a.add_argument("--tolerance", type=_tolerance, metavar="X",
                   help="with --reexecute: `exact` (identical float32 bytes) or a cosine distance (cosine ≥ 1 − X), "
                        "as for `harness diff`. Default per provider: local exact, DashScope and "
                        "OpenAI-compatible 0.001")
    a.add_argument("--max-cost", type=flags.amount, metavar="AMOUNT",
                   help="with --reexecute: refuse to send anything when the estimated cost is above AMOUNT "
                        "in any currency (each cell's region's: CNY in Beijing, USD in Singapore) (exit 2)")
    a.add_argument("--seed", type=_seed, metavar="S", help="with --reexecute: the sample's seed (default: random, "
                   "and printed, so the audited party cannot know which requests are checked)")
    a.add_argument("--base-url", help="with --reexecute: DashScope native API base URL, as for `harness run` "
                   "(overrides the spec, $DASHSCOPE_HTTP_BASE_URL and the region)")
    add_allow_host(a)   # with --reexecute: where a key may go, exactly as for `harness run`
    add_filters(a, "with --reexecute: re-execute")
    return p


def run(args) -> int:
    from harness.audit.verify.checker import verify
    from harness.audit.verify.reporter import exit_code, render_report

    folder = Path(args.folder)
    if not folder.is_dir():
        raise UsageError(Problem(f"no such folder: {folder}", hint="give the output folder of a run, "
                                   "e.g. output/<spec name>"))
    if args.hashes_only:
        for flag in ("reexecute", "spec_dir", "strict"):
            if getattr(args, flag) not in (None, False):
                raise UsageError(Problem(f"--{flag.replace('_', '-')} does nothing with --hashes-only, which "
                                           "re-derives and re-executes nothing", hint="drop one of the two"))
    for flag in ("tolerance", "max_cost", "seed", "base_url", "allow_host", "trusted_hosts_only", "filter_model",
                 "filter_dimension", "filter_cell"):
        if getattr(args, flag) not in (None, []) and args.reexecute is None:
            raise UsageError(Problem(f"--{flag.removeprefix('filter_').replace('_', '-')} applies to --reexecute, "
                                       "which was not given"))
    from harness.folder import layout
    if not any((folder / name).exists() for name in (layout.MANIFEST, layout.VALIDATE, layout.SPEC_COPY,
                                                      layout.INPUTS, "payloads", *layout.REPORTS)):
        # none of a run's files: a wrong path (2); a run whose manifest alone is gone stays a mismatch (5)
        raise UsageError(Problem(f"not a harness output folder: {folder} (no manifest.json, validate.txt "
                                   "or payloads)", hint="give the output folder of a run, e.g. output/<spec name>"))
    if args.key and not args.attestation:
        raise UsageError(Problem("--key applies to --attestation, which was not given",
                                 hint="add --attestation FILE (e.g. DIR/attestation.intoto.json)"))
    context, report = verify(folder, spec_dir=args.spec_dir, strict=args.strict, allow_paths=args.allow_paths,
                             max_payload=args.max_payload, hashes_only=args.hashes_only)
    if args.allowed_signers:
        from harness.audit.verify.provenance import check_signature
        check_signature(report, args.allowed_signers)
    elif (folder / layout.SIGNATURE).is_file():
        report.notes.append("the folder is signed (manifest.sig); pass --allowed-signers FILE to check who signed")
    if args.attestation:
        from harness.audit.verify.provenance import check_attestation
        check_attestation(report, args.attestation, args.key)
    if args.reexecute is not None:
        from harness.audit.verify.provenance import check_reexecution
        announce = (lambda text: print(text, file=sys.stderr, flush=True)) if args.json else \
            (lambda text: print(text, flush=True))
        check_reexecution(context, report, per_cell=None if args.reexecute == "default" else args.reexecute,
                          seed=args.seed, tolerance=args.tolerance, max_cost=args.max_cost, base_url=args.base_url,
                          allow_hosts=host_grants(args), announce=announce, cell_filter=cell_filter(args))
    if args.json:
        sys.stdout.write(json.dumps(report.as_dict(), indent=2, ensure_ascii=False) + "\n")
    else:
        print(render_report(report))
    return exit_code(report)
