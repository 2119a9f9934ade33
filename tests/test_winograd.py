"""Winograd backends: edge tiles, plan reuse, FLOP model, capabilities, generated code."""

from __future__ import annotations

import numpy as np
import pytest

from convbench.backends import get_backend
from convbench.backends import winograd as W
from convbench.backends import winograd_kernels as WK
from convbench.problem import ConvProblem
from convbench.data import check_output, make_data, reference_output

VARIANTS = ["winograd_f2x3", "winograd_f4x3", "winograd_f6x3", "winograd_f2x5", "winograd_f4x5"]


@pytest.mark.parametrize("name", VARIANTS)
@pytest.mark.parametrize("size", [(7, 7), (13, 9), (5, 23), (3, 3)])
def test_edge_tiles_on_odd_sizes(name, size):
    b = get_backend(name)
    r = b.r
    pad = r // 2
    p = ConvProblem(mb=2, ic=3, ih=size[0], iw=size[1], oc=5, kh=r, kw=r, ph=pad, pw=pad)
    x, w = make_data(p)
    y = b.run(b.prepare(p, w), x)
    chk = check_output(y, reference_output(p, x, w), p, b.capabilities.tolerance(p.dtype))
    assert chk["status"] == "passed", chk


def test_plan_reuse_and_grouped_depthwise():
    b = get_backend("winograd_f4x3")
    p = ConvProblem.parse("g6mb1ic6ih11oc6kh3ph1")
    plan = b.prepare(p, make_data(p)[1])
    rng = np.random.default_rng(1)
    for _ in range(3):
        x = rng.integers(-2, 3, p.input_shape).astype(np.float32)
        y = b.run(plan, x)
        ref = reference_output(p, x, make_data(p)[1])
        assert check_output(y, ref, p, 5e-5)["status"] == "passed"


@pytest.mark.parametrize("size, ratio", [(56, 4.00), (14, 3.0625), (7, 3.0625)])
def test_multiply_reduction_with_edge_tiles(size, ratio):
    b = get_backend("winograd_f4x3")
    p = ConvProblem.parse(f"mb1ic8ih{size}oc8kh3ph1")
    dense = 2 * p.oc * p.ic * p.oh * p.ow * 9
    assert dense / b.estimate(p).flops_multiply == pytest.approx(ratio)


def test_flop_model_hand_counted_f2x3():
    b = get_backend("winograd_f2x3")
    p = ConvProblem.parse("mb1ic3ih4oc5kh3ph1")  # 4x4 output: 2x2 tiles
    tiles = 4
    mult = 2 * 16 * tiles * 5 * 3
    # lavin F(2,3): nnz(B^T) = 8, nnz(A^T) = 6; input: 2 passes x n=4 x 8 MACs; output: (n+m) x 6 MACs
    t_in = 2 * 2 * 4 * 8 * tiles * 3
    t_out = 2 * (4 + 2) * 6 * tiles * 5
    est = b.estimate(p)
    assert est.flops_multiply == mult
    assert est.flops_executed == t_in + mult + t_out


@pytest.mark.parametrize("desc, fragment", [
    ("mb1ic4ih9oc4kh3sh2ph1", "stride"), ("mb1ic4ih9oc4kh3dh1ph2", "dilation"),
    ("mb1ic4ih9oc4kh5ph2", "kernel 5x5 not supported (supports 3x3)")])
def test_unsupported_reasons(desc, fragment):
    assert fragment in get_backend("winograd_f4x3").supports(ConvProblem.parse(desc))


def test_points_are_selectable_and_recorded():
    b = get_backend("winograd_f4x3", winograd_points="balanced")
    p = ConvProblem.parse("mb1ic4ih9oc4kh3ph1")
    x, w = make_data(p)
    plan = b.prepare(p, w)
    assert "points balanced: 0,1,-1,1/2,-1/2,inf" in plan.note
    assert check_output(b.run(plan, x), reference_output(p, x, w), p, 5e-5)["status"] == "passed"
    assert "points lavin" in get_backend("winograd_f4x3").prepare(p, w).note  # options are per instance
    with pytest.raises(ValueError, match="distinct"):
        get_backend("winograd_f4x3", winograd_points="0,1,1")


