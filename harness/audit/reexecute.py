"""`harness verify --reexecute`: send a sample of a run's requests again and compare the vectors.

Hashes prove a folder did not change by accident; they cannot prove its vectors came from the model,
because whoever edits a vector can rehash the manifest too. Re-execution can: the folder's own
payload files (already re-derived from the spec and inputs by `verify`) go to the model once more,
past the response cache (never read, never written), and every vector that comes back is compared
with the stored one of the same input id.

- Sample: every request of a local model (free, and bit-for-bit reproducible); for a network provider (paid, or slow)
  `DEFAULT_SAMPLE` requests per cell, or N with `--reexecute N` (`all` for every one). The sample
  is drawn from a seed that is random unless `--seed` is given, and printed, so the auditee cannot
  know which requests will be checked, and the auditor can repeat the very sample.
- Tolerance: an input agrees when the stored float32 bytes are identical to the new ones, or, for a
  cosine-distance tolerance X, when their cosine is ≥ 1 − X. Defaults per provider in `TOLERANCE`:
  the embedded model must match bit for bit; a network service runs on GPUs whose batching and
  kernels move the last digits, so it gets cosine ≥ 0.999 (a vector of another input, as in swapped
  ids or a copied row, lands far below unless the two inputs are near duplicates). A one-ulp edit
  hides inside any cosine tolerance: use `--tolerance exact` against a deterministic service.
- Cost: estimated from the sampled bodies and this machine's catalog before anything is sent;
  `--max-cost` refuses to start above it.
- Credentials: the cells are re-planned from the spec copy exactly as `harness run` plans them (the
  same `--base-url` and rules for where a key may go), never taken from the manifest's endpoints.

The execution itself is the run's engine (`execute_run`) over a scratch folder holding only the
sampled payload files, so retries, quotas, answer checks and key handling are the run's.
"""

from __future__ import annotations

import json
import random
import secrets
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from harness.catalog import estimate
from harness.errors import HarnessError, Problem, SpecError, UsageError
from harness.evidence import canonical_json
from harness.folder import CellEntry, FolderError, RunReader, layout

if TYPE_CHECKING:
    from harness.audit.verify.parse import VerifyContext

DEFAULT_SAMPLE = 5                      # requests per cell of a network provider (DashScope, OpenAI-compatible)
TOLERANCE: dict[str, float | None] = {   # provider → cosine distance allowed; None: bit for bit
    "local": None,
    "dashscope": 0.001,
    "openai": 0.001,
}
FALLBACK_TOLERANCE = 0.001


# --------------------------------------------------------------------------- tolerance

@dataclass(frozen=True)
class Tolerance:
    distance: float | None      # cosine distance allowed; None: identical float32 bytes only

    @classmethod
    def parse(cls, text: str) -> "Tolerance":
        """`exact`, or a cosine distance in 0..2 as for `harness diff --tolerance`. ValueError else."""
        if text.strip().lower() == "exact":
            return cls(None)
        try:
            value = float(text)
        except ValueError:
            raise ValueError(f"{text!r} is neither `exact` nor a number") from None
        if not 0 <= value <= 2:
            raise ValueError(f"{value} is outside 0..2 (a cosine distance: 0.001 means cosine ≥ 0.999)")
        return cls(value)

    @classmethod
    def default(cls, provider: str | None) -> "Tolerance":
        return cls(TOLERANCE.get(provider or "", FALLBACK_TOLERANCE))

    def admits(self, identical: bool, cosine: float) -> bool:
        return identical or (self.distance is not None and cosine >= 1.0 - self.distance)

    def describe(self) -> str:
        return "bit for bit" if self.distance is None else f"cosine ≥ {1.0 - self.distance:g}"


# --------------------------------------------------------------------------- the sample

