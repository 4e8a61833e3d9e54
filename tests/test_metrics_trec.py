"""The retrieval metrics equal trec_eval's (through pytrec_eval, as BEIR and MTEB call it) on
generated runs with graded qrels and many tied scores, and the blocked top-k ranking orders ties
the way trec_eval does when it re-scores a run file (score, then document id descending)."""

from __future__ import annotations

import random

import numpy as np
import pytest

from harness.checks import metrics as M

pytrec_eval = pytest.importorskip("pytrec_eval")

KS = (1, 3, 5, 10, 20)
NAMES = M.metric_names(KS, ["map"], ("recall", "ndcg", "precision", "map", "mrr"))
TREC = {"recall": "recall_{k}", "ndcg": "ndcg_cut_{k}", "precision": "P_{k}", "map": "map_cut_{k}"}


def trec_name(name: str) -> str | None:
    kind, k = M.parse_metric(name)
    if k is None:
        return {"map": "map", "mrr": "recip_rank"}[kind]
    return TREC[kind].format(k=k) if kind in TREC else None      # mrr@k: recip_rank on the run cut at k


def measures() -> set[str]:
    return {"map", "recip_rank", *(f"{m}.{','.join(map(str, KS))}" for m in ("recall", "ndcg_cut", "P", "map_cut"))}


def generated(seed: int):
    rng = random.Random(seed)
    docs = [f"d{i:03d}" for i in range(rng.randint(5, 40))]
    qrels, run = {}, {}
    for q in range(12):
        judged = rng.sample(docs, rng.randint(1, min(8, len(docs))))
        grades = {d: rng.choice([0, 1, 1, 2, 3]) for d in judged}
        if not any(g > 0 for g in grades.values()):
            grades[judged[0]] = 1
        qrels[f"q{q}"] = grades
        # scores from a handful of values: most rankings hold ties, some span the cut-offs
        retrieved = rng.sample(docs, rng.randint(1, len(docs)))
        run[f"q{q}"] = {d: rng.choice([0.1, 0.25, 0.5, 0.5, 0.75, 0.9]) for d in retrieved}
    return qrels, run


def ours(qrels, run) -> dict[str, dict[str, float]]:
    out = {}
    for q, scores in run.items():
        ranked = sorted(sorted(scores, reverse=True), key=lambda d: -scores[d])   # trec_eval's order
        gains = np.array([qrels[q].get(d, 0) for d in ranked])
        out[q] = M.graded_scores(gains, np.array(list(qrels[q].values())), NAMES)
    return out


@pytest.mark.parametrize("seed", range(25))
def test_graded_metrics_equal_trec_eval_with_ties(seed):
    qrels, run = generated(seed)
    theirs = pytrec_eval.RelevanceEvaluator(qrels, measures()).evaluate(run)
    mine = ours(qrels, run)
    assert any(len(set(s.values())) < len(s) for s in run.values())      # ties are there
    for q in run:
        for name in NAMES:
            kind, k = M.parse_metric(name)
            if kind == "mrr" and k is not None:   # trec_eval has no cut MRR: its recip_rank on the run cut at k
                ranked = sorted(sorted(run[q], reverse=True), key=lambda d: -run[q][d])[:k]
                cut = pytrec_eval.RelevanceEvaluator({q: qrels[q]}, {"recip_rank"}).evaluate(
                    {q: {d: run[q][d] for d in ranked}})
                want = cut[q]["recip_rank"] if cut else 0.0
            else:
                want = theirs[q][trec_name(name)]
            assert mine[q][name] == pytest.approx(want, abs=1e-9), (q, name)


def test_top_k_orders_ties_as_trec_eval_rescoring_its_run():
    # Candidates given sorted by id descending; many exact duplicates, so scores tie exactly.
    rng = np.random.default_rng(7)
    base = rng.normal(size=(6, 8)).astype(np.float32)
    ids = sorted((f"doc{i:02d}" for i in range(30)), reverse=True)
    cands = base[rng.integers(0, 6, size=30)]
    queries = rng.normal(size=(9, 8)).astype(np.float32)
    qrels = {f"q{i}": {d: int(rng.integers(0, 3)) for d in rng.choice(ids, 6, replace=False)} for i in range(9)}
    qrels = {q: g if any(v > 0 for v in g.values()) else {**g, ids[0]: 2} for q, g in qrels.items()}
    for depth, block in ((30, 4), (10, 2), (7, 256)):   # full ranking, cut inside a run of ties, one block
        run, mine = {}, {}
        for (q, grades), top in zip(qrels.items(), M.top_k(queries, cands, depth, block=block)):
            ranked = [ids[c] for c in top.columns]
            assert len(ranked) == depth
            run[q] = {d: float(f"{float(v):.9g}") for d, v in zip(ranked, top.scores.tolist())}   # as the run file
            mine[q] = M.graded_scores(np.array([grades.get(d, 0) for d in ranked]), np.array(list(grades.values())),
                                      ["ndcg@5", "map", "mrr", "precision@5", "recall@5"])
        assert any(len(set(s.values())) < len(s) for s in run.values())
        theirs = pytrec_eval.RelevanceEvaluator(qrels,
                                                {"ndcg_cut.5", "map", "recip_rank", "P.5", "recall.5"}).evaluate(run)
        for q in qrels:
            got = mine[q]
            want = theirs[q]
            assert got["ndcg@5"] == pytest.approx(want["ndcg_cut_5"], abs=1e-9)
            assert got["map"] == pytest.approx(want["map"], abs=1e-9)
            assert got["mrr"] == pytest.approx(want["recip_rank"], abs=1e-9)
            assert got["precision@5"] == pytest.approx(want["P_5"], abs=1e-9)
            assert got["recall@5"] == pytest.approx(want["recall_5"], abs=1e-9)


def test_top_k_matches_a_full_sort_and_leaves_out_the_excluded():
    rng = np.random.default_rng(1)
    cands = rng.normal(size=(200, 16)).astype(np.float32)
    queries = rng.normal(size=(37, 16)).astype(np.float32)
    full = M.cosine_matrix(queries, cands)
    exclude = [i if i % 3 == 0 else None for i in range(37)]
    for i, top in enumerate(M.top_k(queries, cands, 25, exclude=exclude, block=8)):
        order = [j for j in np.argsort(-full[i], kind="stable") if j != exclude[i]][:25]
        assert top.columns.tolist() == order
        assert np.allclose(top.scores, full[i][order], atol=1e-5)
