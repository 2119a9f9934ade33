"""What a cell computes on and what it must produce: seeded integer data, the float64
reference, the comparison, and the memory the harness holds for them.

A :class:`Case` is the arrays of one cell: ``constant`` goes to ``prepare`` (the weights of
a forward or backward-data convolution; the forward input of a max-pool's backward, whose
argmax ``prepare`` keeps; nothing otherwise) and ``inputs`` to ``run(plan, *inputs)`` (``x``;
``dy`` for backward data; ``(x, dy)`` for the weight gradient). Data are benchdnn-style
integers in [-2, 2], seeded by the problem's label, so every backend and every rerun sees the
same arrays and exact algorithms reproduce the float64 reference bit for bit; max pooling
gets distinct values instead, so no window has two maxima and every backend routes a
gradient to the same element.
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass

import numpy as np

from .flops import prod
from .problem import ConvProblem
from .reference import (conv_reference, conv_transpose_reference, conv_weight_reference,
                        pool_backward_reference, pool_reference)

__all__ = ["Case", "make_data", "make_case", "reference_output", "reference_case", "check_output", "output_bound",
           "harness_bytes", "REF_CHUNK_BYTES", "CHECK_BLOCK", "uses_weights"]

#: bytes of float64 temporaries the reference and the check may hold at once (they work in chunks)
REF_CHUNK_BYTES = 128 << 20
#: elements compared per step by :func:`check_output`
CHECK_BLOCK = 1 << 22


@dataclass
class Case:
    """The arrays of one cell: ``constant`` for ``prepare``, ``inputs`` for ``run``."""

    inputs: tuple
    constant: np.ndarray | None = None


def _seed(label: str, salt: int = 0) -> int:
    return zlib.crc32(label.encode()) ^ salt


def _ints(rng, shape, dtype) -> np.ndarray:
    """Integers in [-2, 2], drawn as int8 and converted once (1 + itemsize bytes per element at
    the peak, which :func:`harness_bytes` counts)."""
    return rng.integers(-2, 3, size=shape, dtype=np.int8).astype(dtype)


def uses_weights(p) -> bool:
    """Whether a problem has weights a density can prune (a forward or backward-data conv)."""
    return p.uses_weights


def make_data(p: ConvProblem, weight_density: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Input (``p.src_shape``) and weights for a forward or backward-data convolution: integers
    in [-2, 2], deterministic per problem label.

    Sums of products of such values stay far below 2**24, so float32 represents every partial
    sum exactly (benchdnn's filling strategy). With ``weight_density < 1`` a fixed-seed random
    subset of weights is zeroed (pruned kernels), the same for every backend.
    """
    rng = np.random.default_rng(_seed(p.label))
    x = _ints(rng, p.src_shape, p.dtype)
    w = _ints(rng, p.weight_shape, p.dtype)
    w[w == 0] = 1  # density is then controlled by the pruning below alone
    if weight_density < 1.0:
        keep = np.random.default_rng(_seed(p.label, 0x5EED)).random(p.weight_shape) < weight_density
        w *= keep
    return x, w


