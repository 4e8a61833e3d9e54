"""Issue 14 (goals 1 and 5): the fast paths answer exactly as the slow ones.

libyaml's parser and the pure-Python one give the same values, positions and errors; the quick
schema check never passes what jsonschema refuses, and an invalid spec's messages are the same
with it; every example spec writes the same bytes either way; a large inline spec takes the fast
paths (libyaml, the quick schema check), so it costs about what the same inputs from a CSV file
cost; a one-shot command does not import what it does not use. How fast each path is, is measured
in bench/bench_inline.py, not here.
"""

from __future__ import annotations

import copy
import json
import random
import re
import shutil
import subprocess
import sys

import pytest

from harness.errors import HarnessError
from harness.plan.build import build_plan
from harness.spec import load as spec_mod
from harness.spec import schemafast, yamlpos
from harness.spec.load import SPEC_SCHEMA, read_spec, schema_documents
from tests.helpers import SPECS, cli_env, harness, tree, write_spec

EXAMPLES = sorted(SPECS.glob("*.yaml"))


def outcome(text: str, pure: bool):
    """What yamlpos.load gives: (values, positions) or the problem with its place."""
    try:
        value, pos = yamlpos.load(text, pure=pure)
    except yamlpos.YamlProblem as e:
        return ("problem", e.message, e.line, e.col, e.hint)
    pos.of(())                                     # find the positions a message would use
    return ("ok", repr(value), pos.value, pos.key)


# YAML texts that take every branch: errors, aliases, merges, tags, odd scalars, deep nesting
CORPUS = [
    "version: 1\nname: t\ninputs: [\n",
    "version: 1\nname: t\nname: u\n",
    "a: 1\n---\nb: 2\n",
    "",
    "# only a comment\n",
    "- just\n- a list\n",
    "a: &x [1, 2]\nb: *x\n",
    "base: &b {text: hi}\ninputs:\n  - <<: *b\n    id: a\n",
    "inputs:\n  - <<: {text: hi}\n    id: a\n",
    "a: *nowhere\n",
    "a: &a [*a]\n",
    "&k key: 1\n*k : 2\n",
    "a: \"\\ud800\"\n",
    "a: \"\\ud83d\\ude00 cat\"\n",
    "a: " + "9" * 5000 + "\n",
    "a: .nan\nb: -.inf\nc: 1e3\nd: 0x1F\ne: 0o17\nf: 1_000\n",
    "a: !!str 12\nb: !!int '7'\nc: !!binary aGk=\nd: !custom x\n",
    "a: 2024-01-02\nb: 2024-01-02T03:04:05Z\nc: yes\nd: off\ne: ~\nf: null\n",
    "? [1, 2]\n: complex key\n",
    "{a:1, b: [x,y], 'c': \"d\"}\n",
    "a:\n\t- tab\n",
    "key: 'single ''quoted'''\nother: |\n  block\n  text\nfolded: >\n  one\n  two\n",
    "ключ: значение\n絵: 🐱\n",
    "a: b: c\n",
    "a:\n- 1\n - 2\n",
    "%YAML 1.1\n---\na: 1\n",
    "a: 1\n...\n",
    "1: int key\n2.5: float key\nnull: null key\ntrue: bool key\n",
    "[" * 150 + "]" * 150,
    "[" * 400 + "]" * 400,
    "".join("  " * i + "k:\n" for i in range(120)) + "  " * 120 + "v\n",
    "a: \x07bell\n",
    "a: 1\r\nb: 2\r\n",
    "\ufeffa: bom\n",
    "a: \u2028line separator\n",
]


@pytest.mark.parametrize("text", CORPUS + [p.read_text(encoding="utf-8") for p in EXAMPLES])
def test_both_yaml_paths_give_the_same_values_positions_and_errors(text):
    assert outcome(text, pure=False) == outcome(text, pure=True)


EDITS = list(":-[]{}&*!|>'\"#\t ,?%@`\\\n\r~=.") + ["\u00e9", "\u2028", "\x85", "\ufeff", "<<", "0x", "---", "..."]


