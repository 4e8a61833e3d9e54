"""`harness verify`: re-derive and re-hash an output folder, trusting nothing in it.

Independent lines of evidence, each named when it breaks:
1. the manifest itself: canonical bytes and its roll-up digest;
2. every file against the sha256 the manifest recorded (missing, extra, changed);
3. the payloads, index files and inputs.jsonl re-derived from the spec copy (spec.yaml) and
   the local inputs, in memory (nothing is written), their sha256 compared with the folder's
   files as (2) hashed them; and the original spec and local inputs compared
   with the hashes recorded at run time ("changed since the run");
4. the verdict: the spec's checks re-evaluated over the folder's vectors must give the very
   lines validate.txt holds, and its last line must follow from them (so an edited verdict is
   caught even when someone also rewrote the manifest's hashes);
5. the reports: summary.json carries the manifest's digest and validate.txt's lines and verdict,
   and (for a folder of this harness version) summary.json, junit.xml, report.md and report.html
   are exactly what the folder and summary.json render to, so every report tells one story.

A folder moved elsewhere still verifies (1) and (2) completely; (3) needs the local inputs,
found beside the original spec (via the relative path the manifest recorded) or in `spec_dir`.
What cannot be re-derived is said, and only fails the verification under `strict`.
`hashes_only` (`--hashes-only`) stops after (1) and (2) and says what that leaves unproved.
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness import __version__
from harness.folder import manifest as manifest_mod
from harness.errors import HarnessError, SpecError
from harness.evidence import canonical_json, hash_tree, sha256_file
from harness.folder import FolderError, Manifest, RunReader, layout

# What `--hashes-only` leaves out, said in its output (and README's "Audit: what each layer proves").
NOT_CHECKED_BY_HASHES = (
    "that the payloads, index files and inputs.jsonl follow from the spec and the local inputs (not re-derived)",
    "that the local inputs and the original spec are unchanged since the run",
    "that validate.txt follows from the vectors (the checks were not re-evaluated)",
    "that the reports agree with validate.txt and the manifest (not re-rendered)",
)

# Finding kinds, in the order a report lists them.
KINDS = ("manifest", "missing", "extra", "changed", "spec", "input", "payload", "cells", "verdict", "reports",
         "signature", "reexecute", "not-reexecuted", "not-derived")


@dataclass(frozen=True)
class Finding:
    kind: str          # one of KINDS
    path: str          # the file (relative to the folder, or as recorded) the finding is about
    message: str
    mismatch: bool = True  # False: could not be checked here (not a difference)

    def line(self) -> str:
        return f"{self.kind:<11} {self.path}: {self.message}"


@dataclass
class VerifyReport:
    folder: Path
    findings: list[Finding] = field(default_factory=list)
    hashed: int = 0           # files whose sha256 matched the manifest
    derived: int = 0          # files re-derived byte for byte
    rechecked: int = 0        # validate.txt lines the checks give again from the vectors
    inputs_checked: int = 0   # local input files whose sha256 matched
    spec_source: str | None = None  # where the original spec was found, if it was
    notes: list[str] = field(default_factory=list)
    strict: bool = False
    proved: list[str] = field(default_factory=list)   # what the signature and re-execution established
    hashes_only: bool = False   # `--hashes-only`: nothing was re-derived, re-evaluated or re-rendered
    sections: dict[str, Any] = field(default_factory=dict)   # their details, for --json

    @property
    def ok(self) -> bool:
        return not any(f.mismatch or self.strict for f in self.findings)

    def add(self, kind: str, path: str, message: str, mismatch: bool = True) -> None:
        self.findings.append(Finding(kind, path, message, mismatch))

    def sorted_findings(self) -> list[Finding]:
        return sorted(self.findings, key=lambda f: (KINDS.index(f.kind), f.path))

    def as_dict(self) -> dict[str, Any]:
        extra = {"hashes_only": True, "not_checked": list(NOT_CHECKED_BY_HASHES)} if self.hashes_only else {}
        return {"folder": str(self.folder), "verified": self.ok, "hashed": self.hashed, "derived": self.derived,
                "inputs_checked": self.inputs_checked, "rechecked": self.rechecked, "spec_source": self.spec_source, "notes": self.notes,
                "proved": self.proved, **extra, **self.sections,
                "findings": [dataclasses.asdict(f) for f in self.sorted_findings()]}


def _short(h: str | None) -> str:
    return (h or "none")[:12]


def _read_manifest(folder: Path, report: VerifyReport) -> dict | None:
    path = folder / layout.MANIFEST
    if not path.is_file():
        report.add("missing", layout.MANIFEST, "no manifest.json: this is not a harness output folder, "
                   "or its manifest was deleted")
        return None
    raw = path.read_bytes()
    try:
        manifest = json.loads(raw.decode("utf-8"))
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:   # RecursionError: nesting too deep
        report.add("manifest", layout.MANIFEST, f"is not valid JSON ({exc}); it was damaged or edited")
        return None
    if not isinstance(manifest, dict) or "files" not in manifest:
        report.add("manifest", layout.MANIFEST, "has no `files` table; it was damaged or edited")
        return None
    try:
        Manifest.from_json(manifest)    # the record's shape (a cells list of objects with ids, ...)
    except FolderError as exc:
        report.add("manifest", layout.MANIFEST, f"{exc}; it was damaged or edited")
        return None
    try:
        canonical = canonical_json(manifest, pretty=True)
    except ValueError:
        canonical = b""
    if raw != canonical:
        report.add("manifest", layout.MANIFEST, "bytes differ from its canonical form: it was edited after "
                   "the run")
    try:
        recomputed = manifest_mod.digest(manifest)
    except ValueError:                  # NaN or Infinity, which canonical JSON refuses
        recomputed = None
    if recomputed != manifest.get("digest"):
        report.add("manifest", layout.MANIFEST, f"digest mismatch: recorded {_short(manifest.get('digest'))}, "
                   f"recomputed {_short(recomputed)}; a recorded field was changed")
    return manifest


def _check_files(folder: Path, manifest: dict, report: VerifyReport) -> dict[str, str]:
    recorded: dict[str, str] = manifest.get("files") or {}
    actual = hash_tree(folder, exclude=layout.UNHASHED)
    for path in sorted(set(recorded) - set(actual)):
        report.add("missing", path, "recorded in the manifest but not in the folder")
    for path in sorted(set(actual) - set(recorded)):
        report.add("extra", path, "in the folder but not in the manifest")
    for path in sorted(set(recorded) & set(actual)):
        if recorded[path] != actual[path]:
            report.add("changed", path, f"sha256 {_short(actual[path])}, the manifest recorded {_short(recorded[path])}")
        else:
            report.hashed += 1
    inputs_sha = (manifest.get("inputs") or {}).get("sha256")
    if inputs_sha and "inputs.jsonl" in actual and actual["inputs.jsonl"] != inputs_sha:
        report.add("changed", "inputs.jsonl", "differs from inputs.sha256 in the manifest")
    return actual


def _locate_spec(folder: Path, manifest: dict, spec_dir: Path | None, report: VerifyReport) -> Path | None:
    """Where the local inputs live: `spec_dir` if given, else beside the original spec when the
    manifest's relative path still leads to it (and it is the same spec, changed or not)."""
    spec = manifest.get("spec") or {}
    copy = folder / (spec.get("copy") or "spec.yaml")
    if copy.is_file() and spec.get("sha256") and sha256_file(copy) != spec["sha256"]:
        report.add("spec", copy.name, "the spec copy differs from the spec that was run (sha256 "
                   f"{_short(sha256_file(copy))}, recorded {_short(spec['sha256'])})")
    rel = spec.get("path")
    original = Path(os.path.normpath(folder / rel)) if rel else None
    if original is not None and original.is_file():
        digest = sha256_file(original)
        if digest == spec.get("sha256"):
            report.spec_source = str(original)
            report.notes.append(f"original spec unchanged at {original}")
        elif _same_spec_name(original, spec.get("name")):
            report.spec_source = str(original)
            report.add("spec", str(rel), f"the spec at {original} changed since the run (sha256 {_short(digest)}, "
                       f"recorded {_short(spec.get('sha256'))}); payloads are re-derived from the copy spec.yaml")
        else:
            original = None
    elif original is not None:
        report.notes.append(f"the original spec is not at {original} (the folder was moved or copied); "
                            "the copy spec.yaml is used")
        original = None
    if spec_dir is not None:
        return Path(spec_dir).resolve()
    return original.parent if original is not None else None


