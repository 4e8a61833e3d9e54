"""Docs stay true: the README's spec reference is the one generated from the schema."""

from __future__ import annotations

import re

from harness.spec.schemadoc import spec_reference
from tests.helpers import REPO


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
