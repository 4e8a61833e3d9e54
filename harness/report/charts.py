"""The report's charts, as plain data for the page's template: quality by output dimension, the
headline metric against cost (the cells best for their cost on a Pareto front), latency per cell
and the cosine heatmaps; and the numbers they show, written for people.

Python computes the geometry (positions, sizes, colours, where each label goes) and the template
only draws it, so the plots are testable numbers and the page opens anywhere, including an
air-gapped auditor's laptop.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from harness.checks import metrics as M
from harness.folder import FolderError, Quality, RunReader, Summary, SummaryCell
from harness.report.svg import Svg, nice_ticks, shorten, text_width, x_ticks, y_ticks

PALETTE = ["#2f6fdf", "#d1453b", "#2a9d4b", "#8e5bd0", "#d98200", "#1a9fb0", "#c2478f", "#7a6a58"]
# Heatmap colour ramp: low cosine -> high cosine.
RAMP = [(247, 251, 255), (198, 219, 239), (107, 174, 214), (33, 113, 181), (8, 48, 107)]
HEATMAP = {"max_inputs": 40, "max_cells": 8, "cell_px": 18, "big_cell_px": 30, "big_up_to": 12, "max_label": 150}
QUALITY = {"width": 440, "height": 240, "left": 44, "right": 14, "top": 14, "bottom": 44}
SCATTER = {"width": 480, "height": 290, "left": 44, "right": 14, "top": 14, "bottom": 44}
BARS = {"width": 480, "bar": 13, "gap": 8, "max_label": 210, "top": 26, "axis": 34}
MAX_QUALITY_METRICS = 4
CURRENCY = {"CNY": "¥", "USD": "$", "EUR": "€"}


# --------------------------------------------------------------------------- numbers for people

def _sig(x: float, digits: int = 2) -> str:
    """`digits` significant digits, never in exponent notation: 0.001243 -> 0.0012, 1.249 -> 1.2,
    0.00102 -> 0.001."""
    if x == 0:
        return "0"
    places = max(0, digits - 1 - math.floor(math.log10(abs(x))))
    text = f"{x:,.{places}f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def money(amount: float | None, currency: str = "CNY") -> str:
    if amount is None:
        return "–"
    sign = CURRENCY.get(currency)
    text = f"{amount:,.2f}" if abs(amount) >= 100 else _sig(amount, 2 if abs(amount) < 1 else 3)
    return f"{sign}{text}" if sign else f"{text} {currency}"


def duration(ms: float | None) -> str:
    if ms is None:
        return "–"
    return f"{ms:.0f} ms" if ms < 999.5 else f"{ms / 1000:.3g} s"


def count(n: float | None) -> str:
    return "–" if n is None else f"{int(round(n)):,}"


def metric(v: float | None) -> str:
    return "–" if v is None else f"{v:.3f}"


# --------------------------------------------------------------------------- what the run says

def _colours(models: list[str]) -> dict[str, str]:
    return {m: PALETTE[i % len(PALETTE)] for i, m in enumerate(models)}


def _retrieval_checks(summary: Summary) -> dict[str, list[Quality]]:
    by_check: dict[str, list[Quality]] = {}
    for q in summary.quality:
        by_check.setdefault(q.check, []).append(q)
    return by_check


def _metric_order(rows: list[Quality]) -> list[str]:
    """Thresholded metrics first, in the spec's order (summary.json sorts object keys, so the
    order comes from `threshold_order`), then the others."""
    names = list(dict.fromkeys(m for r in rows for m in r.metrics))
    asked = rows[0].threshold_order or list(rows[0].thresholds)
    first = [m for m in asked if m in names]
    return first + [m for m in names if m not in first]


def headline_metric(summary: Summary) -> tuple[str, str, float | None] | None:
    """The metric the user asked for first: the first threshold of the first retrieval check."""
    for check, rows in _retrieval_checks(summary).items():
        order = _metric_order(rows)
        if order:
            return check, order[0], rows[0].thresholds.get(order[0])
    return None


def quality_charts(summary: Summary) -> list[dict]:
    """Quality against output dimension on a log-2 axis, one chart per (retrieval check, metric),
    every model a series, the threshold dashed."""
    charts = []
    for check, rows in _retrieval_checks(summary).items():
        rows = [r for r in rows if r.dimension is not None]
        if not rows:
            continue
        dims = sorted({int(r.dimension) for r in rows})
        models = list(dict.fromkeys(r.model for r in rows))
        colour = _colours(models)
        c = QUALITY
        left, right, top = c["left"], c["width"] - c["right"], c["top"]
        bottom = c["height"] - c["bottom"]
        lo, hi = math.log2(dims[0]), math.log2(dims[-1])
        pad = max(0.25, (hi - lo) * 0.06)

        def x(d: float) -> float:
            if hi == lo:
                return (left + right) / 2
            return left + (right - left) * (math.log2(d) - lo + pad) / (hi - lo + 2 * pad)

        def y(v: float) -> float:
            return bottom - (bottom - top) * v

        for name in _metric_order(rows)[:MAX_QUALITY_METRICS]:
            threshold = rows[0].thresholds.get(name)
            svg = Svg(c["width"], c["height"], "quality", f"{check}: {name} by output dimension")
            svg.rect(left, top, right - left, bottom - top, None, "frame")
            y_ticks(svg, left, right, [(y(v), f"{v:g}") for v in (0, 0.25, 0.5, 0.75, 1)])
            x_ticks(svg, [(x(d), str(d)) for d in dims], bottom + 16, (top, bottom))
            svg.text((left + right) / 2, bottom + 34, "output dimension (log scale)", "middle", "axis-label")
            if threshold is not None:
                svg.line(left, y(threshold), right, y(threshold), "threshold", title=f"threshold {threshold:g}")
            series = []
            for model in models:
                pts = sorted((int(r.dimension), r.metrics[name]) for r in rows
                             if r.model == model and r.metrics.get(name) is not None)
                if not pts:
                    continue
                under = len(models) - 1 - models.index(model)      # series drawn later go on top
                svg.path([(x(d), y(v)) for d, v in pts], colour[model], width=2 + 1.75 * under)
                for d, v in pts:
                    svg.circle(x(d), y(v), 3.5 + 1.5 * under, colour[model], "point",
                               f"{model} at {d}: {name} {metric(v)}")
                    svg.boxes.append((x(d) - 4, y(v) - 4, x(d) + 4, y(v) + 4))
                series.append({"model": model, "color": colour[model],
                               "points": [{"x": round(x(d), 1), "y": round(y(v), 1), "dimension": d, "value": v}
                                          for d, v in pts]})
            if threshold is not None:
                _threshold_label(svg, threshold, y(threshold), left, right)
            legend = [{"name": s["model"], "color": s["color"]} for s in series]
            if threshold is not None:
                legend.append({"name": f"threshold {threshold:g}", "shape": "dash"})
            used = svg.legend_height(legend)
            svg.height += used + 4
            svg.legend(legend, c["height"] + 2)
            chart = svg.to_dict()
            chart.update({"check": check, "metric": name, "series": series, "top": top, "plot_bottom": bottom,
                          "xticks": [{"x": round(x(d), 1), "label": d} for d in dims],
                          "threshold": None if threshold is None else {"y": round(y(threshold), 1),
                                                                       "value": threshold}})
            charts.append(chart)
    return charts


def _threshold_label(svg: Svg, threshold: float, ty: float, left: float, right: float) -> None:
    """"min 0.6" just above or below the dashed line, at its right end or else its left end."""
    text = f"min {threshold:g}"
    for x, dy, anchor in ((right - 4, -4, "end"), (right - 4, 13, "end"), (left + 4, -4, "start"),
                          (left + 4, 13, "start")):
        if svg.text(x, ty + dy, text, anchor, "threshold-label"):
            return


def pareto_front(points: list[tuple[float, float]]) -> list[int]:
    """Indexes of the points no other point beats: as cheap or cheaper and as good or better,
    strictly one of the two. Ordered by cost."""
    front = []
    for i, (c, q) in enumerate(points):
        if not any((c2 <= c and q2 >= q) and (c2 < c or q2 > q) for j, (c2, q2) in enumerate(points) if j != i):
            front.append(i)
    return sorted(front, key=lambda i: (points[i][0], -points[i][1]))


def choices(summary: Summary) -> dict | None:
    """One row per executed cell with a headline quality value: its cost per 1,000 inputs, and
    whether it is on the Pareto front of quality against cost."""
    head = headline_metric(summary)
    if head is None:
        return None
    check, name, threshold = head
    quality = {q.cell: q.metrics.get(name) for q in summary.quality if q.check == check}
    failed: dict[str, int] = {}
    total: dict[str, int] = {}
    for c in summary.checks:
        if c.cell and c.status in ("passed", "failed"):
            total[c.cell] = total.get(c.cell, 0) + 1
            failed[c.cell] = failed.get(c.cell, 0) + (c.status == "failed")
    rows = []
    for cell in summary.cells:
        if cell.id not in quality or quality[cell.id] is None:
            continue
        cost = cell.cost or {}
        rows.append({"cell": cell.id, "model": cell.model, "dimension": cell.dimension,
                     "value": quality[cell.id], "per_1k": cost.get("per_1k_inputs"),
                     "currency": cost.get("currency", "CNY"), "basis": cost.get("basis"),
                     "latency": (cell.latency_ms or {}).get("p50"),
                     "failed": failed.get(cell.id, 0), "checks": total.get(cell.id, 0),
                     "meets": threshold is None or quality[cell.id] >= threshold, "best": False})
    priced = [i for i, r in enumerate(rows) if r["per_1k"] is not None]
    for k in pareto_front([(rows[i]["per_1k"], rows[i]["value"]) for i in priced]):
        rows[priced[k]]["best"] = True
    mine = [q for q in summary.quality if q.check == check]
    limits = mine[0].thresholds
    others = [m for m in _metric_order(mine) if m != name and m in limits]      # the other thresholded metrics
    extra = {q.cell: q.metrics for q in mine}
    for r in rows:
        r["others"] = [{"name": m, "value": extra[r["cell"]].get(m)} for m in others]
    for r in rows:
        r["meets_all"] = r["meets"] and all(o["value"] is not None and o["value"] >= limits[o["name"]]
                                            for o in r["others"])

    def cheapest(ok: list[dict]) -> dict | None:
        """The cheapest of `ok` (then the best, then plan order): the answer to 'for how much'."""
        priced = [r for r in ok if r["per_1k"] is not None]
        return min(priced, key=lambda r: (r["per_1k"], -r["value"])) if priced else None

    answer = {"all": cheapest([r for r in rows if r["meets_all"]]),
              "headline": cheapest([r for r in rows if r["meets"]]) if threshold is not None else None,
              "thresholds": [name, *others] if threshold is not None else others}
    groups = [{"model": m, "rows": [r for r in rows if r["model"] == m]}
              for m in dict.fromkeys(r["model"] for r in rows)]
    return {"check": check, "metric": name, "threshold": threshold, "rows": rows, "groups": groups, "answer": answer,
            "currency": next((r["currency"] for r in rows if r["per_1k"] is not None), "CNY"),
            "others": [{"name": m, "threshold": limits.get(m)} for m in others]}


def cost_chart(pick: dict | None) -> dict | None:
    """The headline metric against cost per 1,000 inputs, one point per cell, the cells best
    for their cost ringed and joined."""
    if pick is None:
        return None
    rows = [r for r in pick["rows"] if r["per_1k"] is not None]
    if not rows:
        return None
    c = SCATTER
    models = list(dict.fromkeys(r["model"] for r in pick["rows"]))
    colour = _colours(models)
    currency = rows[0]["currency"]
    left, right, top, bottom = c["left"], c["width"] - c["right"], c["top"], c["height"] - c["bottom"]
    costs = [r["per_1k"] for r in rows]
    inner_left, inner_right = left + 14, right - 14     # points and end labels stay off the frame
    log = min(costs) > 0 and max(costs) / min(costs) >= 8     # prices often differ tenfold between models
    if log:
        lo, hi = math.floor(math.log10(min(costs)) * 3) / 3, math.ceil(math.log10(max(costs)) * 3) / 3
        xt = [m * 10 ** e for e in range(math.floor(lo) - 1, math.ceil(hi) + 1) for m in (1, 2, 5)
              if lo - 1e-9 <= math.log10(m * 10 ** e) <= hi + 1e-9]

        def x(v: float) -> float:
            return inner_left + (inner_right - inner_left) * (math.log10(v) - lo) / ((hi - lo) or 1)
    else:
        xt = nice_ticks(max(costs) * 1.08)
        span = xt[-1] or 1.0

        def x(v: float) -> float:
            return inner_left + (inner_right - inner_left) * v / span

    def y(v: float) -> float:
        return bottom - (bottom - top) * v

    name, threshold = pick["metric"], pick["threshold"]
    svg = Svg(c["width"], c["height"], "cost", f"{name} against cost per 1,000 inputs")
    svg.rect(left, top, right - left, bottom - top, None, "frame")
    y_ticks(svg, left, right, [(y(v), f"{v:g}") for v in (0, 0.25, 0.5, 0.75, 1)])
    x_ticks(svg, [(x(v), money(v, currency)) for v in xt], bottom + 16, (top, bottom))
    estimated = any(r["basis"] == "estimate" for r in rows)
    svg.text((left + right) / 2, bottom + 34, f"cost per 1,000 inputs ({currency}{', log scale' if log else ''})",
             "middle", "axis-label")
    if threshold is not None:
        svg.line(left, y(threshold), right, y(threshold), "threshold", title=f"threshold {threshold:g}")
    front = sorted((r for r in rows if r["best"]), key=lambda r: (r["per_1k"], -r["value"]))
    if len(front) > 1:
        steps = [(x(front[0]["per_1k"]), y(front[0]["value"]))]
        for a, b in zip(front, front[1:]):
            steps += [(x(b["per_1k"]), y(a["value"])), (x(b["per_1k"]), y(b["value"]))]
        svg.path(steps, None, "front-line")
    for r in rows:
        px, py = x(r["per_1k"]), y(r["value"])
        how = "estimated" if r["basis"] == "estimate" else "from reported usage"
        tip = f"{r['cell']}: {name} {metric(r['value'])}, {money(r['per_1k'], currency)} per 1,000 inputs ({how})"
        m = 8 if r["best"] else 5
        svg.boxes.append((px - m, py - m, px + m, py + m))     # a label must not cover a point
        if r["best"]:
            svg.circle(px, py, 7.5, None, "front", tip, stroke=colour[r["model"]])
        if r["basis"] == "estimate":
            svg.circle(px, py, 4, None, "point hollow", tip, stroke=colour[r["model"]])
        else:
            svg.circle(px, py, 4, colour[r["model"]], "point", tip)
    # Dimension next to each point where it fits: right, left, above, below; the best first.
    for r in sorted(rows, key=lambda r: not r["best"]):
        px, py, label = x(r["per_1k"]), y(r["value"]), str(r["dimension"])
        for dx, dy, anchor in ((10, 4, "start"), (-10, 4, "end"), (0, -10, "middle"), (0, 17, "middle")):
            if svg.text(px + dx, py + dy, label, anchor, "point-label", full=f"{r['cell']}"):
                break
    if threshold is not None:
        _threshold_label(svg, threshold, y(threshold), left, right)
    legend = [{"name": m, "color": colour[m]} for m in models if any(r["model"] == m for r in rows)]
    legend.append({"name": "best for its cost (Pareto front)", "shape": "ring", "color": "currentColor"})
    if estimated:
        legend.append({"name": "cost estimated (not executed)", "shape": "hollow", "color": "currentColor"})
    if threshold is not None:
        legend.append({"name": f"threshold {threshold:g}", "shape": "dash"})
    used = svg.legend_height(legend)
    svg.height += used + 4
    svg.legend(legend, c["height"] + 2)
    out = svg.to_dict()
    out["points"] = [{"cell": r["cell"], "x": round(x(r["per_1k"]), 1), "y": round(y(r["value"]), 1),
                      "best": r["best"]} for r in rows]
    return out


def heatmaps(summary: Summary, folder: Path) -> list[dict]:
    """Cosine between every pair of inputs, per executed cell, for small input sets."""
    run = RunReader(folder)
    out = []
    h = HEATMAP
    for cell in summary.cells:
        if len(out) >= h["max_cells"] or not cell.executed:
            continue
        try:
            vec = run.vectors(cell.id)
        except FolderError:
            continue
        if vec is None or not 1 < len(vec.ids) <= h["max_inputs"] or not np.isfinite(vec.matrix).all():
            continue
        sims = M.cosine_matrix(vec.matrix, vec.matrix)
        off = sims[~np.eye(len(vec.ids), dtype=bool)]
        lo, hi = float(off.min()), 1.0
        span = hi - lo if hi > lo else 1.0
        n = len(vec.ids)
        size = h["big_cell_px"] if n <= h["big_up_to"] else h["cell_px"]
        labels = [shorten(i, h["max_label"]) for i in vec.ids]
        label = max(text_width(s) for s in labels) + 8
        grid = n * size
        legend_h = 40
        svg = Svg(label + grid + 8, label + grid + 8 + legend_h, "heatmap", f"cosine between inputs, {cell.id}")
        for i, (s, full) in enumerate(zip(labels, vec.ids)):
            svg.text(label - 4, label + i * size + size / 2 + 4, s, "end", "tick", full=full, force=True)
            svg.text(label + i * size + size / 2 + 4, label - 4, s, "start", "tick", full=full, rotate=True,
                     force=True)
        rects = []
        for i in range(n):
            for j in range(n):
                t = (float(sims[i, j]) - lo) / span
                r = {"x": label + j * size, "y": label + i * size, "size": size, "fill": _ramp(t),
                     "title": f"{vec.ids[i]} · {vec.ids[j]}: {sims[i, j]:.3f}"}
                rects.append(r)
                svg.rect(r["x"], r["y"], size, size, r["fill"], "cell", r["title"])
                if n <= h["big_up_to"]:
                    shown = f"{float(sims[i, j]) + 0.0:.2f}".replace("-0.00", "0.00")
                    svg.text(r["x"] + size / 2, r["y"] + size / 2 + 3, shown, "middle", "in-cell",
                             size=9, force=True, fill="#fff" if t > 0.6 else "#1b1f24")
        # Colour scale: ten steps from the lowest cosine to 1, numbers under its ends and middle.
        y0, w = label + grid + 10, min(grid, 200)
        x0 = label + (grid - w) / 2
        for k in range(10):
            svg.rect(x0 + k * w / 10, y0, w / 10 + 0.3, 10, _ramp(k / 9), "legend")
        for v, anchor, at in ((lo, "start", x0), ((lo + 1) / 2, "middle", x0 + w / 2), (1.0, "end", x0 + w)):
            svg.text(at, y0 + 24, f"{v:.2f}", anchor, "tick legend")
        d = svg.to_dict()
        d.update({"cell": cell.id, "ids": vec.ids, "rects": rects, "size": size, "label": label,
                  "min": round(lo, 3)})
        out.append(d)
    return out


def _ramp(t: float) -> str:
    t = min(max(t, 0.0), 1.0) * (len(RAMP) - 1)
    i = min(int(t), len(RAMP) - 2)
    f = t - i
    rgb = [round(a + (b - a) * f) for a, b in zip(RAMP[i], RAMP[i + 1])]
    return "#%02x%02x%02x" % tuple(rgb)


def latency_chart(summary: Summary) -> dict | None:
    """Median and 95th-percentile latency per cell, as horizontal bars with a millisecond axis;
    cells grouped under their model's name and labelled by dimension, so no label is cut."""
    cells = [c for c in summary.cells if c.latency_ms]
    if not cells:
        return None
    b = BARS
    series = [("p50", "median", PALETTE[0]), ("p95", "95th percentile", PALETTE[4])]
    models = list(dict.fromkeys(c.model for c in cells))

    def label(c: SummaryCell) -> str:
        return str(c.dimension) if c.dimension is not None else shorten(c.id, b["max_label"])

    label_w = max(text_width(label(c)) for c in cells) + 10
    values = [c.latency_ms[k] for c in cells for k, _, _ in series]
    value_w = max(text_width(duration(v), 10) for v in values) + 8
    ticks = nice_ticks(max(values))
    left, right = label_w, b["width"] - value_w
    row, head = len(series) * b["bar"] + b["gap"], 18
    bottom = b["top"] + len(models) * head + len(cells) * row
    svg = Svg(b["width"], bottom + b["axis"], "bars", "latency per cell")

    def x(v: float) -> float:
        return left + (right - left) * v / (ticks[-1] or 1)

    svg.legend([{"name": n, "color": col} for _, n, col in series], 4, left)
    for t in ticks:
        svg.line(x(t), b["top"] - 4, x(t), bottom, "grid")
    x_ticks(svg, [(x(t), duration(t)) for t in ticks], bottom + 16, (b["top"], bottom))
    y0 = b["top"]
    for model in models:
        svg.text(4, y0 + 13, shorten(str(model), b["width"] - 8), "start", "group", full=str(model), force=True)
        y0 += head
        for cell in (c for c in cells if c.model == model):
            svg.text(left - 6, y0 + len(series) * b["bar"] / 2 + 3, label(cell), "end", "tick", full=cell.id,
                     force=True)
            for k, (key, name, col) in enumerate(series):
                v = cell.latency_ms[key]
                yk = y0 + k * b["bar"]
                svg.rect(left, yk, x(v) - left, b["bar"] - 2, col, "bar", f"{cell.id} {name}: {duration(v)}")
                svg.text(x(v) + 4, yk + b["bar"] - 3, duration(v), "start", "value", force=True, size=10)
            y0 += row
    return svg.to_dict()
