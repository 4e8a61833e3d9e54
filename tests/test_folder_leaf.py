"""The run folder and the summary are leaves: reading a run never loads the network stack.

Issue 22, circle 1: folder/writer imported the reports, and the reports imported execute (for the
not-executed reason, usage and cost), so importing report.summary loaded httpx and the engine.
Checked in a fresh interpreter, since this test's process has imported everything already."""

from __future__ import annotations

import json
import subprocess
import sys

from harness.folder import CellExecution, Reason

NEVER = ("httpx", "harness.execute", "harness.providers")


def test_importing_the_summary_and_the_folder_loads_no_network_stack():
    code = ("import json, sys, harness.report.summary, harness.folder; "
            "print(json.dumps(sorted(sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    loaded = [m for m in json.loads(out) if m.split(".")[0] in NEVER or m.startswith(NEVER)]
    assert loaded == []


def test_a_reason_is_kept_as_its_parts_and_written_as_one_text():
    cell = CellExecution.from_json({"id": "c", "executed": False,
                                    "reason": "no DashScope API key: set DASHSCOPE_API_KEY: or a file"})
    assert cell.reason == Reason("no DashScope API key", "set DASHSCOPE_API_KEY: or a file")
    assert cell.to_json()["reason"] == "no DashScope API key: set DASHSCOPE_API_KEY: or a file"
    assert Reason("provider 'x' is not available here").text == "provider 'x' is not available here"
