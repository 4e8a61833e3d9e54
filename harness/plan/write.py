"""Writing a plan into an output folder: inputs.jsonl, and every cell's request bodies and index.

One pass over the inputs feeds every cell's `CellWriter` (the `Batcher` packs, `payloads.render`
gives the body); each cell's bodies go to one JSON Lines file, `payloads/<cell>/requests.jsonl`,
line N the canonical body of request N, and its index to `payloads/<cell>/index.jsonl` (evidence
format 3; `legacy` writes formats 1 and 2's one file per request, for `verify` to re-derive such a
folder). The counts and estimates come out as `CellStats`. `harness run` and `harness verify` (which
re-derives the payloads) use the very same `write_plan`: the run into a `FolderTarget`, verify into a
`DigestTarget`, which keeps only each file's sha256 (nothing written and read back; harness.plan.targets).
`harness plan` does the same counting without a target (`plan_stats`). A plan of texts is written while
the plan scans its inputs (`PlanWriter` fed by `build_plan(writer=staged)`, or `deriving` for verify),
a chunk of an input set at a time (`TextRun`), so its inputs are never spooled nor read twice and no
object is made per input.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.catalog import estimate
from harness.evidence import canonical_json, sha256_bytes

try:
    import orjson as _orjson
except ImportError:  # pragma: no cover - a dependency
    _orjson = None
from harness.folder import layout
from harness.folder.verdict import CheckResult
from harness.inputs.rows import CHUNK
from harness.inputs.types import TextRun, text_input, text_ref
from harness.plan.batching import Batch, Batcher, spool_memory
from harness.plan.build import Plan
from harness.plan.cells import Cell
from harness.plan.payloads import render, text_body
from harness.plan.targets import Deferred, DigestTarget, FolderTarget
from harness.providers.registry import provider_class
from harness.words import counted


@dataclass
class CellStats:
    requests: int = 0
    contents: int = 0
    inputs: int = 0
    modality_mix: Counter = field(default_factory=Counter)
    tokens: Counter = field(default_factory=Counter)
    cost: dict = field(default_factory=lambda: {"amount": 0.0, "currency": None})   # estimate.cost

    def as_dict(self) -> dict[str, Any]:
        return {"requests": self.requests, "contents": self.contents, "inputs": self.inputs,
                "modality_mix": dict(sorted(self.modality_mix.items())),
                "estimated_tokens": {**dict(sorted(self.tokens.items())), "total": sum(self.tokens.values())},
                "estimated_cost": dict(self.cost)}


def _tokens(cell: Cell, inputs, t: Counter) -> None:
    """Add the estimated tokens of a batch's `inputs` in this cell to `t`, by modality."""
    texts = []
    for inp in inputs:
        for p in inp.parts:
            if p.kind == "text":
                texts.append(p.value)
            elif p.kind == "image":
                t["image"] += estimate.image_tokens(cell.model, cell.parameters)
            else:
                t["video"] += estimate.video_tokens(cell.model, cell.parameters)
    if texts:
        t["text"] += estimate.texts_tokens(texts)


def body_problems(cell: Cell, body: dict) -> list[str]:
    """What the request body itself must show: the right model, and the dimension where its protocol reads it."""
    out = provider_class(cell.protocol).dimension_problems(body, cell.dimension_sent)
    if body.get("model") != cell.model.wire_model:
        out.append(f"model is {body.get('model')!r}, expected {cell.model.wire_model!r}")
    return out


def _record_line(obj: dict, presorted: bool = False) -> bytes:
    """A line of inputs.jsonl or index.jsonl: `canonical_json`'s bytes and a newline. These records
    hold only dicts, lists, str and small ints (ids, hashes, counts, paths, URLs), which orjson
    writes as json does (tests/test_canonical.py compares every line of the example specs), so
    `canonical_json`'s type walk is left out; anything orjson refuses takes json's path. `presorted`:
    every dict's keys are in sorted order already, so orjson need not sort them."""
    if _orjson is not None:
        try:
            return _orjson.dumps(obj, option=_orjson.OPT_APPEND_NEWLINE if presorted else
                                 _orjson.OPT_SORT_KEYS | _orjson.OPT_APPEND_NEWLINE)
        except TypeError:
            pass
    return canonical_json(obj) + b"\n"


# `index_line` of a batch of texts (ids and names need no JSON escaping: ID_RE, `request_name`)
_INDEX_LINE = '{"contents":%d,"file":"%s","inputs":["%s"],"sha256":"%s"}\n'


# A text as canonical_json writes it (orjson writes a str as json.dumps does: tests/test_canonical.py).
_json_string = _orjson.dumps if _orjson is not None else canonical_json