def test_generated_transforms_fold_constants():
    src = WK.generate_source(2, 3, "lavin", "float32", False)
    assert "K0" not in src          # F(2,3)'s matrices hold only 0 and +-1: additions only
    assert " * d" not in src
    src43 = WK.generate_source(4, 3, "lavin", "float32", False)
    assert "np.float32(" in src43 and "K0 * " in src43


@pytest.mark.parametrize("name", ["winograd_f2x5", "winograd_f4x3"])
def test_prepare_compiles_everything_run_calls(name):
    """The first run must not compile: prepare compiles the transforms for the exact array types
    of the plan's buffers (stand-ins of another layout once left compilation to the first run)."""
    b = get_backend(name)
    r = b.r
    p = ConvProblem.parse(f"mb1ic16ih32oc16kh{r}ph{r // 2}")
    x, w = make_data(p)
    plan = b.prepare(p, w)
    kin, kout = plan.state.kin, plan.state.kout
    before = (len(kin.signatures), len(kout.signatures))
    b.run(plan, x)
    assert (len(kin.signatures), len(kout.signatures)) == before


@pytest.mark.parametrize("name", ["winograd_f4x3", "winograd_f2x5"])
@pytest.mark.parametrize("groups", [1, 4])
@pytest.mark.parametrize("reorder", ["numpy", "compiled"])
def test_volumes_transformed_in_blocks_of_depth_tiles(name, groups, reorder, monkeypatch):
    """Blocks of one depth tile (a tiny block budget) give the whole volume's result, over
    several images, groups and an edge block, with the layout reorders numpy's or compiled,
    and the phases add up to a run."""
    from convbench.backends import layout
    monkeypatch.setattr(W, "WINO3_BLOCK_BYTES", 1)
    monkeypatch.setattr(layout, "MIN_BYTES", 1 << 40 if reorder == "numpy" else 0)
    b = get_backend(name)
    r = b.r
    p = ConvProblem(mb=2, ic=4, oc=8, id=11, ih=6, iw=7, kd=r, kh=r, kw=r, pd=r // 2, ph=1, pw=0, g=groups, rank=3)
    plan = b.prepare(p, make_data(p)[1])
    td = -(-p.od // b.m)
    assert plan.state.blocks == [(i, t, 1) for i in range(2) for t in range(td)] and "1 of" in plan.note
    x, w = make_data(p)
    y = b.run(plan, x)
    assert check_output(y, reference_output(p, x, w), p, b.capabilities.tolerance(p.dtype, p))["status"] == "passed"
    np.testing.assert_array_equal(b.run(plan, x), y)  # the buffers are reused, nothing leaks between runs
    ph = b.phases(plan, x)
    assert set(ph) == {"input", "multiply", "output"} and all(v > 0 for v in ph.values())


@pytest.mark.parametrize("desc", ["mb2ic6ih11iw9oc4kh3kw3ph1pw0", "g2mb1ic4iw37oc6kw3pw1", "mb1ic3ih7oc5oh6kh5ph2"])
def test_compiled_layout_reorders_in_1d_and_2d(desc, monkeypatch):
    from convbench.backends import layout
    monkeypatch.setattr(layout, "MIN_BYTES", 0)
    p = ConvProblem.parse(desc)
    b = get_backend("winograd_f4x3" if p.kw == 3 else "winograd_f2x5")
    x, w = make_data(p)
    y = b.run(b.prepare(p, w), x)
    assert check_output(y, reference_output(p, x, w), p, b.capabilities.tolerance(p.dtype, p))["status"] == "passed"
