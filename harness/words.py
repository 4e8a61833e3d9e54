"""Counts in words: `counted(1, "request")` is "1 request", `counted(3, "request")` "3 requests", so no
message, line or report says "1 requests"."""

from __future__ import annotations

_IRREGULAR = {"query": "queries", "entry": "entries", "retry": "retries", "match": "matches", "is": "are",
              "has": "have", "was": "were", "does": "do", "this": "these"}


def plural(word: str, n: float) -> str:
    """`word` as `n` of it is written: the singular for exactly 1, else the plural ("query" → "queries")."""
    if n == 1:
        return word
    return _IRREGULAR.get(word) or (word[:-1] + "ies" if word.endswith("y") and word[-2:-1] not in "aeiou"
                                   else word + ("es" if word.endswith(("s", "x", "ch", "sh")) else "s"))


def counted(n: float, word: str, fmt: str = "") -> str:
    """`n` and `word` agreeing: "1 cell", "2 cells", "1,000 requests" (`fmt` formats the number: ",")."""
    return f"{n:{fmt}} {plural(word, n)}"


def size(n: float) -> str:
    """Bytes as people read them: "812 bytes", "48 kB", "3.4 MB", "12 GB" (decimal units)."""
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= scale:
            value = n / scale
            return f"{value:,.1f} {unit}" if value < 10 else f"{value:,.0f} {unit}"
    return counted(int(n), "byte", ",")
