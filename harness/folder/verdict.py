"""Check results and `validate.txt`, the file a CI job gates on.

Every check the harness performs, offline or after execution, becomes one `CheckResult` and
one line of `validate.txt`, prefixed by its status (`ok  `, `FAIL`, `skip`, `warn`); the last
line is `PASS` or `FAIL`. Only a failed line fails the verdict, but a skipped check or a
warning is never shown or counted as a pass.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable

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
