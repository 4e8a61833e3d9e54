"""summary.json's record: the one canonical result that JUnit, report.md and report.html project.

`harness.report.summary` builds it from the folder; `from_json` checks each field's type, so a
renderer reads typed fields, never a guess.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

from harness.folder.records import Reason, checked_fields

SUMMARY_VERSION = 1


@dataclass
class SummaryCell:
    """A cell in summary.json: what the plan gave it and what came back, as the reports show it."""

    id: str
    model: str | None = None
    provider: str | None = None
    dimension: int | None = None
    requests: int | None = None
    executed: bool = False
    reason: Reason | None = None                 # why it was not executed
    vectors: int = 0
    latency_ms: dict[str, float] | None = None   # count, p50, p95, max, mean
    usage: dict[str, float] = field(default_factory=dict)
    cache_hits: int = 0
    errors: int = 0
    estimated_cost: dict[str, Any] | None = None
    inputs: int | None = None
    tokens: dict[str, int] | None = None         # input tokens by modality, as the provider reported them
    cost: dict[str, Any] | None = None           # amount, currency, basis ("usage" | "estimate"), per_1k_inputs
    spent: dict[str, Any] | None = None          # CellExecution.spent
    elapsed_s: float | None = None               # CellExecution.elapsed_s (absent: not recorded, format < 3)

    def to_json(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        out["reason"] = self.reason.text if self.reason is not None else None
        if out["elapsed_s"] is None:      # a folder of an earlier format keeps its summary.json's bytes
            del out["elapsed_s"]
        return out

    @classmethod
    def from_json(cls, data: Any, where: str = "summary.json: a cell") -> "SummaryCell":
        known = checked_fields(cls, data, where)
        reason = known.pop("reason", None)
        return cls(**known, reason=Reason.parse(reason) if reason is not None else None)


@dataclass
class SummaryCheck:
    """A check line in summary.json, with the numbers the reports draw (`data`)."""

    name: str
    passed: bool
    kind: str = "offline"
    cell: str | None = None
    status: str = ""                             # the reports' word: passed, failed, skipped, warning
    detail: str = ""
    line: str = ""                               # as validate.txt has it
    data: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_json(cls, data: Any, where: str = "summary.json: a check") -> "SummaryCheck":
        return cls(**checked_fields(cls, data, where))


@dataclass
class Quality:
    """A retrieval check's metrics for one cell in summary.json (`quality`)."""

    check: str
    cell: str | None = None
    model: str | None = None
    dimension: int | None = None
    metrics: dict[str, float | None] = field(default_factory=dict)
    thresholds: dict[str, float] = field(default_factory=dict)
    threshold_order: list[str] = field(default_factory=list)   # the spec's order (summary.json sorts keys)
    # How sure each metric is (evidence format 3; None: not recorded, and left out of the JSON so a folder
    # of an earlier format keeps its summary.json's bytes): the percentile bootstrap interval of the mean
    # over `queries` queries, `resamples` resamples from RandomState(`seed`), at `confidence`
    intervals: dict[str, list[float]] | None = None
    confidence: float | None = None
    queries: int | None = None
    resamples: int | None = None
    seed: int | None = None
    min_lower: dict[str, float] | None = None      # the check's `min_lower`: thresholds on an interval's low end
    headline: str | None = None                    # the metric cells are compared on (`comparisons`)

    def to_json(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        return {k: v for k, v in out.items() if v is not None or k in _QUALITY_ALWAYS}

    @classmethod
    def from_json(cls, data: Any, where: str = "summary.json: a quality entry") -> "Quality":
        return cls(**checked_fields(cls, data, where))


_QUALITY_ALWAYS = ("check", "cell", "model", "dimension", "metrics", "thresholds", "threshold_order")


@dataclass
class Comparison:
    """A cell against the best cell of its retrieval check on the headline metric, query by query
    (summary.json `comparisons`): `delta` = mean(b − a) over the queries both ranked, its bootstrap
    `interval`, the two-sided paired sign-flip test's `p_value` and `p_holm` (Holm-corrected across
    the check's comparisons); `significant`: p_holm < 1 − confidence."""

    check: str
    metric: str
    a: str                                   # the best cell
    b: str                                   # the cell compared with it
    delta: float
    interval: list[float]
    p_value: float
    p_holm: float
    test: str                                # paired-sign-flip-exact | paired-sign-flip-monte-carlo
    significant: bool = False
    queries: int = 0
    flips: int = 0
    seed: int = 0
    confidence: float = 0.95
    resamples: int = 0

    def to_json(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_json(cls, data: Any, where: str = "summary.json: a comparison") -> "Comparison":
        return cls(**checked_fields(cls, data, where))


@dataclass
class Summary:
    """summary.json: the one canonical result that JUnit, report.md and report.html project."""

    spec: dict[str, Any]                         # name, sha256
    manifest_digest: str | None
    verdict: str                                 # PASS | FAIL
    counts: dict[str, int]                       # total, passed, failed, skipped, warnings
    cells: list[SummaryCell] = field(default_factory=list)
    checks: list[SummaryCheck] = field(default_factory=list)
    quality: list[Quality] = field(default_factory=list)
    summary_version: int = SUMMARY_VERSION
    comparisons: list[Comparison] | None = None   # None: not recorded (a folder of evidence format < 3)

    def per_query(self, check: str, cell: str) -> dict[str, dict[str, Any]] | None:
        """The per-query metrics a retrieval check recorded for a cell (None when there are none)."""
        for c in self.checks:
            if c.name == check and c.cell == cell:
                values = (c.data or {}).get("per_query")
                return values if isinstance(values, dict) and values else None
        return None

    def to_json(self) -> dict[str, Any]:
        out = {"summary_version": self.summary_version, "spec": self.spec, "manifest_digest": self.manifest_digest,
               "verdict": self.verdict, "counts": self.counts, "cells": [c.to_json() for c in self.cells],
               "checks": [c.to_json() for c in self.checks], "quality": [q.to_json() for q in self.quality]}
        if self.comparisons is not None:
            out["comparisons"] = [c.to_json() for c in self.comparisons]
        return out

    @classmethod
    def from_json(cls, data: Any) -> "Summary":
        known = checked_fields(cls, data, "summary.json")
        return cls(**{**known,
                      "cells": [SummaryCell.from_json(c, f"summary.json: cells[{n}]")
                                for n, c in enumerate(known.get("cells") or [])],
                      "checks": [SummaryCheck.from_json(c, f"summary.json: checks[{n}]")
                                 for n, c in enumerate(known.get("checks") or [])],
                      "quality": [Quality.from_json(q, f"summary.json: quality[{n}]")
                                  for n, q in enumerate(known.get("quality") or [])],
                      "comparisons": None if known.get("comparisons") is None else
                      [Comparison.from_json(c, f"summary.json: comparisons[{n}]")
                       for n, c in enumerate(known["comparisons"])]})
