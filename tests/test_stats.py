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


def test_mann_whitney_matches_scipy():
    scipy_stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(3)
    x = rng.normal(1.0, 0.1, 12)
    y = rng.normal(1.1, 0.1, 15)
    u, p = mann_whitney(x, y)
    ref = scipy_stats.mannwhitneyu(x, y, alternative="two-sided", method="asymptotic")
    assert u == pytest.approx(ref.statistic)
    assert p == pytest.approx(ref.pvalue, rel=1e-6)
