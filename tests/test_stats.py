"""harness/checks/stats.py against the libraries that compute the same things: percentile bootstrap
intervals against scipy.stats.bootstrap(method="percentile") within Monte Carlo error, the paired
sign-flip test against scipy.stats.permutation_test(permutation_type="samples") (exact: equal), Holm's
correction against its definition, and (where installed) ranx's Fisher randomization test; plus the
promise verify rests on: the same seed gives the same numbers, drawn as the docs say."""

from __future__ import annotations

import math

import numpy as np
import pytest

from harness.checks import stats

scipy_stats = pytest.importorskip("scipy.stats")


def per_query(n: int, kind: str, seed: int) -> np.ndarray:
    """Per-query metric values as a retrieval check records them (6 decimals, in [0, 1])."""
    rng = np.random.default_rng(seed)
    if kind == "binary":      # recall@1, precision@1: many ties
        return rng.integers(0, 2, n).astype(float)
    if kind == "skewed":      # mostly perfect queries, a few bad ones (an easy set)
        return np.round(np.where(rng.random(n) < 0.8, 1.0, rng.random(n) * 0.4), 6)
    return np.round(rng.random(n), 6)


@pytest.mark.parametrize("n,kind", [(11, "graded"), (25, "binary"), (40, "skewed"), (120, "graded")])
def test_intervals_agree_with_scipy_bootstrap_percentile(n, kind):
    x = per_query(n, kind, seed=n)
    low, high = stats.interval(x)
    ref = scipy_stats.bootstrap((x,), np.mean, method="percentile", n_resamples=50_000, rng=1,
                                confidence_level=0.95).confidence_interval
    # the 2.5% quantile of 10,000 resampled means has a standard error of about 0.027 bootstrap SDs
    # (scipy's of 50,000: 0.012), so 0.12 is over 4 of their combined standard errors
    tolerance = 0.12 * x.std() / math.sqrt(n) + 1e-6
    assert abs(low - ref.low) < tolerance and abs(high - ref.high) < tolerance, (low, high, ref)
    assert low <= x.mean() <= high


@pytest.mark.parametrize("kept", [True, False], ids=["draw-kept", "drawn-in-chunks"])
def test_an_interval_is_the_documented_draw_byte_for_byte(kept, monkeypatch):
    """RandomState(seed).randint(0, n, size=(10000, n)) as resample indices, numpy.percentile (linear)
    of the means: anyone can re-derive the recorded bounds, whether the draw was kept for reuse or (a
    large n) drawn again in chunks."""
    if not kept:
        monkeypatch.setattr(stats, "CACHE_BYTES", 0)
    for n, confidence in ((11, 0.95), (300, 0.9)):
        x = per_query(n, "graded", seed=7)
        index = np.random.RandomState(0).randint(0, n, size=(10_000, n))
        tail = (1 - confidence) / 2 * 100
        want = np.percentile(x[index].mean(axis=1), [tail, 100 - tail])
        got = stats.interval(x, confidence=confidence)
        assert got == pytest.approx(want.tolist(), abs=1.01e-6)


def test_the_same_seed_gives_the_same_interval_and_another_seed_another():
    x = per_query(30, "graded", seed=3)
    assert stats.interval(x) == stats.interval(x.copy()) == stats.interval(x, seed=0)
    assert stats.interval(x, seed=1) != stats.interval(x)
    # one draw serves every metric: columns computed together equal columns computed alone
    both = stats.intervals({"a": x, "b": x[::-1]})
    assert both["a"] == stats.interval(x) and both["b"] == stats.interval(x[::-1])


def test_an_interval_of_identical_queries_is_a_point():
    assert stats.interval([0.5] * 9) == [0.5, 0.5]
    assert stats.intervals({}) == {}


def _scipy_p(a: np.ndarray, b: np.ndarray, n_resamples=np.inf, rng=0) -> float:
    return scipy_stats.permutation_test((b, a), lambda x, y, axis: np.mean(x - y, axis=axis),
                                        permutation_type="samples", n_resamples=n_resamples,
                                        vectorized=True, alternative="two-sided", rng=rng).pvalue


@pytest.mark.parametrize("n,kind,shift", [(4, "graded", 0.1), (9, "graded", 0.02), (12, "binary", 0.0),
                                          (14, "skewed", 0.05), (13, "graded", 0.3)])
def test_the_exact_sign_flip_p_value_is_scipys(n, kind, shift):
    a = per_query(n, kind, seed=n)
    b = np.round(np.clip(per_query(n, kind, seed=n + 100) * 0.5 + a * 0.5 + shift, 0, 1), 6)
    p, test, flips = stats.sign_flip(b - a)
    assert test == stats.TEST_EXACT and flips == 2 ** n
    assert p == pytest.approx(_scipy_p(a, b), abs=1e-12)


def test_no_difference_at_all_gives_p_1():
    assert stats.sign_flip([0.0] * 8) == (1.0, stats.TEST_EXACT, 256)
    assert stats.paired([0.3, 0.4, 0.5], [0.3, 0.4, 0.5])["p_value"] == 1.0


