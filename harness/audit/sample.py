"""The requests `harness verify --reexecute` sends again, and what that is estimated to cost.

A count N per cell drawn at random from a seed (random unless `--seed` is given, and printed), so the
auditee cannot know which requests will be checked and the auditor can repeat the very sample; and,
on top of the N, always:

- every request carrying an input a check of the spec names for the cell: `a`/`b` and `pairs` of a
  `similarity`, `query`/`among`/`expect` and `pairs` of a `nearest`, the queries and relevant ids
  written in a `retrieval` check, so a vector that turns a check's verdict is always sent again;
- for a data-set check (`beir`, `imagetext`, a `qrels` file), `DATASET_QUERIES` of its queries drawn
  from the same seed, with every document judged for them.

Each request is counted once, by the first reason it was chosen for; the estimate (which `--max-cost`
bounds) covers them all, and the output says how many of each kind there are.
"""

from __future__ import annotations

import json
import random
import secrets
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from harness.catalog import estimate
from harness.errors import HarnessError, Problem, UsageError
from harness.folder import CellEntry, FolderError, RunReader, layout
from harness.words import counted

if TYPE_CHECKING:
    from harness.audit.verify.parse import VerifyContext

DEFAULT_SAMPLE = 5        # requests per cell of a network provider (DashScope, OpenAI-compatible), drawn at random
DATASET_QUERIES = 5       # queries per data-set check and cell, drawn from the seed, with their judged documents
KINDS = ("checks", "data sets", "random")   # why a request was chosen


@dataclass
class CellSample:
    cell: CellEntry                   # the cell as re-planned from the spec
    entries: list[dict[str, Any]]     # the chosen lines of payloads/<cell>/index.jsonl
    total: int                        # requests the cell has
    tokens: dict[str, int]
    cost: dict[str, Any]              # estimate.cost: amount and the currency of the cell's region
    kinds: dict[str, int] = field(default_factory=dict)   # requests chosen by why (KINDS)
    bodies: list[bytes] = field(default_factory=list)     # the chosen requests' bodies, as the folder holds them

    @property
    def id(self) -> str:
        return self.cell.id

    @property
    def inputs(self) -> list[str]:
        return [str(i) for e in self.entries for i in e.get("inputs") or []]


@dataclass
class Sample:
    seed: int
    cells: list[CellSample]
    skipped: dict[str, str] = field(default_factory=dict)     # cell id → why it is not re-executed
    unusable: dict[str, str] = field(default_factory=dict)    # cell id → why it cannot be (a finding)
    notes: list[str] = field(default_factory=list)            # what the checks' inputs could not add

    def count(self, kind: str) -> int:
        return sum(c.kinds.get(kind, 0) for c in self.cells)

    @property
    def requests(self) -> int:
        return sum(len(c.entries) for c in self.cells)

    @property
    def cost(self) -> dict[str, float]:
        """The estimate per currency (never one sum across currencies)."""
        return estimate.by_currency(c.cost for c in self.cells)

    def describe(self) -> str:
        """The `harness plan`-style estimate printed before anything is sent."""
        lines = [f"re-execution: {_n(self.requests, 'request')} in {_n(len(self.cells), 'cell')} (seed {self.seed}; "
                 f"--seed {self.seed} repeats this sample), estimated cost "
                 f"{estimate.money_totals(c.cost for c in self.cells)}: {_kinds(self.count)}"]
        for c in self.cells:
            tokens = sum(c.tokens.values())
            lines.append(f"  {c.id}: {len(c.entries)} of {counted(c.total, 'request')} ({_kinds(c.kinds.get)}), "
                         f"{counted(len(c.inputs), 'input')}, ~{counted(tokens, 'token', ',')}, "
                         f"{estimate.money(c.cost)}")
        for cid, why in self.skipped.items():
            lines.append(f"  {cid}: not re-executed ({why})")
        lines.extend(f"  note: {note}" for note in self.notes)
        return "\n".join(lines)

    def as_dict(self) -> dict[str, Any]:
        return {"seed": self.seed, "requests": self.requests, "kinds": {k: self.count(k) for k in KINDS},
                "estimated_cost": [{"amount": v, "currency": k} for k, v in self.cost.items()],
                "notes": self.notes,
                "cells": [{"id": c.id, "requests": len(c.entries), "of": c.total,
                           "kinds": {k: c.kinds.get(k, 0) for k in KINDS},
                           "files": [e["file"] for e in c.entries], "estimated_tokens": c.tokens,
                           "estimated_cost": c.cost} for c in self.cells],
                "skipped": self.skipped}


