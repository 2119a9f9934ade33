"""FFT backends: lengths, tiling, cost model, memory guard, plan cache, wisdom, engines."""

from __future__ import annotations

import math

import numpy as np
import pytest

from convbench.backends import get_backend
from convbench.backends import fft as F
from convbench.backends.fft import geometry as G
from convbench.backends.fft import plans as FP
from convbench.backends.base import Plan
from convbench.problem import ConvProblem
from convbench.reference import conv2d_reference
from convbench.data import check_output, make_data, reference_output

from .conftest import backend_params

FFT = [p for p in backend_params() if p.values[0].startswith("fft_")]


def test_fast_len_is_7_smooth_and_minimal():
    for n in range(1, 400):
        m = F.fast_len(n)
        assert m >= n and all(G._factor_counts(k) != {} or k == 1 for k in [m])
        k = m
        for f in (2, 3, 5, 7):
            while k % f == 0:
                k //= f
        assert k == 1
        assert all(F.fast_len(j) != j for j in range(n, m))


def test_fft_flops_model():
    # 8x8 real transform: 8 rows of real length-8 (2.5*8*3) + 5 complex columns (5*8*3)
    assert G.fft_flops(8, 8) == 8 * 2.5 * 8 * 3 + 5 * 5 * 8 * 3
    # pruned: only 3 rows transformed
    assert G.fft_flops(8, 8, rows=3) == 3 * 2.5 * 8 * 3 + 5 * 5 * 8 * 3
    assert G.length_efficiency(256) == 1.0 and G.length_efficiency(270) < G.length_efficiency(288)


def test_geometry_covers_output_and_tiles_large_images():
    big = ConvProblem.parse("mb1ic1ih1024oc1kh5ph2")
    g = F.fft_geometry(big)
    assert g.tiles > 1, "a 1024^2 image with a 5x5 kernel should be tiled"
    assert g.th * g.Th >= big.hp - big.ext_h + 1 and g.tw * g.Tw >= big.wp - big.ext_w + 1
    assert g.Th == g.nh - big.ext_h + 1
    small = ConvProblem.parse("mb1ic1ih32oc1kh15ph7")
    assert F.fft_geometry(small).tiles == 1


def test_memory_limit_refuses_with_bytes():
    b = get_backend("fft_pyfftw", memory_limit=10_000)
    reason = b.supports(ConvProblem.parse("mb1ic64ih56oc64kh3ph1"))
    assert reason and "bytes" in reason and "memory limit of 10000" in reason


@pytest.mark.parametrize("name", FFT)
@pytest.mark.parametrize("desc", ["mb1ic1ih200oc1kh9ph4", "mb2ic3ih40iw33oc4kh5kw5sh2sw2ph2pw2dh1dw1", "g2mb1ic4ih30oc6kh7ph3",
                                  "mb2ic2ih120oc2kh5ph2"])
def test_tiled_and_whole_image_agree_with_reference(name, desc):
    b = get_backend(name)
    p = ConvProblem.parse(desc)
    x, w = make_data(p)
    ref = reference_output(p, x, w)
    ranked = F.ranked_geometries(p)
    tiled = [g for g in ranked if g.tiles > 1 and g.th > 1][:2]
    assert tiled, "every problem here has tiled candidates"
    geos = list(ranked[:3]) + tiled + [G.geometry(p, g.nh, g.nw, by_row=True, split=k) for g in tiled
                                 for k in {1, g.tw, None}]
    for geo in geos:
        plan = Plan(p, b._build(p, geo, w))
        chk = check_output(b.run(plan, x), ref, p, b.capabilities.tolerance(p.dtype))
        assert chk["status"] == "passed", (geo, chk)
        ph = b.phases(plan, x)
        assert set(ph) == {"input", "multiply", "output"} and all(v > 0 for v in ph.values())


