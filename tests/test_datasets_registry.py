"""Evaluation data sets are a registry: the inputs, the checks they bring and what those checks
rank against all come from `DATASETS`, so a new data set is a new entry there, named nowhere else."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

from harness.inputs.datasets import DATASETS, Judgements, all_checks, judgements
from harness.inputs.files import InputFiles
from harness.inputs.resolve import iter_inputs
from harness.inputs.types import Input, Part


def test_each_data_set_gives_inputs_checks_judgements_and_modalities():
    assert list(DATASETS) == ["beir", "imagetext"]
    for dataset in DATASETS.values():
        assert callable(dataset.inputs) and callable(dataset.checks) and callable(dataset.judgements)
        assert dataset.MODALITIES and set(dataset.MODALITIES) <= {"text", "image", "video"}


def _toy(calls: list) -> SimpleNamespace:
    def inputs(entry, index, files, problems):
        calls.append(("inputs", entry["toy"], index))
        yield Input("toy-1", "text", (Part("text", "hello"),), ("inputs", index))

    def checks(entry):
        return [{"retrieval": {"name": "toy", "toy": {"file": entry["toy"]}}}]

    def judgements(check, files):     # the spec's confinement (InputFiles), not a bare folder
        calls.append(("judgements", check["file"], files.base_dir))
        return Judgements({"toy-1": {"toy-1": 1}})

    return SimpleNamespace(MODALITIES=("text",), inputs=inputs, checks=checks, judgements=judgements)


def test_inputs_checks_and_judgements_are_asked_of_the_registry(monkeypatch, tmp_path):
    calls: list = []
    monkeypatch.setitem(DATASETS, "toy", _toy(calls))
    problems: list = []
    entries = [{"text": "a", "id": "a"}, {"toy": "set.txt", "models": ["m"]}]
    found = list(iter_inputs(entries, InputFiles.for_spec(tmp_path), problems))
    assert problems == []
    assert [(i.id, i.models) for i in found] == [("a", None), ("toy-1", frozenset({"m"}))]
    checks = all_checks({"checks": [{"vectors": {}}], "inputs": entries})
    assert checks == [{"vectors": {}}, {"retrieval": {"name": "toy", "toy": {"file": "set.txt"}}}]
    assert judgements(checks[1]["retrieval"], Path("/spec")).qrels == {"toy-1": {"toy-1": 1}}
    assert calls == [("inputs", "set.txt", 1), ("judgements", "set.txt", Path("/spec"))]
