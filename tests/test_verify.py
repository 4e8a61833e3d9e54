"""`harness verify` on real runs: every kind of tampering is caught and the file is named."""

from __future__ import annotations

import json
import shutil
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import yaml

from harness.audit.verify.checker import verify_folder
from harness.checks.evaluate import evaluate_checks
from harness.errors import ExitCode
from harness.evidence import canonical_json, hash_tree
from harness.folder import CellVectors, RunReader
from harness.folder import manifest as manifest_mod
from harness.report.finalize import finalize
from tests import forgery
from tests.helpers import Result, cli_env, run_cli

SPEC = """\
version: 1
name: tamper
models:
  - qwen3-vl-embedding
dimensions: [1024, 256]
inputs:
  - id: cat-caption
    text: A cat sitting on a red chair
  - id: dog-caption
    text: A dog runs on the beach
  - id: cat-photo
    image: images/cat.png
"""
CELL = "qwen3-vl-embedding-256"


def png(rgb: tuple[int, int, int]) -> bytes:
    raw = b"".join(b"\x00" + bytes(rgb) * 4 for _ in range(4))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 4, 4, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def cli(tmp_path: Path, *args: str) -> Result:
    """`harness ARGS` in this process, run in `tmp_path` with HOME and the cache under it and none of
    the DASHSCOPE_*/HARNESS_*/CI variables of the shell running the tests."""
    return run_cli(*args, cwd=tmp_path, env=cli_env(tmp_path / "home"))


def make_run(tmp_path: Path, checks: str = "") -> Path:
    """An offline `harness run`, then vectors recorded as execution does (folder writer, the
    spec's checks over them, `finalize`), so vector files are under the manifest too."""
    project = tmp_path / "project"
    (project / "images").mkdir(parents=True)
    (project / "images" / "cat.png").write_bytes(png((200, 30, 30)))
    (project / "spec.yaml").write_text(SPEC + checks)
    r = cli(tmp_path, "run", str(project / "spec.yaml"), "--output", str(tmp_path / "out"), "--quiet")
    assert r.returncode == 0, r.stdout + r.stderr
    folder = tmp_path / "out" / "tamper"
    rng = np.random.default_rng(1)
    executed = forgery.record_execution(folder, {CELL: CellVectors(["cat-caption", "dog-caption", "cat-photo"],
                                                                   rng.normal(size=(3, 256)).astype(np.float32))})
    reader = RunReader(folder)
    manifest, results = reader.manifest(), reader.results() + executed
    if checks:
        results += evaluate_checks(yaml.safe_load(checks)["checks"], folder, manifest.cells)
    finalize(folder, manifest, results)
    return folder


@pytest.fixture
def run(tmp_path) -> Path:
    return make_run(tmp_path)


def verify(folder: Path, *extra: str) -> tuple[int, str]:
    r = cli(folder.parents[1], "verify", str(folder), *extra)   # for out/<name>, the test's tmp_path
    return r.returncode, r.stdout


def flip(path: Path, offset: int = -10) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))


def test_untouched_run_verifies(run):
    code, out = verify(run)
    assert code == ExitCode.OK, out
    assert out.startswith(f"verified: {run}")
    assert "5 re-derived byte for byte" in out and "1 local input unchanged" in out


def test_one_byte_of_a_payload(run):
    flip(run / "payloads" / CELL / "requests.jsonl", offset=12)
    code, out = verify(run)
    assert code == ExitCode.VERIFY_MISMATCH
    assert f"changed     payloads/{CELL}/requests.jsonl: sha256" in out
    assert f"payload     payloads/{CELL}/requests.jsonl: re-derived bytes differ" in out
    assert "request 1 no longer matches the index" in out         # which body among the cell's
    assert "qwen3-vl-embedding-1024/requests.jsonl" not in out  # only the tampered file is named


def test_one_byte_of_a_vector_file(run):
    flip(run / "vectors" / f"{CELL}.npy")
    code, out = verify(run)
    assert code == ExitCode.VERIFY_MISMATCH
    assert f"changed     vectors/{CELL}.npy" in out


