"""What `harness run` prints, as a user at a 120-column terminal reads it (issue 26, items 2, 5, 7-10):
the plan and its estimate before the first request, `--max-cost`, the dry run's last line, the headline
retrieval metric per cell, the root cause of cells that could not execute, failures grouped by check,
warnings counted, and a 3 models × 3 dimensions run on one screen. HTTP goes to the stand-in server
on 127.0.0.1."""

from __future__ import annotations

import json
import re
import shutil
import socket
from pathlib import Path

import pytest

from tests.helpers import SPECS, TEST_KEY, cli_env, run_cli

WIDE = {"COLUMNS": "120", "NO_COLOR": "1"}
SCREEN = 50          # lines a terminal shows at once, give or take

MATRIX = """\
version: 1
name: three
region: cn-beijing
models:
  - name: qwen3-vl-embedding
    dimensions: [1024, 512, 256]
  - name: qwen2.5-vl-embedding
    dimensions: [2048, 1024, 512]
  - name: tongyi-embedding-vision-plus-2026-03-06
    dimensions: [1024, 512, 256]
inputs:
  - id: cat-caption
    text: A cat sitting on a red chair
  - id: dog-caption
    text: A brown dog standing on green grass
  - id: sky-caption
    text: A clear blue sky above a white field
  - id: cat-photo
    image: images/cat.png
  - id: dog-photo
    image: images/dog.png
  - id: sky-photo
    image: images/sky.bmp
checks:
  - vectors: {norm_min: %(norm_min)s, norm_max: 2.0}
  - nearest: {query: cat-caption, among: [cat-photo, dog-photo], expect: cat-photo}
  - retrieval:
      queries:
        cat-caption: [cat-photo]
        dog-caption: [dog-photo]
        sky-caption: [sky-photo]
      among: [cat-photo, dog-photo, sky-photo]
      k: [1, 3]
      min: {"recall@1": 0.5}
"""
CELLS = 9


@pytest.fixture(autouse=True)
def fresh(dashscope_server):
    dashscope_server.reset()
    yield
    dashscope_server.settle()


def matrix(tmp_path: Path, norm_min: float = 0.5) -> Path:
    shutil.copytree(SPECS / "images", tmp_path / "images", dirs_exist_ok=True)
    (tmp_path / "spec.yaml").write_text(MATRIX % {"norm_min": norm_min})
    return tmp_path / "spec.yaml"


def run(tmp_path: Path, *args: str, key: str | None = TEST_KEY, **env: str):
    return run_cli("run", "spec.yaml", "--output", "out", *args, cwd=tmp_path,
                   env=cli_env(tmp_path / "home", tmp_path / "cache", DASHSCOPE_API_KEY=key, **{**WIDE, **env}))


def lines(text: str) -> list[str]:
    return text.rstrip("\n").splitlines()


def table_after(text: str, title: str) -> list[str]:
    """The lines of the table printed under `title` (the run's tables have no outer border)."""
    out = text[text.index(title):].splitlines()[1:]
    return out[:next((i for i, line in enumerate(out) if not set("│┃━╇").intersection(line)), len(out))]


def validate(tmp_path: Path, name: str = "three") -> list[str]:
    return (tmp_path / "out" / name / "validate.txt").read_text().splitlines()


# --------------------------------------------------------------------------- item 2: the plan first, --max-cost

def test_max_cost_refuses_before_anything_is_sent_and_names_the_estimate(dashscope_server, tmp_path):
    matrix(tmp_path)
    r = run(tmp_path, "--execute", "--base-url", dashscope_server.base_url, "--max-cost", "0.01")
    assert r.returncode == 2, r.stdout + r.stderr
    assert dashscope_server.log == []                       # not one request
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())
    # the plan and its estimate were printed first, as `terraform apply` shows its plan
    assert "qwen2.5-vl-embedding-2048" in r.stdout and "est. cost" in r.stdout
    assert "estimated cost: 0.0433 CNY for 24 requests; left to send after the cache: 0.0433 CNY for 24 requests\n" \
        in r.stdout
    assert "would cost about 0.0433 CNY to send" in r.stderr and "above --max-cost 0.01" in r.stderr
    assert "nothing was sent" in r.stderr


