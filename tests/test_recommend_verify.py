"""verify and the reports laid out anew in format 3 (the recommendation first): a folder of format 2 keeps
verifying, its report.md and report.html compared by what they show of summary.json (the verdict and
every check line's status), so a status flipped in one of them is still a finding."""

from __future__ import annotations

import shutil

import pytest

from harness.audit.verify.reports import RELAID
from harness.folder import layout
from tests.helpers import REPO, cli_env, run_cli
from tests.test_verify_forgeries import rehash


@pytest.fixture
def format2(tmp_path):
    shutil.copytree(REPO / "tests" / "fixtures" / "format-2", tmp_path / "format-2")
    return tmp_path / "format-2" / "out" / "format-2"


def verify(tmp_path, folder):
    return run_cli("verify", str(folder), cwd=tmp_path, env=cli_env(tmp_path / "home", NO_COLOR="1", COLUMNS="300"))


def test_a_format_2_folder_verifies_and_says_how_its_reports_were_compared(tmp_path, format2):
    proc = verify(tmp_path, format2)
    assert proc.returncode == 0, proc.stdout
    assert ("report.html and report.md of evidence format 2 are laid out otherwise by this harness (format 3): "
            "their verdict and check statuses were compared with summary.json, not their bytes") in proc.stdout
    assert RELAID[2] == {layout.REPORT_MD, layout.REPORT_HTML}


@pytest.mark.parametrize("name, old, new", [
    ("report.html", '<tr class="check-passed">', '<tr class="check-failed">'),     # a line shown as failed
    ("report.html", 'id="verdict">PASS<', 'id="verdict">FAIL<'),
    ("report.md", "| ok |", "| **FAIL** |"),
    ("report.md", "Verdict: **PASS**", "Verdict: **FAIL**"),
])
def test_a_status_or_verdict_edited_in_a_format_2_report_is_a_finding(tmp_path, format2, name, old, new):
    text = (format2 / name).read_text(encoding="utf-8")
    assert old in text
    (format2 / name).write_text(text.replace(old, new, 1), encoding="utf-8")
    rehash(format2)
    proc = verify(tmp_path, format2)
    assert proc.returncode == 5, proc.stdout
    assert (f"{name}: differs from what the folder and summary.json render to: its verdict or check statuses are "
            "not summary.json's") in proc.stdout
