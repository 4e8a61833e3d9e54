"""`harness merge RUN… --output DIR`: the shards of one spec (runs filtered by `--cell`, e.g. one CI
matrix job per cell) made into one run folder, as if the spec had been run in one piece.

The shards must agree on everything they share: the evidence format, the harness version, the
schema and catalog hashes, the spec (its sha256 and name) and the inputs (inputs.jsonl's hash and
every recorded input file and URL); a disagreement is a `MismatchError` (exit 5) naming the field.
Each cell is taken from the shard that ran it: its raw evidence (`layout.cell_files`: payloads,
vectors and ids, responses, and its record in execution.json), every file checked against the
sha256 its shard's manifest records. A cell two shards hold is taken once when its files are the
same bytes and refused (exit 5, naming the cell) when they differ. Everything derived is made
again, never copied: the execution lines (verify's own derivation from the evidence), the spec's
checks (the runner's evaluation, writing results/ and runs/), validate.txt, the reports and the
manifest (`report.finalize`). So the payloads and vectors are byte for byte those of the same spec
run in one piece, and when nothing was executed the manifest digest is that run's too.

Which shards went in, with their digests, is written to run.json (outside the manifest's hashes):
the manifest itself stays the one a one-piece run writes.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import socket
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from harness.errors import MismatchError, Problem, UsageError
from harness.evidence import StagedFolder, atomic_write, atomic_writer, canonical_json, sha256_bytes
from harness.folder import EVIDENCE_FORMAT, Execution, FolderError, Manifest, RunWriter, layout, scan
from harness.folder import manifest as manifest_mod
from harness.folder.reader import NotARun, Run, open_run
from harness.folder.verdict import CheckResult
from harness.words import counted

HEAD = ("spec", "catalog", "inputs")      # the plan's first lines, in this order
SPEC_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")      # spec.schema.json's `name` pattern


@dataclass
class MergeOutcome:
    folder: Path
    manifest: dict[str, Any]
    results: list[CheckResult]
    cells: dict[str, Path]                # cell id → the shard it was taken from
    complete: bool                        # every cell of the spec is in the merged folder


def merge(shards: list[str | Path], output: str | Path, *, spec_dir: str | Path | None = None,
          allow_paths: tuple | list = ()) -> MergeOutcome:
    """Merge the shard folders into `output/<spec name>` (replacing only an earlier run there)."""
    started = time.time()
    if not shards:
        raise UsageError(Problem("give the shard folders to merge", hint="harness merge RUN... --output DIR"))
    runs = [_open(Path(s)) for s in shards]
    first = runs[0]
    _agree(runs)
    order = _cell_order(first)
    chosen = _choose(runs, order)
    ids = [cid for cid in order if cid in chosen]
    complete = ids == order
    executed = [r for r in runs if r.read.has(layout.EXECUTION)]
    if executed and len(executed) != len(runs):
        raise MismatchError(Problem(f"field execution: {executed[0].path} was executed and "
                                    f"{next(r for r in runs if r not in executed).path} was not",
                                    hint="merge shards run alike: all with --execute, or none"))
    name = first.manifest.spec.get("name")
    if not isinstance(name, str) or not SPEC_NAME.fullmatch(name):     # the schema's rule: never a path
        raise MismatchError(Problem(f"field spec.name: {first.path} names its spec {_short(name)}, which is no "
                                    "spec name (letters, digits, '.', '_' and '-'): its manifest was forged",
                                    hint="run `harness verify` on that shard; run the shard again"))
    final = Path(output) / name
    if any(final.resolve() == r.path.resolve() for r in runs):
        raise UsageError(Problem(f"{final} is one of the shards", hint="give --output another folder"))
    with StagedFolder(final, guard=_replaceable) as stage:
        folder = stage.path
        known: dict[str, str] = {}
        for rel in (layout.SPEC_COPY, layout.INPUTS):
            known[rel] = _copy(first, rel, folder)
        for cid in ids:
            for rel in layout.cell_files(chosen[cid].manifest.files, cid):
                known[rel] = _copy(chosen[cid], rel, folder)
        body = dataclasses.replace(
            first.manifest, cells=[chosen[cid].manifest.cell(cid) for cid in ids], files={}, sizes=None, digest=None,
            extra={k: v for k, v in first.manifest.extra.items() if k != "filter"})
        if not complete:      # still a slice: verify re-derives exactly these cells
            body.extra["filter"] = {"cell": ids}
        per_run = {id(r): _results(r) for r in runs}     # each shard's summary.json, hashed and read once
        results = _plan_lines(runs, per_run, chosen, ids)
        if executed:
            for sub in ("", layout.REPEAT_DIR + "/"):
                _merge_execution(chosen, ids, sub, folder)
            results += _execution_lines(folder, body, [r for run in runs for r in per_run[id(run)]])
            results += _checks(folder, body, complete, spec_dir, allow_paths)
            from harness.execute.results import nothing_executed
            empty = nothing_executed(results)
            if empty is not None:
                results.append(empty)
        from harness.report.finalize import finalize
        manifest = finalize(folder, body, results, known, started=started).to_json()
        RunWriter(folder).run_facts({
            "merged": [{"folder": str(r.path), "digest": r.manifest.digest,
                        "cells": [c for c in ids if chosen[c] is r]} for r in runs],
            "started": datetime.fromtimestamp(started, timezone.utc).isoformat(timespec="seconds"),
            "finished": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "seconds": round(time.time() - started, 3), "executed": bool(executed), "host": socket.gethostname()})
        stage.commit()
    return MergeOutcome(final, manifest, results, {cid: chosen[cid].path for cid in ids}, complete)


# ---- the shards ----------------------------------------------------------------------------

def _open(path: Path) -> Run:
    if not (path / layout.MANIFEST).is_file():
        raise UsageError(Problem(f"{path} is not a run folder (no manifest.json)",
                                 hint="give the output folders of `harness run --cell ...`, e.g. output/<spec name>"))
    try:
        run = open_run(path)
        recorded = json.loads(bytes(run.read.raw(layout.MANIFEST)))
    except (NotARun, FolderError, ValueError) as exc:
        raise MismatchError(Problem(f"{path}: {exc}", hint="run `harness verify` on it")) from None
    if manifest_mod.digest(recorded) != run.manifest.digest:
        raise MismatchError(Problem(f"{path}/{layout.MANIFEST} does not match its own digest: it was edited",
                                    hint="run `harness verify` on that shard; run the shard again"))
    return run


def _facts(run: Run) -> dict[str, Any]:
    """What every shard must say alike, by field name (as the message names it)."""
    m = run.manifest
    return {"evidence_format": m.format, "harness.version": (m.harness or {}).get("version"),
            "schema.sha256": (m.schema or {}).get("sha256"), "catalog.sha256": (m.catalog or {}).get("sha256"),
            "catalog.version": (m.catalog or {}).get("version"), "spec.sha256": m.spec.get("sha256"),
            "spec.name": m.spec.get("name"), "inputs.sha256": m.inputs.get("sha256"),
            "inputs.count": m.inputs.get("count"), "inputs.urls": m.inputs.get("urls"),
            "inputs.files": m.inputs.get("files"), f"files[{layout.SPEC_COPY}]": m.files.get(layout.SPEC_COPY),
            f"files[{layout.INPUTS}]": m.files.get(layout.INPUTS)}


def _agree(runs: list[Run]) -> None:
    for run in runs:      # finalize writes today's format: a shard's files must be laid out in it
        if run.manifest.format != EVIDENCE_FORMAT:
            raise MismatchError(Problem(
                f"field evidence_format: {run.path} was written in evidence format {run.manifest.format}, "
                f"this harness writes format {EVIDENCE_FORMAT}",
                hint="run the shards again with this harness, or merge with the version that wrote them"))
    base = _facts(runs[0])
    for run in runs[1:]:
        for name, value in _facts(run).items():
            if value != base[name]:
                raise MismatchError(Problem(
                    f"the shards disagree on {name}: {runs[0].path} has {_short(base[name])}, "
                    f"{run.path} has {_short(value)}",
                    hint="merge only shards of one spec, run on the same inputs by the same harness"))


def _short(value: Any) -> str:
    text = json.dumps(value, sort_keys=True)
    return text if len(text) <= 80 else text[:77] + "..."


def _cell_order(run: Run) -> list[str]:
    """Every cell of the spec, in the plan's order, from the spec copy (no input is read)."""
    from harness.catalog.load import load_catalog
    from harness.errors import HarnessError
    from harness.plan.cells import build_cells
    from harness.spec.load import read_spec

    try:
        spec = read_spec(run.path / layout.SPEC_COPY)
    except HarnessError as exc:
        raise MismatchError(Problem(f"{run.path / layout.SPEC_COPY} cannot be read: "
                                    f"{'; '.join(p.render() for p in exc.problems)}")) from None
    catalog = load_catalog()
    if catalog.sha256 != (run.manifest.catalog or {}).get("sha256"):
        planned = (run.manifest.catalog or {}).get("version")
        raise MismatchError(Problem(f"field catalog.sha256: the shards were planned with model catalog {planned}, "
                                    f"this harness has {catalog.version}",
                                    hint="merge with the harness version that ran the shards"))
    return [c.id for c in build_cells(spec, catalog, [])]


