"""Similarity and retrieval metrics, pure numpy, so a reader can check them by hand.

Retrieval metrics follow trec_eval (and so BEIR and MTEB, which call it through pytrec_eval):
graded relevance, nDCG's gain is the grade with a log2(rank + 1) discount and its ideal comes
from the qrels; recall, precision, MAP and MRR count grade > 0; MAP and recall divide by the
number of relevant documents in the qrels. Rankings are deterministic: by score, then ties in
the candidates' given order (a caller wanting trec_eval's order gives the candidates sorted by
id descending, which is how trec_eval breaks ties when it re-scores a run file).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Iterable, Iterator, Sequence

import numpy as np

METRIC_PATTERN = re.compile(r"^(mrr|map|(recall|ndcg|precision|map|mrr)@([1-9][0-9]*))$")
KIND_ORDER = ("recall", "ndcg", "precision", "map", "mrr")   # report order; bare `map`, `mrr` last
BLOCK = 256                      # queries scored per matrix product: memory is BLOCK x candidates


def normalize(matrix: np.ndarray) -> np.ndarray:
    """Rows scaled to unit L2 norm; a zero row stays zero (its cosine with anything is 0)."""
    m = np.asarray(matrix, dtype=np.float64)
    if m.ndim == 1:
        m = m[None, :]
    with np.errstate(invalid="ignore", over="ignore"):  # non-finite rows become NaN; callers fail them
        norms = np.linalg.norm(m, axis=1, keepdims=True)
        return np.divide(m, norms, out=np.zeros_like(m), where=norms > 0)


def cosine(a: Sequence[float] | np.ndarray, b: Sequence[float] | np.ndarray) -> float:
    """Cosine of two vectors; 0.0 when either is all zeros."""
    return float(cosine_matrix(np.asarray(a)[None, :], np.asarray(b)[None, :])[0, 0])


def cosine_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Cosine of every row of `a` with every row of `b`: shape (len(a), len(b))."""
    with np.errstate(invalid="ignore", over="ignore"):
        out = normalize(a) @ normalize(b).T
    return np.clip(out, -1.0, 1.0)


def rowwise_cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Cosine of a[i] with b[i] for each i (same shape required)."""
    na, nb = normalize(a), normalize(b)
    with np.errstate(invalid="ignore", over="ignore"):
        return np.clip(np.sum(na * nb, axis=1), -1.0, 1.0)


def rank(scores: Sequence[float] | np.ndarray) -> list[int]:
    """Candidate positions from best to worst score; ties keep the given order."""
    s = np.asarray(scores, dtype=np.float64)
    return [int(i) for i in np.argsort(-s, kind="stable")]


# --------------------------------------------------------------------------- metrics by name

def parse_metric(name: str) -> tuple[str, int | None]:
    """`ndcg@10` → ("ndcg", 10); `mrr` → ("mrr", None). ValueError for anything else."""
    m = METRIC_PATTERN.match(name)
    if not m:
        raise ValueError(f"unknown metric {name!r} (use recall@K, ndcg@K, precision@K, map@K, mrr@K, map or mrr)")
    return (m.group(2), int(m.group(3))) if m.group(2) else (name, None)


def metric_names(ks: Iterable[int], extra: Iterable[str] = (), kinds: Iterable[str] = ("recall", "ndcg")) -> list[str]:
    """The metrics a retrieval check reports: each of `kinds`@k for each k, mrr, plus any
    named in thresholds; in a stable order (recall, ndcg, precision, map, mrr by k, then map, mrr)."""
    names = {f"{kind}@{k}" for k in ks for kind in kinds} | {"mrr"} | set(extra)

    def key(n: str) -> tuple:
        kind, k = parse_metric(n)
        return (1, n != "map", 0) if k is None else (0, KIND_ORDER.index(kind), k)

    return sorted(names, key=key)


def mteb_name(name: str) -> str:
    """A metric's name in MTEB's results: `ndcg@10` → `ndcg_at_10`."""
    kind, k = parse_metric(name)
    return kind if k is None else f"{kind}_at_{k}"


def graded_scores(gains: np.ndarray, ideal: np.ndarray, names: Iterable[str]) -> dict[str, float]:
    """Every metric in `names` for one query, as trec_eval computes it.

    `gains`: the grade of each retrieved document in rank order (0 for unjudged);
    `ideal`: the positive grades in the qrels, any order. A query without relevant documents
    scores 0 everywhere (as trec_eval scores it; the checks count it, as BEIR and MTEB do)."""
    gains = np.asarray(gains, dtype=np.float64)
    ideal = np.sort(np.asarray(ideal, dtype=np.float64)[np.asarray(ideal) > 0])[::-1]
    n_rel = len(ideal)
    rel = gains > 0
    found = np.cumsum(rel)
    ranks = np.arange(1, len(gains) + 1)
    discount = 1.0 / np.log2(np.arange(2, max(len(gains), len(ideal)) + 2))
    first = int(np.argmax(rel)) + 1 if rel.any() else None
    out: dict[str, float] = {}
    for name in names:
        kind, k = parse_metric(name)
        cut = len(gains) if k is None else min(k, len(gains))
        if n_rel == 0:
            out[name] = 0.0
        elif kind == "recall":
            out[name] = float(found[cut - 1]) / n_rel if cut else 0.0
        elif kind == "precision":
            out[name] = float(found[cut - 1]) / k if cut else 0.0
        elif kind == "ndcg":
            dcg = float(np.sum(np.where(gains[:cut] > 0, gains[:cut], 0.0) * discount[:cut]))
            best = float(np.sum(ideal[:k] * discount[:min(k, n_rel)]))
            out[name] = dcg / best
        elif kind == "map":
            hits = rel[:cut]
            out[name] = float(np.sum(found[:cut][hits] / ranks[:cut][hits])) / n_rel
        else:   # mrr
            out[name] = 1.0 / first if first is not None and first <= cut else 0.0
    return out


# The functions below are the binary-relevance special case (grade 1 for every relevant item),
# kept for readers and callers that hold plain lists.

def recall_at_k(ranked: Sequence[str], relevant: Iterable[str], k: int) -> float:
    """Fraction of the relevant items found in the first k."""
    return metric_value(f"recall@{k}", ranked, relevant)


def reciprocal_rank(ranked: Sequence[str], relevant: Iterable[str]) -> float:
    """1 / (1-based rank of the first relevant item); 0 when none is ranked."""
    return metric_value("mrr", ranked, relevant)


def ndcg_at_k(ranked: Sequence[str], relevant: Iterable[str], k: int) -> float:
    """Binary-relevance nDCG@k: DCG = sum rel_i / log2(i + 1), over the ideal DCG."""
    return metric_value(f"ndcg@{k}", ranked, relevant)


def metric_value(name: str, ranked: Sequence[str], relevant: Iterable[str] | dict[str, int]) -> float:
    """One metric by its name in the spec for one ranking; `relevant` is a set of ids (grade 1)
    or {id: grade}."""
    parse_metric(name)
    grades = relevant if isinstance(relevant, dict) else {r: 1 for r in relevant}
    return graded_scores(np.array([grades.get(i, 0) for i in ranked]), np.array(list(grades.values())), [name])[name]


# --------------------------------------------------------------------------- ranking at scale

def unit_rows(matrix: np.ndarray) -> np.ndarray:
    """Rows scaled to unit L2 norm as float32 (zero rows stay zero), a block at a time so a large
    corpus is never copied to float64 whole."""
    m = np.asarray(matrix)
    out = np.empty(m.shape, dtype=np.float32)
    for start in range(0, len(m), 1024):
        out[start:start + 1024] = normalize(m[start:start + 1024]).astype(np.float32)
    return out


@dataclass
class Ranked:
    """One query's top of the ranking: candidate positions and their cosines, best first."""

    columns: np.ndarray           # int positions into the candidate list
    scores: np.ndarray            # float32 cosines, non-increasing
    row: np.ndarray | None = None   # the query's cosine with every candidate


