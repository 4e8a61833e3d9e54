"""The checks' static rules, run when a spec is planned (before anything is sent or written):
every input id a check names exists, bounds are ordered, an expected id is among the candidates.

Apart from `harness/checks/evaluate.py` (which evaluates checks on vectors, with numpy), so that planning
and `harness validate` do not import what evaluating needs.
"""

from __future__ import annotations

import difflib
from typing import Any, Callable, Iterable

from harness.errors import Problem

KINDS = ("vectors", "nearest", "similarity", "retrieval", "stability")

Locate = Callable[[tuple], "tuple[int, int] | None"]


def check_kind(check: dict) -> str:
    for kind in KINDS:
        if kind in check:
            return kind
    raise ValueError(f"a check needs one of {', '.join(KINDS)}; got {sorted(check)}")


def _where(locate: Locate | None, path: tuple) -> tuple[int, int] | None:
    if locate is None:
        return None
    try:
        pos = locate(path)
    except (KeyError, IndexError, TypeError, ValueError):
        return None
    return tuple(pos) if pos else None


def _ids_in(kind: str, body: dict) -> list[tuple[tuple, str]]:
    """Every input id a check names, with its path below the check's kind key."""
    out: list[tuple[tuple, str]] = []
    for key in ("query", "expect", "a", "b"):
        if isinstance(body.get(key), str):
            out.append(((key,), body[key]))
    for j, i in enumerate(body.get("among") or []):
        out.append((("among", j), i))
    pairs = body.get("pairs")
    if isinstance(pairs, dict):
        for q, e in pairs.items():
            out.append((("pairs", q), q))
            out.append((("pairs", q), e))
    elif isinstance(pairs, list):
        for j, pair in enumerate(pairs):
            for m, i in enumerate(pair or []):
                out.append((("pairs", j, m), i))
    if kind == "retrieval" and isinstance(body.get("queries"), dict):
        for q, rel in body["queries"].items():
            out.append((("queries", q), q))
            for j, r in enumerate(rel or []):
                out.append((("queries", q, j), r))
    return out


def validate_check_refs(
    checks: list[dict],
    input_ids: Iterable[str],
    locate: Locate | None = None,
    *,
    file: str | None = None,
    cell_ids: Iterable[str] | None = None,
    models: Iterable[str] | None = None,
) -> list[Problem]:
    """Static checks the spec loader runs before anything is planned: every id a check names
    is a declared input, bounds are ordered, an expected id is among the candidates, and
    (when given) `cells`/`models` filters name real cells and models.

    `locate(path)` maps a path inside the spec's `checks:` list, e.g. (2, "nearest", "query"),
    to (line, col); problems carry `file` and that position.
    """
    known = list(dict.fromkeys(input_ids))
    known_set = set(known)
    problems: list[Problem] = []

    def add(path: tuple, message: str, hint: str | None = None, severity: str = "error") -> None:
        pos = _where(locate, path)
        problems.append(Problem(message, file, pos[0] if pos else None, pos[1] if pos else None, hint, severity))

    def suggest(value: str, pool: list[str], what: str) -> str:
        close = difflib.get_close_matches(value, pool, n=1)
        return f"did you mean {close[0]!r}?" if close else f"declare it under `{what}`"

    for index, check in enumerate(checks or []):
        if not isinstance(check, dict):
            continue
        try:
            kind = check_kind(check)
        except ValueError:
            continue  # the JSON Schema reports the shape
        body = check[kind] or {}
        if not isinstance(body, dict):
            continue
        at = (index, kind)
        for sub, value in _ids_in(kind, body):
            if isinstance(value, str) and value not in known_set:
                add(at + sub, f"check {kind}: unknown input id {value!r}", suggest(value, known, "inputs:"))
        if kind == "nearest":
            among = body.get("among")
            pairs = body.get("pairs") if isinstance(body.get("pairs"), dict) else (
                {body["query"]: body["expect"]} if "query" in body and "expect" in body else {})
            for q, e in pairs.items():
                sub = ("pairs", q) if "pairs" in body else ("expect",)
                if q == e:
                    add(at + sub, f"check nearest: {q!r} is expected to be its own nearest neighbour",
                        "the query never counts among its candidates; expect another input")
                elif among and e not in among and e in known_set:
                    add(at + sub, f"check nearest: expected {e!r} is not in `among`", f"add {e!r} to among")
        if kind == "similarity":
            same = [(("a",), body["a"])] if isinstance(body.get("a"), str) and body.get("a") == body.get("b") else []
            same += [(("pairs", j), p[0]) for j, p in enumerate(body.get("pairs") or [])
                     if isinstance(p, list) and len(p) == 2 and isinstance(p[0], str) and p[0] == p[1]]
            for sub, i in same:
                add(at + sub, f"check similarity: {i!r} is compared with itself, whose cosine is 1 for any vectors",
                    "compare it with another input; such a check proves nothing")
        if kind == "similarity" and _num(body.get("min")) and _num(body.get("max")) and body["min"] > body["max"]:
            add(at + ("min",), f"check similarity: min {body['min']} is greater than max {body['max']}", "swap them")
        if kind == "vectors" and _num(body.get("norm_min")) and _num(body.get("norm_max")) \
                and body["norm_min"] > body["norm_max"]:
            add(at + ("norm_min",), f"check vectors: norm_min {body['norm_min']} is greater than norm_max "
                f"{body['norm_max']}", "swap them")
        if kind == "retrieval" and isinstance(body.get("queries"), dict):
            among = body.get("among")
            for q, rel in body["queries"].items():
                if isinstance(rel, list) and q in rel:
                    add(at + ("queries", q), f"check retrieval: query {q!r} lists itself as relevant",
                        "a query is never ranked against itself")
                if among and isinstance(rel, list) and rel and set(rel) <= known_set and not set(rel) & set(among):
                    add(at + ("queries", q), f"check retrieval: none of {q!r}'s relevant ids is in `among`",
                        "its recall would always be 0", severity="warning")
        for key, pool in (("cells", cell_ids), ("models", models)):
            if pool is None or not isinstance(body.get(key), list):
                continue
            pool = list(pool)
            for j, value in enumerate(body[key]):
                if value not in pool:
                    add(at + (key, j), f"check {kind}: {key[:-1]} {value!r} is not in this spec's matrix",
                        suggest(value, pool, "models:/dimensions:"))
    return problems


def _num(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)
