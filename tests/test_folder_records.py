"""The folder's typed records: a manifest cell (`CellEntry`) and summary.json (`Summary`) read with
their types checked (a wrong type names its field), and `open_run`, the one way to open a run."""

from __future__ import annotations

import json
import re

import pytest

from harness.folder import CellEntry, FolderError, Manifest, NotARun, Reason, Summary, open_run
from tests.test_checks_support import make_run


def test_a_cell_entry_keeps_what_the_plan_wrote_and_names_a_field_of_the_wrong_type():
    entry = CellEntry.from_json({"id": "m-256", "model": "m", "dimension": 256, "dimension_sent": None,
                                 "estimated_tokens": {"total": 9}, "upload_local_files": True, "later": 1})
    assert (entry.model, entry.dimension, entry.dimension_sent, entry.extra) == ("m", 256, None, {"later": 1})
    assert entry.to_json() == {"id": "m-256", "model": "m", "dimension": 256, "estimated_tokens": {"total": 9},
                               "upload_local_files": True, "later": 1}
    for field, value in (("dimension", "256"), ("dimension", True), ("requests", 1.5), ("required", 1),
                         ("modalities", "text"), ("estimated_cost", [1])):
        with pytest.raises(FolderError, match=f'manifest.json: cell m-256: "{field}" is not'):
            CellEntry.from_json({"id": "m-256", field: value})


def test_the_summary_of_a_run_round_trips_and_its_cells_carry_their_reason(tmp_path):
    folder = tmp_path / "run"
    make_run(folder, skip=("qwen3-vl-embedding-4",))
    data = json.loads((folder / "summary.json").read_text())
    summary = Summary.from_json(data)
    assert summary.to_json() == data
    skipped = next(c for c in summary.cells if not c.executed)
    assert skipped.reason == Reason("no DashScope API key", "set DASHSCOPE_API_KEY")


@pytest.mark.parametrize("where, value, said", [
    ("verdict", 1, 'summary.json: "verdict" is not text'),
    ("cells", {}, 'summary.json: "cells" is not a list'),
    ("checks", [{"name": "x", "passed": "yes"}], 'summary.json: checks[0]: "passed" is not true or false'),
    ("checks", [{"passed": True}], 'summary.json: checks[0] has no "name"'),
    ("quality", [{"check": "r", "metrics": None}], 'summary.json: quality[0]: "metrics" is not an object'),
])
def test_a_summary_field_of_the_wrong_type_is_named(tmp_path, where, value, said):
    folder = tmp_path / "run"
    make_run(folder)
    data = json.loads((folder / "summary.json").read_text())
    with pytest.raises(FolderError, match=f"^{re.escape(said)}$"):
        Summary.from_json({**data, where: value})


def test_open_run_reads_the_manifest_once_and_says_why_a_path_is_no_run(tmp_path):
    manifest = make_run(tmp_path / "run")
    run = open_run(tmp_path / "run")
    assert run.manifest.digest == manifest.digest and [c.id for c in run.cells] == manifest.cell_ids
    assert run.summary.manifest_digest == manifest.digest and run.execution is not None
    (tmp_path / "file").write_text("")
    (tmp_path / "empty").mkdir()
    for path, why in (("nowhere", "missing"), ("file", "not a folder"), ("empty", "no manifest")):
        with pytest.raises(NotARun) as caught:
            open_run(tmp_path / path)
        assert caught.value.why == why
    stand_in = Manifest.from_json(json.loads((tmp_path / "run" / "manifest.json").read_text()))
    assert open_run(tmp_path / "empty", manifest=stand_in).manifest is stand_in
