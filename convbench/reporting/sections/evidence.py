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

def _peaks(meta: dict) -> tuple[float | None, float | None]:
    """The run's measured FMA peak (GFLOP/s) and DRAM copy bandwidth (GB/s), None if absent."""
    pk = meta.get("peaks") or {}
    stream = pk.get("stream") or {}
    fma, bw = pk.get("fma_gflops"), stream.get("copy_dram_gbs") or pk.get("bandwidth_gbs")
    return (float(fma) if fma else None), (float(bw) if bw else None)


@section("peak_fraction")
def peak_fraction(d: ReportData) -> Section | None:
    """How close each backend came to what this core can do: the share of the measured FMA peak
    for a compute-bound problem, of the measured DRAM copy bandwidth for a memory-bound one
    (arithmetic intensity of the compulsory traffic against the machine balance)."""
    fma, bw = _peaks(d.meta)
    if not fma or not bw:
        return None
    balance = fma / bw
    own, others = d.with_role("own"), [b for b in d.algorithms if d.roles.get(b) != "own"]
    rows = []
    for prob in d.problems:
        first = d.first[prob]
        flops, nbytes = _num(getattr(first, "flops_direct", None)), _num(getattr(first, "bytes_io", None))
        if not flops or not nbytes:
            continue
        intensity = flops / nbytes
        compute = intensity >= balance

        def share(b):
            c = d.cells.get((prob, b))
            if c is None or c.status != "passed" or not c.time_median_s:
                return None
            if not compute:
                return nbytes / c.time_median_s / 1e9 / bw
            done = _num(getattr(c, "flops_executed", None))  # what the backend computed (FFT, Winograd: fewer)
            return (done if done == done and done > 0 else flops) / c.time_median_s / 1e9 / fma
        timed = {b: d.cells[(prob, b)].time_median_s for b in own if share(b) is not None}
        best = min(timed, key=timed.get) if timed else None
        rows.append([prob, f"{intensity:.1f}", "compute (FMA)" if compute else "memory (DRAM)",
                     f"{best} {share(best):.0%}" if best else "-"]
                    + [f"{v:.0%}" if (v := share(b)) is not None else "" for b in others])
    if not rows:
        return None
    return Section("Fraction of this machine's peak", intro=(
        f"Measured here: FMA peak {fma:.0f} GFLOP/s, DRAM copy {bw:.1f} GB/s, so a problem doing more than "
        f"{balance:.1f} FLOP per byte of its compulsory traffic (inputs, weights, output once) is compute-bound "
        "and its share is of the FMA peak (the FLOPs each backend executes, counted: fewer than the direct count "
        "for FFT and Winograd; the direct count for a peer, whose own count is unknown, so a peer computing fewer "
        "by FFT shows above 100%) / time; below, memory-bound, and its share is of "
        "the copy bandwidth (those bytes / time; above 100% when the operands stay in cache). The fastest own "
        "backend against every peer: where both are far below 100%, the limit is the code, not the hardware."),
        blocks=[Table(["problem", "FLOP/byte", "bound", "fastest own"] + others, rows)])


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
