"""Bad input never crashes: file:line:col messages with hints, exit 3, nothing written."""

from __future__ import annotations

import re

import pytest

from tests.helpers import copy_images, harness, write_spec

GOOD_HEAD = """\
version: 1
name: t
models: [qwen3-vl-embedding]
"""


def run_bad(tmp_path, text, command="run"):
    spec = write_spec(tmp_path, text)
    r = harness(command, spec.name, cwd=tmp_path)
    assert "Traceback" not in r.stderr
    assert not (tmp_path / "output").exists() or not any((tmp_path / "output").iterdir()), "nothing may be written"
    return r


def lines(r):
    return [l for l in r.stderr.splitlines() if l.startswith("spec.yaml:")]


def test_every_error_is_reported_together_in_file_order_with_line_col_and_hint(tmp_path):
    r = run_bad(tmp_path, """\
        version: 1
        name: t
        regoin: cn-beijing
        models:
          - qwen3-vl-embeding
          - name: qwen2.5-vl-embedding
            dimensions: [2560]
        dimensions: [1024]
        inputs:
          - id: a
            text: hello
          - text: x
            image: y
        """)
    assert r.returncode == 3
    got = lines(r)
    assert got[0].startswith("spec.yaml:3:1: unknown key 'regoin'") and "did you mean 'region'?" in got[0]
    assert got[1].startswith("spec.yaml:5:5: unknown model 'qwen3-vl-embeding'") and "qwen3-vl-embedding" in got[1]
    assert got[2].startswith("spec.yaml:7:18: qwen2.5-vl-embedding does not support output dimension 2560")
    assert "2048, 1024, 768, 512" in got[2]
    assert got[3].startswith("spec.yaml:12:5:") and "exactly one of" in got[3]
    positions = [tuple(map(int, re.match(r"spec.yaml:(\d+):(\d+)", l).groups())) for l in got]
    assert positions == sorted(positions)


@pytest.mark.parametrize("text, expected", [
    ("version: 1\nname: t\ninputs: [\n", r"spec.yaml:4:1: invalid YAML"),
    ("version: 1\nname: t\nname: u\ninputs: [{text: a}]\n",
     r"spec.yaml:3:1: duplicate key 'name' \(first defined at line 2\)"),
    ("version: 1\nname: t\ninputs: []\n", r"spec.yaml:3:1: inputs is empty"),
    ("version: 1\nname: t\ninputs: [{text: a}]\ndimensions: [1024, \"x\"]\n", r"spec.yaml:4:\d+: dimensions"),
    ("version: 1\nname: ../../etc\ninputs: [{text: a}]\n", r"spec.yaml:2:7: name \"../../etc\" is not allowed"),
    ("version: 1\nname: t\ninputs: [{id: ../x, text: a}]\n",
     r"spec.yaml:3:\d+: inputs\[0\].id .../x. is not a valid input id"),
    ("version: 1\nname: t\nmodels: [multimodal-embedding-v1]\ndimensions: [512]\ninputs: [{text: a}]\n",
     r"spec.yaml:4:\d+: multimodal-embedding-v1 does not support output dimension 512 \(it supports: 1024\)"),
    ("version: 1\nname: t\nmodels: [local/e5-small]\ninputs: [{image: https://x/y.png}]\n",
     r"local/e5-small does not accept image input \(it accepts: text\).*modalities"),
    ("version: 1\nname: t\nmodels: [tongyi-embedding-vision-plus]\ninputs: [{fused: {text: a, image: https://x/y.png}}]\n",
     r"does not fuse modalities"),
    ("version: 1\nname: t\nparameters: {res_level: 1}\ninputs: [{text: a}]\n",
     r"spec.yaml:3:\d+: qwen3-vl-embedding does not accept parameter 'res_level'"),
    ("version: 1\nname: t\ninputs: [{video: clip.mp4}]\n", r"spec.yaml:3:\d+: video 'clip.mp4' is not a URL"),
    ("version: 1\nname: t\ninputs: [{id: a, text: x}, {id: a, text: y}]\n", r"duplicate input id 'a'"),
    # the same text twice, no ids: the default id repeats, and the message says why (not "input 'text-…'" thrice)
    ("version: 1\nname: t\ninputs: [{text: a cat}, {text: a dog}, {text: a cat}]\n",
     r"spec.yaml:3:\d+: duplicate input id 'text-[0-9a-f]{12}': this input has the same content as an earlier "
     r"inline input, and a default id is made from it \(drop the repeat, or give it its own `id:`\)"),
    ("version: 1\nname: t\ninputs: [{id: a, text: x}, {id: a, image: gone.png}]\n",
     r"spec.yaml:3:\d+: duplicate input id 'a'(.|\n)*gone.png' does not exist"),
    ("- just\n- a list\n", r"spec.yaml:1:1: a spec is a YAML mapping"),
])
def test_each_kind_of_mistake_gets_a_located_message(tmp_path, text, expected):
    r = run_bad(tmp_path, text)
    assert r.returncode == 3, r.stderr
    assert re.search(expected, r.stderr), r.stderr


