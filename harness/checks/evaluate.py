"""The spec's `checks:` evaluated over an output folder: one `CheckResult` per check per cell.

A check reads only what the folder holds (vectors/<cell>.npy rows in input order, their ids,
inputs.jsonl), through `harness.folder.RunReader`, so a run can be re-checked later without a network. Each check counts
trials (inputs, pairs or queries) and failures; its threshold is a pass rate or a failure
count, never a silent "nothing to assert": a check that matches no cell fails.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np

from harness.inputs import datasets

from harness.checks import metrics as M
from harness.inputs.datasets.qrels import relevant
from harness.evidence import canonical_json
from harness.folder import CellExecution, CellVectors, FolderError, RunReader
from harness.folder import layout
from harness.folder.layout import REPEAT_DIR
from harness.execute.results import brief_reason
from harness.folder.verdict import CheckResult
# the static rules live apart so that planning does not import numpy; named here as before
from harness.spec.checkrefs import KINDS, Locate, _where, check_kind, validate_check_refs  # noqa: F401

DEFAULT_K = (1, 5, 10)
DEFAULT_MIN_COSINE = 0.99

Write = Callable[[str, bytes], None]


# --------------------------------------------------------------------------- naming and gating

def default_name(kind: str, body: dict) -> str:
    if body.get("name"):
        return str(body["name"])
    if kind == "nearest":
        return f"nearest:{body['query']}" if "query" in body else f"nearest:{len(body.get('pairs', {}))}-pairs"
    if kind == "similarity":
        return f"similarity:{body['a']}~{body['b']}" if "a" in body else f"similarity:{len(body.get('pairs', []))}-pairs"
    return kind


def check_names(checks: list[dict]) -> list[str]:
    """A unique name per check, in spec order (a repeated name gets `#2`, `#3`...)."""
    seen: dict[str, int] = {}
    out = []
    for check in checks:
        kind = check_kind(check)
        name = default_name(kind, check[kind] or {})
        seen[name] = seen.get(name, 0) + 1
        out.append(name if seen[name] == 1 else f"{name}#{seen[name]}")
    return out


def gate(trials: int, failures: int, body: dict) -> tuple[bool, str]:
    """Apply the check's threshold; returns (passed, the rule in words)."""
    if trials == 0:
        return False, "no trials"
    if body.get("pass_rate") is not None:
        rate = (trials - failures) / trials
        need = float(body["pass_rate"])
        return rate >= need, f"pass rate {rate:.2f} {'≥' if rate >= need else '<'} {need:g}"
    allowed = int(body.get("max_failures") or 0)
    if allowed == 0:
        return failures == 0, f"{trials - failures}/{trials} passed"
    return failures <= allowed, f"{failures} failures {'≤' if failures <= allowed else '>'} max {allowed}"


def _f(x: float) -> float:
    """A number safe for canonical JSON (no NaN/Infinity), rounded for stable reports."""
    return round(float(x), 6) if math.isfinite(x) else 0.0


def _list(items: list[str], limit: int = 5) -> str:
    shown = ", ".join(items[:limit])
    return shown + (f" and {len(items) - limit} more" if len(items) > limit else "")


# --------------------------------------------------------------------------- the check kinds

class Ctx:
    """What every check in one cell can read. `input_ids` are the inputs planned for this
    cell: an input the cell never takes (an image for a text-only model) is left out of its
    trials, while a planned input without a vector is a failure."""

    def __init__(self, folder: Path, cell: dict, vectors: CellVectors, input_ids: list[str], spec_dir: Path,
                 name: str = ""):
        self.folder, self.cell, self.vectors, self.input_ids, self.spec_dir = folder, cell, vectors, input_ids, spec_dir
        self.name = name
        self.planned = set(input_ids) if input_ids else set(vectors.ids)

    def missing(self, ids: Iterable[str]) -> list[str]:
        return [i for i in ids if i not in self.vectors.index]

    def takes(self, *ids: str) -> bool:
        return all(i in self.planned for i in ids)


SKIP = "skip"  # key in an evaluator's data: every trial was about inputs this cell does not take
OUTPUTS = "_outputs"   # key in an evaluator's data: files it gives the run folder ({"run"|"results": bytes})
QRELS_UNAVAILABLE = "qrels_unavailable"   # key in a retrieval check's data: its qrels file could not be read
RANKS_TOP = 10         # top candidates shown per query in a retrieval check's data
GRADED_SHOWN = ("ndcg@10", "recall@100", "map@10", "mrr@10")   # a qrels check's line shows these (and thresholds)


