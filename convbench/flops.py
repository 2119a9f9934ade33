"""Counts from the shape alone: operations, parameters and bytes (never measured).

Operation counts: one *direct* count shared by every algorithm, plus executed counts.

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

Parameter sharing and local connectivity, as numbers. A convolution is multiplication by a
huge, mostly-zero matrix whose nonzeros repeat the same few weights. Three layers map the
same input to the same output:

fully connected (dense)
    every output connects to every input of its group:
    ``g * (oc/g * oh*ow) * (ic/g * ih*iw)`` weights (the dense operator's entries).
locally connected (unshared)
    each output connects only to its receptive field, with its own weights per output
    position: one weight per nonzero of the operator, ``oc * ic/g * valid taps``.
convolution (shared)
    the same ``kh*kw`` kernel at every position: ``oc * ic/g * kh * kw`` weights.

``dense / local`` is what local connectivity saves, ``local / conv`` what parameter
sharing saves (each weight is reused that many times on average).

:func:`problem_counts` gathers what a results row stores of these, once, when the row is
made, so reports only render.
"""

from __future__ import annotations

from .problem import ConvProblem

__all__ = ["valid_taps", "direct_flops", "dense_flops", "gemm_flops", "dense_entries", "operator_nnz",
           "parameter_table_row", "problem_counts"]


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
    """Number of (output point, kernel tap) pairs that read a real input point, per channel
    pair: the product over the spatial axes (the count is separable)."""
    n = 1
    for ax in p.axes:
        n *= _axis_taps(ax.o, ax.i, ax.k, ax.s, ax.p, ax.d)
    return n


def prod(xs) -> int:
    n = 1
    for x in xs:
        n *= int(x)
    return n


def direct_flops(p: ConvProblem) -> int:
    """benchdnn's op count: ``2 * mb * oc * ic/g * valid_taps`` (padding taps excluded)."""
    return 2 * p.mb * p.oc * p.icg * valid_taps(p)


def dense_flops(p: ConvProblem) -> int:
    """Ops of a loop that also multiplies the padding: ``2 * mb * oc * ic/g * prod(o) * prod(k)``
    over the spatial axes (``oh*ow * kh*kw`` in 2-D).

    This is what im2col + GEMM and a direct loop over a zero-padded copy execute.
    """
    return 2 * p.mb * p.oc * p.icg * prod(p.out_spatial) * prod(p.kernel)


def gemm_flops(m: int, n: int, k: int) -> int:
    """A real GEMM ``(m x k) @ (k x n)``: ``2*m*n*k`` (multiply-add counted as 2)."""
    return 2 * m * n * k


def dense_entries(p: ConvProblem) -> int:
    """Entries of the dense operator, counting only the block-diagonal blocks of the groups
    (a fully-connected layer per group)."""
    return p.g * (p.ocg * prod(p.out_spatial)) * (p.icg * prod(p.spatial))


def operator_nnz(p: ConvProblem) -> int:
    """Nonzeros of the operator with all weights nonzero: in-bounds taps per channel pair."""
    return p.oc * p.icg * valid_taps(p)


def parameter_table_row(p: ConvProblem) -> dict:
    """Weights of the three layer kinds and the two savings ratios for problem ``p``."""
    conv = p.params
    local = operator_nnz(p)
    dense = dense_entries(p)
    return {"conv_weights": conv, "locally_connected_weights": local, "dense_entries": dense,
            "operator_nnz": local, "sharing_ratio": local / conv, "locality_ratio": dense / local,
            "dense_over_conv": dense / conv, "operator_density": local / dense}


def problem_counts(p) -> dict:
    """The counts of a results row that depend on the problem alone.

    ``flops_direct``: benchdnn's op count (padding taps excluded); ``flops_dense``: a loop
    that multiplies the padding too (all ``kh*kw`` taps of every output); ``params``: the
    convolution's weights; ``params_fully_connected`` / ``params_locally_connected``: the
    weights of a dense and of a locally connected (unshared) layer doing the same mapping;
    ``bytes_io``: input, weights and output, each once (the minimum traffic). Pooling has no
    op count (NaN) and its bytes are input, output and, for max's backward, the argmax.
    """
    if p.kind == "pool":
        # no multiply-adds worth counting: pooling is judged by the bytes it moves (input and
        # output once each; a max pool's backward also reads the int32 argmax of every output)
        n_in, n_out = prod(p.input_shape), prod(p.output_shape)
        idx = 4 * n_out if p.alg == "max" and p.direction == "bwd_d" else 0
        nan = float("nan")
        return dict(flops_direct=nan, flops_dense=nan, params=0, params_fully_connected=nan,
                    params_locally_connected=nan, bytes_io=(n_in + n_out) * p.itemsize + idx)
    io = (prod(p.input_shape) + p.params + prod(p.output_shape)) * p.itemsize
    return dict(flops_direct=direct_flops(p), flops_dense=dense_flops(p), params=p.params,
                params_fully_connected=dense_entries(p), params_locally_connected=operator_nnz(p),
                bytes_io=io)
