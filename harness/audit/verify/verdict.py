"""Layer 4: the verdict. The spec's checks re-evaluated over the folder's vectors must give the very
lines validate.txt holds, and its last line must follow from them, so an edited verdict is caught
even when someone also rewrote the manifest's hashes."""

from __future__ import annotations

from harness import __version__
from harness.audit.verify.parse import VerifyContext
from harness.audit.verify.result import VerifyReport
from harness.errors import HarnessError
from harness.folder import layout


def check_verdict(context: VerifyContext, report: VerifyReport) -> None:
    folder, reader = context.folder, context.run.read
    if not reader.has(layout.VALIDATE):
        return  # reported as missing
    lines = reader.validate_lines()
    if not lines or lines[-1] not in ("PASS", "FAIL"):
        report.add("verdict", layout.VALIDATE, "does not end in PASS or FAIL")
        return
    failed = any(line.startswith("FAIL ") for line in lines[:-1])
    if (lines[-1] == "PASS") == failed:
        report.add("verdict", layout.VALIDATE, f"ends in {lines[-1]} but "
                   + ("a line failed" if failed else "no line failed"))
    spec = context.spec
    if isinstance(spec, HarnessError):
        return  # the spec copy is reported already
    from harness.inputs.datasets import all_checks
    checks = all_checks(spec.document)     # as written: checks the schema refuses are still compared
    if not checks or not (folder / "vectors").is_dir():
        return
    from harness.checks.evaluate import evaluate_checks
    from harness.plan.cells import CellFilter

    present = set(lines)
    version = context.record.harness.get("version")
    same_version = version == __version__
    if not same_version:
        report.notes.append(f"check details not compared word for word: the folder was written by harness "
                            f"{version}, this is {__version__}")
    spec_dir = context.base if context.base is not None else folder
    sliced = CellFilter.from_dict(context.manifest.get("filter")).describe() or None
    outputs: dict[str, bytes] = {}
    for r in evaluate_checks(checks, folder, context.record.cells, spec_dir=spec_dir, sliced=sliced,
                             write=outputs.__setitem__):
        if r.data.get("earlier_found") is False:     # a stability check whose earlier run is not here
            report.add("not-derived", layout.VALIDATE, f"{r.name} [{r.cell}]: the earlier run it compares with is "
                       "not here", mismatch=False, cell=r.cell)
            continue
        if r.data.get("qrels_unavailable"):
            report.add("not-derived", layout.VALIDATE, f"{r.name} [{r.cell}]: {r.detail} (pass --spec-dir DIR, "
                       "the folder the spec's relative paths start from)", mismatch=False, cell=r.cell)
            continue
        # The whole line, detail included (an `ok` over a detail that says "expected X at rank 2"
        # is a forgery); a folder of another harness version may word details differently, so
        # there only status, name and cell must match.
        head = r.head()
        if same_version and r.line() in present:
            report.rechecked += 1
        elif same_version:
            held = next((line for line in lines if line == head or line.startswith(head + ": ")), None)
            report.add("verdict", layout.VALIDATE, f"re-evaluated from the vectors, the check gives {r.line()!r}, "
                       + (f"but validate.txt says {held!r}" if held else "which validate.txt does not hold"),
                       cell=r.cell)
        elif head not in present and not any(line.startswith(head + ": ") for line in lines):
            report.add("verdict", layout.VALIDATE, f"re-evaluated from the vectors, the check gives "
                       f"{r.line()!r}, which validate.txt does not hold", cell=r.cell)
        else:
            report.rechecked += 1
    # A retrieval check's result and run files, derived again from the vectors: byte for byte.
    for rel, content in sorted(outputs.items()):
        path = folder / rel
        if not path.is_file():
            report.add("verdict", rel, "the retrieval check gives this file, which the folder does not hold")
        elif path.read_bytes() != content:
            report.add("verdict", rel, "differs from what the retrieval check derives from the vectors")
        else:
            report.derived += 1
