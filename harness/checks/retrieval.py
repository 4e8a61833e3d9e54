"""The `retrieval` check: each query ranks the candidates by cosine and is scored against its relevant inputs
(from the spec, or a qrels file graded as trec_eval does); over qrels it also gives the cell's TREC run file
and its scores in MTEB's result layout."""

from __future__ import annotations

import math
import re
from typing import Any

import numpy as np

from harness.checks import metrics as M
from harness.checks import stats
from harness.checks.context import OUTPUTS, SKIP, VACUOUS, Ctx, Outcome, json_number, listed
from harness.checks.retrieval_files import retrieval_files
from harness.inputs import datasets
from harness.inputs.datasets.beir import ZERO_GRADES_FROM
from harness.inputs.datasets.qrels import relevant
from harness.words import counted

DEFAULT_K = (1, 5, 10)
QRELS_UNAVAILABLE = "qrels_unavailable"   # key in a retrieval check's data: its qrels file could not be read
RANKS_TOP = 10         # top candidates shown per query in a retrieval check's data
GRADED_SHOWN = ("ndcg@10", "recall@100", "map@10", "mrr@10")   # a qrels check's line shows these (and thresholds)
NOT_CANDIDATES = "not_candidates"   # key in a qrels check's data: per query, relevant ids it was not ranked against


