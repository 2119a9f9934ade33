"""Figures drawn from literal result rows: families, skips, a broken figure."""

from __future__ import annotations

import pandas as pd
import pytest

from convbench.reporting import plots
from convbench.flops import problem_counts
from convbench.problem import ConvProblem


def _rows(sizes=(16, 32, 64, 128), kernels=(3, 7), backends=("direct_numba", "fft_pyfftw")):
    out = []
    for k in kernels:
        for n in sizes:
            p = ConvProblem.parse(f"mb1ic1ih{n}oc1kh{k}ph{k // 2}")
            for i, b in enumerate(backends):
                t = n * n * k * k * 1e-9 if b == "direct_numba" else n * n * 2e-8 + 1e-5
                out.append(dict(problem=p.label, cell=p.label, name="", descriptor=p.descriptor, backend=b,
                                status="passed", time_median_s=t, mb=1, ic=1, oc=1, g=1, ih=n, iw=n, kh=k, kw=k,
                                sh=1, sw=1, dh=0, dw=0, dtype="float32", direction="fwd", weight_density=1.0,
                                gflops_effective=problem_counts(p)["flops_direct"] / t / 1e9, rel_err=1e-7 * i,
                                flops_executed=problem_counts(p)["flops_dense"] / (1 + 3 * i),
                                **problem_counts(p)))
    return pd.DataFrame(out)


def test_family_key_reads_as_a_description():
    r = _rows().iloc[0]
    assert plots.family_key(r) == "1 channel"
    r2 = r.copy()
    r2["ic"], r2["oc"], r2["g"], r2["sh"], r2["mb"] = 32, 32, 32, 2, 4
    assert plots.family_key(r2) == "depthwise 32 ch, stride 2, mb4"


def test_ladders_are_drawn_and_written(tmp_path):
    meta = {"peaks": {"sgemm_gflops": 100, "fma_gflops": 150, "bandwidth_gbs": 30}, "config": {"threads": 1}}
    written = plots.write_plots(_rows(), meta, tmp_path, [], "direct_numba")
    assert {"time_vs_size", "winner_map", "roofline", "reduction_vs_speedup", "error"} <= set(written)
    assert "rollup" not in written and "parameters" not in written  # no suite, no matrix backend
    for paths in written.values():
        assert [p.suffix for p in paths] == [".png", ".svg"]
        assert paths[0].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and b"<svg" in paths[1].read_bytes()[:400]


def test_time_vs_size_has_one_panel_per_family():
    import matplotlib
    matplotlib.use("Agg", force=True)
    df = _rows()
    ctx = plots.FigureContext(df, plots._style(list(df.backend.unique())), {}, [], None)
    fig = plots.PLOTS["time_vs_size"][2](ctx)
    titles = sorted(ax.get_title() for ax in fig.axes if ax.get_title())
    assert titles == ["kernel 3x3, 1 channel", "kernel 7x7, 1 channel"]
    lines = [ln for ax in fig.axes for ln in ax.get_lines()]
    assert len(lines) == 4 and all(len(ln.get_xdata()) == 4 for ln in lines)  # 4 sizes per line


def test_a_failing_figure_is_left_out_with_a_warning(tmp_path, monkeypatch):
    def boom(ctx):
        raise RuntimeError("no ink")
    monkeypatch.setitem(plots.PLOTS, "error", ("Numerical error", "x", boom))
    warnings = []
    written = plots.write_plots(_rows(), {}, tmp_path, [], None, warn=warnings.append)
    assert "error" not in written and "time_vs_size" in written
    assert warnings == ["warning: figure 'error' skipped (RuntimeError: no ink)"]


def test_no_passed_cells_no_figures(tmp_path):
    df = _rows().assign(status="failed")
    assert plots.write_plots(df, {}, tmp_path, [], None) == {}


@pytest.mark.parametrize("stem", list(plots.PLOTS))
def test_every_figure_is_registered_with_title_and_explanation(stem):
    title, what, fn = plots.PLOTS[stem]
    assert title and what and callable(fn)


def _ranked_rows():
    """2-D ladders at two kernels plus one 3-D and one 1-D ladder (as the default sweep has)."""
    out = []
    for desc, sizes in (("mb1ic1ih{n}oc1kh{k}ph{h}", (16, 32, 64, 128)), ("mb1ic4id{n}oc4kd{k}pd{h}", (4, 8, 12)),
                        ("mb1ic8iw{n}oc8kw{k}pw{h}", (64, 256, 1024))):
        for k in ((3, 7) if "ih" in desc else (3,)):
            for n in sizes:
                p = ConvProblem.parse(desc.format(n=n, k=k, h=k // 2))
                for i, b in enumerate(("direct_numba", "winograd_f4x3" if k == 3 else "fft_pyfftw")):
                    t = (1 + i) * 1e-9 * n ** p.rank * k ** p.rank
                    row = dict(problem=p.label, cell=p.label, name="", descriptor=p.descriptor, backend=b,
                               status="passed", time_median_s=t, mb=1, ic=p.ic, oc=p.oc, g=1, rank=p.rank,
                               dtype="float32", direction="fwd", weight_density=1.0, rel_err=1e-7 * (1 + i * p.rank),
                               gflops_effective=1.0, flops_executed=problem_counts(p)["flops_dense"] / (1 + 3 * i),
                               **problem_counts(p))
                    row.update({f + a: getattr(p, f + a) for f in "ioksd" for a in "dhw"})
                    out.append(row)
    return pd.DataFrame(out)


def test_every_rank_gets_its_panels_and_its_own_columns():
    import matplotlib
    matplotlib.use("Agg", force=True)
    df = _ranked_rows()
    ctx = plots.FigureContext(df, plots._style(list(df.backend.unique())), {}, [], "direct_numba")
    fig = plots.PLOTS["time_vs_size"][2](ctx)
    titles = sorted(ax.get_title() for ax in fig.axes if ax.get_title())
    assert titles == ["kernel 3, 1-D 8->8 ch", "kernel 3x3, 1 channel", "kernel 3x3x3, 3-D 4->4 ch",
                      "kernel 7x7, 1 channel"]
    assert {ax.get_xlabel() for ax in fig.axes if ax.get_title()} == {
        "input length (samples, iw)", "input size (pixels, ih x iw)", "input size (voxels, id x ih x iw)"}
    fig = plots.PLOTS["winner_map"][2](ctx)
    assert {ax.get_xlabel() for ax in fig.axes if ax.get_title()} == {
        "input length iw (samples)", "input height ih (pixels)", "input depth id (voxels)"}
    fig = plots.PLOTS["error"][2](ctx)
    ticks = [t.get_text() for t in fig.axes[0].get_xticklabels()]
    assert "winograd_f4x3 (3-D)" in ticks and "winograd_f4x3 (2-D)" in ticks and "direct_numba (1-D)" in ticks
    ranked = plots._per_rank([(9, df[df["rank"] == 2])] * 5 + [(3, df[df["rank"] == 3]), (2, df[df["rank"] == 1])], 4)
    assert sorted(int(g["rank"].iloc[0]) for g in ranked) == [1, 2, 2, 3]  # each rank before a second 2-D
