"""How sure a retrieval metric is: percentile bootstrap intervals of a mean over queries, and the paired
sign-flip (randomization) test between two cells, with Holm's correction across a check's cells.

Pure numpy, no I/O, and reproducible on any machine, so `verify` re-derives every number:

- the resampled query indices come from `numpy.random.RandomState(seed)` (a stream NumPy keeps stable
  across versions, unlike `Generator`'s), drawn as one `randint(0, n, size=(resamples, n))` matrix
  (in row chunks when it is large: the same stream), reused for every metric and cell of that n; index
  i is the i-th query in the order of the query ids (as summary.json lists them);
- per-query values are summary.json's 6-decimal numbers, taken as integers in millionths: every sum
  (a resample's, a sign flip's) is then exact in float64 whatever the BLAS, and ties are ties;
- the bounds are `numpy.percentile` (linear) of the resampled means, as
  `scipy.stats.bootstrap(..., method="percentile")` takes them;
- the p-value is computed as `scipy.stats.permutation_test(..., permutation_type="samples")` does for
  two paired samples: two-sided, min(P(null ≤ observed), P(null ≥ observed)) × 2, clipped to 1; exact
  over all 2^n sign flips when n ≤ `EXACT_UP_TO`, else `FLIPS` random flips from `RandomState(seed)`
  with the observed one counted in (+1 over +1).

The seed defaults to `SEED` (0) and is recorded beside every interval and comparison.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Iterable, Iterator, Sequence

import numpy as np

RESAMPLES = 10_000     # bootstrap resamples of the queries
CONFIDENCE = 0.95      # an interval's level unless the check says `confidence:`
ALPHA = round(1 - CONFIDENCE, 12)   # the matching significance level (0.05): diff's gate, the recommendation
SEED = 0               # RandomState seed of the resamples and of Monte Carlo flips
FLIPS = 10_000         # random sign flips when there are too many queries to flip them all
EXACT_UP_TO = 20       # up to this many queries the test is exact: all 2^n sign flips
SCALE = 1_000_000      # per-query values have 6 decimals: integers in millionths
CHUNK = 2_000_000      # resample matrix entries held at once (16 MB of float64)
CACHE_BYTES = 32 << 20  # the resample counts kept for reuse (10,000 × 1,600 queries at two bytes a count)
TEST_EXACT = "paired-sign-flip-exact"
TEST_RANDOM = "paired-sign-flip-monte-carlo"


def fixed(values: Iterable[float] | np.ndarray) -> np.ndarray:
    """Values as integers in millionths (float64 holding integers): sums of them are exact."""
    return np.rint(np.asarray(values, dtype=np.float64) * SCALE)


def _counts(index: np.ndarray, n: int) -> np.ndarray:
    """How often each query appears in each resample: rows of `index` (resamples × n) as counts."""
    rows = index.shape[0]
    flat = (index + (np.arange(rows, dtype=np.int64) * n)[:, None]).ravel()
    return np.bincount(flat, minlength=rows * n).reshape(rows, n)


def _compact(n: int) -> type:
    return np.uint8 if n < 256 else np.uint16     # a count never exceeds n


@lru_cache(maxsize=4)
def _cached_counts(n: int, resamples: int, seed: int) -> np.ndarray:
    counts = np.vstack([c.astype(_compact(n)) for c in _draw_counts(n, resamples, seed)])
    counts.setflags(write=False)
    return counts


def _draw_counts(n: int, resamples: int, seed: int) -> Iterator[np.ndarray]:
    state = np.random.RandomState(seed)
    step = max(1, CHUNK // max(n, 1))
    for start in range(0, resamples, step):
        yield _counts(state.randint(0, n, size=(min(step, resamples - start), n)), n)


def resample_counts(n: int, resamples: int = RESAMPLES, seed: int = SEED) -> Iterator[np.ndarray]:
    """The bootstrap's resamples of n queries as count matrices (float64 rows of resamples × n), in
    order: `RandomState(seed).randint(0, n, size=(resamples, n))` counted per row. Drawn once per
    (n, seed) and kept compact (one or two bytes a count, up to `CACHE_BYTES`), so every metric and cell
    of a run reuses the draw; past that, drawn again in chunks for each use."""
    step = max(1, CHUNK // max(n, 1))
    if n < 65536 and n * resamples * np.dtype(_compact(n)).itemsize <= CACHE_BYTES:
        counts = _cached_counts(n, resamples, seed)
        for start in range(0, resamples, step):
            yield counts[start:start + step].astype(np.float64)
    else:
        for chunk in _draw_counts(n, resamples, seed):
            yield chunk.astype(np.float64)


def bootstrap_means(columns: np.ndarray, resamples: int = RESAMPLES, seed: int = SEED) -> np.ndarray:
    """The resampled means (resamples × metrics) of `columns` (queries × metrics, in millionths)."""
    columns = np.asarray(columns, dtype=np.float64)
    if columns.ndim == 1:
        columns = columns[:, None]
    n = columns.shape[0]
    sums = np.vstack([c @ columns for c in resample_counts(n, resamples, seed)])
    return sums / (n * SCALE)


def _bounds(means: np.ndarray, confidence: float) -> np.ndarray:
    tail = (1.0 - confidence) / 2.0
    return np.percentile(means, [100.0 * tail, 100.0 * (1.0 - tail)], axis=0)


def _rounded(x: float) -> float:
    return round(float(x), 6) + 0.0     # -0.0 is written 0.0


def intervals(per_query: dict[str, Sequence[float]], *, confidence: float = CONFIDENCE, resamples: int = RESAMPLES,
              seed: int = SEED) -> dict[str, list[float]]:
    """Percentile bootstrap interval of the mean over queries, per metric: `{metric: [low, high]}`.
    `per_query` maps metric → its per-query values (all of one length, in the same query order).
    Bounds rounded to 6 decimals."""
    names = list(per_query)
    if not names:
        return {}
    columns = np.column_stack([fixed(per_query[m]) for m in names])
    if columns.shape[0] == 0:
        return {}
    lows, highs = _bounds(bootstrap_means(columns, resamples, seed), confidence)
    return {m: [_rounded(lo), _rounded(hi)] for m, lo, hi in zip(names, lows, highs)}


def interval(values: Sequence[float], confidence: float = CONFIDENCE, resamples: int = RESAMPLES,
             seed: int = SEED) -> list[float]:
    """One metric's interval (see `intervals`)."""
    return intervals({"x": values}, confidence=confidence, resamples=resamples, seed=seed)["x"]


