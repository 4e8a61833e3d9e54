"""Which cell to pick: the one rule every report states (report.html, report.md, the terminal, docs/recommendation.md).

1. Candidates: the cells that meet every threshold of the headline check (the first retrieval check;
   its first threshold is the headline metric).
2. Among them, those not significantly worse than the best cell on the headline metric: summary.json's
   paired comparison of the cell with the best has a Holm-corrected p ≥ alpha, or a Δ interval
   containing 0 (alpha = 1 − the check's confidence, 0.05 unless it says otherwise).
3. Among those, the billed cells by lowest cost per 1,000 inputs, then smallest dimension. Cells no
   region bills (local, self-hosted) are named beside it, "not billed (self-hosted: compare your
   hosting cost)", and are the recommendation only when no billed cell qualifies.

A folder that records no comparisons (an earlier format, a single cell) skips step 2 and says so.
When no cell can be told apart from the best, the sentence says so and how many queries the observed
spread would need (n ≈ ((z₁₋α/₂ + z_power)·sd/Δ)², sd of the per-query differences). Storage is part
of "for how much": a float32 vector of dimension d takes 4·d bytes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from statistics import NormalDist

from harness.checks import stats
from harness.folder import Summary
from harness.report.charts import metric_order, money, retrieval_checks, size
from harness.words import counted

ALPHA = stats.ALPHA
POWER = 0.8
BYTES_PER_DIMENSION = 4                       # float32
NOT_BILLED = "not billed (self-hosted: compare your hosting cost)"
RULE = ("Among the cells that meet every threshold of the headline check, those not significantly worse than "
        "the best on its headline metric (Holm-corrected paired test); of those the cheapest billed cell per "
        "1,000 inputs, then the smallest dimension. Cells no region bills (local, self-hosted) are named "
        "beside it and recommended only when no billed cell qualifies.")


# --------------------------------------------------------------------------- numbers for people

def interval_text(iv: list[float] | tuple[float, float] | None, signed: bool = False) -> str:
    if not iv:
        return ""
    f = "{:+.3f}" if signed else "{:.3f}"
    return "[" + ", ".join(f.format(v).replace("-", "−") for v in iv) + "]"


def plus_minus(iv: list[float] | tuple[float, float] | None) -> str:
    """Half the interval's width, for a table cell: "±0.048" ("" without an interval)."""
    return f"±{(iv[1] - iv[0]) / 2:.3f}" if iv else ""


def signed(x: float) -> str:
    return f"{x:+.3f}".replace("-", "−")


def p_text(p: float | None) -> str:
    if p is None:
        return "p –"
    return "p < 0.001" if p < 0.001 else f"p = {p:.3f}" if p < 0.01 else f"p = {p:.2f}"


def _ratio(a: float, b: float) -> str:
    r = a / b
    return f"{r:.0f}×" if abs(r - round(r)) < 0.05 else f"{r:.1f}×"


# --------------------------------------------------------------------------- the choice

@dataclass
class Option:
    """One executed cell with a value of the headline metric."""

    cell: str
    model: str | None
    dimension: int | None
    value: float
    interval: list[float] | None
    per_1k: float | None                  # cost per 1,000 inputs; None: no region bills it
    currency: str
    basis: str | None                     # "usage" | "estimate"
    latency: float | None
    failed: int                           # the cell's failed check lines
    checks: int                           # ... of its passed and failed ones
    others: list[dict]                    # the headline check's other thresholded metrics: name, value, interval
    meets: bool                           # the headline metric meets its threshold
    meets_all: bool                       # every threshold of the headline check
    bytes_per_vector: int | None
    corpus_vectors: int | None
    vs_best: dict | None = None           # delta, interval, p, p_holm (the comparison with the best)
    tied: bool | None = None              # not significantly worse than the best; None: not compared
    front: bool = False                   # on the Pareto front of quality against cost
    recommended: bool = False

    @property
    def billed(self) -> bool:
        return self.per_1k is not None

    @property
    def label(self) -> str:
        return f"{self.model} at {self.dimension}" if self.dimension is not None else self.cell

    @property
    def per_million(self) -> int | None:
        return None if self.bytes_per_vector is None else self.bytes_per_vector * 1_000_000

    @property
    def corpus_bytes(self) -> int | None:
        if self.bytes_per_vector is None or self.corpus_vectors is None:
            return None
        return self.bytes_per_vector * self.corpus_vectors

    @property
    def cost(self) -> str:
        return money(self.per_1k, self.currency) if self.billed else "not billed"

    def to_json(self) -> dict:
        return {"cell": self.cell, "model": self.model, "dimension": self.dimension, "value": self.value,
                "interval": self.interval, "per_1k": self.per_1k, "currency": self.currency, "basis": self.basis,
                "latency": self.latency, "failed": self.failed, "checks": self.checks, "others": self.others,
                "meets": self.meets, "meets_all": self.meets_all, "best": self.front,
                "bytes_per_vector": self.bytes_per_vector, "per_million": self.per_million,
                "corpus_bytes": self.corpus_bytes, "vs_best": self.vs_best, "tied": self.tied,
                "recommended": self.recommended, "billed": self.billed}