@dataclass
class CellSample:
    cell: CellEntry                   # the cell as re-planned from the spec
    entries: list[dict[str, Any]]     # the chosen lines of payloads/<cell>/index.jsonl
    total: int                        # requests the cell has
    tokens: dict[str, int]
    cost: dict[str, Any]              # estimate.cost: amount and the currency of the cell's region

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
                 f"{estimate.money_totals(c.cost for c in self.cells)}"]
        for c in self.cells:
            tokens = sum(c.tokens.values())
            lines.append(f"  {c.id}: {len(c.entries)} of {c.total} requests, {len(c.inputs)} inputs, "
                         f"~{tokens:,} tokens, {estimate.money(c.cost)}")
        for cid, why in self.skipped.items():
            lines.append(f"  {cid}: not re-executed ({why})")
        return "\n".join(lines)

    def as_dict(self) -> dict[str, Any]:
        return {"seed": self.seed, "requests": self.requests,
                "estimated_cost": [{"amount": v, "currency": k} for k, v in self.cost.items()],
                "cells": [{"id": c.id, "requests": len(c.entries), "of": c.total,
                           "files": [e["file"] for e in c.entries], "estimated_tokens": c.tokens,
                           "estimated_cost": c.cost} for c in self.cells],
                "skipped": self.skipped}


def plan_cells(context: VerifyContext, base_url: str | None,
               allow_hosts: tuple | list = ()) -> dict[str, CellEntry]:
    """The cells as `harness run` plans them from the spec copy: the same endpoints for the same
    `--base-url`, and a credential only to the hosts `harness run` would send it to (the official
    ones, `--base-url`, $DASHSCOPE_HTTP_BASE_URL, `--allow-host`, $HARNESS_ALLOW_HOSTS)."""
    from harness.plan.cells import build_cells
    from harness.providers.credentials import allowed_hosts

    spec = context.spec     # as verify parsed it (cells need no input file)
    if isinstance(spec, HarnessError):
        raise spec
    problems = list(spec.problems)
    catalog = context.catalog
    allowed = allowed_hosts(catalog.regions.values(), extra=allow_hosts, base_url=base_url)
    cells = build_cells(spec, catalog, problems, base_url=base_url, allowed=allowed)
    errors = [p for p in problems if p.is_error]
    if errors:
        raise SpecError(errors)
    return {c.id: CellEntry.from_json({**c.manifest_entry(), "required": True}) for c in cells}


def choose(context: VerifyContext, planned: dict[str, CellEntry], per_cell: int | str | None,
           seed: int | None, untrusted: set[str] = frozenset(), cell_filter: Any = None) -> Sample:
    """Pick the requests to send again. `per_cell`: None for the default, "all", or a count.
    `untrusted`: cells whose payload files verify found changed (sending them would prove nothing).
    `cell_filter` (`--model/--dimension/--cell`): only the run's cells it admits are re-executed."""
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
            entries = _index(read, cid, recorded)
        except ValueError as exc:
            sample.unusable[cid] = str(exc)
            continue
        if per_cell == "all":
            n = len(entries)
        elif per_cell is None:
            n = len(entries) if cell.provider == "local" else DEFAULT_SAMPLE
        else:
            n = int(per_cell)
        rng = random.Random(f"{seed}:{cid}")    # per cell: adding a cell does not move another's sample
        chosen = [entries[i] for i in sorted(rng.sample(range(len(entries)), min(n, len(entries))))]
        info = catalog.get(cell.model) if cell.model else None
        tokens = {"text": 0, "image": 0, "video": 0}
        try:
            for e in chosen:
                body = json.loads((context.folder / layout.payload_dir(cid) / e["file"]).read_bytes())
                for k, v in estimate.body_tokens(body if isinstance(body, dict) else {}, info).items():
                    tokens[k] += v
        except (OSError, ValueError) as exc:
            sample.unusable[cid] = f"cannot read a payload file of it ({exc})"
            continue
        cost = estimate.cost(info, tokens, cell.region)
        sample.cells.append(CellSample(cell, chosen, len(entries), tokens, cost))
    return sample


