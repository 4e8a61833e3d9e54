"""README.zh-CN.md stays in step with README.md: the same code blocks, commands and exit codes.

Compared as sets, so a command or exit code added to one README and not the other is named."""

from __future__ import annotations

import re

from tests.helpers import REPO

EN = REPO / "README.md"
ZH = REPO / "README.zh-CN.md"
FENCE = re.compile(r"^```[^\n]*\n.*?^```$", re.S | re.M)


def read(path):
    return path.read_text(encoding="utf-8")


def table_rows(text, first_headers):
    """First cells of the rows of every Markdown table whose first header cell is one of `first_headers`."""
    cells, in_table = [], False
    for line in text.splitlines():
        if not line.startswith("|"):
            in_table = False
            continue
        first = line.strip("|").split("|")[0].strip()
        if not in_table:
            in_table = first in first_headers
            header = True
            continue
        if header:  # the |---| line
            header = False
            continue
        cells.append(first)
    return cells


def commands(text):
    return {m.group(1) for cell in table_rows(text, {"command", "命令"})
            for m in [re.match(r"`harness (\w+)", cell)] if m}


def exit_codes(text):
    return {int(cell) for cell in table_rows(text, {"code", "退出码"}) if cell.isdigit()}


def first_block_after(text, heading):
    at = text.index(heading)
    return FENCE.search(text, at).group(0)


def slug(heading):
    """GitHub's anchor for a heading."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def test_each_readme_links_the_other_at_its_top():
    assert "[中文说明](README.zh-CN.md)" in read(EN).splitlines()[:3]
    assert "(README.md)" in "\n".join(read(ZH).splitlines()[:3])


def test_every_code_block_of_the_chinese_readme_is_in_the_english_one():
    en = read(EN)
    blocks = FENCE.findall(read(ZH))
    assert len(blocks) >= 2, "README.zh-CN.md lost its quick start or spec example"
    missing = [b for b in blocks if b not in en]
    assert missing == [], "these README.zh-CN.md code blocks differ from README.md's: copy them over"


def test_quick_start_is_the_same():
    assert first_block_after(read(ZH), "## 快速开始") == first_block_after(read(EN), "## Quick start")


def test_commands_tables_name_the_same_commands():
    en, zh = commands(read(EN)), commands(read(ZH))
    assert len(en) >= 10, "README.md's commands table was not found"
    assert {"only in README.md": en - zh, "only in README.zh-CN.md": zh - en} == {
        "only in README.md": set(), "only in README.zh-CN.md": set()}


def test_exit_code_tables_list_the_same_codes():
    en, zh = exit_codes(read(EN)), exit_codes(read(ZH))
    assert {0, 1, 2, 3, 70, 130} <= en, "README.md's exit-code table was not found"
    assert {"only in README.md": en - zh, "only in README.zh-CN.md": zh - en} == {
        "only in README.md": set(), "only in README.zh-CN.md": set()}


def test_links_into_the_english_readme_land_on_a_heading():
    anchors = {slug(h) for h in re.findall(r"^#+ (.+)$", read(EN), re.M)}
    linked = set(re.findall(r"\(README\.md#([\w\-]+)\)", read(ZH)))
    assert linked - anchors == set()
