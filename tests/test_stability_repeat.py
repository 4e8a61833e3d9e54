"""`stability: {repeat: true}`: each selected cell runs twice in one run, the second time past
the cache, against the fake DashScope server on 127.0.0.1 (real HTTP), and the vectors compare."""

from __future__ import annotations

from tests.helpers import harness, write_spec
from tests.servers.dashscope_server import serve

KEY = "sk-repeat-test-0123456789"
SPEC = """\
version: 1
name: rep
models: [qwen3-vl-embedding]
dimensions: [256, 512]
inputs:
  - {id: a, text: first caption}
  - {id: b, text: second caption}
  - {id: c, image: "https://example.com/c.png"}
checks:
  - stability: {repeat: true, min_cosine: 0.999, cells: [qwen3-vl-embedding-256]}
"""


def test_repeat_sends_the_selected_cell_twice_and_compares(tmp_path):
    write_spec(tmp_path, SPEC)
    with serve(api_key=KEY) as server:
        r = harness("run", "spec.yaml", "--execute", "--base-url", server.base_url, cwd=tmp_path,
                    env={"DASHSCOPE_API_KEY": KEY})
        served = len(server.served())
        assert r.returncode == 0, r.stdout + r.stderr
        # two cells once each, and the selected cell once more although its answer was cached
        assert served == 3, served
        again = harness("run", "spec.yaml", "--execute", "--base-url", server.base_url, cwd=tmp_path,
                        env={"DASHSCOPE_API_KEY": KEY})
        assert again.returncode == 0
        assert len(server.served()) == served + 1, "the first execution comes from the cache, the repeat never does"
    out = tmp_path / "output/rep"
    lines = (out / "validate.txt").read_text().splitlines()
    assert any(l.startswith("ok   repeat:execution [qwen3-vl-embedding-256]") for l in lines), lines
    stab = [l for l in lines if l.startswith(("ok   stability", "FAIL stability"))]
    assert len(stab) == 1 and "3 inputs compared with a second execution in this run" in stab[0], stab
    assert (out / "repeat/vectors/qwen3-vl-embedding-256.npy").exists()
    assert not (out / "repeat/vectors/qwen3-vl-embedding-512.npy").exists()
    v = harness("verify", str(out), cwd=tmp_path)
    assert v.returncode == 0, v.stdout + v.stderr          # the second execution is evidence too


def test_stability_needs_against_or_repeat(tmp_path):
    write_spec(tmp_path, SPEC.replace("repeat: true, ", ""))
    r = harness("validate", "spec.yaml", cwd=tmp_path)
    assert r.returncode == 3 and "against" in r.stderr and "repeat" in r.stderr