@dataclass
class Recommendation:
    check: str
    metric: str
    threshold: float | None
    thresholds: list[str]                 # the headline check's thresholded metrics, in the spec's order
    alpha: float
    queries: int | None
    options: list[Option]
    best: Option | None                   # the highest headline value of all options
    pick: Option | None
    beside: list[Option] = field(default_factory=list)     # unbilled cells named beside a billed pick
    compared: bool = False                # summary.json records the comparisons with the best
    sentences: list[str] = field(default_factory=list)     # the recommendation and its reason, in words

    @property
    def text(self) -> str:
        return " ".join(self.sentences)


def _comparisons(summary: Summary) -> list[dict]:
    return [c.to_json() for c in summary.comparisons or []]


def _reference(comparisons: list[dict], check: str, metric: str) -> str | None:
    """The cell every comparison of (check, metric) is made with (`a`): the best, as summary.json chose it."""
    best = {c.get("a") for c in comparisons if c.get("check") == check and c.get("metric") == metric}
    return next(iter(best)) if len(best) == 1 else None


def _vs_best(comparisons: list[dict], check: str, metric: str, best: str, cell: str) -> dict | None:
    """The comparison of `cell` with `best`: its delta is other − best, as summary.json records it."""
    for c in comparisons:
        if c.get("check") != check or c.get("metric") != metric or {c.get("a"), c.get("b")} != {best, cell}:
            continue
        delta, iv = c.get("delta"), c.get("interval")
        if not isinstance(delta, (int, float)):
            return None
        sign = -1 if c.get("a") == cell else 1        # delta is b − a: turned round when the cell is a
        iv = sorted(sign * v for v in iv) if isinstance(iv, list) and len(iv) == 2 else None
        return {"delta": sign * delta, "interval": iv,
                "p": c.get("p_value"), "p_holm": c.get("p_holm"), "test": c.get("test")}
    return None


def deciding_p(vs: dict) -> float | None:
    """The p-value a comparison with the best is judged and shown by: Holm-corrected when recorded."""
    return vs["p_holm"] if vs.get("p_holm") is not None else vs.get("p")


def _tied(vs: dict, alpha: float) -> bool:
    """Not significantly worse than the best."""
    if vs["delta"] >= 0:
        return True
    p = deciding_p(vs)
    inside = vs["interval"] is not None and vs["interval"][0] <= 0 <= vs["interval"][1]
    return inside or (p is not None and p >= alpha)


def headline(summary: Summary) -> tuple[str, str, float | None] | None:
    """The check and metric the user asked about first: the first threshold of the first retrieval check."""
    for check, rows in retrieval_checks(summary).items():
        order = metric_order(rows)
        named = rows[0].headline       # summary.json names it where it records comparisons
        if named in order:
            return check, named, rows[0].thresholds.get(named)
        if order:
            return check, order[0], rows[0].thresholds.get(order[0])
    return None


def pareto_front(points: list[tuple[float, float]]) -> list[int]:
    """Indexes of the points no other point beats: as cheap or cheaper and as good or better,
    strictly one of the two. Ordered by cost."""
    front = []
    for i, (c, q) in enumerate(points):
        if not any((c2 <= c and q2 >= q) and (c2 < c or q2 > q) for j, (c2, q2) in enumerate(points) if j != i):
            front.append(i)
    return sorted(front, key=lambda i: (points[i][0], -points[i][1]))


