"""Typed records for the files of an output folder, each with `to_json` / `from_json`.

`from_json` accepts exactly the shape `to_json` writes (one shape per file); a file that does
not have it is a `FolderError`, never a guess.
"""

from __future__ import annotations

import functools
import types
from dataclasses import MISSING, dataclass, field, fields
from typing import TYPE_CHECKING, Any, Iterable, Union, get_args, get_origin, get_type_hints

from harness.errors import ExitCode, Failure
from harness.folder.usage import usage_tokens

if TYPE_CHECKING:   # numpy loads only where vectors are read or written
    import numpy as np


class FolderError(Failure):
    """A file in the output folder is unreadable or contradicts the contract."""

    exit_code = ExitCode.VERIFY_MISMATCH


def _need(data: Any, kind: type, what: str) -> Any:
    if not isinstance(data, kind):
        raise FolderError(f"{what} is not a JSON {'object' if kind is dict else 'list'}")
    return data


_SAID = {str: "text", int: "an integer", float: "a number", bool: "true or false", dict: "an object", list: "a list"}


@functools.cache
def _kinds(cls: type) -> dict[str, tuple[type, bool]]:
    """Each field's JSON type and whether it may be null, read from its annotation (`int | None`
    → int or null, `list[X]` → list); a field holding a record (a `Reason`) is JSON text."""
    out = {}
    for name, hint in get_type_hints(cls).items():
        nullable = get_origin(hint) in (Union, types.UnionType) and type(None) in get_args(hint)
        if nullable:
            hint = next(a for a in get_args(hint) if a is not type(None))
        kind = get_origin(hint) or hint
        out[name] = (str if kind is Reason else kind, nullable)
    return out


def _is(value: Any, kind: type) -> bool:
    """Is `value` of JSON type `kind`? (true and false are no numbers; an integer is a number)"""
    if kind is Any:
        return True
    if isinstance(value, bool):
        return kind is bool
    return isinstance(value, (int, float) if kind is float else kind)


def _typed(cls: type, data: dict[str, Any], where: str) -> dict[str, Any]:
    """The keys of `data` that name fields of `cls`, each holding its field's JSON type (or null
    where the field may be None); another value is a `FolderError` naming the file, the entry and
    the field."""
    kinds = _kinds(cls)
    out = {}
    for name, value in data.items():
        if name not in kinds or name == "extra":
            continue
        kind, nullable = kinds[name]
        if not (value is None and nullable) and not (value is not None and _is(value, kind)):
            raise FolderError(f"{where}: \"{name}\" is not {_SAID.get(kind, kind.__name__)}")
        out[name] = value
    return out


def checked_fields(cls: type, data: Any, where: str) -> dict[str, Any]:
    """`_typed`, for an entry that must be an object holding every field without a default."""
    known = _typed(cls, _need(data, dict, where), where)
    for f in fields(cls):
        if f.name not in known and f.default is MISSING and f.default_factory is MISSING:
            raise FolderError(f"{where} has no \"{f.name}\"")
    return known


class MapOf:
    """A shape: a JSON object whose every value has `shape` (a table keyed by path or name)."""

    def __init__(self, shape: Any):
        self.shape = shape


def shaped(value: Any, shape: Any, where: str) -> Any:
    """`value` if it has `shape`, else a FolderError naming where it breaks. A shape is a JSON type
    (`str`, `int`, `float`, `bool`, `dict`, `list`), a tuple of shapes (`None` in it: null), `[s]`: a
    list of `s`, `MapOf(s)`, or `{key: s}`: an object whose keys named here have their shapes
    (others are kept unchecked, absent ones are allowed)."""
    if isinstance(shape, tuple):
        if (value is None and None in shape) or any(_fits(value, s) for s in shape if s is not None):
            return next((shaped(value, s, where) for s in shape if s is not None and _fits(value, s)), value)
        said = " or ".join("null" if s is None else _said(s) for s in shape)
        raise FolderError(f"{where} is not {said}")
    if not _fits(value, shape):
        raise FolderError(f"{where} is not {_said(shape)}")
    if isinstance(shape, list):
        for n, item in enumerate(value):
            shaped(item, shape[0], f"{where}[{n}]")
    elif isinstance(shape, MapOf):
        for key, item in value.items():
            shaped(item, shape.shape, f"{where}[{key!r}]")
    elif isinstance(shape, dict):
        for key, sub in shape.items():
            if key in value:
                shaped(value[key], sub, f"{where}.{key}")
    return value