def _same_spec_name(path: Path, name: str | None) -> bool:
    """A file at the recorded relative path may be another spec when the folder moved."""
    try:
        from harness.spec import yamlpos
        data, _ = yamlpos.load(path.read_text(encoding="utf-8"))
    except Exception:
        return False
    return isinstance(data, dict) and data.get("name") == name


def _check_local_inputs(manifest: dict, base: Path | None, report: VerifyReport) -> bool:
    """Compare each local input file with its recorded sha256; False when one is unavailable."""
    files = (manifest.get("inputs") or {}).get("files") or []
    complete = True
    for entry in files:
        rel = entry.get("path", "?")
        if base is None:
            report.add("not-derived", rel, "local input not checked: the original spec's folder is unknown "
                       "(pass --spec-dir DIR, the folder the spec's relative paths start from)", mismatch=False)
            complete = False
            continue
        path = base / rel
        if not path.is_file():
            report.add("not-derived", rel, f"local input not found at {path}", mismatch=False)
            complete = False
            continue
        digest = sha256_file(path)
        if digest != entry.get("sha256"):
            report.add("input", rel, f"local input changed since the run (sha256 {_short(digest)}, size "
                       f"{path.stat().st_size}; recorded {_short(entry.get('sha256'))}, size {entry.get('size')})")
        else:
            report.inputs_checked += 1
    return complete


