"""report.md: the run for people and for a CI job summary (`cat report.md >> $GITHUB_STEP_SUMMARY`).

The same tables as report.html, without its charts, in GitHub-flavoured Markdown: the verdict,
failed checks first (a retrieval check with its worst queries), quality by model × dimension,
usage and cost (the provider's figures apart from the plan's estimates), results per cell, every
check line and the plan. Tables are built here as rows; the Jinja2 template lays them out.
"""

from __future__ import annotations

import re

import jinja2

from harness.catalog.estimate import money
from harness.checks import metrics as M
from harness.checks.retrieval import placement, worst_queries
from harness.folder import CellEntry, Manifest, Quality, Summary
from harness.folder.verdict import CheckResult, counts, verdict
from harness.report.charts import size
from harness.report.recommend import RULE, deciding_p, interval_text, p_text, plus_minus, recommend, signed
from harness.words import counted

_ENV = jinja2.Environment(loader=jinja2.PackageLoader("harness", "report/templates"),
                          autoescape=False, trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True,
                          undefined=jinja2.StrictUndefined)
_ENV.filters["counted"] = counted
QUERIES_SHOWN = 10   # rows of a failed retrieval check's per-query table
TOP_SHOWN = 3        # candidates named per query in that table


# HTML's and Markdown's own characters in text a provider or a folder chose (an error message, an id):
# report.md lands in $GITHUB_STEP_SUMMARY, which renders both, so such text is shown as written.
# (an underscore inside a word emphasises nothing in GitHub's Markdown, so `image_tokens` stays as it is)
_PROSE = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;", "\\": "\\\\", "`": "\\`", "*": "\\*",
                        "[": "\\[", "]": "\\]", "|": "\\|", "~": "\\~"})
_EDGE_UNDERSCORE = re.compile(r"(?<![0-9A-Za-z])_|_(?![0-9A-Za-z])")


def cell(text) -> str:
    """Text safe inside a Markdown table cell: no line break (Unicode's line separators included),
    HTML and Markdown escaped, so it renders as the very text."""
    return _EDGE_UNDERSCORE.sub(r"\\_", " ".join(str(text).split()).translate(_PROSE))


def code(text) -> str:
    """An id as inline code inside a table cell (a backtick in the id widens the fence; inside code
    nothing renders, so only the table's pipes are escaped)."""
    text = " ".join(str(text).split()).replace("|", "\\|")
    fence = "``" if "`" in text else "`"
    return f"{fence} {text} {fence}" if fence == "``" else f"`{text}`"


def num(x, digits: int = 3) -> str:
    if x is None:
        return "—"
    if isinstance(x, float) and not x.is_integer():
        return f"{x:.{digits}f}"
    return f"{int(x):,}" if isinstance(x, (int, float)) else str(x)


def mix(counts: dict) -> str:
    return ", ".join(f"{k} {v}" for k, v in sorted(counts.items())) or "—"


def query_rows(check: dict) -> dict | None:
    """A failed retrieval check's queries, worst first on its first metric below threshold."""
    data = check.get("data") or {}
    ranks, per_query = data.get("ranks") or {}, data.get("per_query") or {}
    if not ranks:
        return None
    metrics, thresholds = data.get("metrics") or {}, data.get("thresholds") or {}
    # the first metric below its threshold in the metrics' own order, never the dict's: summary.json
    # sorts keys, the spec does not, and verify re-renders this file from summary.json
    below = [m for m in M.metric_names([], thresholds) if m in thresholds and metrics.get(m, 0.0) < thresholds[m]]
    metric = below[0] if below else next((m for m in M.metric_names([], metrics) if m in metrics), None)
    if metric is None:
        return None
    order = worst_queries(ranks, per_query, metric)
    shown = order[:QUERIES_SHOWN]
    rows = []
    for q in shown:
        rel = ", ".join(f"{code(r['id'])} {placement(r, q, data)}" for r in ranks[q]["relevant"])
        top = ", ".join(f"{code(t['id'])} ({t['cosine']:.3f})" for t in ranks[q]["top"][:TOP_SHOWN])
        rows.append({"query": code(q), "relevant": rel, "top": top or "—", "value": f"{per_query[q][metric]:.3f}"})
    return {"metric": metric, "rows": rows, "more": len(order) - len(rows), "total": len(ranks)}


def quality_tables(summary: Summary) -> list[dict]:
    """Per retrieval check: one row per model and metric, one column per output dimension."""
    by_check: dict[str, list[Quality]] = {}
    for q in summary.quality:
        by_check.setdefault(q.check, []).append(q)
    tables = []
    for check, entries in by_check.items():
        dims = sorted({q.dimension for q in entries if q.dimension is not None})
        metrics = M.metric_names([], {m for q in entries for m in q.metrics})
        thresholds = {m: t for q in entries for m, t in q.thresholds.items()}
        rows = []
        for model in dict.fromkeys(q.model for q in entries):
            at = {q.dimension: q for q in entries if q.model == model}
            for m in metrics:
                values = []
                for d in dims:
                    v = at[d].metrics.get(m) if d in at else None
                    low = v is not None and m in thresholds and v < thresholds[m]
                    pm = plus_minus((at[d].intervals or {}).get(m)) if d in at else ""
                    shown = "—" if v is None else f"{v:.3f}" + (f" {pm}" if pm else "")
                    values.append("—" if v is None else (f"**{shown}** ✗" if low else shown))
                rows.append({"model": cell(model), "metric": m, "min": num(thresholds.get(m)), "by_dim": values})
        tables.append({"check": cell(check), "dims": dims, "rows": rows, "any_min": bool(thresholds)})
    return tables


