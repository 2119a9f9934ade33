"""The specialised paths, against the float64 reference: direct_numba's generated depthwise
kernels (every (kernel, stride) shape, paddings, channel multipliers, few channels per
group, narrow and wide planes, the channel-blocked kernel, serial and parallel, forward and
backward-data), im2col_blas's 1x1 GEMM on the NCHW input (stride 1 and
subsampled) and its compiled strided unfold (stems, chunked rows)."""

from __future__ import annotations

import os

import numpy as np
import pytest

import convbench
from convbench.backends import depthwise
from convbench.flops import dense_flops, direct_flops
from convbench.problem import ConvProblem


def _check(p, rng, backend="direct_numba", directions=("fwd", "bwd_d")):
    w = rng.standard_normal(p.weight_shape)
    for q in [p.replace(direction=d) for d in directions]:
        shape = q.input_shape if q.direction == "fwd" else p.output_shape
        x = rng.standard_normal(shape).astype(np.float32)
        b = convbench.get_backend(backend)
        plan = b.prepare(q, w.astype(np.float32))
        y = b.run(plan, x)
        ref_b = convbench.get_backend("reference")
        ref = ref_b.run(ref_b.prepare(q, w), x.astype(np.float64))
        assert y.shape == ref.shape
        err = np.abs(y - ref).max() / max(np.abs(ref).max(), 1e-30)
        assert err < 1e-5, (q.label, q.direction, plan.note, err)
    return plan


