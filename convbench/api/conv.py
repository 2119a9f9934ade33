"""``conv1d/2d/3d``, ``conv_transpose1d/2d/3d`` and ``conv1d/2d/3d_weight`` with the semantics
of ``torch.nn.functional.conv{N}d``, ``conv_transpose{N}d`` and ``torch.nn.grad.conv{N}d_weight``:
cross-correlation, NC[D][H]W input (or unbatched C[D][H]W), weights ``(oc, ic/groups, *kernel)``
(``(ic, oc/groups, *kernel)`` for the transposed one), an int or one value per axis for every
per-axis argument, ``padding='same'/'valid'``, ``bias=``, arguments positional or by keyword in
PyTorch's order."""

from __future__ import annotations

import numpy as np

from ..problem import ConvProblem, int_tuple, own_axes
from .common import batched, checked_backend, contiguous, float_array, layout, native, same_dtype

__all__ = ["conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d", "conv_transpose3d",
           "conv1d_weight", "conv2d_weight", "conv3d_weight"]


#: how a rank's kernel axes are named in messages
KERNEL_TEXT = {1: "kw", 2: "kh, kw", 3: "kd, kh, kw"}


def _weight(w, rank: int, fn: str, form: str = "oc, ic/groups") -> np.ndarray:
    if w.ndim != rank + 2:
        raise ValueError(f"{fn}: weight shape {w.shape} is {w.ndim}-D; a {rank}-D convolution takes "
                         f"{rank + 2}-D ({form}, {KERNEL_TEXT[rank]})")
    return contiguous(w, "weight")


def _bias(bias, channels: int, dtype) -> np.ndarray | None:
    if bias is None:
        return None
    b = float_array(bias, "bias")
    if b.shape != (channels,):
        raise ValueError(f"bias shape {b.shape}: expected ({channels},), one value per output channel")
    if b.dtype != dtype:
        raise ValueError(f"bias dtype {b.dtype} and input dtype {dtype} differ")
    return b


def _finish(y: np.ndarray, rank: int, unbatched: bool, bias: np.ndarray | None) -> np.ndarray:
    y = native(y, rank, unbatched)
    if bias is not None:  # y is the backend's fresh array: add in place
        y += bias.reshape((-1,) + (1,) * rank)
    return y


def _arrays(x, w, fn: str):
    if not isinstance(x, np.ndarray) or not isinstance(w, np.ndarray):
        raise ValueError(f"input and weight must be numpy arrays, got {type(x).__name__} and {type(w).__name__}")
    same_dtype(x, w, "input", "weight")
    return float_array(x, "input"), w


def _conv(rank: int, x, w, bias, stride, padding, dilation, groups, backend, candidates):
    fn = f"conv{rank}d"
    x, w = _arrays(x, w, fn)
    xb, unbatched = batched(x, rank, fn)
    w = _weight(w, rank, fn)
    p = ConvProblem.from_torch_args(xb.shape, w.shape, stride=stride, padding=padding, dilation=dilation,
                                    groups=groups, dtype=str(x.dtype))
    b_ = _bias(bias, p.oc, x.dtype)
    xl, wl = layout(xb, rank), layout(w, rank)
    b = checked_backend(p, backend, candidates, (xl,), wl)
    return _finish(b.run(b.prepare(p, wl), xl), rank, unbatched, b_)


