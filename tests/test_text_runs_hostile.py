"""A hostile review of the text-run fast path (harness.plan.build.TEXT_RUNS): each case is run with text
runs on and off and must give the same exit code, words and bytes (run folder's inputs and payloads,
`plan --json`, `validate --json`, `verify`). The cases aim at what the seeded differential of
tests/test_text_runs.py meets rarely or never: the marker strings `payloads.text_body` cuts bodies
with, in texts and in `instruct`; `enable_fusion`; the local and OpenAI-compatible bodies; `--model`,
`--cell` and an entry's `models:`; a payload budget crossed exactly at a chunk boundary; CSV/TSV/JSONL
oddities; a format-1 folder verified both ways. Two bugs found on the way (both paths shared them) are
pinned by the last two tests, fixed: a glob finding a file whose name is not UTF-8, and a duplicate
message that claimed the same content where only the id was the same.
"""

from __future__ import annotations

import json
import os
import shutil
import textwrap
from pathlib import Path

import pytest

from tests.helpers import REPO, tree

FLAG = "harness.plan.build.TEXT_RUNS"
CHUNK = 512


def _project(tmp_path: Path, spec: str, files: dict[str, str | bytes]) -> Path:
    project = tmp_path / "project"
    project.mkdir()
    (project / "spec.yaml").write_text(textwrap.dedent(spec).lstrip(), encoding="utf-8")
    for name, content in files.items():
        path = project / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
    return project


def _side(cli, monkeypatch, project: Path, flag: bool, args: tuple, commands: tuple) -> dict:
    out: dict = {}
    with monkeypatch.context() as m:
        m.setattr(FLAG, flag, raising=False)
        folder = project / f"out-{flag}"
        if "run" in commands:
            r = cli("run", "spec.yaml", "--output", folder.name, *args, cwd=project)
            norm = [s.replace(str(folder), "<OUT>").replace(folder.name, "<OUT>") for s in (r.stdout, r.stderr)]
            out["run"] = (r.returncode, *norm)
            runs = list(folder.iterdir()) if folder.exists() else []
            if runs:
                (run,) = runs
                files = tree(run)
                out["files"] = {k: v for k, v in files.items()
                                if k == "inputs.jsonl" or k.startswith("payloads/") or k == "validate.txt"}
                v = cli("verify", str(run), cwd=project)
                out["verify"] = (v.returncode, v.stdout.replace(str(folder), "<OUT>"),
                                 v.stderr.replace(str(folder), "<OUT>"))
        for command in ("plan", "validate"):
            if command in commands:
                r = cli(command, "spec.yaml", "--json", *args, cwd=project)
                out[command] = (r.returncode, r.stdout, r.stderr)
    return out


def both(cli, monkeypatch, project: Path, *args: str, commands=("run", "plan", "validate")) -> dict:
    """The same commands with text runs on and off: asserted equal; the text-runs side returned."""
    fast = _side(cli, monkeypatch, project, True, args, commands)
    slow = _side(cli, monkeypatch, project, False, args, commands)
    assert fast.keys() == slow.keys()
    for key in fast:
        if key == "files":
            assert sorted(fast[key]) == sorted(slow[key])
            for name in fast[key]:
                assert fast[key][name] == slow[key][name], name
        else:
            assert fast[key] == slow[key], key
    if "verify" in fast:
        assert fast["verify"][0] == 0, fast["verify"]
    return fast


def _lines(data: bytes) -> list[dict]:
    return [json.loads(line) for line in data.splitlines()]


# -- the body cut: markers, instruct, fusion, other providers ------------------------------------------

MARKS = ["\ue000\x01\ue000", "\ue000\x02\ue000", "\ue000\x03\ue000"]