def test_max_cost_counts_only_what_the_cache_does_not_hold(dashscope_server, tmp_path):
    matrix(tmp_path)
    three = ("--execute", "--base-url", dashscope_server.base_url, "--model", "qwen3-vl-embedding")
    one = run(tmp_path, *three, "--cell", "qwen3-vl-embedding-1024", "--max-cost", "0.01")
    assert one.returncode in (0, 1), one.stdout + one.stderr
    assert "left to send after the cache: 0.0069 CNY for 1 request" in one.stdout
    assert len(dashscope_server.log) == 1
    # the other two cells are left: 2 × 0.006911 CNY, named with the digits that show it is above
    refused = run(tmp_path, *three, "--max-cost", "0.0138")
    assert refused.returncode == 2 and "would cost about 0.013822 CNY to send" in refused.stderr
    assert len(dashscope_server.log) == 1
    rest = run(tmp_path, *three, "--max-cost", "0.014")
    assert rest.returncode in (0, 1), rest.stdout + rest.stderr
    assert "estimated cost: 0.0207 CNY for 3 requests; left to send after the cache: 0.0138 CNY for 2 requests " \
           "(1 cached)" in rest.stdout
    assert len(dashscope_server.log) == 3
    again = run(tmp_path, *three, "--max-cost", "0")
    assert again.returncode in (0, 1), again.stdout + again.stderr
    assert len(dashscope_server.log) == 3                    # all from the cache
    assert "left to send after the cache: nothing (3 cached)\n" in again.stdout
    # a plan table comes before the results table
    assert again.stdout.index("est. cost") < again.stdout.index("results (")


def test_max_cost_needs_execute(tmp_path):
    matrix(tmp_path)
    r = run(tmp_path, "--max-cost", "1")
    assert r.returncode == 2 and "--max-cost needs --execute" in r.stderr
    r = run(tmp_path, "--execute", "--max-cost", "-1")
    assert r.returncode == 2 and "give an amount ≥ 0" in r.stderr


def test_a_cell_without_a_key_is_not_counted_as_left_to_send(tmp_path):
    matrix(tmp_path)
    r = run(tmp_path, "--execute", "--max-cost", "0", key=None)
    assert r.returncode == 6, r.stdout + r.stderr             # not refused: nothing would be sent
    assert "left to send after the cache: nothing; 9 cells not sent (no DashScope API key)\n" in r.stdout
    assert lines(r.stdout)[-1] == "FAIL: no cell executed: no DashScope API key (9 cells)"


# --------------------------------------------------------------------------- item 5: the dry run's last line

def test_a_dry_run_ends_in_pass_dry_run_and_validate_txt_keeps_its_bare_line(tmp_path):
    matrix(tmp_path)
    r = run(tmp_path)
    assert r.returncode == 0, r.stderr
    assert lines(r.stdout)[-1] == "PASS (dry run: nothing executed)"
    assert f"evidence: {tmp_path / 'out' / 'three'}/validate.txt" in r.stdout or "evidence: out/three" in r.stdout
    assert "estimated cost: 0.0433 CNY for 24 requests (nothing is sent without --execute)" in r.stdout
    assert validate(tmp_path)[-1] == "PASS"


# --------------------------------------------------------------------------- item 7: the headline metric

def test_the_results_table_shows_each_cells_headline_retrieval_metric(dashscope_server, tmp_path):
    matrix(tmp_path)
    r = run(tmp_path, "--execute", "--base-url", dashscope_server.base_url, "--model", "qwen3-vl-embedding")
    assert r.returncode in (0, 1), r.stdout + r.stderr
    summary = json.loads((tmp_path / "out/three/summary.json").read_text())
    results = table_after(r.stdout, "results (")
    rows = {line.split("│")[0].strip(): line for line in results if "│" in line}
    assert len(rows) == 3
    header = next(line for line in results if "┃" in line)
    assert "retrieval" in header
    for check in summary["checks"]:
        if check["name"] == "retrieval" and check.get("cell"):
            value = check["data"]["metrics"]["recall@1"]
            low, high = check["data"]["intervals"]["recall@1"]          # ± half the bootstrap interval
            sign = "≥" if value >= 0.5 else "<"
            assert f"recall@1 {value:.3f} ±{(high - low) / 2:.3f} {sign} min 0.5" in rows[check["cell"]], \
                rows[check["cell"]]


# --------------------------------------------------------------------------- item 8: the root cause first

