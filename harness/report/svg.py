"""Text metrics and SVG primitives for the report's plots.

Labels are measured with the advance widths of the font the SVG text asks for first (DejaVu Sans;
Verdana is as wide, other fallbacks are narrower), so a label that does not fit is shortened (its
full text in a hover <title>) or left out rather than drawn over another. A plot is plain data
(positions, sizes, colours): the page's template only draws it.
"""

from __future__ import annotations

import math
import unicodedata

FONT = 11                  # px, SVG text
# DejaVu Sans advance widths of ASCII 32..126, in hundredths of an em (measured in Chromium).
_ADVANCE = [32, 40, 46, 84, 64, 95, 78, 27, 39, 39, 50, 84, 32, 36, 32, 34, 64, 64, 64, 64, 64, 64, 64, 64, 64,
            64, 34, 34, 84, 84, 84, 53, 100, 68, 69, 70, 77, 63, 58, 77, 75, 29, 29, 66, 56, 86, 75, 79, 60, 79,
            69, 63, 61, 73, 68, 99, 69, 61, 69, 39, 34, 39, 84, 50, 50, 61, 63, 55, 63, 62, 35, 63, 63, 28, 28,
            58, 28, 97, 63, 61, 63, 63, 41, 52, 39, 63, 59, 82, 59, 59, 52, 64, 34, 64, 84]
ASCENT, DESCENT = 0.93, 0.24   # of an em: the box Chromium reports for a line of SVG text


def text_width(text: str, size: float = FONT) -> float:
    em = 0.0
    for ch in text:
        o = ord(ch)
        if 32 <= o < 127:
            em += _ADVANCE[o - 32] / 100
        elif unicodedata.east_asian_width(ch) in "WF":
            em += 1.0
        else:
            em += 0.84    # wide enough for ≥ → × ¥ … and most Latin letters
    return em * size


