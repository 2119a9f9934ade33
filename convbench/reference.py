"""The float64 oracle every backend is checked against. Naive on purpose, never timed.

The definition is written out tap by tap so it can be read against the textbook
formula (cross-correlation, as PyTorch and oneDNN define "convolution")::

    y[n, o, i, j] = sum_{c, r, s} w[o, c, r, s] * x_pad[n, g(o)*icg + c,
                                                   i*sh + r*(dh+1), j*sw + s*(dw+1)]

The only concession to speed is that, for one tap ``(r, s)``, the sum over input
channels of one group is a single matrix product in float64; there is no transform,
no unfolding and no reordering of the tap loop, so it shares no code path with the
backends it judges. Its own correctness is pinned in ``tests/test_reference.py``
against a pure-Python loop on tiny problems and, when installed, against PyTorch.
"""

from __future__ import annotations

import numpy as np

from .problem import ConvProblem

__all__ = ["conv2d_reference", "pad_input", "conv_transpose2d_reference", "conv2d_weight_reference", "pool_reference",
           "pool_backward_reference", "pool_divisors"]


def pad_input(x: np.ndarray, p: ConvProblem, dtype=None) -> np.ndarray:
    """Zero-padded copy of ``x`` holding exactly the rows/columns the convolution reads.

    Shape ``(mb, ic, p.hp, p.wp)``: top/left padding ``ph``/``pw``; the bottom/right
    edge is padded or cropped to match ``oh``/``ow`` (see :class:`ConvProblem`).
    """
    out = np.zeros((x.shape[0], x.shape[1], p.hp, p.wp), dtype=dtype or x.dtype)
    h, w = p.read_h, p.read_w
    out[:, :, p.ph:p.ph + h, p.pw:p.pw + w] = x[:, :, :h, :w]
    return out