def _conv_transpose(rank: int, x, w, bias, stride, padding, output_padding, groups, dilation, backend, candidates):
    fn = f"conv_transpose{rank}d"
    x, w = _arrays(x, w, fn)
    xb, unbatched = batched(x, rank, fn)
    w = _weight(w, rank, fn, "ic, oc/groups")
    s = int_tuple(stride, rank, "stride")
    pad = int_tuple(padding, rank, "padding")
    op = int_tuple(output_padding, rank, "output_padding")
    dil = int_tuple(dilation, rank, "dilation")
    if min(s + dil) < 1 or min(pad + op) < 0:
        raise ValueError("stride and dilation must be >= 1, padding and output_padding >= 0")
    if any(o >= max(a, d) for o, a, d in zip(op, s, dil)):
        raise ValueError(f"output_padding={output_padding!r} must be smaller than max(stride, dilation) "
                         f"= {tuple(max(a, d) for a, d in zip(s, dil))}")
    mb, cin, *size = xb.shape
    if w.shape[0] != cin:
        raise ValueError(f"weight shape {w.shape}: first dimension must equal input channels {cin}")
    try:
        g = int_tuple(groups, 1, "groups")[0]
    except ValueError:
        g = -1
    if g < 1 or cin % g:
        raise ValueError(f"groups={groups!r}: must be a positive int dividing the input channels {cin}")
    k = w.shape[2:]
    out = tuple((i - 1) * a - 2 * q + d * (kk - 1) + o + 1 for i, a, q, d, kk, o in zip(size, s, pad, dil, k, op))
    if min(out) < 1:
        raise ValueError(f"output size {out} is not positive for these arguments")
    # the forward problem whose adjoint this is: cout -> cin channels, output = this input's size
    fields = {}
    for a, o_, i_, kk, st, q, d in zip(own_axes(rank), out, size, k, s, pad, dil):
        fields.update({"i" + a: o_, "o" + a: i_, "k" + a: kk, "s" + a: st, "p" + a: q, "d" + a: d - 1})
    p = ConvProblem(mb=mb, ic=w.shape[1] * g, oc=cin, g=g, rank=rank, dtype=str(x.dtype), direction="bwd_d",
                    **fields)
    b_ = _bias(bias, p.ic, x.dtype)
    xl, wl = layout(xb, rank), layout(w, rank)
    b = checked_backend(p, backend, candidates, (xl,), wl)
    return _finish(b.run(b.prepare(p, wl), xl), rank, unbatched, b_)


def _conv_weight(rank: int, x, weight_shape, grad_output, stride, padding, dilation, groups, backend, candidates):
    fn = f"conv{rank}d_weight"
    x = float_array(x, "input")
    grad_output = float_array(grad_output, "grad_output")
    same_dtype(x, grad_output, "input", "grad_output")
    x, _ = batched(x, rank, fn, unbatched=False)
    grad_output, _ = batched(grad_output, rank, fn, "grad_output", unbatched=False)
    form = f"(oc, ic/groups, {KERNEL_TEXT[rank]})"
    try:
        weight_shape = tuple(int(v) for v in weight_shape)
    except (TypeError, ValueError):
        raise ValueError(f"weight_shape={weight_shape!r}: expected {form}") from None
    if len(weight_shape) != rank + 2 or min(weight_shape) < 1:
        raise ValueError(f"weight_shape={weight_shape!r}: expected {rank + 2} positive ints {form}")
    if isinstance(groups, (int, np.integer)) and not isinstance(groups, bool) and groups >= 1 \
            and weight_shape[0] % groups:
        raise ValueError(f"weight_shape {weight_shape}: oc={weight_shape[0]} is not divisible by groups={groups}")
    p = ConvProblem.from_torch_args(x.shape, weight_shape, stride=stride, padding=padding, dilation=dilation,
                                    groups=groups, dtype=str(x.dtype)).replace(direction="bwd_w")
    want = native(np.empty(p.output_shape, dtype=np.int8), rank).shape
    if grad_output.shape != want:
        raise ValueError(f"grad_output shape {grad_output.shape} does not match the forward output {want} of this "
                         f"input, weight_shape and arguments")
    xl, gl = layout(x, rank), layout(grad_output, rank)
    b = checked_backend(p, backend, candidates, (xl, gl), None)
    return b.run(b.prepare(p, None), xl, gl).reshape(weight_shape)


_SHAPES = {1: ("(N, C_in, L)", "(C_out, C_in/groups, kW)", "(N, C_out, L_out)"),
           2: ("(N, C_in, H, W)", "(C_out, C_in/groups, kH, kW)", "(N, C_out, H_out, W_out)"),
           3: ("(N, C_in, D, H, W)", "(C_out, C_in/groups, kD, kH, kW)", "(N, C_out, D_out, H_out, W_out)")}

