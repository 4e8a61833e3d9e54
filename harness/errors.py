"""Errors are values: a location, a message and a hint, collected and rendered once.

A user never sees a traceback for their own mistake; every failure the harness can foresee
is a `Problem`, and a command that must stop raises `HarnessError` with all of them.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum


class ExitCode(IntEnum):
    """The documented exit codes (README "Exit codes"); CI jobs gate on these."""

    OK = 0                # everything ran and every check passed (validate.txt ends in PASS)
    CHECKS_FAILED = 1     # the run completed but a check failed (validate.txt ends in FAIL)
    USAGE = 2             # bad command line (argparse's own convention)
    SPEC_INVALID = 3      # the spec or one of its inputs is invalid; nothing was written
    PROVIDER_ERROR = 4    # provider or infrastructure error: auth, network, retries exhausted
    VERIFY_MISMATCH = 5   # `harness verify` / `harness diff` found a difference
    NOTHING_EXECUTED = 6  # `run --execute` but no cell executed (e.g. no API key): nothing to gate on
    INTERNAL = 70         # a bug in the harness (EX_SOFTWARE); please report it
    INTERRUPTED = 130     # Ctrl-C / SIGTERM; what was received is kept in the cache


@dataclass(frozen=True)
class Problem:
    message: str
    file: str | None = None
    line: int | None = None
    col: int | None = None
    hint: str | None = None
    severity: str = "error"  # "error" | "warning"

    @property
    def is_error(self) -> bool:
        return self.severity == "error"

    def location(self) -> str:
        if self.file is None:
            return ""
        parts = [self.file]
        if self.line is not None:
            parts.append(str(self.line))
            if self.col is not None:
                parts.append(str(self.col))
        return ":".join(parts)

    def render(self) -> str:
        loc = self.location()
        text = f"{loc}: " if loc else ""
        if self.severity != "error":
            text += f"{self.severity}: "
        text += self.message
        if self.hint:
            text += f" ({self.hint})"
        return text

    def sort_key(self) -> tuple:
        return (self.file or "", self.line or 0, self.col or 0)


class HarnessError(Exception):
    """Stops a command; carries every problem found and the exit code to leave with."""

    def __init__(self, problems: list[Problem] | Problem | str, exit_code: ExitCode = ExitCode.SPEC_INVALID):
        if isinstance(problems, str):
            problems = [Problem(problems)]
        elif isinstance(problems, Problem):
            problems = [problems]
        self.problems = list(problems)
        self.exit_code = exit_code
        super().__init__("\n".join(p.render() for p in self.problems))
