"""The evidence per problem: median times, effective GFLOP/s, speed-up against a baseline."""

from __future__ import annotations

import math

from ...format import fmt_rate, fmt_ratio, fmt_time
from ..data import SHORT_STATUS, ReportData
from ..document import Section, Table
from . import _num, section


@section("median_times")
def median_times(d: ReportData) -> Section:
    def tcell(c):
        med, iqr = c.time_median_s, _num(c.time_iqr_s)
        spread = f" ±{iqr / med * 100:.0f}%" if med and not math.isnan(iqr) else ""
        return fmt_time(med) + spread
    return Section("Median time per call", blocks=[Table(["problem"] + d.backends, d.pivot(tcell, footnotes=True))])

@section("gflops")
def gflops(d: ReportData) -> Section:
    return Section("Effective GFLOP/s (direct op count / median time)", blocks=[Table(
        ["problem"] + d.backends, d.pivot(lambda c: fmt_rate(c.gflops_effective, "")))])

@section("speedup")
def speedup(d: ReportData) -> Section | None:
    if not d.baseline:
        return None
    rows = []
    for prob in d.problems:
        base = d.cells.get((prob, d.baseline))
        bt = base.time_median_s if base is not None and base.status == "passed" else float("nan")
        r = [prob]
        for b in d.backends:
            c = d.cells.get((prob, b))
            if c is None:
                r.append("")
            elif c.status != "passed":
                r.append(SHORT_STATUS.get(c.status, ""))
            else:
                r.append(fmt_ratio(bt, c.time_median_s))
        rows.append(r)
    return Section(f"Speed-up vs `{d.baseline}` (> 1 is faster; same run, interleaved)",
                   blocks=[Table(["problem"] + d.backends, rows)])