def top_k(queries: np.ndarray, candidates: np.ndarray, depth: int,
          exclude: Sequence[int | None] | None = None, block: int = BLOCK) -> Iterator[Ranked]:
    """The `depth` best candidates of every query by cosine, in query order; ties go to the
    lower candidate position. Scores a block of queries at a time (block x candidates floats),
    with argpartition for the top, so memory stays flat for any number of queries.
    `exclude[i]`: a candidate position left out of query i's ranking (the query itself)."""
    cands = unit_rows(candidates)
    n = len(cands)
    depth = max(0, min(int(depth), n))
    for start in range(0, len(queries), block):
        q = unit_rows(queries[start:start + block])
        s = q @ cands.T
        np.clip(s, -1.0, 1.0, out=s)
        s[~np.isfinite(s)] = -1.0              # a non-finite vector ranks last (its vectors check fails)
        if exclude is not None:
            for r in range(len(q)):
                col = exclude[start + r]
                if col is not None:
                    s[r, col] = -np.inf
        for r in range(len(q)):
            top = _top_of_row(s[r], depth)
            top.row = s[r]
            yield top


def _top_of_row(row: np.ndarray, depth: int) -> Ranked:
    n = len(row)
    if depth == 0:
        return Ranked(np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32))
    if depth < n:
        part = np.argpartition(-row, depth - 1)[:depth]
        threshold = row[part].min()
        if np.count_nonzero(row >= threshold) > depth:
            part = np.flatnonzero(row >= threshold)    # ties at the cut: all of them, ordered below
    else:
        part = np.arange(n)
    order = np.lexsort((part, -row[part]))[:depth]     # score descending, then position ascending
    cols = part[order]
    vals = row[cols]
    keep = np.isfinite(vals)                           # an excluded candidate is not ranked
    return Ranked(cols[keep], vals[keep])


def retrieval_scores(
    query_vectors: np.ndarray,
    candidate_vectors: np.ndarray,
    candidate_ids: Sequence[str],
    relevant: Sequence[Iterable[str] | dict[str, int]],
    metrics: Iterable[str],
    exclude: Sequence[str | None] | None = None,
) -> tuple[dict[str, float], list[dict[str, float]]]:
    """Mean of each metric over the queries, and the per-query values, over the full ranking.

    `relevant[i]` is query i's relevant ids (grade 1) or {id: grade}; `exclude[i]` is a candidate
    id left out of query i's ranking (the query itself when it is also a candidate).
    """
    metrics = list(metrics)
    position = {c: j for j, c in enumerate(candidate_ids)}
    cols = [position.get(e) if e is not None else None for e in exclude] if exclude is not None else None
    per_query: list[dict[str, float]] = []
    for rel, top in zip(relevant, top_k(query_vectors, candidate_vectors, len(candidate_ids), cols)):
        grades = rel if isinstance(rel, dict) else {r: 1 for r in rel}
        gains = np.array([grades.get(candidate_ids[c], 0) for c in top.columns])
        per_query.append(graded_scores(gains, np.array(list(grades.values())), metrics))
    means = {m: float(np.mean([q[m] for q in per_query])) if per_query else 0.0 for m in metrics}
    return means, per_query