def _fits(value: Any, shape: Any) -> bool:
    kind = list if isinstance(shape, list) else dict if isinstance(shape, (dict, MapOf)) else shape
    return _is(value, kind)


def _said(shape: Any) -> str:
    if isinstance(shape, list):
        return f"a list of {_said(shape[0]).removeprefix('a ').removeprefix('an ')}s"
    if isinstance(shape, (dict, MapOf)):
        return "an object"
    return _SAID.get(shape, getattr(shape, "__name__", str(shape)))


# --------------------------------------------------------------------------- manifest.json

MANIFEST_VERSION = 2   # 2: the digest leaves out the reports' hashes (the reports show the digest)

# What a run writes, as a whole: every change to the files a run writes (their fields, their bytes,
# the reports' rendering) bumps it. A folder without the field is format 1. `verify` re-renders a
# folder of this format byte for byte; for an earlier one it re-derives and compares the data both
# formats record and says which byte-level checks it could not make. (The package version is not
# this: it has not moved while the folders changed.)
#   2: `evidence_format` recorded in the manifest (and covered by its digest); `sizes`: every
#      file's size in bytes beside its sha256, so a reader reads no more than that; report.md
#      escapes HTML and Markdown in its table cells; a check that proves nothing is a `warn` line
#      (data `vacuous`; JUnit: a skipped case), no longer `ok`; an adaptive rate's note shows the
#      rate its line's data record (rounded to 0.1 first)
#   3: (each change below names its issue; tests/fixtures/format-2 keeps format 2 verifying)
#      - issue 25.1: a cell's request bodies are one file, payloads/<cell>/requests.jsonl (line N the
#        canonical body of request N), beside the same index.jsonl; formats 1, 2: one file per request
#      - issue 28.4: execution.json's cells record `elapsed_s` (the engine's clock, first request to
#        last answer), summary.json's cells carry it; junit.xml: a suite's `time` is that elapsed time
#        (not the summed latency), `timestamp` on each <testsuite> (none on <testsuites>, nor `skipped`)
#      - issue 28.5: validate.txt's `spec` line and the manifest's `schema.id` cite the schema by its path
#        (`schemas/spec.schema.json`) instead of a URL no file carried
#      - issue 26.8: a cell that was sent but got no vector (a refused key, an unreachable host) has
#        `skip` lines for its checks and its `dimensions` line ("cell failed to execute: HTTP 401
#        InvalidApiKey at HOST"), gated through its execution FAIL line; formats 1, 2 wrote FAIL lines
#      - issue 26.4: where a relevant input ranked reads alike in validate.txt, report.md, report.html:
#        `at rank 7 (cosine 0.612)`, `below rank 10 (cosine 0.009)` (a candidate past a qrels check's
#        `depth`), `not a candidate (cosine 0.104)`; a qrels check's data adds `not_candidates`; formats
#        1, 2 wrote `not among the candidates`, `#7 (0.612)`, `not ranked` (verify undoes the wording)
#      - issue 27: a retrieval line shows each metric's bootstrap interval and their level (`ndcg@10
#        0.921 [0.835, 0.982] ≥ 0.5 (95% intervals)`), `min_lower` judges an interval's low end; its data,
#        summary.json's `quality` rows add intervals, confidence, queries, resamples, seed, headline;
#        summary.json adds `comparisons` (cells vs the best, paired sign-flip p-values, Holm), the MTEB
#        result's `harness` part the intervals; formats 1, 2 have neither (verify compares their lines
#        without the intervals)
#      - issue 27.3-4, 26.1, 26.11: report.md and report.html open with the recommendation (one rule,
#        report/recommend.py) and a table of the cells with ± intervals, the difference from the best and
#        float32 storage; report.html folds long detail in <details>, draws error bars, tables a one-
#        dimension check; formats 1, 2 laid these reports out otherwise (verify compares the verdict and
#        the check statuses they show, `RELAID`, not their bytes)
#      - issue 28.1-3: a `beir:` entry embeds, and a qrels check counts, every judged query (one judged only
#        grade 0 scores 0, as BEIR and MTEB count it); a qrels check writes its MTEB result in MTEB's layout,
#        results/<model>/dim-<dimension>/<check>.json (dataset_revision, evaluation_time, mteb_version,
#        languages filled) with model_meta.json, and runs/<cell>/<check>.qrels beside the run file (its data
#        `files` names them); formats 1, 2: judged-relevant queries only, results/<cell>/<check>.json
#      - issue 26.12: counts agree with their noun in validate.txt and the reports ("1 cell", "1 request",
#        "the 1 request succeeded", "1 query over 40 candidates"); formats 1, 2 wrote "1 cells", "all 1
#        requests succeeded" (verify compares such lines by their numbers)
EVIDENCE_FORMAT = 3

