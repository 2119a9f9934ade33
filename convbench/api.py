"""The functional API: one call that validates, prepares and runs.

``conv2d``, ``conv_transpose2d`` and ``conv2d_weight`` have exactly the semantics of
``torch.nn.functional.conv2d``, ``conv_transpose2d`` and ``torch.nn.grad.conv2d_weight``
(NCHW input, weights ``(oc, ic/groups, kh, kw)`` for conv2d and ``(ic, oc/groups, kh, kw)``
for the transposed one, cross-correlation, int or pair arguments); ``max_pool2d`` and
``avg_pool2d`` those of ``torch.nn.functional``'s, and their ``*_backward`` those of ATen's
``max_pool2d_with_indices_backward`` / ``avg_pool2d_backward``, so results can be checked
against PyTorch one to one. For
repeated calls on one shape, use the backend's ``prepare``/``run`` directly: this
function redoes the one-off work (plans, transforms) every time.
"""

from __future__ import annotations

import numpy as np

from .backends import DEFAULTS, available_backends, backends_with_role, get_backend
from .backends.base import Unsupported
from .problem import ConvProblem, PoolProblem, int_tuple

__all__ = ["conv2d", "conv_transpose2d", "conv2d_weight", "max_pool2d", "avg_pool2d", "max_pool2d_backward",
           "avg_pool2d_backward", "FootprintError"]

#: footprints below this are not checked against the machine (every machine has that much)
_UNCHECKED_BYTES = 64 << 20


class FootprintError(MemoryError):
    """A call whose arrays would not fit in memory, refused from the shapes before anything is
    allocated (the limit is a sweep cell's: ``CONVBENCH_MEMORY_LIMIT``, else the memory
    available less a margin)."""


def _guard(nbytes: int, what: str) -> None:
    """:class:`FootprintError` naming the bytes and the limit when ``nbytes`` does not fit."""
    if nbytes <= _UNCHECKED_BYTES:
        return
    from .format import fmt_bytes
    from .runner import cell_memory_limit
    limit, src = cell_memory_limit()
    if nbytes > limit:
        hint = "" if "CONVBENCH_MEMORY_LIMIT" in src else "; CONVBENCH_MEMORY_LIMIT sets it"
        raise FootprintError(f"{what} needs {nbytes} bytes ({fmt_bytes(nbytes)}), over the memory limit of {limit} "
                             f"bytes ({fmt_bytes(limit)}; {src}{hint})")


def _contiguous(a: np.ndarray, what: str) -> np.ndarray:
    """``a`` C-contiguous; the copy that takes (a broadcast view, say) is checked first."""
    if not a.flags.c_contiguous:
        _guard(a.size * a.itemsize, f"a contiguous copy of {what} {a.shape}")
    return np.ascontiguousarray(a)


def _arrays(x, w):
    if not isinstance(x, np.ndarray) or not isinstance(w, np.ndarray):
        raise ValueError(f"input and weight must be numpy arrays, got {type(x).__name__} and {type(w).__name__}")
    if x.dtype != w.dtype:
        raise ValueError(f"input dtype {x.dtype} and weight dtype {w.dtype} differ; both must be float32 or float64")
    if x.dtype not in (np.float32, np.float64):
        raise ValueError(f"dtype {x.dtype} is not supported; accepted are float32 and float64")
    return _contiguous(x, "input"), _contiguous(w, "weight")


def _resolve(p, backend: str | None, candidates=None, inputs=None, const=None) -> str:
    """``backend`` (None: the registry's default for the problem's kind,
    :data:`convbench.backends.DEFAULTS`), or for ``"auto"`` the backend
    :mod:`convbench.select.auto` picks (in measure mode, by timing the candidates on
    ``inputs`` at a problem's first call)."""
    if backend is None:
        backend = DEFAULTS[p.kind]
    if backend != "auto":
        if candidates is not None:
            raise ValueError("candidates= is for backend='auto' only")
        return backend
    from .select import auto
    if candidates is not None:
        if isinstance(candidates, str) or not all(isinstance(c, str) for c in candidates):
            raise ValueError(f"candidates={candidates!r}: expected a list of backend names")
        for c in candidates:
            get_backend(c)  # unknown or unavailable: ValueError listing the accepted ones
        candidates = tuple(candidates)
    if auto.get_mode() == "measure" and inputs is not None:
        return auto.measure_choice(p, candidates, inputs, const)
    return auto.choose_for_problem(p, candidates)