def _index(read: RunReader, cid: str, recorded: dict[str, str]) -> list[dict[str, Any]]:
    """The payload index of a cell; every file it names must be a payload file the manifest records
    (a plain name inside payloads/<cell>/), so a doctored index sends nothing from elsewhere."""
    rel = layout.payload_index(cid)
    try:
        entries = read.payload_index(cid)
    except FolderError as exc:
        raise ValueError(str(exc)) from None
    for n, e in enumerate(entries, 1):
        name = e["file"]
        if "/" in name or "\\" in name or name in (".", "..") or f"{layout.payload_dir(cid)}/{name}" not in recorded:
            raise ValueError(f"{rel} entry {n} names {name!r}, which is not a payload file of the manifest")
        if not isinstance(e.get("inputs"), list):
            raise ValueError(f"{rel} entry {n} has no inputs list")
    if not entries:
        raise ValueError(f"{rel} lists no requests")
    return entries


# --------------------------------------------------------------------------- sending and comparing

@dataclass
class Agreement:
    """One cell's re-execution against its stored vectors."""

    cell: str
    tolerance: Tolerance
    requests: int
    total: int
    endpoint: str | None = None
    compared: int = 0
    identical: int = 0
    min_cosine: float | None = None
    mean_cosine: float | None = None
    disagree: list[dict[str, Any]] = field(default_factory=list)   # {"id", "cosine", "identical"}
    missing: list[str] = field(default_factory=list)       # answered by the model, no stored vector
    extra: list[str] = field(default_factory=list)         # stored, but no request carries it
    failed: str | None = None                              # why no comparison was possible (sending)
    conflict: str | None = None                            # the stored vectors cannot be the model's at all


    @property
    def ok(self) -> bool:
        return (self.failed is None and self.conflict is None and not self.disagree and not self.missing
                and not self.extra)

    def line(self) -> str:
        head = f"re-executed {self.cell}: {self.requests} of {self.total} requests"
        if self.failed or self.conflict:
            return f"{head}: not compared ({self.failed or self.conflict})"
        stats = (f", {self.compared} vectors, cosine min {self.min_cosine:.6f} mean {self.mean_cosine:.6f}, "
                 f"{self.identical} bit-identical" if self.compared else ", no vectors compared")
        return f"{head}{stats}; tolerance {self.tolerance.describe()}: {'agree' if self.ok else 'DISAGREE'}"

    def as_dict(self) -> dict[str, Any]:
        return {"cell": self.cell, "ok": self.ok, "requests": self.requests, "of": self.total,
                "endpoint": self.endpoint, "tolerance": self.tolerance.describe(), "compared": self.compared,
                "identical": self.identical, "min_cosine": self.min_cosine, "mean_cosine": self.mean_cosine,
                "disagree": self.disagree, "missing": self.missing, "extra": self.extra, "failed": self.failed,
                "conflict": self.conflict}


def run_sample(context: VerifyContext, sample: Sample, tolerance: Tolerance | None, console: Any = None,
               allow_hosts: tuple | list = ()) -> list[Agreement]:
    """Send the sampled requests through the run's engine, with the spec copy's `execution`
    settings, and compare; nothing in the folder changes."""
    from harness.execute import ExecuteOptions, execute_run

    if not sample.cells:
        return []
    folder = context.folder
    local_files = {}
    if any(c.cell.upload_local_files for c in sample.cells):   # what the upload stand-ins name
        from harness.providers.uploads import recorded_local_files
        local_files = recorded_local_files(folder, context.record)
    options = ExecuteOptions.from_run(context.spec.document.get("execution"),    # past the cache, never into it
                                      {"use_cache": False, "refresh": False, "quiet": console is None},
                                      local_files=local_files, allow_hosts=allow_hosts)
    with tempfile.TemporaryDirectory(prefix="harness-reexecute-") as tmp:
        scratch = Path(tmp)
        for c in sample.cells:
            where = scratch / layout.payload_dir(c.id)
            where.mkdir(parents=True)
            (scratch / layout.payload_index(c.id)).write_bytes(b"".join(canonical_json(e) + b"\n" for e in c.entries))
            for e in c.entries:
                shutil.copyfile(folder / layout.payload_dir(c.id) / e["file"], where / e["file"])
        summary = execute_run(scratch, [c.cell.to_json() for c in sample.cells], options, console)
        outcomes = {o.id: o for o in summary.cells}
        return [_compare(context.run.read, RunReader(scratch), c, outcomes.get(c.id), tolerance)
                for c in sample.cells]


