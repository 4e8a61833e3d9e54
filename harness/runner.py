"""The `run` pipeline: stage a folder, write payloads and evidence, optionally execute, commit.

Everything is written into a staging folder beside `output/<name>/` and swapped in at the end,
so an invalid spec, an interrupted run or a crash leaves no new or half-written output.
"""

from __future__ import annotations

import dataclasses
import os
import platform
import shutil
import socket
import time
from collections import Counter, deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from harness import __version__, estimate
from harness import manifest as manifest_mod
from harness.errors import HarnessError
from harness.evidence import StagedFolder, canonical_json, sha256_bytes, sha256_file
from harness.folder import MANIFEST_VERSION, Manifest, RunWriter, finalize, layout
from harness.payloads import render
from harness.plan import Batcher, Cell, Plan, build_plan
from harness.spec import Spec, read_spec, schema_info
from harness.verdict import CheckResult, verdict

DEFAULT_OUTPUT = "output"
SHAPING_FACTS = ("dimensions", "default_dimension", "dimension_param", "fusion", "max_images", "max_contents",
                 "image_max_bytes", "regions")


def output_base(cli_value: str | None = None) -> Path:
    return Path(cli_value or os.environ.get("OUTPUT_DIR") or DEFAULT_OUTPUT)


def output_folder(base: Path, spec: Spec) -> Path:
    """output/<spec name>; the schema's name pattern already forbids '/', '..' and friends —
    this re-checks, because writing outside the output folder must be impossible."""
    final = (base / spec.name).resolve()
    if final.parent != base.resolve():
        raise HarnessError(spec.problem(("name",), f"name {spec.name!r} would write outside {base}",
                                        "use letters, digits, '.', '_' and '-'"))
    return final


@dataclass
class CellStats:
    requests: int = 0
    contents: int = 0
    inputs: int = 0
    modality_mix: Counter = field(default_factory=Counter)
    tokens: Counter = field(default_factory=Counter)
    cost: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {"requests": self.requests, "contents": self.contents, "inputs": self.inputs,
                "modality_mix": dict(sorted(self.modality_mix.items())),
                "estimated_tokens": {**dict(sorted(self.tokens.items())), "total": sum(self.tokens.values())},
                "estimated_cost": {"amount": round(self.cost, 6), "currency": "CNY"}}


def _tokens(cell: Cell, inputs, t: Counter) -> None:
    """Add the estimated tokens of `inputs` in this cell to `t`, by modality."""
    for inp in inputs:
        if inp.modality == "text":
            t["text"] += inp.text_tokens
            continue
        for p in inp.parts:
            if p.kind == "text":
                t["text"] += estimate.text_tokens(p.value)
            elif p.kind == "image":
                t["image"] += estimate.image_tokens(cell.model, cell.parameters)
            else:
                t["video"] += estimate.video_tokens(cell.model, cell.parameters)


def body_problems(cell: Cell, body: dict) -> list[str]:
    """What the request body itself must show: the right model, and the dimension inside `parameters`."""
    out = []
    if cell.protocol == "dashscope":
        if "dimension" in body:
            out.append("`dimension` at the top level of the body (the API reads it only inside `parameters`)")
        if body.get("parameters", {}).get("dimension") != cell.dimension_sent:
            out.append(f"parameters.dimension is {body.get('parameters', {}).get('dimension')}, expected {cell.dimension_sent}")
    elif body.get("dimensions") != cell.dimension_sent:
        out.append(f"dimensions is {body.get('dimensions')}, expected {cell.dimension_sent}")
    if body.get("model") != cell.model.wire_model:
        out.append(f"model is {body.get('model')!r}, expected {cell.model.wire_model!r}")
    return out


def index_line(batch, data: bytes, sha: str | None = None) -> bytes:
    """One line of payloads/<cell>/index.jsonl: which inputs a request file carries, in order."""
    return canonical_json({"file": batch.file, "sha256": sha or sha256_bytes(data),
                           "inputs": [i.id for i in batch.inputs], "contents": batch.contents}) + b"\n"


class FileSink:
    """Writes payload files on a thread of its own while the main thread renders the next bodies.

    Creating a file costs more in the kernel than rendering its body costs in Python, and the
    GIL is released meanwhile. Files inside the staging folder need no per-file rename: the
    folder swap is the commit. At most `window` writes are pending, so memory stays flat."""

    def __init__(self, threads: int = 1, window: int = 512):
        self.pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="payload-writer")
        self.pending: deque = deque()
        self.window = window

    @staticmethod
    def _write(path: Path, data: bytes) -> None:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            os.write(fd, data)
        finally:
            os.close(fd)

    def write(self, path: Path, data: bytes) -> None:
        self.pending.append(self.pool.submit(self._write, path, data))
        while len(self.pending) > self.window:
            self.pending.popleft().result()

    def close(self) -> None:
        try:
            while self.pending:
                self.pending.popleft().result()
        finally:
            self.pool.shutdown(wait=True, cancel_futures=True)


