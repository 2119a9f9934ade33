"""Figures of a result directory (matplotlib, PNG and SVG). Draws only: never measures.

Every plot has a title, labelled axes with units and a legend placed outside the axes,
and uses one colour and marker per backend throughout (peers hollow), so that ten or more
backends stay readable. A plot whose data is absent (no roll-up without a suite, no
parameter plot without matrix backends, ...) is skipped, not drawn empty. Counts come
from the rows (``flops_dense``, ``bytes_io``, ``params_*``), never recomputed.

Adding a figure is one function decorated with :func:`figure`; it receives a
:class:`FigureContext` and returns the matplotlib figure (or None).

*Families*: problems that differ only in input size (and, for the winner map, kernel
size) form a family; lines join a family's points, so a ladder of sizes reads as a curve
and its crossovers are visible.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from ..backends import REGISTRY, backend_class
from ..format import short_label
from ..results import ResultsWriteError, atomic_path

__all__ = ["write_plots", "PLOTS", "figure", "family_key"]

#: stem -> (title used in the report, short explanation, drawing function)
PLOTS: dict[str, tuple[str, str, Callable]] = {}

_MARKERS = "o s ^ D v P X * < > h p d 8 H".split()

#: columns that, with the input size (and kernel size), identify a family of problems
FAMILY = ["kind", "alg", "rank", "mb", "ic", "oc", "g", "sd", "sh", "sw", "dd", "dh", "dw", "dtype", "direction",
          "weight_density"]
#: per rank: the axis a winner map puts along x (the extent of a cube or square, or the length)
_LEAD = {1: "iw", 2: "ih", 3: "id"}


def figure(stem: str, title: str, what: str):
    """Register a figure drawn by the decorated function under ``stem``."""
    def register(fn):
        PLOTS[stem] = (title, what, fn)
        return fn
    return register


@dataclass
class FigureContext:
    df: object          # passed/skipped rows of real backends, ``problem`` = cell label
    style: dict         # backend -> colour, marker, fill, line style
    meta: dict
    rollups: list
    baseline: str | None
    variants: object = None  # every row at every thread count and cache state (``--threads 1,2``)

    def __post_init__(self):
        for col, default in (("kind", "conv"), ("alg", ""), ("direction", "fwd"), ("algorithm", ""), ("rank", 2),
                             ("id", 1), ("od", 1), ("kd", 1), ("sd", 1), ("pd", 0), ("dd", 0)):
            if col not in self.df.columns:  # frames from before pooling and bwd_w (or built by hand)
                self.df = self.df.assign(**{col: default})


def _style(backends: list[str]) -> dict:
    """Colour, marker and fill per backend, stable across plots (registry order first)."""
    import matplotlib
    cmap = matplotlib.colormaps["tab20"]
    order = [b for b in REGISTRY if b in backends] + sorted(b for b in backends if b not in REGISTRY)
    out = {}
    for i, b in enumerate(order):
        cls = backend_class(b)
        peer = cls is not None and cls.role == "peer"
        out[b] = dict(color=cmap(i % 20), marker=_MARKERS[i % len(_MARKERS)],
                      mfc="none" if peer else cmap(i % 20), ls="--" if peer else "-")
    return out


def _legend(ax, **kw):
    handles, labels = ax.get_legend_handles_labels()
    if handles:
        ax.legend(handles, labels, loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False, **kw)


def _rank(row) -> int:
    """A row's spatial rank (a Series' ``.rank`` is a method: read it as an item)."""
    try:
        r = row["rank"]
    except (KeyError, TypeError, IndexError):  # a namedtuple, or a row of an older frame
        r = getattr(row, "rank", 2)
    return 2 if r is None or callable(r) or r != r else int(r)


def _kernel(row) -> str:
    """``3x3x3``, ``5x5`` or ``9`` (a row's kernel over its own axes)."""
    return "x".join(str(int(getattr(row, "k" + a))) for a in "dhw"[3 - _rank(row):])


def family_key(row) -> str:
    """A short, readable name of a row's family (what stays fixed along a size ladder)."""
    dim = "" if _rank(row) == 2 else f"{_rank(row)}-D "
    if getattr(row, "kind", "conv") == "pool":  # a row of an older or hand-made frame may lack it
        bits = [f"{dim}{row.alg} pool, {int(row.ic)} ch"]
        if row.sh > 1:
            bits.append(f"stride {int(row.sh)}")
        if row.mb != 1:
            bits.append(f"mb{int(row.mb)}")
        if row.direction != "fwd":
            bits.append(str(row.direction))
        return ", ".join(bits)
    chans = "1 channel" if row.ic == 1 and row.oc == 1 else (
        f"depthwise {int(row.ic)} ch" if row.g > 1 and row.g == row.ic == row.oc else
        f"{int(row.ic)}->{int(row.oc)} ch" + (f", g{int(row.g)}" if row.g > 1 else ""))
    bits = [dim + chans]
    if max(row.sh, row.sw, getattr(row, "sd", 1)) > 1:
        bits.append(f"stride {int(max(row.sh, row.sw, getattr(row, 'sd', 1)))}")
    if row.dh or row.dw or getattr(row, "dd", 0):
        bits.append(f"dilation {int(max(row.dh, row.dw, getattr(row, 'dd', 0))) + 1}")
    if row.mb != 1:
        bits.append(f"mb{int(row.mb)}")
    if row.dtype == "float64":
        bits.append("f64")
    if row.direction != "fwd":
        bits.append(str(row.direction))
    return ", ".join(bits)


def _ok(df):
    return df[(df.status == "passed") & df.time_median_s.notna()]


def _conv(df):
    return df[df.kind != "pool"] if "kind" in df.columns else df


def _per_rank(scored: list, most: int) -> list:
    """The frames of ``scored`` ((score, frame) pairs, a frame per panel), best score first, at
    most ``most``, taking each rank's best panel before a second one of any rank: a run of 2-D
    ladders with one 3-D and one 1-D ladder draws all three."""
    order = sorted(scored, key=lambda t: -t[0])
    firsts, seen = [], set()
    for i, (_, g) in enumerate(order):
        r = _rank(g.iloc[0])
        if r not in seen:
            seen.add(r)
            firsts.append(i)
    picked = firsts + [i for i in range(len(order)) if i not in firsts]
    return [order[i][1] for i in sorted(picked[:most])]


# ---------------------------------------------------------------------------- figures
@figure("time_vs_size", "Time vs input size",
        "median time per call against input pixels; one panel per family of problems that differ "
        "only in input size, one line per backend")
def _time_vs_size(c: FigureContext):
    import matplotlib.pyplot as plt
    ok = _ok(c.df)
    if ok.empty:
        return None
    ok = ok.assign(px=ok["id"] * ok.ih * ok.iw)  # 1 on the axes a problem does not have
    panels = []
    for key, g in ok.groupby(FAMILY + ["kd", "kh", "kw"], sort=False, dropna=False):
        if g.px.nunique() >= 3:
            panels.append((g.px.nunique(), g))
    if not panels:  # no ladder: one panel per kernel size with whatever there is
        panels = [(len(g), g) for _, g in ok.groupby(["rank", "kd", "kh", "kw"])]
    panels = _per_rank(panels, 6)
    n = len(panels)
    cols = min(3, n)
    rows = -(-n // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(5.2 * cols + 2.2, 3.8 * rows), squeeze=False)
    for ax, g in zip(axes.ravel(), panels):
        r0 = g.iloc[0]
        for key, gb in g.groupby(["backend"] + FAMILY, sort=False, dropna=False):
            b = key[0]
            gb = gb.sort_values("px")
            s = c.style[b]
            ax.plot(gb.px, gb.time_median_s * 1e3, label=b, color=s["color"], marker=s["marker"],
                    mfc=s["mfc"], ls=s["ls"] if len(gb) > 1 else "none", lw=1.2, ms=5)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_title(f"kernel {_kernel(r0)}, {family_key(r0)}", fontsize=10)
        ax.set_xlabel({1: "input length (samples, iw)", 2: "input size (pixels, ih x iw)",
                       3: "input size (voxels, id x ih x iw)"}[_rank(r0)])
        ax.set_ylabel("median time per call (ms)")
        ax.grid(True, which="both", alpha=0.25)
    for ax in axes.ravel()[n:]:
        ax.axis("off")
    seen = {}
    for ax in axes.ravel():
        for h, lab in zip(*ax.get_legend_handles_labels()):
            seen.setdefault(lab, h)
    order = [b for b in c.style if b in seen]
    fig.legend([seen[b] for b in order], order, loc="upper left", bbox_to_anchor=(1.0, 0.95), fontsize=8,
               frameon=False)
    fig.suptitle("Median time per call vs input size (log-log; a line joins one backend's problems that "
                 "differ only in size)")
    fig.tight_layout()
    return fig


@figure("winner_map", "Fastest backend",
        "which backend is fastest at each input size and kernel size; one panel per family of problems "
        "(channels, stride, ...) swept over sizes and kernels")
def _winner_map(c: FigureContext):
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch
    ok = _ok(_conv(c.df))
    if ok.empty:
        return None
    win = ok.loc[ok.groupby("problem").time_median_s.idxmin()]
    fams = [(len(g), g) for _, g in win.groupby(FAMILY, sort=False, dropna=False) if len(g) >= 3]
    fams = _per_rank(fams, 6) or [win[win["rank"] == win["rank"].mode().iloc[0]]]
    cols = min(3, len(fams))
    nrows = -(-len(fams) // cols)
    fig, axes = plt.subplots(nrows, cols, figsize=(5.6 * cols + 2.5, 4.2 * nrows), squeeze=False)
    for ax in axes.ravel()[len(fams):]:
        ax.axis("off")
    used = set()
    for ax, w in zip(axes.ravel(), fams):
        rank = _rank(w.iloc[0])
        lead, klead = _LEAD[rank], "k" + _LEAD[rank][1]
        sizes = sorted(w[lead].unique())
        kernels = sorted(w[klead].unique())
        for i, k in enumerate(kernels):
            for j, sz in enumerate(sizes):
                cell = w[(w[klead] == k) & (w[lead] == sz)]
                if cell.empty:
                    continue
                counts = cell.backend.value_counts()
                b = counts.index[0]
                used.add(b)
                ax.add_patch(plt.Rectangle((j - 0.5, i - 0.5), 1, 1, color=c.style[b]["color"], alpha=0.85))
                label = b.replace("winograd_", "wino ").replace("_blas", "").replace("_numba", "")
                if len(counts) > 1:
                    label += f"\n({counts.iloc[0]}/{len(cell)})"
                ax.text(j, i, label, ha="center", va="center", fontsize=7)
        ax.set_xlim(-0.5, len(sizes) - 0.5)
        ax.set_ylim(-0.5, len(kernels) - 0.5)
        ax.set_xticks(range(len(sizes)), [str(int(v)) for v in sizes])
        ax.set_yticks(range(len(kernels)), ["x".join([str(int(v))] * rank) for v in kernels])
        ax.set_xlabel({1: "input length iw (samples)", 2: "input height ih (pixels)",
                       3: "input depth id (voxels)"}[rank])
        ax.set_ylabel("kernel size")
        ax.set_title(family_key(w.iloc[0]) if len(fams) > 1 or len(w) < len(win) else "all problems",
                     fontsize=10)
    handles = [Patch(color=c.style[b]["color"], label=b) for b in c.style if b in used]
    fig.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.0, 0.95), fontsize=8, frameon=False)
    fig.suptitle("Fastest backend by input size and kernel size (several problems in a cell: the most "
                 "frequent winner, with its count)")
    fig.tight_layout()
    return fig


@figure("roofline", "Roofline",
        "effective GFLOP/s against arithmetic intensity, under this machine's measured peaks; pooling "
        "cells (no op count) as GB/s against the measured STREAM bandwidths")
def _roofline(c: FigureContext):
    import matplotlib.pyplot as plt
    ok = c.df[(c.df.status == "passed") & c.df.gflops_effective.notna() & c.df.bytes_io.notna()
              & (c.df.bytes_io > 0)].copy()
    ok = _conv(ok[ok.flops_direct > 0])
    pool = c.df[(c.df.status == "passed") & (c.df.kind == "pool") & c.df.gbs_effective.notna()] \
        if {"kind", "gbs_effective"} <= set(c.df.columns) else c.df.iloc[0:0]
    if ok.empty and pool.empty:
        return None
    panels = (not ok.empty) + (not pool.empty)
    fig, axes = plt.subplots(1, panels, figsize=(8.5 + 5.5 * (panels - 1), 5.2), squeeze=False)
    axes = list(axes[0])
    peaks = c.meta.get("peaks") or {}
    if not ok.empty:
        ax = axes.pop(0)
        ok["ai"] = ok.flops_direct / ok.bytes_io
        for b, g in ok.groupby("backend", sort=False):
            s = c.style[b]
            ax.scatter(g.ai, g.gflops_effective, label=b, color=s["color"], marker=s["marker"],
                       facecolors=s["mfc"], s=28, linewidths=1)
        bw = peaks.get("bandwidth_gbs")
        xs = np.logspace(math.log10(max(ok.ai.min() / 2, 1e-2)), math.log10(ok.ai.max() * 2), 200)
        for key, label, ls in (("fma_gflops", "FMA peak (measured)", "-"), ("sgemm_gflops", "sgemm (measured)", "--")):
            peak = peaks.get(key)
            if peak:
                roof = np.minimum(peak, bw * xs) if bw else np.full_like(xs, peak)
                ax.plot(xs, roof, color="black", ls=ls, lw=1, label=f"{label}: {peak:.0f} GFLOP/s"
                        + (f", {bw:.0f} GB/s" if bw and key == "fma_gflops" else ""))
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("arithmetic intensity (direct flops / bytes of input, weights and output)")
        ax.set_ylabel("effective GFLOP/s (direct flops / median time)")
        ax.set_title(f"Convolution, {c.meta.get('config', {}).get('threads', 1)} thread(s): one point per cell",
                     fontsize=10)
        ax.grid(True, which="both", alpha=0.25)
        _legend(ax)
    if not pool.empty:
        ax = axes.pop(0)
        for b, g in pool.groupby("backend", sort=False):
            s = c.style[b]
            ax.scatter(g.bytes_io, g.gbs_effective, label=b, color=s["color"], marker=s["marker"],
                       facecolors=s["mfc"], s=28, linewidths=1)
        st = peaks.get("stream") or {}
        l2 = st.get("l2_array_bytes")
        for key, label, ls in (("copy_l2_gbs", "STREAM copy, L2-sized", "--"), ("copy_dram_gbs", "STREAM copy, DRAM", "-"),
                               ("triad_dram_gbs", "STREAM triad, DRAM", ":")):
            if st.get(key):
                ax.axhline(st[key], color="black", ls=ls, lw=1, label=f"{label}: {st[key]:.1f} GB/s")
        if l2:
            ax.axvline(3 * l2, color="grey", ls=":", lw=0.8)
        ax.set_xscale("log")
        ax.set_yscale("log")
        from matplotlib.ticker import NullFormatter
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_xlabel("bytes moved per call (input + output, + argmax for max's backward)")
        ax.set_ylabel("GB/s (bytes moved / median time)")
        ax.set_title("Pooling against the bandwidth roof: one point per cell", fontsize=10)
        ax.grid(True, which="both", alpha=0.25)
        _legend(ax)
    fig.suptitle("Roofline: what the measured peaks allow, and where each cell lands")
    fig.tight_layout()
    return fig


@figure("reduction_vs_speedup", "Arithmetic saved vs time saved",
        "operations an algorithm avoids against the speed-up it achieves")
def _reduction(c: FigureContext):
    import matplotlib.pyplot as plt
    if not c.baseline:
        return None
    ok = c.df[(c.df.status == "passed") & c.df.time_median_s.notna() & c.df.flops_executed.notna()
              & (c.df.flops_executed > 0)]
    base = ok[ok.backend == c.baseline].set_index("problem").time_median_s
    rows = ok[ok.problem.isin(base.index) & (ok.backend != c.baseline)].copy()
    if rows.empty:
        return None
    rows["reduction"] = rows.flops_dense / rows.flops_executed
    rows["speedup"] = base.loc[rows.problem].values / rows.time_median_s
    rows = rows[np.isfinite(rows.reduction) & (rows.reduction > 0)]
    if rows.empty:
        return None
    fig, ax = plt.subplots(figsize=(8.5, 5.2))
    for b, g in rows.groupby("backend", sort=False):
        s = c.style[b]
        ax.scatter(g.reduction, g.speedup, label=b, color=s["color"], marker=s["marker"], facecolors=s["mfc"], s=30)
    for r, size in ((3, 130), (1, 70)):  # rings mark volumes and lines among the 2-D cells
        g = rows[rows["rank"] == r]
        if not g.empty and rows["rank"].nunique() > 1:
            ax.scatter(g.reduction, g.speedup, s=size, facecolors="none", edgecolors="black", linewidths=0.8,
                       label=f"{r}-D cell (ring)")
    lo = min(rows.reduction.min(), rows.speedup.min(), 0.1)
    hi = max(rows.reduction.max(), rows.speedup.max(), 10)
    ax.plot([lo, hi], [lo, hi], color="grey", ls=":", lw=1, label="speed-up = arithmetic saved")
    ax.axhline(1, color="black", lw=0.6)
    ax.axvline(1, color="black", lw=0.6)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("arithmetic reduction (dense-loop flops / flops executed, > 1: less work)")
    ax.set_ylabel(f"measured speed-up over {c.baseline} (> 1: faster)")
    ax.set_title("Does doing less arithmetic make it faster? One point per cell")
    ax.grid(True, which="both", alpha=0.25)
    _legend(ax)
    return fig


@figure("error", "Numerical error", "relative error against the float64 reference, by algorithm and tile size")
def _error(c: FigureContext):
    import matplotlib.pyplot as plt
    ok = c.df[c.df.rel_err.notna() & c.df.status.isin(["passed", "mistrusted"])]
    ok = ok[np.isfinite(ok.rel_err.astype(float))]
    if ok.empty:
        return None
    ranks = sorted(int(r) for r in ok["rank"].dropna().unique()) or [2]
    # a backend measured at several ranks gets a column per rank: F(4x4x4,3x3x3) is not F(4x4,3x3)
    cols = [(b, r) for b in c.style for r in ranks if ((ok.backend == b) & (ok["rank"] == r)).any()]
    floor = 1e-17
    fig, ax = plt.subplots(figsize=(max(7.0, 0.75 * len(cols) + 3), 4.8))
    rng = np.random.default_rng(0)
    for i, (b, r) in enumerate(cols):
        e = ok[(ok.backend == b) & (ok["rank"] == r)].rel_err.to_numpy(dtype=float)
        s = c.style[b]
        ax.scatter(i + rng.uniform(-0.18, 0.18, e.size), np.maximum(e, floor), color=s["color"],
                   marker=s["marker"], facecolors=s["mfc"], s=22)
        if e.size:
            ax.hlines(np.median(np.maximum(e, floor)), i - 0.3, i + 0.3, color="black", lw=1.2)
    order = [b if len(ranks) == 1 else f"{b} ({r}-D)" for b, r in cols]
    ax.axhline(floor, color="grey", ls=":", lw=0.8)
    top = float(np.nanmax(ok.rel_err.to_numpy(dtype=float)))
    ax.set_ylim(floor / 10, max(top * 10, floor * 1e3))
    ax.text(len(order) - 0.5, floor * 2, "exact (error 0)", ha="right", va="bottom", fontsize=8, color="grey")
    ax.set_yscale("log")
    ax.set_xticks(range(len(order)), order, rotation=40, ha="right")
    ax.set_ylabel("relative L2 error vs float64 reference")
    ax.set_title("Numerical error by algorithm" + (" and rank" if len(ranks) > 1 else "")
                 + " (bar: median over problems; integer test data)")
    ax.grid(True, axis="y", which="both", alpha=0.25)
    fig.tight_layout()
    return fig


@figure("rollup", "Network roll-up",
        "time of a whole network per pass (layers weighted by multiplicity) per backend; the hatched "
        "part is its pooling layers")
def _rollup(c: FigureContext):
    import matplotlib.pyplot as plt
    usable = [r for r in c.rollups if r["totals"] and r["oracle"] > 0]
    if not usable:
        return None
    fig, axes = plt.subplots(1, len(usable), figsize=(max(6.5, 0.55 * max(len(r["totals"]) for r in usable) + 3)
                                                      * len(usable), 4.8), squeeze=False)
    for ax, r in zip(axes[0], usable):
        names = sorted(r["totals"], key=r["totals"].get)
        vals = [r["totals"][b] * 1e3 for b in names]
        pools = [v * (r["pool_share"].get(b) or 0.0) for v, b in zip(vals, names)]
        colors = [c.style[b]["color"] for b in names]
        ax.bar(range(len(names)), vals, color=colors)
        if any(pools):
            ax.bar(range(len(names)), pools, color="none", edgecolor="black", hatch="//", lw=0.5,
                   label="pooling layers")
        ax.bar([len(names)], [r["oracle"] * 1e3], color="black")
        ax.set_xticks(range(len(names) + 1), names + ["best per layer"], rotation=40, ha="right")
        ax.set_ylabel("network time (ms, layers x multiplicity)")
        allv = vals + [r["oracle"] * 1e3]
        ax.set_ylim(0, max(allv) * 1.15)
        ax.set_title(f"{r['suite']}, {r['pass_name']}: {r['layers']} layers, batch {r['batch']}", fontsize=10)
        for i, v in enumerate(vals):
            ax.text(i, v, f"{r['totals'][names[i]] / r['oracle']:.2f}x", ha="center", va="bottom", fontsize=7)
        ax.grid(True, axis="y", alpha=0.25)
        if any(pools):
            ax.legend(fontsize=8, frameon=False)
    fig.suptitle("Network roll-up (label: time relative to the best-backend-per-layer oracle; backends "
                 "that cannot run every layer are left out)")
    fig.tight_layout()
    return fig


@figure("activations", "Activation size through the network",
        "each layer's output activation per image in network order (bars; pools hatched) and its "
        "direct op count (line): stride and pooling shrink both")
def _activations(c: FigureContext):
    import matplotlib.pyplot as plt
    from .data import activations
    nets = [n for n in activations(c.df) if len(n["layers"]) >= 2][:4]
    if not nets:
        return None
    width = max(len(n["layers"]) for n in nets)
    fig, axes = plt.subplots(len(nets), 1, figsize=(max(8.0, 0.28 * width + 4), 3.6 * len(nets)), squeeze=False)
    for ax, n in zip(axes[:, 0], nets):
        its = n["layers"]
        x = np.arange(len(its))
        ax.bar(x, [it["out_elems"] for it in its], color=["#ff7f0e" if it["kind"] == "pool" else "#1f77b4"
                                                            for it in its],
               hatch=None, label="output activation (elements per image)")
        for i, it in enumerate(its):
            if it["kind"] == "pool":
                ax.bar([i], [it["out_elems"]], color="none", edgecolor="black", hatch="//", lw=0.4)
        ax.set_yscale("log")
        ax.set_ylabel("activation elements")
        ax.set_xticks(x, [short_label(it["layer"], it["name"], 22) for it in its], rotation=60, ha="right",
                      fontsize=6 if len(its) > 30 else 8)
        ax2 = ax.twinx()
        fl = np.array([it["flops"] for it in its], dtype=float)
        ax2.plot(x[np.isfinite(fl)], fl[np.isfinite(fl)], color="black", marker=".", lw=1,
                 label="direct ops of the layer (per image)")
        ax2.set_yscale("log")
        ax2.set_ylabel("direct ops per image")
        ax.set_title(f"{n['suite']}: orange hatched bars are pooling layers", fontsize=10)
        h1, l1 = ax.get_legend_handles_labels()
        h2, l2 = ax2.get_legend_handles_labels()
        ax.legend(h1 + h2, l1 + l2, loc="upper right", fontsize=7, frameon=False)
        ax.grid(True, axis="y", which="both", alpha=0.2)
    fig.suptitle("Stride and pooling shrink the activations, and the work of every later layer")
    fig.tight_layout()
    return fig


@figure("parameters", "Parameters: convolution vs dense",
        "weights of a dense, a locally-connected and a convolutional layer doing the same mapping")
def _parameters(c: FigureContext):
    import matplotlib.pyplot as plt
    if not set(c.df.algorithm) & {"dense matrix", "sparse matrix"}:  # the run includes the operator itself
        return None
    rows = _conv(c.df).drop_duplicates("problem")
    rows = rows[rows.params_fully_connected.notna() & rows.params_locally_connected.notna()].head(16)
    if rows.empty:
        return None
    fig, ax = plt.subplots(figsize=(max(7.0, 0.6 * len(rows) + 3), 5.2))
    x = np.arange(len(rows))
    wdt = 0.27
    for k, (col, label, color) in enumerate((("params_fully_connected", "fully connected (dense operator)", "#d62728"),
                                            ("params_locally_connected", "locally connected (no sharing)", "#ff7f0e"),
                                            ("params", "convolution (shared kernels)", "#1f77b4"))):
        ax.bar(x + (k - 1) * wdt, rows[col].astype(float), wdt, label=label, color=color)
    ax.set_yscale("log")
    ax.set_xticks(x, [short_label(p, n, 34) for p, n in zip(rows.problem, rows.name)], rotation=40, ha="right",
                  fontsize=7)
    ax.set_ylabel("number of weights (log)")
    ax.set_title("Why convolution beats a dense layer: weights for the same input -> output mapping")
    ax.grid(True, axis="y", which="both", alpha=0.25)
    _legend(ax)
    fig.tight_layout()
    return fig


# ---------------------------------------------------------------------------- driver
@figure("thread_scaling", "Thread scaling",
        "each backend's speed-up from the run's first thread count to the others (geomean over the problems it "
        "passed at both; whiskers: fastest and slowest problem)")
def _thread_scaling(c: FigureContext):
    import matplotlib.pyplot as plt
    from .variants import scaling
    if c.variants is None:
        return None
    sc = scaling(c.variants)
    if not sc:
        return None
    sc = sorted(sc, key=lambda r: (r["t"], -r["geomean"]))
    fig, ax = plt.subplots(figsize=(max(6.0, 0.55 * len(sc) + 2.5), 4.2))
    xs = range(len(sc))
    vals = [r["geomean"] for r in sc]
    lo = [r["geomean"] - r["min"] for r in sc]
    hi = [r["max"] - r["geomean"] for r in sc]
    ax.bar(xs, vals, color=[c.style.get(r["backend"], {}).get("color", "grey") for r in sc])
    ax.errorbar(xs, vals, yerr=[lo, hi], fmt="none", ecolor="black", lw=0.8, capsize=3)
    for t in sorted({r["t"] / r["t0"] for r in sc}):
        ax.axhline(t, color="grey", ls=":", lw=0.8)
    ax.axhline(1.0, color="black", lw=0.8)
    ax.set_xticks(list(xs), [f"{r['backend']}{'' if r['own'] else ' (peer)'}\n{r['t0']}->{r['t']}" for r in sc],
                  rotation=40, ha="right", fontsize=8)
    ax.set_ylabel("speed-up (own time at fewer threads / at more)")
    ax.set_title("Thread scaling (dotted: ideal; below 1: slower with more threads)", fontsize=10)
    ax.grid(True, axis="y", alpha=0.25)
    fig.tight_layout()
    return fig


def write_plots(df, meta: dict, out_dir: Path, rollups: list, baseline: str | None,
                warn: Callable[[str], None] | None = None, variants=None) -> dict[str, list[Path]]:
    """All applicable figures into ``out_dir/plots``; returns stem -> written paths. A figure
    that fails to draw is left out with a one-line warning."""
    import matplotlib
    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt
    plots_dir = Path(out_dir) / "plots"
    try:
        plots_dir.mkdir(exist_ok=True)
    except OSError as e:
        raise ResultsWriteError(plots_dir, e) from None
    real = df[df.backend != "*"]
    names = list(dict.fromkeys(real.backend)) + ([] if variants is None else list(dict.fromkeys(variants.backend)))
    ctx = FigureContext(real, _style([b for b in dict.fromkeys(names) if b != "*"]), meta, rollups, baseline,
                        variants)
    written = {}
    for stem, (_, _, draw) in PLOTS.items():
        try:
            fig = draw(ctx)
            if fig is None:
                continue
            paths = []
            # the tight box (legends sit outside the axes) measured once, not once per file:
            # bbox_inches="tight" draws every figure twice per file
            box = fig.get_tightbbox(fig.canvas.get_renderer()).padded(0.1)
            for ext in ("png", "svg"):
                path = plots_dir / f"{stem}.{ext}"
                with atomic_path(path) as tmp:
                    fig.savefig(tmp, format=ext, dpi=110 if ext == "png" else None, bbox_inches=box)
                paths.append(path)
            written[stem] = paths
        except ResultsWriteError:
            raise  # a full disk fails every later figure too: the caller says so once
        except Exception as e:  # noqa: BLE001 - one figure's failure must not lose the report
            if warn is not None:
                warn(f"warning: figure {stem!r} skipped ({e.__class__.__name__}: {e})")
        finally:
            plt.close("all")
    return written
