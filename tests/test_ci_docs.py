"""docs/ci.md works as copied: its workflow is a real file that GitHub's workflow schema accepts,
it installs the harness from its repository (it is not on PyPI) and may publish check runs; the
pre-commit snippet names no tag that does not exist; the exit codes it documents are the CLI's."""

from __future__ import annotations

import collections
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from harness.errors import ExitCode
from tests.helpers import harness

ROOT = Path(__file__).resolve().parents[1]
CI_MD = (ROOT / "docs" / "ci.md").read_text(encoding="utf-8")
WORKFLOW = ROOT / "docs" / "examples" / "harness-ci.yml"


def test_workflow_in_the_docs_is_the_example_file():
    block = re.search(r"```yaml\n(# \.github/workflows/.*?)```", CI_MD, re.S)
    assert block and block.group(1) == WORKFLOW.read_text(encoding="utf-8")


@pytest.mark.slow    # check-jsonschema as its own process
def test_workflow_passes_githubs_workflow_schema():
    proc = subprocess.run([sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.github-workflows",
                           str(WORKFLOW)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_workflow_installs_from_the_repository_and_may_write_checks():
    flow = yaml.safe_load(WORKFLOW.read_text(encoding="utf-8"))
    assert flow["permissions"]["checks"] == "write"        # mikepenz/action-junit-report needs it
    installs = [s["run"] for s in flow["jobs"]["run"]["steps"] if "pip install" in s.get("run", "")]
    assert installs and all("git+https://github.com/" in i and "@${HARNESS_REF}" in i for i in installs)
    assert "pip install mm-embed-harness" not in CI_MD       # not published on PyPI


def test_pre_commit_docs_name_no_missing_tag():
    hooks = (ROOT / ".pre-commit-hooks.yaml").read_text(encoding="utf-8")
    for text in (CI_MD, hooks):
        revs = re.findall(r"^[ #]*rev:\s*(\S+)", text, re.M)
        assert revs and all(r == "main" for r in revs), revs   # no release tags exist; --freeze pins a SHA
    assert "pre-commit autoupdate --freeze" in CI_MD


def test_no_paragraph_twice_and_fail_on_default_as_the_cli():
    paragraphs = [p.strip() for p in CI_MD.split("\n\n") if len(p.strip()) > 40]
    assert [p for p, n in collections.Counter(paragraphs).items() if n > 1] == []
    from harness.commands.run import DEFAULT_FAIL_ON
    assert f"(default `{DEFAULT_FAIL_ON}`)" in CI_MD
    assert "--fail-on any                  # all four: the default and verify" in CI_MD


def test_verify_on_a_folder_that_is_not_a_run_is_a_usage_error(tmp_path):
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "todo.txt").write_text("x")
    r = harness("verify", "notes", cwd=tmp_path)
    assert r.returncode == ExitCode.USAGE == 2, r.stderr
    assert "not a harness output folder: notes" in r.stderr and "Traceback" not in r.stderr
    assert re.search(r"^\| 2 \| USAGE \|[^\n]*holds none of a run's files", CI_MD, re.M)


def test_a_missing_spec_file_is_spec_invalid_as_documented(tmp_path):
    for command in ("validate", "plan", "run"):
        r = harness(command, "specs/nope.yaml", cwd=tmp_path)
        assert r.returncode == ExitCode.SPEC_INVALID == 3, (command, r.stderr)
        assert "specs/nope.yaml: no such file" in r.stderr
    assert not (tmp_path / "output").exists()
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert re.search(r"^\| 3 \| the spec or one of its inputs is invalid or missing", readme, re.M)
    assert re.search(r"^\| 3 \| SPEC_INVALID \| the spec or one of its inputs is invalid or missing", CI_MD, re.M)
