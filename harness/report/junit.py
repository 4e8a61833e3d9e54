"""JUnit XML, a projection of the JSON summary: one test case per check per cell.

CI systems (GitHub, GitLab, Jenkins) show these natively. Test suites group by cell (checks
that are not per cell sit in the suite "run"), so a failing dimension stands out. A `skip` line
is a `<skipped/>` case. A `warn` line is no test at all (JUnit has no "warning" outcome, and a
passing case would hide it): it goes to its suite's `<system-err>`, one line each.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET


def render_junit(summary: dict) -> bytes:
    name = (summary.get("spec") or {}).get("name") or "harness"
    suites: dict[str, list[dict]] = {}
    warnings: dict[str, list[str]] = {}
    for check in summary.get("checks") or []:
        suite = check.get("cell") or "run"
        if check["status"] == "warning":
            warnings.setdefault(suite, []).append(check.get("line") or check.get("detail") or "")
            suites.setdefault(suite, [])
        else:
            suites.setdefault(suite, []).append(check)

    def counts(checks: list[dict]) -> dict[str, str]:
        return {"tests": str(len(checks)),
                "failures": str(sum(c["status"] == "failed" for c in checks)),
                "errors": "0",
                "skipped": str(sum(c["status"] == "skipped" for c in checks))}

    root = ET.Element("testsuites", {"name": f"harness: {name}", **counts([c for cs in suites.values() for c in cs])})
    for suite_name, checks in suites.items():
        suite = ET.SubElement(root, "testsuite", {"name": f"{name}.{suite_name}", **counts(checks)})
        for check in checks:
            attrs = {"classname": f"{name}.{suite_name}", "name": check["name"], "time": "0"}
            line = (check.get("data") or {}).get("line")
            if line:
                attrs.update({"file": "spec.yaml", "line": str(line)})
            case = ET.SubElement(suite, "testcase", attrs)
            detail = check.get("detail") or ""
            if check["status"] == "failed":
                failure = ET.SubElement(case, "failure", {"message": detail[:500], "type": check.get("kind") or "check"})
                failure.text = check.get("line") or detail
            elif check["status"] == "skipped":
                ET.SubElement(case, "skipped", {"message": detail[:500]})
            if detail:
                ET.SubElement(case, "system-out").text = detail
        if warnings.get(suite_name):
            ET.SubElement(suite, "system-err").text = "\n".join(warnings[suite_name])
    ET.indent(root)
    return b'<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="utf-8") + b"\n"
