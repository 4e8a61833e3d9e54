"""The CI documentation and the pre-commit hook stay true: every command they show parses with
today's CLI, and the exit-code table lists exactly the codes the harness uses."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import yaml

from harness.cli import build_parser, main
from harness.errors import ExitCode

ROOT = Path(__file__).resolve().parents[1]
CI_MD = (ROOT / "docs" / "ci.md").read_text(encoding="utf-8")


def _workflow() -> dict:
    block = re.search(r"```yaml\n(# \.github/workflows/.*?)```", CI_MD, re.S)
    assert block, "docs/ci.md has no GitHub Actions workflow block"
    return yaml.safe_load(block.group(1))


def test_exit_code_table_lists_every_code():
    rows = dict(re.findall(r"^\|\s*(\d+)\s*\|\s*([A-Z_]+)\s*\|", CI_MD, re.M))
    assert rows == {str(int(c)): c.name for c in ExitCode}


def test_workflow_commands_parse_with_todays_cli():
    steps = _workflow()["jobs"]["run"]["steps"]
    commands = [s["run"] for s in steps if "run" in s and s["run"].startswith("harness ")]
    assert {c.split()[1] for c in commands} >= {"validate", "run", "verify", "diff"}
    parser = build_parser()
    for command in commands:
        args = shlex.split(command.split("#")[0])[1:]
        parser.parse_args(args)  # raises SystemExit(2) on an unknown flag or value


def test_workflow_uploads_the_output_folder_even_on_failure():
    steps = _workflow()["jobs"]["run"]["steps"]
    upload = next(s for s in steps if str(s.get("uses", "")).startswith("actions/upload-artifact"))
    assert upload["if"] == "always()" and upload["with"]["path"].startswith("output/")


def test_pre_commit_hook_runs_harness_validate(tmp_path, capsys):
    hooks = yaml.safe_load((ROOT / ".pre-commit-hooks.yaml").read_text())
    [hook] = hooks
    assert {"id", "name", "entry", "language"} <= set(hook) and hook["language"] == "python"
    assert re.search(hook["files"], "specs/cat.yaml") and not re.search(hook["files"], "src/app.yaml")
    entry = shlex.split(hook["entry"])
    assert entry[0] == "harness"
    good = tmp_path / "specs" / "ok.yaml"
    good.parent.mkdir()
    good.write_text("version: 1\nname: ok\nmodels: [qwen3-vl-embedding]\ninputs:\n  - id: a\n    text: hi\n")
    bad = tmp_path / "specs" / "bad.yaml"
    bad.write_text("version: 1\nname: bad\nmodels: [qwen3-vl-embeding]\ninputs:\n  - id: a\n    text: hi\n")
    # pre-commit appends the changed file names to the entry
    assert main(entry[1:] + [str(good)]) == 0
    assert main(entry[1:] + [str(good), str(bad)]) == ExitCode.SPEC_INVALID
    assert f"{bad}:3:" in capsys.readouterr().err