# manifest.json's fields and their JSON types (`shaped`): a field of another type is a FolderError
_INPUT_FILE = {"path": str, "sha256": str, "size": int, "role": str, "mime": str, "format": str}
MANIFEST_SHAPE = {
    "manifest_version": int, "evidence_format": int, "digest": (str, None),
    "harness": ({"version": (str, None)}, None),
    "schema": ({"id": (str, None), "sha256": (str, None)}, None),
    "catalog": ({"version": (str, None), "sha256": (str, None)}, None),
    "spec": ({"name": (str, None), "path": (str, None), "copy": (str, None), "sha256": (str, None)}, None),
    "environment": (dict, None),
    "inputs": ({"count": int, "sha256": (str, None), "urls": [(str, {"url": str, "kind": str})],
                "files": [_INPUT_FILE], "modality_counts": MapOf(int)}, None),
    "cells": [{"id": str}],
    "files": MapOf(str),
    "sizes": MapOf(int),
    "filter": (MapOf([str]), None),
}


@dataclass
class Manifest:
    """manifest.json. `cells` are the plan's cell entries, passed to providers and checks as
    they are; keys this version does not know are kept in `extra` so the digest round-trips."""

    manifest_version: int
    harness: dict[str, Any]
    spec: dict[str, Any]
    inputs: dict[str, Any]
    cells: list[dict[str, Any]]
    schema: dict[str, Any] | None = None
    catalog: dict[str, Any] | None = None
    environment: dict[str, Any] | None = None
    files: dict[str, str] = field(default_factory=dict)
    digest: str | None = None
    evidence_format: int | None = None     # None: a folder written before the field (format 1)
    sizes: dict[str, int] | None = None    # path → bytes, beside `files` (format 2; None: format 1)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def format(self) -> int:
        """The evidence format the folder was written in (1 when the manifest does not say)."""
        return self.evidence_format if self.evidence_format is not None else 1

    @property
    def cell_ids(self) -> list[str]:
        return [c["id"] for c in self.cells]

    def cell(self, cell_id: str) -> dict[str, Any]:
        return next((c for c in self.cells if c["id"] == cell_id), {})

    def entries(self) -> list[CellEntry]:
        """The cells as records, their types checked (a wrong type is a `FolderError` naming it)."""
        return [CellEntry.from_json(c) for c in self.cells]

    def entry(self, cell_id: str) -> CellEntry | None:
        return next((CellEntry.from_json(c) for c in self.cells if c["id"] == cell_id), None)

    def to_json(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "extra"}
        out = {k: v for k, v in out.items() if v is not None or k in ("digest",)}
        if self.digest is None:
            out.pop("digest")
        return {**self.extra, **out}

    def body(self) -> dict[str, Any]:
        """Everything the run planned: the manifest without its file table and digest."""
        return {k: v for k, v in self.to_json().items() if k not in ("files", "digest")}

    @classmethod
    def from_json(cls, data: Any) -> "Manifest":
        cells = _need(data, dict, "manifest.json").get("cells")
        if not isinstance(cells, list) or not all(isinstance(c, dict) for c in cells):
            raise FolderError("manifest.json has no usable \"cells\" list")
        data = shaped(data, MANIFEST_SHAPE, "manifest.json")
        for c in cells:
            if not isinstance(c.get("id"), str) or c["id"] in ("", ".", "..") or any(x in c["id"] for x in "/\\\0"):
                raise FolderError(f"manifest.json: a cell's id {c.get('id')!r} is not a cell id")
        if len({c["id"] for c in cells}) != len(cells):
            raise FolderError("manifest.json names a cell twice")
        for key in ("manifest_version", "evidence_format"):
            if key in data and data[key] < 1:
                raise FolderError(f"manifest.json's \"{key}\" is not a positive integer")
        if any(n < 0 for n in (data.get("sizes") or {}).values()):
            raise FolderError("manifest.json's \"sizes\" holds a negative size")
        known = {f.name for f in fields(cls)} - {"extra"}
        return cls(manifest_version=data.get("manifest_version") or 1, harness=data.get("harness") or {},
                   spec=data.get("spec") or {}, inputs=data.get("inputs") or {}, cells=cells,
                   schema=data.get("schema"), catalog=data.get("catalog"), environment=data.get("environment"),
                   files=data.get("files") or {}, digest=data.get("digest"),
                   evidence_format=data.get("evidence_format"), sizes=data.get("sizes"),
                   extra={k: v for k, v in data.items() if k not in known})


