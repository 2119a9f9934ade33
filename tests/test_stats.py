"""Statistics on literal data (no clocks)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from convbench.stats import mann_whitney, quantile, ratio_ci, summarize


def test_summarize_literal():
    s = summarize([4.0, 1.0, 3.0, 2.0, 5.0])
    assert s["min"] == 1 and s["max"] == 5 and s["median"] == 3 and s["mean"] == 3
    assert s["q1"] == 2 and s["q3"] == 4 and s["iqr"] == 2 and s["rounds"] == 5
    assert s["stddev"] == pytest.approx(math.sqrt(2.5))


def test_quantile_matches_numpy():
    xs = [0.3, 0.1, 0.9, 0.4, 0.7, 0.2]
    for q in (0.0, 0.1, 0.25, 0.5, 0.9, 1.0):
        assert quantile(xs, q) == pytest.approx(np.percentile(xs, q * 100))


def test_summarize_edge_cases():
    assert summarize([2.0])["stddev"] == 0 and summarize([2.0])["iqr"] == 0
    empty = summarize([])
    assert empty["rounds"] == 0 and math.isnan(empty["median"])


def test_ratio_ci_brackets_the_ratio():
    base = [1.0, 1.02, 0.98, 1.01, 0.99, 1.0, 1.03]
    new = [1.5 * v for v in base]
    r, lo, hi = ratio_ci(base, new)
    assert r == pytest.approx(1.5)
    assert lo <= 1.5 <= hi and hi - lo < 0.2
    assert ratio_ci(base, new) == ratio_ci(base, new)  # seeded: reproducible


def test_mann_whitney_literal():
    # all of x above all of y: U = n1*n2
    u, p = mann_whitney([5, 6, 7, 8, 9], [1, 2, 3, 4, 4.5])
    assert u == 25 and p < 0.02
    u, p = mann_whitney([1, 2, 3], [1, 2, 3])
    assert u == 4.5 and p == 1.0
    assert mann_whitney([1, 1, 1], [1, 1, 1])[1] == 1.0
    assert mann_whitney([], [1.0])[1] == 1.0


def test_mann_whitney_uses_the_exact_distribution_at_round_counts():
    # 5 rounds against 5, completely separated: the exact two-sided p is 2 / C(10, 5) = 2/252;
    # the normal approximation the hand-written test used gave 0.012
    u, p = mann_whitney([6, 7, 8, 9, 10], [1, 2, 3, 4, 5])
    assert u == 25 and p == pytest.approx(2 / 252)
    # no 5-vs-5 comparison can get below that, whatever the times: the gate's alpha must allow it
    assert mann_whitney([1e9] * 4 + [2e9], [1, 2, 3, 4, 5])[1] >= 2 / 252 - 1e-12


def test_ratio_ci_is_scipy_bootstrap_of_the_median_ratio():
    from scipy import stats as sps
    base = [1.0, 1.1, 0.9, 1.05, 0.95, 1.02]
    new = [2.0, 2.2, 1.9, 2.1, 2.05, 1.95]
    r, lo, hi = ratio_ci(base, new, n_boot=500, seed=1)
    ref = sps.bootstrap((np.array(base), np.array(new)), lambda b, n, axis=-1: np.median(n, axis=axis)
                        / np.median(b, axis=axis), n_resamples=500, method="percentile", vectorized=True,
                        paired=False, random_state=1).confidence_interval
    assert (lo, hi) == pytest.approx((ref.low, ref.high))
    assert r == pytest.approx(np.median(new) / np.median(base))
    assert ratio_ci([1.0, 1.0], [2.0, 2.0]) == (2.0, 2.0, 2.0)  # degenerate: no spread at all
    assert all(math.isnan(v) for v in ratio_ci([], [1.0]))