def test_by_row_geometry_holds_part_of_one_tile_row():
    p = ConvProblem.parse("mb2ic4ih300oc4kh9ph4")
    g = next(g for g in F.ranked_geometries(p) if g.th > 1 and g.tw > 1)
    r = G.geometry(p, g.nh, g.nw, by_row=True, split=1)
    assert (r.nh, r.nw, r.th, r.tw, r.flops) == (g.nh, g.nw, g.th, g.tw, g.flops)  # same arithmetic
    assert r.workspace_bytes < g.workspace_bytes and G.batch_size(p, r) == g.tw and G.batch_size(p, g) == 2 * g.tiles
    assert r.label.endswith("/row") and not g.label.endswith("/row")
    # by default a pass is the largest equal part of a row that fits PASS_BYTES (here: one tile)
    tile = G._tile_bytes(p, g.nh, g.nw, True)
    assert tile > G.PASS_BYTES
    auto = G.geometry(p, g.nh, g.nw, by_row=True)
    assert auto.split == g.tw and G.batch_size(p, auto) == 1 and auto.label.endswith(f"/row{g.tw}")
    assert auto.workspace_bytes == r.workspace_bytes - (g.tw - 1) * tile
    assert G._split(12, 100) == 1 and G._split(12, G.PASS_BYTES // 5) == 3 and G._split(7, G.PASS_BYTES // 3) == 7
    assert G.geometry(p, g.nh, g.nw, by_row=True, split=5).split == G._split(g.tw, tile)  # must divide tw
    whole = G.geometry(p, 320, 320, by_row=True)
    assert whole.tiles == 1 and not whole.by_row  # nothing to split


@pytest.mark.parametrize("desc, out_over_in, in_place", [
    ("mb1ic1ih300oc1kh9ph4", True, True),     # one channel: both shared
    ("mb1ic3ih300oc3kh9ph4", True, False),    # ic == oc: inverse over the patches only
    ("mb1ic2ih300oc3kh9ph4", False, False),   # nothing shared
])
def test_pyfftw_tile_buffers_are_shared_only_when_safe(desc, out_over_in, in_place):
    pytest.importorskip("pyfftw")
    b = get_backend("fft_pyfftw")
    p = ConvProblem.parse(desc)
    g = next(g for g in F.ranked_geometries(p) if g.tiles > 1)
    assert G.aliasing(p, True) == (out_over_in, in_place)
    x, w = make_data(p)
    st = b._build(p, g, w)
    assert np.shares_memory(st.tx.P, st.tx.R) == out_over_in and (st.tx.X is st.tx.Y) == in_place
    chk = check_output(b.run(Plan(p, st), x), reference_output(p, x, w), p, b.capabilities.tolerance(p.dtype))
    assert chk["status"] == "passed", chk


def test_pyfftw_plans_are_cached_and_reused(monkeypatch):
    pytest.importorskip("pyfftw")
    b = get_backend("fft_pyfftw")
    monkeypatch.setattr(b, "AUTOTUNE", 1)  # the model's pick both times (timing could pick another)
    first = b._candidates  # nor its row-by-row variant, which timing under load may prefer once
    monkeypatch.setattr(b, "_candidates", lambda p: first(p)[:1])
    p = ConvProblem.parse("mb1ic1ih64oc1kh5ph2")
    x, w = make_data(p)
    a = b.prepare(p, w)
    misses = F.PLAN_CACHE_STATS["misses"]
    c = b.prepare(p, w * 2)
    assert F.PLAN_CACHE_STATS["misses"] == misses, "the second prepare planned again"
    assert a.state.geo == c.state.geo and a.state.tx.fwd is c.state.tx.fwd
    y2 = b.run(c, x).copy()
    np.testing.assert_allclose(b.run(a, x) * 2, y2, rtol=1e-4, atol=1e-3)


def test_cost_model_runs_once_per_problem(monkeypatch):
    """supports, estimate and prepare all read one cached ranking (it ran six times before)."""
    calls = []
    real = G.geometry
    monkeypatch.setattr(G, "geometry", lambda *a, **k: calls.append(a) or real(*a, **k))
    p = ConvProblem.parse("mb1ic3ih77oc5kh5ph2")
    G.ranked_geometries.cache_clear()
    b = get_backend("fft_scipy")
    b.supports(p)
    b.estimate(p)
    n_model = len(calls)
    assert n_model > 0
    b.supports(p)
    b.estimate(p)
    assert len(calls) == n_model


def test_wisdom_round_trip(tmp_path, monkeypatch):
    pytest.importorskip("pyfftw")
    monkeypatch.setenv("CONVBENCH_CACHE_DIR", str(tmp_path))
    w = FP.Wisdom()
    w.save()
    assert (tmp_path / "fftw_wisdom.pkl").stat().st_size > 0
    w.load()  # must not raise
    assert w.loaded_from == str(tmp_path / "fftw_wisdom.pkl")
    (tmp_path / "fftw_wisdom.pkl").write_bytes(b"garbage")
    FP.Wisdom().load()  # a corrupt file is ignored
    FP.Wisdom().save()  # and replaced by a good one
    assert (tmp_path / "fftw_wisdom.pkl").read_bytes()[:1] != b"g"


def test_wisdom_off_plans_from_scratch_and_writes_nothing(tmp_path, monkeypatch):
    pytest.importorskip("pyfftw")
    monkeypatch.setenv("CONVBENCH_CACHE_DIR", str(tmp_path))
    p = ConvProblem.parse("mb1ic2ih20oc3kh5ph2")
    x, w = make_data(p)
    b = get_backend("fft_pyfftw", fftw_wisdom="off")
    try:
        assert F.WISDOM.state() == {"enabled": False, "loaded_from": None, "loaded_bytes": 0}
        y = b.run(b.prepare(p, w), x)
        assert not (tmp_path / "fftw_wisdom.pkl").exists()
    finally:
        b = get_backend("fft_pyfftw", fftw_wisdom="on")
    assert F.WISDOM.state()["enabled"]
    np.testing.assert_allclose(y, conv2d_reference(x.astype(np.float64), w.astype(np.float64), p),
                               rtol=1e-4, atol=1e-3)
    b.prepare(p, w)
    assert (tmp_path / "fftw_wisdom.pkl").exists()  # on again: plans are saved


def test_planner_effort_is_a_backend_option():
    pytest.importorskip("pyfftw")
    assert get_backend("fft_pyfftw", fftw_effort="estimate").effort == "FFTW_ESTIMATE"
    assert get_backend("fft_pyfftw").effort == "FFTW_MEASURE"
    with pytest.raises(ValueError, match="accepted are estimate, measure"):
        get_backend("fft_pyfftw", fftw_effort="sloppy")
    with pytest.raises(ValueError, match="unknown option.*accepted: fftw_effort, fftw_wisdom"):
        get_backend("fft_pyfftw", winograd_points="lavin")


def test_autotune_records_what_it_timed():
    b = get_backend("fft_scipy")
    p = ConvProblem.parse("mb1ic1ih128oc1kh9ph4")
    plan = b.prepare(p, make_data(p)[1])
    assert "timed:" in plan.note and "ms" in plan.note
    assert plan.state.geo in [g for g, _ in plan.state.tried]
    est = b.estimate(p)
    assert math.isfinite(est.flops_executed) and 0 < est.flops_multiply < est.flops_executed
    geo = plan.state.geo  # results rows report the plan prepare chose, not the model's first pick
    assert (plan.flops_executed, plan.flops_multiply, plan.workspace_bytes) == \
        (geo.flops, geo.multiply_flops, geo.workspace_bytes)


_PLAN_SCRIPT = """
import sys, time, pathlib
from convbench.backends import get_backend
from convbench.problem import ConvProblem
from convbench.data import make_data
b = get_backend("fft_pyfftw")           # loads the wisdom file as it is now
go = pathlib.Path(sys.argv[2])
while sys.argv[3] == "wait" and not go.exists():
    time.sleep(0.02)
p = ConvProblem.parse(sys.argv[1])
b.prepare(p, make_data(p)[1])          # plans, then saves (merging under the lock)
if sys.argv[3] == "signal":
    go.write_text("done")
"""


def test_concurrent_runs_merge_their_wisdom(tmp_path):
    """Two processes that loaded the same (empty) wisdom file both plan and save: the file ends
    up with both processes' plans (it used to keep only the last writer's)."""
    pytest.importorskip("pyfftw")
    import os
    import pickle
    import subprocess
    import sys
    env = dict(os.environ, CONVBENCH_CACHE_DIR=str(tmp_path))
    go = tmp_path / "go"
    late = subprocess.Popen([sys.executable, "-c", _PLAN_SCRIPT, "mb1ic1ih40oc1kh5ph2", str(go), "wait"], env=env)
    early = subprocess.run([sys.executable, "-c", _PLAN_SCRIPT, "mb1ic1ih90oc1kh9ph4", str(go), "signal"],
                           env=env, timeout=120)
    assert early.returncode == 0
    after_early = pickle.loads((tmp_path / "fftw_wisdom.pkl").read_bytes())
    assert late.wait(timeout=120) == 0
    final = pickle.loads((tmp_path / "fftw_wisdom.pkl").read_bytes())
    early_lines = set(after_early[1].decode().splitlines()) - {""}
    final_lines = set(final[1].decode().splitlines())
    assert early_lines and early_lines <= final_lines, "the late process dropped the early one's plans"


@pytest.mark.parametrize("name", FFT)
def test_prepare_peak_is_in_the_estimate(name, monkeypatch):
    """prepare builds its timing candidates side by side: what they hold together is the
    estimate's prepare_bytes (the runner admits a cell on it), and never more than half the
    backend's memory limit (a 0.7 GB plan once held 5.7 GB while its candidates were timed)."""
    b = get_backend(name, memory_limit=64 << 20)
    p = ConvProblem.parse("mb4ic8ih96oc8kh7ph3")
    built = []
    real = b._build
    monkeypatch.setattr(b, "_build", lambda p_, g, w: built.append(g) or real(p_, g, w))
    est = b.estimate(p)
    b.prepare(p, make_data(p)[1])
    timed = built[:-1]  # the last build is the chosen plan, after the candidates are dropped
    assert len(timed) >= 2 and sum(g.workspace_bytes for g in timed) <= (64 << 20) // 2
    assert est.prepare_bytes >= sum(g.workspace_bytes for g in timed)
