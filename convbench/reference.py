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

__all__ = ["conv2d_reference", "pad_input", "conv_transpose2d_reference"]


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
