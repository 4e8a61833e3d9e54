"""A spec cannot send a credential to a host of its choosing. Keys go only to the official DashScope
hosts and to hosts allowed outside the spec (--base-url, DASHSCOPE_HTTP_BASE_URL, --allow-host,
HARNESS_ALLOW_HOSTS); any other host is a spec error at its line, before anything is sent.
Real CLI; the "other host" is a real server on 127.0.0.1 that must receive nothing."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers import Result, cli_env, dashscope_fixture, run_cli
from tests.servers.dashscope_server import serve

KEY = "sk-allowed-hosts-5b7e21"
SECRET = "aws-secret-never-sent-91c4"
ROOT = Path(__file__).resolve().parents[1]
INPUTS = "inputs:\n  - {id: a, text: a cat}\n  - {id: b, text: a dog}\n"


server = dashscope_fixture(KEY)


@pytest.fixture(autouse=True)
def fresh(server):
    server.reset()
    yield


def harness(tmp_path: Path, command: str, spec: str, *args: str, **env: str) -> Result:
    (tmp_path / "spec.yaml").write_text(spec)
    e = cli_env(tmp_path, tmp_path / "cache", NO_COLOR="1", COLUMNS="200", DASHSCOPE_API_KEY=KEY,
                AWS_SECRET_ACCESS_KEY=SECRET, **env)
    extra = ["--output", str(tmp_path / "out"), "--execute"] if command == "run" else []
    return run_cli(command, str(tmp_path / "spec.yaml"), *extra, *args, cwd=ROOT, env=e)


def hostport(server) -> str:
    return server.base_url.split("/")[2]          # 127.0.0.1:PORT


def endpoint_spec(server) -> str:
    return (f"version: 1\nname: hosts\nendpoint: {server.base_url}\nmodels: [qwen3-vl-embedding]\n"
            f"dimensions: [256]\n{INPUTS}")


def assert_refused(proc, server, tmp_path: Path, line: int, col: int, what: str) -> None:
    assert proc.returncode == 3, proc.stdout + proc.stderr
    where = hostport(server)
    assert (f"spec.yaml:{line}:{col}: this would send {what} to {where}, which is not an allowed host"
            in proc.stderr), proc.stderr
    assert f"--allow-host {where}" in proc.stderr and "HARNESS_ALLOW_HOSTS" in proc.stderr
    assert not server.counts and not server.log            # nothing reached the host
    assert not (tmp_path / "out").exists()                 # nothing written
    assert KEY not in proc.stderr and SECRET not in proc.stderr


def test_a_spec_endpoint_on_another_host_is_refused_before_anything_is_sent(server, tmp_path):
    proc = harness(tmp_path, "run", endpoint_spec(server))
    assert_refused(proc, server, tmp_path, 3, 11, "the DashScope API key")


def test_the_same_endpoint_runs_once_allowed_outside_the_spec(server, tmp_path):
    flag = harness(tmp_path, "run", endpoint_spec(server), "--allow-host", hostport(server))
    assert flag.returncode == 0, flag.stdout + flag.stderr
    assert len(server.log) == 1
    server.reset()
    variable = harness(tmp_path, "run", endpoint_spec(server), "--no-cache",
                       HARNESS_ALLOW_HOSTS=f"example.org, {hostport(server)}")
    assert variable.returncode == 0, variable.stdout + variable.stderr
    assert len(server.log) == 1
    server.reset()
    sdk = harness(tmp_path, "run", endpoint_spec(server), "--no-cache", DASHSCOPE_HTTP_BASE_URL=server.base_url)
    assert sdk.returncode == 0, sdk.stdout + sdk.stderr
    assert len(server.log) == 1
    # a folder made with --allow-host verifies without it: re-rendering payloads sends nothing
    verify = run_cli("verify", str(tmp_path / "out" / "hosts"), cwd=ROOT, env=cli_env(tmp_path, tmp_path / "cache"))
    assert verify.returncode == 0, verify.stdout + verify.stderr


def test_another_port_of_an_allowed_host_is_still_refused(server, tmp_path):
    proc = harness(tmp_path, "run", endpoint_spec(server), "--allow-host", "127.0.0.1:9")
    assert_refused(proc, server, tmp_path, 3, 11, "the DashScope API key")


def test_a_model_base_url_is_checked_at_its_own_line(server, tmp_path):
    spec = (f"version: 1\nname: hosts\nmodels:\n  - name: qwen3-vl-embedding\n    base_url: {server.base_url}\n"
            f"dimensions: [256]\n{INPUTS}")
    for command in ("validate", "plan", "run"):
        assert_refused(harness(tmp_path, command, spec), server, tmp_path, 5, 15, "the DashScope API key")
    assert harness(tmp_path, "validate", spec, "--allow-host", hostport(server)).returncode == 0
    assert harness(tmp_path, "plan", spec, "--allow-host", "127.0.0.1").returncode == 0


@pytest.mark.parametrize("variable", ["DASHSCOPE_API_KEY", "AWS_SECRET_ACCESS_KEY"])
def test_an_openai_model_cannot_send_any_variable_to_a_host_of_the_specs_choosing(server, tmp_path, variable):
    spec = (f"version: 1\nname: hosts\nmodels:\n  - name: openai/e5-small\n    base_url: {server.base_url}\n"
            f"    api_key_env: {variable}\n{INPUTS}")
    proc = harness(tmp_path, "run", spec)
    assert_refused(proc, server, tmp_path, 5, 15, f"${variable} (the api_key_env of openai/e5-small)")


def test_an_openai_model_without_a_key_may_use_any_host(server, tmp_path):
    spec = f"version: 1\nname: hosts\nmodels:\n  - {{name: openai/e5-small, base_url: http://10.9.8.7:8000/v1}}\n{INPUTS}"
    proc = harness(tmp_path, "validate", spec)
    assert proc.returncode == 0, proc.stderr


def test_an_export_token_goes_only_to_an_allowed_host(server, tmp_path):
    spec = (f"version: 1\nname: hosts\nmodels: [local/e5-small]\n{INPUTS}"
            "export:\n  to: http://milvus.example.net:19530\n  token_env: AWS_SECRET_ACCESS_KEY\n")
    proc = harness(tmp_path, "validate", spec)
    assert proc.returncode == 3
    assert ("spec.yaml:8:7: this would send $AWS_SECRET_ACCESS_KEY (the export's token_env) to "
            "milvus.example.net:19530, which is not an allowed host") in proc.stderr
    assert harness(tmp_path, "validate", spec, "--allow-host", "milvus.example.net:19530").returncode == 0


def test_the_official_host_over_plain_http_is_not_the_official_host(server, tmp_path):
    spec = ("version: 1\nname: hosts\nendpoint: http://dashscope.aliyuncs.com/api/v1\n"
            f"models: [qwen3-vl-embedding]\ndimensions: [256]\n{INPUTS}")
    proc = harness(tmp_path, "validate", spec)
    assert proc.returncode == 3 and "to dashscope.aliyuncs.com:80, which is not an allowed host" in proc.stderr
    https = spec.replace("http://", "https://")
    assert harness(tmp_path, "validate", https).returncode == 0


def test_a_malformed_allowed_host_is_a_usage_error(server, tmp_path):
    flag = harness(tmp_path, "validate", endpoint_spec(server), "--allow-host", "http://127.0.0.1:8000/api")
    assert flag.returncode == 2 and "is not HOST or HOST:PORT" in flag.stderr
    variable = harness(tmp_path, "validate", endpoint_spec(server), HARNESS_ALLOW_HOSTS="127.0.0.1/x")
    assert variable.returncode == 2
    assert "$HARNESS_ALLOW_HOSTS: '127.0.0.1/x' is not HOST or HOST:PORT" in variable.stderr


def test_a_redirect_from_an_allowed_host_does_not_carry_the_key_along(server, tmp_path):
    with serve(api_key=KEY) as elsewhere:           # accepts the same key, so a leak would be served
        server.add_fault("redirect", times=-1, location=elsewhere.url)
        spec = f"version: 1\nname: hosts\nmodels: [qwen3-vl-embedding]\ndimensions: [256]\n{INPUTS}"
        proc = harness(tmp_path, "run", spec, "--base-url", server.base_url)
        assert not elsewhere.log and not elsewhere.counts
    assert proc.returncode == 4, proc.stdout + proc.stderr
    validate = (tmp_path / "out" / "hosts" / "validate.txt").read_text()
    assert "HTTP 307: HTTP307: " in validate and f"redirects to {elsewhere.url}; redirects are not followed" in validate
    assert len(server.log) == 1                      # fatal: the first redirect stops the run


@pytest.mark.parametrize("url, shown", [
    ("https://dashscope.aliyuncs.com@evil.example/api/v1", "evil.example:443"),         # userinfo, not the host
    ("https://dashscope.aliyuncs.com.evil.example/api/v1", "dashscope.aliyuncs.com.evil.example:443"),
    ("https://dashscope.aliyuncs.com:8443/api/v1", "dashscope.aliyuncs.com:8443"),
])
def test_look_alike_official_urls_are_other_hosts(server, tmp_path, url, shown):
    spec = f"version: 1\nname: hosts\nendpoint: {url}\nmodels: [qwen3-vl-embedding]\ndimensions: [256]\n{INPUTS}"
    proc = harness(tmp_path, "validate", spec)
    assert proc.returncode == 3 and f"to {shown}, which is not an allowed host" in proc.stderr, proc.stderr


def test_a_spec_endpoint_overridden_by_base_url_is_never_used_so_never_refused(server, tmp_path):
    spec = endpoint_spec(server).replace(server.base_url, "http://10.9.8.7:8000/api/v1")
    proc = harness(tmp_path, "run", spec, "--base-url", server.base_url)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert len(server.log) == 1