def _checked_backend(p, backend: str, candidates=None, inputs=None, const=None):
    backend = _resolve(p, backend, candidates, inputs, const)
    b = get_backend(backend)
    if b.kind != p.kind:
        raise ValueError(f"backend={backend!r} runs {b.kind} problems, not {p.kind}; accepted: "
                         f"{', '.join(available_backends(p.kind))}")
    reason = b.supports(p)
    if reason is not None:
        raise Unsupported(f"{backend}: {reason}")
    from .runner import cell_bytes
    _guard(cell_bytes(p, b.estimate(p)), f"{backend} on {p.label} (output, workspace, weights)")
    return b


def _execute(p: ConvProblem, backend: str, x: np.ndarray, w: np.ndarray, candidates=None) -> np.ndarray:
    b = _checked_backend(p, backend, candidates, (x,), w)
    return b.run(b.prepare(p, w), x)


def _float_array(a, what: str) -> np.ndarray:
    if not isinstance(a, np.ndarray):
        raise ValueError(f"{what} must be a numpy array, got {type(a).__name__}")
    if a.dtype not in (np.float32, np.float64):
        raise ValueError(f"{what} dtype {a.dtype} is not supported; accepted are float32 and float64")
    if a.ndim != 4:
        raise ValueError(f"{what} shape {a.shape}: expected 4-D NCHW (mb, c, h, w)")
    return _contiguous(a, what)