@pytest.mark.slow          # 600 mutants through both parsers: seconds
def test_mutated_example_specs_read_the_same_by_both_yaml_paths():
    """Random edits of the examples (characters deleted, doubled or inserted) make every kind of
    broken YAML; whatever the pure path says, the C path says too. (This is how the texts the
    two parsers read differently were found; 30,000 such mutants agreed before this was written.)"""
    rng = random.Random(14)
    texts = [p.read_text(encoding="utf-8") for p in EXAMPLES] + [c for c in CORPUS if len(c) > 20]
    for n in range(600):
        text = rng.choice(texts)
        for _ in range(rng.randint(1, 5)):
            i = rng.randrange(len(text))
            text = rng.choice([text[:i] + text[i + 1:], text[:i] + text[i] + text[i:],
                               text[:i] + rng.choice(EDITS) + text[i:]])
        assert outcome(text, pure=False) == outcome(text, pure=True), (n, text)


def _slow_paths(monkeypatch) -> list[str]:
    """A list that records each use of what makes a large inline spec slow: the pure-Python YAML
    path, the positions of every node (the C path finds them only when a message needs one), and
    jsonschema over the document. (bench/bench_inline.py measures how much each one costs.)"""
    used: list[str] = []
    pure, positions, validator = yamlpos._load_pure, yamlpos._positions_c, spec_mod._validator
    monkeypatch.setattr(yamlpos, "_load_pure", lambda text: used.append("pure YAML") or pure(text))
    monkeypatch.setattr(yamlpos, "_positions_c", lambda text: used.append("positions") or positions(text))
    monkeypatch.setattr(spec_mod, "_validator", lambda: used.append("jsonschema") or validator())
    return used


def test_a_large_inline_spec_is_read_by_libyaml_with_positions_on_first_use(monkeypatch):
    """The C path is what reads a large inline spec several times faster than the pure path
    (bench/bench_inline.py part 2); here: that it is the path taken, and answers the same."""
    assert yamlpos._CLoader is not None, "PyYAML without libyaml: every spec would take the pure-Python path"
    text = "version: 1\nname: t\ninputs:\n" + "".join(
        f"  - id: t-{i}\n    text: A short caption number {i} about a cat\n" for i in range(5000))
    used = _slow_paths(monkeypatch)
    value, pos = yamlpos.load(text, pure=False)
    assert len(value["inputs"]) == 5000 and used == []
    where = pos.of(("inputs", 4999, "text"))
    assert used == ["positions"]                                      # found when first asked
    monkeypatch.undo()
    pure_value, pure_pos = yamlpos.load(text, pure=True)
    assert pure_value == value and pure_pos.of(("inputs", 4999, "text")) == where == (10003, 11)


# -- the quick schema check ---------------------------------------------------------------

def _mutants(doc: dict, rng: random.Random, count: int):
    """Copies of `doc` with one value replaced, one key added or one removed, at random depth."""
    replacements = ["", "x", "images/cat.png", 0, -1, 1, 1.5, 1.0, 2 ** 40, True, False, None, [], {}, ["x"],
                    [1, 1], ["a", "a"], {"text": "x"}, {"from": "d.csv", "text": "{{ row.t }}"}, "https://x/y.png",
                    "a" * 300, "../x", "all", "default", "cn-beijing", 1024]
    for _ in range(count):
        out = copy.deepcopy(doc)
        node, path = out, []
        while isinstance(node, (dict, list)) and node and rng.random() < 0.7:
            key = rng.choice(list(node)) if isinstance(node, dict) else rng.randrange(len(node))
            if not isinstance(node[key], (dict, list)) or not node[key]:
                break
            node, path = node[key], path + [key]
        action = rng.random()
        if isinstance(node, dict) and node and action < 0.2:
            node.pop(rng.choice(list(node)))
        elif isinstance(node, dict) and action < 0.35:
            node[rng.choice(["extra", "id", "text", "image", "video", "fused", "from", "format", "models",
                             "dimensions", "name", "query"])] = rng.choice(replacements)
        elif isinstance(node, dict) and node:
            node[rng.choice(list(node))] = rng.choice(replacements)
        elif isinstance(node, list) and node:
            node[rng.randrange(len(node))] = rng.choice(replacements)
        yield out