def shorten(text: str, width: float, size: float = FONT) -> str:
    """`text`, or its start and end around an ellipsis, at most `width` wide (ids differ at both
    ends: a model's family first, its dimension last)."""
    if text_width(text, size) <= width:
        return text
    keep_end = max(1, len(text) // 3)
    head, tail = text[:len(text) - keep_end], text[len(text) - keep_end:]
    while head or tail:
        if len(head) >= len(tail) and head:
            head = head[:-1]
        elif tail:
            tail = tail[1:]
        out = head + "…" + tail
        if text_width(out, size) <= width:
            return out
    return "…"


class Svg:
    """One plot: primitives for the template plus the boxes of the text already placed, so a new
    label can be tested against them (and against the plot's edges) before it is drawn."""

    def __init__(self, width: float, height: float, kind: str, title: str):
        self.width, self.height, self.kind, self.title = width, height, kind, title
        self.items: list[dict] = []
        self.boxes: list[tuple[float, float, float, float]] = []

    def box(self, x: float, y: float, text: str, anchor: str = "start", size: float = FONT,
            rotate: bool = False) -> tuple[float, float, float, float]:
        w = text_width(text, size)
        if rotate:      # rotated -90° about (x, y): reads upwards, ends at y
            return (x - ASCENT * size, y - w, x + DESCENT * size, y)
        x0 = x - {"start": 0, "middle": w / 2, "end": w}[anchor]
        return (x0, y - ASCENT * size, x0 + w, y + DESCENT * size)

    def free(self, b: tuple[float, float, float, float], pad: float = 1.0) -> bool:
        if b[0] < 0 or b[1] < 0 or b[2] > self.width or b[3] > self.height:
            return False
        return all(b[2] + pad <= o[0] or o[2] + pad <= b[0] or b[3] + pad <= o[1] or o[3] + pad <= b[1]
                   for o in self.boxes)

    def text(self, x: float, y: float, text: str, anchor: str = "start", cls: str = "", full: str | None = None,
             size: float = FONT, rotate: bool = False, force: bool = False, fill: str | None = None) -> bool:
        """Place a label if it fits where asked; `force` for labels laid out not to collide."""
        b = self.box(x, y, text, anchor, size, rotate)
        if not force and not self.free(b):
            return False
        self.boxes.append(b)
        self.items.append({"t": "text", "x": round(x, 1), "y": round(y, 1), "s": text, "anchor": anchor,
                           "cls": cls, "full": full if full and full != text else None, "size": size,
                           "rotate": rotate, "fill": fill})
        return True

    def line(self, x1, y1, x2, y2, cls: str = "grid", stroke: str | None = None, title: str | None = None) -> None:
        self.items.append({"t": "line", "x1": round(x1, 1), "y1": round(y1, 1), "x2": round(x2, 1),
                           "y2": round(y2, 1), "cls": cls, "stroke": stroke, "title": title})

    def rect(self, x, y, w, h, fill: str | None = None, cls: str = "", title: str | None = None) -> None:
        self.items.append({"t": "rect", "x": round(x, 1), "y": round(y, 1), "w": round(max(w, 0), 1),
                           "h": round(h, 1), "fill": fill, "cls": cls, "title": title})

    def circle(self, cx, cy, r, fill: str | None, cls: str = "", title: str | None = None,
               stroke: str | None = None) -> None:
        self.items.append({"t": "circle", "x": round(cx, 1), "y": round(cy, 1), "r": r, "fill": fill,
                           "cls": cls, "title": title, "stroke": stroke})

    def path(self, points: list[tuple[float, float]], stroke: str | None, cls: str = "series",
             width: float | None = None) -> None:
        self.items.append({"t": "path", "points": " ".join(f"{round(x, 1)},{round(y, 1)}" for x, y in points),
                           "stroke": stroke, "cls": cls, "width": width})

    def legend(self, entries: list[dict], top: float, left: float = 8) -> float:
        """Swatches and names in rows that wrap at the plot's width; returns the height used."""
        x, y, row = left, top, 16
        for e in entries:
            label = shorten(e["name"], self.width - left - 30)
            w = 16 + text_width(label) + 14
            if x > left and x + w > self.width - 4:
                x, y = left, y + row
            shape = e.get("shape", "rect")
            if shape == "ring":
                self.circle(x + 5, y + 5, 5, None, "legend front", stroke=e.get("color"))
            elif shape == "hollow":
                self.circle(x + 5, y + 5, 4, None, "legend hollow", stroke=e.get("color"))
            elif shape == "dash":
                self.line(x, y + 5, x + 12, y + 5, "legend threshold")
            elif shape == "bar":
                self.line(x + 5, y, x + 5, y + 10, "legend errbar")
                for yy in (y, y + 10):
                    self.line(x + 2, yy, x + 8, yy, "legend errbar")
            else:
                self.rect(x, y, 10, 10, e.get("color"), "legend")
            self.text(x + 16, y + 9, label, cls="legend", full=e["name"], force=True)
            x += w
        return y + row - top

    def legend_height(self, entries: list[dict], left: float = 8) -> float:
        """The height `legend` will take for `entries`, to make room for it first."""
        x, rows = left, 1
        for e in entries:
            w = 16 + text_width(shorten(e["name"], self.width - left - 30)) + 14
            if x > left and x + w > self.width - 4:
                x, rows = left, rows + 1
            x += w
        return rows * 16

    def to_dict(self) -> dict:
        return {"kind": self.kind, "title": self.title, "width": round(self.width), "height": round(self.height),
                "items": self.items}


def nice_ticks(top: float, n: int = 5) -> list[float]:
    """0 and round steps (1, 2, 2.5 or 5 × 10^k) up to at least `top`."""
    if top <= 0:
        return [0.0, 1.0]
    raw = top / n
    mag = 10 ** math.floor(math.log10(raw))
    step = next(s * mag for s in (1, 2, 2.5, 5, 10) if s * mag >= raw)
    return [round(i * step, 12) for i in range(int(math.ceil(top / step - 1e-9)) + 1)]


def x_ticks(svg: Svg, ticks: list[tuple[float, str]], y: float, plot: tuple[float, float]) -> None:
    """Tick marks for all; labels left to right, a label that would touch a kept one is left out."""
    for x, label in ticks:
        svg.line(x, plot[1], x, plot[1] + 4, "axis")
        svg.text(x, y, label, "middle", "tick")


def y_ticks(svg: Svg, left: float, right: float, ticks: list[tuple[float, str]]) -> None:
    for y, label in ticks:
        svg.line(left, y, right, y, "grid")
        svg.text(left - 6, y + 4, label, "end", "tick")


def value_range(values: list[float]) -> tuple[float, float, list[float]]:
    """A y range in [0, 1] around `values` (points, interval bounds, a threshold) with round ticks: points
    that differ by 0.04 stay apart, which an axis from 0 to 1 would pile up."""
    lo, hi = min(values), max(values)
    span = max(hi - lo, 0.08)
    step = next(s for s in (0.01, 0.02, 0.025, 0.05, 0.1, 0.2, 0.25) if span / s <= 5)
    lo = max(0.0, math.floor((lo - span * 0.08) / step) * step)
    hi = min(1.0, math.ceil((hi + span * 0.08) / step) * step)
    ticks = [round(lo + i * step, 6) for i in range(int(round((hi - lo) / step)) + 1)]
    return lo, hi, ticks


def error_bar(svg: Svg, x: float, y0: float, y1: float, colour: str, title: str) -> None:
    """An interval as a vertical bar with caps (y0, y1: its bounds on the page)."""
    svg.line(x, y0, x, y1, "errbar", stroke=colour, title=title)
    for yy in (y0, y1):
        svg.line(x - 3, yy, x + 3, yy, "errbar", stroke=colour)


def column_labels(svg: Svg, points: list[tuple[float, float, str, str]], lowest: float, highest: float) -> None:
    """Labels for points that share an x (a model's dimensions cost the same per input): in a column beside
    them, in the points' vertical order, at least a line apart, each joined to its point when moved.
    `points`: (x, y, label, full text). Right of the column where it fits, else left; else each alone."""
    points = sorted(points, key=lambda p: p[1])
    gap = 14.0
    want = [p[1] + 4 for p in points]
    placed: list[float] = []
    for w in want:
        placed.append(max(w, placed[-1] + gap) if placed else w)
    over = placed[-1] - highest if placed else 0
    if over > 0:
        placed = [v - over for v in placed]
        for i in range(len(placed) - 2, -1, -1):
            placed[i] = min(placed[i], placed[i + 1] - gap)
    placed = [max(v, lowest + i * gap) for i, v in enumerate(placed)]
    xs = max(p[0] for p in points)
    for dx, anchor in ((12, "start"), (-12, "end")):
        edge = (xs if dx > 0 else min(p[0] for p in points)) + dx
        boxes = [svg.box(edge, ly, p[2], anchor) for p, ly in zip(points, placed)]
        if all(svg.free(b) for b in boxes) and all(
                a[3] + 1 <= b[1] or b[3] + 1 <= a[1] for i, a in enumerate(boxes) for b in boxes[i + 1:]):
            for (px, py, label, full), ly in zip(points, placed):
                svg.text(edge, ly, label, anchor, "point-label", full=full)
                if abs(ly - 4 - py) > 2:
                    svg.line(px + (5 if dx > 0 else -5), py, edge - (2 if dx > 0 else -2), ly - 4, "leader")
            return
    for px, py, label, full in points:     # no room for a column: each where it fits, or only in its tooltip
        for ddx, dy, anchor in ((10, 4, "start"), (-10, 4, "end"), (0, -10, "middle"), (0, 17, "middle")):
            if svg.text(px + ddx, py + dy, label, anchor, "point-label", full=full):
                break