def test_one_byte_of_the_manifest(run):
    path = run / "manifest.json"
    text = path.read_text()
    recorded = json.loads(text)["files"]["inputs.jsonl"]
    path.write_text(text.replace(recorded, ("0" if recorded[0] != "0" else "1") + recorded[1:]))
    code, out = verify(run)
    assert code == ExitCode.VERIFY_MISMATCH
    assert "manifest    manifest.json: digest mismatch" in out
    assert "changed     inputs.jsonl" in out


def test_manifest_whitespace_edit(run):
    path = run / "manifest.json"
    path.write_bytes(path.read_bytes().replace(b'"files": {', b'"files":  {', 1))
    code, out = verify(run)
    assert code == ExitCode.VERIFY_MISMATCH
    assert "manifest.json: bytes differ from its canonical form" in out


def test_garbled_manifest(run):
    (run / "manifest.json").write_bytes(b"{not json")
    code, out = verify(run)
    assert code == ExitCode.VERIFY_MISMATCH and "manifest.json: is not valid JSON" in out


def test_one_byte_of_the_spec_copy(run):
    path = run / "spec.yaml"
    path.write_text(path.read_text().replace("dimensions: [1024, 256]", "dimensions: [1024, 512]"))
    code, out = verify(run)
    assert code == ExitCode.VERIFY_MISMATCH
    assert "changed     spec.yaml" in out
    assert "spec        spec.yaml: the spec copy differs from the spec that was run" in out
    assert "the spec now plans different cells; no longer: qwen3-vl-embedding-256; new: qwen3-vl-embedding-512" in out


def test_original_spec_changed_since_the_run(run):
    original = run.parent.parent / "project" / "spec.yaml"
    original.write_text(original.read_text().replace("red chair", "red sofa"))
    code, out = verify(run)
    assert code == ExitCode.VERIFY_MISMATCH
    assert "spec        ../../project/spec.yaml: the spec at" in out and "changed since the run" in out
    assert "changed     " not in out  # the folder itself is intact


def test_one_byte_of_a_local_input_image(run):
    flip(run.parent.parent / "project" / "images" / "cat.png", offset=-14)
    code, out = verify(run)
    assert code == ExitCode.VERIFY_MISMATCH
    assert "input       images/cat.png: local input changed since the run" in out
    assert f"payload     payloads/{CELL}/requests.jsonl: re-derived bytes differ" in out


def test_deleted_file(run):
    (run / "payloads" / CELL / "index.jsonl").unlink()
    code, out = verify(run)
    assert code == ExitCode.VERIFY_MISMATCH
    assert f"missing     payloads/{CELL}/index.jsonl: recorded in the manifest but not in the folder" in out


def test_added_file(run):
    (run / "payloads" / CELL / "00002.json").write_bytes(b"{}")
    (run / "notes.txt").write_text("hello")
    code, out = verify(run)
    assert code == ExitCode.VERIFY_MISMATCH
    assert "extra       notes.txt: in the folder but not in the manifest" in out
    assert f"extra       payloads/{CELL}/00002.json" in out


def test_run_json_is_not_evidence(run):
    (run / "run.json").write_text('{"host": "elsewhere"}')
    assert verify(run)[0] == ExitCode.OK


def test_moved_copy_verifies_hashes_and_rederives_with_spec_dir(run, tmp_path):
    moved = tmp_path / "elsewhere" / "deep" / "copy"
    shutil.copytree(run, moved)
    code, out = verify(moved)
    assert code == ExitCode.OK
    assert out.startswith("verified (hashes only")
    assert "not-derived images/cat.png" in out and "--spec-dir" in out
    code, out = verify(moved, "--strict")
    assert code == ExitCode.VERIFY_MISMATCH
    code, out = verify(moved, "--spec-dir", str(tmp_path / "project"))
    assert code == ExitCode.OK and out.startswith(f"verified: {moved}") and "5 re-derived" in out
    flip(moved / "payloads" / CELL / "requests.jsonl", offset=12)
    code, out = verify(moved, "--spec-dir", str(tmp_path / "project"))
    assert code == ExitCode.VERIFY_MISMATCH and f"payloads/{CELL}/requests.jsonl" in out


