"""Figures of a result directory (matplotlib, PNG and SVG). Draws only: never measures.

Every plot has a title, labelled axes with units and a legend placed outside the
axes, and uses one colour and marker per backend throughout (peers hollow), so that
ten or more backends stay readable. A plot whose data is absent (no roll-up without a
suite, no parameter plot without matrix backends, ...) is skipped, not drawn empty.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from .backends import REGISTRY

__all__ = ["write_plots", "PLOTS"]

#: file stem -> (title used in the report, short explanation)
PLOTS = {
    "time_vs_size": ("Time vs input size", "median time per call against input pixels, one panel per kernel size"),
    "winner_map": ("Fastest backend", "which backend is fastest for each input size and kernel size, per stride"),
    "roofline": ("Roofline", "effective GFLOP/s against arithmetic intensity, under this machine's measured peaks"),
    "reduction_vs_speedup": ("Arithmetic saved vs time saved",
                             "operations an algorithm avoids against the speed-up it achieves"),
    "error": ("Numerical error", "relative error against the float64 reference, by algorithm and tile size"),
    "rollup": ("Network roll-up", "time of a whole network (layers weighted by multiplicity) per backend"),
    "parameters": ("Parameters: convolution vs dense", "weights of a dense, a locally-connected and a "
                                                        "convolutional layer doing the same mapping"),
}

_MARKERS = "o s ^ D v P X * < > h p d 8 H".split()


def _style(backends: list[str]) -> dict:
    """Colour, marker and fill per backend, stable across plots (registry order first)."""
    import matplotlib
    cmap = matplotlib.colormaps["tab20"]
    order = [b for b in REGISTRY if b in backends] + sorted(b for b in backends if b not in REGISTRY)
    out = {}
    for i, b in enumerate(order):
        peer = b.startswith(("torch", "scipy"))
        out[b] = dict(color=cmap(i % 20), marker=_MARKERS[i % len(_MARKERS)],
                      mfc="none" if peer else cmap(i % 20), ls="--" if peer else "-")
    return out


def _save(fig, plots_dir: Path, stem: str) -> list[Path]:
    paths = []
    for ext in ("png", "svg"):
        path = plots_dir / f"{stem}.{ext}"
        fig.savefig(path, dpi=110 if ext == "png" else None, bbox_inches="tight")
        paths.append(path)
    import matplotlib.pyplot as plt
    plt.close(fig)
    return paths


def _legend(ax, **kw):
    handles, labels = ax.get_legend_handles_labels()
    if handles:
        ax.legend(handles, labels, loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False, **kw)


def _plot_time_vs_size(df, st, plots_dir):
    import matplotlib.pyplot as plt
    ok = df[(df.status == "passed") & df.time_median_s.notna()]
    if ok.empty:
        return None
    groups = sorted(ok.groupby(["kh", "kw"]), key=lambda kv: -len(kv[1]))[:6]
    n = len(groups)
    cols = min(3, n)
    rows = -(-n // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(5.2 * cols + 2.2, 3.8 * rows), squeeze=False)
    for ax, ((kh, kw), g) in zip(axes.ravel(), groups):
        # join points only within a family of problems that differ in input size alone
        family = ["backend", "mb", "ic", "oc", "g", "sh", "sw", "dh", "dw", "dtype"]
        for key, gb in g.groupby(family, sort=False):
            b = key[0]
            gb = gb.assign(px=gb.ih * gb.iw).sort_values("px")
            s = st[b]
            ax.plot(gb.px, gb.time_median_s * 1e3, label=b, color=s["color"], marker=s["marker"],
                    mfc=s["mfc"], ls=s["ls"] if len(gb) > 1 else "none", lw=1.2, ms=5)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_title(f"kernel {int(kh)}x{int(kw)}", fontsize=10)
        ax.set_xlabel("input size (pixels, ih x iw)")
        ax.set_ylabel("median time per call (ms)")
        ax.grid(True, which="both", alpha=0.25)
    for ax in axes.ravel()[n:]:
        ax.axis("off")
    seen = {}
    for ax in axes.ravel():
        for h, lab in zip(*ax.get_legend_handles_labels()):
            seen.setdefault(lab, h)
    order = [b for b in st if b in seen]
    fig.legend([seen[b] for b in order], order, loc="upper left", bbox_to_anchor=(1.0, 0.95), fontsize=8,
               frameon=False)
    fig.suptitle("Median time per call vs input size (log-log; lines join problems that differ only in size)")
    fig.tight_layout()
    return _save(fig, plots_dir, "time_vs_size")


def _plot_winner_map(df, st, plots_dir):
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch
    ok = df[(df.status == "passed") & df.time_median_s.notna()]
    if ok.empty:
        return None
    win = ok.loc[ok.groupby("cell").time_median_s.idxmin()]
    strides = sorted(win.sh.unique())
    fig, axes = plt.subplots(1, len(strides), figsize=(6.2 * len(strides) + 2.5, 4.6), squeeze=False)
    used = set()
    for ax, s_ in zip(axes[0], strides):
        w = win[win.sh == s_]
        sizes = sorted(w.ih.unique())
        kernels = sorted(w.kh.unique())
        for i, k in enumerate(kernels):
            for j, sz in enumerate(sizes):
                cell = w[(w.kh == k) & (w.ih == sz)]
                if cell.empty:
                    continue
                counts = cell.backend.value_counts()
                b = counts.index[0]
                used.add(b)
                ax.add_patch(plt.Rectangle((j - 0.5, i - 0.5), 1, 1, color=st[b]["color"], alpha=0.85))
                label = b.replace("winograd_", "wino ").replace("_blas", "").replace("_numba", "")
                if len(counts) > 1:
                    label += f"\n({counts.iloc[0]}/{len(cell)})"
                ax.text(j, i, label, ha="center", va="center", fontsize=7)
        ax.set_xlim(-0.5, len(sizes) - 0.5)
        ax.set_ylim(-0.5, len(kernels) - 0.5)
        ax.set_xticks(range(len(sizes)), [str(int(v)) for v in sizes])
        ax.set_yticks(range(len(kernels)), [f"{int(v)}x{int(v)}" for v in kernels])
        ax.set_xlabel("input height ih (pixels)")
        ax.set_ylabel("kernel size")
        ax.set_title(f"stride {int(s_)}", fontsize=10)
    handles = [Patch(color=st[b]["color"], label=b) for b in st if b in used]
    axes[0, -1].legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)
    fig.suptitle("Fastest backend by input size and kernel size (several problems in a cell: the most "
                 "frequent winner, with its count)")
    fig.tight_layout()
    return _save(fig, plots_dir, "winner_map")


def _plot_roofline(df, st, plots_dir, meta):
    import matplotlib.pyplot as plt
    ok = df[(df.status == "passed") & df.gflops_effective.notna()].copy()
    if ok.empty:
        return None
    item = np.where(ok.dtype == "float64", 8, 4)
    by = item * (ok.mb * ok.ic * ok.ih * ok.iw + ok.oc * (ok.ic / ok.g) * ok.kh * ok.kw + ok.mb * ok.oc * ok.oh * ok.ow)
    ok["ai"] = ok.flops_direct / by
    fig, ax = plt.subplots(figsize=(8.5, 5.2))
    for b, g in ok.groupby("backend", sort=False):
        s = st[b]
        ax.scatter(g.ai, g.gflops_effective, label=b, color=s["color"], marker=s["marker"],
                   facecolors=s["mfc"], s=28, linewidths=1)
    peaks = meta.get("peaks") or {}
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
    ax.set_title(f"Roofline, {meta.get('config', {}).get('threads', 1)} thread(s): each point is one cell")
    ax.grid(True, which="both", alpha=0.25)
    _legend(ax)
    return _save(fig, plots_dir, "roofline")


def _plot_reduction(df, st, plots_dir, baseline):
    import matplotlib.pyplot as plt
    ok = df[(df.status == "passed") & df.time_median_s.notna() & df.flops_executed.notna()]
    base = ok[ok.backend == baseline].set_index("cell").time_median_s
    rows = ok[ok.cell.isin(base.index) & (ok.backend != baseline)].copy()
    if rows.empty:
        return None
    dense = 2.0 * rows.mb * rows.oc * (rows.ic / rows.g) * rows.oh * rows.ow * rows.kh * rows.kw
    rows["reduction"] = dense / rows.flops_executed
    rows["speedup"] = base.loc[rows.cell].values / rows.time_median_s
    fig, ax = plt.subplots(figsize=(8.5, 5.2))
    for b, g in rows.groupby("backend", sort=False):
        s = st[b]
        ax.scatter(g.reduction, g.speedup, label=b, color=s["color"], marker=s["marker"], facecolors=s["mfc"], s=30)
    lo = min(rows.reduction.min(), rows.speedup.min(), 0.1)
    hi = max(rows.reduction.max(), rows.speedup.max(), 10)
    ax.plot([lo, hi], [lo, hi], color="grey", ls=":", lw=1, label="speed-up = arithmetic saved")
    ax.axhline(1, color="black", lw=0.6)
    ax.axvline(1, color="black", lw=0.6)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("arithmetic reduction (dense-loop flops / flops executed, > 1: less work)")
    ax.set_ylabel(f"measured speed-up over {baseline} (> 1: faster)")
    ax.set_title("Does doing less arithmetic make it faster? One point per cell")
    ax.grid(True, which="both", alpha=0.25)
    _legend(ax)
    return _save(fig, plots_dir, "reduction_vs_speedup")


def _plot_error(df, st, plots_dir):
    import matplotlib.pyplot as plt
    ok = df[df.rel_err.notna() & df.status.isin(["passed", "mistrusted"])]
    if ok.empty:
        return None
    order = [b for b in st if b in set(ok.backend)]
    floor = 1e-17
    fig, ax = plt.subplots(figsize=(max(7.0, 0.75 * len(order) + 3), 4.8))
    rng = np.random.default_rng(0)
    for i, b in enumerate(order):
        e = ok[ok.backend == b].rel_err.to_numpy(dtype=float)
        s = st[b]
        ax.scatter(i + rng.uniform(-0.18, 0.18, e.size), np.maximum(e, floor), color=s["color"],
                   marker=s["marker"], facecolors=s["mfc"], s=22)
        if e.size:
            ax.hlines(np.median(np.maximum(e, floor)), i - 0.3, i + 0.3, color="black", lw=1.2)
    ax.axhline(floor, color="grey", ls=":", lw=0.8)
    top = float(np.nanmax(ok.rel_err.to_numpy(dtype=float))) if len(ok) else floor
    ax.set_ylim(floor / 10, max(top * 10, floor * 1e3))
    ax.text(len(order) - 0.5, floor * 2, "exact (error 0)", ha="right", va="bottom", fontsize=8, color="grey")
    ax.set_yscale("log")
    ax.set_xticks(range(len(order)), order, rotation=40, ha="right")
    ax.set_ylabel("relative L2 error vs float64 reference")
    ax.set_title("Numerical error by algorithm (bar: median over problems; integer test data)")
    ax.grid(True, axis="y", which="both", alpha=0.25)
    fig.tight_layout()
    return _save(fig, plots_dir, "error")


def _plot_rollup(rollups, st, plots_dir):
    import matplotlib.pyplot as plt
    usable = [r for r in rollups if r["totals"]]
    if not usable:
        return None
    fig, axes = plt.subplots(1, len(usable), figsize=(max(6.5, 0.55 * max(len(r["totals"]) for r in usable) + 3)
                                                      * len(usable), 4.8), squeeze=False)
    for ax, r in zip(axes[0], usable):
        names = sorted(r["totals"], key=r["totals"].get)
        vals = [r["totals"][b] * 1e3 for b in names]
        colors = [st[b]["color"] for b in names]
        ax.bar(range(len(names)), vals, color=colors)
        ax.bar([len(names)], [r["oracle"] * 1e3], color="black")
        ax.set_xticks(range(len(names) + 1), names + ["best per layer"], rotation=40, ha="right")
        ax.set_ylabel("network time (ms, layers x multiplicity)")
        ax.set_yscale("log")
        allv = vals + [r["oracle"] * 1e3]
        ax.set_ylim(min(allv) / 1.5, max(allv) * 1.5)
        ax.set_title(f"{r['suite']}: {r['layers']} layers, batch {r['batch']}", fontsize=10)
        for i, v in enumerate(vals):
            ax.text(i, v, f"{r['totals'][names[i]] / r['oracle']:.2f}x", ha="center", va="bottom", fontsize=7)
        ax.grid(True, axis="y", which="both", alpha=0.25)
    fig.suptitle("Network roll-up (label: time relative to the best-backend-per-layer oracle; backends "
                 "that cannot run every layer are left out)")
    fig.tight_layout()
    return _save(fig, plots_dir, "rollup")


def _plot_parameters(df, plots_dir):
    import matplotlib.pyplot as plt

    from .params import parameter_table_row
    from .problem import ConvProblem
    rows = []
    for cell, desc in dict.fromkeys(zip(df.cell, df.descriptor)):
        try:
            rows.append((cell, parameter_table_row(ConvProblem.parse(desc))))
        except ValueError:
            continue
    rows = rows[:16]
    if not rows:
        return None
    fig, ax = plt.subplots(figsize=(max(7.0, 0.6 * len(rows) + 3), 5.2))
    x = np.arange(len(rows))
    wdt = 0.27
    for k, (key, label, color) in enumerate((("dense_entries", "fully connected (dense operator)", "#d62728"),
                                            ("locally_connected_weights", "locally connected (no sharing)", "#ff7f0e"),
                                            ("conv_weights", "convolution (shared kernels)", "#1f77b4"))):
        ax.bar(x + (k - 1) * wdt, [r[key] for _, r in rows], wdt, label=label, color=color)
    ax.set_yscale("log")
    ax.set_xticks(x, [c if len(c) < 34 else c[:31] + "..." for c, _ in rows], rotation=40, ha="right", fontsize=7)
    ax.set_ylabel("number of weights (log)")
    ax.set_title("Why convolution beats a dense layer: weights for the same input -> output mapping")
    ax.grid(True, axis="y", which="both", alpha=0.25)
    _legend(ax)
    fig.tight_layout()
    return _save(fig, plots_dir, "parameters")


def write_plots(df, meta: dict, out_dir: Path, rollups: list, baseline: str | None) -> dict[str, list[Path]]:
    """All applicable plots into ``out_dir/plots``; returns stem -> written paths."""
    import matplotlib
    matplotlib.use("Agg", force=True)
    plots_dir = Path(out_dir) / "plots"
    plots_dir.mkdir(exist_ok=True)
    real = df[df.backend != "*"]
    st = _style(list(dict.fromkeys(real.backend)))
    written = {}
    jobs = {
        "time_vs_size": lambda: _plot_time_vs_size(real, st, plots_dir),
        "winner_map": lambda: _plot_winner_map(real, st, plots_dir),
        "roofline": lambda: _plot_roofline(real, st, plots_dir, meta),
        "reduction_vs_speedup": lambda: _plot_reduction(real, st, plots_dir, baseline) if baseline else None,
        "error": lambda: _plot_error(real, st, plots_dir),
        "rollup": lambda: _plot_rollup(rollups, st, plots_dir),
        "parameters": lambda: _plot_parameters(real, plots_dir)
        if set(real.backend) & {"dense_matrix", "sparse_csr"} else None,
    }
    for stem, job in jobs.items():
        paths = job()
        if paths:
            written[stem] = paths
    return written