def _exact_null(d: np.ndarray) -> np.ndarray:
    """Σ ±d_i over all 2^n sign choices (integers: exact)."""
    null = np.zeros(1)
    for x in d:
        null = np.concatenate([null + x, null - x])
    return null


def _random_null(d: np.ndarray, flips: int, seed: int) -> np.ndarray:
    """Σ ±d_i for `flips` random sign choices per column of `d` (queries × columns): the signs are
    `RandomState(seed).randint(0, 2, size=(flips, n))`, the same for every column."""
    state = np.random.RandomState(seed)
    n = d.shape[0]
    step = max(1, CHUNK // max(n, 1))
    out = []
    for start in range(0, flips, step):
        signs = state.randint(0, 2, size=(min(step, flips - start), n)).astype(np.float64) * 2.0 - 1.0
        out.append(signs @ d)
    return np.concatenate(out)


def _two_sided(null: np.ndarray, observed: float, adjustment: int) -> float:
    total = len(null) + adjustment
    less = (np.count_nonzero(null <= observed) + adjustment) / total
    greater = (np.count_nonzero(null >= observed) + adjustment) / total
    return float(min(1.0, 2.0 * min(less, greater)))


def sign_flips(columns: np.ndarray, *, flips: int = FLIPS, seed: int = SEED,
               exact_up_to: int = EXACT_UP_TO) -> list[tuple[float, str, int]]:
    """Two-sided paired randomization test of mean = 0 for each column of per-query differences
    (queries × columns, in millionths): (p-value, test, flips counted) per column. Exact over all 2^n
    sign flips when n ≤ `exact_up_to`, else `flips` random ones (p = (k + 1) / (flips + 1)), as
    scipy.stats.permutation_test(..., permutation_type="samples") counts them."""
    d = np.asarray(columns, dtype=np.float64)
    n = d.shape[0]
    if n == 0:
        return [(1.0, TEST_EXACT, 0)] * d.shape[1]
    if n <= exact_up_to:
        out = []
        for j in range(d.shape[1]):
            null = _exact_null(d[:, j])
            out.append((_two_sided(null, d[:, j].sum(), 0), TEST_EXACT, len(null)))
        return out
    null = _random_null(d, flips, seed)
    return [(_two_sided(null[:, j], d[:, j].sum(), 1), TEST_RANDOM, flips) for j in range(d.shape[1])]


def sign_flip(diffs: Sequence[float], *, flips: int = FLIPS, seed: int = SEED,
              exact_up_to: int = EXACT_UP_TO) -> tuple[float, str, int]:
    """One column of `sign_flips`: the test of mean(diffs) = 0 (diffs as 6-decimal numbers)."""
    return sign_flips(fixed(diffs)[:, None], flips=flips, seed=seed, exact_up_to=exact_up_to)[0]


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm's step-down adjustment (family-wise error) of m p-values, in their order:
    the i-th smallest becomes max over j ≤ i of min(1, (m − j + 1) · p_(j))."""
    m = len(p_values)
    order = sorted(range(m), key=lambda i: (p_values[i], i))
    out = [0.0] * m
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p_values[i]))
        out[i] = running
    return out


def paired_columns(a: np.ndarray, b: np.ndarray, *, confidence: float = CONFIDENCE, resamples: int = RESAMPLES,
                   seed: int = SEED, flips: int = FLIPS) -> list[dict]:
    """Per column (metric) of two paired samples (queries × metrics, the same queries in the same order,
    6-decimal values): the mean difference b − a, its bootstrap interval and the sign-flip test's p-value."""
    a, b = fixed(a), fixed(b)
    if a.shape != b.shape:
        raise ValueError(f"paired samples differ in shape ({a.shape} and {b.shape})")
    n, m = a.shape
    if n == 0:
        return [{"delta": 0.0, "interval": [0.0, 0.0], "p_value": 1.0, "test": TEST_EXACT, "flips": 0, "queries": 0}
                for _ in range(m)]
    d = b - a
    lows, highs = _bounds(bootstrap_means(d, resamples, seed), confidence)
    tests = sign_flips(d, flips=flips, seed=seed)
    return [{"delta": _rounded(d[:, j].sum() / (n * SCALE)), "interval": [_rounded(lows[j]), _rounded(highs[j])],
             "p_value": _rounded(p), "test": test, "flips": counted, "queries": n}
            for j, (p, test, counted) in enumerate(tests)]


def paired(best: Sequence[float], other: Sequence[float], *, confidence: float = CONFIDENCE,
           resamples: int = RESAMPLES, seed: int = SEED, flips: int = FLIPS) -> dict:
    """One cell against the best, query by query (the same queries, in the same order): the mean
    difference (other − best), its bootstrap interval, and the sign-flip test's p-value."""
    if len(best) != len(other):
        raise ValueError(f"paired samples differ in length ({len(best)} and {len(other)})")
    [row] = paired_columns(np.reshape(np.asarray(best, dtype=np.float64), (-1, 1)),
                           np.reshape(np.asarray(other, dtype=np.float64), (-1, 1)),
                           confidence=confidence, resamples=resamples, seed=seed, flips=flips)
    return {**row, "seed": seed, "confidence": confidence, "resamples": resamples}


def against_best(cells: Sequence[tuple[str, float, dict[str, float]]], *, confidence: float = CONFIDENCE,
                 resamples: int = RESAMPLES, seed: int = SEED, flips: int = FLIPS) -> list[dict]:
    """Every cell against the best one of a check on one metric: `cells` are (cell id, its mean, its
    per-query values {query: value}) in plan order; the best has the highest mean (the first on a tie).
    Each other cell is paired with it over the queries both ranked (in the order of their ids, as
    summary.json lists them, so the resampled indices pick the same queries wherever it is re-derived); Holm's
    correction runs across these comparisons, `significant` is p_holm < 1 − confidence. A cell that
    shares no query with the best is left out."""
    if len(cells) < 2:
        return []
    best = max(range(len(cells)), key=lambda i: (cells[i][1], -i))
    a, _, pa = cells[best]
    # the cells that ranked the same queries are paired in one pass (one draw of resamples and flips
    # for all of them: each column's numbers are those `paired` gives it alone)
    groups: dict[tuple[str, ...], list[int]] = {}
    for i, (_, _, pb) in enumerate(cells):
        common = tuple(sorted(q for q in pa if q in pb))
        if i != best and common:
            groups.setdefault(common, []).append(i)
    rows: dict[int, dict] = {}
    for common, members in groups.items():
        best_values = np.array([[pa[q]] * len(members) for q in common], dtype=np.float64)
        others = np.array([[cells[i][2][q] for i in members] for q in common], dtype=np.float64)
        for i, row in zip(members, paired_columns(best_values, others, confidence=confidence, resamples=resamples,
                                                  seed=seed, flips=flips)):
            rows[i] = {"a": a, "b": cells[i][0], **row, "seed": seed, "confidence": confidence,
                       "resamples": resamples}
    out = [rows[i] for i in sorted(rows)]
    for row, adjusted in zip(out, holm([r["p_value"] for r in out])):
        row["p_holm"] = _rounded(adjusted)
        row["significant"] = adjusted < round(1.0 - confidence, 12)
    return out
