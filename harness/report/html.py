"""The self-contained HTML report: tables and inline SVG plots, no script, no network.

The page projects summary.json (its record, `Summary`): the charts come from `charts` as plain
data and the Jinja2 template only draws them, so the page opens anywhere, including an
air-gapped auditor's laptop.
"""

from __future__ import annotations

import functools
from pathlib import Path

import jinja2

from harness.checks.retrieval import placement
from harness.folder import Reason, Summary, SummaryCheck
from harness.report.charts import (
    cost_chart,
    count,
    duration,
    heatmaps,
    latency_chart,
    metric,
    metric_order,
    money,
    quality_charts,
    retrieval_checks,
    size,
)
from harness.report.recommend import RULE, deciding_p, interval_text, p_text, plus_minus, recommend, signed
from harness.words import counted

TEMPLATES = Path(__file__).parent / "templates"
MAX_TABLE_METRICS = 6     # columns of a quality table (thresholded metrics first)
FOLD_ROWS = 12            # a table of more check lines than this is folded (<details>)


# --------------------------------------------------------------------------- what failed

_ORDER = {"failed": 0, "warning": 1, "skipped": 2, "passed": 3}


def failures(summary: Summary) -> list[dict]:
    """Failed check lines grouped by check name, each with what failed in a table where the data
    allows: retrieval per query, nearest and similarity per pair."""
    groups: dict[str, dict] = {}
    for c in summary.checks:
        if c.status != "failed":
            continue
        data = c.data
        g = groups.setdefault(c.name, {"name": c.name, "kind": data.get("check") or c.kind,
                                       "lines": [], "pairs": [], "retrieval": []})
        g["lines"].append(c)
        if g["kind"] == "nearest":
            g["pairs"] += [{"cell": c.cell, **p} for p in data.get("pairs") or [] if not p.get("passed")]
        elif g["kind"] == "similarity":
            g["pairs"] += [{"cell": c.cell, "want": data.get("want") or "", **p} for p in data.get("pairs") or []
                           if not p.get("passed")]
        elif g["kind"] == "retrieval" and (data.get("ranks") or data.get("per_query")):
            g["retrieval"].append({"cell": c.cell, "detail": c.detail, "queries": _query_rows(data)})
    return list(groups.values())


def _query_rows(data: dict) -> list[dict]:
    """Per query: where each relevant input ranked and what came first (data["ranks"]), or the
    query's own metric values when the check recorded no ranks."""
    ranks = data.get("ranks") or {}
    per = data.get("per_query") or {}
    thresholds = data.get("thresholds") or {}
    rows = []
    for q in list(dict.fromkeys([*ranks, *per])):
        r = ranks.get(q) or {}
        relevant = r.get("relevant") or []
        ids = {x["id"] for x in relevant}
        rows.append({"query": q,
                     "relevant": [{"id": x["id"], "rank": x.get("rank"), "cosine": x.get("cosine"),
                                   "grade": x.get("grade"), "where": placement(x, q, data)} for x in relevant],
                     "top": [{"id": t["id"], "cosine": t.get("cosine"), "relevant": t["id"] in ids}
                             for t in (r.get("top") or [])[:5]],
                     "metrics": [{"name": m, "value": v,
                                  "low": m in thresholds and v is not None and v < thresholds[m]}
                                 for m, v in (per.get(q) or {}).items() if m in thresholds]})
    # Worst first: the query whose best relevant input ranked lowest.
    return sorted(rows, key=lambda r: -min((x["rank"] or 10 ** 6 for x in r["relevant"]), default=0))


def sorted_checks(summary: Summary) -> list[SummaryCheck]:
    return sorted(summary.checks, key=lambda c: _ORDER.get(c.status, 4))


