"""The one place that turns seconds, bytes, counts and rates into text.

Results are stored in SI units (seconds, bytes, operations); everything a person reads
(tables, progress lines, comparisons, figure labels) goes through these functions, so a
time reads the same wherever it appears. Every function returns ``""`` for a missing
value (None or NaN) and never raises on one, so a table with holes still renders.
"""

from __future__ import annotations

import math

__all__ = ["fmt_time", "fmt_bytes", "fmt_count", "fmt_rate", "fmt_ratio", "safe_ratio", "is_missing",
           "short_label"]


def is_missing(v) -> bool:
    """True for None, NaN and values that are not numbers at all."""
    if v is None:
        return True
    try:
        return math.isnan(float(v))
    except (TypeError, ValueError):
        return True


def fmt_time(s, *, compact: bool = False) -> str:
    """Seconds as ``12.3 us``, ``4.56 ms`` or ``1.23 s`` (``compact``: no space, for progress lines)."""
    if is_missing(s):
        return ""
    s = float(s)
    sep = "" if compact else " "
    if abs(s) < 1e-3:
        return f"{s * 1e6:.1f}{sep}us"
    if abs(s) < 1:
        return f"{s * 1e3:.3g}{sep}ms"
    return f"{s:.3g}{sep}s"


def fmt_bytes(n) -> str:
    """Bytes in binary units: ``512 B``, ``1.5 KiB``, ... ``2.0 TiB``."""
    if is_missing(n):
        return ""
    n = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return ""  # pragma: no cover - the loop always returns


def fmt_count(n) -> str:
    """A count with an SI suffix: ``950``, ``1.2k``, ``3.4M``, ``5.6G``, ``7.8T``."""
    if is_missing(n):
        return ""
    n = float(n)
    for unit, f in (("T", 1e12), ("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(n) >= f:
            return f"{n / f:.3g}{unit}"
    return f"{n:.0f}"


def fmt_rate(v, unit: str = "GFLOP/s", digits: int = 1) -> str:
    """A rate already scaled to ``unit`` (GFLOP/s, GB/s), with ``digits`` decimals."""
    if is_missing(v):
        return ""
    return f"{float(v):.{digits}f}" + (f" {unit}" if unit else "")


def safe_ratio(num, den) -> float:
    """``num / den``, NaN when either is missing or ``den`` is zero.

    Every ratio with a count in the denominator (flops, bytes, a reference norm) goes
    through here: a problem whose windows read only padding has ``flops_direct = 0``,
    and its ratios are undefined, not a crash.
    """
    if is_missing(num) or is_missing(den) or float(den) == 0:
        return float("nan")
    return float(num) / float(den)


def fmt_ratio(num, den, fmt: str = "{:.2f}x") -> str:
    """:func:`safe_ratio` formatted (``""`` when undefined)."""
    r = safe_ratio(num, den)
    return "" if math.isnan(r) else fmt.format(r)


def short_label(label: str, name: str = "", width: int = 28) -> str:
    """A problem label short enough for a figure: the layer name when there is one, else the
    descriptor cut to ``width`` characters."""
    text = name if name else str(label)
    return text if len(text) <= width else text[:width - 3] + "..."
