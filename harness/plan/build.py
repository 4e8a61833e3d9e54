"""Spec × catalog → the plan: its cells and its inputs, every rule checked before anything is written.

`build_plan` runs each stage on what the schema accepted (cells: `cells`; where requests go:
`endpoints`; rules on inputs, cells and files: `rules`), so a mistake in one part of the spec
never hides the mistakes in another, and reports every problem at once, in file order. The
inputs are checked in one pass and kept in a `Spool` for writing (`batching`, `write`), or, for a
plan of texts, written in that same pass (`build_plan(writer=)`).
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

from harness.catalog.load import Catalog, load_catalog
from harness.errors import HarnessError, Problem, SpecError, UsageError
from harness.inputs.datasets import DATASETS
from harness.inputs.datasets.qrels import check_qrels_files
from harness.inputs.files import InputFiles
from harness.inputs.resolve import iter_inputs
from harness.inputs.types import Input, InputProblem, TextRun
from harness.plan.batching import Batch, Spool, batches
from harness.plan.cells import Cell, CellFilter, build_cells
from harness.plan.endpoints import check_export_host
from harness.plan.rules import (
    check_export_path,
    check_input_models,
    check_refs,
    check_upload_region,
    input_rule_problems,
    starved_models,
)
from harness.providers.credentials import allowed_hosts
from harness.spec.load import Spec, read_spec
from harness.words import counted, size

MAX_PAYLOAD_ENV = "HARNESS_MAX_PAYLOAD_BYTES"
DEFAULT_MAX_PAYLOAD = 4 << 30   # 4 GiB of request bodies per run unless the person running it says more


@dataclass
class Plan:
    spec: Spec
    catalog: Catalog
    cells: list[Cell]
    input_count: int
    modality_counts: dict[str, int]
    warnings: list[Problem]
    max_contents: int | None
    spool: Spool | None = field(default=None, repr=False)
    input_files: list[dict] = field(default_factory=list)   # every file the inputs read (manifest inputs.files)
    written: Any = field(default=None, repr=False)   # the files written while scanning (`build_plan(writer=)`)

    def inputs(self) -> Iterator[Input]:
        """Stream the resolved inputs back from the spool (memory stays flat in their number)."""
        if self.spool is None:
            raise RuntimeError("the plan's inputs were released (written already)")
        return iter(self.spool)

    def batches(self, cell: Cell) -> Iterator[Batch]:
        return batches(cell, (i for i in self.inputs() if cell.takes(i)), self.max_contents)

    def release(self) -> None:
        """Let the inputs go (once written); the cells, counts, warnings and files stay."""
        self.close()

    def close(self) -> None:
        if self.spool is not None:
            self.spool.remove()
            self.spool = None
        if self.written is not None:
            self.written.discard()

    def __enter__(self) -> "Plan":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def wire_bytes(inp: Input) -> int:
    """About how many bytes an input adds to a request body (a local image travels as base64)."""
    total = 0
    for p in inp.parts:
        if p.image is not None:
            total += 4 * -(-p.image.size // 3) + len(p.image.mime) + 13
        else:
            v = p.value
            total += len(v) if v.isascii() else len(v.encode("utf-8", "surrogatepass"))
    return total


def max_payload_bytes(value: int | None = None, env=os.environ) -> int:
    """The run's budget for request bodies: `--max-payload-bytes`, else $HARNESS_MAX_PAYLOAD_BYTES,
    else 4 GiB. Never from the spec: a spec from a pull request must not raise its own bound."""
    if value is not None:
        return value
    raw = env.get(MAX_PAYLOAD_ENV)
    if raw:
        try:
            if int(raw) > 0:
                return int(raw)
        except ValueError:
            pass
        raise UsageError(Problem(f"${MAX_PAYLOAD_ENV}={raw[:40]!r} is not a positive number of bytes"))
    return DEFAULT_MAX_PAYLOAD


def _payload_problem(spec: Spec, planned: int, budget: int, cells: list[Cell]) -> Problem:
    return spec.problem(("inputs",), f"the requests would carry about {size(planned)} "
                        f"({counted(len(cells), 'cell')}), over the budget of {size(budget)}: an input repeated "
                        "many times (or a huge text) multiplies what is written and sent",
                        f"if this is meant, raise it with --max-payload-bytes or ${MAX_PAYLOAD_ENV}",
                        prefer_key=True)


TEXT_RUNS = True     # a texts-only plan checks and writes an input set's rows a chunk at a time (False: one by one)


class _Scan:
    """One pass over every input: ids and catalog rules per model, the bytes planned; each checked input
    goes to `sink` (the plan's spool, or its writer). A `TextRun` that breaks nothing is taken whole."""

    def __init__(self, spec: Spec, cells: list[Cell], sink, budget: int, declared: set[str]):
        self.spec, self.cells, self.sink, self.budget, self.declared = spec, cells, sink, budget, declared
        self.entries = spec.data.get("inputs") or []
        self.seen: dict[str, None] = {}   # the ids taken, in order (a duplicate's first row is found again)
        self.dups: list[tuple] = []
        self.counts: Counter = Counter()
        self.models = {c.model.name: c for c in cells}   # one representative cell per model: rules are per model
        # identical rule breaks of many rows of one input set are reported once, with a count
        self.grouped: dict[tuple, list] = {}
        self.n = self.planned = 0
        self.over = False
        self.every_modality = all(c.modalities is None for c in cells)   # then every cell takes every input
        # a text no model limits below its length breaks no rule (rules.input_rule_problems' own fast path)
        text_takers = [c.model for c in self.models.values() if c.modalities is None or "text" in c.modalities]
        self.text_ok = all("text" in m.modalities for m in text_takers)
        self.short = min((m.text_max_tokens or 1 << 62 for m in text_takers), default=1 << 62)
        self.text_cells = sum(1 for c in cells if c.modalities is None or "text" in c.modalities)

    def add(self, inp: Input) -> bool:
        """Check and keep one input; False once the bytes planned are over the budget (stop)."""
        explicit = inp.row is None and isinstance(self.entries[inp.where[1]].get("id"), str)
        if inp.id in self.seen or (not explicit and inp.id in self.declared):
            if not explicit:     # an explicit id's duplicate is reported from the spec itself
                self.dups.append((inp.where + (("id",) if inp.row is None else ()), inp.id, inp.row))
            return True
        self.seen[inp.id] = None
        # Bytes, not values, are what a hostile spec multiplies: stop before any is written.
        part = inp.parts[0]
        plain = len(inp.parts) == 1 and part.image is None
        if plain:       # wire_bytes, inline
            v = part.value
            wire = len(v) if v.isascii() else len(v.encode("utf-8", "surrogatepass"))
        else:
            wire = wire_bytes(inp)
        cells = self.cells
        takers = len(cells) if inp.models is None and self.every_modality else sum(1 for c in cells if c.takes(inp))
        self.planned += wire * takers
        if self.planned > self.budget:
            self.over = True
            return False
        for cell in () if (self.text_ok and plain and inp.modality == "text" and inp.models is None
                           and len(part.value) <= self.short) else self.models.values():
            if not cell.takes(inp):
                continue
            for rule in input_rule_problems(inp, cell.model, cell.upload):
                key = (inp.where, rule.message if inp.row is None else rule.group, rule.severity)
                label = inp.row or f"input {inp.id!r}"
                self.grouped.setdefault(key, [rule.message, rule.hint, rule.severity, label, 0])[4] += 1
        self.counts[inp.modality] += 1
        self.n += 1
        self.sink.add(inp, wire)
        return True

    def add_texts(self, run: TextRun) -> bool:
        """`add` for each text of the run, taken whole when its ids are new, its texts break no rule and
        fit the budget (else one by one, which says what is wrong)."""
        ids, seen = run.ids, self.seen
        if (run.labels is None or run.models is not None or not self.text_ok
                or max(map(len, run.values)) > self.short
                or len(set(ids)) != len(ids) or not seen.keys().isdisjoint(ids)
                or (self.declared and not self.declared.isdisjoint(ids))):
            return all(map(self.add, run))
        wire = sum(map(len, run.utf8()))
        if self.planned + wire * self.text_cells > self.budget:
            return all(map(self.add, run))
        self.planned += wire * self.text_cells
        seen.update(dict.fromkeys(ids))
        self.counts["text"] += len(ids)
        self.n += len(ids)
        self.sink.add_texts(run)
        return True

    def problems(self, files: InputFiles, input_problems: list[InputProblem]) -> list[Problem]:
        """What the scan found, as the spec's problems."""
        spec, out = self.spec, []
        if self.over:
            out.append(_payload_problem(spec, self.planned, self.budget, self.cells))
        firsts = _first_rows({i for _, i, _ in self.dups}, self.entries, files, self.declared) if self.dups else {}
        for where, input_id, label in self.dups:
            first = firsts.get(input_id)
            if label is None and first is None and input_id not in self.declared:
                # two inline inputs without `id:`: both ids are made from the content, so it is the same
                out.append(spec.problem(where, f"duplicate input id {input_id!r}: this input has the same content "
                                        "as an earlier inline input, and a default id is made from it",
                                        "drop the repeat, or give it its own `id:`", prefer_key=True))
                continue
            out.append(spec.problem(where, f"duplicate input id {input_id!r} ({label or f'input {input_id!r}'}; "
                                    f"first used by {first or f'input {input_id!r}'})",
                                    "give each input its own `id:`", prefer_key=True))
        for (where, _, _), (message, hint, severity, first, count) in self.grouped.items():
            text = f"{first}: {message}" if count == 1 else f"{count} inputs ({first} and more): {message}"
            out.append(spec.problem(where, text, hint, severity=severity, prefer_key=True))
        for p in input_problems:
            out.append(spec.problem(p.where, p.message, p.hint, prefer_key=p.prefer_key))
        if self.n == 0 and not input_problems and spec.data.get("inputs"):
            out.append(spec.problem(("inputs",), "the inputs resolve to nothing", prefer_key=True))
        return out


def _scan_inputs(spec: Spec, cells: list[Cell], problems: list[Problem], sink,
                 files: InputFiles, budget: int = DEFAULT_MAX_PAYLOAD) -> tuple[int, Counter, set[str]]:
    """One pass over every input (`_Scan`): each input is spooled so the writing pass streams them back
    instead of resolving (and rendering) them again, or written right away (`sink` is then the plan's
    writer, which takes a `TextRun` whole)."""
    input_problems: list[InputProblem] = []
    # Ids written in the spec are checked from the spec itself, so a duplicate is reported even
    # when one of the two inputs fails for another reason (a missing image, say).
    entries = spec.data.get("inputs") or []
    declared: set[str] = set()
    for i, entry in enumerate(entries):
        if isinstance(entry, dict) and "from" not in entry and isinstance(entry.get("id"), str):
            if entry["id"] in declared:
                problems.append(spec.problem(("inputs", i, "id"), f"duplicate input id {entry['id']!r} "
                                             f"(first used by input {entry['id']!r})",
                                             "give each input its own `id:`", prefer_key=True))
            else:
                declared.add(entry["id"])
    scan = _Scan(spec, cells, sink, budget, declared)
    runs = getattr(sink, "texts", False)       # the plan's writer of a texts-only plan
    for item in iter_inputs(entries, files, input_problems, runs=runs):
        if not (scan.add_texts(item) if type(item) is TextRun else scan.add(item)):
            break
    problems.extend(scan.problems(files, input_problems))
    return scan.n, scan.counts, scan.seen.keys()


def _first_rows(wanted: set[str], entries: list, files: InputFiles, declared: set[str]) -> dict[str, str | None]:
    """id → the row of the input that first took it (None: an inline input, named by its id), for the
    messages of duplicates: the inputs read again, up to the last of them (the scan keeps no rows:
    a million labels are 70 MB)."""
    found: dict[str, str | None] = {}
    for inp in iter_inputs(entries, files, []):
        explicit = inp.row is None and isinstance(entries[inp.where[1]].get("id"), str)
        if inp.id in wanted and inp.id not in found and (explicit or inp.id not in declared):
            found[inp.id] = inp.row
            if len(found) == len(wanted):
                break
    return found


def reads_nothing_later(spec: Spec) -> bool:
    """Are the inputs texts only (inline `text:` and `from:` sets of texts)? Their files can be
    written while they are scanned: nothing is read again when they are written (an image is)."""
    entries = spec.data.get("inputs")
    if not isinstance(entries, list):
        return False
    for entry in entries:
        if not isinstance(entry, dict) or "text" not in entry or any(k in entry for k in DATASETS):
            return False
        if any(k in entry for k in ("image", "video", "multi_images", "fused")):
            return False
    return True


def _writer(spec: Spec, cells: list[Cell], problems: list[Problem], writer, cell_filter: CellFilter | None):
    """The plan's writer for the scan (`build_plan(writer=)`), when its inputs allow it and nothing
    is wrong so far, for the cells the filter keeps (the filter's own error comes later)."""
    if writer is None or not cells or any(p.is_error for p in problems) or not reads_nothing_later(spec):
        return None
    try:
        chosen = cell_filter.select(cells) if cell_filter else cells
    except HarnessError:
        return None
    return writer(chosen, (spec.data.get("batching") or {}).get("max_contents"))


def build_plan(spec: Spec, *, base_url: str | None = None, catalog: Catalog | None = None,
               allow_paths: tuple | list = (), allow_hosts: tuple[str, ...] | list[str] | None = (),
               endpoints: dict[str, str] | None = None, max_payload: int | None = None,
               cell_filter: CellFilter | None = None, writer: Callable | None = None) -> Plan:
    """Check every rule and expand the spec; raise HarnessError with all errors, in file order.

    Each stage runs on what the schema accepted, so a mistake in one part of the spec never
    hides the mistakes in another; each problem is reported once. Input files must lie in the
    spec's project or one of `allow_paths` (`--allow-path`). `allow_hosts` are the `--allow-host`
    values: with the official hosts, `base_url` and the environment's, the only hosts the spec may
    route a credential to. None skips that rule, for callers that never send (verify re-rendering
    a recorded run's payloads). `endpoints` (model name → endpoint, as a run's manifest recorded
    them) win over every other source of a DashScope endpoint, so `verify` re-plans a run sent to
    `--base-url` as it ran. `max_payload` bounds the bytes of all request bodies
    (`--max-payload-bytes`; see `max_payload_bytes`). `cell_filter` keeps a slice of the cells,
    after every rule is checked on the whole spec. `writer(cells, max_contents)` (`write.staged`,
    `write.deriving`) gives an object whose `add` takes each input as it is scanned: a plan of
    texts is then written in the same pass, and keeps no spool (`Plan.written`)."""
    budget = max_payload_bytes(max_payload)
    catalog = catalog or load_catalog()
    files = InputFiles.for_spec(spec.base_dir, allow_paths, upload=bool(spec.data.get("upload_local_files")))
    allowed = None if allow_hosts is None else allowed_hosts(catalog.regions.values(), extra=allow_hosts,
                                                             base_url=base_url)
    problems: list[Problem] = list(spec.problems)
    schema_ok = not spec.problems
    cells: list[Cell] = []
    n, counts = 0, Counter()
    spool = Spool()
    written = None
    try:
        try:
            with spool:
                before = sum(p.is_error for p in problems)
                cells = build_cells(spec, catalog, problems, base_url, allowed, endpoints)
                matrix_ok = sum(p.is_error for p in problems) == before
                check_export_host(spec, allowed, problems)
                check_upload_region(spec, cells, problems)
                check_export_path(spec, files, problems)
                written = _writer(spec, cells, problems, writer, cell_filter)
                n, counts, ids = _scan_inputs(spec, cells, problems, written or spool, files, budget)
            starved_models(spec, cells, problems)
            check_input_models(spec, cells, problems)
            check_refs(spec, ids, cells, problems, matrix_ok)
            problems.extend(check_qrels_files(spec, ids, files))   # qrels files named by retrieval checks
        except HarnessError:
            raise
        except Exception:
            # Stages run on the valid part of the spec only; should one still trip over a refused
            # part, the schema's errors say why (a clean spec's crash is a bug and surfaces).
            if schema_ok:
                raise
        problems = list(dict.fromkeys(sorted(problems, key=Problem.sort_key)))
        if any(p.is_error for p in problems):
            raise SpecError(problems)
        if cell_filter:
            cells = cell_filter.select(cells)
    except BaseException:
        spool.remove()
        if written is not None:
            written.discard()
        raise
    max_contents = (spec.data.get("batching") or {}).get("max_contents")
    if written is not None:
        spool.remove()
    return Plan(spec, catalog, cells, n, dict(counts), problems, max_contents,
                None if written is not None else spool, files.records(), written)


def load_plan(path: str | Path, *, base_url: str | None = None, allow_paths: tuple | list = (),
              allow_hosts: tuple[str, ...] | list[str] = (), max_payload: int | None = None,
              cell_filter: CellFilter | None = None, writer: Callable | None = None) -> Plan:
    return build_plan(read_spec(path), base_url=base_url, allow_paths=allow_paths, allow_hosts=allow_hosts,
                      max_payload=max_payload, cell_filter=cell_filter, writer=writer)
