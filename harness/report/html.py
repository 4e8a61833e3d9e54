"""The self-contained HTML report: tables and inline SVG plots, no script, no network.

Python computes the geometry (positions, sizes, colours) as plain data and the Jinja2
template only draws it, so the plots are testable numbers and the page opens anywhere,
including an air-gapped auditor's laptop.
"""

from __future__ import annotations

from pathlib import Path

import jinja2
import numpy as np

from harness import metrics as M
from harness.execute.results import brief_reason

TEMPLATES = Path(__file__).parent / "templates"

# Plot layout, in SVG user units.
CHART = {"width": 480, "height": 240, "left": 48, "right": 190, "top": 24, "bottom": 40}
BAR = {"width": 640, "row": 22, "left": 230, "right": 90, "top": 24}
HEATMAP = {"max_inputs": 40, "max_cells": 8, "cell_px": 18, "big_cell_px": 30, "big_up_to": 12, "label": 130}
MAX_QUALITY_METRICS = 6
PALETTE = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf"]
# Heatmap colour ramp: low cosine -> high cosine.
RAMP = [(247, 251, 255), (198, 219, 239), (107, 174, 214), (33, 113, 181), (8, 48, 107)]


def _env() -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATES)), autoescape=True,
                             undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True,
                             keep_trailing_newline=True)
    env.filters["num"] = lambda x, digits=3: "–" if x is None else (f"{x:.{digits}f}" if isinstance(x, float) else str(x))
    env.filters["brief"] = brief_reason     # the full reason is on the first execution line
    env.filters["money"] = lambda x: "–" if x is None else (f"{x:.6f}".rstrip("0").rstrip(".") or "0")
    return env


def _ramp(t: float) -> str:
    t = min(max(t, 0.0), 1.0) * (len(RAMP) - 1)
    i = min(int(t), len(RAMP) - 2)
    f = t - i
    rgb = [round(a + (b - a) * f) for a, b in zip(RAMP[i], RAMP[i + 1])]
    return "#%02x%02x%02x" % tuple(rgb)


def quality_charts(summary: dict) -> list[dict]:
    """Quality versus output dimension, one chart per (retrieval check, metric), one line per model.

    Dimensions sit at even steps in ascending order (they are usually powers of two).
    """
    charts = []
    by_check: dict[str, list[dict]] = {}
    for q in summary.get("quality") or []:
        by_check.setdefault(q["check"], []).append(q)
    for check, rows in by_check.items():
        names = list(dict.fromkeys(m for r in rows for m in r["metrics"]))
        wanted = [m for m in names if m in rows[0]["thresholds"]] + [m for m in names if m not in rows[0]["thresholds"]]
        dims = sorted({int(r["dimension"]) for r in rows if r.get("dimension") is not None})
        models = list(dict.fromkeys(r["model"] for r in rows))
        c = CHART
        pw, ph = c["width"] - c["left"] - c["right"], c["height"] - c["top"] - c["bottom"]

        def x(d: int) -> float:
            return c["left"] + (pw / 2 if len(dims) == 1 else pw * dims.index(d) / (len(dims) - 1))

        def y(v: float) -> float:
            return c["top"] + ph * (1 - v)

        for metric in wanted[:MAX_QUALITY_METRICS]:
            series = []
            for n, model in enumerate(models):
                pts = sorted((int(r["dimension"]), r["metrics"][metric]) for r in rows
                             if r["model"] == model and metric in r["metrics"] and r.get("dimension") is not None)
                points = [{"x": round(x(d), 1), "y": round(y(v), 1), "dimension": d, "value": v} for d, v in pts]
                series.append({"model": model, "label": model if len(model) <= 28 else model[:27] + "…", "color": PALETTE[n % len(PALETTE)], "points": points,
                               "path": " ".join(f"{p['x']},{p['y']}" for p in points)})
            threshold = rows[0]["thresholds"].get(metric)
            charts.append({
                "title": f"{check}: {metric} by output dimension", "metric": metric, **c,
                "series": series,
                "xticks": [{"x": round(x(d), 1), "label": d} for d in dims],
                "yticks": [{"y": round(y(v), 1), "label": f"{v:g}"} for v in (0.0, 0.25, 0.5, 0.75, 1.0)],
                "threshold": None if threshold is None else {"y": round(y(threshold), 1), "value": threshold},
                "plot_right": c["width"] - c["right"], "plot_bottom": c["height"] - c["bottom"],
            })
    return charts