def check_retrieval(body: dict, ctx: Ctx) -> Outcome:
    graded = False
    try:
        judged = datasets.judgements(body, ctx.files)
        graded = judged.source is not None   # over qrels: the data set's digest, MTEB's dataset_revision
        revision = judged.revision(ctx.files) if graded and ctx.format >= ZERO_GRADES_FROM else None
    except datasets.JudgementsError as exc:
        return 1, 1, str(exc), {QRELS_UNAVAILABLE: True}
    if graded:   # every judged query this cell takes, as BEIR and MTEB count them (a query judged only
        # grade 0 scores 0; formats 1 and 2 left it out); a sample leaves queries out
        queries = {q: docs for q, docs in judged.qrels.items()
                   if ctx.takes(q) and (ctx.format >= ZERO_GRADES_FROM or relevant(docs))}
    else:
        queries = {q: {r: g for r, g in rel.items() if ctx.takes(r)} for q, rel in judged.qrels.items()
                   if ctx.takes(q)}
        queries = {q: rel for q, rel in queries.items() if rel}
    if not queries:
        return 0, 0, "this cell takes none of the queries with their relevant inputs", {SKIP: True}
    thresholds: dict[str, float] = body.get("min") or {}
    lower: dict[str, float] = body.get("min_lower") or {}    # thresholds on an interval's low end
    ks = body.get("k") or (datasets.MTEB_K if graded else DEFAULT_K)
    names = (M.metric_names(ks, [*thresholds, *lower, "ndcg@10", "map"], datasets.QRELS_KINDS) if graded
             else M.metric_names(ks, [*thresholds, *lower]))
    if body.get("among"):
        pool = body["among"]
    elif judged.doc_prefix:
        pool = [i for i in ctx.vectors.ids if i.startswith(judged.doc_prefix)]
    else:
        pool = [i for i in ctx.vectors.ids if i not in judged.qrels]
    among = [c for c in pool if ctx.takes(c)]
    if graded:   # trec_eval breaks score ties by the run file's document id, descending: rank the same way
        among.sort(key=lambda c: _run_id(judged.to_qrels_id(c)), reverse=True)
    missing = ctx.missing([*queries, *among])
    data: dict[str, Any] = {"model": ctx.cell.get("model"), "dimension": ctx.cell.get("dimension"),
                            "queries": len(queries), "candidates": len(among), "thresholds": thresholds,
                            "threshold_order": list(thresholds)}   # JSON files sort keys; the spec's order
    if lower:
        data["min_lower"] = lower
    if missing:
        data["metrics"] = {}
        return len(thresholds) or 1, len(thresholds) or 1, f"no vector for {listed(missing)}", data
    qids = list(queries)
    # over qrels the ranking kept (and the run file) reaches the largest k asked for, thresholds included
    depth = max(k for k in (M.parse_metric(m)[1] for m in names) if k) if graded else len(among)
    position = {c: j for j, c in enumerate(among)}
    shown_top = min(max(ks), RANKS_TOP)
    per: list[dict[str, float]] = []
    ranks: dict[str, dict] = {}
    run_lines: list[str] = []
    # a query is never its own candidate, nor (over qrels) the document with its own id
    # (`ignore_identical_ids: false`: the twin stays a candidate, as MTEB's default for a custom task)
    identical = body.get("ignore_identical_ids", True) is not False
    exclude = [position.get(q) if q in position else position.get(judged.twin(q)) if identical else None
               for q in qids]
    tops = M.top_k(ctx.vectors.rows(qids), ctx.vectors.rows(among), depth, exclude=exclude)
    for q, top in zip(qids, tops):
        grades = queries[q]
        ranked = [among[c] for c in top.columns]
        per.append(M.graded_scores(np.array([grades.get(i, 0) for i in ranked]), np.array(list(grades.values())),
                                   names))
        rel = [d for d, g in grades.items() if g > 0]
        at = dict(zip(map(int, top.columns), range(1, len(ranked) + 1)))
        ranks[q] = {"relevant": [{"id": d, "grade": grades[d], "rank": at.get(position[d]) if d in position else None,
                                  "cosine": json_number(top.row[position[d]]) if d in position
                                  else _outside(q, d, ctx)} for d in rel],
                    "top": [{"id": i, "cosine": json_number(v)}
                            for i, v in zip(ranked[:shown_top], top.scores[:shown_top].tolist())]}
        if graded:
            qid = _run_id(judged.to_qrels_id(q))
            run_lines.extend(f"{qid} Q0 {_run_id(judged.to_qrels_id(i))} {n} {float(v):.9g} {ctx.cell['id']}"
                             for n, (i, v) in enumerate(zip(ranked, top.scores.tolist()), start=1))
    means = {m: float(np.mean([p[m] for p in per])) for m in names}
    data["metrics"] = {m: json_number(v) for m, v in means.items()}
    data["per_query"] = {q: {m: json_number(v) for m, v in p.items()} for q, p in zip(qids, per)}
    data["ranks"] = ranks
    # how sure each mean is: a percentile bootstrap over the queries, from the per-query values as recorded
    confidence = float(body.get("confidence") or stats.CONFIDENCE)
    # (the queries in the order of their ids, as summary.json lists them, so anyone re-derives the bounds)
    recorded = [data["per_query"][q] for q in sorted(data["per_query"])]
    iv = stats.intervals({m: [p[m] for p in recorded] for m in names}, confidence=confidence)
    data.update({"intervals": iv, "confidence": confidence, "resamples": stats.RESAMPLES, "seed": stats.SEED,
                 "headline": next(iter([*thresholds, *lower]), "ndcg@10" if "ndcg@10" in names else names[0])})
    if graded:   # how deep each ranking was kept, and the relevant inputs a query was not ranked against
        data["depth"] = depth
        data[NOT_CANDIDATES] = {q: out for q, e in zip(qids, exclude)
                                if (out := [d for d, g in queries[q].items() if g > 0
                                            and (d not in position or position[d] == e)])}
    below = {m: t for m, t in thresholds.items() if means[m] < t}
    below_lower = {m: t for m, t in lower.items() if iv[m][0] < t}
    # image-text sets read as Flickr30k/COCO report them: recall@1/5/10
    highlights = [f"recall@{k}" for k in ks] + ["mrr"] if body.get("imagetext") else GRADED_SHOWN
    shown_metrics = names if not graded else [m for m in names if m in thresholds or m in lower or m in highlights]
    shown = ", ".join(_metric_text(m, means[m], iv[m], thresholds, lower) for m in shown_metrics)
    detail = (f"{counted(len(qids), 'query')} over {counted(len(among), 'candidate')}: {shown} "
              f"({confidence * 100:g}% intervals)")
    if below or below_lower:
        detail += _worst_queries(data, next(m for m in names if m in below or m in below_lower))
    vacuous = _vacuous(thresholds, max(len(among) - (e is not None) for e in exclude), lower)
    if vacuous:
        data[VACUOUS] = vacuous
    if graded:
        data.update({"qrels": judged.source, **judged.extra})
        data[OUTPUTS] = retrieval_files(judged, ctx, means, queries, len(among), depth, run_lines,
                                        lambda i: _run_id(judged.to_qrels_id(i)), revision, identical,
                                        {k: data[k] for k in ("intervals", "confidence", "resamples", "seed")})
    return max(len(thresholds) + len(lower), 1), len(below) + len(below_lower), detail, data


