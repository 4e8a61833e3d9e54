"""The findings → what `harness verify` prints and the exit code it returns."""

from __future__ import annotations

from harness.audit.verify.result import NOT_CHECKED_BY_HASHES, VerifyReport
from harness.errors import ExitCode
from harness.words import counted


def render_report(report: VerifyReport) -> str:
    """What `harness verify` prints: a verdict line, then one line per finding."""
    lines = []
    if report.ok and report.hashes_only:
        match = "matches its" if report.hashed == 1 else "match their"
        lines.append(f"verified, hashes only: {report.folder} ({counted(report.hashed, 'file')} {match} sha256, the "
                     "manifest its digest)")
    elif report.ok:
        bits = [f"{counted(report.hashed, 'file')} {'matches its' if report.hashed == 1 else 'match their'} sha256",
                f"{report.derived} re-derived byte for byte"]
        if report.rechecked:
            bits.append(f"{counted(report.rechecked, 'check line')} re-evaluated")
        if report.inputs_checked:
            bits.append(f"{counted(report.inputs_checked, 'local input')} unchanged")
        partial = any(f.kind == "not-derived" for f in report.findings)
        head = "verified (hashes only: the payloads were not re-derived, see below)" if partial else "verified"
        lines.append(f"{head}: {report.folder} ({', '.join(bits)})")
    else:
        n = len(report.failing())
        lines.append(f"MISMATCH: {report.folder}: {n} finding{'s' if n != 1 else ''}")
    lines.extend(f"  {line}" for line in report.proved)
    for f in report.sorted_findings():
        lines.append(("  " if f.mismatch or report.strict else "  note: ") + f.line())
    for note in report.notes:
        lines.append(f"  note: {note}")
    if report.hashes_only:
        lines.append("  not checked (--hashes-only; run `harness verify` without it for these):")
        lines.extend(f"    - {what}" for what in NOT_CHECKED_BY_HASHES)
    return "\n".join(lines)


def exit_code(report: VerifyReport) -> int:
    """0 verified; 5 a mismatch; 4 when all that fails is a re-execution that could not run (no key,
    network): that proves nothing either way, a provider error."""
    if report.ok:
        return int(ExitCode.OK)
    failing = {f.kind for f in report.failing()}
    return int(ExitCode.PROVIDER_ERROR if failing == {"not-reexecuted"} else ExitCode.VERIFY_MISMATCH)
