"""The key is found where people keep it, in the documented order, and a missing key says where to put it."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.errors import ExitCode, HarnessError
from harness.providers.base import NotExecutable
from harness.providers.credentials import find_api_key, missing_key_message
from harness.providers.dashscope import DashScopeProvider

CELL = {"id": "qwen3-vl-embedding-1024", "model": "qwen3-vl-embedding", "provider": "dashscope",
        "endpoint": "http://127.0.0.1:9/api/v1/services/embeddings/multimodal-embedding/multimodal-embedding",
        "dimension": 1024, "required": True}


@pytest.fixture
def home(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("HOME", str(tmp_path))
    for var in ("DASHSCOPE_API_KEY", "ALIBABA_CLOUD_CREDENTIALS_FILE", "ALIBABA_CLOUD_PROFILE", "DASHSCOPE_WORKSPACE",
                "DASHSCOPE_API_KEY_FILE_PATH", "ALICLOUD_PROFILE", "DASHSCOPE_WORKSPACE_ID"):
        monkeypatch.delenv(var, raising=False)
    return tmp_path


def write_ini(home: Path, text: str) -> Path:
    path = home / ".alibabacloud" / "credentials"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def write_key_file(home: Path, key: str) -> None:
    path = home / ".dashscope" / "api_key"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(key + "\n")


def test_env_wins_over_both_files(home, monkeypatch):
    write_ini(home, "[default]\ndashscope_api_key = sk-ini\n")
    write_key_file(home, "sk-file")
    monkeypatch.setenv("DASHSCOPE_API_KEY", "sk-env")
    key, source = find_api_key()
    assert key == "sk-env" and source.where == "$DASHSCOPE_API_KEY"


def test_ini_default_section_then_key_file(home):
    write_key_file(home, "sk-file")
    assert find_api_key()[0] == "sk-file"
    path = write_ini(home, "[default]\ntype = access_key\ndashscope_api_key = sk-ini\n")
    key, source = find_api_key()
    assert key == "sk-ini" and str(path) in source.where and "[default]" in source.where


def test_profile_and_file_override(home, monkeypatch, tmp_path):
    other = tmp_path / "elsewhere.ini"
    other.write_text("[default]\ndashscope_api_key = sk-default\n[work]\ndashscope_api_key = sk-work\n")
    monkeypatch.setenv("ALIBABA_CLOUD_CREDENTIALS_FILE", str(other))
    assert find_api_key()[0] == "sk-default"
    monkeypatch.setenv("ALIBABA_CLOUD_PROFILE", "work")
    assert find_api_key()[0] == "sk-work"
    monkeypatch.setenv("ALIBABA_CLOUD_PROFILE", "missing")
    assert find_api_key() is None


def test_malformed_ini_is_no_key_not_a_crash(home):
    write_ini(home, "this is not an ini file\n[[[\n")
    assert find_api_key() is None


def test_missing_key_is_not_executable_and_names_all_three_places(home):
    with pytest.raises(NotExecutable) as info:
        DashScopeProvider.from_cell(CELL)
    text = str(info.value)
    assert "DASHSCOPE_API_KEY" in text
    # paths under the home folder are shown as ~/..., so validate.txt is the same on every machine
    assert "~/.alibabacloud/credentials" in text and "[default]" in text and str(home) not in text
    assert "~/.dashscope/api_key" in text
    assert text == missing_key_message()


def test_provider_repr_says_where_not_what(home, monkeypatch):
    monkeypatch.setenv("DASHSCOPE_API_KEY", "sk-secret-value-123")
    monkeypatch.setenv("DASHSCOPE_WORKSPACE", "llm-ws1")
    provider = DashScopeProvider.from_cell(CELL)
    assert "sk-secret-value-123" not in repr(provider) and "$DASHSCOPE_API_KEY" in repr(provider)
    assert provider.workspace == "llm-ws1"


def test_sdk_and_cli_places_in_the_documented_order(home, monkeypatch, tmp_path):
    """Issue 15 item 5: DASHSCOPE_API_KEY_FILE_PATH (the SDK's), ALICLOUD_PROFILE (the CLI tools'),
    DASHSCOPE_WORKSPACE_ID; the README documents the order."""
    for var in ("DASHSCOPE_API_KEY_FILE_PATH", "ALICLOUD_PROFILE", "DASHSCOPE_WORKSPACE_ID"):
        monkeypatch.delenv(var, raising=False)
    write_key_file(home, "sk-default-file")
    write_ini(home, "[default]\ndashscope_api_key = sk-ini-default\n[work]\ndashscope_api_key = sk-ini-work\n")
    named = tmp_path / "keys" / "dashscope.txt"
    named.parent.mkdir()
    named.write_text("sk-named-file\n")
    monkeypatch.setenv("ALICLOUD_PROFILE", "work")
    key, source = find_api_key()
    assert key == "sk-ini-work" and source.where.endswith("credentials [work]")
    monkeypatch.setenv("ALIBABA_CLOUD_PROFILE", "default")          # the Alibaba Cloud SDK's name wins
    assert find_api_key()[0] == "sk-ini-default"
    monkeypatch.setenv("DASHSCOPE_API_KEY_FILE_PATH", str(named))   # the SDK's second place, before the INI
    key, source = find_api_key()
    assert key == "sk-named-file" and "DASHSCOPE_API_KEY_FILE_PATH" in source.where and "sk-" not in source.where
    monkeypatch.setenv("DASHSCOPE_API_KEY", "sk-env")
    assert find_api_key()[0] == "sk-env"
    # named but missing: an error naming the variable and the path (exit 4), not another key
    monkeypatch.delenv("DASHSCOPE_API_KEY")
    monkeypatch.setenv("DASHSCOPE_API_KEY_FILE_PATH", str(tmp_path / "nope.txt"))
    with pytest.raises(HarnessError) as err:
        find_api_key()
    assert err.value.exit_code == ExitCode.PROVIDER_ERROR
    assert ("$DASHSCOPE_API_KEY_FILE_PATH names" in err.value.problems[0].message
            and "nope.txt" in err.value.problems[0].message)
    # the workspace: DASHSCOPE_WORKSPACE, else DASHSCOPE_WORKSPACE_ID, sent as the header
    monkeypatch.setenv("DASHSCOPE_API_KEY", "sk-env")
    monkeypatch.setenv("DASHSCOPE_WORKSPACE_ID", "llm-ws-id")
    assert DashScopeProvider.from_cell(CELL).workspace == "llm-ws-id"
    monkeypatch.setenv("DASHSCOPE_WORKSPACE", "llm-ws")
    assert DashScopeProvider.from_cell(CELL).workspace == "llm-ws"
    monkeypatch.setenv("DASHSCOPE_WORKSPACE", "")
    monkeypatch.setenv("DASHSCOPE_WORKSPACE_ID", "bad\nid")
    with pytest.raises(HarnessError) as err:
        DashScopeProvider.from_cell(CELL)
    assert "$DASHSCOPE_WORKSPACE_ID holds a line break" in err.value.problems[0].message
    readme = (Path(__file__).parents[1] / "docs" / "executing.md").read_text()   # where the README sends readers
    order = [readme.index(s) for s in ("1. `DASHSCOPE_API_KEY`", "2. the file `DASHSCOPE_API_KEY_FILE_PATH`",
                                       "`$ALIBABA_CLOUD_PROFILE`, else `$ALICLOUD_PROFILE`",
                                       "4. `~/.dashscope/api_key`")]
    assert order == sorted(order) and "else `DASHSCOPE_WORKSPACE_ID`" in readme


def test_a_key_file_path_that_cannot_be_read_stops_the_run_cleanly(tmp_path):
    from tests.helpers import harness, write_spec
    write_spec(tmp_path, """\
        version: 1
        name: keyfile
        models: [qwen3-vl-embedding]
        inputs:
          - {id: a, text: "A cat"}
        """)
    r = harness("run", "spec.yaml", "--execute", cwd=tmp_path,
                env={"DASHSCOPE_API_KEY_FILE_PATH": str(tmp_path / "missing-key.txt")})
    assert r.returncode == 4, r.stdout + r.stderr
    assert "$DASHSCOPE_API_KEY_FILE_PATH names" in r.stderr and "missing-key.txt" in r.stderr
    assert "Traceback" not in r.stderr and not (tmp_path / "output" / "keyfile").exists()
