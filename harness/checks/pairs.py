"""The checks over named inputs of one cell: `nearest` (the expected input ranks first for a query) and
`similarity` (a pair's cosine within bounds). Each records its pairs in data, so reports list them without
reading the detail text."""

from __future__ import annotations

from harness.checks import metrics as M
from harness.checks.context import SKIP, VACUOUS, Ctx, Outcome, json_number, listed
from harness.words import counted


def check_nearest(body: dict, ctx: Ctx) -> Outcome:
    pairs = body.get("pairs") or {body["query"]: body["expect"]}
    left_out = [f"{q}→{e}" for q, e in pairs.items() if not ctx.takes(q, e)]
    pairs = {q: e for q, e in pairs.items() if ctx.takes(q, e)}
    if not pairs:
        return 0, 0, f"this cell does not take {listed(left_out)}", {SKIP: True}
    among_all = [c for c in (body.get("among") or ctx.vectors.ids) if ctx.takes(c)]
    failures, notes, per = 0, [], []
    for query, expect in pairs.items():
        among = [c for c in among_all if c != query]
        missing = ctx.missing([query, *among])
        if missing:
            failures += 1
            notes.append(f"{query}: no vector for {listed(missing)}")
            per.append({"query": query, "expect": expect, "passed": False})
            continue
        sims = M.cosine_matrix(ctx.vectors.rows([query]), ctx.vectors.rows(among))[0]
        order = [among[j] for j in M.rank(sims)]
        score = dict(zip(among, sims.tolist()))
        r = order.index(expect) + 1 if expect in order else None
        ok = r == 1
        per.append({"query": query, "expect": expect, "top": order[0], "rank": r,
                    "cosine_expected": json_number(score.get(expect, 0.0)), "cosine_top": json_number(score[order[0]]),
                    "candidates": len(among), "passed": ok})
        if ok:
            runner_up = f", next {order[1]} {score[order[1]]:.3f}" if len(order) > 1 else ""
            notes.append(f"{query} → {expect} first of {len(among)} (cos {score[expect]:.3f}{runner_up})")
        else:
            failures += 1
            notes.append(f"{query} → {order[0]} (cos {score[order[0]]:.3f}), expected {expect} at rank "
                         f"{r} of {len(among)} (cos {score.get(expect, 0.0):.3f})")
    trials = len(pairs)
    if trials == 1:
        detail = notes[0]
    else:
        failed = [n for n, p in zip(notes, per) if not p["passed"]]
        detail = f"{trials - failures}/{counted(trials, 'query')} ranked the expected input first" + (
            f"; failed: {listed(failed, 3)}" if failed else "")
    data: dict = {"pairs": per}
    if all(p.get("candidates") == 1 for p in per):
        data[VACUOUS] = "one candidate besides the query, which ranks first for any vectors"
    return trials, failures, detail, data


def check_similarity(body: dict, ctx: Ctx) -> Outcome:
    """Data: `pairs` (a, b, cosine, passed) and `want`, the bounds in words as the detail says them (`≥ 0.8`)."""
    pairs = body.get("pairs") or [[body["a"], body["b"]]]
    left_out = [f"{a}~{b}" for a, b in pairs if not ctx.takes(a, b)]
    pairs = [[a, b] for a, b in pairs if ctx.takes(a, b)]
    if not pairs:
        return 0, 0, f"this cell does not take {listed(left_out)}", {SKIP: True}
    lo, hi = body.get("min"), body.get("max")
    failures, notes, per = 0, [], []
    bounds = " and ".join(b for b in [f"≥ {lo:g}" if lo is not None else "", f"≤ {hi:g}" if hi is not None else ""]
                          if b)
    for a, b in pairs:
        missing = ctx.missing([a, b])
        if missing:
            failures += 1
            notes.append(f"{a}~{b}: no vector for {listed(missing)}")
            per.append({"a": a, "b": b, "cosine": None, "passed": False})
            continue
        c = M.cosine(ctx.vectors.rows([a])[0], ctx.vectors.rows([b])[0])
        ok = (lo is None or c >= lo) and (hi is None or c <= hi)
        failures += not ok
        per.append({"a": a, "b": b, "cosine": json_number(c), "passed": ok})
        notes.append(f"cos({a}, {b}) = {c:.3f}{'' if ok else ', want ' + bounds}")
    trials = len(pairs)
    if trials == 1:
        detail = notes[0] + (f" ({bounds})" if failures == 0 else "")
    else:
        failed = [n for n, p in zip(notes, per) if not p["passed"]]
        detail = f"{trials - failures}/{counted(trials, 'pair')} {'has' if trials == 1 else 'have'} cosine {bounds}" + (
            f"; failed: {listed(failed, 3)}" if failed else "")
    data: dict = {"pairs": per, "want": bounds}
    if (lo is None or lo <= -1) and (hi is None or hi >= 1):
        data[VACUOUS] = f"every cosine is {bounds}" if bounds else "no bound (min, max)"
    elif all(a == b for a, b in pairs):
        data[VACUOUS] = "an input's cosine with itself is 1 for any vectors"
    return trials, failures, detail, data
