"""harness sign OUTPUT_DIR --key KEY: sign an existing run's manifest digest with an SSH key."""

from __future__ import annotations

from pathlib import Path

from harness.errors import ExitCode, MismatchError, Problem, UsageError

NAME = "sign"
HELP = "sign an output folder's manifest digest with an SSH key (ssh-keygen -Y sign) into manifest.sig"
ORDER = 62


def add_parser(sub):
    p = sub.add_parser(NAME, help=HELP, description=HELP + ". The folder is verified first (a folder that does "
                       "not verify is not signed). `harness verify DIR --allowed-signers FILE` checks the "
                       "signature and says who signed. Namespace: mm-embed-harness.",
                       epilog="exit codes: 0 signed · 5 the folder does not verify (nothing signed) · 2 no such "
                              "folder or key, ssh-keygen missing or unable to sign")
    p.add_argument("folder", metavar="OUTPUT_DIR", help="an output folder written by `harness run`")
    p.add_argument("--key", required=True, metavar="KEY", help="SSH private key file (or its .pub when the private "
                   "key is in ssh-agent), e.g. ~/.ssh/id_ed25519")
    return p


def run(args) -> int:
    from harness.audit import signing
    from harness.audit.verify.checker import verify_folder
    from harness.audit.verify.reporter import render_report

    folder = Path(args.folder)
    if not (folder / "manifest.json").is_file():
        raise UsageError(Problem(f"{folder} is not an output folder (no manifest.json)",
                                   hint="give the output folder of a run, e.g. output/<spec name>"))
    signing.check_key(args.key)
    report = verify_folder(folder)
    if not report.ok:
        print(render_report(report))
        raise MismatchError(Problem(f"{folder} does not verify, so it is not signed"))
    key = signing.sign(folder, args.key)
    print(f"signed: {folder}/{signing.SIGNATURE} ({key}, namespace {signing.NAMESPACE})")
    return int(ExitCode.OK)