def conv2d(x: np.ndarray, w: np.ndarray, *, stride=1, padding=0, dilation=1, groups=1,
           backend: str | None = None, candidates=None) -> np.ndarray:
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
    backend : str, optional
        Default ``convbench.backends.DEFAULTS["conv"]`` (im2col + GEMM). Any name from
        :func:`convbench.available_backends`, or ``"auto"``: the backend
        :func:`convbench.choose_backend` names (a fitted selector for this machine, else the
        built-in rules; ``convbench.select.auto.set_mode("measure")`` times the candidates on
        each problem's first call instead).
    candidates : list of str, optional
        With ``backend="auto"``: the backends to choose from (default convbench's own).

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
    return _execute(p, backend, x, w, candidates)


def conv_transpose2d(x: np.ndarray, w: np.ndarray, *, stride=1, padding=0, output_padding=0, dilation=1,
                     groups=1, backend: str | None = None, candidates=None) -> np.ndarray:
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

    sh, sw = int_tuple(stride, 2, "stride")
    ph, pw = int_tuple(padding, 2, "padding")
    oph, opw = int_tuple(output_padding, 2, "output_padding")
    dh, dw = int_tuple(dilation, 2, "dilation")
    if min(sh, sw, dh, dw) < 1 or min(ph, pw, oph, opw) < 0:
        raise ValueError("stride and dilation must be >= 1, padding and output_padding >= 0")
    if oph >= max(sh, dh) or opw >= max(sw, dw):
        raise ValueError(f"output_padding={output_padding!r} must be smaller than max(stride, dilation) "
                         f"= {(max(sh, dh), max(sw, dw))}")
    mb, cin, h, wd = x.shape
    if w.shape[0] != cin:
        raise ValueError(f"weight shape {w.shape}: first dimension must equal input channels {cin}")
    try:
        g = int_tuple(groups, 1, "groups")[0]
    except ValueError:
        g = -1
    if g < 1 or cin % g:
        raise ValueError(f"groups={groups!r}: must be a positive int dividing the input channels {cin}")
    groups = g
    cout = w.shape[1] * groups
    kh, kw = w.shape[2], w.shape[3]
    oh = (h - 1) * sh - 2 * ph + dh * (kh - 1) + oph + 1
    ow = (wd - 1) * sw - 2 * pw + dw * (kw - 1) + opw + 1
    if oh < 1 or ow < 1:
        raise ValueError(f"output size ({oh}, {ow}) is not positive for these arguments")
    # the forward problem whose adjoint this is: cout -> cin channels, output (h, wd)
    p = ConvProblem(mb=mb, ic=cout, ih=oh, iw=ow, oc=cin, kh=kh, kw=kw, sh=sh, sw=sw, ph=ph, pw=pw,
                    dh=dh - 1, dw=dw - 1, g=groups, oh=h, ow=wd, dtype=str(x.dtype), direction="bwd_d")
    return _execute(p, backend, x, w, candidates)


def conv2d_weight(x: np.ndarray, weight_shape, grad_output: np.ndarray, *, stride=1, padding=0, dilation=1,
                  groups=1, backend: str | None = None, candidates=None) -> np.ndarray:
    """The weight gradient of :func:`conv2d`, with ``torch.nn.grad.conv2d_weight``'s semantics:
    ``dW = correlate(x, dY)``, summed over the batch and the output pixels.

    Parameters
    ----------
    x : ndarray, shape (mb, ic, ih, iw)
        The forward input, float32 or float64.
    weight_shape : (oc, ic/groups, kh, kw)
    grad_output : ndarray, shape (mb, oc, oh, ow)
        The gradient of the forward output, same dtype as ``x``.
    stride, padding, dilation, groups
        The forward convolution's, as in :func:`conv2d`.
    backend : str
        Any name from :func:`convbench.available_backends` whose capabilities include
        ``backward_weights``, or ``"auto"`` (see :func:`conv2d`).
    candidates : list of str, optional
        With ``backend="auto"``: the backends to choose from.

    Returns
    -------
    ndarray, shape ``weight_shape``, dtype of ``x``

    Raises
    ------
    ValueError
        ``weight_shape`` inconsistent with ``x`` and ``groups``, a ``grad_output`` whose shape is
        not the forward output's, bad dtypes or arguments.
    convbench.Unsupported
        The backend does not implement the weight gradient for this problem (the reason).

    Examples
    --------
    >>> import numpy as np, convbench
    >>> x = np.ones((2, 1, 4, 4), np.float32); dy = np.ones((2, 1, 2, 2), np.float32)
    >>> convbench.conv2d_weight(x, (1, 1, 3, 3), dy)[0, 0, 0, 0]
    8.0
    """
    x = _float_array(x, "input")
    grad_output = _float_array(grad_output, "grad_output")
    if grad_output.dtype != x.dtype:
        raise ValueError(f"input dtype {x.dtype} and grad_output dtype {grad_output.dtype} differ; both must be "
                         f"float32 or float64")
    try:
        weight_shape = tuple(int(v) for v in weight_shape)
    except (TypeError, ValueError):
        raise ValueError(f"weight_shape={weight_shape!r}: expected (oc, ic/groups, kh, kw)") from None
    if len(weight_shape) != 4 or min(weight_shape) < 1:
        raise ValueError(f"weight_shape={weight_shape!r}: expected four positive ints (oc, ic/groups, kh, kw)")
    if isinstance(groups, (int, np.integer)) and not isinstance(groups, bool) and groups >= 1 \
            and weight_shape[0] % groups:
        raise ValueError(f"weight_shape {weight_shape}: oc={weight_shape[0]} is not divisible by groups={groups}")
    p = ConvProblem.from_torch_args(x.shape, weight_shape, stride=stride, padding=padding, dilation=dilation,
                                    groups=groups, dtype=str(x.dtype)).replace(direction="bwd_w")
    if grad_output.shape != p.output_shape:
        raise ValueError(f"grad_output shape {grad_output.shape} does not match the forward output "
                         f"{p.output_shape} (mb, oc, oh, ow) of this input, weight_shape and arguments")
    b = _checked_backend(p, backend, candidates, (x, grad_output), None)
    return b.run(b.prepare(p, None), x, grad_output)


def _pool_problem(x_shape, kernel_size, stride, padding, dilation, ceil_mode, alg, dtype, direction):
    return PoolProblem.from_torch_args(x_shape, kernel_size, stride, padding, dilation, ceil_mode, alg=alg,
                                       dtype=dtype, direction=direction)


def max_pool2d(x: np.ndarray, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,
               return_indices=False, *, backend: str | None = None, candidates=None):
    """2-D max pooling with ``torch.nn.functional.max_pool2d``'s semantics.

    Parameters
    ----------
    x : ndarray, shape (mb, c, ih, iw)
        float32 or float64.
    kernel_size, stride, padding, dilation : int or (int, int)
        ``stride=None`` is the kernel size; padding at most half the kernel (PyTorch's rule);
        padded positions never win.
    ceil_mode : bool
        Round the output size up; a last window must start inside the input or its top/left
        padding.
    return_indices : bool
        Also return the argmax of every window as flat int64 offsets into ``ih*iw`` (the first
        maximum in row-major window order, PyTorch's rule), for :func:`max_pool2d_backward`.
    backend : str, optional
        Default ``convbench.backends.DEFAULTS["pool"]`` (the compiled loops). Any name from
        ``convbench.available_backends("pool")``, or ``"auto"`` (the built-in
        rules: pool_numba).
    candidates : list of str, optional
        With ``backend="auto"``: the pooling backends to choose from.

    Returns
    -------
    ndarray, shape (mb, c, oh, ow), or ``(output, indices)`` with ``return_indices``

    Raises
    ------
    ValueError
        A window larger than the padded input, padding over half the window, bad arguments.
    convbench.Unsupported
        The backend's capabilities exclude this problem.

    Examples
    --------
    >>> import numpy as np, convbench
    >>> x = np.arange(16, dtype=np.float32).reshape(1, 1, 4, 4)
    >>> convbench.max_pool2d(x, 2)[0, 0]
    array([[ 5.,  7.],
           [13., 15.]], dtype=float32)
    """
    x = _float_array(x, "input")
    p = _pool_problem(x.shape, kernel_size, stride, padding, dilation, ceil_mode, "max", str(x.dtype), "fwd")
    if backend == "auto" and return_indices and candidates is None:
        candidates = [n for n in backends_with_role("own", "pool") if hasattr(get_backend(n), "argmax")]
    b = _checked_backend(p, backend, candidates, (x,), None)
    if return_indices and not hasattr(b, "argmax"):
        keep = [n for n in available_backends("pool") if hasattr(get_backend(n), "argmax")]
        raise Unsupported(f"{backend}: return_indices needs the argmax of every window, which this backend "
                          f"does not compute; accepted: {', '.join(keep)}")
    y = b.run(b.prepare(p, None), x)
    if return_indices:
        return y, np.asarray(b.argmax(p, x), dtype=np.int64)
    return y


def avg_pool2d(x: np.ndarray, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True, *,
               backend: str | None = None, candidates=None) -> np.ndarray:
    """2-D average pooling with ``torch.nn.functional.avg_pool2d``'s semantics.

    ``count_include_pad=True`` is benchdnn's ``avg_p`` (the divisor is the window clipped to
    the padded input), ``False`` its ``avg_np`` (the window clipped to the input). Other
    parameters, returns and errors as :func:`max_pool2d` (no dilation, as in PyTorch).
    """
    x = _float_array(x, "input")
    if not isinstance(count_include_pad, bool):
        raise ValueError(f"count_include_pad={count_include_pad!r}: expected True or False")
    alg = "avg_p" if count_include_pad else "avg_np"
    p = _pool_problem(x.shape, kernel_size, stride, padding, 1, ceil_mode, alg, str(x.dtype), "fwd")
    b = _checked_backend(p, backend, candidates, (x,), None)
    return b.run(b.prepare(p, None), x)


def _grad_output(grad_output, p: PoolProblem, dtype) -> np.ndarray:
    g = _float_array(grad_output, "grad_output")
    if g.dtype != dtype:
        raise ValueError(f"grad_output dtype {g.dtype} and input dtype {dtype} differ")
    if g.shape != p.output_shape:
        raise ValueError(f"grad_output shape {g.shape} does not match the pooling output {p.output_shape} "
                         f"(mb, c, oh, ow) of this input and these arguments")
    return g


def max_pool2d_backward(grad_output: np.ndarray, x: np.ndarray, kernel_size, stride=None, padding=0, dilation=1,
                        ceil_mode=False, indices: np.ndarray | None = None, *,
                        backend: str | None = None, candidates=None) -> np.ndarray:
    """The input gradient of :func:`max_pool2d` (ATen's ``max_pool2d_with_indices_backward``):
    every output's gradient goes to its window's first maximum, and overlapping windows add.

    Parameters
    ----------
    grad_output : ndarray, shape (mb, c, oh, ow)
    x : ndarray, shape (mb, c, ih, iw)
        The forward input.
    kernel_size, stride, padding, dilation, ceil_mode
        The forward call's.
    indices : ndarray of int, shape (mb, c, oh, ow), optional
        The argmax ``max_pool2d(..., return_indices=True)`` returned; computed from ``x`` by
        the backend when omitted (its bytes are the plan's workspace either way).
    backend : str

    Returns
    -------
    ndarray, shape of ``x``
    """
    x = _float_array(x, "input")
    p = _pool_problem(x.shape, kernel_size, stride, padding, dilation, ceil_mode, "max", str(x.dtype), "bwd_d")
    g = _grad_output(grad_output, p, x.dtype)
    if indices is not None:
        if not isinstance(indices, np.ndarray) or indices.shape != p.output_shape or indices.dtype.kind not in "iu":
            raise ValueError(f"indices: expected an integer array of shape {p.output_shape} (max_pool2d's "
                             f"return_indices), got {getattr(indices, 'dtype', type(indices).__name__)} "
                             f"{getattr(indices, 'shape', '')}")
        if indices.size and (indices.min() < 0 or indices.max() >= p.ih * p.iw):
            raise ValueError(f"indices: flat offsets must lie in [0, ih*iw) = [0, {p.ih * p.iw})")
    b = _checked_backend(p, backend, candidates, (g,), x)
    return b.run(b.prepare(p, x, indices=indices), g)


def avg_pool2d_backward(grad_output: np.ndarray, input_shape, kernel_size, stride=None, padding=0, ceil_mode=False,
                        count_include_pad=True, *, backend: str | None = None, candidates=None) -> np.ndarray:
    """The input gradient of :func:`avg_pool2d` (ATen's ``avg_pool2d_backward``): every output's
    gradient, divided by its window's divisor, spread over the window.

    ``input_shape`` is the forward input's shape (or the input itself); the rest as
    :func:`avg_pool2d`. The gradient has the dtype of ``grad_output``.
    """
    if isinstance(input_shape, np.ndarray):
        input_shape = input_shape.shape
    dtype = getattr(grad_output, "dtype", None)
    g0 = _float_array(grad_output, "grad_output")
    if not isinstance(count_include_pad, bool):
        raise ValueError(f"count_include_pad={count_include_pad!r}: expected True or False")
    alg = "avg_p" if count_include_pad else "avg_np"
    p = _pool_problem(tuple(input_shape), kernel_size, stride, padding, 1, ceil_mode, alg, str(dtype), "bwd_d")
    g = _grad_output(g0, p, dtype)
    b = _checked_backend(p, backend, candidates, (g,), None)
    return b.run(b.prepare(p, None), g)