class CellWriter:
    """Counts (and, given a folder, writes) one cell's requests as its batches complete."""

    def __init__(self, cell: Cell, max_contents: int | None, folder: Path | None = None,
                 sink: "FileSink | None" = None):
        self.cell = cell
        self.sink = sink
        self.batcher = Batcher(cell, max_contents)
        self.stats = CellStats()
        self.wrong: list[str] = []
        self.dir = self.index = None
        self.hashes: dict[str, str] = {}      # payload path → sha256 of the bytes written
        if folder is not None:
            self.dir = folder / "payloads" / cell.id
            self.dir.mkdir(parents=True)
            self.index = open(self.dir / "index.jsonl", "wb")

    def add(self, inp) -> None:
        if self.cell.takes(inp):
            for batch in self.batcher.add(inp):
                self._take(batch)

    def close(self) -> CellStats:
        for batch in self.batcher.close():
            self._take(batch)
        if self.index is not None:
            self.index.close()
        self.stats.cost = estimate.cost(self.cell.model, self.stats.tokens)
        return self.stats

    def _take(self, batch) -> None:
        s = self.stats
        s.requests += 1
        s.contents += batch.contents
        s.inputs += len(batch.inputs)
        for inp in batch.inputs:
            s.modality_mix[inp.modality] += 1
        _tokens(self.cell, batch.inputs, s.tokens)
        if self.dir is None:
            return
        body = render(self.cell, batch)
        data = canonical_json(body)
        self.sink.write(self.dir / batch.file, data)
        sha = sha256_bytes(data)
        self.index.write(index_line(batch, data, sha))
        self.hashes[f"payloads/{self.cell.id}/{batch.file}"] = sha
        if not self.wrong:
            self.wrong.extend(f"{batch.file}: {w}" for w in body_problems(self.cell, body))

    def result(self) -> CheckResult:
        cell, s = self.cell, self.stats
        if cell.dimension_sent is None:
            where = f"fixed dimension {cell.dimension}"
        elif cell.protocol == "dashscope":
            where = f"parameters.dimension={cell.dimension_sent}"
        else:
            where = f"dimensions={cell.dimension_sent}"
        return CheckResult("payloads", not self.wrong,
                           self.wrong[0] if self.wrong else
                           f"{s.requests} requests, {s.contents} contents, model {cell.model.wire_model}, {where}",
                           cell=cell.id, data=s.as_dict())


def plan_stats(plan: Plan) -> dict[str, CellStats]:
    """Requests, contents, modality mix and estimates per cell, without writing anything."""
    writers = [CellWriter(cell, plan.max_contents) for cell in plan.cells]
    for inp in plan.inputs():
        for w in writers:
            w.add(inp)
    return {w.cell.id: w.close() for w in writers}


def write_plan(plan: Plan, folder: Path) -> tuple[dict, dict[str, CellStats], list[CheckResult], dict[str, str]]:
    """One pass over the inputs writes inputs.jsonl and every cell's payload files."""
    sink = FileSink()
    try:
        return _write_plan(plan, folder, sink)
    finally:
        sink.close()


def _write_plan(plan: Plan, folder: Path, sink: FileSink):
    writers = [CellWriter(cell, plan.max_contents, folder, sink) for cell in plan.cells]
    files: dict[str, dict] = {}
    urls: dict[str, dict] = {}
    with open(folder / "inputs.jsonl", "wb") as f:
        for inp in plan.inputs():
            ref = inp.ref()
            f.write(canonical_json(ref) + b"\n")
            for part in ref["parts"]:
                if "path" in part:
                    files.setdefault(part["path"], {k: part[k] for k in ("path", "sha256", "size", "mime")})
                elif "url" in part and part["url"] != "data:…":
                    urls.setdefault(part["url"], {"url": part["url"], "kind": part["kind"]})
            for w in writers:
                w.add(inp)
    stats = {w.cell.id: w.close() for w in writers}
    inputs = {"count": plan.input_count, "sha256": sha256_file(folder / "inputs.jsonl"),
              "modality_counts": dict(sorted(plan.modality_counts.items())),
              "files": sorted(files.values(), key=lambda r: r["path"]),
              "urls": sorted(urls.values(), key=lambda r: r["url"])}
    known = {k: v for w in writers for k, v in w.hashes.items()}
    return inputs, stats, [w.result() for w in writers], known


