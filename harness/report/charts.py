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
from harness.report.svg import (
    Svg,
    column_labels,
    error_bar,
    nice_ticks,
    shorten,
    text_width,
    value_range,
    x_ticks,
    y_ticks,
)

PALETTE = ["#2f6fdf", "#d1453b", "#2a9d4b", "#8e5bd0", "#d98200", "#1a9fb0", "#c2478f", "#7a6a58"]
# Heatmap colour ramp: low cosine -> high cosine.
RAMP = [(247, 251, 255), (198, 219, 239), (107, 174, 214), (33, 113, 181), (8, 48, 107)]
HEATMAP = {"max_inputs": 40, "max_cells": 8, "cell_px": 18, "big_cell_px": 30, "big_up_to": 12, "max_label": 150}
QUALITY = {"width": 440, "height": 250, "left": 44, "right": 14, "top": 14, "bottom": 54}
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


def size(n: float | None) -> str:
    """Bytes in decimal units, two significant digits below 10: 61,440 -> 61 KB, 1.536e9 -> 1.5 GB."""
    if n is None:
        return "–"
    for unit, scale in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("KB", 1e3)):
        if n >= scale * 0.9995:
            v = n / scale
            return f"{v:.1f} {unit}" if v < 9.95 else f"{v:,.0f} {unit}"
    return f"{n:.0f} B"


def metric(v: float | None) -> str:
    return "–" if v is None else f"{v:.3f}"


# --------------------------------------------------------------------------- what the run says

def _colours(models: list[str]) -> dict[str, str]:
    return {m: PALETTE[i % len(PALETTE)] for i, m in enumerate(models)}


def retrieval_checks(summary: Summary) -> dict[str, list[Quality]]:
    by_check: dict[str, list[Quality]] = {}
    for q in summary.quality:
        by_check.setdefault(q.check, []).append(q)
    return by_check


def metric_order(rows: list[Quality]) -> list[str]:
    """Thresholded metrics first, in the spec's order (summary.json sorts object keys, so the
    order comes from `threshold_order`), then the others."""
    names = list(dict.fromkeys(m for r in rows for m in r.metrics))
    asked = rows[0].threshold_order or list(rows[0].thresholds)
    first = [m for m in asked if m in names]
    return first + [m for m in names if m not in first]


def quality_charts(summary: Summary) -> list[dict]:
    """Quality against output dimension on a log-2 axis, one chart per (retrieval check, metric),
    every model a series, its intervals as bars, the threshold dashed; under each dimension the size of a
    million of its vectors. A check whose cells share one dimension gets no chart (`quality_table`)."""
    charts = []
    for check, rows in retrieval_checks(summary).items():
        rows = [r for r in rows if r.dimension is not None]
        dims = sorted({int(r.dimension) for r in rows})
        if len(dims) < 2:
            continue
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

        for name in metric_order(rows)[:MAX_QUALITY_METRICS]:
            threshold = rows[0].thresholds.get(name)
            svg = Svg(c["width"], c["height"], "quality", f"{check}: {name} by output dimension")
            svg.rect(left, top, right - left, bottom - top, None, "frame")
            y_ticks(svg, left, right, [(y(v), f"{v:g}") for v in (0, 0.25, 0.5, 0.75, 1)])
            x_ticks(svg, [(x(d), str(d)) for d in dims], bottom + 16, (top, bottom))
            for d in dims:
                svg.text(x(d), bottom + 29, size(4 * d * 1_000_000), "middle", "tick storage", size=9)
            svg.text((left + right) / 2, bottom + 44, "output dimension (log scale) · float32 size of 1M vectors",
                     "middle", "axis-label")
            if threshold is not None:
                svg.line(left, y(threshold), right, y(threshold), "threshold", title=f"threshold {threshold:g}")
            series = []
            for model in models:
                pts = sorted((int(r.dimension), r.metrics[name]) for r in rows
                             if r.model == model and r.metrics.get(name) is not None)
                if not pts:
                    continue
                under = len(models) - 1 - models.index(model)      # series drawn later go on top
                intervals = {int(r.dimension): (r.intervals or {}).get(name) for r in rows
                             if r.model == model}
                # with intervals, each model's bars stand a little apart, so equal ones do not hide each other
                shift = (models.index(model) - (len(models) - 1) / 2) * 5 if any(intervals.values()) else 0.0
                svg.path([(x(d) + shift, y(v)) for d, v in pts], colour[model], width=2 + 1.75 * under)
                for d, v in pts:
                    iv = intervals.get(d)
                    tip = f"{model} at {d}: {name} {metric(v)}" + (f" [{iv[0]:.3f}, {iv[1]:.3f}]" if iv else "")
                    if iv:
                        error_bar(svg, x(d) + shift, y(iv[0]), y(iv[1]), colour[model], tip)
                    svg.circle(x(d) + shift, y(v), 3.5 + 1.5 * under, colour[model], "point", tip)
                    svg.boxes.append((x(d) + shift - 4, y(v) - 4, x(d) + shift + 4, y(v) + 4))
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


