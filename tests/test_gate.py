"""Never PASS on nothing: through the real CLI with no key anywhere (what a fork's pull request
gets in CI), a run that executed no cell is FAIL with exit code 6, skipped cells and checks are
`skip` everywhere (validate.txt, summary.json, report.md, report.html, JUnit), and warnings are
`warn`, never passes."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
from junitparser import Failure, JUnitXml, Skipped

from harness.errors import ExitCode
from tests.helpers import SPECS, harness

SEED_CELLS = 8  # specs/seed-models.yaml: 3 DashScope models × their dimensions, none runs without a key


def lines(folder: Path) -> list[str]:
    return (folder / "validate.txt").read_text(encoding="utf-8").splitlines()


@pytest.fixture(scope="module")
def seed_run(tmp_path_factory):
    """`harness run specs/seed-models.yaml --execute` with no key anywhere."""
    tmp = tmp_path_factory.mktemp("seed")
    shutil.copytree(SPECS, tmp / "specs")
    proc = harness("run", "specs/seed-models.yaml", "--execute", "--output", "out", cwd=tmp)
    return proc, tmp / "out" / "seed-models"


def test_no_key_and_nothing_executed_is_fail_with_exit_code_6(seed_run):
    proc, folder = seed_run
    assert proc.returncode == ExitCode.NOTHING_EXECUTED == 6, proc.stdout + proc.stderr
    got = lines(folder)
    assert got[-1] == "FAIL"
    assert got[-2].startswith(f"FAIL executed: no cell executed ({SEED_CELLS} cells: no DashScope API key")
    skipped = [ln for ln in got if ln.startswith("skip execution [")]
    assert len(skipped) == SEED_CELLS and all(": not executed: no DashScope API key" in ln for ln in skipped)
    assert not any(ln.startswith("ok   execution") for ln in got)
    # the spec's checks on those cells could not run: skip, not ok
    assert [ln for ln in got if ln.startswith(("ok   vectors", "ok   retrieval"))] == []
    assert sum(ln.startswith(("skip vectors [", "skip retrieval [")) for ln in got) == 2 * SEED_CELLS
    assert "FAIL: " in proc.stdout and "PASS" not in proc.stdout
    assert all(len(ln) > 5 and ln[4] == " " for ln in got[:-1])  # the status is always 4 characters


def test_disputed_facts_are_warn_lines_not_passes(seed_run):
    _, folder = seed_run
    got = lines(folder)
    disputed = [ln for ln in got if " disputed-fact" in ln]
    assert disputed and all(ln.startswith("warn disputed-fact: ") for ln in disputed)
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["counts"]["warnings"] == len(disputed)
    assert {c["status"] for c in summary["checks"] if c["name"] == "disputed-fact"} == {"warning"}


def test_skipped_lines_are_counted_as_skipped_in_every_report(seed_run):
    _, folder = seed_run
    got = lines(folder)[:-1]
    n = {status: sum(ln.startswith(prefix) for ln in got)
         for status, prefix in (("passed", "ok  "), ("failed", "FAIL"), ("skipped", "skip"), ("warnings", "warn"))}
    assert n["skipped"] == 3 * SEED_CELLS and n["failed"] == 1 and n["warnings"] >= 1

    summary = json.loads((folder / "summary.json").read_text())
    assert summary["verdict"] == "FAIL"
    assert summary["counts"] == {"total": len(got), **n}
    assert sum(c["status"] == "skipped" for c in summary["checks"]) == n["skipped"]

    md = (folder / "report.md").read_text()
    assert "Verdict: **FAIL**" in md
    assert (f"{len(got)} checks: {n['passed']} passed, {n['failed']} failed, {n['skipped']} skipped, "
            f"{n['warnings']} warnings") in md
    assert len(re.findall(r"^\| skip \| execution \|", md, re.M)) == SEED_CELLS

    html = (folder / "report.html").read_text()
    assert f"{n['passed']} passed, {n['failed']} failed, {n['skipped']} skipped, {n['warnings']} warnings" in html
    assert html.count('class="check-skipped"') == n["skipped"]
    assert html.count('class="check-passed"') == n["passed"]

    xml = JUnitXml.fromfile(str(folder / "junit.xml"))
    cases = [case for suite in xml for case in suite]
    skipped = [c for c in cases if any(isinstance(r, Skipped) for r in c.result)]
    failed = [c for c in cases if any(isinstance(r, Failure) for r in c.result)]
    assert len(skipped) == n["skipped"] and [c.name for c in failed] == ["executed"]
    assert sum(c.is_passed for c in cases) == n["passed"]
    # warnings are not test cases (JUnit has no "warning"; a passing case would hide one)
    assert len(cases) == xml.tests == len(got) - n["warnings"]
    assert (xml.skipped, xml.failures, xml.errors) == (n["skipped"], 1, 0)
    for suite in xml:
        assert suite.skipped == sum(any(isinstance(r, Skipped) for r in c.result) for c in suite)
        assert suite.tests == len(list(suite))
    run_suite = next(s for s in xml if s.name == "seed-models.run")
    err = run_suite._elem.find("system-err")
    assert err is not None and err.text.count("warn disputed-fact:") == n["warnings"]


def test_verify_agrees_with_the_new_lines(seed_run):
    _, folder = seed_run
    proc = harness("verify", str(folder), cwd=folder.parent.parent)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_require_executed_makes_every_cell_that_did_not_execute_fail(tmp_path):
    shutil.copytree(SPECS, tmp_path / "specs")
    proc = harness("run", "specs/seed-models.yaml", "--execute", "--require-executed", "--output", "out",
                   cwd=tmp_path)
    # a required cell that cannot run is a provider failure (as with `execution.required`): 4 outranks 6
    assert proc.returncode == ExitCode.PROVIDER_ERROR, proc.stdout + proc.stderr
    got = lines(tmp_path / "out" / "seed-models")
    failed = [ln for ln in got if ln.startswith("FAIL execution [")]
    assert len(failed) == SEED_CELLS and all("not executed: no DashScope API key" in ln for ln in failed)
    assert got[-1] == "FAIL" and not any(ln.startswith("skip execution") for ln in got)


def test_fail_on_never_records_fail_but_exits_0(tmp_path):
    shutil.copytree(SPECS, tmp_path / "specs")
    proc = harness("run", "specs/seed-models.yaml", "--execute", "--fail-on", "never", "--output", "out",
                   cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert lines(tmp_path / "out" / "seed-models")[-1] == "FAIL"


def test_without_execute_nothing_executed_is_not_a_failure(tmp_path):
    shutil.copytree(SPECS, tmp_path / "specs")
    proc = harness("run", "specs/seed-models.yaml", "--output", "out", cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    got = lines(tmp_path / "out" / "seed-models")
    assert got[-1] == "PASS" and not any(" executed:" in ln for ln in got)
    assert any(ln.startswith("warn disputed-fact: ") for ln in got)


def test_diff_reports_a_skip_that_became_a_fail(seed_run, tmp_path):
    _, skipped = seed_run
    shutil.copytree(SPECS, tmp_path / "specs")
    harness("run", "specs/seed-models.yaml", "--execute", "--require-executed", "--output", "out", cwd=tmp_path)
    proc = harness("diff", str(skipped), str(tmp_path / "out" / "seed-models"), cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "execution [qwen3-vl-embedding-1024]: skipped → failed" in proc.stdout
    assert "vectors [qwen3-vl-embedding-1024]" not in proc.stdout  # skipped in both: no change


def test_require_executed_without_execute_is_a_usage_error(tmp_path):
    shutil.copytree(SPECS, tmp_path / "specs")
    proc = harness("run", "specs/seed-models.yaml", "--require-executed", "--output", "out", cwd=tmp_path)
    assert proc.returncode == ExitCode.USAGE, proc.stdout + proc.stderr
    assert "--require-executed needs --execute" in proc.stderr
    assert not (tmp_path / "out").exists()