@pytest.mark.parametrize("k,s", depthwise.SHAPES)
@pytest.mark.parametrize("pad", ["none", "half"])
@pytest.mark.parametrize("icg,ocg", [(1, 1), (1, 2), (3, 1)])
@pytest.mark.parametrize("iw", [14, 37])
def test_generated_depthwise_kernels_match_the_reference(k, s, pad, icg, ocg, iw):
    pad = 0 if pad == "none" else k // 2
    rng = np.random.default_rng(k * 100 + s * 10 + pad + iw)
    g = 3
    p = ConvProblem(mb=2, ic=g * icg, oc=g * ocg, ih=11, iw=iw, kh=k, kw=k, sh=s, sw=s, ph=pad, pw=pad, g=g)
    assert depthwise.fits(p)
    plan = _check(p, rng)
    assert "depthwise" in plan.note or p.sh > 1  # bwd_d of a strided problem runs at stride 1
    # same-padded pure depthwise runs over whole planes; other narrow strided planes of pure
    # depthwise vectorised over channels; the rest row by row
    kind = convbench.get_backend("direct_numba")._layout(p)["kind"]
    pure = icg == ocg == 1
    if pure and p.ow == -(-p.iw // s):
        assert kind == "depthwise_flat"
    else:
        assert kind == ("depthwise_cb" if pure and s > 1 and p.ow < depthwise.LANES else "depthwise")


@pytest.mark.parametrize("k,s", depthwise.SHAPES)
@pytest.mark.parametrize("ih,iw,ph,dtype", [(7, 7, None, "float32"), (13, 9, None, "float32"), (12, 12, 0, "float64"),
                                            (5, 6, 3, "float32")])
def test_whole_plane_depthwise_kernel_matches_the_reference(k, s, ih, iw, ph, dtype):
    """Every stride phase, odd and even planes (the last phase row or column short), rows
    read above and below the plane (ph from 0 to past the kernel) and both column masks, in
    both directions (bwd_d of a stride-1 problem runs the same kernel)."""
    pw = k // 2 if s == 1 else (k - 1) // 2
    p = ConvProblem(mb=2, ic=5, oc=5, g=5, ih=ih, iw=iw, kh=k, kw=k, sh=s, sw=s,
                    ph=k // 2 if ph is None else ph, pw=pw, dtype=dtype)
    assert p.ow == -(-iw // s) and depthwise.flat_fits(p), p.label
    rng = np.random.default_rng(k * 1000 + s * 100 + ih * 10 + iw)
    w = rng.standard_normal(p.weight_shape)
    ref_b = convbench.get_backend("reference")
    for q in ([p, p.replace(direction="bwd_d")] if s == 1 else [p]):
        x = rng.standard_normal(q.input_shape if q.direction == "fwd" else p.output_shape)
        b = convbench.get_backend("direct_numba")
        plan = b.prepare(q, w.astype(dtype))
        assert "depthwise_flat" in plan.note
        y = b.run(plan, x.astype(dtype))
        ref = ref_b.run(ref_b.prepare(q, w), x)
        assert y.shape == ref.shape and y.dtype == np.dtype(dtype)
        err = np.abs(y - ref).max() / np.abs(ref).max()
        assert err < (1e-5 if dtype == "float32" else 1e-12), (q.label, q.direction, err)
        # the scratch's zero border survives a run: a second run on other data is exact too
        x2 = rng.standard_normal(x.shape)
        ref2 = ref_b.run(ref_b.prepare(q, w), x2)
        err2 = np.abs(b.run(plan, x2.astype(dtype)) - ref2).max() / np.abs(ref2).max()
        assert err2 < (1e-5 if dtype == "float32" else 1e-12), (q.label, q.direction, err2)


def test_whole_plane_kernel_accounts_for_its_masks_and_scratch():
    """The masks' multiplies are executed FLOPs and the phase planes workspace."""
    p = ConvProblem.parse("g8mb1ic8ih14oc8kh3sh2ph1")
    assert depthwise.flat_fits(p)
    est = convbench.get_backend("direct_numba").estimate(p)
    g = depthwise.flat_geometry(p)
    assert g["dxs"] == [-1] and g["wq"] == p.ow == 7
    dense = 2 * 8 * 9 * 7 * 7
    assert est.flops_executed == dense + 8 * 49 * 1
    assert est.workspace_bytes >= 4 * g["seg"] * 4


@pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="needs 2 cores")
# the row kernel at stride 2 with two output channels per group, the channel-blocked kernel, the
# whole-plane kernel, the stem kernel (9 output channels: two blocks of 4 in parallel and a tail) and
# the channel-blocked kernel (2 groups, a panel each with zero rows, 9-wide rows: a tile and a tail)
# (numba's parallel builds are not cached on disk: each compiles for seconds)
@pytest.mark.parametrize("d,kind", [("g5mb3ic5ih9oc10kh3sh2ph1", "depthwise"), ("g19mb3ic19ih13oc19kh3sh2", "depthwise_cb"),
                                    ("g7mb3ic7ih9oc7kh3ph1", "depthwise_flat"), ("mb2ic3ih12iw34oc9kh3kw3sh2sw2ph1pw1", "stem"),
                                    ("g2mb2ic32ih9iw11oc80kh3kw3sh2sw2ph1pw1", "blocked")])
def test_parallel_generated_kernels_split_jobs_unevenly(d, kind, monkeypatch):
    from convbench import threads
    from convbench.backends import direct_numba
    monkeypatch.setattr(direct_numba, "PARALLEL_MIN_FLOPS", 0)
    threads.set_threads(2)
    try:
        plan = _check(ConvProblem.parse(d), np.random.default_rng(3), directions=("fwd",))
        assert "parallel" in plan.note and plan.note.split(",")[0].split(" (")[0] == f"loop nest: {kind}"
    finally:
        threads.set_threads(1)


def test_asymmetric_and_cropped_outputs():
    rng = np.random.default_rng(7)
    # benchdnn-style explicit output sizes (bottom/right padding differs, or rows never read)
    for oh, ow in ((6, 7), (5, 5)):
        p = ConvProblem(mb=1, ic=4, oc=4, ih=12, iw=13, kh=3, kw=3, sh=2, sw=2, ph=1, pw=0, g=4, oh=oh, ow=ow)
        _check(p, rng)


def test_problems_without_a_generated_kernel_keep_the_other_nests():
    b = convbench.get_backend("direct_numba")
    for p, kind in ((ConvProblem(mb=1, ic=4, oc=4, ih=9, iw=9, kh=3, kw=3, dh=1, dw=1, g=4), "rows"),
                    (ConvProblem(mb=1, ic=4, oc=4, ih=9, iw=9, kh=7, kw=7, g=4), "rows"),
                    (ConvProblem(mb=1, ic=32, oc=8, ih=9, iw=9, kh=3, kw=3, g=2), "nhwc"),
                    (ConvProblem(mb=1, ic=16, oc=16, id=5, ih=6, iw=6, kd=3, kh=3, kw=3, rank=3), "nhwc")):
        assert not depthwise.fits(p)
        assert f"loop nest: {kind}" in b.prepare(p, np.zeros(p.weight_shape, np.float32)).note


@pytest.mark.parametrize("kw", [dict(mb=3, ic=6, oc=4, ih=9, iw=7, g=2), dict(mb=2, ic=8, oc=8, ih=9, iw=10, sh=2, sw=3),
                                dict(mb=1, ic=4, oc=6, ih=8, iw=8, oh=6, ow=7), dict(mb=2, ic=4, oc=6, ih=8, iw=8, sh=2, sw=2, g=2)],
                         ids=["g2", "strided", "cropped", "strided-g2"])
def test_pointwise_gemm_on_the_nchw_input(kw):
    p = ConvProblem(kh=1, kw=1, **kw)
    plan = _check(p, np.random.default_rng(1), "im2col_blas", ("fwd",))
    assert plan.note.startswith("1x1:") and ("subsampled" in plan.note) == (p.sh > 1 or p.oh < p.ih)


@pytest.mark.parametrize("kw", [dict(mb=2, ic=3, oc=8, ih=23, iw=23, kh=3, kw=3, sh=2, sw=2, ph=1, pw=1),
                                dict(mb=1, ic=4, oc=6, ih=17, iw=19, kh=5, kw=3, sh=3, sw=2, ph=2, pw=1, dh=1, g=2),
                                dict(mb=1, ic=3, oc=5, ih=20, iw=20, kh=7, kw=7, sh=2, sw=2, ph=3, pw=3, oh=9, ow=10),
                                dict(mb=1, ic=3, oc=16, ih=224, iw=224, kh=7, kw=7, sh=2, sw=2, ph=3, pw=3),
                                dict(mb=2, ic=40, oc=24, ih=15, iw=15, kh=3, kw=3, sh=2, sw=2, ph=1, pw=1)],
                         ids=["stem3x3", "grouped-dilated", "cropped", "resnet-stem-chunked", "many-channels"])
def test_compiled_strided_unfold(kw):
    p = ConvProblem(**kw)
    plan = _check(p, np.random.default_rng(2), "im2col_blas", ("fwd",))
    assert plan.note.startswith("strided unfold")
    if p.ih == 224:
        assert int(plan.note.split(", ")[1].split()[0]) < p.oh  # several row chunks per image


@pytest.mark.parametrize("kw", [dict(mb=2, ic=6, oc=4, iw=301, kw=5, pw=2, g=2, rank=1),
                                dict(mb=1, ic=3, oc=5, iw=400, kw=3, sw=2, dw=1, pw=3, rank=1),
                                dict(mb=2, ic=4, oc=4, ih=3, iw=150, kh=2, kw=3, ph=1, pw=1),
                                dict(mb=2, ic=4, oc=6, iw=300, kw=2, rank=1), dict(mb=1, ic=3, oc=2, iw=90, kw=4, ow=80,
                                                                               rank=1)],
                         ids=["1d-grouped", "1d-strided-dilated", "2d-long-rows", "1d-unpadded", "1d-cropped"])
def test_unfold_in_column_blocks_of_rows_longer_than_the_cache(kw, monkeypatch):
    from convbench.backends import im2col_blas
    p = ConvProblem(**kw)
    monkeypatch.setattr(im2col_blas, "CHUNK_BYTES", p.icg * p.kh * p.kw * 4 * 37)  # 37 columns a block
    ch = im2col_blas.chunks(p)
    assert len(ch) == p.mb * p.oh * -(-p.ow // max(c[-1] for c in ch)) and max(c[-1] for c in ch) < p.ow
    assert sum(c[-1] for c in ch) == p.mb * p.oh * p.ow
    plan = _check(p, np.random.default_rng(3), "im2col_blas", ("fwd",))
    unpadded = not any(p.own("p")) and p.ow == (p.iw - p.kw) // p.sw + 1
    assert (getattr(plan.state, "geoms", None) is not None) == (unpadded and p.sw == 1)  # views over the input
    x = np.random.default_rng(4).standard_normal(p.input_shape).astype(np.float32)
    b = convbench.get_backend("im2col_blas")
    # an input that is not C-contiguous (or not float32) is copied into the padded buffer instead
    np.testing.assert_array_equal(b.run(plan, np.asfortranarray(x)), b.run(plan, x))


@pytest.mark.parametrize("kw", [dict(mb=2, ic=24, oc=8, ih=9, iw=10, kh=3, kw=3, ph=1, pw=1, g=2),
                                dict(mb=1, ic=24, oc=18, ih=11, iw=9, kh=3, kw=2, sh=2, sw=2, ph=1, g=3),
                                dict(mb=1, ic=16, oc=8, ih=8, iw=12, kh=2, kw=4, dh=1, dw=1, g=2),
                                dict(mb=1, ic=32, oc=32, id=5, ih=7, iw=6, kd=3, kh=3, kw=3, pd=1, ph=1, pw=1, g=8,
                                     rank=3),
                                dict(mb=2, ic=8, oc=12, iw=30, kw=5, pw=2, g=2, rank=1)],
                         ids=["g2-icg12", "strided-odd-ocg", "dilated", "3d-g8", "1d"])
def test_few_channels_per_group_fold_the_groups_into_images(kw):
    """(Not the 2-D 3x3/5x5 cases of up to 8 channels per group: those have generated kernels.)"""
    p = ConvProblem(**kw)
    _check(p, np.random.default_rng(5), directions=("fwd", "bwd_d"))
    assert "groups folded into images" in convbench.get_backend("direct_numba").prepare(
        p, np.zeros(p.weight_shape, np.float32)).note


@pytest.mark.parametrize("desc", ["mb3ic4ih6oc4kh3", "mb1ic4ih6oc4kh3", "mb2ic64id30ih40iw40oc64kd3kh3kw3",
                                  "mb1ic512ih200oc64kh3", "mb2ic32iw90000oc32kw2", "mb4ic8ih20oc8kh3"])
def test_chunk_extent_from_the_shape_matches_the_chunks(desc):
    """The estimate's column count and whole-image flag, computed without listing the chunks,
    are those of the chunks prepare builds."""
    from convbench.backends import im2col_blas
    p = ConvProblem.parse(desc)
    ch = im2col_blas.chunks(p)
    ncols = max(nb * nz * nr * nc for _, nb, _, nz, _, nr, _, nc in ch)
    whole = len(ch) == p.mb and all(nb == 1 and nz == p.od and nr == p.oh for _, nb, _, nz, _, nr, _, _ in ch)
    assert im2col_blas._chunk_extent(p) == (ncols, whole)


@pytest.mark.parametrize("kw", [
    dict(ic=3, oc=8, ih=20, iw=33, kh=3, kw=3, sh=2, sw=2, ph=1, pw=1),            # MobileNet-style stem, odd width
    dict(ic=3, oc=6, ih=21, iw=40, kh=7, kw=7, sh=2, sw=2, ph=3, pw=3),            # ResNet-style 7x7/2, a tail block
    dict(ic=1, oc=5, ih=9, iw=18, kh=3, kw=5, sh=1, sw=1, ph=0, pw=2),             # grey image, stride 1, uneven kernel
    dict(ic=4, oc=4, ih=17, iw=50, kh=5, kw=3, sh=3, sw=2, ph=2, pw=0),            # RGBA, unequal strides and paddings
    dict(ic=2, oc=3, ih=12, iw=36, kh=3, kw=3, sh=2, sw=2, ph=1, pw=1, oh=5, ow=16),  # benchdnn-style cropped output
], ids=["3x3s2", "7x7s2", "grey", "rgba", "cropped"])
def test_few_input_channel_kernel_matches_the_reference(kw):
    """The generated stem kernel on every stride phase, paddings past the kernel's reach, output
    channels not a multiple of its block, two images, both directions of the contract it serves
    (bwd_d runs its stride-1 transposed equivalent, which has many channels and another nest)."""
    from convbench.backends import stem
    p = ConvProblem(mb=2, **kw)
    assert stem.fits(p), p.label
    plan = _check(p, np.random.default_rng(p.ic * 10 + p.kh), directions=("fwd",))
    assert "loop nest: stem" in plan.note
    est = convbench.get_backend("direct_numba").estimate(p)
    assert est.flops_executed == 2 * p.mb * p.oc * p.ic * p.oh * p.ow * p.kh * p.kw
    assert est.workspace_bytes == stem.geometry(p)["size"] * 4


def test_few_input_channel_kernel_in_float64_and_narrow_rows_elsewhere():
    from convbench.backends import stem
    p = ConvProblem(mb=1, ic=3, oc=4, ih=16, iw=32, kh=3, kw=3, sh=2, sw=2, ph=1, pw=1, dtype="float64")
    rng = np.random.default_rng(5)
    x, w = rng.standard_normal(p.input_shape), rng.standard_normal(p.weight_shape)
    b, ref_b = convbench.get_backend("direct_numba"), convbench.get_backend("reference")
    y = b.run(b.prepare(p, w), x)
    ref = ref_b.run(ref_b.prepare(p, w), x)
    assert y.dtype == np.float64 and np.abs(y - ref).max() < 1e-12 * np.abs(ref).max()
    # rows narrower than a vector, groups, or dilation keep the other nests
    for q in (p.replace(iw=12), p.replace(ic=4, oc=4, g=2), p.replace(dh=1, dw=1)):
        assert not stem.fits(q)


BLOCKED = [
    dict(mb=2, ic=20, oc=40, ih=7, iw=9, kh=1, kw=1),                                  # 1x1 on x itself, panels of 48 + zero rows
    dict(mb=1, ic=16, oc=24, ih=9, iw=11, kh=1, kw=1, sh=2, sw=2),                     # 1x1/2: one phase, tiles across rows
    dict(mb=2, ic=16, oc=32, ih=13, iw=17, kh=3, kw=3, sh=2, sw=2, ph=1, pw=1),         # 3x3/2, 9-wide rows: a tile and a tail
    dict(mb=1, ic=32, oc=32, ih=10, iw=15, kh=3, kw=3, ph=1, pw=1, g=2),               # groups
    dict(mb=1, ic=8, oc=16, ih=17, iw=19, kh=3, kw=3, sh=2, sw=1, ph=3, pw=0, dh=1, dw=2),  # dilated, padding past the kernel
    dict(mb=1, ic=6, oc=9, ih=20, iw=23, kh=5, kw=3, sh=3, sw=2, ph=2, pw=1, oh=6, ow=10),  # cropped output, 3 phases
    dict(mb=2, ic=16, oc=20, iw=50, kw=5, sw=2, pw=2, rank=1),                          # 1-D
    dict(mb=1, ic=3, oc=16, ih=30, iw=29, kh=7, kw=7, sh=2, sw=2, ph=3, pw=3),          # an RGB 7x7/2 stem
]


@pytest.mark.parametrize("kw", BLOCKED, ids=["1x1", "1x1s2", "3x3s2-tail", "g2", "dilated", "cropped", "1d", "stem7x7"])
@pytest.mark.parametrize("lanes", ["host", "avx2"])
def test_channel_blocked_kernel_matches_the_reference(kw, lanes, monkeypatch):
    """The channel-blocked kernel (layout ``blocked``) against the float64 reference: every
    geometry it takes (x read in place, stride phases, tiles across rows or along them with
    a tail, zero panel rows, groups, dilation, cropping, 1-D), in both directions of the
    contract (bwd_d runs its forward equivalent, the stride-dilated input, the same kernel);
    also built for 256-bit vectors and 16 registers, as on a machine without AVX-512."""
    from convbench.backends import blocked
    if lanes == "avx2":
        monkeypatch.setattr(blocked, "vector_lanes", lambda itemsize: (32 // itemsize, 16))
    p = ConvProblem(**kw)
    assert blocked.fits(p), p.label
    _check(p, np.random.default_rng(p.ic * 10 + p.kh))
    assert "loop nest: blocked" in convbench.get_backend("direct_numba").prepare(p, np.zeros(p.weight_shape, np.float32)).note
    g = blocked.geometry(p)
    assert g["nr"] * g["mb_v"] + g["mb_v"] + 1 <= blocked.vector_lanes(4)[1]  # fits the register file
    est = convbench.get_backend("direct_numba").estimate(p)
    assert est.flops_executed == 2 * p.mb * p.g * g["npg"] * g["mr"] * g["k"] * p.oh * p.ow >= 2 * p.mb * p.oc * g["k"] * p.oh * p.ow


@pytest.mark.parametrize("lanes", ["host", "avx2"])
def test_channel_blocked_kernel_in_float64_and_where_it_does_not_run(lanes, monkeypatch):
    """float64 (on 256-bit vectors: 4 lanes, the output through a tile instead of the in-register
    transposition), a second run on new data, and the problems other nests keep."""
    from convbench.backends import blocked, stem
    if lanes == "avx2":
        monkeypatch.setattr(blocked, "vector_lanes", lambda itemsize: (32 // itemsize, 16))
    p = ConvProblem(mb=1, ic=12, oc=10, ih=11, iw=12, kh=3, kw=3, sh=2, sw=2, ph=1, pw=1, dtype="float64")
    rng = np.random.default_rng(8)
    x, w = rng.standard_normal(p.input_shape), rng.standard_normal(p.weight_shape)
    b, ref_b = convbench.get_backend("direct_numba"), convbench.get_backend("reference")
    plan = b.prepare(p, w)
    y = b.run(plan, x)
    ref = ref_b.run(ref_b.prepare(p, w), x)
    assert "blocked" in plan.note and y.dtype == np.float64 and np.abs(y - ref).max() < 1e-12 * np.abs(ref).max()
    assert ("microkernel_nchw" in blocked._source(p, blocked.geometry(p), False)) == (blocked.vector_lanes(8)[0] % 8 == 0)
    # a second run on new data: the phase scratch's border stayed zero
    x2 = rng.standard_normal(p.input_shape)
    assert np.abs(b.run(plan, x2) - ref_b.run(ref_b.prepare(p, w), x2)).max() < 1e-12 * np.abs(ref).max()
    # too few channels per group, too short a reduction: other nests; 3x3 RGB stems keep the stem kernel
    # unless strided with at least 32 output channels
    for q, kind in ((p.replace(oc=10, g=2, kh=2, kw=2), "nhwc"), (p.replace(ic=1, oc=16, iw=40), "stem"),
                    (p.replace(ic=3, oc=16, iw=40), "stem"), (p.replace(ic=3, oc=32, iw=40), "blocked"),
                    (p.replace(ic=3, oc=64, iw=40, sh=1, sw=1), "stem"), (p.replace(ic=16, oc=16, g=16), "depthwise_flat")):
        assert b._layout(q)["kind"] == kind, q.label
    q = p.replace(ic=3, oc=32, iw=40, kh=7, kw=7, ph=3, pw=3)  # a 7x7 RGB stem: the blocked kernel is faster
    assert stem.fits(q) and blocked.beats_stem(q) and b._layout(q)["kind"] == "blocked"


@pytest.mark.parametrize("vector_bytes", [32, 64])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_deinterleave_intrinsic_splits_rows_and_writes_nothing_else(vector_bytes, dtype):
    """:func:`convbench.backends.simd.deinterleave2` on rows shorter than, equal to and longer
    than a vector (AVX2's and AVX-512's): the even and odd values land at their offsets, and the
    masked row ends neither write past the row nor read past ``2n`` values."""
    from numba import njit
    from convbench.backends.simd import deinterleave2
    dein = deinterleave2(vector_bytes)

    @njit
    def split(src, soff, spitch, dst, d0, d1, dpitch, n, rows):
        dein(src, soff, spitch, dst, d0, d1, dpitch, n, rows)

    for n in (0, 1, 7, 8, 14, 16, 17, 28, 40):
        rows, spitch, dpitch = 3, 2 * n + 5, n + 2
        src = np.arange(3 + rows * spitch, dtype=dtype)
        dst = np.full(2 * rows * dpitch + 8, -1.0, dtype=dtype)
        d1 = rows * dpitch + 4
        split(src, 3, spitch, dst, 1, d1, dpitch, n, rows)
        want = np.full_like(dst, -1.0)
        for r in range(rows):
            row = src[3 + r * spitch: 3 + r * spitch + 2 * n]
            want[1 + r * dpitch: 1 + r * dpitch + n] = row[0::2]
            want[d1 + r * dpitch: d1 + r * dpitch + n] = row[1::2]
        np.testing.assert_array_equal(dst, want, err_msg=f"n={n}")


POLY = [
    ("mb2ic16ih13oc32kh3sh2ph1", 4),                     # 3x3/2: 2x2, 2x1, 1x2 and 1x1 sub-kernels
    ("mb1ic16ih9iw11oc24kh1kw1sh2sw2", 1),               # 1x1/2: one phase of four, the rest zeros
    ("mb1ic16ih17iw19oc16kh3kw3sh2sw1ph3pw0dh1dw2", 1),  # dilation 2 at stride 2: odd rows get no tap
    ("mb1ic16ih20iw23oc16kh5kw3sh3sw2ph2pw1oh6ow10", 6),  # stride 3, padding past the kernel (a crop of dy)
    ("mb2ic16iw50oc20kw5sw2pw2", 2),                      # 1-D
    ("mb1ic16ih30oc32kh7sh2ph3", 4),                     # 7x7/2
]


@pytest.mark.parametrize("desc,live", POLY, ids=[d for d, _ in POLY])
def test_strided_backward_data_by_phases(desc, live):
    """direct_numba's strided bwd_d as one stride-1 forward problem per phase of dx
    (:mod:`convbench.backends.polyphase`), against the float64 reference; its accounting is the
    phases' (no multiplications by inserted zeros)."""
    p = ConvProblem.parse(desc).replace(direction="bwd_d")
    plan = _check(p, np.random.default_rng(11), directions=("bwd_d",))
    assert plan.note.startswith(f"polyphase: {live} of ")
    b = convbench.get_backend("direct_numba")
    # at least the taps inside the input, at most with the zero rows of the last panel per group
    # (an MR-channel panel for 16 channels), never the 4x of the zero-stuffed input
    assert direct_flops(p) <= plan.flops_executed <= dense_flops(p) * 48 / 16
    assert b.estimate(p).flops_executed == plan.flops_executed


WGRAD = ["mb2ic16ih13oc32kh3sh2ph1", "mb1ic3ih30oc16kh7sh2ph3", "mb2ic20ih9iw11oc24kh1kw1sh2sw2",
         "mb1ic8ih17iw19oc16kh3kw3sh2sw1ph3pw0dh1", "mb1ic6ih20iw23oc9kh5kw3sh3sw2ph2pw1oh6ow10",
         "mb2ic16iw50oc20kw5sw2pw2", "mb3ic8ih40oc40kh3ph1"]


@pytest.mark.parametrize("desc", WGRAD, ids=["3x3s2", "stem7x7", "1x1s2", "dilated-rows", "cropped", "1d",
                                             "chunks-and-tail-panel"])
@pytest.mark.parametrize("lanes", ["host", "avx2"])
def test_channel_blocked_weight_gradient(desc, lanes, monkeypatch):
    """direct_numba's weight gradient on the channel-blocked micro-kernel (accumulating over
    pixel chunks: the last case has 4800 pixels, 38 chunks, and a panel of zero lanes) against
    the float64 reference; also built for 256-bit vectors and 16 registers."""
    from convbench.backends import blocked, blocked_wgrad
    if lanes == "avx2":
        monkeypatch.setattr(blocked_wgrad, "vector_lanes", lambda itemsize: (32 // itemsize, 16))
        monkeypatch.setattr(blocked, "vector_lanes", lambda itemsize: (32 // itemsize, 16))
    p = ConvProblem.parse(desc).replace(direction="bwd_w")
    assert blocked_wgrad.fits(p)
    rng = np.random.default_rng(len(desc))
    x, dy = rng.standard_normal(p.input_shape), rng.standard_normal(p.output_shape)
    b, ref_b = convbench.get_backend("direct_numba"), convbench.get_backend("reference")
    plan = b.prepare(p, None)
    assert plan.note.startswith("weight gradient: channel-blocked")
    ref = ref_b.run(ref_b.prepare(p, None), x, dy)
    for _ in range(2):  # a second run: the buffers' borders and zero lanes stayed zero
        y = b.run(plan, x.astype(np.float32), dy.astype(np.float32))
        assert y.shape == ref.shape and np.abs(y - ref).max() < 1e-5 * np.abs(ref).max()
    g = blocked_wgrad.geometry(p)
    assert plan.flops_executed == dense_flops(p) * g["npanel"] * g["mr"] / p.oc
    assert plan.workspace_bytes == blocked_wgrad.workspace(p, g)
    for q in (p.replace(g=p.ic, oc=p.ic * 8), p.replace(dw=1, iw=max(p.iw, 20))):  # groups, horizontal dilation
        assert not blocked_wgrad.fits(q)
