"""The float64 oracle every backend is checked against. Naive on purpose, never timed.

The definition is written out tap by tap so it can be read against the textbook
formula (cross-correlation, as PyTorch and oneDNN define "convolution"), here in 2-D::

    y[n, o, i, j] = sum_{c, r, s} w[o, c, r, s] * x_pad[n, g(o)*icg + c,
                                                   i*sh + r*(dh+1), j*sw + s*(dw+1)]

and the same with a depth index in 3-D: the tap loop runs over every spatial axis of the
problem's arrays (:attr:`~convbench.problem.Problem.axes`; a 1-D problem is laid out NC1W).

The only concession to speed is that, for one tap, the sum over input channels of one
group is a single matrix product in float64; there is no transform, no unfolding and no
reordering of the tap loop, so it shares no code path with the backends it judges. Its own
correctness is pinned in ``tests/test_reference.py`` against a pure-Python loop on tiny
problems and, when installed, against PyTorch.
"""

from __future__ import annotations

import itertools

import numpy as np

from .problem import ConvProblem

__all__ = ["conv_reference", "conv_transpose_reference", "conv_weight_reference", "conv2d_reference", "pad_input",
           "conv_transpose2d_reference", "conv2d_weight_reference", "pool_reference", "pool_backward_reference",
           "pool_divisors"]


def _window(p, tap) -> tuple:
    """The slices of the padded input that tap ``tap`` (one index per spatial axis) reads
    for every output position."""
    return tuple(slice(t * (ax.d + 1), t * (ax.d + 1) + (ax.o - 1) * ax.s + 1, ax.s) for t, ax in zip(tap, p.axes))


def _taps(p):
    return itertools.product(*(range(ax.k) for ax in p.axes))


def _inside(p) -> tuple:
    """The slices of the padded grid that hold the input elements the windows read."""
    return tuple(slice(ax.p, ax.p + r) for ax, r in zip(p.axes, p.read))


def pad_input(x: np.ndarray, p: ConvProblem, dtype=None) -> np.ndarray:
    """Zero-padded copy of ``x`` holding exactly the elements the convolution reads.

    Shape ``(mb, ic) + p.padded``: front padding ``p`` per axis; the far edge is padded or
    cropped to match the output size (see :class:`ConvProblem`).
    """
    out = np.zeros((x.shape[0], x.shape[1]) + p.padded, dtype=dtype or x.dtype)
    out[(slice(None), slice(None)) + _inside(p)] = x[(slice(None), slice(None)) + tuple(slice(0, r) for r in p.read)]
    return out


def conv_reference(x: np.ndarray, w: np.ndarray, p: ConvProblem) -> np.ndarray:
    """Forward convolution of ``x`` (NC[D]HW) with ``w`` (OI[D]HW) in float64.

    Parameters
    ----------
    x : ndarray, shape ``p.input_shape``
    w : ndarray, shape ``p.weight_shape``
    p : ConvProblem

    Returns
    -------
    ndarray of float64, shape ``p.output_shape``
    """
    assert x.shape == p.input_shape and w.shape == p.weight_shape, (x.shape, w.shape, p)
    xp = pad_input(x, p, dtype=np.float64)
    w64 = w.astype(np.float64)
    y = np.zeros(p.output_shape, dtype=np.float64)
    icg, ocg, P = p.icg, p.ocg, int(np.prod(p.out_spatial))
    for gi in range(p.g):
        xg = xp[:, gi * icg:(gi + 1) * icg]
        wg = w64[gi * ocg:(gi + 1) * ocg]
        acc = np.zeros((p.mb, ocg, P), dtype=np.float64)
        for tap in _taps(p):
            window = xg[(slice(None), slice(None)) + _window(p, tap)]
            # (ocg, icg) @ (mb, icg, P) -> (mb, ocg, P): the tap's channel sum
            acc += np.matmul(wg[(slice(None), slice(None)) + tap], window.reshape(p.mb, icg, P))
        y[:, gi * ocg:(gi + 1) * ocg] = acc.reshape((p.mb, ocg) + p.out_spatial)
    return y


