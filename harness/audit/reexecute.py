"""`harness verify --reexecute`: send a sample of a run's requests again and compare the vectors.

Hashes prove a folder did not change by accident; they cannot prove its vectors came from the model,
because whoever edits a vector can rehash the manifest too. Re-execution can: the folder's own
payload files (already re-derived from the spec and inputs by `verify`) go to the model once more,
past the response cache (never read, never written), and every vector that comes back is compared
with the stored one of the same input id.

- Sample (`harness.audit.sample`): every request of a local model (free, and bit-for-bit
  reproducible); for a network provider (paid, or slow) `DEFAULT_SAMPLE` requests per cell, or N
  with `--reexecute N` (`all` for every one), drawn from a seed that is random unless `--seed` is
  given, and printed, so the auditee cannot know which requests will be checked, and the auditor can
  repeat the very sample; on top of them always the requests carrying the inputs the spec's checks
  name, and a seeded sample of each data-set check's queries with their judged documents.
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

import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from harness.audit.sample import DEFAULT_SAMPLE, CellSample, Sample, choose
from harness.errors import HarnessError, SpecError
from harness.evidence import canonical_json
from harness.folder import CellEntry, FolderError, RunReader, layout
from harness.words import counted

if TYPE_CHECKING:
    from harness.audit.verify.parse import VerifyContext

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


# --------------------------------------------------------------------------- planning the cells

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
        head = f"re-executed {self.cell}: {self.requests} of {counted(self.total, 'request')}"
        if self.failed or self.conflict:
            return f"{head}: not compared ({self.failed or self.conflict})"
        stats = (f", {counted(self.compared, 'vector')}, cosine min {self.min_cosine:.6f} mean {self.mean_cosine:.6f}, "
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
    local_files = {}
    if any(c.cell.upload_local_files for c in sample.cells):   # what the upload stand-ins name
        local_files = context.local_files()     # inside the caller's roots, never where the folder says
    options = ExecuteOptions.from_run(context.spec.document.get("execution"),    # past the cache, never into it
                                      {"use_cache": False, "refresh": False, "quiet": console is None},
                                      local_files=local_files, allow_hosts=allow_hosts)
    with tempfile.TemporaryDirectory(prefix="harness-reexecute-") as tmp:
        scratch = Path(tmp)
        for c in sample.cells:      # in the engine's layout, whatever the folder's: bodies as its reader gave them
            (scratch / layout.payload_dir(c.id)).mkdir(parents=True)
            (scratch / layout.payload_index(c.id)).write_bytes(b"".join(canonical_json(e) + b"\n" for e in c.entries))
            (scratch / layout.payload_bodies(c.id)).write_bytes(b"".join(body + b"\n" for body in c.bodies))
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
        a.failed = f"{outcome.failed + outcome.not_sent} of {counted(outcome.requests, 'request')} failed ({what})"
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


__all__ = ["DEFAULT_SAMPLE", "Agreement", "CellSample", "Sample", "Tolerance", "choose", "plan_cells", "run_sample"]