def _metric_text(m: str, mean: float, bounds: list[float], least: dict[str, float], low: dict[str, float]) -> str:
    """`ndcg@10 0.921 [0.850, 0.970] ≥ 0.5 and low end ≥ 0.8`: the mean, its interval and its thresholds
    (`min` on the mean, `min_lower` on the interval's low end)."""
    text = f"{m} {mean:.3f} [{bounds[0]:.3f}, {bounds[1]:.3f}]"
    if m in least:
        text += f" {'<' if mean < least[m] else '≥'} {least[m]:g}"
    if m in low:
        text += f"{' and' if m in least else ''} low end {'<' if bounds[0] < low[m] else '≥'} {low[m]:g}"
    return text


# Metrics whose value at k, once k reaches every candidate, no ranking changes: recall@k is the share of
# the relevant inputs among the candidates, precision@k that count over k (nDCG, MAP and MRR weigh ranks).
RANK_FREE = ("recall", "precision")


def _vacuous(thresholds: dict[str, float], candidates: int, lower: dict[str, float] | None = None) -> str | None:
    """Why the check's thresholds hold for any vectors, when every one does: none is set; a minimum of
    0 or less (no metric is below 0); recall@k or precision@k with k at least the most candidates a
    query is ranked against (`min_lower`, on an interval's low end, alike). Metrics reported without a
    threshold are not judged."""
    if not thresholds and not lower:
        return "no threshold (`min`): it reports metrics and asserts nothing"
    why = []
    for metric, least in [*thresholds.items(), *(lower or {}).items()]:
        kind, k = M.parse_metric(metric)
        if least <= 0:
            why.append(f"{metric} ≥ {least:g} holds for any ranking")
        elif kind in RANK_FREE and k is not None and k >= candidates:
            why.append(f"{metric} over {candidates} candidate{'s' if candidates != 1 else ''} is the same "
                       "for any ranking")
        else:
            return None
    return "; ".join(why)


def _outside(query: str, relevant: str, ctx: Ctx) -> float:
    """The cosine of a relevant input that is not among the candidates: how far it was."""
    return M.cosine(ctx.vectors.rows([query])[0], ctx.vectors.rows([relevant])[0])


def worst_queries(ranks: dict[str, dict], per_query: dict[str, dict], metric: str) -> list[str]:
    """The queries below 1 on `metric`, worst first: lowest value, then the one whose best
    relevant input ranked lowest (absent counts as last), then by id (summary.json sorts its keys).
    A query with no relevant input (judged only grade 0: it scores 0 whatever the ranking) is none."""
    def key(q: str) -> tuple:
        found = [r["rank"] for r in ranks[q]["relevant"] if r["rank"] is not None]
        return per_query[q][metric], -(min(found) if found else math.inf), q

    return sorted((q for q in ranks if per_query[q][metric] < 1 and ranks[q]["relevant"]), key=key)


def placement(r: dict, query: str, data: dict) -> str:
    """Where relevant input `r` of `query` landed, worded alike in validate.txt, the terminal, report.md and
    report.html: `at rank 3 (cosine 0.812)`; `below rank 10 (cosine 0.009)` for a candidate ranked past
    the depth a qrels check keeps (`depth`); `not a candidate (cosine 0.104)` for an input the query was
    not ranked against (left out of the candidates, or the query's own twin)."""
    cosine = r.get("cosine")
    how = f" (cosine {cosine:.3f})" if isinstance(cosine, (int, float)) and not isinstance(cosine, bool) else ""
    if r.get("rank") is not None:
        return f"at rank {r['rank']}{how}"
    outside = data.get(NOT_CANDIDATES)
    if data.get("depth") is not None and isinstance(outside, dict) and r.get("id") not in (outside.get(query) or ()):
        return f"below rank {data['depth']}{how}"
    return f"not a candidate{how}"


def _worst_queries(data: dict, metric: str, limit: int = 3) -> str:
    """`; worst by recall@1: q3: relevant cat-1 at rank 7 (cosine 0.612), ...`: the queries that scored lowest on
    the first metric below its threshold, so a CI log shows what failed."""
    ranks = data["ranks"]
    worst = worst_queries(ranks, data["per_query"], metric)
    if not worst:
        return ""

    shown = [f"{q}: relevant " + ", ".join(f"{r['id']} {placement(r, q, data)}" for r in ranks[q]["relevant"][:3])
             + (" …" if len(ranks[q]["relevant"]) > 3 else "") for q in worst]
    return f"; worst by {metric}: " + listed(shown, limit)


def _run_id(qrels_id: str) -> str:
    """An id as a TREC run file can hold it: the file is whitespace separated, so whitespace in an
    id (a title used as an id) is written @HH, as in input ids."""
    return re.sub(r"\s", lambda m: "".join(f"@{b:02X}" for b in m.group().encode("utf-8")), qrels_id)