def usage_rows(summary: Summary, cells: list[CellEntry]) -> list[dict]:
    """Per cell: what the provider reported (actual) beside what the plan estimated."""
    planned = {c.id: c for c in cells}
    rows = []
    for c in summary.cells:
        plan = planned.get(c.id) or CellEntry(c.id)
        cost = c.estimated_cost or plan.estimated_cost or {}
        lat = c.latency_ms
        rows.append({
            "id": code(c.id), "executed": "yes" if c.executed else "no",
            "requests": num(c.requests), "cache_hits": num(c.cache_hits), "errors": num(c.errors),
            "latency": f"{lat['p50']:,.0f} / {lat['p95']:,.0f}" if lat else "—",
            "actual": ", ".join(f"{cell(k)} {num(v, 0)}" for k, v in c.usage.items()) or "—",
            "est_tokens": num((plan.estimated_tokens or {}).get("total")),
            "est_cost": money(cost) if cost.get("amount") is not None else "—",
            "cost": _actual_cost(c.cost),
        })
    return rows


def _actual_cost(cost: dict | None) -> str:
    """The cell's cost priced from the tokens the provider reported; "—" where only an estimate exists."""
    if not isinstance(cost, dict) or cost.get("basis") != "usage":
        return "—"
    return f"{cost['amount']:.4f} {cost.get('currency', '')}".strip()


def choice_table(summary: Summary) -> dict | None:
    """The recommendation (`recommend`, the one rule) in words, and the cells it chose among: the headline
    metric with its interval, the difference from the best, cost per 1,000 inputs and float32 storage."""
    rec = recommend(summary)
    if rec is None:
        return None
    rows = []
    for o in rec.options:
        vs = o.vs_best
        if o is rec.best and rec.compared:
            versus = "best"
        elif vs:
            versus = (f"{'≈' if o.tied else 'worse'} {signed(vs['delta'])} {interval_text(vs['interval'], True)}, "
                      f"{p_text(deciding_p(vs))}")
        else:
            versus = "—"
        values = [f"{o.value:.3f} {plus_minus(o.interval)}".strip()] + [
            "—" if x["value"] is None else f"{x['value']:.3f} {plus_minus(x['interval'])}".strip() for x in o.others]
        marks = [v if ok else f"**{v}** ✗" for v, ok in zip(values, [o.meets] + [
            x["value"] is not None and x["value"] >= x["threshold"] for x in o.others])]
        rows.append({"id": code(o.cell) + (" **recommended**" if o.recommended else ""), "dim": num(o.dimension),
                     "values": marks, "versus": cell(versus), "cost": cell(o.cost + (" (est.)" if o.basis ==
                                                                                     "estimate" else "")),
                     "size": f"{size(o.per_million)} / {size(o.corpus_bytes)}"})
    heads = [f"{rec.metric}" + (f" (min {rec.threshold:g})" if rec.threshold is not None else "")]
    heads += [f"{x['name']} (min {x['threshold']:g})" for x in (rec.options[0].others if rec.options else [])]
    corpus = rec.options[0].corpus_vectors if rec.options else None
    return {"text": [cell(t) for t in rec.sentences], "heads": heads, "rows": rows, "compared": rec.compared,
            "corpus": num(corpus), "rule": cell(RULE), "check": cell(rec.check)}


def cell_results(summary: Summary) -> list[dict]:
    """Per cell: how many of its check lines passed, failed, were skipped or warned."""
    rows = []
    for c in summary.cells:
        mine = [k for k in summary.checks if k.cell == c.id]
        n = {s: sum(k.status == s for k in mine) for s in ("passed", "failed", "skipped", "warning")}
        rows.append({"id": code(c.id), "model": cell(c.model), "dimension": num(c.dimension),
                     "verdict": "**FAIL**" if n["failed"] else ("PASS" if n["passed"] else "—"), **n})
    return rows


def render_markdown(manifest: Manifest, results: list[CheckResult], description: str | None = None,
                    summary: Summary | None = None) -> str:
    """report.md from the manifest, the check results and summary.json (`summary`: usage, quality
    and each check's data; without it those tables are left out)."""
    cells = manifest.entries()
    failed = [{"name": r.name, "cell": r.cell, "detail": r.detail,
               "queries": query_rows({"data": r.data}) if (r.data or {}).get("check") == "retrieval" else None}
              for r in results if r.status == "fail"]
    return _ENV.get_template("report.md.j2").render(
        m=manifest, cells=cells, results=results, passed=verdict(results), counts=counts(results), mix=mix,
        description=description, failed=failed,
        quality=quality_tables(summary) if summary else [], usage=usage_rows(summary, cells) if summary else [],
        per_cell=cell_results(summary) if summary else [], cell=cell, code=code, money=money,
        rec=choice_table(summary) if summary else None)