@dataclass
class CellEntry:
    """A cell of manifest.json: one model at one output dimension, as the plan made it (what it
    sends and where, what it was estimated to cost). A field the entry does not have is None;
    keys this version does not know are kept in `extra`."""

    id: str
    model: str | None = None
    wire_model: str | None = None
    provider: str | None = None
    endpoint: str | None = None
    region: str | None = None                    # whose prices apply; None: nothing is billed
    dimension: int | None = None                 # the vector length every input gets
    dimension_sent: int | None = None            # what the request says (None: the model's fixed size)
    parameters: dict[str, Any] | None = None
    api_key_env: str | None = None
    required: bool | None = None
    modalities: list[str] | None = None          # only inputs of these modalities (None: all)
    modality_mix: dict[str, int] | None = None   # inputs by modality
    requests: int | None = None
    contents: int | None = None
    inputs: int | None = None
    estimated_tokens: dict[str, int] | None = None
    estimated_cost: dict[str, Any] | None = None
    replicas: list[str] | None = None            # every server's endpoint, when there are several
    upload_local_files: bool | None = None
    index: str | None = None                     # payloads/<cell>/index.jsonl
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """The entry's JSON; a field that is None is left out."""
        out = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "extra"}
        return {**self.extra, **{k: v for k, v in out.items() if v is not None}}

    @classmethod
    def from_json(cls, data: Any) -> "CellEntry":
        data = _need(data, dict, "a cell of manifest.json")
        if not isinstance(data.get("id"), str):
            raise FolderError("a cell of manifest.json has no \"id\"")
        known = _typed(cls, data, f"manifest.json: cell {data['id']}")
        return cls(**known, extra={k: v for k, v in data.items() if k not in known})


# --------------------------------------------------------------------------- execution.json

EXECUTION_VERSION = 1


@dataclass(frozen=True)
class Reason:
    """Why a cell was not executed: what happened (`brief`, said on every line about the cell) and
    how to fix it (`hint`, said once per run). The folder's files hold it as one text, `text`."""

    brief: str
    hint: str | None = None

    @property
    def text(self) -> str:
        return self.brief if self.hint is None else f"{self.brief}: {self.hint}"

    @classmethod
    def parse(cls, text: str) -> "Reason":
        """The reason a file holds: the brief runs to the first ": ", the hint is the rest."""
        brief, sep, hint = text.partition(": ")
        return cls(brief, hint if sep else None)