def test_marker_strings_in_texts_and_instruct_and_fusion_and_other_providers(tmp_path, cli, monkeypatch):
    """`text_body` cuts a cell's body around marker texts U+E000 \\x01 U+E000 (and \\x02, \\x03): the same
    strings in the rows, in an inline text and in a model's `instruct` (which refuses the cut, or sits in
    its tail), with `enable_fusion: true` (a request per text), the local and OpenAI-compatible bodies."""
    spec = r'''
    version: 1
    name: marks
    models:
      - name: qwen3-vl-embedding
        dimensions: [256]
        parameters: {instruct: "\ue000\x01\ue000 odd \" \\ text", enable_fusion: true}
      - name: qwen2.5-vl-embedding
        parameters: {instruct: "\ue000\x03\ue000"}
      - name: tongyi-embedding-vision-plus-2026-03-06
        parameters: {instruct: "\ue000\x02\ue000\ue000\x01\ue000"}
      - local/e5-small
      - name: openai/Qwen3-VL-Embedding-2B
        base_url: http://127.0.0.1:9/v1
        dimensions: [256]
    inputs:
      - {from: a.jsonl, id: "{{ row.id }}", text: "{{ row.text }}"}
      - text: "inline \ue000\x02\ue000"
    '''
    texts = [MARKS[i % 3] * (1 + i % 2) + f" {i} \"q\" \\ \u2028 \x7f" for i in range(25)]
    rows = "".join(json.dumps({"id": f"m{i}", "text": t}) + "\n" for i, t in enumerate(texts))
    project = _project(tmp_path, spec, {"a.jsonl": rows})
    fast = both(cli, monkeypatch, project, commands=("run",))
    assert fast["run"][0] == 0, fast["run"]
    files = fast["files"]
    # every body holds the texts as they are, in order
    qwen = _lines(files["payloads/qwen3-vl-embedding-256/requests.jsonl"])
    assert len(qwen) == 26 and [b["input"]["contents"] for b in qwen[:25]] == [[{"text": t}] for t in texts]
    assert all(b["parameters"]["instruct"].startswith(MARKS[0]) for b in qwen)
    openai = _lines(files["payloads/openai--Qwen3-VL-Embedding-2B-256/requests.jsonl"])
    assert [t for b in openai for t in b["input"]] == texts + ["inline " + MARKS[1]]


def test_the_cut_reproduces_the_providers_body_for_every_text_model(tmp_path):
    """`payloads.text_body` against `payloads.render` for 1..7 awkward texts, every text model of the
    catalog (and a qwen3 cell whose `instruct` holds a marker): the same bytes, or no cut at all."""
    from harness.evidence import canonical_json
    from harness.inputs.types import text_input
    from harness.plan.batching import Batch
    from harness.plan.build import load_plan
    from harness.plan.payloads import render, text_body
    from harness.plan.write import _json_string

    spec = r'''
    version: 1
    name: cut
    models:
      - name: qwen3-vl-embedding
        parameters: {instruct: "x \ue000\x03\ue000 y", fps: 0.5}
      - qwen2.5-vl-embedding
      - tongyi-embedding-vision-plus
      - tongyi-embedding-vision-flash-2026-03-06
      - multimodal-embedding-v1
      - local/e5-small
      - {name: openai/e5-small, base_url: "http://127.0.0.1:9/v1"}
      - {name: openai/Qwen3-VL-Embedding-8B, base_url: "http://127.0.0.1:9/v1", dimensions: [4096, 256]}
    inputs:
      - {text: "one"}
    '''
    project = _project(tmp_path, spec, {})
    texts = MARKS + ["\ue000", "\x00\x1f\"\\", "猫 \u2028\u2029 🐱", " " * 3 + "x"]
    with load_plan(project / "spec.yaml", allow_hosts=["127.0.0.1"]) as plan:
        cuts = 0
        for cell in plan.cells:
            cut = text_body(cell)
            if cut is None:
                continue
            cuts += 1
            head, between, tail = cut
            for k in range(1, len(texts) + 1):
                chosen = texts[-k:]
                batch = Batch(1, [text_input(f"i{n}", t, ("inputs", 0), None) for n, t in enumerate(chosen)], k, False)
                assert head + between.join(map(_json_string, chosen)) + tail == canonical_json(render(cell, batch)), \
                    (cell.id, k)
        assert cuts >= 8


# -- filters, an entry's models, batching, several chunks ----------------------------------------------

FILTER_SPEC = '''
version: 1
name: filters
models:
  - {name: qwen3-vl-embedding, dimensions: [1024, 256]}
  - {name: qwen2.5-vl-embedding, modalities: [text, image]}
  - local/e5-small
batching: {max_contents: 3}
inputs:
  - {text: "inline zero"}
  - {from: a.csv, id: "{{ row.id }}", text: "{{ row.text }}", models: [local/e5-small, qwen3-vl-embedding]}
  - {from: b.jsonl, id: "b{{ row.id }}", text: "{{ row.text }}"}
  - {text: "inline one", id: in1, models: [qwen2.5-vl-embedding]}
  - {from: c.csv, text: "{{ row.text }}"}
'''


