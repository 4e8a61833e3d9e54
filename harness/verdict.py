"""Check results and `validate.txt`, the file a CI job gates on.

Every check the harness performs, offline or after execution, becomes one `CheckResult` and
one line of `validate.txt`; the last line is `PASS` or `FAIL`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable


@dataclass(frozen=True)
class CheckResult:
    name: str                 # short id, e.g. "schema", "catalog", "nearest:cat-caption"
    passed: bool
    detail: str = ""          # what was measured, in words a person reads
    cell: str | None = None   # cell id when the check is per cell
    kind: str = "offline"     # "offline" | "execution" | "check" | "export"
    data: dict[str, Any] = field(default_factory=dict, compare=False)  # numbers for reports

    def line(self) -> str:
        where = f" [{self.cell}]" if self.cell else ""
        text = f"{'ok  ' if self.passed else 'FAIL'} {self.name}{where}"
        return f"{text}: {self.detail}" if self.detail else text


def verdict(results: Iterable[CheckResult]) -> bool:
    return all(r.passed for r in results)


def render_validate_txt(results: list[CheckResult]) -> bytes:
    lines = [r.line() for r in results]
    lines.append("PASS" if verdict(results) else "FAIL")
    return ("\n".join(lines) + "\n").encode("utf-8")
