"""Physical features of a problem, for the selector: closed forms of what each algorithm's
cost depends on (operation counts, GEMM extents, FFT sizes, Winograd tiles, bytes), all in
log2 so that a model of log-time sees ratios. Cheap: no backend is consulted."""

from __future__ import annotations

import math

import numpy as np

from ..flops import prod

__all__ = ["FEATURES", "features", "feature_matrix"]

FEATURES = ("log_flops", "log_dense_flops", "log_mb", "log_icg", "log_ocg", "log_g", "depthwise", "log_in_px",
            "log_out_px", "kh", "kw", "log_taps", "stride", "dilated", "log_bytes", "log_weights", "log_gemm_n",
            "log_gemm_k", "log_fft_flops", "log_wino_tiles", "log_intensity", "pool", "log_ow", "log_oh", "log_ic",
            "log_oc", "log_unfold", "log_fft_n", "wino3", "wino5", "log_matrix", "log_taps_per_px", "rank", "kd",
            "log_od", "dw_same", "few_ic")


def _l(v: float) -> float:
    return math.log2(max(float(v), 1.0))


def features(p) -> np.ndarray:
    """The feature vector of a conv or pool problem of any rank (order :data:`FEATURES`).

    Extents are products over the problem's own axes (pixels, voxels or samples; taps; FFT
    points; Winograd tiles of 4 per axis); ``kh``, ``kw``, ``kd`` and ``log_oh``, ``log_ow``,
    ``log_od`` are the per-axis values (1 on an axis the problem does not have), ``stride`` the
    geometric mean over its axes, ``rank`` 1, 2 or 3."""
    pool = p.kind == "pool"
    mb, rank = p.mb, p.rank
    in_px, out_px, taps = prod(p.own("i")), prod(p.own("o")), prod(p.own("k"))
    if pool:
        ic = oc = p.ic
        icg, ocg, g = 1, 1, p.ic
    else:
        ic, oc, g = p.ic, p.oc, p.g
        icg, ocg = p.icg, p.oc // p.g
    item = 8 if p.dtype == "float64" else 4
    dense = 2.0 * mb * oc * icg * out_px * taps
    if pool:
        flops = dense / 2
    else:
        from ..flops import direct_flops
        flops = float(direct_flops(p))
    bytes_ = item * (mb * ic * in_px + mb * oc * out_px + (0 if pool else oc * icg * taps))
    n_fft = prod(i + 2 * q for i, q in zip(p.own("i"), p.own("p")))
    fft = 5.0 * mb * (ic + oc) * n_fft * _l(n_fft) + 8.0 * mb * oc * icg * n_fft / 2
    tiles = mb * g * prod(math.ceil(o / 4) for o in p.own("o"))
    plain = all(s == 1 for s in p.own("s")) and not any(p.own("d"))
    # direct_numba's whole-plane depthwise kernel (same padding) and its stem kernel (1-4 input
    # channels) run 1.1-2x and up to 17x faster than its other nests at the same operation
    # counts: nothing else here tells those problems apart (issue 28's held-out MobileNet-v2)
    depthwise = icg == 1 and g > 1
    same = all(o == -(-i // s) for o, i, s in zip(p.own("o"), p.own("i"), p.own("s")))
    ks = set(p.own("k"))
    return np.array([
        _l(flops), _l(dense), _l(mb), _l(icg), _l(ocg), _l(g), float(depthwise), _l(in_px),
        _l(out_px), float(p.kh), float(p.kw), _l(taps), prod(p.own("s")) ** (1.0 / rank),
        float(any(p.own("d"))), _l(bytes_), _l(oc * icg * taps),
        _l(mb * out_px), _l(icg * taps), _l(fft), _l(tiles), _l(flops) - _l(bytes_), float(pool),
        _l(p.ow), _l(p.oh), _l(ic), _l(oc), _l(mb * icg * taps * out_px * g), _l(n_fft),
        float(ks == {3} and plain), float(ks == {5} and plain),
        _l(ic * in_px) + _l(oc * out_px), _l(taps) - _l(out_px), float(rank), float(p.kd), _l(p.od),
        float(depthwise and same), float(not pool and g == 1 and ic <= 4)])


def feature_matrix(problems) -> np.ndarray:
    return np.vstack([features(p) for p in problems]) if problems else np.zeros((0, len(FEATURES)))
