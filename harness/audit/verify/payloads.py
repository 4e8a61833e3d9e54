"""Layer 3: the local inputs against the sha256 recorded at run time ("changed since the run"), and
the payloads, index files and inputs.jsonl re-derived from the spec copy in memory (nothing is
written), their sha256 compared with the folder's files as layer 2 hashed them."""

from __future__ import annotations

import dataclasses

from harness.audit.verify.parse import VerifyContext
from harness.audit.verify.result import VerifyReport, short
from harness.checks.context import listed
from harness.errors import HarnessError, SpecError
from harness.folder import FolderError, layout, scan
from harness.inputs.files import InputFiles
from harness.inputs.types import InputProblem
from harness.words import plural


def check_local_inputs(context: VerifyContext, report: VerifyReport) -> bool:
    """Compare each local input file with its recorded sha256; False when one is unavailable. A
    recorded path is resolved as a run resolves its inputs (`InputFiles`, confined to
    `context.roots`): one that leads outside them is not read, and nothing of it is shown."""
    base = context.base
    files = InputFiles(base, context.roots) if base is not None else None
    complete = True
    for entry in context.record.inputs.get("files") or []:
        rel = entry.get("path", "?")
        if files is None:
            report.add("not-derived", rel, "local input not checked: the original spec's folder is unknown "
                       "(pass --spec-dir DIR, the folder the spec's relative paths start from)", mismatch=False)
            complete = False
            continue
        try:
            path = files.resolve(rel, "local input", ())
        except InputProblem as exc:    # nothing of it is read or shown; a run would refuse it alike
            report.add("input", rel, f"not read: {exc.message} (pass --allow-path DIR as the run was given, "
                       "or --spec-dir DIR)")
            complete = False
            continue
        if not path.exists():
            report.add("not-derived", rel, f"local input not found at {path}", mismatch=False)
            complete = False
            continue
        try:
            digest = scan.hash_path(path)
        except FolderError as exc:
            report.add("not-derived", rel, f"local input not checked at {path}: {exc}", mismatch=False)
            complete = False
            continue
        if digest != entry.get("sha256"):
            report.add("input", rel, f"local input changed since the run (sha256 {short(digest)}, size "
                       f"{path.stat().st_size}; recorded {short(entry.get('sha256'))}, size {entry.get('size')})")
        else:
            report.inputs_checked += 1
    return complete


def derive(context: VerifyContext, allow_paths: tuple | list = (),
           max_payload: int | None = None) -> tuple[dict[str, str], list[str], dict, list[dict]]:
    """Re-derive payload files, index files and inputs.jsonl from the spec copy, through the
    runner's own writer, in memory: only each file's sha256 is kept (nothing is written), so
    verify and run can never drift apart. The endpoints are the ones the run recorded (it may have
    been sent to `--base-url` or $DASHSCOPE_HTTP_BASE_URL, which this machine need not have), and
    the same slice of cells (the manifest's `filter`: `run --model/--dimension/--cell`) is re-derived.

    Returns ({relative path: sha256}, cell ids, catalog facts, the local files the inputs read, as
    the manifest records them). Raises HarnessError when the spec
    or an input cannot be read or planned here.
    """
    from harness.plan.build import build_plan
    from harness.plan.cells import CellFilter
    from harness.plan.write import derive_plan, deriving

    spec = context.spec
    if isinstance(spec, HarnessError):
        raise spec
    if spec.problems:
        raise SpecError(spec.problems)
    spec = as_planned_in(spec, context.record.format)
    # re-rendering sends nothing, so where the run was allowed to send keys is not checked again
    with build_plan(spec, catalog=context.catalog, allow_paths=allow_paths, allow_hosts=None,
                    endpoints=recorded_endpoints(context), max_payload=max_payload,
                    cell_filter=CellFilter.from_dict(context.manifest.get("filter")),
                    writer=deriving(context.record.format)) as plan:
        hashes = derive_plan(plan, context.record.format)   # the very writer `harness run` used, in the folder's layout
        return dict(sorted(hashes.items())), [c.id for c in plan.cells], \
            {"version": plan.catalog.version, "sha256": plan.catalog.sha256}, plan.input_files


