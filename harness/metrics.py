"""Similarity and retrieval metrics, pure numpy, so a reader can check them by hand.

Rankings are deterministic: ties keep the candidates' given order (a stable sort), so the
same vectors always give the same numbers in every report.
"""

from __future__ import annotations

import math
import re
from typing import Iterable, Sequence

import numpy as np

METRIC_PATTERN = re.compile(r"^(mrr|recall@([1-9][0-9]*)|ndcg@([1-9][0-9]*))$")


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


def recall_at_k(ranked: Sequence[str], relevant: Iterable[str], k: int) -> float:
    """Fraction of the relevant items found in the first k."""
    rel = set(relevant)
    if not rel:
        return 0.0
    return len(rel.intersection(ranked[:k])) / len(rel)


def reciprocal_rank(ranked: Sequence[str], relevant: Iterable[str]) -> float:
    """1 / (1-based rank of the first relevant item); 0 when none is ranked."""
    rel = set(relevant)
    for i, item in enumerate(ranked, start=1):
        if item in rel:
            return 1.0 / i
    return 0.0


def ndcg_at_k(ranked: Sequence[str], relevant: Iterable[str], k: int) -> float:
    """Binary-relevance nDCG@k: DCG = sum rel_i / log2(i + 1), over the ideal DCG."""
    rel = set(relevant)
    if not rel:
        return 0.0
    dcg = sum(1.0 / math.log2(i + 1) for i, item in enumerate(ranked[:k], start=1) if item in rel)
    ideal = sum(1.0 / math.log2(i + 1) for i in range(1, min(len(rel), k) + 1))
    return dcg / ideal


def metric_value(name: str, ranked: Sequence[str], relevant: Iterable[str]) -> float:
    """One metric by its name in the spec: `mrr`, `recall@K` or `ndcg@K`."""
    m = METRIC_PATTERN.match(name)
    if not m:
        raise ValueError(f"unknown metric {name!r} (use mrr, recall@K or ndcg@K)")
    relevant = list(relevant)
    if name == "mrr":
        return reciprocal_rank(ranked, relevant)
    if m.group(2):
        return recall_at_k(ranked, relevant, int(m.group(2)))
    return ndcg_at_k(ranked, relevant, int(m.group(3)))


def metric_names(ks: Iterable[int], extra: Iterable[str] = ()) -> list[str]:
    """The metrics a retrieval check reports: recall@k and ndcg@k for each k, mrr, plus any
    named in thresholds; in a stable order (recall, ndcg by k, then mrr)."""
    names = {f"recall@{k}" for k in ks} | {f"ndcg@{k}" for k in ks} | {"mrr"} | set(extra)

    def key(n: str) -> tuple:
        if n == "mrr":
            return (2, 0)
        kind, _, k = n.partition("@")
        return (0 if kind == "recall" else 1, int(k))

    return sorted(names, key=key)


def rankings(
    query_vectors: np.ndarray,
    candidate_vectors: np.ndarray,
    candidate_ids: Sequence[str],
    exclude: Sequence[str | None] | None = None,
) -> list[tuple[list[str], np.ndarray]]:
    """Each query's candidate ids best first, with their cosines in the same order.

    `exclude[i]` is a candidate id left out of query i's ranking (the query itself when it
    is also a candidate).
    """
    sims = cosine_matrix(query_vectors, candidate_vectors)
    ids = np.asarray(candidate_ids, dtype=object)
    out = []
    for i, order in enumerate(np.argsort(-sims, axis=1, kind="stable")):
        if exclude is not None and exclude[i] is not None:
            order = order[ids[order] != exclude[i]]
        out.append((ids[order].tolist(), sims[i, order]))
    return out


def scores(ranked: Sequence[Sequence[str]], relevant: Sequence[Iterable[str]],
           metrics: Iterable[str]) -> tuple[dict[str, float], list[dict[str, float]]]:
    """Mean of each metric over the queries, and the per-query values, from the rankings."""
    metrics = list(metrics)
    per_query = [{m: metric_value(m, order, list(rel)) for m in metrics} for order, rel in zip(ranked, relevant)]
    means = {m: float(np.mean([q[m] for q in per_query])) if per_query else 0.0 for m in metrics}
    return means, per_query


def retrieval_scores(
    query_vectors: np.ndarray,
    candidate_vectors: np.ndarray,
    candidate_ids: Sequence[str],
    relevant: Sequence[Iterable[str]],
    metrics: Iterable[str],
    exclude: Sequence[str | None] | None = None,
) -> tuple[dict[str, float], list[dict[str, float]]]:
    """Mean of each metric over the queries, and the per-query values (see `rankings`)."""
    ranked = rankings(query_vectors, candidate_vectors, candidate_ids, exclude)
    return scores([order for order, _ in ranked], relevant, metrics)
