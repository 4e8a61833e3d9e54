"""Evaluation data sets, by the key of their entry in `inputs:` (`beir:`, `imagetext:`).

Each data set gives its inputs, the retrieval checks its entry brings, the judgements those
checks rank against, and the modalities of its inputs; the rest of the harness asks `DATASETS`
and never names a data set. `all_checks(spec data)` is the one list of checks a run evaluates:
the spec's `checks:` and, after them, those its data-set entries bring; `judgements(body,
files)` reads what a retrieval check ranks against, whichever way it was given (raising
`JudgementsError` when that can no longer be read).
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator, Protocol

from harness.inputs.datasets import beir, imagetext
from harness.inputs.datasets.qrels import Judgements, JudgementsError, file_judgements
from harness.inputs.files import InputFiles
from harness.inputs.types import Input

__all__ = ["DATASETS", "MTEB_K", "QRELS_KINDS", "DataSet", "Judgements", "JudgementsError", "all_checks",
           "check_places", "judgements"]

# The cut-offs MTEB reports for retrieval; a check over qrels reports every metric at each.
MTEB_K = (1, 3, 5, 10, 20, 100, 1000)
QRELS_KINDS = ("recall", "ndcg", "precision", "map", "mrr")


class DataSet(Protocol):
    """What a data-set module gives (harness.inputs.datasets.beir is one)."""

    MODALITIES: tuple[str, ...]

    def inputs(self, entry: dict, index: int, files: InputFiles, problems: list) -> Iterator[Input]: ...

    def checks(self, entry: dict) -> list[dict]: ...

    def judgements(self, check: dict, files: InputFiles) -> Judgements: ...


DATASETS: dict[str, DataSet] = {"beir": beir, "imagetext": imagetext}


def all_checks(data: dict) -> list[dict]:
    """The spec's checks, then those its data-set entries bring, in entry order."""
    checks = [c for c in (data.get("checks") or []) if isinstance(c, dict)] if isinstance(data, dict) else []
    inputs = data.get("inputs") if isinstance(data, dict) else None
    for entry in inputs if isinstance(inputs, list) else []:
        if not isinstance(entry, dict):
            continue
        dataset = next((d for key, d in DATASETS.items() if isinstance(entry.get(key), str)), None)
        if dataset is not None:
            checks.extend(dataset.checks(entry))
    return checks


def check_places(data: dict) -> list[tuple]:
    """Where each of `all_checks(data)` is written in the spec, as a path of keys: the spec's own
    `("checks", i)`, a data set's `("inputs", j, "beir")` (the entry that brings it)."""
    own = [c for c in (data.get("checks") or []) if isinstance(c, dict)] if isinstance(data, dict) else []
    places: list[tuple] = [("checks", i) for i in range(len(own))]
    inputs = data.get("inputs") if isinstance(data, dict) else None
    for j, entry in enumerate(inputs if isinstance(inputs, list) else []):
        if not isinstance(entry, dict):
            continue
        key = next((k for k in DATASETS if isinstance(entry.get(k), str)), None)
        if key is not None:
            places += [("inputs", j, key)] * len(DATASETS[key].checks(entry))
    return places


def judgements(body: dict, files: InputFiles | Path) -> Judgements:
    """What a retrieval check body ranks against: a data set's, its own qrels file's, or its
    inline `queries:`. Every file is read through `files`, the confinement the run was planned
    with (a Path: the spec's folder, no --allow-path). Raises JudgementsError when a file it needs
    cannot be read."""
    if not isinstance(files, InputFiles):
        files = InputFiles.for_spec(files)
    for key, dataset in DATASETS.items():
        if body.get(key):
            return dataset.judgements(body[key], files)
    if body.get("qrels"):
        judged = file_judgements(body["qrels"], files, body.get("query_prefix", ""), body.get("doc_prefix", ""))
        judged.languages = tuple(body.get("languages") or ())
        return judged
    return Judgements({q: {r: 1 for r in rel} for q, rel in (body.get("queries") or {}).items()})