def _vectors(read: RunReader, cid: str):
    """A cell's vectors (None without a vectors file); ValueError for a file that breaks the contract."""
    try:
        return read.vectors(cid)
    except FolderError as exc:
        raise ValueError(str(exc)) from None


def _compare(read: RunReader, scratch: RunReader, c: CellSample, outcome: Any,
             tolerance: Tolerance | None) -> Agreement:
    """`read`: the run's folder; `scratch`: what the engine wrote just now."""
    tol = tolerance or Tolerance.default(c.cell.provider)
    a = Agreement(c.id, tol, len(c.entries), c.total, endpoint=c.cell.endpoint)
    if outcome is not None and not outcome.executed:
        a.failed = f"not executed: {outcome.reason}"
        return a
    if outcome is not None and outcome.failed + outcome.not_sent:
        first = (outcome.failures or [{}])[0]
        what = ": ".join(str(x) for x in (first.get("code"), first.get("message")) if x)
        a.failed = f"{outcome.failed + outcome.not_sent} of {outcome.requests} requests failed ({what})"
        return a
    fresh = _vectors(scratch, c.id)
    if fresh is None:
        a.failed = "no vectors came back"
        return a
    try:
        stored = _vectors(read, c.id)
    except ValueError as exc:
        a.conflict = str(exc)
        return a
    if stored is None or stored.dimension != fresh.dimension:
        a.conflict = (f"the stored vectors have {stored.dimension} floats, the model gives {fresh.dimension}"
                      if stored is not None else "the folder has no vectors for it")
        return a
    failed_in_run = _failed_requests(read, c.id)
    cosines = []
    for e in c.entries:
        for i in map(str, e.get("inputs") or []):
            if i in fresh.index and i not in stored.index and e["file"] not in failed_in_run:
                a.missing.append(i)     # the run says this request succeeded: its vector was removed
    for i in c.inputs:
        if i not in fresh.index or i not in stored.index:
            continue
        s, f = stored.matrix[stored.index[i]], fresh.matrix[fresh.index[i]]
        same = np.asarray(s, dtype="<f4").tobytes() == np.asarray(f, dtype="<f4").tobytes()
        cos = _cosine(s, f)
        cosines.append(cos)
        a.compared += 1
        a.identical += same
        if not tol.admits(same, cos):
            a.disagree.append({"id": i, "cosine": round(cos, 9), "identical": same})
    if len(c.entries) == c.total:       # every request was sent: no stored vector may be left over
        sent = set(c.inputs)
        a.extra = [i for i in stored.ids if i not in sent]
    if cosines:
        a.min_cosine, a.mean_cosine = float(min(cosines)), float(np.mean(cosines))
    return a


def _failed_requests(read: RunReader, cid: str) -> set[str]:
    """Payload files whose request failed in the run (responses/<cell>.jsonl): their inputs have no
    stored vector by design."""
    try:
        rows = read.responses(cid)
    except FolderError:
        return set()
    return {r["file"] for r in rows if r.get("error") and isinstance(r.get("file"), str)}


def _cosine(a: np.ndarray, b: np.ndarray) -> float:
    a64, b64 = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    n = float(np.linalg.norm(a64) * np.linalg.norm(b64))
    return float(a64 @ b64 / n) if n else (1.0 if not a64.any() and not b64.any() else 0.0)


def _n(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"