def _vectors(body: dict, ctx: Ctx) -> tuple[int, int, str, dict]:
    v = ctx.vectors
    want = ctx.cell.get("dimension")
    lo, hi = body.get("norm_min"), body.get("norm_max")
    expected_ids = ctx.input_ids or v.ids
    missing = ctx.missing(expected_ids)
    problems: list[str] = []
    failures = len(missing)
    if missing:
        problems.append(f"no vector for {_list(missing)}")
    if want is not None and v.dimension != int(want):
        problems.append(f"dimension {v.dimension}, asked for {want}")
        failures = len(expected_ids)
        norms = np.zeros(0)
    else:
        finite = np.isfinite(v.matrix).all(axis=1) if v.matrix.size else np.ones(len(v.ids), bool)
        norms = np.linalg.norm(np.where(np.isfinite(v.matrix), v.matrix, 0).astype(np.float64), axis=1)
        bad_finite = [v.ids[i] for i in np.flatnonzero(~finite)]
        in_range = np.ones(len(v.ids), bool)
        if lo is not None:
            in_range &= norms >= float(lo) - 1e-9
        if hi is not None:
            in_range &= norms <= float(hi) + 1e-9
        bad_norm = [v.ids[i] for i in np.flatnonzero(finite & ~in_range)]
        if bad_finite:
            problems.append(f"non-finite values in {_list(bad_finite)}")
        if bad_norm:
            worst = [f"{i} ({norms[v.index[i]]:.4f})" for i in bad_norm]
            problems.append(f"norm outside [{lo if lo is not None else 0}, {hi if hi is not None else '∞'}] for {_list(worst)}")
        failures += len(bad_finite) + len(bad_norm)
    trials = len(expected_ids)
    data = {"dimension": v.dimension, "expected_dimension": want, "count": len(v.ids),
            "norm_min": _f(norms.min()) if norms.size else None,
            "norm_max": _f(norms.max()) if norms.size else None}
    detail = "; ".join(problems) if problems else (
        f"{trials} vectors of dimension {v.dimension}, finite"
        + (f", norms {data['norm_min']:.4f}..{data['norm_max']:.4f}" if norms.size else ""))
    return trials, failures, detail, data


def _nearest(body: dict, ctx: Ctx) -> tuple[int, int, str, dict]:
    pairs = body.get("pairs") or {body["query"]: body["expect"]}
    left_out = [f"{q}→{e}" for q, e in pairs.items() if not ctx.takes(q, e)]
    pairs = {q: e for q, e in pairs.items() if ctx.takes(q, e)}
    if not pairs:
        return 0, 0, f"this cell does not take {_list(left_out)}", {SKIP: True}
    among_all = [c for c in (body.get("among") or ctx.vectors.ids) if ctx.takes(c)]
    failures, notes, per = 0, [], []
    for query, expect in pairs.items():
        among = [c for c in among_all if c != query]
        missing = ctx.missing([query, *among])
        if missing:
            failures += 1
            notes.append(f"{query}: no vector for {_list(missing)}")
            per.append({"query": query, "expect": expect, "passed": False})
            continue
        sims = M.cosine_matrix(ctx.vectors.rows([query]), ctx.vectors.rows(among))[0]
        order = [among[j] for j in M.rank(sims)]
        score = dict(zip(among, sims.tolist()))
        r = order.index(expect) + 1 if expect in order else None
        ok = r == 1
        per.append({"query": query, "expect": expect, "top": order[0], "rank": r,
                    "cosine_expected": _f(score.get(expect, 0.0)), "cosine_top": _f(score[order[0]]),
                    "candidates": len(among), "passed": ok})
        if ok:
            runner_up = f", next {order[1]} {score[order[1]]:.3f}" if len(order) > 1 else ""
            notes.append(f"{query} → {expect} first of {len(among)} (cos {score[expect]:.3f}{runner_up})")
        else:
            failures += 1
            notes.append(f"{query} → {order[0]} (cos {score[order[0]]:.3f}), expected {expect} at rank "
                         f"{r} of {len(among)} (cos {score.get(expect, 0.0):.3f})")
    trials = len(pairs)
    if trials == 1:
        detail = notes[0]
    else:
        failed = [n for n, p in zip(notes, per) if not p["passed"]]
        detail = f"{trials - failures}/{trials} queries ranked the expected input first" + (
            f"; failed: {_list(failed, 3)}" if failed else "")
    return trials, failures, detail, {"pairs": per}


