"""The `run` pipeline: stage a folder, write the plan (`payloads_writer`), optionally execute, check
and export, `finalize` the evidence, commit. It orchestrates; each step is another module's job.

Everything is written into a staging folder beside `output/<name>/` and swapped in at the end,
so an invalid spec, an interrupted run or a crash leaves no new or half-written output.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import gc
import json
import os
import platform
import shutil
import socket
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterator

from harness import __version__
from harness.audit.signing import sign
from harness.checks.evaluate import evaluate_checks, selects
from harness.errors import ExitCode, HarnessError, Problem, SpecError, UsageError
from harness.evidence import StagedFolder
from harness.export.run import export_run
from harness.export.target import token_from_env
from harness.folder import MANIFEST_VERSION, Manifest, RunWriter, layout
from harness.folder import manifest as manifest_mod
from harness.folder.verdict import CheckResult, verdict
from harness.inputs.datasets import all_checks, check_places
from harness.inputs.media import MediaError
from harness.plan.build import Plan, build_plan
from harness.plan.cells import CellFilter
from harness.plan.write import CellStats, staged, write_plan
from harness.report.finalize import finalize
from harness.spec.load import Spec, read_spec, schema_info
from harness.words import counted

DEFAULT_OUTPUT = "output"
SHAPING_FACTS = ("dimensions", "default_dimension", "dimension_param", "fusion", "max_images", "max_contents",
                 "image_max_bytes", "regions")


def output_base(cli_value: str | None = None) -> Path:
    return Path(cli_value or os.environ.get("OUTPUT_DIR") or DEFAULT_OUTPUT)


def output_folder(base: Path, spec: Spec) -> Path:
    """output/<spec name>; the schema's name pattern already forbids '/', '..' and friends —
    this re-checks, because writing outside the output folder must be impossible."""
    if (base / spec.name).is_symlink():
        raise _refused(base / spec.name, "is a symbolic link")
    final = (base / spec.name).resolve()
    if final.parent != base.resolve():
        raise SpecError(spec.problem(("name",), f"name {spec.name!r} would write outside {base}",
                                        "use letters, digits, '.', '_' and '-'"))
    return final


def _refused(path: Path, what: str) -> HarnessError:
    return UsageError(Problem(f"{path} {what}, not an earlier run of the harness; nothing was changed",
                                hint="move it away, or choose another --output or spec name: a run replaces "
                                     "only an earlier run (a folder with its manifest.json) or an empty folder"))


def check_replaceable(final: Path) -> None:
    """What sits at output/<name> may be replaced only if it is an earlier run of the harness
    (recognised by its manifest.json) or an empty folder; anything else is the user's."""
    base = final.parent
    if base.exists() and not base.is_dir():
        raise UsageError(Problem(f"output folder {base} is a file", hint="give --output (or $OUTPUT_DIR) a folder; "
                                   "it is created if missing"))
    if not os.path.lexists(final):
        return
    if final.is_symlink():
        raise _refused(final, "is a symbolic link")
    if not final.is_dir():
        raise _refused(final, "is a file")
    if not any(final.iterdir()):
        return
    try:
        m = json.loads((final / layout.MANIFEST).read_bytes())
    except FileNotFoundError:
        raise _refused(final, "exists (a folder without manifest.json)") from None
    except (OSError, ValueError):
        raise _refused(final, "exists (its manifest.json is not readable JSON)") from None
    if not (isinstance(m, dict) and isinstance(m.get("manifest_version"), int)
            and isinstance(m.get("digest"), str) and isinstance(m.get("files"), dict)):
        raise _refused(final, "exists (its manifest.json is not a harness manifest)")