def test_a_wrong_key_is_one_fail_per_cell_and_the_last_line_names_the_cause_and_host(dashscope_server, tmp_path):
    matrix(tmp_path)
    r = run(tmp_path, "--execute", "--base-url", dashscope_server.base_url, key="sk-wrong-0000000000000000")
    assert r.returncode == 4, r.stdout + r.stderr                 # a provider failure, as documented
    host = dashscope_server.base_url.split("/")[2]
    assert lines(r.stdout)[-1] == f"FAIL: {CELLS} cells could not execute: HTTP 401 InvalidApiKey at {host}"
    text = validate(tmp_path)
    assert text[-1] == "FAIL"
    failed = [line for line in text if line.startswith("FAIL ")]
    assert len(failed) == CELLS and all(line.startswith("FAIL execution [") for line in failed)
    checks = [line for line in text if re.match(r"\w+ (vectors|nearest:cat-caption|retrieval) \[", line)]
    assert len(checks) == 3 * CELLS
    assert all(line.startswith("skip ") and line.endswith(f"cell failed to execute: HTTP 401 InvalidApiKey at {host}")
               for line in checks), checks
    assert sum(line.startswith("skip dimensions [") for line in text) == CELLS
    assert "failed: HTTP 401 InvalidApiKey" in r.stdout           # the results table says why, per cell
    grouped = " ".join(r.stdout.split())
    assert f"FAIL execution failed in {CELLS} of {CELLS} cells (first [qwen3-vl-embedding-1024]: 1 of 1" in grouped
    assert "DashScope keys are per region" in grouped              # the key's hint, whole
    assert len(lines(r.stdout)) <= SCREEN, r.stdout
    # verify re-derives the skip lines word for word from the folder
    v = run_cli("verify", "out/three", cwd=tmp_path, env=cli_env(tmp_path / "home", tmp_path / "cache"))
    assert v.returncode == 0, v.stdout + v.stderr


def test_a_cell_some_of_whose_requests_failed_says_so_and_how_many(dashscope_server, tmp_path):
    matrix(tmp_path)
    dashscope_server.add_fault("400", times=1, match="clear blue sky")     # one request of one cell
    r = run(tmp_path, "--execute", "--base-url", dashscope_server.base_url, "--cell", "qwen2.5-vl-embedding-512")
    assert r.returncode == 4, r.stdout + r.stderr
    row = next(line for line in table_after(r.stdout, "results (") if "qwen2.5-vl-embedding-512" in line)
    assert "partly: 1 of 6 requests failed (HTTP 400 InvalidParameter)" in row
    assert "could not execute" not in r.stdout            # it has vectors: its checks ran on them


def test_an_unreachable_endpoint_is_named_by_its_host(tmp_path):
    matrix(tmp_path)
    with socket.socket() as s:                 # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    r = run(tmp_path, "--execute", "--base-url", f"http://127.0.0.1:{port}/api/v1", "--max-attempts", "1",
            "--cell", "qwen3-vl-embedding-1024", "--cell", "qwen3-vl-embedding-512")
    assert r.returncode == 4, r.stdout + r.stderr
    assert lines(r.stdout)[-1] == f"FAIL: 2 cells could not execute: ConnectionError at 127.0.0.1:{port}"
    execution = [line for line in validate(tmp_path) if line.startswith("FAIL execution")]
    assert execution and all(f"connection to 127.0.0.1:{port} failed" in line for line in execution)


# --------------------------------------------------------------------------- item 9: noise

def test_failing_checks_are_grouped_and_a_3x3_run_fits_one_screen(dashscope_server, tmp_path):
    matrix(tmp_path, norm_min=1.5)                 # the stand-in's vectors have norm 1: fails in every cell
    r = run(tmp_path, "--execute", "--base-url", dashscope_server.base_url)
    assert r.returncode == 1, r.stdout + r.stderr
    out = lines(r.stdout)
    # issue 27's recommendation (a table of the headline check's cells, its sentences) is on top of this run's own
    start = next((i for i, line in enumerate(out) if line.startswith("which cell: ")), len(out))
    end = next(i for i, line in enumerate(out) if line.startswith("FAIL "))
    assert len(out) - (end - start) <= SCREEN - 10 and len(out) <= SCREEN + 5, "\n".join(out)
    assert all(len(line) <= 120 for line in out)
    grouped = [line for line in out if line.startswith("FAIL vectors failed in 9 of 9 cells (first [")]
    assert len(grouped) == 1, r.stdout
    assert not any(line.startswith("FAIL vectors [") for line in out)        # not one line per cell
    assert out[-1].startswith("FAIL: ") and "vectors (9 of 9 cells)" in out[-1]
    # validate.txt keeps every line
    assert sum(line.startswith("FAIL vectors [") for line in validate(tmp_path)) == CELLS