def _options(summary: Summary, check: str, name: str, threshold: float | None) -> tuple[list[Option], list[str]]:
    mine = [q for q in summary.quality if q.check == check]
    by_cell = {q.cell: q for q in mine}
    limits = mine[0].thresholds
    others = [m for m in metric_order(mine) if m != name and m in limits]
    status = {c.cell: c for c in summary.checks if c.name == check and c.cell}
    failed: dict[str, int] = {}
    total: dict[str, int] = {}
    for c in summary.checks:
        if c.cell and c.status in ("passed", "failed"):
            total[c.cell] = total.get(c.cell, 0) + 1
            failed[c.cell] = failed.get(c.cell, 0) + (c.status == "failed")
    options = []
    for cell in summary.cells:
        q = by_cell.get(cell.id)
        if q is None or q.metrics.get(name) is None:
            continue
        intervals = q.intervals or {}
        value = q.metrics[name]
        cost = cell.cost or {}
        line = status.get(cell.id)
        other = [{"name": m, "value": q.metrics.get(m), "threshold": limits[m], "interval": intervals.get(m)}
                 for m in others]
        meets = threshold is None or value >= threshold
        meets_all = (meets and all(o["value"] is not None and o["value"] >= o["threshold"] for o in other)
                     and (line is None or line.status != "failed"))
        corpus = (line.data.get("candidates") if line is not None else None) or cell.vectors or None
        options.append(Option(
            cell=cell.id, model=cell.model, dimension=cell.dimension, value=value, interval=intervals.get(name),
            per_1k=cost.get("per_1k_inputs"), currency=cost.get("currency") or "CNY", basis=cost.get("basis"),
            latency=(cell.latency_ms or {}).get("p50"), failed=failed.get(cell.id, 0), checks=total.get(cell.id, 0),
            others=other, meets=meets, meets_all=meets_all,
            bytes_per_vector=BYTES_PER_DIMENSION * cell.dimension if isinstance(cell.dimension, int) else None,
            corpus_vectors=corpus if isinstance(corpus, int) else None))
    priced = [i for i, o in enumerate(options) if o.billed]
    for k in pareto_front([(options[i].per_1k, options[i].value) for i in priced]):
        options[priced[k]].front = True
    return options, [name, *others] if threshold is not None else others


def recommend(summary: Summary) -> Recommendation | None:
    """The rule (module docstring) applied to summary.json; None when the run has no retrieval metric."""
    head = headline(summary)
    if head is None:
        return None
    check, name, threshold = head
    options, thresholds = _options(summary, check, name, threshold)
    mine = [q for q in summary.quality if q.check == check]
    confidence = next((q.confidence for q in mine if q.confidence), None)
    alpha = 1 - confidence if isinstance(confidence, (int, float)) and 0 < confidence < 1 else ALPHA
    queries = next((q.queries for q in mine if isinstance(q.queries, int)), None)
    if queries is None:
        queries = next((c.data.get("queries") for c in summary.checks if c.name == check
                        and isinstance(c.data.get("queries"), int)), None)
    rec = Recommendation(check=check, metric=name, threshold=threshold, thresholds=thresholds, alpha=alpha,
                         queries=queries, options=options, best=None, pick=None)
    if not options:
        rec.sentences = [f"No cell of {check} has a value of {name}: nothing to recommend."]
        return rec
    comparisons = _comparisons(summary)
    ref = _reference(comparisons, check, name)
    best = next((o for o in options if o.cell == ref), None) or max(options, key=lambda o: o.value)
    rec.best = best
    for o in options:
        if o is best:
            o.tied = True if len(options) > 1 else None
            continue
        o.vs_best = _vs_best(comparisons, check, name, best.cell, o.cell)
        o.tied = _tied(o.vs_best, alpha) if o.vs_best is not None else None
    rec.compared = any(o.vs_best is not None for o in options)
    candidates = [o for o in options if o.meets_all]
    if rec.compared:
        candidates = [o for o in candidates if o.tied is not False]
    def dim(o: Option) -> float:
        return o.dimension if o.dimension is not None else math.inf

    billed = sorted((o for o in candidates if o.billed), key=lambda o: (o.per_1k, dim(o), -o.value))
    unbilled = sorted((o for o in candidates if not o.billed), key=lambda o: (dim(o), -o.value))
    if billed:
        rec.pick, rec.beside = billed[0], unbilled[:3]
    elif unbilled:
        rec.pick = unbilled[0]
    if rec.pick is not None:
        rec.pick.recommended = True
    rec.sentences = _sentences(rec, summary)
    return rec


# --------------------------------------------------------------------------- in words

def _value(o: Option, name: str) -> str:
    iv = interval_text(o.interval)
    return f"{name} {o.value:.3f}" + (f" {iv}" if iv else "")


def _versus(o: Option) -> str:
    vs = o.vs_best or {}
    iv = interval_text(vs.get("interval"), signed=True)
    delta = signed(vs["delta"])
    holm = " Holm-corrected" if vs.get("p_holm") is not None else ""
    return f"Δ {delta}" + (f" {iv}" if iv else "") + f", {p_text(deciding_p(vs))}{holm}"


def _name(o: Option, other: Option) -> str:
    """`o` as short as it reads beside `other`: its dimension when both are the same model."""
    return str(o.dimension) if o.model == other.model and o.dimension is not None else o.label


def _savings(pick: Option, best: Option) -> str:
    parts = []
    if pick.billed and best.billed and pick.per_1k < best.per_1k:
        parts.append(f"costs {money(pick.per_1k, pick.currency)} instead of {money(best.per_1k, best.currency)} "
                     "per 1,000 inputs")
    if pick.bytes_per_vector and best.bytes_per_vector and pick.bytes_per_vector < best.bytes_per_vector:
        parts.append(f"stores {_ratio(best.bytes_per_vector, pick.bytes_per_vector)} less")
    return " and ".join(parts)


