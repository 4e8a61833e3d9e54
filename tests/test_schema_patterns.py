"""Every `pattern` in the schemas means the same in Python (jsonschema: `re.search`, where `$`
also matches before a trailing newline) and in ECMA-262 (editors): none lets a trailing newline
in, so `name: "nl\\n"` can never become a folder name with a newline."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.helpers import harness, write_spec

SCHEMAS = sorted((Path(__file__).resolve().parents[1] / "schemas").glob("*.schema.json"))
# one value each pattern should accept; a new pattern needs a sample here
SAMPLES = ["cat-retrieval", "https://example.com/api/v1", "MILVUS_TOKEN", "recall@5", "mrr", "eng-Latn"]


def _patterns(node, where="#"):
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "pattern" and isinstance(value, str):
                yield where, value
            else:
                yield from _patterns(value, f"{where}/{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _patterns(value, f"{where}/{i}")


PATTERNS = [(f"{path.name}{where}", pattern) for path in SCHEMAS
            for where, pattern in _patterns(json.loads(path.read_text(encoding="utf-8")))]


def _sample(pattern: str) -> str:
    found = [s for s in SAMPLES if re.search(pattern, s)]
    assert found, f"no sample matches {pattern!r}; add one to SAMPLES"
    return found[0]


@pytest.mark.parametrize("where, pattern", PATTERNS, ids=[w for w, _ in PATTERNS])
def test_no_pattern_accepts_a_trailing_newline(where, pattern):
    sample = _sample(pattern)
    assert not re.search(pattern, sample + "\n"), f"{where}: {pattern!r} accepts {sample + chr(10)!r}"
    assert not re.search(pattern, sample + "\r\n")


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")
def test_patterns_mean_the_same_in_ecma_262():
    cases = [(pattern, s, bool(re.search(pattern, s))) for _, pattern in PATTERNS
             for s in (_sample(pattern), _sample(pattern) + "\n", "\n" + _sample(pattern), "a b")]
    script = ("const cases = JSON.parse(require('fs').readFileSync(0, 'utf8'));"
              "const bad = cases.filter(([p, s, want]) => [new RegExp(p), new RegExp(p, 'u')]"
              ".some(r => r.test(s) !== want));"
              "process.stdout.write(JSON.stringify(bad));")
    out = subprocess.run(["node", "-e", script], input=json.dumps(cases), capture_output=True, text=True,
                         check=True, timeout=60)
    assert json.loads(out.stdout) == []


def test_a_name_or_input_id_with_a_trailing_newline_is_refused_where_it_is_written(tmp_path):
    write_spec(tmp_path, """\
        version: 1
        name: "nl\\n"
        inputs:
          - id: "a\\n"
            text: hello
        """)
    r = harness("run", "spec.yaml", cwd=tmp_path)
    assert r.returncode == 3, r.stderr
    lines = [line for line in r.stderr.splitlines() if line.startswith("spec.yaml:")]
    assert lines[0].startswith('spec.yaml:2:7: name "nl\\n" is not allowed here')
    assert lines[1].startswith("spec.yaml:4:9: inputs[0].id 'a\\n' is not a valid input id")
    assert not (tmp_path / "output").exists()
