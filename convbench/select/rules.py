"""Fixed selection rules: convbench's built-in ones (used when no selector is fitted for this
machine) and NNPACK's, as a baseline.

Built-in rules (from the default sweep's winner map on the project's 2-core machines):

========================================================  ==================
problem                                                   backend
========================================================  ==================
pooling                                                   ``pool_numba``
depthwise (one input channel per group), unless the       ``direct_numba``
kernel area is >= 49 at stride 1
forward, 1-4 input channels, no groups, up to 25 taps     ``direct_numba``
(stems, image filters: its generated ``stem`` kernel),
or 7x7 RGB stems (its channel-blocked kernel)
bwd_w, 1-D or 2-D, no groups, kernels larger than 1x1     ``direct_numba``
(its channel-blocked weight gradient)
3 taps per axis, stride 1, no dilation, >= 8 ch per group ``winograd_f4x3``
(planes of at most 64 outputs: ``direct_numba``)
kernel area or volume >= 49 (7x7, 4x4x4 up), stride 1     ``fft_pyfftw``
the channel-blocked kernel runs it (forward, bwd_d; at    ``direct_numba``
stride > 1 phase by phase) with a reduction of >= 24
(channels x taps)
everything else (a 1x1 from 16 channels: GEMM)           ``im2col_blas``
========================================================  ==================

A rule whose backend cannot run the problem (capabilities, direction) falls through to the
next candidate that can, in the order ``im2col_blas``, ``direct_numba``, ``reference``.
"""

from __future__ import annotations

from ..backends import blocked, blocked_wgrad, stem
from ..backends.direct_numba import DirectNumba
from ..flops import prod

__all__ = ["builtin_rule", "nnpack_rule", "FALLBACK_ORDER"]

FALLBACK_ORDER = ("im2col_blas", "direct_numba", "reference")


def builtin_rule(p) -> str:
    """The built-in rules' backend for ``p`` (before capability checks)."""
    if p.kind == "pool":
        return "pool_numba"
    k = p.own("k")
    unit = all(s == 1 for s in p.own("s"))
    # measured on the unseen layers (issue 28): a 15x15 depthwise blur took 16.2 ms in
    # direct_numba and 0.9 ms in fft_pyfftw; 3x3/2 stems 479-663 us in direct_numba's stem
    # kernel against 704-787 us in im2col_blas, a 5x5 grey filter 208 against 1100 us, while
    # 7x7/2 stems went either way (3596 against 4214 us for GoogLeNet's, the other way for ResNet's)
    if p.icg == 1 and p.g > 1 and not (prod(k) >= 49 and unit):
        return "direct_numba"
    if p.direction == "fwd" and stem.fits(p) and (prod(k) <= 25 or blocked.beats_stem(p)):
        return "direct_numba"
    # the channel-blocked kernel (issue 28), measured interleaved against the GEMM and Winograd, 1
    # thread, SkylakeX kernels: 3x3/2 ResNet layers 1.31-1.55x im2col_blas; 1x1 on 7x7 and 14x14
    # planes 1.15-1.32x, MobileNetV2's 1x1 from 24-160 channels 1.03-1.42x; 3x3 at 512@7 2.16x
    # winograd_f4x3 (at 256@14 0.91x, at 128@28 0.54x); but a reduction of 16 (1x1, 16 -> 96 at
    # 112 px) 0.93x im2col_blas
    q = DirectNumba._forward_problem(p) if p.kind == "conv" and p.direction in ("fwd", "bwd_d") else None
    fast_direct = q is not None and (p.direction == "fwd" or unit) and blocked.chosen(q)
    reduction = q.icg * prod(q.kernel) if fast_direct else 0
    phs = DirectNumba._polyphase(p) if q is not None and not fast_direct else None
    if phs is not None:  # strided bwd_d by phases (1.09-1.53x oneDNN on ResNet-50's at mb8)
        fast_direct = True
        reduction = max(ph.q.icg * prod(ph.q.kernel) for ph in phs if ph.q is not None)
    if p.kind == "conv" and p.direction == "bwd_w" and blocked_wgrad.fits(p) and prod(k) > 1:
        # the channel-blocked weight gradient, at mb8 on ResNet-50: 3x3 1.06-1.43x im2col_blas, the
        # 7x7/2 stem 1.40x, 3x3/2 1.01x; 1x1 0.57x (a GEMM without an unfold is better there)
        return "direct_numba"
    plain = unit and not any(p.own("d"))
    if all(v == 3 for v in k) and plain and p.icg >= 8 and p.oc // p.g >= 8:
        return "direct_numba" if fast_direct and prod(p.out_spatial) <= 64 else "winograd_f4x3"
    if prod(k) >= 49 and unit:
        return "fft_pyfftw"
    if fast_direct and reduction >= 24:
        return "direct_numba"
    return "im2col_blas"


def nnpack_rule(p) -> str:
    """NNPACK's fixed rules mapped onto convbench's backends: 1x1 -> direct, 3x3 -> Winograd
    F(6x6, 3x3), kernels up to 8 -> FFT (NNPACK's 8x8 tiles) and up to 16 -> FFT (16x16 tiles),
    the rest -> GEMM (im2col)."""
    if p.kind == "pool":
        return "pool_numba"
    k = max(p.own("k"))
    if k == 1:
        return "direct_numba"
    if all(v == 3 for v in p.own("k")):
        return "winograd_f6x3"
    if k <= 16:
        return "fft_pyfftw"
    return "im2col_blas"
