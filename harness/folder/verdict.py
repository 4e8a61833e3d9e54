"""Check results and `validate.txt`, the file a CI job gates on.

Every check the harness performs, offline or after execution, becomes one `CheckResult` and
one line of `validate.txt`, prefixed by its status (`ok  `, `FAIL`, `skip`, `warn`); the last
line is `PASS` or `FAIL`. Only a failed line fails the verdict, but a skipped check or a
warning is never shown or counted as a pass.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable
from urllib.parse import urlsplit

# status → its 4-character prefix in validate.txt (aligned, so `cut -c1-4` gives the status)
PREFIX = {"pass": "ok  ", "fail": "FAIL", "skip": "skip", "warn": "warn"}
# status → the word reports use (summary.json `status`, JUnit, report.md/html)
WORD = {"pass": "passed", "fail": "failed", "skip": "skipped", "warn": "warning"}


@dataclass(frozen=True)
class CheckResult:
    name: str                 # short id, e.g. "schema", "catalog", "nearest:cat-caption"
    passed: bool              # False only for a failure (derived from `status` when that is given)
    detail: str = ""          # what was measured, in words a person reads
    cell: str | None = None   # cell id when the check is per cell
    kind: str = "offline"     # "offline" | "execution" | "check" | "export"
    data: dict[str, Any] = field(default_factory=dict, compare=False)  # numbers for reports
    status: str = ""          # "pass" | "fail" | "skip" | "warn"; empty: "pass" or "fail" from `passed`

    def __post_init__(self) -> None:
        status = self.status or ("pass" if self.passed else "fail")
        if status not in PREFIX:
            raise ValueError(f"unknown check status {status!r}")
        object.__setattr__(self, "status", status)
        object.__setattr__(self, "passed", status != "fail")

    @classmethod
    def skip(cls, name: str, detail: str, cell: str | None = None, kind: str = "offline",
             data: dict[str, Any] | None = None) -> "CheckResult":
        """A check that could not run (e.g. its cell was not executed): neither pass nor fail."""
        return cls(name, True, detail, cell, kind, data or {}, status="skip")

    @classmethod
    def warn(cls, name: str, detail: str, cell: str | None = None, kind: str = "offline",
             data: dict[str, Any] | None = None) -> "CheckResult":
        """Something a person should read (e.g. a disputed API fact) that does not fail the run."""
        return cls(name, True, detail, cell, kind, data or {}, status="warn")

    @property
    def word(self) -> str:
        return WORD[self.status]

    def head(self) -> str:
        """The line up to its detail: status prefix, name and cell."""
        where = f" [{self.cell}]" if self.cell else ""
        return f"{PREFIX[self.status]} {self.name}{where}"

    def line(self) -> str:
        return f"{self.head()}: {self.detail}" if self.detail else self.head()


def failure_cause(error: dict[str, Any] | None, endpoint: str | None = None) -> str:
    """A failed request's cause in a few words, and where: 'HTTP 401 InvalidApiKey at 127.0.0.1:18733',
    'ConnectionError at 127.0.0.1:9' (`error`: a failure as execution.json records it)."""
    error = error if isinstance(error, dict) else {}
    status, code = error.get("status"), error.get("code")
    what = " ".join(str(b) for b in (f"HTTP {status}" if status else None, code) if b) or "an error"
    parts = urlsplit(endpoint or "")
    return f"{what} at {parts.netloc}" if parts.scheme in ("http", "https") and parts.netloc else what


def unexecuted(info: Any, fatal: dict[str, Any] | None) -> dict[str, Any] | None:
    """For a cell that was sent but got no vector at all (`info`: its execution.json entry, a
    `CellExecution`), the failure it owes that to: its first failed request's, else the run's fatal
    error ({} when neither is known); None for a cell that has vectors, or was not sent, or had
    no failure. Its check lines are then skipped, naming `failure_cause` of it."""
    if info is None or not info.executed or info.vectors:
        return None
    if not (info.failures or info.requests.get("failed") or info.requests.get("not_sent")):
        return None
    return info.failures[0] if info.failures else (fatal or {})


def verdict(results: Iterable[CheckResult]) -> bool:
    """PASS when no line failed. (A run that executed nothing carries its own failed line.)"""
    return all(r.status != "fail" for r in results)


def counts(results: Iterable[CheckResult]) -> dict[str, int]:
    """How many lines have each status (summary.json `counts`)."""
    statuses = [r.status for r in results]
    return {"total": len(statuses), "passed": statuses.count("pass"), "failed": statuses.count("fail"),
            "skipped": statuses.count("skip"), "warnings": statuses.count("warn")}


def render_validate_txt(results: list[CheckResult]) -> bytes:
    lines = [r.line() for r in results]
    lines.append("PASS" if verdict(results) else "FAIL")
    return ("\n".join(lines) + "\n").encode("utf-8")