def cost_chart(rec) -> dict | None:
    """The headline metric (its interval as a bar) against cost per 1,000 inputs, one point per billed
    cell, the cells best for their cost ringed and joined, each labelled with its dimension (a model's
    dimensions share a cost: their labels stand in a column beside them). `rec`: a Recommendation.
    None when fewer than two cells are billed: one point is no chart (the table says it)."""
    if rec is None:
        return None
    rows = [o for o in rec.options if o.billed]
    if len(rows) < 2:
        return None
    c = SCATTER
    models = list(dict.fromkeys(o.model for o in rec.options))
    colour = _colours(models)
    currency = rows[0].currency
    left, right, top, bottom = c["left"], c["width"] - c["right"], c["top"], c["height"] - c["bottom"]
    costs = [o.per_1k for o in rows]
    inner_left, inner_right = left + 14, right - 60     # points stay off the frame, their labels inside it
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

    name, threshold = rec.metric, rec.threshold
    shown = [o.value for o in rows] + [v for o in rows for v in (o.interval or [])]
    y_lo, y_hi, yt = value_range(shown + ([threshold] if threshold is not None else []))

    def y(v: float) -> float:
        return bottom - (bottom - top) * (v - y_lo) / ((y_hi - y_lo) or 1)

    svg = Svg(c["width"], c["height"], "cost", f"{name} against cost per 1,000 inputs")
    svg.rect(left, top, right - left, bottom - top, None, "frame")
    y_ticks(svg, left, right, [(y(v), f"{v:g}") for v in yt])
    x_ticks(svg, [(x(v), money(v, currency)) for v in xt], bottom + 16, (top, bottom))
    estimated = any(o.basis == "estimate" for o in rows)
    svg.text((left + right) / 2, bottom + 34, f"cost per 1,000 inputs ({currency}{', log scale' if log else ''})",
             "middle", "axis-label")
    if threshold is not None:
        svg.line(left, y(threshold), right, y(threshold), "threshold", title=f"threshold {threshold:g}")
    front = sorted((o for o in rows if o.front), key=lambda o: (o.per_1k, -o.value))
    if len(front) > 1:
        steps = [(x(front[0].per_1k), y(front[0].value))]
        for a, b in zip(front, front[1:]):
            steps += [(x(b.per_1k), y(a.value)), (x(b.per_1k), y(b.value))]
        svg.path(steps, None, "front-line")
    columns: dict[float, list] = {}
    for o in rows:
        columns.setdefault(round(x(o.per_1k)), []).append(o)
    where: dict[str, tuple[float, float]] = {}
    for cx, group in columns.items():
        # Points of one column that would touch are spread sideways a little, in value order.
        group.sort(key=lambda o: -o.value)
        crowded = any(abs(y(a.value) - y(b.value)) < 9 for a, b in zip(group, group[1:]))
        for i, o in enumerate(group):
            shift = (i - (len(group) - 1) / 2) * 6 if crowded else 0.0
            where[o.cell] = (x(o.per_1k) + shift, y(o.value))
    for o in rows:
        px, py = where[o.cell]
        how = "estimated" if o.basis == "estimate" else "from reported usage"
        iv = f" [{o.interval[0]:.3f}, {o.interval[1]:.3f}]" if o.interval else ""
        tip = f"{o.cell}: {name} {metric(o.value)}{iv}, {money(o.per_1k, currency)} per 1,000 inputs ({how})"
        if o.interval:
            error_bar(svg, px, y(o.interval[0]), y(o.interval[1]), colour[o.model], tip)
        m = 8 if o.front else 5
        svg.boxes.append((px - m, py - m, px + m, py + m))     # a label must not cover a point
        if o.front:
            svg.circle(px, py, 7.5, None, "front", tip, stroke=colour[o.model])
        if o.basis == "estimate":
            svg.circle(px, py, 4, None, "point hollow", tip, stroke=colour[o.model])
        else:
            svg.circle(px, py, 4, colour[o.model], "point", tip)
    for group in columns.values():
        column_labels(svg, [(*where[o.cell], str(o.dimension) if o.dimension is not None else shorten(o.cell, 90),
                             o.cell) for o in group], top + 10, bottom - 2)
    if threshold is not None:
        _threshold_label(svg, threshold, y(threshold), left, right)
    legend = [{"name": m, "color": colour[m]} for m in models if any(o.model == m for o in rows)]
    legend.append({"name": "best for its cost (Pareto front)", "shape": "ring", "color": "currentColor"})
    if any(o.interval for o in rows):
        legend.append({"name": f"{round((1 - rec.alpha) * 100):g}% interval", "shape": "bar",
                       "color": "currentColor"})
    if estimated:
        legend.append({"name": "cost estimated (not executed)", "shape": "hollow", "color": "currentColor"})
    if threshold is not None:
        legend.append({"name": f"threshold {threshold:g}", "shape": "dash"})
    used = svg.legend_height(legend)
    svg.height += used + 4
    svg.legend(legend, c["height"] + 2)
    out = svg.to_dict()
    out["points"] = [{"cell": o.cell, "x": round(where[o.cell][0], 1), "y": round(where[o.cell][1], 1),
                      "best": o.front} for o in rows]
    return out


def heatmaps(summary: Summary, folder: Path) -> list[dict]:
    """Cosine between every pair of inputs, per executed cell, for small input sets."""
    run = RunReader(folder)
    out = []
    h = HEATMAP
    for cell in summary.cells:
        if len(out) >= h["max_cells"] or not cell.executed or cell.vectors > h["max_inputs"]:
            continue   # too many inputs to draw: the vectors file is not read at all (a 1M-text run's is GBs)
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