def _choose(runs: list[Run], order: list[str]) -> dict[str, Run]:
    """Cell id → the shard it is taken from; a cell two shards hold with other bytes is refused."""
    chosen: dict[str, Run] = {}
    for run in runs:
        for cid in run.manifest.cell_ids:
            if cid not in order:
                raise MismatchError(Problem(f"cell {cid} of {run.path} is not a cell of the spec"))
            if cid not in chosen:
                chosen[cid] = run
                continue
            other = chosen[cid]
            if _cell_evidence(other, cid) != _cell_evidence(run, cid):
                raise MismatchError(Problem(
                    f"cell {cid} is in {other.path} and in {run.path} with different bytes",
                    hint="give each cell to one shard only (`--cell`), or leave the older shard out"))
    return chosen


def _cell_evidence(run: Run, cid: str) -> tuple:
    files = run.manifest.files
    execution = run.execution
    record = execution.get(cid) if execution is not None else None
    return ({rel: files[rel] for rel in layout.cell_files(files, cid)}, run.manifest.cell(cid),
            canonical_json(record.to_json()) if record is not None else None)


def _copy(run: Run, rel: str, folder: Path) -> str:
    """`rel` of the shard into the merged folder (a regular file inside the shard, no link followed,
    of the size its manifest records, streamed: a cell's vectors are not held in memory twice),
    refused unless it has the sha256 the shard's manifest records."""
    try:
        data = scan.map_file(run.path, rel, recorded=(run.manifest.sizes or {}).get(rel))
    except FolderError as exc:
        raise MismatchError(Problem(f"{run.path}: {exc}", hint="run `harness verify` on that shard")) from None
    try:
        with atomic_writer(folder / rel) as out:
            with memoryview(data) as view:
                for start in range(0, len(data), 1 << 20):
                    out.write(view[start:start + (1 << 20)])
            got = out.sha256
            if got != run.manifest.files.get(rel):
                raise MismatchError(Problem(f"{run.path}/{rel} does not match the sha256 its manifest records",
                                            hint="run `harness verify` on that shard; run the shard again"))
    finally:
        if hasattr(data, "close"):
            data.close()
    return got


