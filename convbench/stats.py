"""Pure statistics over timing samples: summaries, ratio confidence intervals, tests.

No clocks and no I/O here, so everything is testable on literal data.

* :func:`summarize` gives min, max, mean, stddev, median, quartiles and IQR.
  Quartiles use the same linear interpolation as ``numpy.percentile`` (method 7).
* :func:`ratio_ci` is a bootstrap confidence interval of ``median(new)/median(base)``,
  resampling rounds, seeded so that a report is reproducible.
* :func:`mann_whitney` is the two-sided Mann-Whitney U test that asv applies before
  calling a change a regression, with the normal approximation and tie correction
  (exact enough for the >= 5 rounds per cell the runner collects, and dependency-free).
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

__all__ = ["summarize", "quantile", "ratio_ci", "mann_whitney", "SUMMARY_KEYS"]

SUMMARY_KEYS = ("min", "max", "mean", "stddev", "median", "q1", "q3", "iqr", "rounds")


def quantile(xs: Sequence[float], q: float) -> float:
    """Linear-interpolation quantile (numpy's default); NaN for no data."""
    if len(xs) == 0:
        return float("nan")
    s = sorted(xs)
    pos = (len(s) - 1) * q
    lo = math.floor(pos)
    hi = math.ceil(pos)
    return s[lo] + (s[hi] - s[lo]) * (pos - lo)


def summarize(xs: Sequence[float]) -> dict:
    """Summary statistics of samples (seconds per call).

    Returns
    -------
    dict with keys :data:`SUMMARY_KEYS`; ``stddev`` is the sample standard
    deviation (n-1), 0 for a single sample; every value is NaN for no samples.
    """
    n = len(xs)
    if n == 0:
        return {k: (0 if k == "rounds" else float("nan")) for k in SUMMARY_KEYS}
    mean = sum(xs) / n
    var = sum((x - mean) ** 2 for x in xs) / (n - 1) if n > 1 else 0.0
    q1, q3 = quantile(xs, 0.25), quantile(xs, 0.75)
    return {"min": min(xs), "max": max(xs), "mean": mean, "stddev": math.sqrt(var),
            "median": quantile(xs, 0.5), "q1": q1, "q3": q3, "iqr": q3 - q1, "rounds": n}


def ratio_ci(base: Sequence[float], new: Sequence[float], *, confidence: float = 0.95,
             n_boot: int = 2000, seed: int = 0) -> tuple[float, float, float]:
    """Ratio of medians ``median(new) / median(base)`` and its bootstrap CI.

    Returns
    -------
    (ratio, low, high)
    """
    b = np.asarray(base, dtype=float)
    a = np.asarray(new, dtype=float)
    if b.size == 0 or a.size == 0:
        return float("nan"), float("nan"), float("nan")
    ratio = float(np.median(a) / np.median(b))
    rng = np.random.default_rng(seed)
    bs = np.median(rng.choice(b, size=(n_boot, b.size), replace=True), axis=1)
    as_ = np.median(rng.choice(a, size=(n_boot, a.size), replace=True), axis=1)
    r = as_ / bs
    alpha = (1 - confidence) / 2
    return ratio, float(np.quantile(r, alpha)), float(np.quantile(r, 1 - alpha))


def mann_whitney(x: Sequence[float], y: Sequence[float]) -> tuple[float, float]:
    """Two-sided Mann-Whitney U test of ``x`` against ``y``.

    Returns
    -------
    (U, p)
        ``U`` counts pairs with ``x > y`` (ties count one half); ``p`` from the normal
        approximation with tie and continuity correction; ``p = 1`` when undecidable
        (empty samples or all values equal).
    """
    n1, n2 = len(x), len(y)
    if n1 == 0 or n2 == 0:
        return float("nan"), 1.0
    allv = np.concatenate([np.asarray(x, float), np.asarray(y, float)])
    order = np.argsort(allv, kind="mergesort")
    ranks = np.empty(allv.size, dtype=float)
    sv = allv[order]
    i = 0
    tie_term = 0.0
    while i < sv.size:
        j = i
        while j + 1 < sv.size and sv[j + 1] == sv[i]:
            j += 1
        ranks[order[i:j + 1]] = (i + j) / 2 + 1
        t = j - i + 1
        tie_term += t ** 3 - t
        i = j + 1
    r1 = ranks[:n1].sum()
    u1 = r1 - n1 * (n1 + 1) / 2
    n = n1 + n2
    mu = n1 * n2 / 2
    var = n1 * n2 / 12 * ((n + 1) - tie_term / (n * (n - 1))) if n > 1 else 0.0
    if var <= 0:
        return float(u1), 1.0
    z = (abs(u1 - mu) - 0.5) / math.sqrt(var)
    p = math.erfc(max(z, 0.0) / math.sqrt(2))
    return float(u1), min(1.0, p)
