"""Issue 23, items 1–4: verify trusts nothing the folder says about itself. Each test forges a folder
with the project's own tools (RunReader, RunWriter, `finalize`) and shows `verify` catches it; each
failed on the code before the change (commit 3ce6dfc), where these folders verified.

And folders of an earlier evidence format (tests/fixtures/format-1, written by commit 4a8b5ba) keep
verifying."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.helpers import REPO, Result, cli_env, run_cli

FIXTURE = REPO / "tests" / "fixtures" / "format-1"
F1_CELL = "local--e5-small-384"


def cli(tmp: Path, *args: str) -> Result:
    return run_cli(*args, cwd=tmp, env=cli_env(tmp / "home", NO_COLOR="1", COLUMNS="200"))


@pytest.fixture
def format1(tmp_path) -> Path:
    """A copy of the format-1 fixture (the spec beside it, as committed), its run folder returned."""
    shutil.copytree(FIXTURE, tmp_path / "format-1")
    return tmp_path / "format-1" / "out" / "format-1"


def test_a_format_1_folder_written_by_the_earlier_code_verifies(tmp_path, format1):
    proc = cli(tmp_path, "verify", str(format1))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.startswith(f"verified: {format1}"), proc.stdout
    assert "3 re-derived byte for byte" in proc.stdout and "3 check lines re-evaluated" in proc.stdout
