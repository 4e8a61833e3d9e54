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
    source: str | None = None   # the source line and a caret under `col`, shown under the message (YAML syntax)

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
        if self.source:
            text += "\n" + self.source
        return text

    def sort_key(self) -> tuple:
        return (self.file or "", self.line or 0, self.col or 0)


class HarnessError(Exception):
    """The root of the harness's exceptions: stops a command with every problem found. Each class
    carries the exit code it leaves with (`exit_code`), as httpx's one tree carries its meanings;
    an instance may override it when the same mistake means another code in another command."""

    exit_code: ExitCode = ExitCode.SPEC_INVALID

    def __init__(self, problems: list[Problem] | Problem | str, exit_code: ExitCode | None = None):
        if isinstance(problems, str):
            problems = [Problem(problems)]
        elif isinstance(problems, Problem):
            problems = [problems]
        self.problems = list(problems)
        if exit_code is not None:
            self.exit_code = exit_code
        super().__init__("\n".join(p.render() for p in self.problems))


class UsageError(HarnessError):
    """A bad command line, flag value or environment setting the user gave (exit 2)."""

    exit_code = ExitCode.USAGE


class SpecError(HarnessError):
    """The spec or one of its inputs is invalid; nothing was written (exit 3)."""

    exit_code = ExitCode.SPEC_INVALID


class ServiceError(HarnessError):
    """The provider or the infrastructure failed: auth, network, retries exhausted (exit 4)."""

    exit_code = ExitCode.PROVIDER_ERROR


class MismatchError(HarnessError):
    """`verify`, `diff` or a folder check found a difference or a damaged folder (exit 5)."""

    exit_code = ExitCode.VERIFY_MISMATCH


class InternalError(HarnessError):
    """A fault of the harness itself, e.g. a broken shipped file (exit 70)."""

    exit_code = ExitCode.INTERNAL


class Failure(Exception):
    """The root of the errors that stages raise to each other and turn into `Problem`s or findings
    before anything reaches the user (a malformed answer, a damaged file, a bad input row). Each
    says which exit code it would mean if it reached the command line unconverted."""

    exit_code: ExitCode = ExitCode.INTERNAL
