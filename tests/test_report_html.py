"""The HTML report: self-contained, its plots drawn from the run's numbers, and it opens in
headless Chromium showing the run's cells and checks."""

from __future__ import annotations

import re
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest

from harness.checks.evaluate import evaluate_checks
from harness.report.charts import RAMP, heatmaps, quality_charts
from harness.report.finalize import finalize
from harness.report.summary import build_summary
from tests.test_checks_support import VECTORS, make_run, pad, unit

MODELS = ("qwen3-vl-embedding", "tongyi-vision")
DIMS = (4, 8)
CHECKS = [
    {"vectors": {"norm_min": 0.99, "norm_max": 1.01}},
    {"nearest": {"query": "dog-caption", "among": ["cat-photo", "dog-photo"], "expect": "dog-photo"}},
    {"retrieval": {"queries": {"cat-caption": ["cat-photo"], "dog-caption": ["dog-photo"]},
                   "among": ["cat-photo", "dog-photo"], "k": [1], "min": {"recall@1": 0.9}}},
]


@pytest.fixture
def report(tmp_path):
    """2 models x 2 dimensions; at dimension 4 the dog caption lands next to the cat photo,
    so quality rises with the dimension and one nearest check fails per model."""
    cells = {}
    for m in MODELS:
        for d in DIMS:
            vecs = {k: pad(v, d) for k, v in VECTORS.items()}
            if d == 4:
                vecs["dog-caption"] = unit([0.9, 0.25, 0.1, 0.0])
            cells[f"{m}-{d}"] = vecs
    folder = tmp_path / "run"
    manifest = make_run(folder, cells)
    results = evaluate_checks(CHECKS, folder, manifest.cells)
    finalize(folder, manifest, results)
    return folder, manifest, results


def test_report_is_self_contained(report):
    html = (report[0] / "report.html").read_text()
    assert "<script" not in html and "<link" not in html and "@import" not in html
    assert not re.search(r"""src\s*=|href\s*=\s*(?!["']?#)""", html)   # links within the page only
    urls = set(re.findall(r"https?://[^\s\"'<>)]+", html))
    assert urls <= {"http://www.w3.org/2000/svg"}


def test_quality_plot_follows_the_numbers(report):
    folder, manifest, results = report
    charts = quality_charts(build_summary(folder, manifest, results))
    recall = next(c for c in charts if c["metric"] == "recall@1")
    assert [s["model"] for s in recall["series"]] == list(MODELS)
    assert [t["label"] for t in recall["xticks"]] == list(DIMS)
    pts = recall["series"][0]["points"]
    assert [(p["dimension"], p["value"]) for p in pts] == [(4, 0.5), (8, 1.0)]
    top, bottom = recall["top"], recall["plot_bottom"]
    assert pts[1]["y"] == top and pts[0]["y"] == pytest.approx((top + bottom) / 2, abs=0.1)
    assert recall["threshold"]["value"] == 0.9


def test_heatmap_has_a_square_per_pair(report):
    folder, manifest, results = report
    maps = heatmaps(build_summary(folder, manifest, results), folder)
    assert [m["cell"] for m in maps] == [f"{m}-{d}" for m in MODELS for d in DIMS]
    assert len(maps[0]["rects"]) == 16
    diagonal = [r for r in maps[0]["rects"] if r["x"] - maps[0]["label"] == r["y"] - maps[0]["label"]]
    assert {r["fill"] for r in diagonal} == {"#%02x%02x%02x" % RAMP[-1]}  # cosine 1 is the darkest


def test_large_input_sets_get_no_heatmap(tmp_path):
    rng = np.random.default_rng(0)
    vecs = {f"in-{i}": unit(rng.normal(size=8)) for i in range(41)}
    folder = tmp_path / "run"
    manifest = make_run(folder, {"m-8": vecs})
    assert heatmaps(build_summary(folder, manifest, []), folder) == []