def _filter_files() -> dict[str, str]:
    return {"a.csv": "id,text\n" + "".join(f"a{i},t{i} é\n" for i in range(CHUNK + 10)),
            "b.jsonl": "".join(json.dumps({"id": f"{i}", "text": "猫" * (i % 7 + 1)}) + "\n" for i in range(40)),
            "c.csv": "id,text\n" + "".join(f'{"c%d" % i if i % 3 else ""},x{i}\n' for i in range(30))}


@pytest.mark.parametrize("args", [(), ("--cell", "qwen3-vl-embedding-256"), ("--model", "qwen2.5-vl-embedding"),
                                  ("--cell", "nope")])
def test_filters_entry_models_and_batching(tmp_path, cli, monkeypatch, args):
    project = _project(tmp_path, FILTER_SPEC, _filter_files())
    fast = both(cli, monkeypatch, project, *args)
    if args == ("--cell", "nope"):
        assert fast["run"][0] == 2 and "no cell matches --cell nope" in fast["run"][2]
        return
    assert fast["run"][0] == 0, fast["run"]
    cells = {c["id"]: c for c in json.loads(fast["plan"][1])["cells"]}
    if args == ("--model", "qwen2.5-vl-embedding"):       # not a.csv's rows (its `models:`); in1 and the rest
        (cell,) = cells.values()
        assert cell["contents"] == 1 + 40 + 30 + 1


# -- a payload budget crossed at a chunk's edge ----------------------------------------------------------

BUDGET_SPEC = '''
version: 1
name: budget
models: [qwen3-vl-embedding]
inputs:
  - {from: a.csv, id: "{{ row.id }}", text: "{{ row.text }}"}
  - {text: "inline one", id: in1}
'''
ROWS = [f"t{i:04d}é" for i in range(2 * CHUNK + 6)]     # 7 bytes each
FIRST = 7 * CHUNK


@pytest.mark.parametrize("budget", [FIRST, FIRST + 1, 7 * len(ROWS) + 9, 7 * len(ROWS) + 10])
def test_a_budget_crossed_at_a_chunk_boundary(tmp_path, cli, monkeypatch, budget):
    files = {"a.csv": "id,text\n" + "".join(f"a{i},{t}\n" for i, t in enumerate(ROWS))}
    project = _project(tmp_path, BUDGET_SPEC, files)
    fast = both(cli, monkeypatch, project, "--max-payload-bytes", str(budget))
    over = budget < 7 * len(ROWS) + len("inline one")
    assert (fast["run"][0] != 0) == over, fast["run"]
    assert ("over the budget" in fast["run"][2]) == over


# -- reading: CSV/TSV/JSONL oddities ---------------------------------------------------------------------

def test_csv_bom_crlf_quoted_newlines_blank_lines_header_only_tsv_and_spaced_ids(tmp_path, cli, monkeypatch):
    spec = '''
    version: 1
    name: oddcsv
    models: [qwen3-vl-embedding, local/e5-small]
    inputs:
      - {from: a.csv, id: " {{ row.id }} ", text: "{{ row.text }}"}
      - {from: h.csv, id: "{{ row.id }}", text: "{{ row.text }}"}
      - {from: t.tsv, id: "t{{ row.id }}", text: "x {{ row.text }} y"}
    '''
    a = "\ufeffid,text\r\n" + "".join(f'a{i},"multi\r\nline, {i}"\r\n\r\n' for i in range(CHUNK + 3))
    files = {"a.csv": a, "h.csv": "id,text\r\n", "t.tsv": "id\ttext\n1\thello, there\n\n2\t\"q\"\n"}
    fast = both(cli, monkeypatch, _project(tmp_path, spec, files))
    assert fast["run"][0] == 0, fast["run"]
    records = _lines(fast["files"]["inputs.jsonl"])
    assert [r["id"] for r in records[:2]] == ["a0", "a1"] and records[-1]["id"] == "t2"
    assert records[CHUNK]["from"] == f"a.csv row {CHUNK + 1}"
    assert len(records) == CHUNK + 3 + 2