@pytest.mark.slow    # seconds of YAML expansion, by design
def test_alias_bomb_is_refused_quickly(tmp_path):
    rows = ['a: &a ["x","x","x","x","x","x","x","x","x"]']
    for prev, name in zip("abcdefgh", "bcdefghi"):
        rows.append(f"{name}: &{name} [" + ",".join([f"*{prev}"] * 9) + "]")
    r = run_bad(tmp_path, "\n".join(rows) + "\n")
    assert r.returncode == 3
    assert "alias bomb" in r.stderr


def test_oversized_spec_file_is_refused(tmp_path):
    big = "version: 1\nname: t\ninputs:\n" + "  - text: " + "x" * 1000 + "\n" * 1
    (tmp_path / "spec.yaml").write_text(big * 1, encoding="utf-8")
    with open(tmp_path / "spec.yaml", "a") as f:
        f.write("#" + "y" * (11 * 1024 * 1024) + "\n")
    r = harness("validate", "spec.yaml", cwd=tmp_path)
    assert r.returncode == 3 and "larger than 10 MB" in r.stderr


def test_missing_unreadable_not_image_and_oversized_images(tmp_path):
    copy_images(tmp_path)
    (tmp_path / "notes.png").write_text("not really a png")
    (tmp_path / "big.png").write_bytes((tmp_path / "images" / "cat.png").read_bytes() + b"\0" * 5_100_000)
    locked = tmp_path / "locked.png"
    locked.write_bytes((tmp_path / "images" / "cat.png").read_bytes())
    locked.chmod(0)
    r = run_bad(tmp_path, """\
        version: 1
        name: t
        inputs:
          - image: nowhere.png
          - image: notes.png
          - image: big.png
          - image: images/cat.png
        """)
    assert r.returncode == 3
    assert "spec.yaml:4:12: image file 'nowhere.png' does not exist" in r.stderr
    assert "spec.yaml:5:12: 'notes.png' is not an image" in r.stderr
    assert re.search(r"spec.yaml:6:\d+: .*big.png' is 5,100,\d+ bytes; qwen3-vl-embedding takes at most 5,000,000",
                     r.stderr)


def test_template_errors_name_the_row_and_the_fields(tmp_path):
    (tmp_path / "rows.csv").write_text("id,caption\n1,a cat\n2,a dog\n", encoding="utf-8")
    r = run_bad(tmp_path, """\
        version: 1
        name: t
        inputs:
          - from: rows.csv
            id: "c-{{ row.id }}"
            text: "{{ row.captoin }}"
        """)
    assert r.returncode == 3
    assert "rows.csv row 1" in r.stderr and "captoin" in r.stderr and "fields available: caption, id" in r.stderr
    r = run_bad(tmp_path, """\
        version: 1
        name: t
        inputs:
          - from: rows.csv
            text: "{{ row.caption "
        """)
    assert r.returncode == 3 and "spec.yaml:5:" in r.stderr and "template error" in r.stderr


def test_sandbox_blocks_attribute_escapes(tmp_path):
    (tmp_path / "rows.csv").write_text("id,caption\n1,a cat\n", encoding="utf-8")
    r = run_bad(tmp_path, """\
        version: 1
        name: t
        inputs:
          - from: rows.csv
            text: "{{ row.__class__.__mro__[1].__subclasses__() }}"
        """)
    assert r.returncode == 3 and "Traceback" not in r.stderr


def test_failed_run_leaves_the_previous_output_untouched(tmp_path):
    spec = write_spec(tmp_path, GOOD_HEAD + "inputs: [{id: a, text: hello}]\n")
    assert harness("run", str(spec), cwd=tmp_path).returncode == 0
    before = (tmp_path / "output/t/manifest.json").read_bytes()
    write_spec(tmp_path, GOOD_HEAD + "inputs: [{id: a, text: hello}, {id: a, text: again}]\n")
    r = harness("run", str(spec), cwd=tmp_path)
    assert r.returncode == 3
    assert (tmp_path / "output/t/manifest.json").read_bytes() == before
    assert [p.name for p in (tmp_path / "output").iterdir()] == ["t"], "no staging folder left behind"