def _similarity(body: dict, ctx: Ctx) -> tuple[int, int, str, dict]:
    pairs = body.get("pairs") or [[body["a"], body["b"]]]
    left_out = [f"{a}~{b}" for a, b in pairs if not ctx.takes(a, b)]
    pairs = [[a, b] for a, b in pairs if ctx.takes(a, b)]
    if not pairs:
        return 0, 0, f"this cell does not take {_list(left_out)}", {SKIP: True}
    lo, hi = body.get("min"), body.get("max")
    failures, notes, per = 0, [], []
    bounds = " and ".join(b for b in [f"≥ {lo:g}" if lo is not None else "", f"≤ {hi:g}" if hi is not None else ""] if b)
    for a, b in pairs:
        missing = ctx.missing([a, b])
        if missing:
            failures += 1
            notes.append(f"{a}~{b}: no vector for {_list(missing)}")
            per.append({"a": a, "b": b, "cosine": None, "passed": False})
            continue
        c = M.cosine(ctx.vectors.rows([a])[0], ctx.vectors.rows([b])[0])
        ok = (lo is None or c >= lo) and (hi is None or c <= hi)
        failures += not ok
        per.append({"a": a, "b": b, "cosine": _f(c), "passed": ok})
        notes.append(f"cos({a}, {b}) = {c:.3f}{'' if ok else ', want ' + bounds}")
    trials = len(pairs)
    if trials == 1:
        detail = notes[0] + (f" ({bounds})" if failures == 0 else "")
    else:
        failed = [n for n, p in zip(notes, per) if not p["passed"]]
        detail = f"{trials - failures}/{trials} pairs have cosine {bounds}" + (f"; failed: {_list(failed, 3)}" if failed else "")
    return trials, failures, detail, {"pairs": per}


def _retrieval(body: dict, ctx: Ctx) -> tuple[int, int, str, dict]:
    try:
        judged = datasets.judgements(body, ctx.spec_dir)
    except datasets.JudgementsError as exc:
        return 1, 1, str(exc), {QRELS_UNAVAILABLE: True}
    graded = judged.source is not None
    if graded:   # judged relevant to something and taken by this cell (a sample leaves queries out)
        queries = {q: docs for q, docs in judged.qrels.items() if ctx.takes(q) and relevant(docs)}
    else:
        queries = {q: {r: g for r, g in rel.items() if ctx.takes(r)} for q, rel in judged.qrels.items() if ctx.takes(q)}
        queries = {q: rel for q, rel in queries.items() if rel}
    if not queries:
        return 0, 0, "this cell takes none of the queries with their relevant inputs", {SKIP: True}
    thresholds: dict[str, float] = body.get("min") or {}
    ks = body.get("k") or (datasets.MTEB_K if graded else DEFAULT_K)
    names = (M.metric_names(ks, [*thresholds, "ndcg@10", "map"], datasets.QRELS_KINDS) if graded
             else M.metric_names(ks, thresholds))
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
    if missing:
        data["metrics"] = {}
        return len(thresholds) or 1, len(thresholds) or 1, f"no vector for {_list(missing)}", data
    qids = list(queries)
    # over qrels the ranking kept (and the run file) reaches the largest k asked for, thresholds included
    depth = max(k for k in (M.parse_metric(m)[1] for m in names) if k) if graded else len(among)
    position = {c: j for j, c in enumerate(among)}
    shown_top = min(max(ks), RANKS_TOP)
    per: list[dict[str, float]] = []
    ranks: dict[str, dict] = {}
    run_lines: list[str] = []
    # a query is never its own candidate, nor (over qrels) the document with its own id
    exclude = [position.get(q) if q in position else position.get(judged.twin(q)) for q in qids]
    tops = M.top_k(ctx.vectors.rows(qids), ctx.vectors.rows(among), depth, exclude=exclude)
    for q, top in zip(qids, tops):
        grades = queries[q]
        ranked = [among[c] for c in top.columns]
        per.append(M.graded_scores(np.array([grades.get(i, 0) for i in ranked]), np.array(list(grades.values())), names))
        rel = [d for d, g in grades.items() if g > 0]
        at = dict(zip(map(int, top.columns), range(1, len(ranked) + 1)))
        ranks[q] = {"relevant": [{"id": d, "grade": grades[d], "rank": at.get(position[d]) if d in position else None,
                                  "cosine": _f(top.row[position[d]]) if d in position else _outside(q, d, ctx)} for d in rel],
                    "top": [{"id": i, "cosine": _f(v)} for i, v in zip(ranked[:shown_top], top.scores[:shown_top].tolist())]}
        if graded:
            qid = _run_id(judged.to_qrels_id(q))
            run_lines.extend(f"{qid} Q0 {_run_id(judged.to_qrels_id(i))} {n} {float(v):.9g} {ctx.cell['id']}"
                             for n, (i, v) in enumerate(zip(ranked, top.scores.tolist()), start=1))
    means = {m: float(np.mean([p[m] for p in per])) for m in names}
    data["metrics"] = {m: _f(v) for m, v in means.items()}
    data["per_query"] = {q: {m: _f(v) for m, v in p.items()} for q, p in zip(qids, per)}
    data["ranks"] = ranks
    below = {m: t for m, t in thresholds.items() if means[m] < t}
    # image-text sets read as Flickr30k/COCO report them: recall@1/5/10
    highlights = [f"recall@{k}" for k in ks] + ["mrr"] if body.get("imagetext") else GRADED_SHOWN
    listed = names if not graded else [m for m in names if m in thresholds or m in highlights]
    shown = ", ".join(
        f"{m} {means[m]:.3f}" + (f" {'<' if m in below else '≥'} {thresholds[m]:g}" if m in thresholds else "")
        for m in listed)
    detail = f"{len(qids)} queries over {len(among)} candidates: {shown}"
    if below:
        detail += _worst_queries(data["ranks"], data["per_query"], next(m for m in names if m in below))
    if graded:
        data.update({"qrels": judged.source, "depth": depth, **judged.extra})
        data[OUTPUTS] = {"run": ("\n".join(run_lines) + "\n").encode("utf-8"),
                         "results": _mteb_result(judged, ctx, means, len(qids), len(among), depth)}
    return max(len(thresholds), 1), len(below), detail, data