def test_disputed_facts_are_counted_and_verbose_prints_them(tmp_path):
    matrix(tmp_path)
    quiet = run(tmp_path)
    assert "4 warnings (disputed-fact 4): in validate.txt; --verbose prints them" in quiet.stdout
    assert "ZH-NEW" not in quiet.stdout
    loud = run(tmp_path, "--verbose")
    assert loud.stdout.count("warn disputed-fact: ") == 4
    assert sum(line.startswith("warn disputed-fact: ") for line in validate(tmp_path)) == 4


def test_the_key_how_to_is_one_brief_line_unless_verbose(tmp_path):
    matrix(tmp_path)
    r = run(tmp_path, "--execute", key=None)
    assert "ALIBABA_CLOUD_PROFILE" not in r.stdout
    assert "not executed: no DashScope API key (--verbose for the fix): 9 cells (" in r.stdout
    r = run(tmp_path, "--execute", "--verbose", key=None)
    assert "ALIBABA_CLOUD_PROFILE" in r.stdout


# --------------------------------------------------------------------------- item 10: tables at 120 columns

def test_the_plan_table_at_120_columns_is_a_table_without_the_columns_the_cell_id_repeats(tmp_path):
    matrix(tmp_path)
    r = run(tmp_path)
    out = lines(r.stdout)
    assert not any(line.startswith("- cell: ") for line in out)       # not stacked into blocks
    assert all(len(line) <= 120 for line in out)
    table = table_after(r.stdout, "three: 6 inputs × 9 cells")
    assert len([line for line in table if "│" in line]) == CELLS and len(table) == CELLS + 2
    header = next(line for line in out if "┃" in line)
    assert "model" not in header and "est. cost" in header


def test_the_quickstart_plan_at_120_columns_is_one_short_table(tmp_path):
    for name in ("quickstart.yaml", "images", "data"):
        src = SPECS / name
        (shutil.copytree if src.is_dir() else shutil.copy)(src, tmp_path / name)
    r = run_cli("plan", "quickstart.yaml", cwd=tmp_path, env=cli_env(tmp_path / "home", **WIDE))
    assert r.returncode == 0, r.stderr
    out = lines(r.stdout)
    assert len(out) <= 9 and not any(line.startswith("- cell: ") for line in out), r.stdout
    assert "384 fixed" in r.stdout and "local--e5-small-384" in r.stdout


def test_formats_1_and_2_keep_their_fail_lines_for_a_cell_that_failed_to_execute(dashscope_server, tmp_path):
    """verify re-derives a folder of an earlier evidence format as that format wrote it: there a cell
    that got no vector had FAIL lines for its checks and its dimensions, never the skip lines of format 3."""
    from harness.checks.evaluate import evaluate_checks
    from harness.execute.results import CellOutcome, cell_lines
    from harness.spec.load import read_spec

    matrix(tmp_path)
    r = run(tmp_path, "--execute", "--base-url", dashscope_server.base_url, "--cell", "qwen3-vl-embedding-256",
            key="sk-wrong-0000000000000000")
    assert r.returncode == 4, r.stdout + r.stderr
    folder = tmp_path / "out" / "three"
    cells = json.loads((folder / "manifest.json").read_text())["cells"]
    checks = read_spec(tmp_path / "spec.yaml").data["checks"]
    now = evaluate_checks(checks, folder, cells, spec_dir=tmp_path)
    before = evaluate_checks(checks, folder, cells, spec_dir=tmp_path, skip_failed=False)
    assert [x.status for x in now] == ["skip"] * 3 and [x.status for x in before] == ["fail"] * 3
    assert before[0].detail.startswith("no vector for cat-caption")
    out = CellOutcome(id="c", model="m", provider="dashscope", required=False, executed=True, requests=1, failed=1,
                      failures=[{"file": "00001.json", "status": 401, "code": "InvalidApiKey"}])
    assert cell_lines(out)[1].line() == ("skip dimensions [c]: not measured: no vector came back (the cell failed "
                                         "to execute)")
    assert cell_lines(out, skip_unmeasured=False)[1].line() == "FAIL dimensions [c]: no vectors came back"