def conv_transpose_reference(x: np.ndarray, w: np.ndarray, p: ConvProblem) -> np.ndarray:
    """Transposed convolution: the adjoint of :func:`conv_reference` for problem ``p``.

    ``x`` has the forward problem's *output* shape and the result its *input* shape; ``w``
    is the forward weight ``(oc, ic/g, ...)``. Each tap scatters ``w^T x`` into the padded
    input grid, then the padding is cut off.
    """
    assert x.shape == p.output_shape and w.shape == p.weight_shape, (x.shape, w.shape, p)
    x64 = x.astype(np.float64)
    w64 = w.astype(np.float64)
    yp = np.zeros((p.mb, p.ic) + p.padded, dtype=np.float64)
    icg, ocg, nd = p.icg, p.ocg, len(p.axes)
    for gi in range(p.g):
        xg = x64[:, gi * ocg:(gi + 1) * ocg]
        wg = w64[gi * ocg:(gi + 1) * ocg]
        yg = yp[:, gi * icg:(gi + 1) * icg]
        for tap in _taps(p):
            # (icg, ocg) x (mb, ocg, ...) -> (icg, mb, ...)
            contrib = np.tensordot(wg[(slice(None), slice(None)) + tap].T, xg, axes=([1], [1]))
            yg[(slice(None), slice(None)) + _window(p, tap)] += contrib.transpose((1, 0) + tuple(range(2, 2 + nd)))
    y = np.zeros(p.input_shape, dtype=np.float64)
    y[(slice(None), slice(None)) + tuple(slice(0, r) for r in p.read)] = yp[(slice(None), slice(None)) + _inside(p)]
    return y


def conv_weight_reference(x: np.ndarray, dy: np.ndarray, p: ConvProblem) -> np.ndarray:
    """The weight gradient ``dW = correlate(x, dY)`` of forward problem ``p`` in float64
    (``torch.nn.grad.conv2d_weight`` and its 1-D and 3-D siblings): for each tap,
    ``dW[o, c, tap] = sum_{n, out} dY[n, o, out] * x_pad[n, g(o)*icg + c, out*s + tap*dil]``,
    the channel sum of one group a single matrix product over ``(n, out)``.
    """
    assert x.shape == p.input_shape and dy.shape == p.output_shape, (x.shape, dy.shape, p)
    xp = pad_input(x, p, dtype=np.float64)
    d64 = dy.astype(np.float64)
    dw = np.zeros(p.weight_shape, dtype=np.float64)
    icg, ocg, P, nd = p.icg, p.ocg, int(np.prod(p.out_spatial)), len(p.axes)
    for gi in range(p.g):
        xg = xp[:, gi * icg:(gi + 1) * icg]
        dg = np.moveaxis(d64[:, gi * ocg:(gi + 1) * ocg], 1, 0).reshape(ocg, p.mb * P)
        for tap in _taps(p):
            window = xg[(slice(None), slice(None)) + _window(p, tap)]
            # (ocg, mb*P) @ (mb*P, icg) -> (ocg, icg)
            cols = window.transpose((0,) + tuple(range(2, 2 + nd)) + (1,)).reshape(p.mb * P, icg)
            dw[(slice(gi * ocg, (gi + 1) * ocg), slice(None)) + tap] = dg @ cols
    return dw


# the 2-D names the rest of convbench grew up with: the same oracles
conv2d_reference = conv_reference
conv_transpose2d_reference = conv_transpose_reference
conv2d_weight_reference = conv_weight_reference


def _pool_padded(x: np.ndarray, p, fill: float) -> np.ndarray:
    """``x`` in float64 inside a border of ``fill``, large enough for every window (ceil mode
    may run a window past the far padding)."""
    shape = tuple(max(w, ax.p + ax.i) for w, ax in zip(p.padded, p.axes))
    out = np.full((p.mb, p.ic) + shape, fill, dtype=np.float64)
    out[(slice(None), slice(None)) + tuple(slice(ax.p, ax.p + ax.i) for ax in p.axes)] = x
    return out


