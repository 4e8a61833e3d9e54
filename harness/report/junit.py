"""JUnit XML, a projection of the JSON summary: one test case per check per cell.

CI systems (GitHub, GitLab, Jenkins) show these natively. Test suites group by cell (checks
that are not per cell sit in the suite "run"), so a failing dimension stands out. A `skip` line
is a `<skipped/>` case. A `warn` line is no test at all (JUnit has no "warning" outcome, and a
passing case would hide it): it goes to its suite's `<system-err>`, one line each; but a check that
proves nothing (its data say `vacuous`) is a `<skipped/>` case, so it stays in the list of checks
without counting as a pass.

`file=` is the spec path the run was given (the `spec` line records it), so CI annotations land on
the spec in the repository, not on the copy in the folder; `line=` is where the check is written (a
check a `beir:` entry brings: that entry). `time=` is what the folder records: a cell's elapsed time
(`elapsed_s` in execution.json, first request sent to last answer), or, for a folder of an earlier
format that recorded none, the cell's summed request latency; 0 when nothing was sent. Each
`<testsuite>` carries `timestamp=`, when the run started (UTC, the schema's xs:dateTime form without a
zone; run.json records the same instant). It is the one part of the reports that differs between two
runs of the same spec: the manifest digest leaves report hashes out, so the digest stays the same, and
`verify` re-renders the file with the timestamp it holds.

The file follows Jenkins xunit's junit-10.xsd (`<testsuites>` has name, time, tests, failures,
disabled, errors; `<testsuite>` has timestamp and skipped), with `file` and `line` on `<testcase>`,
which GitHub's annotators read; tests/data/junit-10-rules.xsd holds those rules.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from datetime import datetime, timezone
from pathlib import Path

from harness.folder import Summary, SummaryCheck

# format 3 writes it on each <testsuite>, earlier formats on <testsuites> too
_TIMESTAMP = re.compile(r'<testsuites? [^>]*?timestamp="(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)"')


def junit_timestamp(when: float) -> str:
    """A Unix time as JUnit's `timestamp` (xs:dateTime without a zone, so UTC is said in the docs)."""
    return datetime.fromtimestamp(when, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")


def recorded_timestamp(path: Path) -> str | None:
    """The timestamp a junit.xml already holds (re-rendering keeps the run's start, not now)."""
    try:
        head = path.read_bytes()[:4096].decode("utf-8", "replace")
    except OSError:
        return None
    found = _TIMESTAMP.search(head)
    return found.group(1) if found else None


def render_junit(summary: Summary, timestamp: str | None = None) -> bytes:
    name = summary.spec.get("name") or "harness"
    suites: dict[str, list[SummaryCheck]] = {}
    warnings: dict[str, list[str]] = {}
    for check in summary.checks:
        suite = check.cell or "run"
        if check.status == "warning" and not check.data.get("vacuous"):
            warnings.setdefault(suite, []).append(check.line or check.detail or "")
            suites.setdefault(suite, [])
        else:
            suites.setdefault(suite, []).append(check)

    def counts(checks: list[SummaryCheck]) -> dict[str, str]:
        return {"tests": str(len(checks)),
                "failures": str(sum(c.status == "failed" for c in checks)),
                "errors": "0",
                "skipped": str(sum(c.status in ("skipped", "warning") for c in checks))}

    spec_file = next((c.data["path"] for c in summary.checks
                      if c.name == "spec" and not c.cell and c.data.get("path")),
                     "spec.yaml")    # a folder written before the spec line recorded its path
    seconds = {c.id: c.elapsed_s if c.elapsed_s is not None else _latency_sum(c.latency_ms) / 1000
               for c in summary.cells if c.id}

    when = {"timestamp": timestamp} if timestamp else {}
    every = counts([c for cs in suites.values() for c in cs])
    del every["skipped"]                   # junit-10.xsd: `skipped` is a <testsuite>'s, not <testsuites>'
    root = ET.Element("testsuites", {"name": f"harness: {name}", **every, "time": _seconds(sum(seconds.values()))})
    for suite_name, checks in suites.items():
        suite = ET.SubElement(root, "testsuite", {"name": f"{name}.{suite_name}", **counts(checks),
                                                  "time": _seconds(seconds.get(suite_name, 0)), **when})
        seen: dict[str, int] = {}
        for check in checks:
            # CI tools key results by classname + name: a repeated name (a spec check named like one of
            # the harness's own lines) would merge or hide one, so it gets #2, #3 as spec checks do.
            seen[check.name] = seen.get(check.name, 0) + 1
            case_name = check.name if seen[check.name] == 1 else f"{check.name}#{seen[check.name]}"
            took = seconds.get(suite_name, 0) if (check.kind, check.name) == ("execution", "execution") else 0
            attrs = {"classname": f"{name}.{suite_name}", "name": case_name, "time": _seconds(took)}
            line = check.data.get("line")
            if line:
                attrs.update({"file": spec_file, "line": str(line)})
            case = ET.SubElement(suite, "testcase", attrs)
            detail = check.detail or ""
            if check.status == "failed":
                failure = ET.SubElement(case, "failure", {"message": detail[:500], "type": check.kind or "check"})
                failure.text = check.line or detail
            elif check.status in ("skipped", "warning"):     # a warning here: a check that proves nothing
                ET.SubElement(case, "skipped", {"message": detail[:500]})
            if detail:
                ET.SubElement(case, "system-out").text = detail
        if warnings.get(suite_name):
            ET.SubElement(suite, "system-err").text = "\n".join(warnings[suite_name])
    ET.indent(root)
    return b'<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="utf-8") + b"\n"


def _seconds(value: float) -> str:
    return f"{value:.3f}"


def _latency_sum(stats: dict | None) -> float:
    """The cell's summed request latency in ms, from summary.json's count and mean (none: cache hits only)."""
    return stats["count"] * stats["mean"] if isinstance(stats, dict) and stats.get("count") else 0.0


_ROOT = re.compile(rb'<testsuites ([^>]*?) errors="(\d+)" time="([^"]*)"')
_SUITE = re.compile(rb'<testsuite [^>]*?skipped="(\d+)"[^>]*?(?: timestamp="([^"]*)")?>')


def format_2_junit(rendered: bytes) -> bytes:
    """junit.xml as format 2 wrote it: `skipped` (the suites' sum) and `timestamp` on <testsuites> too.
    (A format-2 folder records no elapsed time, so each `time` is the summed latency in both.)"""
    suites = _SUITE.findall(rendered)
    skipped = sum(int(n) for n, _ in suites)
    stamp = next((t for _, t in suites if t), b"")
    when = b' timestamp="' + stamp + b'"' if stamp else b""
    return _ROOT.sub(lambda m: b'<testsuites ' + m.group(1) + b' errors="' + m.group(2) + b'" skipped="'
                     + str(skipped).encode() + b'" time="' + m.group(3) + b'"' + when, rendered, count=1)