def index_line(batch, data: bytes, sha: str | None = None) -> bytes:
    """One line of payloads/<cell>/index.jsonl: which inputs a request carries, in order."""
    return _record_line({"file": batch.file, "sha256": sha or sha256_bytes(data),
                         "inputs": [i.id for i in batch.inputs], "contents": batch.contents})


class CellWriter:
    """Counts (and, given a target, writes) one cell's requests as its batches complete. `legacy`:
    one file per request (evidence formats 1 and 2), else one JSON Lines file of bodies. A plan of
    texts feeds it `TextRun`s (`add_texts`): their requests are cut every `size` texts, as the
    `Batcher` cuts a cell's texts, and each body is the provider's own cut around the texts
    (`payloads.text_body`), so no object is made per input or request."""

    def __init__(self, cell: Cell, max_contents: int | None, target: "FolderTarget | DigestTarget | None" = None,
                 legacy: bool = False, estimates: bool = True):
        self.cell = cell
        self.target = target
        self.estimates = estimates      # verify compares files only: no estimates, modality mix nor body checks
        self.batcher = Batcher(cell, max_contents)
        self.stats = CellStats()
        self.wrong: list[str] = []
        self.dir = self.index = self.bodies = None
        if target is not None:
            self.dir = layout.payload_dir(cell.id)
            target.mkdir(self.dir)
            self.index = target.open(layout.payload_index(cell.id))
            if not legacy:
                self.bodies = target.open(layout.payload_bodies(cell.id))
        self.texts = None   # the texts (ids, values) not yet in a request, once `add_texts` is used

    def add(self, inp) -> None:
        if self.cell.takes(inp):
            for batch in self.batcher.add(inp):
                self._take(batch)

    def add_texts(self, run: TextRun) -> None:
        cell = self.cell
        if not ((cell.modalities is None or "text" in cell.modalities)
                and (run.models is None or cell.model.name in run.models)):
            return
        if self.texts is None:
            self._start_texts()
        if self.estimates:
            self.stats.modality_mix["text"] += len(run.ids)
            self.stats.tokens["text"] += estimate.texts_tokens(run.values)
        ids, values = self.texts[0] + run.ids, self.texts[1] + run.values
        size = self.size
        whole = len(ids) - len(ids) % size
        for start in range(0, whole, size):
            self._texts_request(ids[start:start + size], values[start:start + size])
        self.texts = ids[whole:], values[whole:]

    def _start_texts(self) -> None:
        b = self.batcher
        if b.seq or b.cur:      # pragma: no cover - a plan feeds a cell one way only
            raise RuntimeError("a cell's inputs come one at a time or as runs of texts, not both")
        cap = b.capmap.get("text")     # the Batcher's cut for texts: its contents and text caps, 1 when fused
        self.size = 1 if b.all_alone else max(1, min(b.limit, b.limit if cap is None else cap))
        self.texts = [], []
        self.per_vector = estimate.vector_tokens(self.cell.model, self.cell.parameters)
        self.cut = text_body(self.cell) if self.dir is not None else None

    def _texts_request(self, ids: list[str], values: list[str]) -> None:
        s, k = self.stats, len(ids)
        s.requests += 1
        s.contents += k
        s.inputs += k
        seq = s.requests
        if self.estimates:
            s.tokens["text"] += self.per_vector * estimate.vectors(self.cell.model, self.cell.parameters, k)
        if self.dir is None:
            return
        name = layout.request_name(seq)
        if self.cut is None or seq == 1:    # the provider's body itself (checked as `_take` checks it)
            batch = Batch(seq, [text_input(i, v, ("inputs", 0), None) for i, v in zip(ids, values)], k, False)
            body = render(self.cell, batch)
            data = canonical_json(body)
            if not self.wrong and self.estimates:
                self.wrong.extend(f"{name}: {w}" for w in body_problems(self.cell, body))
        else:
            head, between, tail = self.cut
            data = head + between.join(map(_json_string, values)) + tail
        sha = hashlib.sha256(data).hexdigest()
        if self.bodies is not None:
            self.bodies.write(data + b"\n")
        else:
            self.target.write(layout.payload_file(self.cell.id, name), data, sha)
        self.index.write((_INDEX_LINE % (k, name, '","'.join(ids), sha)).encode())

    def close(self) -> CellStats:
        for batch in self.batcher.close():
            self._take(batch)
        if self.texts is not None and self.texts[0]:
            self._texts_request(*self.texts)
            self.texts = [], []
        for stream in (self.bodies, self.index):
            if stream is not None:
                stream.close()
        self.stats.cost = estimate.cost(self.cell.model, self.stats.tokens, self.cell.region)
        return self.stats

    def _take(self, batch) -> None:
        s = self.stats
        s.requests += 1
        s.contents += batch.contents
        s.inputs += len(batch.inputs)
        if self.estimates:
            s.modality_mix.update(inp.modality for inp in batch.inputs)
            _tokens(self.cell, batch.inputs, s.tokens)
            params = {**self.cell.parameters, "enable_fusion": True} if batch.fused else self.cell.parameters
            s.tokens["text"] += (estimate.vector_tokens(self.cell.model, params)
                                 * estimate.vectors(self.cell.model, params, batch.contents))
        if self.dir is None:
            return
        body = render(self.cell, batch)
        data = canonical_json(body)
        sha = sha256_bytes(data)
        if self.bodies is not None:
            self.bodies.write(data + b"\n")
        else:
            self.target.write(layout.payload_file(self.cell.id, batch.file), data, sha)
        self.index.write(index_line(batch, data, sha))
        if not self.wrong and self.estimates:
            self.wrong.extend(f"{batch.file}: {w}" for w in body_problems(self.cell, body))

    def result(self) -> CheckResult:
        cell, s = self.cell, self.stats
        if cell.dimension_sent is None:
            where = f"fixed dimension {cell.dimension}"
        else:
            where = f"{provider_class(cell.protocol).dimension_field}={cell.dimension_sent}"
        return CheckResult("payloads", not self.wrong,
                           self.wrong[0] if self.wrong else
                           f"{counted(s.requests, 'request')}, {counted(s.contents, 'content')}, "
                           f"model {cell.model.wire_model}, {where}",
                           cell=cell.id, data=s.as_dict())


