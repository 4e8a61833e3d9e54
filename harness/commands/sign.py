"""harness sign OUTPUT_DIR --key KEY: sign an existing run's manifest digest with an SSH key."""

from __future__ import annotations

from harness.errors import ExitCode

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
    from harness.commands import verified_folder

    folder = verified_folder(args.folder, vouched="signed", key_check=lambda: signing.check_key(args.key))
    key = signing.sign(folder, args.key)
    print(f"signed: {folder}/{signing.SIGNATURE} ({key}, namespace {signing.NAMESPACE})")
    return int(ExitCode.OK)
