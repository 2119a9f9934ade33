"""Physical features of a problem, for the selector: closed forms of what each algorithm's
cost depends on (operation counts, GEMM extents, FFT sizes, Winograd tiles, bytes), all in
log2 so that a model of log-time sees ratios. Cheap: no backend is consulted."""

from __future__ import annotations

import math

import numpy as np

__all__ = ["FEATURES", "features", "feature_matrix"]

FEATURES = ("log_flops", "log_dense_flops", "log_mb", "log_icg", "log_ocg", "log_g", "depthwise", "log_in_px",
            "log_out_px", "kh", "kw", "log_taps", "stride", "dilated", "log_bytes", "log_weights", "log_gemm_n",
            "log_gemm_k", "log_fft_flops", "log_wino_tiles", "log_intensity", "pool", "log_ow", "log_oh", "log_ic",
            "log_oc", "log_unfold", "log_fft_n", "wino3", "wino5", "log_matrix", "log_taps_per_px")


def _l(v: float) -> float:
    return math.log2(max(float(v), 1.0))


def features(p) -> np.ndarray:
    """The feature vector of a conv or pool problem (order :data:`FEATURES`)."""
    pool = p.kind == "pool"
    mb, ih, iw, oh, ow, kh, kw = p.mb, p.ih, p.iw, p.oh, p.ow, p.kh, p.kw
    if pool:
        ic = oc = p.ic
        icg, ocg, g = 1, 1, p.ic
    else:
        ic, oc, g = p.ic, p.oc, p.g
        icg, ocg = p.icg, p.oc // p.g
    item = 8 if p.dtype == "float64" else 4
    dense = 2.0 * mb * oc * icg * oh * ow * kh * kw
    if pool:
        flops = dense / 2
    else:
        from ..flops import direct_flops
        flops = float(direct_flops(p))
    bytes_ = item * (mb * ic * ih * iw + mb * oc * oh * ow + (0 if pool else oc * icg * kh * kw))
    ph, pw = getattr(p, "ph", 0), getattr(p, "pw", 0)
    n_fft = (ih + 2 * ph) * (iw + 2 * pw)
    fft = 5.0 * mb * (ic + oc) * n_fft * _l(n_fft) + 8.0 * mb * oc * icg * n_fft / 2
    tiles = mb * g * math.ceil(oh / 4) * math.ceil(ow / 4)
    return np.array([
        _l(flops), _l(dense), _l(mb), _l(icg), _l(ocg), _l(g), float(icg == 1 and g > 1), _l(ih * iw),
        _l(oh * ow), float(kh), float(kw), _l(kh * kw), math.sqrt(p.sh * p.sw),
        float(getattr(p, "dh", 0) + getattr(p, "dw", 0) > 0), _l(bytes_), _l(oc * icg * kh * kw),
        _l(mb * oh * ow), _l(icg * kh * kw), _l(fft), _l(tiles), _l(flops) - _l(bytes_), float(pool),
        _l(ow), _l(oh), _l(ic), _l(oc), _l(mb * icg * kh * kw * oh * ow * g), _l(n_fft),
        float((kh, kw) == (3, 3) and p.sh == p.sw == 1 and not getattr(p, "dh", 0) and not getattr(p, "dw", 0)),
        float((kh, kw) == (5, 5) and p.sh == p.sw == 1 and not getattr(p, "dh", 0) and not getattr(p, "dw", 0)),
        _l(ic * ih * iw) + _l(oc * oh * ow), _l(kh * kw) - _l(oh * ow)])


def feature_matrix(problems) -> np.ndarray:
    return np.vstack([features(p) for p in problems]) if problems else np.zeros((0, len(FEATURES)))