def test_texts_only_whitespace_like_characters_are_empty_the_same_way(tmp_path, cli, monkeypatch):
    """str.strip() takes U+0085, U+2028, U+001C..U+001F: such a text alone is empty on both paths
    (U+3000 too); within a text it is kept."""
    texts = ["\x85", "\u2028", "\x1f", "ok", "\u3000", "\x1c\x1d", "a\x1fb"]
    spec = '''
    version: 1
    name: blank
    models: [qwen3-vl-embedding]
    inputs:
      - {from: w.jsonl, id: "{{ row.id }}", text: "{{ row.text }}"}
    '''
    rows = "".join(json.dumps({"id": f"w{i}", "text": t}) + "\n" for i, t in enumerate(texts))
    fast = both(cli, monkeypatch, _project(tmp_path, spec, {"w.jsonl": rows}))
    assert fast["run"][0] == 3
    for n in (1, 2, 3, 5, 6):
        assert f"w.jsonl line {n}: the text is empty" in fast["run"][2]
    assert "line 4:" not in fast["run"][2] and "line 7:" not in fast["run"][2]


def test_jsonl_default_ids_of_numbers_bools_and_nulls(tmp_path, cli, monkeypatch):
    spec = '''
    version: 1
    name: jids
    models: [qwen3-vl-embedding]
    inputs:
      - {from: a.jsonl, text: "{{ row.text }}"}
    '''
    rows = ['{"id": 1, "text": "a"}', '{"id": true, "text": "b"}', '{"id": null, "text": "c"}',
            '{"id": 1.5, "text": "d"}', '{"id": 100000000000000000000000, "text": "e"}', '{"id": "", "text": "f"}',
            '{"text": "g"}', '{"id": 0, "text": "h"}', '{"id": false, "text": "i"}']
    fast = both(cli, monkeypatch, _project(tmp_path, spec, {"a.jsonl": "\n".join(rows) + "\n"}))
    assert fast["run"][0] == 0, fast["run"]
    assert [r["id"] for r in _lines(fast["files"]["inputs.jsonl"])] == \
        ["1", "True", "a-3", "1.5", "100000000000000000000000", "a-6", "a-7", "0", "False"]


def test_duplicate_ids_between_two_sets_at_a_chunk_edge(tmp_path, cli, monkeypatch):
    spec = '''
    version: 1
    name: dups
    models: [qwen3-vl-embedding]
    inputs:
      - {from: a.csv, id: "{{ row.id }}", text: "{{ row.text }}"}
      - {from: b.csv, id: "{{ row.id }}", text: "{{ row.text }}"}
    '''
    files = {"a.csv": "id,text\n" + "".join(f"a{i},t{i}\n" for i in range(CHUNK + 1)),
             "b.csv": "id,text\n" + "".join(f"b{i},u{i}\n" for i in range(CHUNK - 1)) + f"a{CHUNK},dup\n"}
    fast = both(cli, monkeypatch, _project(tmp_path, spec, files))
    assert fast["run"][0] == 3
    assert f"duplicate input id 'a{CHUNK}' (b.csv row {CHUNK}; first used by a.csv row {CHUNK + 1})" in fast["run"][2]


# -- verify ----------------------------------------------------------------------------------------------

def test_a_format_1_folder_verifies_the_same_both_ways(tmp_path, cli, monkeypatch):
    """tests/fixtures/format-1: inline texts of local/e5-small, one file per request (legacy layout),
    re-derived through held text runs and through the per-input path."""
    shutil.copytree(REPO / "tests" / "fixtures" / "format-1", tmp_path / "format-1")
    run = tmp_path / "format-1" / "out" / "format-1"
    seen = {}
    for flag in (True, False):
        with monkeypatch.context() as m:
            m.setattr(FLAG, flag, raising=False)
            r = cli("verify", str(run), cwd=tmp_path)
        seen[flag] = (r.returncode, r.stdout, r.stderr)
    assert seen[True] == seen[False]
    assert seen[True][0] == 0 and "3 re-derived byte for byte" in seen[True][1]