def read_copy(folder: Path, base: Path | None):
    """The spec copy (spec.yaml), parsed once for everything verify re-derives from it, with its
    relative paths starting at `base` (where the local inputs are); or the HarnessError that says
    why it cannot be read."""
    from harness.spec.load import read_spec

    try:
        spec = read_spec(folder / layout.SPEC_COPY)
    except HarnessError as exc:
        return exc
    return dataclasses.replace(spec, base_dir=base if base is not None else folder.resolve())


def derive(folder: Path, base: Path | None, endpoints: dict[str, str] | None = None,
           allow_paths: tuple | list = (), max_payload: int | None = None,
           recorded_filter: dict | None = None, spec=None) -> tuple[dict[str, str], list[str], dict]:
    """Re-derive payload files, index files and inputs.jsonl from the spec copy, through the
    runner's own writer, in memory: only each file's sha256 is kept (nothing is written), so
    verify and run can never drift apart. `endpoints` are the ones the run recorded (it may have
    been sent to `--base-url` or $DASHSCOPE_HTTP_BASE_URL, which this machine need not have).
    `recorded_filter` is the manifest's `filter` (`run --model/--dimension/--cell`): the same
    slice of cells is re-derived. `spec`: the copy as `read_copy` parsed it (read here if None).

    Returns ({relative path: sha256}, cell ids, catalog facts). Raises HarnessError when the spec
    or an input cannot be read or planned here.
    """
    from harness.plan.write import derive_plan
    from harness.plan.build import CellFilter, build_plan

    spec = read_copy(folder, base) if spec is None else spec
    if isinstance(spec, HarnessError):
        raise spec
    if spec.problems:
        raise SpecError(spec.problems)
    # re-rendering sends nothing, so where the run was allowed to send keys is not checked again
    with build_plan(spec, allow_paths=allow_paths, allow_hosts=None, endpoints=endpoints,
                    max_payload=max_payload, cell_filter=CellFilter.from_dict(recorded_filter)) as plan:
        hashes = derive_plan(plan)     # the very writer `harness run` used
        return dict(sorted(hashes.items())), [c.id for c in plan.cells], \
            {"version": plan.catalog.version, "sha256": plan.catalog.sha256}


def recorded_endpoints(manifest: dict) -> dict[str, str]:
    """Model name → the endpoint its cells were sent to, from the manifest."""
    return {c["model"]: c["endpoint"] for c in manifest.get("cells") or []
            if isinstance(c, dict) and isinstance(c.get("model"), str) and isinstance(c.get("endpoint"), str)}


