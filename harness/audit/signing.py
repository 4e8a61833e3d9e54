"""Signed evidence: who vouches for an output folder, through OpenSSH's `ssh-keygen -Y` (the scheme
git uses to sign commits), so any SSH key (ed25519, RSA, a hardware key) signs and nothing new is
installed.

What is signed is a short statement, rebuilt from manifest.json whenever it is checked:

    mm-embed-harness manifest
    spec: <spec name>
    digest: <the manifest's roll-up digest>

The digest covers the spec, the inputs, the cells and the sha256 of every file, so any change to the
folder that is not undone changes the digest and the signature no longer holds. The signature goes
to `manifest.sig` inside the folder; the manifest does not hash it (it is made after the manifest),
so signing changes no recorded byte and a folder can be signed later (`harness sign`).

The namespace `mm-embed-harness` is fixed: a signature made for git commits or for another tool
cannot be replayed as one of these, and vice versa.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import struct
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from harness.errors import ExitCode, HarnessError, MismatchError, Problem, UsageError
from harness.evidence import atomic_write
from harness.folder import FolderError, layout, scan
from harness.folder import manifest as manifest_mod

NAMESPACE = "mm-embed-harness"
SIGNATURE = layout.SIGNATURE
MANIFEST = layout.MANIFEST
TIMEOUT = 60.0
MAX_SIGNATURE = 64 << 10      # an SSH signature is a few hundred bytes
INSTALL_HINT = "install OpenSSH's client tools (Debian/Ubuntu: apt-get install openssh-client; macOS ships them)"


def statement(manifest: dict) -> bytes:
    """The bytes that are signed: the spec name and the manifest's roll-up digest, recomputed from
    the manifest (never the recorded one), so the signature alone proves the manifest's content."""
    spec = manifest.get("spec")
    name = spec.get("name") if isinstance(spec, dict) else None
    try:
        digest = manifest_mod.digest(manifest)
    except (ValueError, TypeError) as exc:    # NaN or a value canonical JSON refuses: not our manifest
        raise MismatchError(Problem(f"manifest.json cannot be digested ({exc})",
                                    hint="check it with `harness verify`")) from None
    return f"{NAMESPACE} manifest\nspec: {name}\ndigest: {digest}\n".encode("utf-8")


def _ssh_keygen() -> str:
    path = shutil.which("ssh-keygen")
    if path is None:
        raise UsageError(Problem("ssh-keygen was not found on PATH; signatures are made and checked with it",
                                   hint=INSTALL_HINT))
    return path


def _run(args: list[str], data: bytes | None = None) -> subprocess.CompletedProcess:
    try:
        return subprocess.run([_ssh_keygen(), *args], input=data, capture_output=True, timeout=TIMEOUT,
                              stdin=None if data is not None else subprocess.DEVNULL)
    except OSError as exc:
        raise UsageError(Problem(f"cannot run ssh-keygen: {exc.strerror or exc}", hint=INSTALL_HINT)) from None
    except subprocess.TimeoutExpired:
        # A passphrase-protected key without an agent waits for a terminal that is not there.
        raise UsageError(Problem(f"ssh-keygen did not finish in {TIMEOUT:.0f} s",
                                   hint="a key with a passphrase needs ssh-agent (ssh-add KEY) first")) from None


def _said(proc: subprocess.CompletedProcess) -> str:
    """What ssh-keygen said, on one line (its first line carries the reason)."""
    text = ((proc.stderr or b"").decode("utf-8", "replace").strip()
            or (proc.stdout or b"").decode("utf-8", "replace").strip())
    return "; ".join(line.strip() for line in text.splitlines() if line.strip()) or f"exit status {proc.returncode}"


def check_key(key: str | os.PathLike) -> Path:
    """Refuse a key that cannot sign before a run spends anything; returns its path."""
    path = Path(key).expanduser()
    if not path.is_file():
        raise UsageError(Problem(f"--sign/--key {key}: no such file",
                                   hint="give an SSH private key, e.g. ~/.ssh/id_ed25519 (or its .pub when the "
                                        "private key is in ssh-agent)"))
    _ssh_keygen()
    return path


def sign(folder: str | os.PathLike, key: str | os.PathLike) -> str:
    """Sign `folder`'s manifest digest with the SSH key `key` into manifest.sig; returns the key's
    fingerprint line as ssh-keygen reports it. Raises HarnessError (exit 2) when it cannot."""
    folder = Path(folder)
    key_path = check_key(key)
    manifest = _manifest(folder)
    data = statement(manifest)
    if manifest.get("digest") != manifest_mod.digest(manifest):
        raise MismatchError(Problem(f"{folder / MANIFEST}: the recorded digest is not the manifest's; it was "
                                   "edited after the run, so it is not signed", hint="run `harness verify` on the "
                                   "folder"))
    # `-Y sign` reads the data from stdin and writes the signature to stdout when no file is given.
    proc = _run(["-Y", "sign", "-q", "-f", str(key_path), "-n", NAMESPACE], data)
    sig = proc.stdout or b""
    if proc.returncode != 0 or b"BEGIN SSH SIGNATURE" not in sig:
        raise UsageError(Problem(f"ssh-keygen could not sign with {key_path}: {_said(proc)}",
                                   hint="give an SSH private key (a key with a passphrase needs ssh-agent)"))
    atomic_write(folder / SIGNATURE, sig)
    return fingerprint(folder / SIGNATURE) or str(key_path)