# errno of a failed write → exit code and what to do. The machine's limits are infrastructure (4);
# a place that cannot hold the run is the command line's (2). Anything else counts as the machine's.
WRITE_ERRORS = {
    errno.ENOSPC: (ExitCode.PROVIDER_ERROR, "free space on that disk, or give --output another disk"),
    errno.EDQUOT: (ExitCode.PROVIDER_ERROR, "the disk quota is used up; free space or give --output another disk"),
    errno.EFBIG: (ExitCode.PROVIDER_ERROR, "a file size limit (ulimit -f) stopped the write; raise it"),
    errno.EIO: (ExitCode.PROVIDER_ERROR, "the disk reported an I/O error"),
    errno.EACCES: (ExitCode.USAGE, "give --output a folder you can write to"),
    errno.EPERM: (ExitCode.USAGE, "give --output a folder you can write to"),
    errno.EROFS: (ExitCode.USAGE, "give --output a folder on a writable disk"),
    errno.ENOTDIR: (ExitCode.USAGE, "a part of the --output path is a file; give --output a folder"),
    errno.ENAMETOOLONG: (ExitCode.USAGE, "give --output a shorter path"),
}


@contextlib.contextmanager
def _write_errors(spec: Spec, final: Path) -> Iterator[None]:
    """A user's or the machine's mistake found while the run is written is an error with its exit
    code, never a crash; the staging folder is gone by then (StagedFolder removes it)."""
    try:
        yield
    except MediaError as e:   # an image edited or removed after planning: the plan no longer holds
        raise SpecError(Problem(e.message, file=spec.display, hint=e.hint)) from None
    except OSError as e:
        code, hint = WRITE_ERRORS.get(e.errno, (ExitCode.PROVIDER_ERROR, None))
        where = f" ({e.filename})" if e.filename else ""
        raise HarnessError(Problem(f"cannot write the run to {final}: {e.strerror or e}{where}; "
                                   "nothing was changed there", hint=hint), code) from None


def offline_results(plan: Plan) -> list[CheckResult]:
    info = schema_info()
    results = [
        CheckResult("spec", True, f"{plan.spec.display} is valid against {info['id']}",
                    data={"path": plan.spec.display}),      # JUnit's file=: the spec as given, not the copy
        CheckResult("catalog", True,
                    f"{counted(len(plan.cells), 'cell')} within the rules of model catalog {plan.catalog.version}"),
        CheckResult("inputs", True, f"{counted(plan.input_count, 'input')} with unique ids "
                    f"({', '.join(f'{k} {v}' for k, v in sorted(plan.modality_counts.items()))})"),
    ]
    for w in plan.warnings:
        results.append(CheckResult.warn("warning", w.render()))
    # Facts the sources dispute and that shape the payloads: a warning line per model, never a silent guess.
    for model in {c.model.name: c.model for c in plan.cells}.values():
        for d in model.disputes:
            if d.field in SHAPING_FACTS:
                results.append(CheckResult.warn("disputed-fact", f"{model.name} {d.field}: {d.note} "
                                                f"Chosen: {d.chosen}"))
    return results


def manifest_body(plan: Plan, folder: Path, stats: dict[str, CellStats], inputs: dict) -> Manifest:
    """What the run planned; `finalize` adds the file table and the digest."""
    spec = plan.spec
    spec_path = os.path.relpath(spec.path.resolve(), folder.resolve()) if spec.path else None
    return Manifest(
        manifest_version=MANIFEST_VERSION,
        harness={"version": __version__},
        schema=schema_info(),
        catalog={"version": plan.catalog.version, "sha256": plan.catalog.sha256},
        spec={"name": spec.name, "path": spec_path, "copy": layout.SPEC_COPY, "sha256": spec.sha256},
        environment=manifest_mod.environment(spec.path.resolve().parent if spec.path else None),
        inputs=inputs,
        cells=[{**c.manifest_entry(), **stats[c.id].as_dict(), "index": layout.payload_index(c.id)}
               for c in plan.cells],
    )


@dataclass
class RunOutcome:
    folder: Path
    manifest: dict[str, Any]
    results: list[CheckResult]
    failed: set[str]                  # failure categories: "provider", "checks", "nothing-executed" (empty on PASS)
    stats: dict[str, CellStats]
    signed_by: str | None = None      # the signing key's fingerprint (`run --sign`)
    attested: str | None = None       # `run --attest`: the attestation written, and by whom it is signed

    @property
    def passed(self) -> bool:
        return verdict(self.results)