def plan_stats(plan: Plan) -> dict[str, CellStats]:
    """Requests, contents, modality mix and estimates per cell, without writing anything (counted while
    the plan scanned its inputs when it was built with `writer=counting`)."""
    if plan.written is not None:
        return plan.written.finish(plan)[1]
    writers = [CellWriter(cell, plan.max_contents) for cell in plan.cells]
    for inp in plan.inputs():
        for w in writers:
            w.add(inp)
    return {w.cell.id: w.close() for w in writers}


def write_plan(plan: Plan, folder: Path) -> tuple[dict, dict[str, CellStats], list[CheckResult], dict[str, str]]:
    """One pass over the inputs writes inputs.jsonl and every cell's payload files into `folder`,
    then the plan lets its inputs go (`Plan.release`: its cells, counts and files stay).
    Returns the manifest's `inputs`, the stats and payload checks per cell, and the sha256 of
    every file written (so `finalize` need not read them back)."""
    if plan.written is not None:     # written while the plan scanned its inputs: moved into the folder
        inputs, stats, results = plan.written.finish(plan)
        hashes = plan.written.target.move_into(folder)
        plan.release()
        return inputs, stats, results, hashes
    target = FolderTarget(folder)
    inputs, stats, results = _write_plan(plan, target)
    plan.release()      # written: the inputs need not stay in memory (or on disk) while the run executes
    return inputs, stats, results, target.hashes


def derive_plan(plan: Plan, evidence_format: int) -> dict[str, str]:
    """The sha256 of every file `write_plan` would write for `plan`, keyed by relative path,
    computed in memory (for `harness verify`), in the payload layout of `evidence_format`."""
    if plan.written is not None:     # derived while the plan scanned its inputs (`deriving`)
        plan.written.finish(plan)
        return plan.written.target.hashes
    target = DigestTarget()
    _write_plan(plan, target, legacy=evidence_format < layout.BODIES_FROM_FORMAT, estimates=False)
    return target.hashes