def _jsonschema_errors(doc) -> list:
    import jsonschema

    schema, registry = spec_mod.load_schemas()
    return list(jsonschema.Draft202012Validator(schema, registry=registry).iter_errors(doc))


def test_quick_schema_check_never_passes_what_jsonschema_refuses():
    checker = schemafast.Checker(schema_documents())
    rng = random.Random(5)
    docs = [yamlpos.load(p.read_text(encoding="utf-8"))[0] for p in EXAMPLES]
    for doc in docs:
        assert checker.valid(doc, SPEC_SCHEMA), "every example spec should take the quick path"
    vouched = refused = 0
    for doc in docs:
        for mutant in _mutants(doc, rng, 400):
            if checker.valid(mutant, SPEC_SCHEMA):
                vouched += 1
                assert _jsonschema_errors(mutant) == [], json.dumps(mutant)[:400]
            else:
                refused += 1
    assert vouched > 100 and refused > 100        # the mutants tried both answers


@pytest.mark.parametrize("item", [
    {"text": "a"}, {"id": "x", "image": "i.png"}, {"video": "https://v/x.mp4", "models": ["m"]},
    {"text": ""}, {"text": 1}, {"id": "", "text": "a"}, {"text": "a", "image": "b"}, {"text": "a", "extra": 1},
    {"text": "a", "models": []}, {"text": "a", "models": ["m", "m"]}, {"text": "a", "models": [""]},
    {"text": "a", "format": "csv"}, {"from": "x.csv", "text": "t"}, {}, [], "text", None,
])
def test_the_common_input_shape_is_judged_as_the_schema_judges_it(item):
    doc = {"version": 1, "name": "t", "inputs": [item]}
    if schemafast.plain_input(item):
        assert _jsonschema_errors(doc) == []


def _problems(path) -> list[str]:
    try:
        with build_plan(read_spec(path)) as plan:
            return [p.render() for p in plan.warnings]
    except HarnessError as e:
        return [p.render() for p in e.problems]


BAD_SPEC = """\
version: 1
name: t
regoin: cn-beijing
models:
  - qwen3-vl-embeding
  - name: qwen2.5-vl-embedding
    dimensions: [2560, x]
inputs:
  - id: a
    text: hello
  - text: x
    image: y
  - {text: ""}
  - id: ok-2
    text: fine
  - {id: "../x", text: a}
  - {fused: {text: a}}
  - {from: data.csv, text: "{{ row.t }}", multi_images: [a]}
  - {text: b, models: [qwen3-vl-embedding, qwen3-vl-embedding]}
  - {video: clip.mp4, format: csv}
execution: {concurrency: 0}
checks:
  - {similarity: {a: a, b: nope, min: 2}}
"""


def test_an_invalid_spec_gets_the_same_messages_with_the_quick_paths(tmp_path, monkeypatch):
    """Every message (and its line:col) as jsonschema over everything and the pure YAML path give."""
    path = write_spec(tmp_path, BAD_SPEC)
    fast = _problems(path)
    monkeypatch.setattr(schemafast.Checker, "valid", lambda self, *a, **k: False)
    monkeypatch.setenv(yamlpos.PURE_ENV, "1")
    spec_mod._validator.cache_clear()
    try:
        slow = _problems(path)
    finally:
        spec_mod._validator.cache_clear()
    assert fast == slow and len(fast) > 10
    assert any(re.search(r"spec.yaml:7:24: models\[1\].dimensions\[1\] must be an integer", line) for line in fast)


@pytest.mark.parametrize("example", [p.name for p in EXAMPLES])
def test_every_example_spec_writes_the_same_bytes_on_both_yaml_paths(tmp_path, example):
    shutil.copytree(SPECS, tmp_path / "specs")
    runs = {}
    for pure in ("0", "1"):
        r = harness("run", f"specs/{example}", "--output", f"out-{pure}", "--quiet", cwd=tmp_path,
                    env={yamlpos.PURE_ENV: pure})
        assert r.returncode == 0, r.stderr
        (out,) = (tmp_path / f"out-{pure}").iterdir()
        files = tree(out)
        runs[pure] = (json.loads(files["manifest.json"])["digest"],
                      {k: v for k, v in files.items() if k.startswith(("payloads/", "inputs.jsonl"))})
        assert runs[pure][1]
    assert runs["0"] == runs["1"]