def _execute(plan: Plan, folder: Path, cells: list[dict], execute_options: dict, console,
             known: dict[str, str], allow_hosts: tuple | list = ()) -> tuple[list[CheckResult], bool]:
    """Run the requests; returns the execution results and whether a provider error happened.
    Adds the sha256 of the evidence files it wrote to `known` (`finalize` need not read them back)."""
    from harness.execute import ExecuteOptions, execute_run  # here, not at the top: an offline run needs no HTTP

    options = ExecuteOptions.from_run(plan.spec.data.get("execution"), execute_options,
                                      local_files=local_files(plan), allow_hosts=allow_hosts)
    summary = execute_run(folder, cells, options, console)
    known.update(summary.written)
    results, failed = list(summary.checks), not summary.ok
    repeat = _repeated_cells(plan.spec, cells)
    if repeat:
        # `stability: {repeat: true}`: the same payloads once more, past the cache, into repeat/
        again = folder / layout.REPEAT_DIR
        for cell in repeat:
            shutil.copytree(folder / "payloads" / cell["id"], again / "payloads" / cell["id"], copy_function=os.link)
        second = execute_run(again, repeat, dataclasses.replace(options, use_cache=False), console)
        known.update({f"{layout.REPEAT_DIR}/{rel}": sha for rel, sha in second.written.items()})
        results += [dataclasses.replace(r, name=f"repeat:{r.name}") for r in second.checks]
        failed = failed or not second.ok
    return results, failed


def _pending(plan: Plan, folder: Path, cells: list[dict], execute_options: dict, allow_hosts: tuple | list = ()):
    from harness.execute.options import ExecuteOptions
    from harness.execute.pending import pending  # here, not at the top: an offline run needs no HTTP

    options = ExecuteOptions.from_run(plan.spec.data.get("execution"), execute_options, allow_hosts=allow_hosts)
    return pending(folder, cells, options)


def local_files(plan: Plan) -> dict[str, Path]:
    """sha256 → path of every local image and video the inputs read (what `upload_local_files` sends)."""
    return {r["sha256"]: plan.spec.base_dir / r["path"] for r in plan.input_files
            if r.get("role") in ("image", "video")}


def _repeated_cells(spec: Spec, cells: list[dict]) -> list[dict]:
    """The cells some `stability: {repeat: true}` check selects."""
    bodies = [c["stability"] for c in spec.data.get("checks") or [] if (c.get("stability") or {}).get("repeat")]
    return [cell for cell in cells if any(selects(b, cell) for b in bodies)]


def run(spec_path: str | Path, *, base: Path, execute: bool = False, execute_options: dict | None = None,
        base_url: str | None = None, allow_hosts: tuple[str, ...] | list[str] = (), console=None,
        require_executed: bool = False, allow_paths: tuple | list = (), max_payload: int | None = None,
        sign_key: str | None = None, cell_filter: CellFilter | None = None, attest: bool = False,
        attest_key: str | None = None,
        on_plan: Callable[[Manifest, list | None], None] | None = None) -> RunOutcome:
    """Validate, expand, write payloads and evidence (and execute when asked). Raises HarnessError
    for an invalid spec, before anything is written. `require_executed` makes every cell required
    (a cell that is not executed fails, as with the spec's `execution.required`). `cell_filter`
    (`--model`/`--dimension`/`--cell`) runs a slice; the manifest records it as `filter`.
    `on_plan(body, pending)` is called once the payloads are written and before anything is sent,
    with the manifest body (its `cells`, `spec`, `inputs`) and, when executing, each cell's
    `execute.pending.CellPending` (what is left to send after the cache); raising there leaves
    nothing written or sent."""
    started = time.time()
    spec = read_spec(spec_path)
    with build_plan(spec, base_url=base_url, allow_paths=allow_paths, allow_hosts=allow_hosts,
                    max_payload=max_payload, cell_filter=cell_filter, writer=staged) as plan:
        final = output_folder(base, spec)
        with _write_errors(spec, final), StagedFolder(final, guard=check_replaceable) as stage:
            folder = stage.path
            (folder / layout.SPEC_COPY).write_bytes(spec.raw)
            inputs, stats, payload_results, known = write_plan(plan, folder)
            results = offline_results(plan) + payload_results
            body = manifest_body(plan, final, stats, inputs)
            if cell_filter:
                body.extra["filter"] = cell_filter.as_dict()
            provider_failed = False
            empty = None
            cells = [{**c, "required": True} for c in body.cells] if require_executed else body.cells
            if on_plan is not None:      # before anything is sent: the plan, and what is left to send
                on_plan(body, _pending(plan, folder, cells, execute_options or {}, allow_hosts)
                        if execute else None)
            if execute:
                exec_results, provider_failed = _execute(plan, folder, cells, execute_options or {}, console, known,
                                                         allow_hosts)
                # the engine's per-request objects hold a cell's vectors in reference cycles: freed now, not
                # whenever a full collection comes, before the checks and reports read the vectors back
                # (200,000 texts: 341 MB peak instead of 529, bench/README.md "Writing while scanning");
                # a small run skips it (a full collection of a large process heap costs more than it frees)
                if (body.inputs or {}).get("count", 0) > 10_000:
                    gc.collect()
                results += exec_results
                results += _spec_checks(spec, folder, body.cells, cell_filter, allow_paths)
                results += _spec_export(spec, folder, body)
                from harness.execute.results import nothing_executed  # shared with verify
                empty = nothing_executed(exec_results)
                if empty is not None:
                    results.append(empty)
            manifest = finalize(folder, body, results, known, started=started).to_json()
            RunWriter(folder).run_facts(run_facts(started, execute))
            signed_by = _sign(folder, sign_key) if sign_key else None
            attested = _attest(folder, attest_key) if attest or attest_key else None
            stage.commit()
    failed = set()
    if provider_failed:
        failed.add("provider")
    if any(r.status == "fail" for r in results if r.kind != "execution"):
        failed.add("checks")
    if empty is not None:
        failed.add("nothing-executed")
    return RunOutcome(final, manifest, results, failed, stats, signed_by, attested)