class PlanWriter:
    """inputs.jsonl and every cell's payload files, fed one input at a time: over a plan's spooled
    inputs (`_write_plan`), or while the plan scans them (`staged`, `deriving`: no spool at all).
    `texts`: the plan is of texts only, fed a chunk at a time (`add_texts`); single inputs (inline
    texts, rows that went one by one) are held and go on as runs of their own, so each cell cuts its
    requests one way."""

    def __init__(self, cells: list[Cell], max_contents: int | None, target, legacy: bool = False,
                 estimates: bool = True, texts: bool = False):
        self.target = target
        self.writers = [CellWriter(cell, max_contents, target, legacy, estimates) for cell in cells]
        self.urls: dict[str, dict] = {}
        self.f = target.open(layout.INPUTS) if target is not None else None     # None: counting only
        self.lines: list[bytes] = []     # inputs.jsonl lines not yet handed to `f`
        self.done = None
        self.texts = texts
        self.held: TextRun | None = None     # single texts not yet written (`texts`)

    def _lines(self) -> None:
        self.f.write(b"".join(self.lines))
        self.lines.clear()

    def add(self, inp, wire: int = 0) -> None:
        parts = inp.parts
        if self.texts:
            self._hold(inp)
            return
        if len(parts) == 1 and parts[0].kind == "text":      # the common case: no URL to collect
            # Input.ref with the keys in sorted order already (from, id, modality, parts; text_ref's)
            part = text_ref(parts[0].value)
            ref = ({"from": inp.row, "id": inp.id, "modality": inp.modality, "parts": [part]} if inp.row else
                   {"id": inp.id, "modality": inp.modality, "parts": [part]})
            self.lines.append(_record_line(ref, presorted=True))
            if len(self.lines) >= 4096:
                self._lines()
        else:
            self._lines()
            ref = inp.ref()
            self.f.write(_record_line(ref))
            for part in ref["parts"]:
                if "url" in part and part["url"] != "data:…":
                    self.urls.setdefault(part["url"], {"url": part["url"], "kind": part["kind"]})
        for w in self.writers:
            w.add(inp)

    def add_texts(self, run: TextRun) -> None:
        self._release()         # the texts held came first
        if self.f is not None:
            self.f.write(run.records())     # its labels are valid Unicode: a `from:` path, a file name rows.py checked
        for w in self.writers:
            w.add_texts(run)

    def _hold(self, inp) -> None:
        held = self.held
        if held is not None and (held.models != inp.models or (held.labels is None) != (inp.row is None)
                                 or len(held) >= CHUNK):
            self._release()
            held = None
        if held is None:
            held = self.held = TextRun(inp.where, [], [], None if inp.row is None else [], inp.models)
        held.ids.append(inp.id)
        held.values.append(inp.parts[0].value)
        if held.labels is not None:
            held.labels.append(inp.row)

    def _release(self) -> None:
        if self.held is not None:
            run, self.held = self.held, None
            self.add_texts(run)

    def finish(self, plan: Plan):
        """Once every input is in: the manifest's `inputs`, the stats and the payload checks per cell."""
        if self.done is None:
            self._release()
            inputs_sha = None
            if self.f is not None:
                self._lines()
                inputs_sha = self.f.close()
            stats = {w.cell.id: w.close() for w in self.writers}
            inputs = {"count": plan.input_count, "sha256": inputs_sha,
                      "modality_counts": dict(sorted(plan.modality_counts.items())),
                      "files": plan.input_files,     # input sets and images, as the plan read them
                      "urls": sorted(self.urls.values(), key=lambda r: r["url"])}
            self.done = inputs, stats, [w.result() for w in self.writers]
        return self.done

    def discard(self) -> None:
        if isinstance(self.target, Deferred):
            self.target.discard()


def _runs() -> bool:
    from harness.plan import build  # read when called: tests turn it off
    return build.TEXT_RUNS


def staged(cells: list[Cell], max_contents: int | None) -> PlanWriter:
    """For `build_plan(writer=...)` in `harness run`: the files are written while the inputs are
    scanned, into temporary files (in memory while they fit the spool's budget, shared by the files),
    moved into the run's folder by `write_plan`."""
    return PlanWriter(cells, max_contents, Deferred(spool_memory() // (1 + 2 * len(cells))), texts=_runs())


def counting(cells: list[Cell], max_contents: int | None) -> PlanWriter | None:
    """For `build_plan(writer=...)` in `harness plan`: the stats of a plan of texts, counted while its
    inputs are scanned (`plan_stats`), nothing written; None (the spool, counted after) with text runs off."""
    return PlanWriter(cells, max_contents, None, texts=True) if _runs() else None


def deriving(evidence_format: int):
    """For `build_plan(writer=...)` in `harness verify`: the sha256 of each file, derived while the
    inputs are scanned, in the payload layout of `evidence_format` (`derive_plan` returns them)."""
    def make(cells: list[Cell], max_contents: int | None) -> PlanWriter:
        return PlanWriter(cells, max_contents, DigestTarget(), legacy=evidence_format < layout.BODIES_FROM_FORMAT,
                          estimates=False, texts=_runs())
    return make


def _write_plan(plan: Plan, target: FolderTarget | DigestTarget, legacy: bool = False, estimates: bool = True):
    writer = PlanWriter(plan.cells, plan.max_contents, target, legacy, estimates)
    try:
        for inp in plan.inputs():
            writer.add(inp)
        writer._lines()
    finally:
        writer.f.close()
    return writer.finish(plan)