# -- cost at size and at start-up ---------------------------------------------------------

def test_inline_inputs_validate_on_the_fast_paths_as_the_same_inputs_from_csv_do(tmp_path, monkeypatch):
    """An inline spec cost 4-6× the same inputs from a CSV file because of the pure YAML path and
    jsonschema over every input; with neither taken it costs about the same (measured: `harness
    validate` and `harness run`, inline vs CSV, in bench/bench_inline.py part 1)."""
    n = 2_000
    rows = [(i, f"A short caption number {i} about a cat on a red chair") for i in range(n)]
    (tmp_path / "texts.csv").write_text("id,text\n" + "".join(f"{i},{t}\n" for i, t in rows), encoding="utf-8")
    head = "version: 1\nname: t\nmodels: [qwen3-vl-embedding]\ndimensions: [1024, 512, 256]\ninputs:\n"
    write_spec(tmp_path, head + '  - from: texts.csv\n    id: "t-{{ row.id }}"\n    text: "{{ row.text }}"\n',
               "csv.yaml")
    write_spec(tmp_path, head + "".join(f"  - id: t-{i}\n    text: {t}\n" for i, t in rows), "inline.yaml")
    used = _slow_paths(monkeypatch)
    for name in ("csv", "inline"):
        r = harness("validate", f"{name}.yaml", cwd=tmp_path)
        assert (r.returncode, r.stdout) == (0, f"{name}.yaml: ok (3 cells, {n:,} inputs)\n"), r.stderr
    assert used == []


HEAVY = ("jsonschema", "jinja2", "httpx", "rich", "numpy")


def _imported(args: list[str], cwd) -> set[str]:
    r = subprocess.run([sys.executable, "-X", "importtime", "-m", "harness", *args], cwd=cwd,
                       capture_output=True, text=True, env=cli_env(cwd))
    assert r.returncode == 0, r.stderr[-2000:]
    return {m.group(1).split(".")[0] for m in re.finditer(r"\|\s+(\S+)\s*$", r.stderr, re.M)}


def test_one_shot_commands_import_only_what_they_use(tmp_path):
    prepared = _imported(["prepare", "--text", "a cat", "--output", "req.json"], tmp_path)
    assert not prepared & set(HEAVY), prepared & set(HEAVY)
    shutil.copytree(SPECS, tmp_path / "specs")
    validated = _imported(["validate", "specs/quickstart.yaml"], tmp_path)     # with checks
    assert not validated & set(HEAVY), validated & set(HEAVY)
    assert json.loads((tmp_path / "req.json").read_text())["input"]["contents"] == [{"text": "a cat"}]


def test_help_still_lists_every_command(tmp_path):
    r = harness("--help", cwd=tmp_path)
    assert r.returncode == 0
    for name in ("init", "validate", "plan", "run", "prepare", "verify", "schema", "diff", "sign", "models", "export"):
        assert re.search(rf"^\s+{name}\s", r.stdout, re.M), name
    r = harness("vaildate", "x.yaml", cwd=tmp_path)
    assert r.returncode == 2 and "validate" in r.stderr


def test_a_control_character_is_a_located_yaml_error_not_a_crash(tmp_path):
    (tmp_path / "spec.yaml").write_text("version: 1\nname: t\ninputs: [{text: \"a\x07b\"}]\n", encoding="utf-8")
    r = harness("validate", "spec.yaml", cwd=tmp_path)
    assert r.returncode == 3, r.stderr
    assert r.stderr.startswith("spec.yaml:3:19: invalid YAML: the control character 0x0007"), r.stderr


def test_a_tagged_value_that_cannot_be_read_is_a_located_yaml_error_not_a_crash(tmp_path):
    write_spec(tmp_path, "version: 1\nname: t\nexecution: {concurrency: !!int ''}\ninputs: [{text: a}]\n")
    r = harness("validate", "spec.yaml", cwd=tmp_path)
    assert r.returncode == 3, r.stderr
    assert r.stderr.startswith("spec.yaml:3:26: invalid YAML value: '' cannot be read as int"), r.stderr
