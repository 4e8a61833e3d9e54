"""harness attest OUTPUT_DIR [--key KEY]: the run folder as an in-toto attestation (attestation.intoto.json)."""

from __future__ import annotations

from harness.errors import ExitCode

NAME = "attest"
HELP = ("write an in-toto attestation of an output folder (attestation.intoto.json), signed with --key as a "
        "DSSE envelope")
ORDER = 63


def add_parser(sub):
    p = sub.add_parser(NAME, help=HELP, description=HELP + ". An in-toto Statement v1: its subject is every file "
                       "the manifest hashes (path, sha256), its predicate the spec, the input files, models, "
                       "endpoints, dimensions, catalog and schema hashes, the verdict and the headline metrics "
                       "(docs/attestation.md). The folder is verified first (a folder that does not verify is not "
                       "attested). `harness verify DIR --attestation FILE --key PUB` checks it; in GitHub Actions, "
                       "actions/attest signs the same statement with Sigstore (docs/ci.md).",
                       epilog="exit codes: 0 written · 5 the folder does not verify (nothing written) · 2 no such "
                              "folder, or a key that cannot sign (encrypted, unknown type, cryptography missing)")
    p.add_argument("folder", metavar="OUTPUT_DIR", help="an output folder written by `harness run`")
    p.add_argument("--key", metavar="KEY", help="sign it: an unencrypted private key file (OpenSSH, e.g. "
                   "~/.ssh/id_ed25519, or PEM; Ed25519, ECDSA or RSA); the file is then a DSSE envelope "
                   "(payloadType application/vnd.in-toto+json). Without it: the bare statement")
    return p


def run(args) -> int:
    from harness.audit import attest
    from harness.commands import verified_folder

    folder = verified_folder(args.folder, vouched="attested", key_check=(
        (lambda: attest.load_private_key(args.key)) if args.key is not None else None))
    path, signer = attest.attest(folder, args.key)
    print(f"attested: {path}" + (f" (DSSE, signed by {signer})" if signer else " (unsigned statement)"))
    return int(ExitCode.OK)
