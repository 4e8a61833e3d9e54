"""JUnit XML: one test case per check per cell, failures and skips where CI shows them."""

import time
import xml.etree.ElementTree as ET

from harness.checks.evaluate import evaluate_checks
from harness.folder.verdict import CheckResult
from harness.report.finalize import finalize
from tests.helpers import harness
from tests.test_checks_support import VECTORS, make_run, pad


def test_junit_one_testcase_per_check_per_cell(tmp_path):
    folder = tmp_path / "run"
    vecs = {k: pad(v, 4) for k, v in VECTORS.items()}
    manifest = make_run(folder, {"qwen3-vl-embedding-4": vecs, "tongyi-4": vecs}, skip=("tongyi-4",))
    checks = [{"nearest": {"query": "cat-caption", "among": ["cat-photo", "dog-photo"], "expect": "cat-photo"}},
              {"nearest": {"query": "dog-caption", "among": ["cat-photo", "dog-photo"], "expect": "cat-photo"}}]
    results = [CheckResult("schema", True, "spec matches the schema")] + evaluate_checks(
        checks, folder, manifest.cells, locate=lambda p: (20 + p[0], 3))
    finalize(folder, manifest, results)
    root = ET.parse(folder / "junit.xml").getroot()
    assert root.tag == "testsuites"
    assert (root.get("tests"), root.get("failures"), root.get("skipped")) == ("5", "1", None)   # not the root's
    suites = {s.get("name"): s for s in root.findall("testsuite")}
    assert sum(int(s.get("skipped")) for s in suites.values()) == 2
    assert set(suites) == {"cat-retrieval.run", "cat-retrieval.qwen3-vl-embedding-4", "cat-retrieval.tongyi-4"}
    cases = suites["cat-retrieval.qwen3-vl-embedding-4"].findall("testcase")
    assert [c.get("name") for c in cases] == ["nearest:cat-caption", "nearest:dog-caption"]
    assert cases[0].find("failure") is None
    failure = cases[1].find("failure")
    assert failure is not None and "expected cat-photo" in failure.get("message")
    assert failure.text.startswith("FAIL nearest:dog-caption [qwen3-vl-embedding-4]")
    assert cases[1].get("file") == "spec.yaml" and cases[1].get("line") == "21"
    skipped = suites["cat-retrieval.tongyi-4"].findall("testcase/skipped")
    assert len(skipped) == 2 and "no DashScope API key" in skipped[0].get("message")


def test_junit_escapes_markup_in_details(tmp_path):
    folder = tmp_path / "run"
    manifest = make_run(folder)
    finalize(folder, manifest, [CheckResult("weird<&>", False, 'a "quoted" <tag> & more')])
    root = ET.parse(folder / "junit.xml").getroot()  # parses: markup was escaped
    case = root.find("testsuite/testcase")
    assert case.get("name") == "weird<&>"
    assert case.find("failure").get("message") == 'a "quoted" <tag> & more'


SPEC = """\
version: 1
name: x
models: [local/e5-small]
inputs:
  - id: a
    text: a cat
  - id: b
    text: a dog
checks:
  - vectors: {name: execution, norm_min: 0.99, norm_max: 1.01}
  - vectors: {name: payloads, norm_min: 2}
"""