def choose(context: VerifyContext, planned: dict[str, CellEntry], per_cell: int | str | None,
           seed: int | None, untrusted: set[str] = frozenset(), cell_filter: Any = None) -> Sample:
    """Pick the requests to send again. `per_cell`: None for the default, "all", or a count.
    `untrusted`: cells whose payload files verify found changed (sending them would prove nothing).
    `cell_filter` (`--model/--dimension/--cell`): only the run's cells it admits are re-executed.
    Always chosen, on top of the N: every request carrying an input a check of the spec names, and
    for a data-set check a seeded sample of its queries with their judged documents."""
    read, catalog = context.run.read, context.catalog
    seed = secrets.randbelow(2 ** 32) if seed is None else seed
    sample = Sample(seed=seed, cells=[])
    recorded = context.record.files
    cells = context.cells
    if cell_filter:
        cells = [c for c in cells if cell_filter.admits(c.to_json())]
        if not cells:
            raise UsageError(Problem(f"no cell of the run matches {cell_filter.describe()}; nothing was sent",
                                       hint=f"the run's cells: {', '.join(context.record.cell_ids)}"))
    wanted = check_inputs(context, cells, seed, sample.notes)
    for cid in (c.id for c in cells):
        if not read.has(layout.vectors_file(cid)):
            sample.skipped[cid] = "the run has no vectors for it: it was not executed"
            continue
        if cid in untrusted:
            sample.unusable[cid] = "its payload files do not verify (see above); re-executing them would prove nothing"
            continue
        cell = planned.get(cid)
        if cell is None:
            sample.unusable[cid] = "the spec copy no longer plans this cell"
            continue
        try:
            entries = _index(read, cid, recorded, context.record.format)
        except ValueError as exc:
            sample.unusable[cid] = str(exc)
            continue
        if per_cell == "all":
            n = len(entries)
        elif per_cell is None:
            n = len(entries) if cell.provider == "local" else DEFAULT_SAMPLE
        else:
            n = int(per_cell)
        # the requests carrying what the checks name, then N drawn at random from the others
        named, sampled = wanted.get(cid) or (set(), set())
        carry = {kind: {k for k, e in enumerate(entries) if set(map(str, e.get("inputs") or [])) & ids}
                 for kind, ids in (("checks", named), ("data sets", sampled))}
        carry["data sets"] -= carry["checks"]
        rest = [k for k in range(len(entries)) if k not in carry["checks"] | carry["data sets"]]
        rng = random.Random(f"{seed}:{cid}")    # per cell: adding a cell does not move another's sample
        carry["random"] = set(rng.sample(rest, min(n, len(rest))))
        picked = sorted(set().union(*carry.values()))
        kinds = {kind: len(rows) for kind, rows in carry.items()}
        info = catalog.get(cell.model) if cell.model else None
        tokens = {"text": 0, "image": 0, "video": 0}
        chosen, bodies = [], []
        try:
            # through the folder's reader: inside the folder (no `..`, no link), bounded, in its layout
            for e, data in read.payload_bodies(cid, context.record.format, {k + 1 for k in picked}):
                body = json.loads(data)
                for k, v in estimate.body_tokens(body if isinstance(body, dict) else {}, info).items():
                    tokens[k] += v
                chosen.append(e)
                bodies.append(bytes(data))
        except (OSError, ValueError, RecursionError, FolderError) as exc:
            sample.unusable[cid] = f"cannot read a payload file of it ({exc})"
            continue
        cost = estimate.cost(info, tokens, cell.region)
        sample.cells.append(CellSample(cell, chosen, len(entries), tokens, cost, kinds, bodies))
    return sample