def _axis_counts(o: int, i: int, k: int, s: int, p: int, include_pad: bool) -> np.ndarray:
    """Elements per window along one axis that an average divides by: the window clipped to
    the padded input ``[-p, i + p)`` (PyTorch's count_include_pad) or to the input itself."""
    start = np.arange(o) * s - p
    end = np.minimum(start + k, i + p)
    if not include_pad:
        start, end = np.maximum(start, 0), np.minimum(end, i)
    return (end - start).astype(np.float64)


def pool_divisors(p) -> np.ndarray:
    """The divisors of average pooling per output position, shape ``p.out_spatial`` (avg_p:
    padding counted; avg_np: not): the outer product of the per-axis counts."""
    inc = p.alg == "avg_p"
    out = np.ones(())
    for ax in p.axes:
        out = np.multiply.outer(out, _axis_counts(ax.o, ax.i, ax.k, ax.s, ax.p, inc))
    return out


def pool_reference(x: np.ndarray, p) -> tuple[np.ndarray, np.ndarray | None]:
    """Forward pooling of NC[D]HW ``x`` in float64, tap by tap: ``(y, argmax)``.

    Max follows PyTorch's CPU kernel exactly, non-finite inputs included: the window's taps
    inside the input are visited in row-major order from a running maximum of ``-inf`` at the
    first of them, and a tap replaces it when it is greater or NaN. So ties (and a window of
    ``-inf``) keep the first, a NaN propagates and the argmax points at the window's last NaN;
    padding never wins. The argmax is a flat index into the input plane (``ih*iw``, or
    ``id*ih*iw``). Averages divide by :func:`pool_divisors` (argmax is None); a NaN or
    ``inf - inf`` in a window propagates.
    """
    assert x.shape == p.input_shape, (x.shape, p)
    is_max = p.alg == "max"
    xp = _pool_padded(x, p, -np.inf if is_max else 0.0)
    y = np.full(p.output_shape, -np.inf if is_max else 0.0)
    arg = np.full(p.output_shape, -1, dtype=np.int64) if is_max else None
    nd = len(p.axes)
    starts = [np.arange(ax.o).reshape((-1,) + (1,) * (nd - 1 - n)) * ax.s - ax.p for n, ax in enumerate(p.axes)]
    for tap in _taps(p):
        win = xp[(slice(None), slice(None)) + _window(p, tap)]
        if is_max:
            pos = [st + t * (ax.d + 1) for st, t, ax in zip(starts, tap, p.axes)]
            inside = np.ones(p.out_spatial, dtype=bool)
            flat = np.zeros(p.out_spatial, dtype=np.int64)
            for q, ax in zip(pos, p.axes):
                inside &= (q >= 0) & (q < ax.i)
                flat = flat * ax.i + q
            better = inside & ((arg < 0) | (win > y) | np.isnan(win))
            y = np.where(better, win, y)
            arg = np.where(better, flat, arg)
        else:
            with np.errstate(invalid="ignore"):  # inf - inf in a window is NaN, as in PyTorch
                y += win
    if not is_max:
        y /= pool_divisors(p)
    return y, arg


def pool_backward_reference(dy: np.ndarray, x: np.ndarray, p) -> np.ndarray:
    """The input gradient of pooling in float64: max routes each output's gradient to its
    argmax (from :func:`pool_reference` on ``x``), averages spread it evenly over the real
    input elements of the window, divided as in the forward pass."""
    assert dy.shape == p.output_shape and x.shape == p.input_shape, (dy.shape, x.shape, p)
    d64 = dy.astype(np.float64)
    plane = int(np.prod(p.spatial))
    if p.alg == "max":
        _, arg = pool_reference(x, p)
        dx = np.zeros((p.mb * p.ic, plane))
        flat = arg.reshape(p.mb * p.ic, -1)
        np.add.at(dx, (np.arange(p.mb * p.ic)[:, None], flat), d64.reshape(p.mb * p.ic, -1))
        return dx.reshape(p.input_shape)
    share = d64 / pool_divisors(p)
    dxp = _pool_padded(np.zeros(p.input_shape), p, 0.0)
    for tap in _taps(p):
        dxp[(slice(None), slice(None)) + _window(p, tap)] += share
    return dxp[(slice(None), slice(None)) + tuple(slice(ax.p, ax.p + ax.i) for ax in p.axes)].copy()