def _outside(query: str, relevant: str, ctx: Ctx) -> float:
    """The cosine of a relevant input that is not among the candidates: how far it was."""
    return M.cosine(ctx.vectors.rows([query])[0], ctx.vectors.rows([relevant])[0])


def worst_queries(ranks: dict[str, dict], per_query: dict[str, dict], metric: str) -> list[str]:
    """The queries below 1 on `metric`, worst first: lowest value, then the one whose best
    relevant input ranked lowest (absent counts as last), then by id (summary.json sorts its keys)."""
    def key(q: str) -> tuple:
        found = [r["rank"] for r in ranks[q]["relevant"] if r["rank"] is not None]
        return per_query[q][metric], -(min(found) if found else math.inf), q

    return sorted((q for q in ranks if per_query[q][metric] < 1), key=key)


def _worst_queries(ranks: dict[str, dict], per_query: dict[str, dict], metric: str, limit: int = 3) -> str:
    """`; worst by recall@1: q3: relevant cat-1 at rank 7, ...`: the queries that scored lowest on
    the first metric below its threshold, so a CI log shows what failed."""
    worst = worst_queries(ranks, per_query, metric)
    if not worst:
        return ""

    def where(r: dict) -> str:
        return f"{r['id']} at rank {r['rank']}" if r["rank"] is not None else f"{r['id']} not among the candidates"

    shown = [f"{q}: relevant " + ", ".join(where(r) for r in ranks[q]["relevant"][:3])
             + (" …" if len(ranks[q]["relevant"]) > 3 else "") for q in worst]
    return f"; worst by {metric}: " + _list(shown, limit)


def _run_id(qrels_id: str) -> str:
    """An id as a TREC run file can hold it: the file is whitespace separated, so whitespace in an
    id (a title used as an id) is written @HH, as in input ids."""
    return re.sub(r"\s", lambda m: "".join(f"@{b:02X}" for b in m.group().encode("utf-8")), qrels_id)