def as_planned_in(spec, evidence_format: int):
    """The spec as a run of `evidence_format` planned it: its data-set entries carry the format, so a
    `beir:` entry of format 1 or 2 leaves out the queries judged only grade 0, as those formats did."""
    from harness.inputs.datasets.beir import FORMAT_KEY, ZERO_GRADES_FROM

    if evidence_format >= ZERO_GRADES_FROM or not isinstance(spec.data.get("inputs"), list):
        return spec
    inputs = [{**e, FORMAT_KEY: evidence_format} if isinstance(e, dict) and "beir" in e else e
              for e in spec.data["inputs"]]
    return dataclasses.replace(spec, data={**spec.data, "inputs": inputs})


def _requests_off(context: VerifyContext, rel: str) -> str:
    """For a cell's requests.jsonl that differs: which requests no longer match their index line
    (`harness payload` prints them), so one changed body among thousands is named."""
    cid = context.cell_of(rel)
    if cid is None or rel != layout.payload_bodies(cid):
        return ""
    from harness.evidence import sha256_bytes

    try:
        off = [n for n, (entry, body) in enumerate(context.run.read.payload_bodies(cid, context.record.format), 1)
               if sha256_bytes(body) != entry["sha256"]]
    except FolderError as exc:
        return f"; {exc}"
    if not off:
        return "; every body matches its line of the folder's index"
    return (f"; {plural('request', len(off))} {listed([str(n) for n in off], 5)} "
            f"no longer match{'es' if len(off) == 1 else ''} the index")


def recorded_endpoints(context: VerifyContext) -> dict[str, str]:
    """Model name → the endpoint its cells were sent to, from the manifest."""
    return {c.model: c.endpoint for c in context.cells if c.model is not None and c.endpoint is not None}


def check_derived(context: VerifyContext, report: VerifyReport, actual: dict[str, str], inputs_complete: bool,
                  allow_paths: tuple | list = (), max_payload: int | None = None) -> None:
    """Compare the re-derived files' sha256 with `actual`, the folder's files as just hashed."""
    folder = context.folder
    try:
        derived, cell_ids, catalog, input_files = derive(context, allow_paths, max_payload)
    except HarnessError as exc:
        why = "; ".join(p.render() for p in exc.problems[:3])
        report.add("not-derived", "payloads/", f"cannot re-derive the payloads here: {why}",
                   mismatch=False if not inputs_complete or not (folder / layout.SPEC_COPY).is_file() else True)
        return
    recorded = context.record.files
    listed = {f.get("path"): f for f in context.record.inputs.get("files") or []}
    read = {f["path"]: f for f in input_files}
    for rel in sorted(set(listed) ^ set(read), key=str):
        report.add("input", str(rel), "the manifest records this local input, which the spec does not read"
                   if rel in listed else "the spec reads this local input, which the manifest does not record")
    recorded_cells = context.record.cell_ids
    if cell_ids != recorded_cells:
        gone = [c for c in recorded_cells if c not in cell_ids]
        new = [c for c in cell_ids if c not in recorded_cells]
        report.add("cells", "manifest.json", "the spec now plans different cells"
                   + (f"; no longer: {', '.join(gone)}" if gone else "") + (f"; new: {', '.join(new)}" if new else ""))
    differs = 0
    for rel, sha in derived.items():
        if rel not in actual:
            if rel not in recorded:
                report.add("payload", rel, "the spec produces this file but the run has none",
                           cell=context.cell_of(rel))
            continue  # a recorded file that is missing is reported already
        if actual[rel] != sha:
            differs += 1
            report.add("payload", rel, f"re-derived bytes differ from the file (sha256 {short(sha)} "
                       f"re-derived, {short(actual[rel])} in the folder){_requests_off(context, rel)}",
                       cell=context.cell_of(rel))
        else:
            report.derived += 1
    for rel in sorted(recorded):
        if rel.startswith("payloads/") and rel not in derived:
            report.add("payload", rel, "recorded in the run but the spec no longer produces it",
                       cell=context.cell_of(rel))
    changed = [f.path for f in report.findings if f.kind == "input"]
    if differs and changed:
        report.notes.append(f"the payloads differ because local inputs changed since the run: {', '.join(changed)}")
    old = context.record.catalog or {}
    if differs and old.get("sha256") and old.get("sha256") != catalog["sha256"]:
        report.notes.append(f"the model catalog changed since the run ({old.get('version')} → {catalog['version']}), "
                            "which can change payloads")

