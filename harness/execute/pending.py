"""What an executing run is about to send, before it sends anything: per cell, the requests the
response cache does not answer yet, and their estimated cost (`run` prints it as `terraform apply`
shows its plan, and `run --max-cost` refuses to start above it).

A request is answered by the cache when the engine would find it there: the same key (endpoint and
body, `harness.execute.cache.cache_key`), read the same way. A cell the engine will not send (a
DashScope cell without a key) is left to send nothing. The cost of what is left is the plan's
estimate for the cell, in its region's currency, scaled by the estimated tokens of the requests left.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.catalog import estimate
from harness.catalog.load import load_catalog
from harness.execute.cache import ResponseCache, cache_key
from harness.execute.options import ExecuteOptions
from harness.folder import EVIDENCE_FORMAT, FolderError, RunReader


@dataclass(frozen=True)
class CellPending:
    id: str
    requests: int                      # planned
    left: int                          # of them, not answered by the cache (0 when the cell is not sent)
    cost: dict[str, Any] | None        # the plan's estimate for the cell: {"amount", "currency"}
    left_cost: dict[str, Any] | None   # the part of it the requests left would cost
    unsent: str | None = None          # why the cell will not be sent at all (no key), if so

    @property
    def cached(self) -> int:
        return self.requests - self.left if self.unsent is None else 0


def pending(folder: Path, cells: list[dict], options: ExecuteOptions) -> list[CellPending]:
    """`cells`: the manifest's cell entries; `folder` holds their payload files (the staging folder)."""
    if not options.use_cache or options.refresh:     # --no-cache, --refresh: every request is sent
        return [_cell(folder, cell, None) for cell in cells]
    with ResponseCache(options.cache_dir, note=lambda text: None) as cache:   # the engine warns, once
        answers = cache if cache else None      # an empty cache answers nothing: no payload is read
        return [_cell(folder, cell, answers) for cell in cells]


def _cell(folder: Path, cell: dict, cache: ResponseCache | None) -> CellPending:
    cid, requests = cell["id"], int(cell.get("requests") or 0)
    cost = cell.get("estimated_cost")
    unsent = _unsent(cell)
    if unsent is not None:
        return CellPending(cid, requests, 0, cost, _scaled(cost, 0, 1), unsent)
    endpoint = _endpoint(cell)
    if cache is None or endpoint is None:
        return CellPending(cid, requests, requests, cost, cost)
    info = load_catalog().get(cell.get("model")) if cell.get("model") else None
    left = total_tokens = left_tokens = seen = 0
    try:    # the bodies as the engine reads them, in request order, one at a time (no copy of them all)
        for _, data in RunReader(folder).payload_bodies(cid, EVIDENCE_FORMAT):
            seen += 1
            try:
                body = json.loads(data)
            except ValueError:
                body = None
            hit = isinstance(body, dict) and cache.get(cache_key(endpoint, body)) is not None
            tokens = sum(estimate.body_tokens(body, info).values()) if isinstance(body, dict) else 0
            total_tokens += tokens
            if not hit:
                left += 1
                left_tokens += tokens
    except (FolderError, OSError):
        return CellPending(cid, requests, requests, cost, cost)
    return CellPending(cid, requests, left, cost, _scaled(cost, left_tokens if total_tokens else left,
                                                          total_tokens or max(1, seen)))


def _scaled(cost: dict[str, Any] | None, part: float, whole: float) -> dict[str, Any] | None:
    if not cost or not cost.get("currency"):
        return cost
    return {**cost, "amount": round(float(cost.get("amount") or 0.0) * part / whole, 6) if whole else 0.0}


def _unsent(cell: dict) -> str | None:
    """Why the engine will not send this cell's requests at all, when that is known before (no key)."""
    if (cell.get("provider") or "dashscope") == "dashscope":
        from harness.errors import HarnessError
        from harness.providers.credentials import find_api_key
        try:
            found = find_api_key()
        except HarnessError:     # an unreadable key file: the engine says so when it gets there
            return None
        return None if found is not None else "no DashScope API key"
    return None


def _endpoint(cell: dict) -> str | None:
    """The endpoint the engine keys the cache by, as the cell's provider names it."""
    if cell.get("provider") == "local":
        from harness.providers.base import NotExecutable
        from harness.providers.registry import provider_class
        try:
            return provider_class("local").from_cell(cell).endpoint
        except (NotExecutable, KeyError, ImportError):
            return None
    return cell.get("endpoint")
