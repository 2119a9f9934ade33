"""``convbench.conv2d`` / ``conv_transpose2d``: one call that validates, prepares and runs.

Semantics are exactly those of ``torch.nn.functional.conv2d`` and
``conv_transpose2d`` (NCHW input, weights ``(oc, ic/groups, kh, kw)`` for conv2d
and ``(ic, oc/groups, kh, kw)`` for the transposed one, cross-correlation, int or
pair arguments), so results can be checked against PyTorch one to one. For
repeated calls on one shape, use the backend's ``prepare``/``run`` directly: this
function redoes the one-off work (plans, transforms) every time.
"""

from __future__ import annotations

import numpy as np

from .backends import get_backend
from .backends.base import Unsupported
from .problem import ConvProblem

__all__ = ["conv2d", "conv_transpose2d"]


def _arrays(x, w):
    if not isinstance(x, np.ndarray) or not isinstance(w, np.ndarray):
        raise ValueError(f"input and weight must be numpy arrays, got {type(x).__name__} and {type(w).__name__}")
    if x.dtype != w.dtype:
        raise ValueError(f"input dtype {x.dtype} and weight dtype {w.dtype} differ; both must be float32 or float64")
    if x.dtype not in (np.float32, np.float64):
        raise ValueError(f"dtype {x.dtype} is not supported; accepted are float32 and float64")
    return np.ascontiguousarray(x), np.ascontiguousarray(w)


def _execute(p: ConvProblem, backend: str, x: np.ndarray, w: np.ndarray) -> np.ndarray:
    b = get_backend(backend)
    reason = b.supports(p)
    if reason is not None:
        raise Unsupported(f"{backend}: {reason}")
    return b.run(b.prepare(p, w), x)


def conv2d(x: np.ndarray, w: np.ndarray, *, stride=1, padding=0, dilation=1, groups=1,
           backend: str = "im2col_blas") -> np.ndarray:
    """2-D convolution (cross-correlation) with PyTorch's semantics.

    Parameters
    ----------
    x : ndarray, shape (mb, ic, ih, iw)
        Input, float32 or float64.
    w : ndarray, shape (oc, ic/groups, kh, kw)
        Weights, same dtype as ``x``.
    stride, dilation : int or (int, int)
        As in ``torch.nn.functional.conv2d`` (dilation 1 = dense kernel).
    padding : int, (int, int), 'valid' or 'same'
        As in ``torch.nn.functional.conv2d``: ``'same'`` keeps the input size (stride 1 only;
        an even kernel's extra padding pixel goes to the bottom/right).
    groups : int
    backend : str
        Any name from :func:`convbench.available_backends`.

    Returns
    -------
    ndarray, shape (mb, oc, oh, ow), dtype of ``x``

    Raises
    ------
    ValueError
        Bad shapes, dtypes or arguments; unknown backend (the message lists the available ones).
    convbench.Unsupported
        The backend's declared capabilities exclude this problem; the message is the reason.

    Notes
    -----
    Non-finite inputs follow each algorithm's arithmetic, not one convention: a direct or GEMM
    backend returns ``inf`` where an infinite weight meets a finite input (as PyTorch does),
    while the FFT backends return ``nan`` in every output the transform spreads it to (an
    infinite spectrum makes ``inf - inf``), and Winograd's transforms mix ``inf`` with its
    opposite too. The benchmark itself only uses finite integer-valued data.

    Examples
    --------
    >>> import numpy as np, convbench
    >>> x = np.ones((1, 1, 4, 4), np.float32); w = np.ones((1, 1, 3, 3), np.float32)
    >>> convbench.conv2d(x, w, padding=1)[0, 0, 0, 0]
    4.0
    """
    x, w = _arrays(x, w)
    p = ConvProblem.from_torch_args(x.shape, w.shape, stride=stride, padding=padding, dilation=dilation,
                                    groups=groups, dtype=str(x.dtype))
    return _execute(p, backend, x, w)


def conv_transpose2d(x: np.ndarray, w: np.ndarray, *, stride=1, padding=0, output_padding=0, dilation=1,
                     groups=1, backend: str = "im2col_blas") -> np.ndarray:
    """Transposed 2-D convolution with PyTorch's semantics (``conv_transpose2d``).

    Parameters
    ----------
    x : ndarray, shape (mb, cin, h, w)
    w : ndarray, shape (cin, cout/groups, kh, kw)
    stride, padding, output_padding, dilation : int or (int, int)
        As in ``torch.nn.functional.conv_transpose2d``; ``output_padding`` must be
        smaller than ``max(stride, dilation)`` per axis.
    groups : int
    backend : str

    Returns
    -------
    ndarray, shape (mb, cout, (h-1)*s - 2*p + d*(k-1) + output_padding + 1, ...)
    """
    x, w = _arrays(x, w)
    if x.ndim != 4 or w.ndim != 4:
        raise ValueError(f"input {x.shape} and weight {w.shape} must both be 4-D")

    def pair(v, what):
        if isinstance(v, (int, np.integer)) and not isinstance(v, bool):
            return int(v), int(v)
        try:
            a, b = v
            return int(a), int(b)
        except (TypeError, ValueError):
            raise ValueError(f"{what}={v!r}: expected an int or a pair of ints") from None

    sh, sw = pair(stride, "stride")
    ph, pw = pair(padding, "padding")
    oph, opw = pair(output_padding, "output_padding")
    dh, dw = pair(dilation, "dilation")
    if min(sh, sw, dh, dw) < 1 or min(ph, pw, oph, opw) < 0:
        raise ValueError("stride and dilation must be >= 1, padding and output_padding >= 0")
    if oph >= max(sh, dh) or opw >= max(sw, dw):
        raise ValueError(f"output_padding={output_padding!r} must be smaller than max(stride, dilation) "
                         f"= {(max(sh, dh), max(sw, dw))}")
    mb, cin, h, wd = x.shape
    if w.shape[0] != cin:
        raise ValueError(f"weight shape {w.shape}: first dimension must equal input channels {cin}")
    if isinstance(groups, bool) or not isinstance(groups, int) or groups < 1 or cin % groups:
        raise ValueError(f"groups={groups!r}: must be a positive int dividing the input channels {cin}")
    cout = w.shape[1] * groups
    kh, kw = w.shape[2], w.shape[3]
    oh = (h - 1) * sh - 2 * ph + dh * (kh - 1) + oph + 1
    ow = (wd - 1) * sw - 2 * pw + dw * (kw - 1) + opw + 1
    if oh < 1 or ow < 1:
        raise ValueError(f"output size ({oh}, {ow}) is not positive for these arguments")
    # the forward problem whose adjoint this is: cout -> cin channels, output (h, wd)
    p = ConvProblem(mb=mb, ic=cout, ih=oh, iw=ow, oc=cin, kh=kh, kw=kw, sh=sh, sw=sw, ph=ph, pw=pw,
                    dh=dh - 1, dw=dw - 1, g=groups, oh=h, ow=wd, dtype=str(x.dtype), transposed=True)
    return _execute(p, backend, x, w)