def _check_derived(folder: Path, manifest: dict, base: Path | None, inputs_complete: bool,
                   report: VerifyReport, actual: dict[str, str], spec, allow_paths: tuple | list = (),
                   max_payload: int | None = None) -> None:
    """Compare the re-derived files' sha256 with `actual`, the folder's files as just hashed."""
    try:
        derived, cell_ids, catalog = derive(folder, base, recorded_endpoints(manifest), allow_paths, max_payload,
                                            manifest.get("filter"), spec)
    except HarnessError as exc:
        why = "; ".join(p.render() for p in exc.problems[:3])
        report.add("not-derived", "payloads/", f"cannot re-derive the payloads here: {why}",
                   mismatch=False if not inputs_complete or not (folder / "spec.yaml").is_file() else True)
        return
    recorded = manifest.get("files") or {}
    recorded_cells = [c.get("id") for c in manifest.get("cells") or []]
    if cell_ids != recorded_cells:
        gone = [c for c in recorded_cells if c not in cell_ids]
        new = [c for c in cell_ids if c not in recorded_cells]
        report.add("cells", "manifest.json", "the spec now plans different cells"
                   + (f"; no longer: {', '.join(gone)}" if gone else "") + (f"; new: {', '.join(new)}" if new else ""))
    differs = 0
    for rel, sha in derived.items():
        if rel not in actual:
            if rel not in recorded:
                report.add("payload", rel, "the spec produces this file but the run has none")
            continue  # a recorded file that is missing is reported already
        if actual[rel] != sha:
            differs += 1
            report.add("payload", rel, f"re-derived bytes differ from the file (sha256 {_short(sha)} "
                       f"re-derived, {_short(actual[rel])} in the folder)")
        else:
            report.derived += 1
    for rel in sorted(recorded):
        if rel.startswith("payloads/") and rel not in derived:
            report.add("payload", rel, "recorded in the run but the spec no longer produces it")
    changed = [f.path for f in report.findings if f.kind == "input"]
    if differs and changed:
        report.notes.append(f"the payloads differ because local inputs changed since the run: {', '.join(changed)}")
    old = manifest.get("catalog") or {}
    if differs and old.get("sha256") and old.get("sha256") != catalog["sha256"]:
        report.notes.append(f"the model catalog changed since the run ({old.get('version')} → {catalog['version']}), "
                            "which can change payloads")


def _check_verdict(folder: Path, manifest: dict, base: Path | None, report: VerifyReport, spec) -> None:
    path = folder / "validate.txt"
    if not path.is_file():
        return  # reported as missing
    lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    if not lines or lines[-1] not in ("PASS", "FAIL"):
        report.add("verdict", "validate.txt", "does not end in PASS or FAIL")
        return
    failed = any(line.startswith("FAIL ") for line in lines[:-1])
    if (lines[-1] == "PASS") == failed:
        report.add("verdict", "validate.txt", f"ends in {lines[-1]} but "
                   + ("a line failed" if failed else "no line failed"))
    if isinstance(spec, HarnessError):
        return  # the spec copy is reported already
    data = spec.document     # as written: checks the schema refuses are still compared
    from harness.inputs.datasets import all_checks
    checks = all_checks(data)
    if not checks or not (folder / "vectors").is_dir():
        return
    from harness.checks.evaluate import evaluate_checks
    present = set(lines)
    same_version = (manifest.get("harness") or {}).get("version") == __version__
    if not same_version:
        report.notes.append(f"check details not compared word for word: the folder was written by harness "
                            f"{(manifest.get('harness') or {}).get('version')}, this is {__version__}")
    spec_dir = base if base is not None else folder
    from harness.plan.build import CellFilter
    sliced = CellFilter.from_dict(manifest.get("filter")).describe() or None
    outputs: dict[str, bytes] = {}
    for r in evaluate_checks(checks, folder, manifest.get("cells") or [], spec_dir=spec_dir, sliced=sliced,
                             write=outputs.__setitem__):
        if r.data.get("check") == "stability" and "cannot compare with" in r.detail:
            report.add("not-derived", "validate.txt", f"{r.name} [{r.cell}]: the earlier run it compares with is "
                       "not here", mismatch=False)
            continue
        if r.data.get("qrels_unavailable"):
            report.add("not-derived", "validate.txt", f"{r.name} [{r.cell}]: {r.detail} (pass --spec-dir DIR, "
                       "the folder the spec's relative paths start from)", mismatch=False)
            continue
        # The whole line, detail included (an `ok` over a detail that says "expected X at rank 2"
        # is a forgery); a folder of another harness version may word details differently, so
        # there only status, name and cell must match.
        head = r.head()
        if same_version and r.line() in present:
            report.rechecked += 1
        elif same_version:
            held = next((line for line in lines if line == head or line.startswith(head + ": ")), None)
            report.add("verdict", "validate.txt", f"re-evaluated from the vectors, the check gives {r.line()!r}, "
                       + (f"but validate.txt says {held!r}" if held else "which validate.txt does not hold"))
        elif head not in present and not any(line.startswith(head + ": ") for line in lines):
            report.add("verdict", "validate.txt", f"re-evaluated from the vectors, the check gives "
                       f"{r.line()!r}, which validate.txt does not hold")
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


