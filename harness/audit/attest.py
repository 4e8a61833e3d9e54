"""A run folder as an in-toto attestation (`harness attest`, `run --attest`): attestation.intoto.json.

The file is an in-toto Statement v1 (https://in-toto.io/Statement/v1). Its `subject` lists every
evidence file the manifest hashes (`files`: path and sha256, the manifest's own table), so the
statement names exactly the bytes `harness verify` checks; its predicate (`PREDICATE_TYPE`, described
in docs/attestation.md) records what the run was: the spec and its sha256, the input files as
materials (path, sha256; URLs as `uri`), the cells' models, endpoints and dimensions, the catalog's and
the spec schema's hashes, the manifest's roll-up digest, the verdict and each retrieval check's headline
metric per cell (with its interval when summary.json has one).

With a key (`--key`: a private key file, OpenSSH or PEM; Ed25519, ECDSA P-256 or RSA) the file is
a DSSE envelope (payloadType `application/vnd.in-toto+json`) whose signature is over DSSE's
pre-authentication encoding (PAE) of the statement, made in-process with `cryptography`: ssh-keygen's
SSHSIG signs something else, so a key held only by ssh-agent keeps `harness sign`. The file sits
beside manifest.sig, outside the manifest's hashes (it is made after the manifest, over its table);
`harness export` rewrites the manifest and drops it with a warning.
"""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from harness.errors import MismatchError, Problem, UsageError
from harness.evidence import atomic_write, canonical_json, sha256_bytes
from harness.folder import FolderError, RunReader, layout, scan
from harness.folder import manifest as manifest_mod
from harness.words import counted

ATTESTATION = layout.ATTESTATION
STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PREDICATE_TYPE = "https://github.com/mm-embed-harness/mm-embed-harness/blob/main/docs/attestation.md#run-v1"
PAYLOAD_TYPE = "application/vnd.in-toto+json"
MAX_ATTESTATION = 64 << 20        # a statement lists every file of the folder: a few MB for a large run
INSTALL_HINT = "pip install 'mm-embed-harness[attest]' (the `cryptography` package signs and checks the envelope)"


# ---- the statement ---------------------------------------------------------------------------------

def statement(folder: str | Path) -> dict[str, Any]:
    """The in-toto Statement of the run folder `folder`, from its manifest and summary.json."""
    reader = RunReader(Path(folder))
    try:
        manifest = reader.manifest()
        summary = reader.summary() if reader.has(layout.SUMMARY) else None
    except FolderError as exc:
        raise MismatchError(Problem(f"{folder}: {exc}", hint="check it with `harness verify`")) from None
    raw = manifest.to_json()
    if raw.get("digest") != manifest_mod.digest(raw):
        raise MismatchError(Problem(f"{Path(folder) / layout.MANIFEST}: the recorded digest is not the manifest's; "
                                    "it was edited after the run, so it is not attested",
                                    hint="run `harness verify` on the folder"))
    inputs = raw.get("inputs") or {}
    materials = [{"name": f["path"], "digest": {"sha256": f["sha256"]}} for f in inputs.get("files") or []
                 if isinstance(f, dict) and f.get("path") and f.get("sha256")]
    materials += [{"uri": u if isinstance(u, str) else u.get("url")} for u in inputs.get("urls") or []
                  if isinstance(u, (str, dict))]
    cells = [{"id": c.get("id"), "model": c.get("model"), "provider": c.get("provider"),
              "endpoint": c.get("endpoint"), "dimension": c.get("dimension")} for c in raw.get("cells") or []]
    spec = raw.get("spec") or {}
    predicate = {
        "harness": {"version": (raw.get("harness") or {}).get("version"), "evidence_format": manifest.format},
        "spec": {"name": spec.get("name"), "path": spec.get("path"), "digest": {"sha256": spec.get("sha256")}},
        "manifest": {"digest": raw.get("digest"),
                     "sha256": sha256_bytes(bytes(reader.raw(layout.MANIFEST)))},
        "materials": materials,
        "models": sorted({c["model"] for c in cells if c["model"]}),
        "endpoints": sorted({c["endpoint"] for c in cells if c["endpoint"]}),
        "dimensions": sorted({c["dimension"] for c in cells if isinstance(c["dimension"], int)}),
        "cells": cells,
        "catalog": raw.get("catalog"),
        "schema": raw.get("schema"),
        "verdict": summary.get("verdict") if summary else None,
        "metrics": headline_metrics(summary or {}),
    }
    subject = [{"name": name, "digest": {"sha256": sha}} for name, sha in sorted(manifest.files.items())]
    return {"_type": STATEMENT_TYPE, "subject": subject, "predicateType": PREDICATE_TYPE, "predicate": predicate}


