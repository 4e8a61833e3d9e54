"""Execution evidence, beyond what hashes prove: who vouches for the folder (`--allowed-signers`) and
whether the model gives its vectors (`--reexecute`), added to the verify report."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from harness.audit import signing
from harness.audit.verify.parse import VerifyContext
from harness.audit.verify.result import VerifyReport
from harness.checks.context import listed
from harness.errors import ExitCode, HarnessError, Problem, UsageError
from harness.folder import layout

if TYPE_CHECKING:
    from harness.audit.reexecute import Tolerance
    from harness.audit.sample import Sample

SHOWN = 5                               # disagreeing inputs named per cell


def check_signature(report: VerifyReport, allowed_signers: str) -> None:
    result = signing.check(report.folder, allowed_signers)
    report.sections["signature"] = {"signed": result.signed, "ok": result.ok, "signer": result.signer,
                                    "key": result.key, "message": result.message}
    if result.ok:
        report.proved.append(result.message)
    else:
        report.add("signature", signing.SIGNATURE, result.message)


def check_attestation(report: VerifyReport, attestation: str, key: str | None) -> None:
    """`verify --attestation FILE [--key PUB]`: the attestation's signature and subject (`audit.attest.check`)."""
    from harness.audit.attest import check

    holds, fails = check(report.folder, attestation, key)
    report.sections["attestation"] = {"file": str(attestation), "ok": not fails, "holds": holds, "fails": fails}
    report.proved.extend(holds)
    for message in fails:
        report.add("attestation", layout.ATTESTATION, message)


def check_reexecution(context: VerifyContext | None, report: VerifyReport, *, per_cell: int | str | None,
                      seed: int | None, tolerance: Tolerance | None, max_cost: float | None, base_url: str | None,
                      allow_hosts: tuple | list = (), announce: Callable[[str], None] = print,
                      console: Any = None, cell_filter: Any = None) -> Sample | None:
    """`verify --reexecute`: estimate, refuse above `max_cost` (exit 2, nothing sent), re-execute,
    and add the outcome to the verify report (findings `reexecute`, `not-reexecuted`).
    `cell_filter` limits which of the run's cells are re-executed."""
    from harness.audit.reexecute import plan_cells, run_sample  # numpy: only when re-executing
    from harness.audit.sample import choose

    folder = Path(report.folder)
    if context is None or not (folder / layout.SPEC_COPY).is_file():
        report.add("not-reexecuted", layout.MANIFEST if context is None else layout.SPEC_COPY,
                   "nothing to re-execute without a readable manifest and the spec copy")
        return None
    try:
        planned = plan_cells(context, base_url, allow_hosts)
    except HarnessError as exc:
        if exc.exit_code == ExitCode.USAGE:      # a malformed $HARNESS_ALLOW_HOSTS
            raise
        why = "; ".join(p.render() for p in exc.problems[:3])
        report.add("not-reexecuted", layout.SPEC_COPY,
                   f"nothing sent: the cells cannot be planned from the spec copy: {why}")
        return None
    # cells whose payload files do not verify: sending them would prove nothing
    untrusted = {f.cell for f in report.findings if f.cell is not None and f.mismatch
                 and f.kind in ("payload", "changed", "missing")
                 and f.path.startswith(f"{layout.payload_dir(f.cell)}/")}
    sample = choose(context, planned, per_cell, seed, untrusted, cell_filter)
    announce(sample.describe())
    over = {k: v for k, v in sample.cost.items() if max_cost is not None and v > max_cost}
    if over:
        raise UsageError(Problem(f"re-execution would cost about {' + '.join(f'{v:.4f} {k}' for k, v in over.items())}"
                                   f", above --max-cost {max_cost:g}; nothing was sent",
                                   hint="--max-cost bounds each currency's total; sample fewer requests per cell "
                                        "(--reexecute N) or raise --max-cost"))
    for cid, why in sample.unusable.items():
        report.add("not-reexecuted", cid, why, cell=cid)
    agreements = run_sample(context, sample, tolerance, console, allow_hosts)
    for a in agreements:
        report.proved.append(a.line())
        recorded = entry.endpoint if (entry := context.cell(a.cell)) is not None else None
        if a.endpoint and recorded and a.endpoint != recorded and not a.failed:
            report.notes.append(f"{a.cell} was re-executed at {a.endpoint}; the run recorded {recorded}")
        npy = layout.vectors_file(a.cell)
        if a.failed:
            report.add("not-reexecuted", a.cell, a.failed, cell=a.cell)
            continue
        if a.conflict:
            report.add("reexecute", npy, a.conflict, cell=a.cell)
            continue
        for d in a.disagree[:SHOWN]:
            why = ("not bit-identical to the model's vector" if a.tolerance.distance is None
                   else f"needs {a.tolerance.describe()}")
            report.add("reexecute", npy, f"input {d['id']}: the model gives another vector (cosine "
                       f"{d['cosine']:.6f}; {why})", cell=a.cell)
        if len(a.disagree) > SHOWN:
            report.add("reexecute", npy, f"and {len(a.disagree) - SHOWN} more inputs disagree", cell=a.cell)
        if a.missing:
            report.add("reexecute", npy, f"the model answers {_ids(a.missing)}, for which the folder has no vector",
                       cell=a.cell)
        if a.extra:
            report.add("reexecute", npy, f"vectors for {_ids(a.extra)}, which no request of the run carries",
                       cell=a.cell)
    report.sections["reexecution"] = {**sample.as_dict(), "agreement": [a.as_dict() for a in agreements]}
    return sample


def _ids(ids: list[str], limit: int = SHOWN) -> str:
    return listed(ids, limit)
