"""Statistics over timing samples: a thin layer over numpy quantiles and ``scipy.stats``.

No clocks and no I/O here, so everything is testable on literal data.

* :func:`summarize` gives min, max, mean, stddev, median, quartiles and IQR (quartiles:
  numpy's default linear interpolation).
* :func:`ratio_ci` is a bootstrap confidence interval of ``median(new)/median(base)``,
  resampling each side's rounds independently (``scipy.stats.bootstrap``, percentile
  method), seeded so that a report is reproducible.
* :func:`mann_whitney` is the two-sided Mann-Whitney U test that asv applies before
  calling a change a regression (``scipy.stats.mannwhitneyu``). With the 5-40 rounds a cell
  has, scipy uses the exact distribution of U when there are no ties and falls back to the
  normal approximation with tie correction otherwise: at these sizes the exact p-value
  matters (5 rounds against 5 cannot go below p = 0.0079, whatever the times).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
from scipy import stats as _sps

__all__ = ["summarize", "quantile", "ratio_ci", "mann_whitney", "geomean", "regret_summary", "SUMMARY_KEYS"]

SUMMARY_KEYS = ("min", "max", "mean", "stddev", "median", "q1", "q3", "iqr", "rounds")


def quantile(xs: Sequence[float], q: float) -> float:
    """Linear-interpolation quantile (numpy's default); NaN for no data."""
    a = np.asarray(xs, dtype=float)
    return float(np.quantile(a, q)) if a.size else float("nan")


def summarize(xs: Sequence[float]) -> dict:
    """Summary statistics of samples (seconds per call).

    Returns
    -------
    dict with keys :data:`SUMMARY_KEYS`; ``stddev`` is the sample standard
    deviation (n-1), 0 for a single sample; every value is NaN for no samples.
    """
    a = np.asarray(xs, dtype=float)
    if a.size == 0:
        return {k: (0 if k == "rounds" else float("nan")) for k in SUMMARY_KEYS}
    q1, med, q3 = (float(v) for v in np.quantile(a, [0.25, 0.5, 0.75]))
    return {"min": float(a.min()), "max": float(a.max()), "mean": float(a.mean()),
            "stddev": float(a.std(ddof=1)) if a.size > 1 else 0.0,
            "median": med, "q1": q1, "q3": q3, "iqr": q3 - q1, "rounds": int(a.size)}


def geomean(xs) -> float:
    """Geometric mean of the finite, positive values of ``xs`` (NaN when there are none): the
    one average of ratios (speed-ups, regrets) everywhere in convbench."""
    a = np.asarray(list(xs) if not isinstance(xs, np.ndarray) else xs, dtype=float)
    a = a[np.isfinite(a) & (a > 0)]
    return float(np.exp(np.log(a).mean())) if a.size else float("nan")


def regret_summary(regrets) -> dict:
    """``n``, ``geomean``, ``p95`` (numpy's linear quantile) and ``max`` of regrets (a chooser's
    time over the fastest measured), over the finite values."""
    a = np.asarray(list(regrets), dtype=float)
    a = a[np.isfinite(a)]
    if not a.size:
        return dict(n=0, geomean=float("nan"), p95=float("nan"), max=float("nan"))
    return dict(n=int(a.size), geomean=geomean(a), p95=quantile(a, 0.95), max=float(a.max()))


def _median_ratio(base, new, axis=-1):
    return np.median(new, axis=axis) / np.median(base, axis=axis)


def ratio_ci(base: Sequence[float], new: Sequence[float], *, confidence: float = 0.95,
             n_boot: int = 2000, seed: int = 0) -> tuple[float, float, float]:
    """Ratio of medians ``median(new) / median(base)`` and its bootstrap CI.

    Returns
    -------
    (ratio, low, high)
        NaN throughout for an empty side; the interval collapses to the ratio when every
        resample gives the same value (e.g. identical rounds).
    """
    b = np.asarray(base, dtype=float)
    a = np.asarray(new, dtype=float)
    if b.size == 0 or a.size == 0:
        return float("nan"), float("nan"), float("nan")
    ratio = float(np.median(a) / np.median(b))
    if b.size < 2 or a.size < 2:
        return ratio, float("nan"), float("nan")
    res = _sps.bootstrap((b, a), _median_ratio, n_resamples=n_boot, confidence_level=confidence,
                         method="percentile", vectorized=True, paired=False, random_state=seed)
    low, high = float(res.confidence_interval.low), float(res.confidence_interval.high)
    if not (low == low and high == high):  # degenerate: every resample equal
        return ratio, ratio, ratio
    return ratio, low, high


def mann_whitney(x: Sequence[float], y: Sequence[float]) -> tuple[float, float]:
    """Two-sided Mann-Whitney U test of ``x`` against ``y``.

    Returns
    -------
    (U, p)
        ``U`` counts pairs with ``x > y`` (ties count one half); ``p`` is scipy's (exact
        distribution when possible); ``p = 1`` when undecidable (empty samples or all values
        equal).
    """
    a, b = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if a.size == 0 or b.size == 0:
        return float("nan"), 1.0
    if np.all(a == a[0]) and np.all(b == a[0]):
        return float(a.size * b.size / 2), 1.0
    res = _sps.mannwhitneyu(a, b, alternative="two-sided", method="auto")
    return float(res.statistic), float(res.pvalue)