def headline_metrics(summary: dict[str, Any]) -> list[dict[str, Any]]:
    """Per retrieval check and cell (summary.json's `quality`): the headline metric (the check's, else its
    first threshold, else ndcg@10, else the first reported) with its value, and its interval and
    confidence when recorded."""
    out = []
    for row in summary.get("quality") or []:
        metrics = row.get("metrics") or {}
        if not isinstance(metrics, dict) or not metrics:
            continue
        order = [row.get("headline"), *(row.get("threshold_order") or []), "ndcg@10", *sorted(metrics)]
        name = next(m for m in order if m in metrics)
        entry = {"check": row.get("check"), "cell": row.get("cell"), "model": row.get("model"),
                 "dimension": row.get("dimension"), "metric": name, "value": metrics[name]}
        interval = (row.get("intervals") or {}).get(name)
        if interval is not None:
            entry.update(interval=interval, confidence=row.get("confidence"))
        out.append(entry)
    return out


# ---- DSSE --------------------------------------------------------------------------------------------

def pae(payload_type: str, payload: bytes) -> bytes:
    """DSSE's pre-authentication encoding: what is signed (DSSE v1)."""
    kind = payload_type.encode("utf-8")
    return b"DSSEv1 %d %s %d %s" % (len(kind), kind, len(payload), payload)


def _crypto() -> SimpleNamespace:
    """cryptography's pieces, imported when a key is used (an unsigned statement needs none)."""
    try:
        from cryptography import exceptions
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
    except ImportError:
        raise UsageError(Problem("signing or checking an attestation needs the `cryptography` package",
                                 hint=INSTALL_HINT)) from None
    return SimpleNamespace(hashes=hashes, serialization=serialization, ec=ec, ed25519=ed25519, padding=padding,
                           rsa=rsa, InvalidSignature=exceptions.InvalidSignature,
                           UnsupportedAlgorithm=exceptions.UnsupportedAlgorithm)


def load_private_key(path: str | Path):
    """An unencrypted private key file (OpenSSH `-----BEGIN OPENSSH PRIVATE KEY-----` or PEM)."""
    c = _crypto()
    data = _read_key(path)
    try:
        if b"OPENSSH PRIVATE KEY" in data:
            key = c.serialization.load_ssh_private_key(data, password=None)
        else:
            key = c.serialization.load_pem_private_key(data, password=None)
    except TypeError:        # encrypted, and no password given
        raise UsageError(Problem(f"--key {path}: the key is encrypted with a passphrase",
                                 hint="give an unencrypted key file (e.g. a CI secret); a key held only by "
                                      "ssh-agent signs manifest.sig with `harness sign` instead")) from None
    except (ValueError, c.UnsupportedAlgorithm) as exc:
        raise UsageError(Problem(f"--key {path}: not a private key this harness reads ({exc})",
                                 hint="an OpenSSH or PEM private key: Ed25519, ECDSA or RSA")) from None
    if not isinstance(key, (c.ed25519.Ed25519PrivateKey, c.ec.EllipticCurvePrivateKey, c.rsa.RSAPrivateKey)):
        raise UsageError(Problem(f"--key {path}: a {type(key).__name__} cannot sign here",
                                 hint="an Ed25519, ECDSA or RSA key"))
    return key


