"""`harness diff --html FILE`: the comparison of two runs as one self-contained page.

Per pair of cells: the retrieval metrics of A and B with their delta, the distribution of the
per-input cosine between A's and B's vector of the same input (histogram and box, inline SVG),
and the inputs that moved most. As in the run's report, Python computes the geometry and the
template only draws it: no script, no remote resource, light and dark from the reader's system.
"""

from __future__ import annotations

import functools
import math
from pathlib import Path

import jinja2

from harness.audit.diff import DiffReport
from harness.words import counted

TEMPLATES = Path(__file__).parent.parent / "report" / "templates"

# The cosine plot, in SVG user units: narrow enough that a 420 px screen shows it unscaled.
PLOT = {"width": 360, "height": 196, "left": 40, "right": 14, "box_top": 8, "box_height": 16,
        "top": 36, "bottom": 46}
TICKS = 5


@functools.lru_cache(maxsize=1)
def _env() -> jinja2.Environment:
    """One environment per process: compiling the page template costs more than rendering it."""
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATES)), autoescape=True,
                             undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True,
                             keep_trailing_newline=True)
    env.filters["num"] = lambda x, digits=3: "–" if x is None else f"{x:.{digits}f}"
    env.filters["signed"] = lambda x, digits=3: f"{x:+.{digits}f}"
    env.filters["counted"] = counted
    return env


def tick_label(value: float, step: float) -> str:
    """A tick value with just the decimals its spacing needs (0.99975, not 0.9997500)."""
    digits = min(max(math.ceil(-math.log10(step)) + 1, 1), 8)
    text = f"{value:.{digits}f}".rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def cosine_plot(dist: dict) -> dict:
    """Histogram bars, box (quartiles, whiskers min–max) and axes for one cell pair."""
    p = PLOT
    lo, hi, counts = dist["lo"], dist["hi"], dist["counts"]
    x0, x1 = p["left"], p["width"] - p["right"]
    top, bottom = p["top"], p["height"] - p["bottom"]
    span = hi - lo

    def x(v: float) -> float:
        return round(x0 + (x1 - x0) * (min(max(v, lo), hi) - lo) / span, 2)

    most = max(counts) or 1
    width = (x1 - x0) / len(counts)
    bars = []
    for i, n in enumerate(counts):
        a, b = lo + span * i / len(counts), lo + span * (i + 1) / len(counts)
        h = (bottom - top) * n / most
        bars.append({"x": round(x0 + i * width, 2), "w": round(width - 1, 2), "y": round(bottom - h, 2),
                     "h": round(h, 2), "title": f"{n} input{'s' if n != 1 else ''} with cosine "
                     f"{tick_label(a, span / len(counts))}–{tick_label(b, span / len(counts))}"})
    step = span / (TICKS - 1)
    xticks = [{"x": x(lo + i * step), "label": tick_label(lo + i * step, step),
               "anchor": "start" if i == 0 else ("end" if i == TICKS - 1 else "middle")} for i in range(TICKS)]
    yticks = [{"y": round(bottom - (bottom - top) * n / most, 2), "label": str(n)}
              for n in sorted({0, most // 2, most}) if n or most == 1]
    q = dist["quartiles"]
    mid = p["box_top"] + p["box_height"] / 2
    box = {"min": x(q[0]), "q1": x(q[1]), "median": x(q[2]), "q3": x(q[3]), "max": x(q[4]),
           "top": p["box_top"], "height": p["box_height"], "mid": mid,
           "title": "min {} · q1 {} · median {} · q3 {} · max {}".format(*(f"{v:.6f}" for v in q))}
    return {**p, "plot_left": x0, "plot_right": x1, "plot_top": top, "plot_bottom": bottom,
            "bars": bars, "xticks": xticks, "yticks": yticks, "box": box,
            "axis_title_y": p["height"] - 8, "axis_mid": round((x0 + x1) / 2, 2)}


def sections(r: DiffReport) -> list[dict]:
    """One section per compared pair of cells: its vector comparison and its metric deltas."""
    out = []
    for v in r.vectors:
        rows = []
        for m in r.metrics:
            if (m["a"], m["b"]) != (v["a"], v["b"]):
                continue
            for name, d in m["metrics"].items():
                outside = r.metric_tolerance is not None and abs(d["delta"]) > r.metric_tolerance
                rows.append({"check": m["check"], "metric": name, **d, "outside": outside,
                             "trend": "up" if d["delta"] > 0 else ("down" if d["delta"] < 0 else "same")})
        compared = v["status"] == "compared"
        need = 1 - r.tolerance if r.tolerance is not None else None
        out.append({"a": v["a"], "b": v["b"], "title": v["a"] if v["a"] == v["b"] else f"{v['a']} ↔ {v['b']}",
                    "v": v, "metrics": rows, "plot": cosine_plot(v["distribution"]) if compared else None,
                    "moved": [{**w, "below": need is not None and w["cosine"] < need}
                              for w in v.get("worst", []) if w["cosine"] < 1.0]})
    return out


def render_diff_html(r: DiffReport) -> bytes:
    page = _env().get_template("diff.html.j2").render(r=r, sections=sections(r))
    return page.encode("utf-8")