def test_exact_up_to_20_queries_then_monte_carlo():
    d = np.round(np.linspace(-0.2, 0.5, 21), 6)
    assert stats.sign_flip(d[:20])[1:] == (stats.TEST_EXACT, 2 ** 20)
    assert stats.sign_flip(d)[1:] == (stats.TEST_RANDOM, 10_000)


def test_the_monte_carlo_p_value_counts_as_scipy_does_and_agrees_with_it():
    n = 40
    a = per_query(n, "graded", seed=5)
    b = np.round(np.clip(a + np.random.default_rng(6).normal(0.04, 0.15, n), 0, 1), 6)
    p, test, flips = stats.sign_flip(b - a)
    # the documented draw: signs from RandomState(0), the observed flip counted in (+1 over +1)
    signs = np.random.RandomState(0).randint(0, 2, size=(10_000, n)) * 2 - 1
    d = np.rint((b - a) * 1e6)
    null, observed = signs @ d, d.sum()
    want = min(1.0, 2 * min((np.sum(null <= observed) + 1) / 10_001, (np.sum(null >= observed) + 1) / 10_001))
    assert (test, flips) == (stats.TEST_RANDOM, 10_000) and p == pytest.approx(want, abs=1e-12)
    reference = _scipy_p(a, b, n_resamples=40_000, rng=2)
    half = reference / 2     # the two-sided p's standard error, ours (10,000 flips) and scipy's (40,000) combined
    error = 2 * math.sqrt(half * (1 - half) * (1 / 10_000 + 1 / 40_000))
    assert abs(p - reference) < 4 * error + 1e-4, (p, reference)


def test_holm_against_its_definition():
    assert stats.holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert stats.holm([0.5]) == [0.5] and stats.holm([]) == []
    rng = np.random.default_rng(0)
    for _ in range(50):
        p = rng.random(rng.integers(1, 8)) ** 3
        m = len(p)
        order = np.argsort(p, kind="stable")
        want = np.empty(m)
        want[order] = np.minimum(1, np.maximum.accumulate((m - np.arange(m)) * p[order]))
        assert stats.holm(p.tolist()) == pytest.approx(want.tolist())


def test_every_cell_against_the_best_with_holm_across_the_check():
    rng = np.random.default_rng(11)
    queries = [f"q{i}" for i in range(16)]
    base = rng.random(16)
    cells = []
    for cell, shift in (("small", -0.25), ("best", 0.0), ("close", -0.01), ("mid", -0.08)):
        values = np.round(np.clip(base + shift + rng.normal(0, 0.03, 16), 0, 1), 6)
        cells.append((cell, float(values.mean()), dict(zip(queries, values.tolist()))))
    cells[2][2].pop("q3")        # a query this cell did not rank: paired over the 15 both ranked
    rows = stats.against_best(cells)
    assert [r["a"] for r in rows] == ["best"] * 3 and [r["b"] for r in rows] == ["small", "close", "mid"]
    by = {r["b"]: r for r in rows}
    assert by["close"]["queries"] == 15 and by["small"]["queries"] == 16
    assert by["small"]["delta"] < -0.2 and by["small"]["interval"][1] < 0 and by["small"]["significant"]
    assert not by["close"]["significant"] and by["close"]["interval"][0] < 0 < by["close"]["interval"][1]
    assert all(r["p_holm"] >= r["p_value"] for r in rows)
    assert [r["p_holm"] for r in rows] == pytest.approx(stats.holm([r["p_value"] for r in rows]), abs=1e-6)
    pa = [cells[1][2][q] for q in queries if q != "q3"]
    pb = [cells[2][2][q] for q in queries if q != "q3"]
    assert by["close"]["p_value"] == pytest.approx(_scipy_p(np.array(pa), np.array(pb)), abs=1e-6)
    assert stats.against_best(cells[:1]) == []


@pytest.mark.slow     # ranx's numba functions compile on first use (tens of seconds)
def test_the_sign_flip_p_value_agrees_with_ranx_fisher_randomization_test():
    """ranx's `compare(..., stat_test="fisher")` runs Fisher's randomization test over per-query
    scores: |mean difference| of random sign flips against the observed one."""
    ranx_test = pytest.importorskip(
        "ranx.statistical_tests.fisher_randomization_test",
        reason="ranx is not in the test extra: it pulls numba, llvmlite and ir_datasets (about 90 s to "
               "install) and compiles for a minute on first use; `pip install ranx` to run this check")
    n = 30
    a = per_query(n, "graded", seed=21)
    b = np.round(np.clip(a + np.random.default_rng(22).normal(0.03, 0.12, n), 0, 1), 6)
    theirs, _ = ranx_test.fisher_randomization_test(a, b, n_permutations=20_000, max_p=0.05, random_seed=0)
    ours = stats.sign_flip(b - a)[0]
    error = math.sqrt(ours * (1 - ours) / 10_000) + math.sqrt(ours * (1 - ours) / 20_000)
    assert abs(ours - theirs) < 4 * error + 1e-3, (ours, theirs)