def _replaceable(final: Path) -> None:
    """Like a run: the merge replaces only an earlier run (a folder with a harness manifest) or an empty folder."""
    if not os.path.lexists(final):
        return
    if final.is_symlink() or not final.is_dir():
        raise UsageError(Problem(f"{final} is not a run folder; nothing was changed",
                                 hint="give --output another folder"))
    if any(final.iterdir()) and not (final / layout.MANIFEST).is_file():
        raise UsageError(Problem(f"{final} exists and is not an earlier run (no manifest.json); nothing was changed",
                                 hint="move it away, or give --output another folder"))


# ---- the derived lines ---------------------------------------------------------------------

def _plan_lines(runs: list[Run], per_run: dict[int, list[CheckResult]], chosen: dict[str, Run],
                ids: list[str]) -> list[CheckResult]:
    """The plan's lines of validate.txt for the merged cells: spec, catalog (their count), inputs,
    the plan's warnings (each once, a model's disputed facts in cell order), each cell's payload line;
    `per_run`: each shard's lines (`_results`), by id(shard)."""
    head = {r.name: r for r in per_run[id(runs[0])] if r.kind == "offline" and r.name in HEAD}
    lines: list[CheckResult] = []
    for name in HEAD:
        r = head.get(name)
        if r is None:
            continue
        if name == "catalog":
            r = dataclasses.replace(r, detail=re.sub(r"^\d+ cells?\b", counted(len(ids), "cell"), r.detail))
        lines.append(r)
    models = list(dict.fromkeys(chosen[cid].manifest.cell(cid).get("model") for cid in ids))
    warned: dict[str, CheckResult] = {}
    for run in sorted(runs, key=lambda r: min((ids.index(c) for c in r.manifest.cell_ids if c in ids), default=0)):
        for r in per_run[id(run)]:
            if r.kind == "offline" and r.name not in HEAD and r.cell is None:
                warned.setdefault(r.line(), r)

    def model_rank(r: CheckResult) -> int:
        if r.name != "disputed-fact":
            return -1
        name = r.detail.split(" ", 1)[0]
        return models.index(name) if name in models else len(models)
    lines += sorted(warned.values(), key=model_rank)
    for cid in ids:
        lines += [r for r in per_run[id(chosen[cid])] if r.kind == "offline" and r.cell == cid]
    return lines


