"""Typed records for the files of an output folder, each with `to_json` / `from_json`.

`from_json` accepts exactly the shape `to_json` writes (one shape per file); a file that does
not have it is a `FolderError`, never a guess.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any, Iterable

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


# --------------------------------------------------------------------------- manifest.json

MANIFEST_VERSION = 2   # 2: the digest leaves out the reports' hashes (the reports show the digest)


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
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def cell_ids(self) -> list[str]:
        return [c["id"] for c in self.cells]

    def cell(self, cell_id: str) -> dict[str, Any]:
        return next((c for c in self.cells if c["id"] == cell_id), {})

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
        data = _need(data, dict, "manifest.json")
        cells = data.get("cells")
        if not isinstance(cells, list) or not all(isinstance(c, dict) and isinstance(c.get("id"), str) for c in cells):
            raise FolderError("manifest.json has no usable \"cells\" list")
        files = data.get("files") or {}
        if not isinstance(files, dict):
            raise FolderError("manifest.json's \"files\" is not a table of path → sha256")
        known = {f.name for f in fields(cls)} - {"extra"}
        return cls(manifest_version=int(data.get("manifest_version") or 1), harness=data.get("harness") or {},
                   spec=data.get("spec") or {}, inputs=data.get("inputs") or {}, cells=cells,
                   schema=data.get("schema"), catalog=data.get("catalog"), environment=data.get("environment"),
                   files=files, digest=data.get("digest"),
                   extra={k: v for k, v in data.items() if k not in known})


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

    def to_json(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        out["reason"] = self.reason.text if self.reason is not None else None
        return out

    @classmethod
    def from_json(cls, data: Any) -> "CellExecution":
        data = _need(data, dict, "a cell of execution.json")
        if not isinstance(data.get("id"), str):
            raise FolderError("a cell of execution.json has no \"id\"")
        reason = data.get("reason")
        if reason is not None and not isinstance(reason, str):
            raise FolderError(f"execution.json: cell {data['id']}: \"reason\" is not text")
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names and k != "reason"},
                   reason=Reason.parse(reason) if reason is not None else None)

    def usage_tokens(self) -> dict[str, int]:
        """The input tokens by modality the provider reported for the cell."""
        return usage_tokens(self.usage or {})

    def spent(self, cell: dict[str, Any]) -> dict[str, Any] | None:
        """What the cell (`cell`: its manifest entry) spent, and on what the figures rest: `usage`
        (the tokens the provider reported, priced at the catalog's price for the cell's region) or
        `estimate` (the plan's estimate, when not every answer reported usage). None when nothing
        was sent (the cell was not executed)."""
        if not self.executed:
            return None
        tokens = sum(self.usage_tokens().values())
        billed = bool((cell.get("estimated_cost") or {}).get("currency"))
        if tokens and (self.estimated_cost or not billed):   # priced on usage only when all of it came back
            cost = self.estimated_cost
            return {"basis": "usage", "tokens": tokens,
                    "cost": {"amount": cost["amount"], "currency": cost["currency"]} if cost else None}
        est = cell.get("estimated_cost")
        return {"basis": "estimate", "tokens": (cell.get("estimated_tokens") or {}).get("total", 0),
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
        return cls(cells=[CellExecution.from_json(c) for c in cells], fatal=data.get("fatal"),
                   execution_version=int(data.get("execution_version") or EXECUTION_VERSION))


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