def test_text_only_spec_rederives_anywhere(tmp_path):
    spec = tmp_path / "p" / "spec.yaml"
    spec.parent.mkdir()
    spec.write_text(SPEC.split("  - id: cat-photo")[0].replace("name: tamper", "name: texts"))
    assert cli(tmp_path, "run", str(spec), "--output", str(tmp_path / "out"), "--quiet").returncode == 0
    moved = tmp_path / "usb" / "texts"
    shutil.copytree(tmp_path / "out" / "texts", moved)
    shutil.rmtree(tmp_path / "p")
    code, out = verify(moved, "--strict")
    assert code == ExitCode.OK and "5 re-derived byte for byte" in out


def test_json_output_and_bad_folder(run, tmp_path):
    flip(run / "vectors" / f"{CELL}.npy")
    code, out = verify(run, "--json")
    data = json.loads(out)
    assert code == ExitCode.VERIFY_MISMATCH and data["verified"] is False
    assert {"kind": "changed", "path": f"vectors/{CELL}.npy"}.items() <= data["findings"][0].items()
    r = cli(tmp_path, "verify", str(tmp_path / "nope"))
    assert r.returncode == ExitCode.USAGE and "no such folder" in r.stderr
    (tmp_path / "empty").mkdir()
    r = cli(tmp_path, "verify", str(tmp_path / "empty"))
    assert r.returncode == ExitCode.USAGE and "not a harness output folder" in r.stderr   # not a run: a wrong path
    (run / "manifest.json").unlink()                                      # a run without its manifest
    code, out = verify(run)
    assert code == ExitCode.VERIFY_MISMATCH and "no manifest.json" in out


def test_api_reports_findings_as_values(run):
    flip(run / "vectors" / f"{CELL}.ids.json", offset=3)
    report = verify_folder(run, spec_dir=run.parents[1] / "project")
    assert not report.ok
    assert [(f.kind, f.path) for f in report.findings] == [("changed", f"vectors/{CELL}.ids.json")]


def forge_hashes(folder: Path) -> None:
    """What a forger does after editing files: rewrite the manifest's hashes and its digest."""
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["files"] = hash_tree(folder, exclude=frozenset({"manifest.json", "run.json"}))
    manifest["sizes"] = {rel: (folder / rel).stat().st_size for rel in manifest["files"]}   # and the sizes
    manifest["digest"] = manifest_mod.digest(manifest)
    (folder / "manifest.json").write_bytes(canonical_json(manifest, pretty=True))


def test_edited_verdict_is_caught_even_with_a_rewritten_manifest(tmp_path):
    run = make_run(tmp_path, "checks:\n  - vectors: {norm_min: 0.99, norm_max: 1.01}\n")
    code, out = verify(run)
    assert code == ExitCode.OK and "5 check lines re-evaluated" in out, out   # and 3 execution lines
    text = (run / "validate.txt").read_text()
    assert text.endswith("FAIL\n")  # random vectors are not unit length
    (run / "validate.txt").write_text(text.replace("FAIL vectors", "ok   vectors").replace("FAIL\n", "PASS\n"))
    forge_hashes(run)  # a forger rewrites the hashes too
    code, out = verify(run)
    assert code == ExitCode.VERIFY_MISMATCH
    assert f"verdict     validate.txt: re-evaluated from the vectors, the check gives 'FAIL vectors [{CELL}]" in out
    assert "changed     " not in out  # the hashes alone would not have caught it


@pytest.mark.parametrize("name", ["manifest.json", "summary.json"])
def test_a_file_nested_too_deeply_to_read_is_a_finding_not_a_crash(run, name):
    # json.loads raises RecursionError (not ValueError) on 100k nested brackets: verify exited 70
    (run / name).write_text("[" * 100_000 + "]" * 100_000)
    r = cli(run.parents[1], "verify", str(run))
    assert r.returncode == ExitCode.VERIFY_MISMATCH, r.stdout + r.stderr
    assert name in r.stdout and "internal error" not in r.stdout + r.stderr