def _distinct(rng, shape, dtype) -> np.ndarray:
    """Distinct integers (a shuffled range centred on 0) when they fit float32's exact range,
    else integers in [-2, 2]."""
    n = int(np.prod(shape))
    if n >= 1 << 24:
        return _ints(rng, shape, dtype)
    return (rng.permutation(n) - n // 2).astype(dtype).reshape(shape)


def make_case(p, weight_density: float = 1.0) -> Case:
    """The arrays of a cell of ``p`` (see the module docstring)."""
    if p.kind == "pool":
        rng = np.random.default_rng(_seed(p.label))
        maker = _distinct if p.alg == "max" else _ints
        x = maker(rng, p.input_shape, p.dtype)
        if p.direction == "bwd_d":
            return Case((_ints(rng, p.output_shape, p.dtype),), x)
        return Case((x,))
    if p.direction == "bwd_w":
        rng = np.random.default_rng(_seed(p.label))
        return Case((_ints(rng, p.input_shape, p.dtype), _ints(rng, p.output_shape, p.dtype)))
    x, w = make_data(p, weight_density)
    return Case((x,), w)


def _ref_batch_chunk(p) -> int:
    """Images per reference call, so the float64 padded input and accumulator stay under
    :data:`REF_CHUNK_BYTES` (at least one image)."""
    per = 8 * (p.ic * prod(p.padded) + 2 * max(p.oc, p.ic) * max(prod(p.out_spatial), prod(p.spatial)))
    return max(1, min(p.mb, REF_CHUNK_BYTES // max(per, 1)))


def reference_output(p: ConvProblem, x: np.ndarray, w: np.ndarray) -> np.ndarray:
    """The float64 reference of a forward or backward-data convolution, computed a few images
    at a time (see :func:`_ref_batch_chunk`), so large layers are still checked without float64
    copies of the whole input."""
    fn = conv_transpose_reference if p.transposed else conv_reference
    nb = _ref_batch_chunk(p)
    if nb >= p.mb:
        return fn(x, w, p)
    ref = np.empty(p.dst_shape, dtype=np.float64)
    for n0 in range(0, p.mb, nb):
        k = min(nb, p.mb - n0)
        ref[n0:n0 + k] = fn(x[n0:n0 + k], w, p.replace(mb=k))
    return ref


def reference_case(p, case: Case) -> np.ndarray:
    """The float64 result every backend's output for ``case`` is checked against."""
    if p.kind == "pool":
        if p.direction == "bwd_d":
            return pool_backward_reference(case.inputs[0], case.constant, p)
        return pool_reference(case.inputs[0], p)[0]
    if p.direction == "bwd_w":
        x, dy = case.inputs
        nb = _ref_batch_chunk(p)
        dw = np.zeros(p.weight_shape)
        for n0 in range(0, p.mb, nb):
            k = min(nb, p.mb - n0)
            dw += conv_weight_reference(x[n0:n0 + k], dy[n0:n0 + k], p.replace(mb=k))
        return dw
    return reference_output(p, case.inputs[0], case.constant)


def output_bound(p, case: Case) -> float:
    """The largest magnitude any output of the cell can have, the scale of the absolute
    tolerance when the reference is all zeros: ``max|x| * max_o sum|w_o|`` for a convolution
    (for the transposed one, one input channel's slice across output channels), ``max|x| *
    max_o sum|dy_o|`` for the weight gradient, ``max|x|`` or ``max|dy|`` for pooling."""
    def amax(a):
        return float(np.max(np.abs(a))) if a is not None and a.size else 0.0
    if p.kind == "pool":
        return amax(case.inputs[0])
    if p.direction == "bwd_w":
        x, dy = case.inputs
        return amax(x) * (float(np.max(np.sum(np.abs(dy), axis=(0,) + tuple(range(2, dy.ndim))))) if dy.size else 0.0)
    x, w = case.inputs[0], case.constant
    rest = tuple(range(2, w.ndim))
    ax = (1,) + rest if not p.transposed else (0,) + rest
    return amax(x) * float(np.max(np.sum(np.abs(w), axis=ax))) if x.size and w.size else 0.0


def harness_bytes(p) -> int:
    """Memory the harness itself holds for a cell: the inputs (and the int8 draws they are made
    from), the float64 reference, the reference's per-chunk float64 temporaries and the check's
    comparison blocks. From the shape alone."""
    it = p.itemsize
    n_in = sum(int(np.prod(s, dtype=np.int64)) for s in p.operand_shapes)
    if p.kind == "pool":
        n_in += int(np.prod(p.input_shape, dtype=np.int64)) if p.direction == "bwd_d" else 0
        dst = int(np.prod(p.dst_shape, dtype=np.int64))
        # the reference's padded float64 copy, its running result and (max) argmax indices
        grid = prod(max(w, ax.p + ax.i) for w, ax in zip(p.padded, p.axes))
        ref_tmp = 8 * p.mb * p.ic * (grid + 3 * prod(p.out_spatial))
        return n_in * (it + 1) + 8 * dst + ref_tmp + 3 * 8 * min(dst, CHECK_BLOCK)
    dst = int(np.prod(p.dst_shape, dtype=np.int64))
    nb = _ref_batch_chunk(p)
    ref_tmp = 8 * nb * (p.ic * prod(p.padded) + 2 * max(p.oc, p.ic) * max(prod(p.out_spatial), prod(p.spatial)))
    return n_in * (it + 1) + p.params * (it + 1) + 8 * dst + ref_tmp + 3 * 8 * min(dst, CHECK_BLOCK)


def check_output(y, ref: np.ndarray, p, tol: float, *, bound: float | None = None) -> dict:
    """Compare ``y`` with the float64 reference (block by block, so the comparison holds no
    full-size float64 temporaries).

    Parameters
    ----------
    bound : float, optional
        The largest magnitude any output can have (:func:`output_bound`), the scale of the
        absolute tolerance used when the reference is all zeros; 1 when not given.

    Returns
    -------
    dict with ``status`` (passed/mistrusted/failed), ``reason``, ``max_abs_err`` and
    ``rel_err`` (``||y - ref||_2 / ||ref||_2``). A cell passes when ``rel_err <= tol``
    and no single element is off by more than ``10 * tol * max|ref|`` (so a few wrong
    edge pixels cannot hide in the norm). A reference that is all zeros (every window
    reads only padding) has no relative error: as benchdnn does, every element must then
    be within an absolute tolerance, ``tol * bound``; ``rel_err`` is 0 when the output is
    exactly zero too and NaN otherwise.
    """
    if not isinstance(y, np.ndarray):
        return dict(status="failed", reason=f"returned {type(y).__name__}, not an ndarray")
    if y.shape != ref.shape:
        return dict(status="failed", reason=f"output shape {y.shape}, expected {ref.shape}")
    if y.dtype != np.dtype(p.dtype):
        return dict(status="failed", reason=f"output dtype {y.dtype}, expected {p.dtype}")
    yf, rf = y.reshape(-1), ref.reshape(-1)
    sq_diff = sq_ref = 0.0
    max_abs = scale = 0.0
    for i in range(0, yf.size, CHECK_BLOCK):
        yb = yf[i:i + CHECK_BLOCK]
        if not np.all(np.isfinite(yb)):
            return dict(status="failed", reason="output contains NaN or Inf")
        rb = rf[i:i + CHECK_BLOCK]
        d = yb.astype(np.float64)
        d -= rb
        sq_diff += float(np.dot(d, d))
        sq_ref += float(np.dot(rb, rb))
        max_abs = max(max_abs, float(np.max(np.abs(d))))
        scale = max(scale, float(np.max(np.abs(rb))))
    out = dict(max_abs_err=max_abs, tolerance=tol)
    if sq_ref == 0:
        abs_tol = tol * (bound if bound else 1.0)
        out["rel_err"] = 0.0 if max_abs == 0 else float("nan")
        if max_abs > abs_tol:
            out.update(status="mistrusted", reason=f"reference is all zeros (every window reads only padding): "
                                                   f"max abs error {max_abs:.3g} > absolute tolerance {abs_tol:.3g}")
        else:
            out.update(status="passed", reason="")
        return out
    rel = math.sqrt(sq_diff / sq_ref)
    out["rel_err"] = rel
    if rel > tol:
        out.update(status="mistrusted", reason=f"relative error {rel:.3g} > tolerance {tol:.3g}")
    elif max_abs > 10 * tol * scale:
        out.update(status="mistrusted",
                   reason=f"max abs error {max_abs:.3g} > 10*tol*max|ref| = {10 * tol * scale:.3g}")
    else:
        out.update(status="passed", reason="")
    return out