def usage_rows(summary: Summary) -> list[dict]:
    out = []
    for c in summary.cells:
        cost, tokens = c.cost, c.tokens
        unbilled = c.estimated_cost and not c.estimated_cost.get("currency")
        per_1k = cost["per_1k_inputs"] if cost else None
        out.append({"id": c.id, "text": tokens["text"] if tokens else None,
                    "image": tokens["image"] if tokens else None,
                    "cost": money(cost["amount"], cost["currency"]) if cost else ("not billed" if unbilled else "–"),
                    "per_1k": money(per_1k, cost["currency"]) if per_1k is not None else "–",
                    "estimated": bool(cost) and cost["basis"] == "estimate"})
    return out


def noted(detail: str, reasons: list[Reason]) -> str:
    """A check line's detail with a why-not-executed reason (the long how-to-fix) replaced by its
    brief form and a pointer to the note under Cells, so the page says the hint once."""
    for n, reason in enumerate(reasons, start=1):
        if reason.text and reason.text in detail:
            detail = detail.replace(reason.text, f"{reason.brief} (note [{n}] under Cells)")
    return detail


@functools.lru_cache(maxsize=1)
def _env() -> jinja2.Environment:
    """One environment per process: compiling the page template costs more than rendering it."""
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATES)), autoescape=True,
                             undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True,
                             keep_trailing_newline=True)
    env.filters["num"] = lambda x, digits=3: "–" if x is None else (
        f"{x:.{digits}f}" if isinstance(x, float) else str(x))
    env.filters["money"] = money
    env.filters["noted"] = noted
    env.filters["duration"] = duration
    env.filters["count"] = count
    env.filters["counted"] = counted
    env.filters["metric"] = metric
    env.filters["size"] = size
    env.filters["interval"] = interval_text
    env.filters["pm"] = plus_minus
    env.filters["p"] = p_text
    env.filters["deciding_p"] = deciding_p
    env.filters["signed"] = signed
    return env


def quality_tables(summary: Summary, charted: set[str]) -> list[dict]:
    """The retrieval checks `quality_charts` draws no chart for (their cells share one dimension: one
    point per line adds nothing): a table, a row per cell, its metrics with their intervals."""
    out = []
    for check, rows in retrieval_checks(summary).items():
        if check in charted:
            continue
        order = metric_order(rows)
        asked = [m for m in order if m in rows[0].thresholds]
        depth = order[0].partition("@")[2] if order else ""   # then the metrics at the headline's depth
        rest = sorted((m for m in order if m not in asked), key=lambda m: m.partition("@")[2] != depth)
        names = (asked + rest)[:MAX_TABLE_METRICS]
        out.append({"check": check, "metrics": [{"name": m, "threshold": rows[0].thresholds.get(m)} for m in names],
                    "rows": [{"cell": r.cell, "model": r.model, "dimension": r.dimension,
                              "values": [{"value": r.metrics.get(m), "interval": (r.intervals or {}).get(m),
                                          "low": m in r.thresholds and r.metrics.get(m) is not None
                                          and r.metrics[m] < r.thresholds[m]} for m in names]}
                             for r in rows]})
    return out


def render_html(summary: Summary, folder: Path) -> bytes:
    rec = recommend(summary)
    reasons = list(dict.fromkeys(c.reason for c in summary.cells if not c.executed and c.reason))
    quality = quality_charts(summary)
    timed = [c for c in summary.cells if c.latency_ms]
    page = _env().get_template("report.html.j2").render(
        s=summary, rec=rec, cost=cost_chart(rec), quality=quality, rule=RULE, FOLD_ROWS=FOLD_ROWS,
        groups=[(m, [o for o in rec.options if o.model == m]) for m in dict.fromkeys(o.model for o in rec.options)]
        if rec else [],
        quality_tables=quality_tables(summary, {ch["check"] for ch in quality}),
        heatmaps=heatmaps(summary, Path(folder)), latency=latency_chart(summary) if len(timed) > 1 else None,
        failures=failures(summary), checks=sorted_checks(summary), usage={u["id"]: u for u in usage_rows(summary)},
        reasons=reasons)
    return page.encode("utf-8")
