"""Issue 9 case 5: every file a run reads is in the manifest, and `verify` names the one that changed."""

from __future__ import annotations

import hashlib
import json
import shutil

from tests.helpers import SPECS, harness


def _run_csv_spec(tmp_path):
    shutil.copytree(SPECS, tmp_path / "specs")
    r = harness("run", "specs/csv-captions.yaml", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    return tmp_path / "output" / "csv-captions"


def test_manifest_records_the_csv_input_set_and_its_images_with_their_role(tmp_path):
    out = _run_csv_spec(tmp_path)
    files = json.loads((out / "manifest.json").read_text())["inputs"]["files"]
    csv_bytes = (tmp_path / "specs/data/captions.csv").read_bytes()
    assert [f["path"] for f in files] == ["data/captions.csv", "images/cat.png", "images/dog.png", "images/sky.bmp"]
    assert files[0] == {"path": "data/captions.csv", "sha256": hashlib.sha256(csv_bytes).hexdigest(),
                        "size": len(csv_bytes), "role": "input-set", "format": "csv"}
    assert {f["role"] for f in files[1:]} == {"image"}


def test_verify_names_the_csv_that_was_edited_after_the_run(tmp_path):
    out = _run_csv_spec(tmp_path)
    csv_path = tmp_path / "specs/data/captions.csv"
    csv_path.write_text(csv_path.read_text().replace("red chair", "blue chair"))
    r = harness("verify", str(out), cwd=tmp_path)
    assert r.returncode == 5, r.stdout + r.stderr
    assert "input       data/captions.csv: local input changed since the run" in r.stdout
    assert "payloads differ because local inputs changed since the run: data/captions.csv" in r.stdout


def test_jsonl_input_set_is_recorded(tmp_path):
    (tmp_path / "t.jsonl").write_text('{"id": "a", "t": "one"}\n{"id": "b", "t": "two"}\n')
    (tmp_path / "spec.yaml").write_text("version: 1\nname: j\nmodels: [qwen3-vl-embedding]\n"
                                        "inputs:\n  - from: t.jsonl\n    text: \"{{ row.t }}\"\n")
    assert harness("run", "spec.yaml", cwd=tmp_path).returncode == 0
    files = json.loads((tmp_path / "output/j/manifest.json").read_text())["inputs"]["files"]
    assert [(f["path"], f["role"], f["format"]) for f in files] == [("t.jsonl", "input-set", "jsonl")]