@dataclass
class CellExecution:
    """One cell's entry in execution.json: what happened when its requests were sent."""

    id: str
    model: str | None = None
    provider: str | None = None
    required: bool = True
    executed: bool = True
    reason: Reason | None = None
    requests: dict[str, int] = field(default_factory=dict)   # total, ok, failed, not_sent, cache_hits, ...
    vectors: int = 0
    expected_vectors: int = 0
    dimension: int | None = None
    norms: dict[str, float] | None = None
    usage: dict[str, Any] = field(default_factory=dict)
    estimated_cost: dict[str, Any] | None = None
    failures: list[dict[str, Any]] = field(default_factory=list)
    elapsed_s: float | None = None   # seconds from the cell's first request sent to its last answer (format 3)

    def to_json(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        out["reason"] = self.reason.text if self.reason is not None else None
        return out

    @classmethod
    def from_json(cls, data: Any) -> "CellExecution":
        data = _need(data, dict, "a cell of execution.json")
        if not isinstance(data.get("id"), str):
            raise FolderError("a cell of execution.json has no \"id\"")
        known = _typed(cls, data, f"execution.json: cell {data['id']}")   # each field of its type
        shaped(data, {"requests": MapOf(int), "norms": (MapOf((float, None)), None), "failures": [dict]},
               f"execution.json: cell {data['id']}")
        reason = known.pop("reason", None)
        return cls(**known, reason=Reason.parse(reason) if reason is not None else None)

    def usage_tokens(self) -> dict[str, int]:
        """The input tokens by modality the provider reported for the cell."""
        return usage_tokens(self.usage or {})

    def spent(self, cell: CellEntry) -> dict[str, Any] | None:
        """What the cell (`cell`: its manifest entry) spent, and on what the figures rest: `usage`
        (the tokens the provider reported, priced at the catalog's price for the cell's region) or
        `estimate` (the plan's estimate, when not every answer reported usage). None when nothing
        was sent (the cell was not executed)."""
        if not self.executed:
            return None
        tokens = sum(self.usage_tokens().values())
        billed = bool((cell.estimated_cost or {}).get("currency"))
        if tokens and (self.estimated_cost or not billed):   # priced on usage only when all of it came back
            cost = self.estimated_cost
            return {"basis": "usage", "tokens": tokens,
                    "cost": {"amount": cost["amount"], "currency": cost["currency"]} if cost else None}
        est = cell.estimated_cost
        return {"basis": "estimate", "tokens": (cell.estimated_tokens or {}).get("total", 0),
                "cost": ({"amount": est["amount"], "currency": est["currency"]}
                         if est and est.get("currency") else None)}


@dataclass
class Execution:
    """execution.json: per cell what was sent and what came back; the fatal error, if any."""

    cells: list[CellExecution]
    fatal: dict[str, Any] | None = None
    execution_version: int = EXECUTION_VERSION

    def get(self, cell_id: str) -> CellExecution | None:
        return next((c for c in self.cells if c.id == cell_id), None)

    def to_json(self) -> dict[str, Any]:
        return {"execution_version": self.execution_version, "fatal": self.fatal,
                "cells": [c.to_json() for c in self.cells]}

    @classmethod
    def from_json(cls, data: Any) -> "Execution":
        data = _need(data, dict, "execution.json")
        cells = _need(data.get("cells"), list, "execution.json's \"cells\"")
        shaped(data, {"fatal": (dict, None), "execution_version": (int, None)}, "execution.json")
        return cls(cells=[CellExecution.from_json(c) for c in cells], fatal=data.get("fatal"),
                   execution_version=data.get("execution_version") or EXECUTION_VERSION)


# --------------------------------------------------------------------------- vectors/<cell>.*

@dataclass
class CellVectors:
    """One cell's vectors (vectors/<cell>.npy) and their input ids (.ids.json): row i ↔ ids[i]."""

    ids: list[str]
    matrix: np.ndarray  # float32, (n, dimension)

    def __post_init__(self) -> None:
        self.index = {i: n for n, i in enumerate(self.ids)}

    def has(self, *ids: str) -> bool:
        return all(i in self.index for i in ids)

    def rows(self, ids: Iterable[str]) -> np.ndarray:
        return self.matrix[[self.index[i] for i in ids]]

    @property
    def dimension(self) -> int:
        return int(self.matrix.shape[1]) if self.matrix.ndim == 2 else 0
