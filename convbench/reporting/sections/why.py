"""Why an algorithm wins: arithmetic executed against the direct count, multiplications saved,
parameters, workspace, numerical error and transform phases."""

from __future__ import annotations

import math

from ...format import fmt_bytes, fmt_count, fmt_ratio, fmt_time, is_missing, safe_ratio
from ..data import ReportData
from ..document import Section, Table
from . import _num, section


@section("arithmetic")
def arithmetic(d: ReportData) -> Section:
    rows = []
    for prob in d.problems:
        fd = _num(d.first[prob].flops_direct)
        r = [prob, fmt_count(fd)]
        for b in d.backends:
            c = d.cells.get((prob, b))
            fe = _num(c.flops_executed) if c is not None and c.status == "passed" else float("nan")
            r.append("" if math.isnan(fe) else f"{fmt_count(fe)} ({fmt_ratio(fe, fd, '{:.2f}') or 'n/a'})")
        rows.append(r)
    return Section("Arithmetic: direct op count vs executed (ratio executed/direct)", intro=(
        "`flops_direct` is benchdnn's count (2 ops per multiply-add on a real input pixel, "
        "padding excluded), the same for every backend. Executed counts what each algorithm's "
        "code does, including padding taps and transforms; below 1.0 means fewer operations "
        "than the direct loop (FFT, Winograd). Shown for cells that ran; peers' internals are "
        "not counted. A problem whose windows read only padding has a direct count of 0 and "
        "no ratio (n/a)."), blocks=[Table(["problem", "flops_direct"] + d.backends, rows)])

@section("multiplication_reduction")
def multiplication_reduction(d: ReportData) -> Section | None:
    real = d.real
    mult = real[real.flops_multiply.notna() & real.flops_executed.notna()
                & (real.flops_multiply < real.flops_executed) & (real.status == "passed")]
    if mult.empty:
        return None
    mbk = list(dict.fromkeys(mult.backend))
    rows = []
    for prob in list(dict.fromkeys(mult.problem)):
        dense = _num(d.first[prob].flops_dense)
        r = [prob]
        for b in mbk:
            c = d.cells.get((prob, b))
            fm = _num(c.flops_multiply) if c is not None and c.status == "passed" else float("nan")
            r.append("" if math.isnan(fm) or fm <= 0 else fmt_ratio(dense, fm))
        rows.append(r)
    return Section("Multiplication reduction of transform algorithms", intro=(
        "Multiply-adds a direct loop spends (all taps of every output, padding "
        "included) divided by those of the transform algorithm's element-wise/GEMM stage: "
        "Winograd F(m,r) reaches (m*r/(m+r-1))^n in n dimensions on outputs that are a multiple "
        "of m, and less where edge tiles are partial: F(2,3) 1.5x in 1-D, 2.25x in 2-D, 3.4x in "
        "3-D; F(4,3) 2x, 4x, 8x. Transforms are extra (previous table)."),
        blocks=[Table(["problem"] + mbk, rows)])

@section("parameters")
def parameters(d: ReportData) -> Section:
    rows, best = [], {}
    for prob in d.problems:
        c = d.first[prob]
        dense, local, conv = (_num(c.params_fully_connected), _num(c.params_locally_connected), _num(c.params))
        if is_missing(dense) or is_missing(local):
            continue
        rank = d.rank_of(prob)
        if conv > 0 and (rank not in best or dense / conv > best[rank][0]):
            best[rank] = (dense / conv, prob, dense, conv)
        rows.append([prob, fmt_count(dense), fmt_count(local), fmt_count(conv),
                     fmt_ratio(dense, local, "{:.3g}x"), fmt_ratio(local, conv, "{:.3g}x"),
                     f"{safe_ratio(local, dense) * 100:.3g}%" if not math.isnan(safe_ratio(local, dense)) else "",
                     f"{rank}-D"])
    told = " ".join(f"In {r}-D the largest gap is `{p}`: a dense layer needs {fmt_count(de)} weights, the "
                    f"convolution {fmt_count(cv)} ({x:.3g}x fewer)." for r, (x, p, de, cv) in sorted(best.items()))
    if len(best) > 1:
        top = max(best, key=lambda r: best[r][0])
        told += (f" The widest gap of this run is in {top}-D. A dense layer's weights grow with the product of the "
                 "input and output elements (pixels, voxels or samples times channels), the convolution's with "
                 "neither: a volume of the same number of elements as an image has as large a dense layer, and "
                 "its 3-D kernel only a few times more taps.")
    return Section("Why convolution beats a dense layer: parameters of the same mapping", intro=(
        "Weights needed to map this input to this output by a fully-connected layer (the dense "
        "operator, per group), by a locally-connected layer (one weight per nonzero of the "
        "operator: local connectivity, no sharing) and by the convolution (shared kernels). "
        "`locality` = dense / locally-connected, `sharing` = locally-connected / conv. " + told),
        blocks=[Table(["problem", "fully connected", "locally connected", "convolution", "locality",
                       "sharing", "operator density", "rank"], rows)])

@section("workspace")
def workspace(d: ReportData) -> Section:
    rows = []
    for prob in d.problems:
        r = [prob, fmt_count(_num(d.first[prob].params))]
        for b in d.backends:
            c = d.cells.get((prob, b))
            r.append(fmt_bytes(_num(c.workspace_bytes)) if c is not None else "")
        rows.append(r)
    return Section("Parameters and workspace", blocks=[Table(["problem", "weights"] + d.backends, rows)])

@section("error")
def error(d: ReportData) -> Section:
    rows = []
    for prob in d.problems:
        r = [prob]
        for b in d.backends:
            c = d.cells.get((prob, b))
            if c is None or math.isnan(_num(c.rel_err)):
                r.append("")
            else:
                r.append(f"{_num(c.rel_err):.1e} / {_num(c.max_abs_err):.1e}")
        rows.append(r)
    worst = ["**worst relative error**"]
    for b in d.backends:
        errs = d.real[d.real.backend == b].rel_err.dropna()
        worst.append(f"**{errs.max():.1e}**" if not errs.empty else "")
    rows.append(worst)
    return Section("Error against the float64 reference (relative L2 / max abs)",
                   blocks=[Table(["problem"] + d.backends, rows)])

@section("phases")
def phases(d: ReportData) -> Section | None:
    real = d.real
    cols = [c for c in real.columns if c.startswith("phase_")]
    ph = real[real[cols].notna().any(axis=1)] if cols else real.iloc[0:0]
    if ph.empty:
        return None
    rows = [[r["problem"], r["backend"]] + [fmt_time(_num(r[c])) for c in cols] + [fmt_time(r["time_median_s"])]
            for _, r in ph.iterrows()]
    return Section("Transform phases (median seconds of one run, measured separately)", blocks=[
        Table(["problem", "backend"] + [c[6:-2] for c in cols] + ["total median"], rows)])