def test_junit_as_a_ci_consumer_reads_it(tmp_path):
    """Read through junitparser (what CI plugins do): annotations point at the spec the run was given,
    every case has its own classname+name, times and the start timestamp are set, and the folder still
    verifies (re-rendered)."""
    import json
    from datetime import datetime, timezone

    from junitparser import Failure, JUnitXml
    (tmp_path / "specs").mkdir()
    (tmp_path / "specs" / "x.yaml").write_text(SPEC)
    env = {"HARNESS_CACHE_DIR": str(tmp_path / "cache")}       # a fresh cache: the requests are timed
    before = datetime.now(timezone.utc).replace(microsecond=0, tzinfo=None)
    r = harness("run", "specs/x.yaml", "--execute", cwd=tmp_path, env=env)
    after = datetime.now(timezone.utc).replace(tzinfo=None)
    assert r.returncode == 1, r.stderr                        # `norm_min: 2` fails
    xml = JUnitXml.fromfile(str(tmp_path / "output" / "x" / "junit.xml"))
    started = datetime.fromisoformat(json.loads((tmp_path / "output" / "x" / "run.json").read_text())["started"])
    assert xml._elem.get("timestamp") is None                  # junit-10.xsd has none on <testsuites>
    [stamp] = {suite.timestamp for suite in xml}                # every suite: the run's start
    assert before <= datetime.fromisoformat(stamp) <= after
    assert datetime.fromisoformat(stamp) == started.replace(tzinfo=None)
    cases = [(suite, case) for suite in xml for case in suite]
    keys = [(case.classname, case.name) for _, case in cases]
    assert len(keys) == len(set(keys)) == 8
    assert ("x.local--e5-small-384", "execution#2") in keys and ("x.local--e5-small-384", "payloads#2") in keys
    located = [case for _, case in cases if case._elem.get("line")]
    assert {case._elem.get("file") for case in located} == {"specs/x.yaml"}          # not the folder's copy
    [failed] = [case for _, case in cases if any(isinstance(res, Failure) for res in case.result)]
    assert failed.name == "payloads#2" and failed._elem.get("line") == "11"
    cell = next(suite for suite in xml if suite.name == "x.local--e5-small-384")
    executed = next(case for case in cell if case.name == "execution")
    [recorded] = json.loads((tmp_path / "output" / "x" / "execution.json").read_text())["cells"]
    assert recorded["elapsed_s"] is not None                    # the engine's (virtual) clock, as recorded
    assert cell.time == recorded["elapsed_s"] and executed.time == cell.time and xml.time == cell.time
    assert all(case.time == 0 for _, case in cases if (case.classname, case.name) != (cell.name, "execution"))
    assert harness("verify", "output/x", cwd=tmp_path).returncode == 0


class StartsAt:
    """`harness.runner`'s `time` module, with the run starting at a given Unix time."""

    def __init__(self, when: float):
        self.when = when

    def time(self) -> float:
        return self.when

    def __getattr__(self, name):
        return getattr(time, name)


def test_timestamp_is_the_only_difference_between_two_runs_and_export_keeps_it(tmp_path, monkeypatch):
    """Two runs of one spec: same manifest digest, junit.xml differs only in its timestamp; a changed
    timestamp is caught by verify (the file's hash); finalising again (export) keeps the run's start."""
    import json
    import re

    from harness import runner
    from harness.folder import RunReader
    (tmp_path / "x.yaml").write_text(SPEC.replace("  - vectors: {name: payloads, norm_min: 2}\n", ""))
    runs = []
    for name, start in (("a", 1_900_000_000), ("b", 1_900_000_001)):     # started a second apart
        monkeypatch.setattr(runner, "time", StartsAt(start))
        assert harness("run", "x.yaml", "--output", name, cwd=tmp_path).returncode == 0
        runs.append(tmp_path / name / "x")
    monkeypatch.undo()
    a, b = ((r / "junit.xml").read_text() for r in runs)
    stamp = re.compile(r'timestamp="[^"]+"')
    assert 'timestamp="2030-03-17T17:46:40"' in a and 'timestamp="2030-03-17T17:46:41"' in b
    assert stamp.sub("", a) == stamp.sub("", b)
    assert json.loads((runs[0] / "manifest.json").read_text())["digest"] == \
        json.loads((runs[1] / "manifest.json").read_text())["digest"]
    # finalize again, as `harness export` does: the timestamp stays the run's start, not now
    reader = RunReader(runs[0])
    finalize(runs[0], reader.manifest(), reader.results())
    assert (runs[0] / "junit.xml").read_text() == a
    assert harness("verify", str(runs[0]), cwd=tmp_path).returncode == 0
    (runs[0] / "junit.xml").write_text(stamp.sub('timestamp="2001-01-01T00:00:00"', a))
    r = harness("verify", str(runs[0]), cwd=tmp_path)
    assert r.returncode == 5 and "junit.xml" in r.stdout
