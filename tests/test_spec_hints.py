"""What `harness validate` says about a mistyped metric and a YAML syntax error, on both YAML paths
(libyaml and the pure-Python parser, HARNESS_PURE_YAML=1): the metric gets "did you mean" at the
metric's own file:line:col; the syntax error shows its source line with a caret under the column."""

from __future__ import annotations

import json

import pytest
from rich.cells import cell_len

from harness.spec import yamlpos
from tests.helpers import harness, write_spec

PATHS = [pytest.param({}, id="libyaml"), pytest.param({"HARNESS_PURE_YAML": "1"}, id="pure")]

CHECK = """\
version: 1
name: hints
models: [local/e5-small]
inputs:
  - {{id: a, text: one}}
  - {{id: b, text: two}}
checks:
  - retrieval:
      queries: {{a: [b]}}
{min}
"""


@pytest.mark.parametrize("env", PATHS)
@pytest.mark.parametrize("written, line, col, meant", [
    ("      min: {recal@1: 0.5}", 10, 13, "recall@1"),
    ("      min:\n        recall@1: 0.5\n        NDCG10: 0.4", 12, 9, "ndcg@10"),
    ("      min: {ndgc@10: 0.5, mrr: 0.2}", 10, 13, "ndcg@10"),
])
def test_a_mistyped_metric_gets_did_you_mean_at_its_place(tmp_path, env, written, line, col, meant):
    write_spec(tmp_path, CHECK.format(min=written))
    r = harness("validate", "spec.yaml", cwd=tmp_path, env=env)
    assert r.returncode == 3, r.stdout + r.stderr
    wrong = written.split("\n")[-1].split("{")[-1].split(":")[0].strip()
    [said] = [ln for ln in r.stderr.splitlines() if ln.startswith("spec.yaml:")]
    assert said.startswith(f"spec.yaml:{line}:{col}: checks[0].retrieval.min \"{wrong}\" is not allowed here "
                           f"(did you mean '{meant}'? A metric name:"), said
    # the place is the metric as written
    assert (tmp_path / "spec.yaml").read_text().splitlines()[line - 1][col - 1:].startswith(wrong)


def test_a_metric_nothing_is_close_to_gets_no_guess(tmp_path):
    write_spec(tmp_path, CHECK.format(min="      min: {latency: 0.5}"))
    r = harness("validate", "spec.yaml", cwd=tmp_path)
    assert r.returncode == 3 and "did you mean" not in r.stderr and "A metric name" in r.stderr, r.stderr


BROKEN = {
    "flow": ("version: 1\nname: x\nmodels: [local/e5-small\ninputs: []\n", 4, 7),
    "colon": ("version: 1\nname: x\ndescription: 猫猫: x\nmodels: [local/e5-small]\n", 3, 16),
    "end": ("version: 1\nname: x\nmodels: [local/e5-small", 3, 24),
}


@pytest.mark.parametrize("env", PATHS)
@pytest.mark.parametrize("case", sorted(BROKEN))
def test_a_yaml_syntax_error_shows_its_line_with_a_caret_under_the_column(tmp_path, env, case):
    text, line, col = BROKEN[case]
    (tmp_path / "spec.yaml").write_text(text, encoding="utf-8")
    r = harness("validate", "spec.yaml", cwd=tmp_path, env=env)
    assert r.returncode == 3
    said, shown, caret = r.stderr.splitlines()[:3]
    assert said.startswith(f"spec.yaml:{line}:{col}: invalid YAML: "), said
    source = text.split("\n")[line - 1]
    assert shown == f"  {line} | {source}"
    # the caret sits under the column as a terminal draws it (a CJK character is two cells wide)
    gutter = f"  {' ' * len(str(line))} | "
    assert caret.startswith(gutter) and caret.endswith("^") and set(caret[len(gutter):-1]) <= {" "}
    assert len(caret) - len(gutter) - 1 == cell_len(source[:col - 1])
    # --json carries the same two lines, apart from the message
    doc = json.loads(harness("validate", "spec.yaml", "--json", cwd=tmp_path, env=env).stdout)
    [problem] = doc["specs"][0]["problems"]
    assert problem["source"] == f"{shown}\n{caret}" and "\n" not in problem["message"]


def test_the_excerpt_of_a_long_line_or_a_control_character_stays_one_readable_line():
    long = "description: " + "word " * 100 + "}" + " tail" * 40
    col = long.index("}") + 1
    shown, caret = yamlpos.excerpt("a: 1\n" + long, 2, col).split("\n")
    assert len(shown) < yamlpos.EXCERPT_WIDTH + 12 and shown.startswith("  2 | …") and shown.endswith("…")
    assert shown[caret.index("^")] == "}"
    shown, caret = yamlpos.excerpt("name: a\x07b\tc\n", 1, 8).split("\n")
    assert shown == "  1 | name: a\ufffdb c" and shown[caret.index("^")] == "\ufffd"
    assert yamlpos.excerpt("a: 1\n", 9, 1) is None