def _attest(folder: Path, key: str | None) -> str:
    """`run --attest [--attest-key KEY]`: attestation.intoto.json in the staging folder, after the manifest."""
    from harness.audit.attest import attest

    path, signer = attest(folder, key)
    return f"{path.name}" + (f" (DSSE, signed by {signer})" if signer else " (unsigned statement)")


def _sign(folder: Path, key: str) -> str:
    """`run --sign`: inside the staging folder, so a key that cannot sign leaves no unsigned run behind."""
    return sign(folder, key)


def _spec_checks(spec: Spec, folder: Path, cells: list[dict], cell_filter: CellFilter | None = None,
                 allow_paths: tuple | list = ()) -> list[CheckResult]:
    checks = all_checks(spec.data)     # the spec's, then those its `beir:` inputs bring
    if not checks:
        return []
    places = check_places(spec.data)    # a check a `beir:` entry brings is located at that entry

    def locate(path: tuple) -> tuple[int, int]:
        index, *rest = path
        if index < len(places) and places[index][0] == "inputs":
            return spec.positions.of(places[index], prefer_key=True)
        return spec.positions.of(("checks", index, *rest))

    return list(evaluate_checks(checks, folder, cells, locate,
                                spec_dir=spec.base_dir, sliced=cell_filter.describe() if cell_filter else None,
                                write=RunWriter(folder).check_output, allow_paths=allow_paths))


def _spec_export(spec: Spec, folder: Path, manifest: Manifest) -> list[CheckResult]:
    """The spec's `export:` as the last step; a refused or failed export is a FAIL line, never a
    reason to throw away the executed run."""
    export = spec.data.get("export")
    if not export:
        return []
    to = export["to"]
    if "://" not in to and not os.path.isabs(to):
        to = str((spec.base_dir / os.path.expanduser(to)).resolve())   # as validate resolved it
    try:
        token = token_from_env(export["token_env"]) if export.get("token_env") else None
        return list(export_run(folder, to=to, collection=export.get("collection"), token=token,
                               top_k=export.get("top_k", 5), queries=export.get("queries"), manifest=manifest))
    except HarnessError as e:
        return [CheckResult("export", False, "; ".join(p.render() for p in e.problems), kind="export")]


def run_facts(started: float, executed: bool) -> dict[str, Any]:
    return {"started": datetime.fromtimestamp(started, timezone.utc).isoformat(timespec="seconds"),
            "finished": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "seconds": round(time.time() - started, 3), "executed": executed,
            "host": socket.gethostname(), "platform": platform.platform(), "python": platform.python_version()}
