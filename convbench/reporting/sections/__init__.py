"""The report's sections, one function each, in reading order.

``tables.md`` answers, in this order: which backend is fastest for each problem and by how
much (the question a user comes with), then the evidence: median times, effective
GFLOP/s, speed-up against a baseline backend, network roll-ups, arithmetic executed vs the
direct count, parameters and workspace, numerical error, transform phases, and every
skipped, mistrusted or failed cell with its reason.

The sections live in this package's modules by theme, imported below in reading order
(:mod:`.answer`, :mod:`.evidence`, :mod:`.networks`, :mod:`.why`, :mod:`.provenance`).
Adding a section is one function decorated with :func:`section` in one of them: it takes the
:class:`~convbench.reporting.data.ReportData` and returns a
:class:`~convbench.reporting.document.Section` (or None when it has nothing to show). A
section that raises is left out with a one-line warning; the rest of the report is written.
"""

from __future__ import annotations

from typing import Callable

from ..data import ReportData
from ..document import Section

__all__ = ["SECTIONS", "section", "build_sections"]

#: key -> section function, in reading order
SECTIONS: dict[str, Callable[[ReportData], Section | None]] = {}


def section(key: str):
    """Register a section function under ``key`` (its place: the order of definition)."""
    def register(fn):
        SECTIONS[key] = fn
        return fn
    return register


#: sections that need at least one backend row (the rest also speak of invalid grid points)
_NEEDS_ROWS = ("median_times", "gflops", "speedup", "arithmetic", "parameters", "workspace", "error")


def build_sections(data: ReportData, keys: list[str] | None = None, warn: Callable[[str], None] | None = None
                   ) -> list[Section]:
    """Every registered section that has something to show (or those named in ``keys``)."""
    out = []
    for key, fn in SECTIONS.items():
        if keys is not None and key not in keys:
            continue
        if key in _NEEDS_ROWS and not data.problems:
            continue
        try:
            s = fn(data)
        except Exception as e:  # noqa: BLE001 - one section's failure must not lose the report
            if warn is not None:
                warn(f"warning: report section {key!r} skipped ({e.__class__.__name__}: {e})")
            continue
        if s is not None:
            s.key = key
            out.append(s)
    return out


def _num(v) -> float:
    try:
        return float(v)
    except (TypeError, ValueError):
        return float("nan")


# the sections register themselves in reading order
from . import answer, evidence, networks, why, provenance  # noqa: E402,F401