def _check_reports(folder: Path, manifest: dict, report: VerifyReport) -> None:
    reader = RunReader(folder)
    if int(manifest.get("manifest_version") or 1) >= 2:
        # The digest leaves the reports' hashes out, so their entries must be there to be checked.
        for name in layout.REPORTS:
            if name not in (manifest.get("files") or {}):
                report.add("reports", name, "not in the manifest's file table, which records every report")
    if not reader.has(layout.SUMMARY):
        return  # older runs wrote no summary; one the manifest records is reported missing already
    try:
        summary, results = reader.summary(), reader.results()
        record = Manifest.from_json(manifest)
    except FolderError as exc:
        report.add("reports", layout.SUMMARY, str(exc))
        return
    if record.manifest_version >= 2 and summary.get("manifest_digest") != record.digest:
        report.add("reports", layout.SUMMARY, f"manifest_digest {_short(summary.get('manifest_digest'))} is not the "
                   f"manifest's digest {_short(record.digest)}: it reports another state of the folder")
    lines = reader.validate_lines()
    if lines and ([c.get("line") for c in summary.get("checks") or []] != lines[:-1]
                  or summary.get("verdict") != lines[-1]):
        report.add("reports", layout.SUMMARY, f"its checks or verdict ({summary.get('verdict')}) differ from "
                   f"validate.txt ({lines[-1]})")
    if any(f.kind in ("missing", "extra", "changed") for f in report.findings):
        return  # the files differ from the manifest already; re-rendering would only echo that
    version = record.harness.get("version")
    if version != __version__:
        report.notes.append(f"reports not re-rendered: written by harness {version}, this is {__version__}")
        return
    from harness.report.html import render_html
    from harness.report.junit import recorded_timestamp, render_junit
    from harness.report.markdown import render_markdown
    from harness.report.summary import build_summary, render_summary

    # JUnit's timestamp is the run's start: it is re-rendered as recorded (its hash is in the file table).
    timestamp = recorded_timestamp(folder / layout.JUNIT)
    expected = {layout.SUMMARY: lambda: render_summary(build_summary(folder, record, results)),
                layout.JUNIT: lambda: render_junit(summary, timestamp),
                layout.REPORT_MD: lambda: render_markdown(record, results, summary=summary).encode("utf-8"),
                layout.REPORT_HTML: lambda: render_html(summary, folder)}
    for name, render in expected.items():
        path = folder / name
        if path.is_file() and path.read_bytes() != render():
            report.add("reports", name, "differs from what the folder and summary.json render to: "
                       "it tells another story than the other reports")


def verify_folder(folder: str | Path, *, spec_dir: str | Path | None = None, strict: bool = False,
                  allow_paths: tuple | list = (), max_payload: int | None = None,
                  hashes_only: bool = False) -> VerifyReport:
    """Verify an output folder; see the module docstring. Never raises for a damaged folder:
    every problem is a finding. `allow_paths`: the `--allow-path` folders the run was given.
    `hashes_only`: layers (1) and (2) alone; the report says what that leaves unproved."""
    folder = Path(folder)
    report = VerifyReport(folder=folder, strict=strict, hashes_only=hashes_only)
    manifest = _read_manifest(folder, report)
    if manifest is None:
        return report
    actual = _check_files(folder, manifest, report)
    if hashes_only:
        return report
    base = _locate_spec(folder, manifest, Path(spec_dir) if spec_dir else None, report)
    complete = _check_local_inputs(manifest, base, report)
    if (folder / layout.SPEC_COPY).is_file():
        spec = read_copy(folder, base)      # parsed once: payloads and verdict both start from it
        _check_derived(folder, manifest, base, complete, report, actual, spec, allow_paths, max_payload)
        _check_verdict(folder, manifest, base, report, spec)
    _check_reports(folder, manifest, report)
    return report


def render_report(report: VerifyReport) -> str:
    """What `harness verify` prints: a verdict line, then one line per finding."""
    lines = []
    if report.ok and report.hashes_only:
        lines.append(f"verified, hashes only: {report.folder} ({report.hashed} files match their sha256, the "
                     "manifest its digest)")
    elif report.ok:
        bits = [f"{report.hashed} files match their sha256", f"{report.derived} re-derived byte for byte"]
        if report.rechecked:
            bits.append(f"{report.rechecked} check lines re-evaluated")
        if report.inputs_checked:
            bits.append(f"{report.inputs_checked} local inputs unchanged")
        partial = any(f.kind == "not-derived" for f in report.findings)
        head = "verified (hashes only: the payloads were not re-derived, see below)" if partial else "verified"
        lines.append(f"{head}: {report.folder} ({', '.join(bits)})")
    else:
        n = sum(1 for f in report.findings if f.mismatch or report.strict)
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