def offline_results(plan: Plan) -> list[CheckResult]:
    info = schema_info()
    results = [
        CheckResult("spec", True, f"{plan.spec.display} is valid against {info['id']}"),
        CheckResult("catalog", True, f"{len(plan.cells)} cells within the rules of model catalog {plan.catalog.version}"),
        CheckResult("inputs", True, f"{plan.input_count} inputs with unique ids "
                    f"({', '.join(f'{k} {v}' for k, v in sorted(plan.modality_counts.items()))})"),
    ]
    for w in plan.warnings:
        results.append(CheckResult("warning", True, w.render()))
    # Facts the sources dispute and that shape the payloads: a warning line per model, never a silent guess.
    for model in {c.model.name: c.model for c in plan.cells}.values():
        for d in model.disputes:
            if d.field in SHAPING_FACTS:
                results.append(CheckResult("disputed-fact", True, f"warning: {model.name} {d.field}: {d.note} "
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
    failed: set[str]                  # failure categories: "provider", "checks" (empty on PASS)
    stats: dict[str, CellStats]

    @property
    def passed(self) -> bool:
        return verdict(self.results)


def _execute(plan: Plan, folder: Path, cells: list[dict], execute_options: dict, console) -> tuple[list[CheckResult], bool]:
    """Run the requests; returns the execution results and whether a provider error happened."""
    from harness.execute import ExecuteOptions, execute_run

    spec_exec = plan.spec.data.get("execution") or {}
    known = {f.name for f in dataclasses.fields(ExecuteOptions)}
    values = {k: v for k, v in {**spec_exec, **{k: v for k, v in execute_options.items() if v is not None}}.items()
              if k in known}
    summary = execute_run(folder, cells, ExecuteOptions(**values), console)
    results, failed = list(summary.checks), not summary.ok
    repeat = _repeated_cells(plan.spec, cells)
    if repeat:
        # `stability: {repeat: true}`: the same payloads once more, past the cache, into repeat/
        again = folder / layout.REPEAT_DIR
        for cell in repeat:
            shutil.copytree(folder / "payloads" / cell["id"], again / "payloads" / cell["id"], copy_function=os.link)
        second = execute_run(again, repeat, ExecuteOptions(**{**values, "use_cache": False}), console)
        results += [dataclasses.replace(r, name=f"repeat:{r.name}") for r in second.checks]
        failed = failed or not second.ok
    return results, failed


def _repeated_cells(spec: Spec, cells: list[dict]) -> list[dict]:
    """The cells some `stability: {repeat: true}` check selects."""
    from harness.checks import selects
    bodies = [c["stability"] for c in spec.data.get("checks") or [] if (c.get("stability") or {}).get("repeat")]
    return [cell for cell in cells if any(selects(b, cell) for b in bodies)]


def run(spec_path: str | Path, *, base: Path, execute: bool = False, execute_options: dict | None = None,
        base_url: str | None = None, console=None) -> RunOutcome:
    """Validate, expand, write payloads and evidence (and execute when asked). Raises HarnessError
    for an invalid spec, before anything is written."""
    started = time.time()
    spec = read_spec(spec_path)
    with build_plan(spec, base_url=base_url) as plan:
        final = output_folder(base, spec)
        with StagedFolder(final) as stage:
            folder = stage.path
            (folder / layout.SPEC_COPY).write_bytes(spec.raw)
            inputs, stats, payload_results, known = write_plan(plan, folder)
            results = offline_results(plan) + payload_results
            body = manifest_body(plan, final, stats, inputs)
            provider_failed = False
            if execute:
                exec_results, provider_failed = _execute(plan, folder, body.cells, execute_options or {}, console)
                results += exec_results
                results += _spec_checks(spec, folder, body.cells)
                results += _spec_export(spec, folder, body)
            manifest = finalize(folder, body, results, known).to_json()
            RunWriter(folder).run_facts(run_facts(started, execute))
            stage.commit()
    failed = set()
    if provider_failed:
        failed.add("provider")
    if any(not r.passed for r in results if r.kind != "execution"):
        failed.add("checks")
    return RunOutcome(final, manifest, results, failed, stats)


def _spec_checks(spec: Spec, folder: Path, cells: list[dict]) -> list[CheckResult]:
    checks = spec.data.get("checks")
    if not checks:
        return []
    from harness.checks import evaluate_checks
    return list(evaluate_checks(checks, folder, cells, lambda p: spec.positions.of(("checks",) + tuple(p)),
                                spec_dir=spec.base_dir))


def _spec_export(spec: Spec, folder: Path, manifest: Manifest) -> list[CheckResult]:
    """The spec's `export:` as the last step; a refused or failed export is a FAIL line, never a
    reason to throw away the executed run."""
    export = spec.data.get("export")
    if not export:
        return []
    from harness.export import export_run, token_from_env
    to = export["to"]
    if "://" not in to and not os.path.isabs(to):
        to = str((spec.base_dir / to).resolve())
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