def test_verify_of_a_forged_body_in_a_text_run_is_refused(tmp_path, cli, monkeypatch):
    """A body past the first (the cut, not the provider's own render) changed by one text, its index
    line's sha256 updated too: verify re-derives it and refuses, both ways."""
    project = _project(tmp_path, BUDGET_SPEC, {"a.csv": "id,text\n" + "".join(f"a{i},t{i}\n" for i in range(60))})
    r = cli("run", "spec.yaml", "--output", "out", cwd=project)
    assert r.returncode == 0, r.stderr
    run = project / "out" / "budget"
    bodies = run / "payloads" / "qwen3-vl-embedding-2560" / "requests.jsonl"
    lines = bodies.read_bytes().splitlines(keepends=True)
    assert len(lines) >= 3
    import hashlib
    old = lines[2][:-1]
    new = old.replace(b'"t41"', b'"t41 forged"')
    assert new != old
    lines[2] = new + b"\n"
    bodies.write_bytes(b"".join(lines))
    index = run / "payloads" / "qwen3-vl-embedding-2560" / "index.jsonl"
    index.write_bytes(index.read_bytes().replace(hashlib.sha256(old).hexdigest().encode(),
                                                 hashlib.sha256(new).hexdigest().encode()))
    for flag in (True, False):
        with monkeypatch.context() as m:
            m.setattr(FLAG, flag, raising=False)
            v = cli("verify", str(run), cwd=project)
        assert v.returncode != 0 and "requests.jsonl" in v.stdout + v.stderr, (flag, v.stdout, v.stderr)


# -- bugs found, fixed ----------------------------------------------------------------------------------------

def test_a_glob_reaching_a_non_utf8_folder_name_is_an_input_error_not_a_crash(tmp_path, cli, monkeypatch):
    """A `from:` glob (a texts set over files: `text: "{{ file.stem }}"`) that finds a file under a folder
    whose name is not UTF-8 (b"i\\xff") gave its row a label holding a lone surrogate (os.fsdecode's
    surrogateescape), and writing inputs.jsonl crashed, exit 70, on both paths (and at 2fd1e9b). Now the
    file is an input problem naming it (exit 3), as a text with a lone surrogate is, and nothing is written."""
    spec = '''
    version: 1
    name: glob
    models: [qwen3-vl-embedding]
    inputs:
      - {from: "i*/*.png", id: "{{ file.stem }}", text: "name {{ file.stem }}"}
    '''
    project = _project(tmp_path, spec, {"ia/b2.png": b"y"})
    try:
        os.mkdir(os.fsencode(project) + b"/i\xff")
    except OSError:      # pragma: no cover - a file system that refuses such names
        pytest.skip("the file system refuses a non-UTF-8 name")
    with open(os.fsencode(project) + b"/i\xff/c3.png", "wb") as f:
        f.write(b"z")
    for flag in (True, False):
        with monkeypatch.context() as m:
            m.setattr(FLAG, flag, raising=False)
            r = cli("run", "spec.yaml", "--output", f"out-{flag}", cwd=project)
        assert "internal error" not in r.stderr, (flag, r.stderr)
        assert r.returncode == 3, (flag, r.returncode, r.stderr)
        assert 'spec.yaml:5:' in r.stderr and 'i*/*.png finds "i\\xff/c3.png", whose name is not UTF-8' in r.stderr
        assert not (project / f"out-{flag}").exists()


def test_an_inline_default_id_taken_by_a_row_is_not_called_the_same_content(tmp_path, cli, monkeypatch):
    """An inline text without `id:` whose default id ("text-<sha256[:12]>" of its content) a CSV row took as
    its explicit id: the message said "this input has the same content as a.csv row 1", but the row's text
    differs, only the id is the same. That wording is kept for two inline inputs without `id:` (whose ids
    are both content hashes); here it says "first used by a.csv row 1", as 2fd1e9b did."""
    from harness.inputs.resolve import _default_id
    from harness.inputs.types import Part

    taken = _default_id("text", (Part("text", "hello"),))
    spec = '''
    version: 1
    name: same
    models: [qwen3-vl-embedding]
    inputs:
      - {from: a.csv, id: "{{ row.id }}", text: "{{ row.text }}"}
      - {text: "hello"}
    '''
    fast = both(cli, monkeypatch, _project(tmp_path, spec, {"a.csv": f"id,text\n{taken},something else\n"}),
                commands=("run",))
    assert fast["run"][0] == 3
    assert f"duplicate input id {taken!r}" in fast["run"][2]
    assert "first used by a.csv row 1" in fast["run"][2], fast["run"][2]
    assert "same content" not in fast["run"][2], fast["run"][2]
