"""Docs stay true: the README's spec reference is the one generated from the schema."""

from __future__ import annotations

import re
import shutil

import pytest

from harness.spec.schemadoc import spec_reference
from tests.helpers import REPO, harness


def test_readme_spec_reference_matches_the_schema():
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    section = re.search(r"<!-- spec-reference:start -->\n(.*)<!-- spec-reference:end -->", readme, re.S)
    assert section, "README lost its generated spec reference"
    assert section.group(1) == spec_reference(), "regenerate it with `harness schema --markdown`"


def test_readme_test_command_is_what_ci_runs():
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    ci = (REPO / ".ci" / "run").read_text(encoding="utf-8")
    command = re.search(r"# 2\. set up and run the tests\n(.+)\n", readme).group(1)
    assert command in ci


def spec_blocks():
    """Every YAML block in the READMEs and docs/ that is a spec (it says `version: 1`)."""
    for doc in ("README.md", "README.zh-CN.md", *(f"docs/{p.name}" for p in (REPO / "docs").glob("*.md"))):
        text = (REPO / doc).read_text(encoding="utf-8")
        for m in re.finditer(r"```yaml\n(.*?)```", text, re.S):
            if re.search(r"^version:\s*1\b", m.group(1), re.M):
                yield pytest.param(m.group(1), id=f"{doc}:{text[:m.start()].count(chr(10)) + 2}")


@pytest.mark.parametrize("block", list(spec_blocks()))
def test_every_spec_in_the_docs_validates(block, tmp_path):
    """A spec the docs show is one a reader can copy: it validates beside the examples' files
    (issue 26, item 6: the README's own showcase spec failed)."""
    for folder in ("images", "data"):
        shutil.copytree(REPO / "specs" / folder, tmp_path / folder)
    (tmp_path / "spec.yaml").write_text(block, encoding="utf-8")
    r = harness("validate", "spec.yaml", cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