def _results(run: Run) -> list[CheckResult]:
    """The shard's lines, from its summary.json, which must be the bytes its manifest hashes."""
    try:
        if sha256_bytes(bytes(run.read.raw(layout.SUMMARY))) != run.manifest.files.get(layout.SUMMARY):
            raise FolderError(f"{layout.SUMMARY} does not match the sha256 the manifest records")
        return run.read.results()
    except FolderError as exc:
        raise MismatchError(Problem(f"{run.path}: {exc}", hint="run `harness verify` on that shard")) from None


def _merge_execution(chosen: dict[str, Run], ids: list[str], sub: str, folder: Path) -> None:
    """execution.json (or repeat/'s): each cell's record from the shard that ran it."""
    records, fatal = [], None
    for cid in ids:
        run = chosen[cid]
        if not run.read.has(sub + layout.EXECUTION):
            continue
        try:
            execution = Execution.from_json(json.loads(bytes(run.read.raw(sub + layout.EXECUTION))))
        except (FolderError, ValueError) as exc:
            raise MismatchError(Problem(f"{run.path}/{sub}{layout.EXECUTION}: {exc}")) from None
        record = execution.get(cid)
        if record is not None:
            records.append(record)
            fatal = fatal or execution.fatal
    if records:
        RunWriter(folder / sub if sub else folder).execution(Execution(cells=records, fatal=fatal))


def _execution_lines(folder: Path, body: Manifest, shard_lines: list[CheckResult]) -> list[CheckResult]:
    """The execution lines from the merged evidence: verify's derivation (`cell_lines`, the run's own);
    `shard_lines`: every shard's lines, whose execution lines verify compares with."""
    from harness.audit.verify import execution
    from harness.audit.verify.parse import open_folder
    from harness.audit.verify.result import VerifyReport

    atomic_write(folder / layout.MANIFEST, canonical_json(body.to_json(), pretty=True))   # replaced by finalize
    report = VerifyReport(folder=folder)
    context = open_folder(folder, report)
    if context is None:     # pragma: no cover - the manifest was just written
        raise MismatchError(Problem(f"the merged manifest cannot be read: {report.findings}"))
    recorded = [r for r in shard_lines if r.kind == "execution"]
    derived, repeat = execution.derive_lines(context, recorded, report, set())
    problems = [f for f in report.findings if f.mismatch]
    if problems:
        raise MismatchError(Problem(f"the shards' execution evidence does not hold together: {problems[0].message}",
                                    hint="run `harness verify` on each shard"))
    os.unlink(folder / layout.MANIFEST)
    return derived + repeat


def _checks(folder: Path, body: Manifest, complete: bool, spec_dir: str | Path | None,
            allow_paths: tuple | list) -> list[CheckResult]:
    """The spec's checks over the merged vectors, as `harness run` evaluates them (results/ and
    runs/ written again)."""
    from harness.checks.evaluate import evaluate_checks
    from harness.inputs.datasets import all_checks, check_places
    from harness.plan.cells import CellFilter
    from harness.spec.load import read_spec

    spec = read_spec(folder / layout.SPEC_COPY)
    checks = all_checks(spec.data)
    if not checks:
        return []
    places = check_places(spec.data)

    def locate(path: tuple) -> tuple[int, int]:
        index, *rest = path
        if index < len(places) and places[index][0] == "inputs":
            return spec.positions.of(places[index], prefer_key=True)
        return spec.positions.of(("checks", index, *rest))

    sliced = None if complete else CellFilter.from_dict(body.extra.get("filter")).describe()
    base = Path(spec_dir).resolve() if spec_dir else _spec_dir(folder, body, allow_paths)
    return list(evaluate_checks(checks, folder, body.cells, locate, spec_dir=base, sliced=sliced,
                                write=RunWriter(folder).check_output, allow_paths=allow_paths))


def _spec_dir(folder: Path, body: Manifest, allow_paths: tuple | list = ()) -> Path:
    """Where the spec's relative paths start (a check's qrels, a stability run): beside the original
    spec when its recorded path (relative to the final folder) still leads to the same spec, else
    the current folder; `--spec-dir` says otherwise. The recorded path is a shard's word: it is
    followed only inside the roots `verify` allows and read only as a bounded regular file."""
    from harness.audit.verify.parse import verify_roots
    from harness.inputs.files import InputFiles
    from harness.inputs.types import InputProblem
    from harness.spec import yamlpos

    rel = body.spec.get("path")
    if rel:
        final = folder.parent / body.spec["name"]
        try:
            original = InputFiles(final.resolve(), verify_roots(final, None, allow_paths)).resolve(
                rel, "the original spec", ())
            if sha256_bytes(scan.read_path(original, yamlpos.MAX_BYTES)) == body.spec.get("sha256"):
                return original.parent
        except (InputProblem, FolderError, OSError):
            pass
    return Path.cwd()