def _png_pixels(path: Path) -> np.ndarray:
    """Decode an 8-bit RGB/RGBA PNG (what Chromium writes) without extra packages."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat = 8, b""
    while pos < len(data):
        (n,) = struct.unpack(">I", data[pos:pos + 4])
        kind, body = data[pos + 4:pos + 8], data[pos + 8:pos + 8 + n]
        pos += 12 + n
        if kind == b"IHDR":
            w, h, depth, ctype = struct.unpack(">IIBB", body[:10])
        elif kind == b"IDAT":
            idat += body
    assert depth == 8 and ctype in (2, 6)
    bpp = 3 if ctype == 2 else 4
    raw = np.frombuffer(zlib.decompress(idat), dtype=np.uint8).reshape(h, w * bpp + 1)
    out = np.zeros((h, w * bpp), dtype=np.uint8)
    prev = np.zeros(w * bpp, dtype=np.int32)
    for y in range(h):
        f, row = raw[y, 0], raw[y, 1:].astype(np.int32)
        if f == 0:
            cur = row
        elif f == 1:
            cur = np.cumsum(row.reshape(w, bpp), axis=0).reshape(-1) % 256
        elif f == 2:
            cur = (row + prev) % 256
        else:
            cur = np.zeros_like(row)
            r, p = row.tolist(), prev.tolist()
            c = [0] * len(r)
            for x in range(len(r)):
                a = c[x - bpp] if x >= bpp else 0
                b = p[x]
                if f == 3:
                    c[x] = (r[x] + (a + b) // 2) % 256
                else:
                    cc = p[x - bpp] if x >= bpp else 0
                    pa, pb, pc = abs(b - cc), abs(a - cc), abs(a + b - 2 * cc)
                    pred = a if pa <= pb and pa <= pc else (b if pb <= pc else cc)
                    c[x] = (r[x] + pred) % 256
            cur = np.asarray(c, dtype=np.int32)
        out[y] = cur
        prev = cur
    return out.reshape(h, w, bpp)[:, :, :3]


def test_report_renders_cells_checks_and_plots_in_chromium(report, chromium, tmp_path):
    folder, manifest, results = report
    url = (folder / "report.html").resolve().as_uri()
    dom = chromium(["--dump-dom", url]).stdout
    assert "<svg" in dom, "Chromium returned no DOM"
    for cell in manifest.cells:
        assert f'data-cell="{cell["id"]}"' in dom
    for r in results:
        assert r.name in dom
    assert dom.count('class="check-failed"') == sum(not r.passed for r in results) == 4
    assert re.search(r'id="verdict">\s*FAIL', dom)
    failed = re.search(r'<section id="s-failed">(.*?)</section>', dom, re.S).group(1)
    assert "nearest:dog-caption</code> failed in 2 cells" in failed and "retrieval</code> failed in 2 cells" in failed
    assert failed.count("<td data-label=\"expected\">dog-photo</td>") == 2     # the pair that failed, per cell
    assert dom.count('class="plot quality"') == 3            # recall@1, ndcg@1, mrr
    assert len(re.findall(r"<polyline[^>]*class=\"series\"", dom)) == 3 * len(MODELS)   # one line per model per chart
    assert dom.count('class="plot heatmap"') == len(MODELS) * len(DIMS)

    shot = tmp_path / "report.png"
    opened = tmp_path / "opened.html"          # the heatmaps are folded (<details>): a copy with them open
    opened.write_text((folder / "report.html").read_text().replace("<details>", "<details open>"), encoding="utf-8")
    chromium([f"--screenshot={shot}", "--window-size=1100,4000", opened.as_uri()])
    assert shot.is_file(), "Chromium wrote no screenshot"
    px = _png_pixels(shot)
    assert px.shape[:2] == (4000, 1100)
    colours = {tuple(c) for c in px[::7, ::7].reshape(-1, 3).tolist()}
    assert len(colours) > 50, "the page looks blank"
    assert (207, 34, 46) in {tuple(c) for c in px[:120].reshape(-1, 3).tolist()}, "no red FAIL badge at the top"
    darkest = (px == np.array(RAMP[-1], dtype=np.uint8)).all(axis=2)
    assert darkest.sum() > 4 * 20 * 20, "the heatmaps' diagonals (cosine 1) did not render"
