"""What the terminal shows, as a user at an 80-column terminal or behind a pipe (`| cat`) sees it:
every table readable without colour, a per-cell result table after a run, and each hint once."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.helpers import SPECS, harness
from tests.test_execute_cli import ROOT, env, server, write_spec  # noqa: F401 (server is a fixture)

NARROW = {"COLUMNS": "80", "NO_COLOR": "1"}
PLAN_HEADERS = ["cell", "model", "dim", "modality mix", "requests", "contents", "est. tokens", "est. cost"]
RESULT_HEADERS = ["cell", "executed", "vectors", "checks pass/fail/skip", "tokens", "cost"]
HINT = "ALIBABA_CLOUD_PROFILE"          # a word only the full credential hint holds


def quickstart(tmp_path: Path) -> Path:
    for name in ("quickstart.yaml", "images", "data"):
        src = SPECS / name
        (shutil.copytree if src.is_dir() else shutil.copy)(src, tmp_path / name)
    return tmp_path / "quickstart.yaml"


def assert_readable(text: str, headers: list[str]) -> None:
    assert "…" not in text, text                     # no value cut short
    for header in headers:
        assert header in text, (header, text)
    assert max(len(line) for line in text.splitlines()) <= 80, text
    assert "\x1b[" not in text                       # nothing said by colour alone


def test_plan_at_80_columns_shows_every_value_it_keeps_and_names_what_it_left_out(tmp_path):
    proc = harness("plan", str(quickstart(tmp_path)), cwd=tmp_path, env=NARROW)
    assert proc.returncode == 0, proc.stderr
    # the model is in the cell id, and the least needed columns give way before the table is stacked
    assert_readable(proc.stdout, [h for h in PLAN_HEADERS if h not in ("model", "contents", "modality mix")])
    assert "(left out to fit 80 columns: contents, modality mix)" in proc.stdout
    assert "- cell:" not in proc.stdout
    for value in ("qwen3-vl-embedding-1024", "local--e5-small-384", "384 fixed", "0.0046 CNY"):
        assert value in proc.stdout


def test_models_piped_shows_full_names_and_the_default_in_words(tmp_path):
    proc = harness("models", cwd=tmp_path, env=NARROW)
    assert proc.returncode == 0, proc.stderr
    assert_readable(proc.stdout, ["model", "provider", "modalities", "dimensions", "fusion", "per request", "RPM/TPM"])
    assert "qwen3-vl-embedding *" in proc.stdout and "tongyi-embedding-vision-plus-2026-03-06" in proc.stdout
    assert "2560 (default), 2048" in proc.stdout and "2048, 1024 (default), 768" in proc.stdout


def test_run_prints_a_result_per_cell(tmp_path):
    spec = quickstart(tmp_path)
    proc = harness("run", str(spec), "--execute", "--output", "out", cwd=tmp_path, env={**NARROW, "COLUMNS": "50"})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    results = proc.stdout[proc.stdout.index("results ("):]
    assert "results (tokens, cost: actual if reported, else est.)" in " ".join(proc.stdout.split())
    blocks = {b.splitlines()[0].removeprefix("cell: "): b for b in results.split("\n- ")[1:]}
    assert set(blocks) == {"qwen3-vl-embedding-1024", "qwen3-vl-embedding-256", "local--e5-small-384"}
    skipped = blocks["qwen3-vl-embedding-256"]
    assert "executed:              no: no DashScope API key" in skipped
    assert "checks pass/fail/skip: 1/0/4" in skipped and "tokens:                -" in skipped
    local = blocks["local--e5-small-384"]
    assert "executed:              yes" in local and "vectors:               3" in local
    assert "checks pass/fail/skip: 5/0/0" in local
    assert " actual" in local.split("tokens:")[1].splitlines()[0]       # the local model reports its usage
    assert proc.stdout.count(HINT) == 0          # the key how-to: with --verbose (and in validate.txt)
    assert "not executed: no DashScope API key (--verbose for the fix): 2 cells" in " ".join(proc.stdout.split())
    assert max(len(line) for line in proc.stdout.splitlines()) <= 50 and "…" not in proc.stdout


def test_the_key_hint_is_said_once_per_run_and_verify_agrees(tmp_path):
    proc = harness("run", str(quickstart(tmp_path)), "--execute", "--output", "out", cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    folder = tmp_path / "out" / "quickstart"
    validate = (folder / "validate.txt").read_text()
    assert validate.count(HINT) == 1 and (folder / "report.html").read_text().count(HINT) == 1
    assert ("skip execution [qwen3-vl-embedding-256]: not executed: no DashScope API key "
            "(as for qwen3-vl-embedding-1024 above)") in validate
    assert "skip vectors [qwen3-vl-embedding-256]: cell not executed: no DashScope API key\n" in validate
    # verify re-evaluates every check line word for word: the brief lines must agree with it.
    check = harness("verify", str(folder), cwd=tmp_path)
    assert check.returncode == 0, check.stdout + check.stderr


def test_prepare_names_the_flag_not_spec_keys(tmp_path):
    proc = harness("prepare", "--dimension", "1000", "--output", "r.json", cwd=tmp_path)
    assert proc.returncode == 3 and not (tmp_path / "r.json").exists()
    assert proc.stderr.startswith("--dimension: qwen3-vl-embedding does not support output dimension 1000")
    assert "leave --dimension out" in proc.stderr
    for spec_word in ("models[0]", "dimensions:", "matrix.exclude"):
        assert spec_word not in proc.stderr
    proc = harness("prepare", "--text", "a", "--image", "missing.png", "--output", "r.json", cwd=tmp_path)
    assert proc.returncode == 3 and proc.stderr.startswith("--image #1: image file 'missing.png' does not exist")
    assert "spec" not in proc.stderr


@pytest.mark.slow                 # a process of its own: what Ctrl-C does to it
def test_interrupt_under_no_cache_does_not_promise_a_cache(server, tmp_path):  # noqa: F811
    server.latency = 0.2
    spec = write_spec(tmp_path, n_texts=60, image=False)       # 3 requests, one at a time
    cmd = [sys.executable, "-m", "harness", "run", str(spec), "--output", str(tmp_path / "out"), "--execute",
           "--quiet", "--no-cache", "--concurrency", "1", "--base-url", server.base_url]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env(tmp_path), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    deadline = time.monotonic() + 60
    while not server.log and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.01)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, out + err
    assert "in the cache" not in err and "with --no-cache no response was kept" in err
    assert not (tmp_path / "cache").exists() or not list((tmp_path / "cache").rglob("*.json"))


def test_piped_output_is_never_wrapped_nor_padded(tmp_path):
    """Piped with no $COLUMNS (a CI log, a file, grep): a long line stays one line, words whole,
    and no line ends in spaces (issue 26, item 10)."""
    from tests.helpers import SPECS, harness

    r = harness("run", str(SPECS / "quickstart.yaml"), "--output", str(tmp_path / "out"), cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert not [line for line in lines if line != line.rstrip()]
    assert "3 warnings (disputed-fact 3): in validate.txt; --verbose prints them" in lines
    r = harness("run", str(SPECS / "quickstart.yaml"), "--verbose", "--output", str(tmp_path / "out"), cwd=tmp_path)
    lines = r.stdout.splitlines()
    assert not [line for line in lines if line != line.rstrip()]
    disputed = [line for line in lines if line.startswith("warn disputed-fact: qwen3-vl-embedding max_images:")]
    assert len(disputed) == 1 and disputed[0].endswith("contradicts every ZH version"), disputed