def conv2d_reference(x: np.ndarray, w: np.ndarray, p: ConvProblem) -> np.ndarray:
    """Forward convolution of ``x`` (NCHW) with ``w`` (OIHW) in float64.

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
    icg, ocg = p.icg, p.ocg
    for gi in range(p.g):
        xg = xp[:, gi * icg:(gi + 1) * icg]
        wg = w64[gi * ocg:(gi + 1) * ocg]
        acc = np.zeros((p.mb, ocg, p.oh * p.ow), dtype=np.float64)
        for r in range(p.kh):
            for s in range(p.kw):
                i0 = r * p.dil_h
                j0 = s * p.dil_w
                window = xg[:, :, i0:i0 + (p.oh - 1) * p.sh + 1:p.sh, j0:j0 + (p.ow - 1) * p.sw + 1:p.sw]
                # (ocg, icg) @ (mb, icg, oh*ow) -> (mb, ocg, oh*ow): the tap's channel sum
                acc += np.matmul(wg[:, :, r, s], window.reshape(p.mb, icg, p.oh * p.ow))
        y[:, gi * ocg:(gi + 1) * ocg] = acc.reshape(p.mb, ocg, p.oh, p.ow)
    return y


def conv_transpose2d_reference(x: np.ndarray, w: np.ndarray, p: ConvProblem) -> np.ndarray:
    """Transposed convolution: the adjoint of :func:`conv2d_reference` for problem ``p``.

    ``x`` has the forward problem's *output* shape ``(mb, oc, oh, ow)`` and the result
    its *input* shape ``(mb, ic, ih, iw)``; ``w`` is the forward weight ``(oc, ic/g, kh, kw)``.
    Each tap scatters ``w^T x`` into the padded input grid, then the padding is cut off.
    """
    assert x.shape == p.output_shape and w.shape == p.weight_shape, (x.shape, w.shape, p)
    x64 = x.astype(np.float64)
    w64 = w.astype(np.float64)
    yp = np.zeros((p.mb, p.ic, p.hp, p.wp), dtype=np.float64)
    icg, ocg = p.icg, p.ocg
    for gi in range(p.g):
        xg = x64[:, gi * ocg:(gi + 1) * ocg]
        wg = w64[gi * ocg:(gi + 1) * ocg]
        yg = yp[:, gi * icg:(gi + 1) * icg]
        for r in range(p.kh):
            for s in range(p.kw):
                i0 = r * p.dil_h
                j0 = s * p.dil_w
                # (icg, ocg) x (mb, ocg, oh, ow) -> (icg, mb, oh, ow)
                contrib = np.tensordot(wg[:, :, r, s].T, xg, axes=([1], [1])).transpose(1, 0, 2, 3)
                yg[:, :, i0:i0 + (p.oh - 1) * p.sh + 1:p.sh, j0:j0 + (p.ow - 1) * p.sw + 1:p.sw] += contrib
    y = np.zeros(p.input_shape, dtype=np.float64)
    h, wd = p.read_h, p.read_w
    y[:, :, :h, :wd] = yp[:, :, p.ph:p.ph + h, p.pw:p.pw + wd]
    return y


def conv2d_weight_reference(x: np.ndarray, dy: np.ndarray, p: ConvProblem) -> np.ndarray:
    """The weight gradient ``dW = correlate(x, dY)`` of forward problem ``p`` in float64
    (``torch.nn.grad.conv2d_weight``): for each tap ``(r, s)``,
    ``dW[o, c, r, s] = sum_{n, i, j} dY[n, o, i, j] * x_pad[n, g(o)*icg + c, i*sh + r*dil, j*sw + s*dil]``,
    the channel sum of one group a single matrix product over ``(n, i, j)``.
    """
    assert x.shape == p.input_shape and dy.shape == p.output_shape, (x.shape, dy.shape, p)
    xp = pad_input(x, p, dtype=np.float64)
    d64 = dy.astype(np.float64)
    dw = np.zeros(p.weight_shape, dtype=np.float64)
    icg, ocg, P = p.icg, p.ocg, p.oh * p.ow
    for gi in range(p.g):
        xg = xp[:, gi * icg:(gi + 1) * icg]
        dg = d64[:, gi * ocg:(gi + 1) * ocg].transpose(1, 0, 2, 3).reshape(ocg, p.mb * P)
        for r in range(p.kh):
            for s in range(p.kw):
                i0, j0 = r * p.dil_h, s * p.dil_w
                window = xg[:, :, i0:i0 + (p.oh - 1) * p.sh + 1:p.sh, j0:j0 + (p.ow - 1) * p.sw + 1:p.sw]
                # (ocg, mb*oh*ow) @ (mb*oh*ow, icg) -> (ocg, icg)
                dw[gi * ocg:(gi + 1) * ocg, :, r, s] = dg @ window.transpose(0, 2, 3, 1).reshape(p.mb * P, icg)
    return dw


def _pool_padded(x: np.ndarray, p, fill: float) -> np.ndarray:
    """``x`` in float64 inside a border of ``fill``, large enough for every window (ceil mode
    may run a window past the bottom/right padding)."""
    H, W = max(p.hp, p.ph + p.ih), max(p.wp, p.pw + p.iw)
    out = np.full((p.mb, p.ic, H, W), fill, dtype=np.float64)
    out[:, :, p.ph:p.ph + p.ih, p.pw:p.pw + p.iw] = x
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
    """``(oh, ow)`` divisors of average pooling (avg_p: padding counted; avg_np: not)."""
    inc = p.alg == "avg_p"
    return np.outer(_axis_counts(p.oh, p.ih, p.kh, p.sh, p.ph, inc), _axis_counts(p.ow, p.iw, p.kw, p.sw, p.pw, inc))


def pool_reference(x: np.ndarray, p) -> tuple[np.ndarray, np.ndarray | None]:
    """Forward pooling of NCHW ``x`` in float64, tap by tap: ``(y, argmax)``.

    Max follows PyTorch's CPU kernel exactly, non-finite inputs included: the window's taps
    inside the input are visited in row-major order from a running maximum of ``-inf`` at the
    first of them, and a tap replaces it when it is greater or NaN. So ties (and a window of
    ``-inf``) keep the first, a NaN propagates and the argmax points at the window's last NaN;
    padding never wins. The argmax is a flat index into ``ih*iw``. Averages divide by
    :func:`pool_divisors` (argmax is None); a NaN or ``inf - inf`` in a window propagates.
    """
    assert x.shape == p.input_shape, (x.shape, p)
    is_max = p.alg == "max"
    xp = _pool_padded(x, p, -np.inf if is_max else 0.0)
    y = np.full(p.output_shape, -np.inf if is_max else 0.0)
    arg = np.full(p.output_shape, -1, dtype=np.int64) if is_max else None
    rows = np.arange(p.oh)[:, None] * p.sh - p.ph
    cols = np.arange(p.ow)[None, :] * p.sw - p.pw
    for r in range(p.kh):
        for s in range(p.kw):
            i0, j0 = r * (p.dh + 1), s * (p.dw + 1)
            win = xp[:, :, i0:i0 + (p.oh - 1) * p.sh + 1:p.sh, j0:j0 + (p.ow - 1) * p.sw + 1:p.sw]
            if is_max:
                ri, ci = rows + i0, cols + j0
                inside = (ri >= 0) & (ri < p.ih) & (ci >= 0) & (ci < p.iw)
                better = inside & ((arg < 0) | (win > y) | np.isnan(win))
                y = np.where(better, win, y)
                arg = np.where(better, ri * p.iw + ci, arg)
            else:
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
    if p.alg == "max":
        _, arg = pool_reference(x, p)
        dx = np.zeros((p.mb * p.ic, p.ih * p.iw))
        flat = arg.reshape(p.mb * p.ic, -1)
        np.add.at(dx, (np.arange(p.mb * p.ic)[:, None], flat), d64.reshape(p.mb * p.ic, -1))
        return dx.reshape(p.input_shape)
    share = d64 / pool_divisors(p)
    dxp = _pool_padded(np.zeros(p.input_shape), p, 0.0)
    for r in range(p.kh):
        for s in range(p.kw):
            dxp[:, :, r:r + (p.oh - 1) * p.sh + 1:p.sh, s:s + (p.ow - 1) * p.sw + 1:p.sw] += share
    return dxp[:, :, p.ph:p.ph + p.ih, p.pw:p.pw + p.iw].copy()
