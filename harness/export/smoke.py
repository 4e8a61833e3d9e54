"""The smoke search that proves a loaded collection answers: each query input should find its own
vector at rank 1 among its spec's rows, so vectors stored under the wrong ids or overwritten behind
the harness's back show up as misses.
"""

from __future__ import annotations

from typing import Any

from harness.errors import Problem, UsageError
from harness.export.milvus import RunIdentity
from harness.export.vectors import ExportCell, RunFolder
from harness.folder.verdict import CheckResult
from harness.words import counted

MAX_DEFAULT_QUERIES = 20          # default queries: the run's text inputs, capped
SELF_TIE = 1e-5                   # a duplicate input may tie its twin at rank 1
SMOKE_PASS = 0.9                  # share of queries that must find themselves first (ANN may miss one)
LITE_EF = 128                     # HNSW ef for Milvus Lite's smoke search (its default 64 missed ~2%)
MIN_SELF_SCORE = 0.999            # cosine of a vector with its own stored copy


def pick_queries(run: RunFolder, loaded: list[ExportCell], queries: list[str] | None) -> list[str]:
    """Explicit queries must be inputs of the run; the default is its text inputs, capped."""
    order = run.input_order or list(dict.fromkeys(i for cv in loaded for i in cv.ids))
    if queries:
        known = set(order)
        unknown = [q for q in queries if q not in known]
        if unknown:
            raise UsageError(Problem(f"query {unknown[0]!r} is not an input of this run",
                                       hint="queries name input ids from the spec (see inputs.jsonl)"))
        return list(dict.fromkeys(queries))
    modality = run.modality or {i: m for cv in loaded for i, m in zip(cv.ids, cv.modalities)}
    texts = [i for i in order if modality.get(i) == "text"]
    return (texts or order)[:MAX_DEFAULT_QUERIES]


def search(client, name: str, cv: ExportCell, queries: list[str], top_k: int,
           lite: bool, me: RunIdentity | None = None) -> list[dict[str, Any]]:
    """Search each query input's own vector among this spec's rows; it should come back first
    (its twin may tie). Other specs' rows may reuse the input ids, so they are left out.

    On Milvus Lite the HNSW `ef` is raised (random 1024-d vectors: 98% self-recall at its default
    64, 100% at 128); a server's AUTOINDEX takes other knobs, so it keeps its own defaults."""
    if not queries:
        return []
    row = {i: n for n, i in enumerate(cv.ids)}
    data = [cv.vectors[row[q]].tolist() for q in queries]
    params: dict[str, Any] = {"metric_type": "COSINE"}
    if lite:
        params["params"] = {"ef": max(LITE_EF, top_k)}
    hits = client.search(name, data=data, limit=top_k, output_fields=["input_id"], filter=me.rows if me else "",
                         search_params=params, consistency_level="Strong")
    out = []
    for q, found in zip(queries, hits):
        ranked = [{"id": h["entity"]["input_id"], "score": round(float(h["distance"]), 6)} for h in found]
        rank = next((n for n, h in enumerate(ranked, 1) if h["id"] == q), None)
        self_score = ranked[rank - 1]["score"] if rank else None
        top = ranked[0]["score"] if ranked else None
        tied_first = rank is not None and top is not None and self_score >= top - SELF_TIE
        ok = tied_first and self_score >= MIN_SELF_SCORE
        out.append({"query": q, "rank": rank, "self_score": self_score, "ok": bool(ok), "hits": ranked})
    return out


def search_result(cell: str, searched: list[dict[str, Any]], picked: list[str], top_k: int) -> CheckResult:
    """The `export:search` check of one cell: enough queries found themselves first."""
    good = sum(1 for s in searched if s["ok"])
    misses = [s["query"] for s in searched if not s["ok"]]
    absent = len(picked) - len(searched)
    return CheckResult(
        name="export:search", cell=cell, kind="export",
        passed=bool(searched) and good >= SMOKE_PASS * len(searched),
        detail=(f"{good}/{counted(len(searched), 'query')} find themselves at rank 1 of top-{top_k}"
                + (f"; missed: {', '.join(misses[:5])}" if misses else "")
                + (" (an approximate index may miss a few; at least "
                   f"{SMOKE_PASS:.0%} must be found)" if misses else "")
                + (f"; {counted(absent, 'query')} {'has' if absent == 1 else 'have'} no vector in this cell"
                   if absent else "")),
        data={"queries": len(searched), "found": good, "top_k": top_k},
    )