def _index(read: RunReader, cid: str, recorded: dict[str, str], evidence_format: int) -> list[dict[str, Any]]:
    """The payload index of a cell; the bodies it stands for must be files the manifest records (from
    evidence format 3 the cell's requests.jsonl; before, every file it names, a plain name inside
    payloads/<cell>/), so a doctored index sends nothing from elsewhere."""
    rel = layout.payload_index(cid)
    try:
        entries = read.payload_index(cid)
    except FolderError as exc:
        raise ValueError(str(exc)) from None
    one_file = evidence_format >= layout.BODIES_FROM_FORMAT
    if one_file and layout.payload_bodies(cid) not in recorded:
        raise ValueError(f"{layout.payload_bodies(cid)} is not a payload file of the manifest")
    for n, e in enumerate(entries, 1):
        name = e["file"]
        if not one_file and ("/" in name or "\\" in name or name in (".", "..")
                             or layout.payload_file(cid, name) not in recorded):
            raise ValueError(f"{rel} entry {n} names {name!r}, which is not a payload file of the manifest")
        if not isinstance(e.get("inputs"), list):
            raise ValueError(f"{rel} entry {n} has no inputs list")
    if not entries:
        raise ValueError(f"{rel} lists no requests")
    return entries


def check_inputs(context: VerifyContext, cells: list[CellEntry], seed: int,
                 notes: list[str]) -> dict[str, tuple[set[str], set[str]]]:
    """Per cell: (the input ids the spec's checks that select it name, the input ids of a seeded
    sample of each data-set check's queries with their judged documents). A data-set check whose
    judgements cannot be read here adds a note and nothing else."""
    from harness.checks.evaluate import check_names, selects
    from harness.inputs import datasets
    from harness.inputs.files import InputFiles
    from harness.spec.checkrefs import check_kind

    spec = context.spec
    if isinstance(spec, HarnessError):
        return {}
    checks = [c for c in datasets.all_checks(spec.document) if isinstance(c, dict)]
    try:
        names = check_names(checks)
    except ValueError:
        return {}
    base = context.base if context.base is not None else context.folder.resolve()
    files = InputFiles(base, context.roots) if context.roots else InputFiles.for_spec(base)
    judged: dict[int, Any] = {}
    out: dict[str, tuple[set[str], set[str]]] = {}
    for cell in cells:
        named: set[str] = set()
        sampled: set[str] = set()
        for index, (check, name) in enumerate(zip(checks, names)):
            kind = check_kind(check)
            body = check[kind] if isinstance(check[kind], dict) else {}
            if not selects(body, cell.to_json()):
                continue
            if kind in ("nearest", "similarity"):
                named |= _written_ids(body)
            elif kind == "retrieval" and not any(body.get(k) for k in ("qrels", *datasets.DATASETS)):
                named |= {str(q) for q in body.get("queries") or {}}
                named |= {str(r) for rel in (body.get("queries") or {}).values() for r in rel or []}
            elif kind == "retrieval":
                if index not in judged:
                    try:
                        judged[index] = datasets.judgements(body, files).qrels
                    except (datasets.JudgementsError, HarnessError) as exc:
                        judged[index] = None
                        notes.append(f"{name}: its queries were not sampled, its judgements cannot be read "
                                     f"here ({exc}); pass --spec-dir DIR, the folder the spec's paths start from")
                qrels = judged[index] or {}
                rng = random.Random(f"{seed}:{cell.id}:{name}")
                for q in rng.sample(sorted(qrels), min(DATASET_QUERIES, len(qrels))):
                    sampled |= {q, *qrels[q]}
        out[cell.id] = (named, sampled)
    return out


def _written_ids(body: dict) -> set[str]:
    """The input ids a `nearest` or `similarity` check writes: query, among, expect, a, b, pairs."""
    ids = {str(body[k]) for k in ("query", "expect", "a", "b") if isinstance(body.get(k), str)}
    ids |= {str(i) for i in body.get("among") or [] if isinstance(i, str)}
    pairs = body.get("pairs")
    if isinstance(pairs, dict):
        ids |= {str(i) for pair in pairs.items() for i in pair if isinstance(i, str)}
    elif isinstance(pairs, list):
        ids |= {str(i) for pair in pairs if isinstance(pair, list) for i in pair if isinstance(i, str)}
    return ids


def _kinds(count) -> str:
    """`2 carrying the inputs the checks name, 5 drawn at random`: the requests by why they were chosen."""
    words = {"checks": "carrying the inputs the checks name", "data sets": "carrying sampled data-set queries "
             "and their judged documents", "random": "drawn at random"}
    return ", ".join(f"{count(k)} {words[k]}" for k in KINDS if count(k)) or "none"


def _n(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"
