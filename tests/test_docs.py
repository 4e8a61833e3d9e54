"""Docs stay true: the spec reference (docs/spec-reference.md) is the one generated from the schema, every
spec the docs show validates, every relative link of the READMEs and docs/ lands on a file and heading, and
the README stays a page a newcomer reads, pointing at each document in docs/."""

from __future__ import annotations

import re
import shutil

import pytest

from harness.spec.schemadoc import spec_reference
from tests.helpers import REPO, harness


def test_spec_reference_matches_the_schema():
    reference = (REPO / "docs" / "spec-reference.md").read_text(encoding="utf-8")
    section = re.search(r"<!-- spec-reference:start -->\n(.*)<!-- spec-reference:end -->", reference, re.S)
    assert section, "docs/spec-reference.md lost its generated spec reference"
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


DOCS = ["README.md", "README.zh-CN.md", *sorted(f"docs/{p.name}" for p in (REPO / "docs").glob("*.md"))]


def headings(text: str) -> set[str]:
    """The anchors GitHub gives a Markdown file's headings (lower case, punctuation dropped, spaces as
    hyphens, a repeated heading numbered), and any explicit `<a id=...>`."""
    found, seen = set(), {}
    for h in re.findall(r"^#{1,6} (.+)$", re.sub(r"```.*?```", "", text, flags=re.S), re.M):
        slug = re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-")
        n = seen.get(slug, 0)
        seen[slug] = n + 1
        found.add(slug if n == 0 else f"{slug}-{n}")
    return found | set(re.findall(r'<a (?:name|id)="([^"]+)"', text))


def relative_links(text: str) -> list[str]:
    """The relative link targets of Markdown text (code blocks and code spans hold no links)."""
    text = re.sub(r"`[^`\n]*`", "", re.sub(r"```.*?```", "", text, flags=re.S))
    return [t for t in re.findall(r"\]\(([^)\s]+)\)", text) if not re.match(r"[a-z][a-z0-9+.-]*:", t)]


def test_headings_are_anchored_as_github_does():
    assert headings("# Audit: what each layer proves\n## What a run writes (`output/<spec name>/`)\n"
                    "## 命令\n## spec 示例\n## A\n## A\n") == {
        "audit-what-each-layer-proves", "what-a-run-writes-outputspec-name", "命令", "spec-示例", "a", "a-1"}
    assert relative_links("[a](docs/x.md#y) `[b](no.md)` [c](https://e.com) [d](#top)") == ["docs/x.md#y", "#top"]


@pytest.mark.parametrize("doc", DOCS)
def test_every_relative_link_resolves(doc):
    """A link of the READMEs and docs/ lands on a file that exists and, into a Markdown file, on one of
    its headings (the README was cut into docs/: issue 26, item 13)."""
    source = REPO / doc
    broken = []
    for link in relative_links(source.read_text(encoding="utf-8")):
        path, _, anchor = link.partition("#")
        target = (source.parent / path) if path else source
        if not target.exists():
            broken.append(f"{link}: no such file")
        elif anchor and target.suffix == ".md" and anchor not in headings(target.read_text(encoding="utf-8")):
            broken.append(f"{link}: no such heading in {target.relative_to(REPO)}")
    assert broken == [], f"{doc}: {broken}"


def test_the_readme_is_a_page_and_points_at_every_document():
    """What a newcomer and a CI author need stays in the README (the two quick-start commands, the
    commands, a spec, the exit codes, the test time); the reference lives in docs/, each file linked."""
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert len(readme.splitlines()) < 250, "the README grew long again: put reference text in docs/"
    sections = re.findall(r"^## (.+)$", readme, re.M)
    for section in ("Quick start", "Commands", "A spec", "Exit codes", "Where to read more"):
        assert section in sections, section
    assert "# 1. set up and run the main job" in readme and "# 2. set up and run the tests" in readme
    assert re.search(r"The whole suite .* takes about \d+ seconds", readme.replace("\n", " "))
    assert '-m "not slow"' in readme
    linked = set(relative_links(readme)) | set(relative_links((REPO / "README.zh-CN.md").read_text(encoding="utf-8")))
    english = sorted(p.name for p in (REPO / "docs").glob("*.md") if not p.name.endswith(".zh-CN.md"))
    assert [name for name in english if f"docs/{name}" not in {link.partition("#")[0] for link in linked}] == []
    for moved in ("spec-reference", "executing", "run-folder", "checks", "audit"):
        assert (REPO / "docs" / f"{moved}.md").is_file(), moved