def fingerprint(signature: Path) -> str | None:
    """The signing key's fingerprint as ssh-keygen -l shows it, read from the SSHSIG blob (magic,
    version, then the public key); it names the key, it proves nothing."""
    try:
        text = scan.read_path(signature, MAX_SIGNATURE).decode("ascii")
        body = "".join(line for line in text.splitlines() if line and not line.startswith("-----"))
        blob = base64.b64decode(body)
        if blob[:6] != b"SSHSIG":
            return None
        (n,) = struct.unpack(">I", blob[10:14])
        key = blob[14:14 + n]
        (t,) = struct.unpack(">I", key[:4])
        kind = key[4:4 + t].decode("ascii")
    except (OSError, ValueError, UnicodeDecodeError, struct.error, FolderError):
        return None
    digest = base64.b64encode(hashlib.sha256(key).digest()).decode("ascii").rstrip("=")
    return f"{kind} SHA256:{digest}"


@dataclass
class SignatureCheck:
    signed: bool          # manifest.sig exists
    ok: bool              # the signature is valid and its key is in the allowed-signers file
    signer: str | None    # the principal the allowed-signers file names for the key
    key: str | None       # the key's fingerprint
    message: str


def check(folder: str | os.PathLike, allowed_signers: str | os.PathLike) -> SignatureCheck:
    """Check manifest.sig against the statement rebuilt from manifest.json, trusting only the keys
    in `allowed_signers` (OpenSSH's format, as for git's gpg.ssh.allowedSignersFile)."""
    folder = Path(folder)
    allowed = Path(allowed_signers).expanduser()
    if not allowed.is_file():
        raise UsageError(Problem(f"--allowed-signers {allowed_signers}: no such file",
                                   hint="one line per signer: `PRINCIPAL namespaces=\"mm-embed-harness\" "
                                        "ssh-ed25519 AAAA…`"))
    if scan.entry_kind(folder, SIGNATURE) is None:
        return SignatureCheck(False, False, None, None, f"the folder is not signed (no {SIGNATURE}); sign it with "
                              "`harness sign DIR --key KEY` or `harness run --sign KEY`")
    try:     # ssh-keygen reads a copy: never a link, a FIFO or more than a signature's size
        signed = bytes(scan.read_file(folder, SIGNATURE, MAX_SIGNATURE))
    except FolderError as exc:
        return SignatureCheck(True, False, None, None, f"{exc}")
    with tempfile.TemporaryDirectory(prefix="harness-sig-") as scratch:
        sig = Path(scratch) / SIGNATURE
        sig.write_bytes(signed)
        return _check(folder, sig, allowed, allowed_signers)


def _check(folder: Path, sig: Path, allowed: Path, allowed_signers: str | os.PathLike) -> SignatureCheck:
    key = fingerprint(sig)
    try:
        data = statement(_manifest(folder))
    except HarnessError as exc:
        if exc.exit_code == ExitCode.USAGE:
            raise
        return SignatureCheck(True, False, None, key, f"cannot rebuild what was signed: {exc.problems[0].message}")
    proc = _run(["-Y", "find-principals", "-s", str(sig), "-f", str(allowed)])
    principals = [p for p in (proc.stdout or b"").decode("utf-8", "replace").split() if p] \
        if proc.returncode == 0 else []
    if not principals:
        return SignatureCheck(True, False, None, key, f"signed by {key or 'an unreadable key'}, which is not in "
                              f"{allowed_signers} (for namespace {NAMESPACE})")
    said = ""
    for principal in principals:
        proc = _run(["-Y", "verify", "-f", str(allowed), "-I", principal, "-n", NAMESPACE, "-s", str(sig)], data)
        if proc.returncode == 0:
            return SignatureCheck(True, True, principal, key, f"signed by {principal} ({key})")
        said = _said(proc)
    why = (f"it was made for another namespace than {NAMESPACE}" if "namespace" in said
           else "the folder changed after it was signed")
    return SignatureCheck(True, False, principals[0], key,
                          f"the signature by {', '.join(principals)} ({key}) does not hold for this manifest "
                          f"digest: {why} (ssh-keygen: {said})")


def _manifest(folder: Path) -> dict:
    if scan.entry_kind(folder, MANIFEST) is None:
        raise UsageError(Problem(f"{folder} has no {MANIFEST}", hint="give the output folder of `harness run`"))
    try:   # a regular file, no link followed, bounded
        data = json.loads(scan.read_file(folder, MANIFEST).decode("utf-8"))
    except FolderError as exc:
        raise MismatchError(Problem(f"{folder}: {exc}", hint="check it with `harness verify`")) from None
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise MismatchError(Problem(f"{folder / MANIFEST} is not valid JSON ({exc})",
                                   hint="check it with `harness verify`")) from None
    if not isinstance(data, dict):
        raise MismatchError(Problem(f"{folder / MANIFEST} is not a manifest"))
    return data
