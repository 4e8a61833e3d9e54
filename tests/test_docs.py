"""Docs stay true: the README's spec reference is the one generated from the schema."""

from __future__ import annotations

import re

from harness.schemadoc import spec_reference
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


def test_architecture_module_table_names_every_module():
    """docs/architecture.md's module table names each module and package of harness/, and
    nothing that does not exist."""
    doc = (REPO / "docs" / "architecture.md").read_text(encoding="utf-8")
    table = re.search(r"## Modules.*?\n\n(\|.*?)\n\n", doc, re.S).group(1)
    named = set()
    for row in table.splitlines()[2:]:
        named |= set(re.findall(r"`([\w/]+(?:\.py|/))`", row.split("|")[1]))
    pkg = REPO / "harness"
    actual = {p.name for p in pkg.glob("*.py") if p.name not in ("__init__.py", "__main__.py")}
    actual |= {f"{p.name}/" for p in pkg.iterdir() if (p / "__init__.py").is_file()}
    assert actual - named == set(), "add these to the module table of docs/architecture.md"
    assert {n for n in named if "/" not in n[:-1]} - actual == set(), "the module table names modules that do not exist"