def load_public_key(path: str | Path):
    """A public key file: OpenSSH (`ssh-ed25519 AAAA…`, a .pub) or PEM."""
    c = _crypto()
    data = _read_key(path)
    try:
        if data.lstrip().startswith(b"-----"):
            return c.serialization.load_pem_public_key(data)
        return c.serialization.load_ssh_public_key(data.strip())
    except (ValueError, c.UnsupportedAlgorithm) as exc:
        raise UsageError(Problem(f"--key {path}: not a public key this harness reads ({exc})",
                                 hint="give the signer's public key: an OpenSSH .pub line or a PEM file")) from None


def _read_key(path: str | Path) -> bytes:
    try:
        return bytes(scan.read_path(Path(path).expanduser(), 1 << 20))
    except (OSError, FolderError) as exc:
        raise UsageError(Problem(f"--key {path}: cannot be read ({getattr(exc, 'strerror', None) or exc})",
                                 hint="give a key file")) from None


def keyid(public_key) -> str:
    """The key's OpenSSH fingerprint (`SHA256:…`, as `ssh-keygen -l` prints it): the envelope's keyid."""
    c = _crypto()
    line = public_key.public_bytes(c.serialization.Encoding.OpenSSH, c.serialization.PublicFormat.OpenSSH)
    blob = base64.b64decode(line.split()[1])
    return "SHA256:" + base64.b64encode(hashlib.sha256(blob).digest()).decode("ascii").rstrip("=")


def _sign(key, data: bytes) -> bytes:
    c = _crypto()
    if isinstance(key, c.ed25519.Ed25519PrivateKey):
        return key.sign(data)
    if isinstance(key, c.ec.EllipticCurvePrivateKey):
        return key.sign(data, c.ec.ECDSA(c.hashes.SHA256()))
    return key.sign(data, c.padding.PSS(mgf=c.padding.MGF1(c.hashes.SHA256()),
                                        salt_length=c.hashes.SHA256().digest_size), c.hashes.SHA256())


def _verify(public_key, signature: bytes, data: bytes) -> bool:
    c = _crypto()
    try:
        if isinstance(public_key, c.ed25519.Ed25519PublicKey):
            public_key.verify(signature, data)
        elif isinstance(public_key, c.ec.EllipticCurvePublicKey):
            public_key.verify(signature, data, c.ec.ECDSA(c.hashes.SHA256()))
        elif isinstance(public_key, c.rsa.RSAPublicKey):
            public_key.verify(signature, data, c.padding.PSS(mgf=c.padding.MGF1(c.hashes.SHA256()),
                                                             salt_length=c.padding.PSS.AUTO), c.hashes.SHA256())
        else:
            return False
    except c.InvalidSignature:
        return False
    return True


def envelope(body: bytes, key) -> dict[str, Any]:
    """A DSSE envelope of `body` (the statement's bytes) signed by the private key `key`."""
    signature = _sign(key, pae(PAYLOAD_TYPE, body))
    return {"payload": base64.b64encode(body).decode("ascii"), "payloadType": PAYLOAD_TYPE,
            "signatures": [{"keyid": keyid(key.public_key()), "sig": base64.b64encode(signature).decode("ascii")}]}


def attest(folder: str | Path, key: str | Path | None = None) -> tuple[Path, str | None]:
    """Write attestation.intoto.json into `folder`: the statement, or with `key` its DSSE envelope.
    Returns the file and the signing key's keyid (None: not signed)."""
    folder = Path(folder)
    private = load_private_key(key) if key is not None else None     # a bad key fails before anything is written
    body = canonical_json(statement(folder))
    if private is None:
        data, signer = body, None
    else:
        signed = envelope(body, private)
        data, signer = canonical_json(signed, pretty=True), signed["signatures"][0]["keyid"]
    atomic_write(folder / ATTESTATION, data)
    return folder / ATTESTATION, signer


# ---- checking ------------------------------------------------------------------------------------------

