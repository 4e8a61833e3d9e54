"""An export from start to end: read the run, load each cell, smoke-search it, record it in the folder.

`export_run` writes ``export.json`` into the output folder and returns `CheckResult`s; it leaves
``validate.txt``, the reports and ``manifest.json`` to `harness.report.finalize`, called by the
runner or, for the standalone command, by `export_folder`, which first refuses a folder that does
not verify (finalising re-hashes the folder, which would bless edits made to it).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any, Callable

from harness.errors import MismatchError, Problem, UsageError
from harness.evidence import StagedFolder, atomic_write, canonical_json
from harness.export import milvus, smoke
from harness.export.milvus import RunIdentity
from harness.export.target import resolve_target
from harness.export.vectors import ExportCell, damaged_folder, load_cell, read_run, select_cells
from harness.folder import FolderError, Manifest, RunReader, layout, open_run, scan
from harness.folder.verdict import CheckResult
from harness.report.finalize import finalize
from harness.words import counted

EXPORT_FILE = layout.EXPORT
EXPORT_VERSION = 1
DEFAULT_TOP_K = 5
MAX_TOP_K = 16384                 # Milvus' own limit on `limit`


def _loaded_result(cv: ExportCell, name: str, me: RunIdentity, *, replaced: int, total: int,
                   present: int) -> CheckResult:
    """The `export` check of one cell: every vector is in its collection, found by primary key."""
    n = len(cv.ids)
    others = f"; the collection holds {total} in all" if total != n else ""
    if replaced:
        others += f"; replaced {replaced} rows of an earlier run of spec {me.spec}"
    return CheckResult(
        name="export", cell=cv.cell, kind="export", passed=present == n,
        detail=(f"{counted(n, 'vector')} in collection {name} (model {cv.model}, dimension {cv.dimension})"
                + (others if present == n else f"; only {present} of {n} found by primary key")),
        data={"collection": name, "vectors": n, "present": present, "collection_count": total},
    )


def _export(
    folder: Path,
    *,
    to: str,
    collection: str | None = None,
    token: str | None = None,
    top_k: int = DEFAULT_TOP_K,
    queries: list[str] | None = None,
    cells: list[str] | None = None,
    manifest: Manifest | None = None,
) -> tuple[list[CheckResult], dict]:
    """Upsert every executed cell's vectors into its own collection, count, smoke-search.
    Returns the results and the record for `export.json` (written by the caller).

    Does not touch `validate.txt` or `manifest.json` (the
    caller folds the returned results in). Raises `HarnessError` before anything is written
    anywhere for a folder that was not executed, a bad target, or a collection that holds
    another model or dimension (exit 2); for Milvus failing midway (exit 4) already loaded
    cells stay, and exporting again upserts the same rows. `manifest` lets the runner export
    before manifest.json exists.
    """
    folder = Path(folder)
    if not isinstance(top_k, int) or not 1 <= top_k <= MAX_TOP_K:
        raise UsageError(Problem(f"top_k must be between 1 and {MAX_TOP_K}, not {top_k!r}"))
    run = read_run(folder, manifest)
    chosen, skipped = select_cells(run, cells)
    target = resolve_target(to, folder)

    loaded = [load_cell(run, cid) for cid in chosen]
    empty = [cv.cell for cv in loaded if not cv.ids]
    loaded = [cv for cv in loaded if cv.ids]
    if not loaded:
        raise UsageError(Problem(f"{run.path} has no vectors: every request of the run failed",
                                   hint="see execution.json, then run the spec again"))
    picked = smoke.pick_queries(run, loaded, queries)
    names = milvus.collection_names([cv.cell for cv in loaded], collection)

    with milvus.connected(target, token) as client:
        me = milvus.run_identity(run)
        existing, runs = milvus.open_collections(client, names, loaded, target, token)
        report: list[dict[str, Any]] = []
        results: list[CheckResult] = []
        for cv in loaded:
            name = names[cv.cell]
            with milvus.milvus_errors(f"loading {cv.cell} into {name}", target, token):
                replaced, total, present = milvus.write(client, name, cv, run, me, exists=existing[cv.cell],
                                                        runs=runs.get(cv.cell, {}))
                present_ids = set(cv.ids)
                searched = smoke.search(client, name, cv, [q for q in picked if q in present_ids], top_k,
                                        lite=target.kind == "milvus-lite", me=me)
            report.append({
                "cell": cv.cell, "collection": name, "created": not existing[cv.cell],
                "model": cv.model, "dimension": cv.dimension, "vectors": len(cv.ids), "present": present,
                "collection_count": total, "vectors_sha256": cv.sha256, "searches": searched,
                "spec_name": me.spec, "run_digest": me.digest, "replaced_earlier_run": replaced,
                "queries_without_vector": [q for q in picked if q not in present_ids],
            })
            results.append(_loaded_result(cv, name, me, replaced=replaced, total=total, present=present))
            results.append(smoke.search_result(cv.cell, searched, picked, top_k))

    for cid in skipped:
        results.append(CheckResult.skip("export", f"not executed ({run.not_executed[cid]})", cid, "export"))
    for cid in empty:
        results.append(CheckResult.skip("export", "no vectors came back for this cell", cid, "export"))
    return results, {
        "export_version": EXPORT_VERSION,
        "target": {"uri": target.shown, "kind": target.kind},
        "top_k": top_k,
        "queries": picked,
        "collections": report,
        "skipped": {**{cid: run.not_executed[cid] for cid in skipped},
                    **{cid: "no vectors came back" for cid in empty}},
    }


def export_run(folder: Path, **options: Any) -> list[CheckResult]:
    """Export `folder`'s executed cells (see `_export` for the options) and write `export.json`
    into it; validate.txt and manifest.json are the caller's (the runner's `finalize`)."""
    results, record = _export(folder, **options)
    atomic_write(Path(folder) / EXPORT_FILE, canonical_json(record, pretty=True))
    return results


# --- the standalone `harness export`: verify, export, finalize ------------------------------


def check_verifies(folder: Path) -> bytes:
    """Refuse a folder that does not verify: finalising it would hash its edits into evidence.
    Returns the bytes of the manifest verified."""
    from harness.audit.verify.checker import verify

    context, report = verify(folder)
    if not report.ok:
        problems = [Problem(f"{folder} does not verify, so it is not exported: {f.path}: {f.message}",
                            hint="run `harness verify` on it, then run the spec again")
                    for f in report.sorted_findings() if f.mismatch or report.strict]
        raise MismatchError(problems)
    return context.raw


def finish_export(folder: Path, results: list[CheckResult]) -> list[CheckResult]:
    """Fold export results into the folder's evidence: earlier export results are replaced, then
    `finalize` writes validate.txt, every report and the manifest from the whole list. Returns it."""
    folder = Path(folder)
    try:
        run = open_run(folder)
        earlier = run.read.results()
    except FolderError as exc:
        raise damaged_folder(exc, folder) from None
    every = [r for r in earlier if r.kind != "export"] + list(results)
    finalize(folder, run.manifest, every)
    return every


def export_folder(folder: Path, warn: Callable[[str], None] | None = None,
                  **options: Any) -> tuple[list[CheckResult], list[CheckResult]]:
    """`harness export`: verify the folder, export it (`export_run` options), finalize it.
    Returns (the export's results, every result of the folder now).

    The folder is not rewritten in place: its files are linked into a staging folder beside it
    (`evidence.StagedFolder`, as `run` builds a run), export.json, validate.txt, the reports and the
    manifest are written there, and the whole is swapped in. A kill -9 or Ctrl-C at any point before
    the swap leaves the folder as it was (the staging folder is swept by the next run or export)."""
    folder = Path(folder)
    read_run(folder)  # a missing or foreign folder is a usage error, before the verification
    verified = check_verifies(folder)
    results, record = _export(folder, **options)
    with StagedFolder(folder, guard=lambda final: _unchanged(final, verified)) as stage:
        _link_tree(folder, stage.path, warn)
        atomic_write(stage.path / EXPORT_FILE, canonical_json(record, pretty=True))
        every = finish_export(stage.path, results)
        stage.commit()
    return results, every


def _unchanged(folder: Path, manifest: bytes) -> None:
    """Refuse to swap the export in over a folder whose manifest changed since it was verified."""
    try:
        now = bytes(RunReader(folder).raw(layout.MANIFEST))
    except FolderError as exc:
        raise damaged_folder(exc, folder) from None
    if now != manifest:
        raise MismatchError(Problem(f"{folder} changed while it was exported (its manifest.json is not the one "
                                    "verified); it is left as it is", hint="export it again"))


# Made over the manifest's digest or file table, which the export rewrites: left out, with a warning.
STALE_AFTER_EXPORT = {layout.SIGNATURE: "sign it again: `harness sign DIR --key KEY`",
                      layout.ATTESTATION: "attest it again: `harness attest DIR [--key KEY]`"}


def _link_tree(source: Path, target: Path, warn: Callable[[str], None] | None = None) -> None:
    """Every file of the verified folder `source` into `target`, hard-linked where the disk allows
    (every later write replaces a file by renaming, so `source`'s files are never changed); a signature
    or an attestation is left out (`STALE_AFTER_EXPORT`), `warn` told why."""
    found = scan.scan(source)
    for entry in found.odd:      # verified, so none; a folder changed since is not exported
        raise MismatchError(Problem(f"{source / entry.path}: {entry.describe()}", hint="run `harness verify` on it"))
    for rel in found.files:
        if rel in STALE_AFTER_EXPORT:
            if warn is not None:
                warn(f"{rel} was made over the manifest the export rewrites, so it is dropped; "
                     f"{STALE_AFTER_EXPORT[rel]}")
            continue
        src, dst = source / rel, target / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(src, dst, follow_symlinks=False)
        except OSError:
            shutil.copy2(src, dst, follow_symlinks=False)