_CONV_DOC = """{n}-D convolution (cross-correlation) with ``torch.nn.functional.conv{n}d``'s semantics.

Parameters
----------
x : ndarray, shape {xs}, or unbatched without N
    Input, float32 or float64.
w : ndarray, shape {ws}
    Weights, same dtype as ``x``.
bias : ndarray, shape (C_out,), optional
    Added to every output position of its channel.
stride, dilation : int or {n} ints
    As in PyTorch (dilation 1 = dense kernel).
padding : int, {n} ints, 'valid' or 'same'
    ``'same'`` keeps the input size (stride 1 only; an odd total padding puts the extra
    element at the end of its axis, as PyTorch pads).
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
ndarray, shape {ys} (no N when ``x`` had none), dtype of ``x``

Raises
------
ValueError
    Bad shapes (a weight or input of another rank, a kernel larger than the padded input on
    any axis), dtypes or arguments; unknown backend (the message lists the available ones).
convbench.Unsupported
    The backend's declared capabilities exclude this problem; the message is the reason.
convbench.FootprintError
    The arrays and the backend's workspace would not fit in memory (checked from the shapes).

Notes
-----
Non-finite inputs follow each algorithm's arithmetic, not one convention: a direct or GEMM
backend returns ``inf`` where an infinite weight meets a finite input (as PyTorch does),
while the FFT backends return ``nan`` in every output the transform spreads it to (an
infinite spectrum makes ``inf - inf``), and Winograd's transforms mix ``inf`` with its
opposite too. The benchmark itself only uses finite integer-valued data.
"""

_TRANSPOSE_DOC = """Transposed {n}-D convolution with ``torch.nn.functional.conv_transpose{n}d``'s semantics.

Parameters
----------
x : ndarray, shape (N, C_in, ...{n} spatial), or unbatched without N
w : ndarray, shape (C_in, C_out/groups, ...{n} kernel)
bias : ndarray, shape (C_out,), optional
stride, padding, output_padding, dilation : int or {n} ints
    As in PyTorch; ``output_padding`` must be smaller than ``max(stride, dilation)`` per axis.
groups : int
backend, candidates : see :func:`conv{n}d`

Returns
-------
ndarray, per axis ``(i-1)*s - 2*p + d*(k-1) + output_padding + 1`` long
"""

_WEIGHT_DOC = """The weight gradient of :func:`conv{n}d`, with ``torch.nn.grad.conv{n}d_weight``'s
semantics: ``dW = correlate(x, dY)``, summed over the batch and the output positions.

Parameters
----------
x : ndarray, shape {xs}
    The forward input, float32 or float64.
weight_shape : {ws}
grad_output : ndarray, shape {ys}
    The gradient of the forward output, same dtype as ``x``.
stride, padding, dilation, groups
    The forward convolution's, as in :func:`conv{n}d`.
backend, candidates
    As :func:`conv{n}d` (a backend whose capabilities include ``backward_weights``).

Returns
-------
ndarray, shape ``weight_shape``, dtype of ``x``
"""


def _conv_fn(rank: int):
    def conv(x, w, bias=None, stride=1, padding=0, dilation=1, groups=1, *, backend: str | None = None,
             candidates=None) -> np.ndarray:
        return _conv(rank, x, w, bias, stride, padding, dilation, groups, backend, candidates)
    xs, ws, ys = _SHAPES[rank]
    conv.__name__ = conv.__qualname__ = f"conv{rank}d"
    conv.__doc__ = _CONV_DOC.format(n=rank, xs=xs, ws=ws, ys=ys)
    return conv


def _transpose_fn(rank: int):
    def conv_transpose(x, w, bias=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1, *,
                       backend: str | None = None, candidates=None) -> np.ndarray:
        return _conv_transpose(rank, x, w, bias, stride, padding, output_padding, groups, dilation, backend,
                               candidates)
    conv_transpose.__name__ = conv_transpose.__qualname__ = f"conv_transpose{rank}d"
    conv_transpose.__doc__ = _TRANSPOSE_DOC.format(n=rank)
    return conv_transpose


def _weight_fn(rank: int):
    def conv_weight(x, weight_shape, grad_output, stride=1, padding=0, dilation=1, groups=1, *,
                    backend: str | None = None, candidates=None) -> np.ndarray:
        return _conv_weight(rank, x, weight_shape, grad_output, stride, padding, dilation, groups, backend,
                            candidates)
    xs, ws, ys = _SHAPES[rank]
    conv_weight.__name__ = conv_weight.__qualname__ = f"conv{rank}d_weight"
    conv_weight.__doc__ = _WEIGHT_DOC.format(n=rank, xs=xs, ws=ws, ys=ys)
    return conv_weight


conv1d, conv2d, conv3d = (_conv_fn(r) for r in (1, 2, 3))
conv_transpose1d, conv_transpose2d, conv_transpose3d = (_transpose_fn(r) for r in (1, 2, 3))
conv1d_weight, conv2d_weight, conv3d_weight = (_weight_fn(r) for r in (1, 2, 3))