def queries_needed(summary: Summary, check: str, metric: str, a: str, b: str, alpha: float,
                   power: float = POWER) -> int | None:
    """A rough count of queries that would tell `a` from `b` at the observed mean difference and spread
    of their per-query differences: n ≈ ((z₁₋α/₂ + z_power)·sd/Δ)². None when it cannot be estimated."""
    pa, pb = summary.per_query(check, a) or {}, summary.per_query(check, b) or {}
    diffs = [pa[q][metric] - pb[q][metric] for q in pa if q in pb and isinstance((pa[q] or {}).get(metric), float)
             and isinstance((pb[q] or {}).get(metric), float)]
    if len(diffs) < 2:
        return None
    mean = sum(diffs) / len(diffs)
    sd = math.sqrt(sum((d - mean) ** 2 for d in diffs) / (len(diffs) - 1))
    if mean == 0 or sd == 0:
        return None
    z = NormalDist().inv_cdf(1 - alpha / 2) + NormalDist().inv_cdf(power)
    return max(len(diffs) + 1, math.ceil((z * sd / abs(mean)) ** 2))


def _sentences(rec: Recommendation, summary: Summary) -> list[str]:
    name, check, pick, best = rec.metric, rec.check, rec.pick, rec.best
    out: list[str] = []
    if pick is None:
        listed = ", ".join(rec.thresholds)
        out.append(f"No cell meets every threshold of {check}" + (f" ({listed})." if listed else "."))
        meets = [o for o in rec.options if o.meets and o.billed]
        if rec.threshold is not None and meets and len(rec.thresholds) > 1:
            o = min(meets, key=lambda o: (o.per_1k, -o.value))
            out.append(f"Cheapest that meets {name} ≥ {rec.threshold:g}: {o.label} ({_value(o, name)}, "
                       f"{o.cost} per 1,000 inputs).")
        elif best is not None:
            out.append(f"Best on {name}: {best.label} ({_value(best, name)}).")
        return out + _indistinct(rec, summary)
    storage = f"{size(pick.per_million)} per million vectors" if pick.per_million else ""
    cost = (f"{pick.cost} per 1,000 inputs" + (" (estimated)" if pick.basis == "estimate" else "")
            if pick.billed else NOT_BILLED)
    out.append(f"Recommended for {check}: {pick.label} ({_value(pick, name)}; {cost}"
               + (f"; {storage}" if storage else "") + ").")
    others = [o for o in rec.options if o is not pick]
    if not others:
        out.append("It is the only cell" + (" and meets every threshold." if rec.thresholds else "."))
    elif pick is best:
        cheaper = [o for o in others if o.meets_all and (
            (o.billed and pick.billed and o.per_1k < pick.per_1k)
            or (o.per_1k == pick.per_1k and (o.dimension or 0) < (pick.dimension or 0)))]
        why = f"It is the best on {name}"
        if rec.compared and cheaper:
            worse = [o for o in cheaper if o.tied is False]
            if worse:
                near = max(worse, key=lambda o: o.value)
                why += (f"; the cheaper or smaller cells that meet the thresholds are significantly worse "
                        f"({_name(near, pick)}: {_versus(near)})")
        out.append(why + ".")
    elif rec.compared and pick.vs_best is not None:
        saving = _savings(pick, best)
        out.append(f"{_name(pick, best)} is within noise of {_name(best, pick)}, the best on {name} "
                   f"({_versus(pick)})" + (f", and {saving}." if saving else "."))
    else:
        why = "no paired comparisons recorded" if not rec.compared else "not compared with the best"
        out.append(f"It is the cheapest cell that meets every threshold ({why}); the best on {name} is "
                   f"{_name(best, pick)} ({best.value:.3f}).")
    if rec.beside:
        named = ", ".join(o.label for o in rec.beside)
        out.append(f"Also qualifying: {named}, {NOT_BILLED}.")
    out += _indistinct(rec, summary)
    return out


def _indistinct(rec: Recommendation, summary: Summary) -> list[str]:
    """When no compared cell differs significantly from the best: say so, and what it would take."""
    compared = [o for o in rec.options if o.vs_best is not None]
    if not compared or any(o.tied is False for o in compared) or rec.best is None:
        return []
    far = min(compared, key=lambda o: o.vs_best["delta"])
    n = queries_needed(summary, rec.check, rec.metric, rec.best.cell, far.cell, rec.alpha)
    over = f" over {counted(rec.queries, 'query')}" if rec.queries else ""
    text = f"No cell can be told apart from the best on {rec.metric}{over}"
    if n is not None:
        text += (f": the widest gap to it ({_name(far, rec.best)}, {signed(far.vs_best['delta'])}) would need about "
                 f"{n:,} queries at its observed spread to tell apart ({int(POWER * 100)}% power, alpha {rec.alpha:g})")
    return [text + "."]