def _mteb_result(judged: "datasets.Judgements", ctx: Ctx, means: dict[str, float], queries: int,
                 candidates: int, depth: int) -> bytes:
    """The cell's scores in MTEB's result layout (task_name, scores per split and subset,
    metrics named `ndcg_at_10`..., main_score = nDCG@10 as MTEB's retrieval tasks), so tools that
    read MTEB results read these; what MTEB records about its own run stays null."""
    scores = {M.mteb_name(m): _f(v) for m, v in means.items() if "@" in m}
    row = {"hf_subset": "default", "languages": [], "main_score": scores["ndcg_at_10"], **dict(sorted(scores.items()))}
    doc = {"dataset_revision": None, "evaluation_time": None, "kg_co2_emissions": None, "mteb_version": None,
           "task_name": judged.task or ctx.name, "scores": {judged.split or "test": [row]},
           "harness": {"check": ctx.name, "cell": ctx.cell["id"], "model": ctx.cell.get("model"),
                       "dimension": ctx.cell.get("dimension"), "queries": queries, "candidates": candidates,
                       "depth": depth, "qrels": judged.source, **judged.extra}}
    return canonical_json(doc, pretty=True)


def _stability(body: dict, ctx: Ctx) -> tuple[int, int, str, dict]:
    if body.get("repeat"):
        base, other = ctx.folder / REPEAT_DIR, "a second execution in this run"
    else:
        against = Path(body["against"])
        base, other = (against if against.is_absolute() else ctx.spec_dir / against), str(body["against"])
    cell_id = ctx.cell["id"]
    data: dict[str, Any] = {"against": other}
    try:
        earlier = RunReader(base).vectors(cell_id)
    except FolderError as exc:
        return 1, 1, f"earlier run {base}: {exc}", data
    if earlier is None:
        where = "no such folder" if not base.is_dir() else f"it has no vectors/{cell_id}.npy"
        return 1, 1, f"cannot compare with {base}: {where} (point `against` at an executed run's output folder)", data
    need = float(body.get("min_cosine", DEFAULT_MIN_COSINE))
    ids = ctx.input_ids or ctx.vectors.ids
    both = [i for i in ids if i in ctx.vectors.index and i in earlier.index]
    lacking = [i for i in ids if i not in both]
    if earlier.dimension != ctx.vectors.dimension:
        return len(ids), len(ids), (f"dimension {ctx.vectors.dimension} here, {earlier.dimension} in {other}"), data
    cos = M.rowwise_cosine(ctx.vectors.rows(both), earlier.rows(both)) if both else np.zeros(0)
    low = [(i, c) for i, c in zip(both, cos.tolist()) if not c >= need]  # NaN (non-finite vectors) fails
    failures = len(low) + len(lacking)
    data.update({"min_cosine": _f(cos.min()) if cos.size else None,
                 "median_cosine": _f(float(np.median(cos))) if cos.size else None,
                 "threshold": need, "compared": len(both)})
    parts = [f"{len(both)} inputs compared with {other}"]
    if cos.size:
        parts.append(f"cosine min {cos.min():.4f}, median {np.median(cos):.4f} (want ≥ {need:g})")
    if low:
        parts.append("below: " + _list([f"{i} ({c:.4f})" for i, c in sorted(low, key=lambda x: x[1])]))
    if lacking:
        parts.append(f"missing in one run: {_list(lacking)}")
    return len(ids), failures, "; ".join(parts), data


EVALUATORS: dict[str, Callable[[dict, Ctx], tuple[int, int, str, dict]]] = {
    "vectors": _vectors, "nearest": _nearest, "similarity": _similarity,
    "retrieval": _retrieval, "stability": _stability,
}


# --------------------------------------------------------------------------- public entry points

def selects(body: dict, cell: dict) -> bool:
    """Whether a check's `cells`/`models` filters include this cell (both must match)."""
    if body.get("cells") and cell.get("id") not in body["cells"]:
        return False
    if body.get("models") and cell.get("model") not in body["models"]:
        return False
    return True