def heatmaps(summary: dict, folder: Path) -> list[dict]:
    """Cosine between every pair of inputs, per executed cell, for small input sets."""
    from harness.folder import FolderError, RunReader

    run = RunReader(folder)
    out = []
    h = HEATMAP
    for cell in summary.get("cells") or []:
        if len(out) >= h["max_cells"] or not cell.get("executed"):
            continue
        try:
            vec = run.vectors(cell["id"])
        except FolderError:
            continue
        if vec is None or not 1 < len(vec.ids) <= h["max_inputs"] or not np.isfinite(vec.matrix).all():
            continue
        sims = M.cosine_matrix(vec.matrix, vec.matrix)
        off = sims[~np.eye(len(vec.ids), dtype=bool)]
        lo, hi = float(off.min()), 1.0
        span = hi - lo if hi > lo else 1.0
        size = h["big_cell_px"] if len(vec.ids) <= h["big_up_to"] else h["cell_px"]
        label = h["label"]
        rects = [{"x": label + j * size, "y": label + i * size, "size": size,
                  "fill": _ramp((float(sims[i, j]) - lo) / span),
                  "title": f"{vec.ids[i]} · {vec.ids[j]}: {sims[i, j]:.3f}",
                  "text": f"{sims[i, j]:.2f}" if len(vec.ids) <= h["big_up_to"] else "",
                  "dark": (float(sims[i, j]) - lo) / span > 0.6}
                 for i in range(len(vec.ids)) for j in range(len(vec.ids))]
        n = len(vec.ids)
        out.append({"cell": cell["id"], "ids": vec.ids, "rects": rects, "size": size, "label": label,
                    "width": label + n * size + 8, "height": label + n * size + 8,
                    "rows": [{"y": label + i * size + size / 2, "id": v} for i, v in enumerate(vec.ids)],
                    "cols": [{"x": label + j * size + size / 2, "id": v} for j, v in enumerate(vec.ids)],
                    "min": round(lo, 3)})
    return out


def bar_chart(title: str, unit: str, rows: list[tuple[str, list[tuple[str, float]]]]) -> dict | None:
    """Horizontal bars, one row per cell, one or more bars (series) per row."""
    values = [v for _, bars in rows for _, v in bars]
    if not values:
        return None
    b = BAR
    top = max(values) or 1.0
    pw = b["width"] - b["left"] - b["right"]
    series = list(dict.fromkeys(s for _, bars in rows for s, _ in bars))
    per = b["row"] / max(len(series), 1)
    items = []
    for i, (label, bars) in enumerate(rows):
        y0 = b["top"] + i * (b["row"] + 8)
        for s, v in bars:
            k = series.index(s)
            items.append({"x": b["left"], "y": round(y0 + k * per, 1), "w": round(pw * v / top, 1),
                          "h": round(per - 1, 1), "color": PALETTE[k % len(PALETTE)],
                          "title": f"{label} {s}: {v:g} {unit}", "value": f"{v:g}", "label_x": round(b["left"] + pw * v / top + 4, 1)})
    return {"title": title, "unit": unit, "width": b["width"], "left": b["left"],
            "height": b["top"] + len(rows) * (b["row"] + 8) + 10,
            "labels": [{"y": b["top"] + i * (b["row"] + 8) + b["row"] / 2, "text": label} for i, (label, _) in enumerate(rows)],
            "bars": items, "legend": [{"name": s, "color": PALETTE[k % len(PALETTE)], "x": b["left"] + k * 110} for k, s in enumerate(series)]}


def cell_charts(summary: dict) -> list[dict]:
    cells = [c for c in summary.get("cells") or [] if c.get("latency_ms") or c.get("usage")]
    charts = [bar_chart("Latency per cell", "ms", [
        (c["id"], [(k, c["latency_ms"][k]) for k in ("p50", "p95", "max")]) for c in cells if c.get("latency_ms")])]
    keys = list(dict.fromkeys(k for c in cells for k in (c.get("usage") or {})))
    for key in keys[:4]:
        charts.append(bar_chart(f"Usage per cell: {key}", key, [
            (c["id"], [(key, float(c["usage"][key]))]) for c in cells if key in (c.get("usage") or {})]))
    return [c for c in charts if c]


def render_html(summary: dict, folder: Path) -> bytes:
    page = _env().get_template("report.html.j2").render(
        s=summary, quality=quality_charts(summary), heatmaps=heatmaps(summary, Path(folder)),
        cell_charts=cell_charts(summary))
    return page.encode("utf-8")