def check(folder: str | Path, attestation: str | Path, public_key: str | Path | None) -> tuple[list[str], list[str]]:
    """`verify --attestation FILE [--key PUB]`: (what holds, what does not). The envelope's signature
    over the PAE with `public_key`, then the statement against the folder: its subject must be the
    manifest's file table exactly (so, with verify's hashing, every file), its predicate the manifest's
    digest, spec and verdict."""
    holds: list[str] = []
    fails: list[str] = []
    try:
        raw = scan.read_path(Path(attestation), MAX_ATTESTATION)
        doc = json.loads(raw)
    except (OSError, FolderError) as exc:
        why = getattr(exc, "strerror", None) or exc
        raise UsageError(Problem(f"--attestation {attestation}: cannot be read ({why})",
                                 hint="give the attestation.intoto.json of a run")) from None
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        return holds, [f"{attestation} is not JSON ({exc})"]
    if isinstance(doc, dict) and "payloadType" in doc:
        body = _checked_envelope(doc, public_key, holds, fails)
        if body is None:
            return holds, fails
        try:
            doc = json.loads(body)
        except (ValueError, UnicodeDecodeError, RecursionError) as exc:
            return holds, fails + [f"the envelope's payload is not JSON ({exc})"]
    elif public_key is not None:
        fails.append(f"{attestation} is not signed (a bare statement, no DSSE envelope): make it with "
                     "`harness attest DIR --key KEY`")
    _check_statement(Path(folder), doc, holds, fails)
    return holds, fails


def _checked_envelope(doc: dict, public_key, holds: list[str], fails: list[str]) -> bytes | None:
    if doc.get("payloadType") != PAYLOAD_TYPE:
        fails.append(f"payloadType is {doc.get('payloadType')!r}, not {PAYLOAD_TYPE}")
        return None
    try:
        body = base64.b64decode(doc.get("payload") or "", validate=True)
    except (ValueError, TypeError):
        fails.append("the envelope's payload is not base64")
        return None
    if public_key is None:
        fails.append("the attestation is a signed envelope: pass --key PUB (the signer's public key) to check it")
        return body
    key = load_public_key(public_key)
    want = keyid(key)
    for entry in doc.get("signatures") or []:
        try:
            sig = base64.b64decode(entry.get("sig") or "", validate=True)
        except (ValueError, TypeError, AttributeError):
            continue
        if _verify(key, sig, pae(PAYLOAD_TYPE, body)):
            holds.append(f"attestation signed by {want}")
            return body
    fails.append(f"no signature of the envelope holds for the key {want} ({public_key}): signed by another key, or "
                 "the statement changed after it was signed")
    return body


def _check_statement(folder: Path, doc: Any, holds: list[str], fails: list[str]) -> None:
    if not isinstance(doc, dict) or doc.get("_type") != STATEMENT_TYPE:
        fails.append(f"not an in-toto Statement v1 (_type {doc.get('_type') if isinstance(doc, dict) else None!r})")
        return
    if doc.get("predicateType") != PREDICATE_TYPE:
        fails.append(f"predicateType is {doc.get('predicateType')!r}, not this harness's ({PREDICATE_TYPE})")
    try:
        manifest = RunReader(folder).manifest()
    except FolderError as exc:
        fails.append(f"{folder}: {exc}")
        return
    listed = {}
    for s in doc.get("subject") or []:
        if isinstance(s, dict) and isinstance(s.get("digest"), dict):
            listed[s.get("name")] = s["digest"].get("sha256")
    if listed != manifest.files:
        wrong = sorted(n for n in set(listed) | set(manifest.files) if listed.get(n) != manifest.files.get(n))
        fails.append(f"its subject is not the manifest's file table: {counted(len(wrong), 'file')} differ "
                     f"({', '.join(str(n) for n in wrong[:3])}{', …' if len(wrong) > 3 else ''})")
    else:
        holds.append(f"the attestation's subject is the manifest's {counted(len(listed), 'file')}")
    predicate = doc.get("predicate") if isinstance(doc.get("predicate"), dict) else {}
    recorded = (predicate.get("manifest") or {}).get("digest") if isinstance(predicate.get("manifest"), dict) else None
    if recorded != manifest.digest:
        fails.append(f"its manifest digest {recorded} is not the folder's ({manifest.digest})")
