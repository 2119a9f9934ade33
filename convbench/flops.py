"""Operation counts: one *direct* count shared by every algorithm, plus executed counts.

Two numbers per cell, never mixed up:

``flops_direct``
    The work of the convolution itself, the same for every backend, so that
    ``gflops_effective = flops_direct / time`` compares algorithms on one scale.
    It is benchdnn's ``prb_t::count_ops``: a multiply and an add (2 ops) for each
    kernel tap that lands on a real input pixel; taps on padding are not counted::

        flops_direct = 2 * mb * oc * (ic/g) * sum_{oh,ow} #{(r,s) in bounds}

    The in-bounds count is separable, ``sum_oh #r * sum_ow #s``, so it costs
    O(oh*kh + ow*kw) to evaluate exactly.

``flops_executed``
    The arithmetic an algorithm really performs, from what its code does (each
    backend's ``flops()``). Padding taps that a loop multiplies by zero count here,
    as do transforms. Helpers for the common shapes live below.
"""

from __future__ import annotations

from .problem import ConvProblem

__all__ = ["valid_taps", "direct_flops", "dense_flops", "gemm_flops"]


def _axis_taps(o: int, i: int, k: int, s: int, p: int, d: int) -> int:
    """Sum over output positions of the kernel taps that fall inside the input (one axis)."""
    total = 0
    for oo in range(o):
        base = oo * s - p
        for kk in range(k):
            ii = base + kk * (d + 1)
            if 0 <= ii < i:
                total += 1
    return total


def valid_taps(p: ConvProblem) -> int:
    """Number of (output pixel, kernel tap) pairs that read a real input pixel, per channel pair."""
    return (_axis_taps(p.oh, p.ih, p.kh, p.sh, p.ph, p.dh)
            * _axis_taps(p.ow, p.iw, p.kw, p.sw, p.pw, p.dw))


def direct_flops(p: ConvProblem) -> int:
    """benchdnn's op count: ``2 * mb * oc * ic/g * valid_taps`` (padding taps excluded)."""
    return 2 * p.mb * p.oc * p.icg * valid_taps(p)


def dense_flops(p: ConvProblem) -> int:
    """Ops of a loop that also multiplies the padding: ``2 * mb * oc * ic/g * oh*ow * kh*kw``.

    This is what im2col + GEMM and a direct loop over a zero-padded copy execute.
    """
    return 2 * p.mb * p.oc * p.icg * p.oh * p.ow * p.kh * p.kw


def gemm_flops(m: int, n: int, k: int) -> int:
    """A real GEMM ``(m x k) @ (k x n)``: ``2*m*n*k`` (multiply-add counted as 2)."""
    return 2 * m * n * k