def evaluate_checks(
    checks: list[dict],
    folder: Path,
    cells: list[dict],
    locate: Locate | None = None,
    *,
    spec_dir: Path | None = None,
    sliced: str | None = None,
    write: Write | None = None,
) -> list[CheckResult]:
    """Evaluate every check in every cell it selects, in spec order then cell order.

    `cells` are the manifest's cell entries. A selected cell that was not executed gives a
    `skip` result with the reason (never a pass: reports count it as skipped); a check whose
    filters select no cell fails, so a typo never passes silently, unless the run was `sliced`
    (`run --model/--dimension/--cell`, described by this text): then it is a `skip`.
    `spec_dir` resolves a stability check's relative `against` path (default: the cwd).
    `locate(path)` maps a path inside `checks:` (e.g. (0, "nearest")) to (line, col).
    `write(relative path, bytes)` receives the files a check gives the folder (a retrieval check
    over qrels: the cell's MTEB-layout result and TREC run file); `run` writes them through
    `RunWriter`, `verify` compares them with the folder's.
    """
    folder = Path(folder)
    spec_dir = Path(spec_dir) if spec_dir is not None else Path.cwd()
    run = RunReader(folder)
    try:
        execution = run.execution()
    except FolderError:
        execution = None  # a reason for a missing cell is only a courtesy; the vectors decide
    try:
        input_ids = run.input_ids()
    except FolderError:
        input_ids = []
    prepared = []
    for index, (check, name) in enumerate(zip(checks, check_names(checks))):
        kind = check_kind(check)
        body = check[kind] or {}
        where = _where(locate, (index, kind))
        base = {"check": kind, "index": index, **({"line": where[0], "col": where[1]} if where else {})}
        prepared.append((index, name, kind, body, base))
    by_slot: dict[tuple[int, int], CheckResult] = {}
    # Cell by cell, so only one cell's vectors are in memory at a time.
    for position, cell in enumerate(cells):
        mine = [p for p in prepared if selects(p[3], cell)]
        if not mine:
            continue
        cid = cell["id"]
        info = execution.get(cid) if execution is not None else None
        try:
            vec = None if info is not None and not info.executed else run.vectors(cid)
            planned = run.planned_ids(cid)
        except FolderError as exc:
            vec, planned = exc, None
        for index, name, kind, body, base in mine:
            by_slot[(index, position)] = _evaluate_one(
                name, kind, body, {**base, "model": cell.get("model"), "dimension": cell.get("dimension")},
                cell, vec, info, folder, planned if planned is not None else input_ids, spec_dir, write)
    results: list[CheckResult] = []
    for index, name, kind, body, base in prepared:
        mine = [by_slot[k] for k in sorted(k for k in by_slot if k[0] == index)]
        if not mine and sliced:
            mine = [CheckResult.skip(name, f"selects no cell of this run, which was limited to {sliced}", None,
                                     "check", {**base, "status": "skipped", "reason": "left out by the run's filter"})]
        if not mine:
            wanted = "; ".join(f"{k}: {', '.join(body[k])}" for k in ("cells", "models") if body.get(k))
            mine = [CheckResult(
                name, False, f"selects no cell of this run ({wanted}); cells are {_list([c['id'] for c in cells])}",
                None, "check", {**base, "status": "failed", "trials": 0, "failures": 0})]
        results.extend(mine)
    return results


def _evaluate_one(name: str, kind: str, body: dict, meta: dict, cell: dict, vec, info: CellExecution | None,
                  folder: Path, planned: list[str], spec_dir: Path, write: Write | None = None) -> CheckResult:
    cid = cell["id"]
    if isinstance(vec, FolderError):
        return CheckResult(name, False, str(vec), cid, "check", {**meta, "status": "failed", "trials": 0, "failures": 0})
    if vec is None:
        reason = info.reason if info is not None else None
        # The brief reason: its execution line (or the first such line) gives the hint in full.
        return CheckResult.skip(name, f"cell not executed: {brief_reason(reason)}" if reason else "cell not executed", cid,
                                "check", {**meta, "status": "skipped", "reason": reason or "cell not executed"})
    trials, failures, detail, data = EVALUATORS[kind](body, Ctx(folder, cell, vec, planned, spec_dir, name))
    outputs = data.pop(OUTPUTS, None)
    if outputs:
        paths = {"results": layout.check_results_file(cid, name), "run": layout.check_run_file(cid, name)}
        data["files"] = {what: paths[what] for what in sorted(outputs)}
        if write is not None:
            for what, content in sorted(outputs.items()):
                write(paths[what], content)
    if data.get(SKIP):
        return CheckResult.skip(name, detail, cid, "check", {**meta, "status": "skipped", "reason": detail})
    passed, rule = gate(trials, failures, body) if kind != "retrieval" else (failures == 0 and trials > 0, "")
    text = detail if not rule or trials == 1 else f"{detail} ({rule})"
    return CheckResult(name, passed, text, cid, "check", {
        **meta, **data, "status": "passed" if passed else "failed", "trials": trials, "failures": failures,
        "pass_rate": _f((trials - failures) / trials) if trials else 0.0})
