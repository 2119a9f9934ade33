"""``max_pool1d/2d/3d`` and ``avg_pool1d/2d/3d`` with ``torch.nn.functional``'s semantics, and
their backward functions with those of ATen's ``max_pool{2,3}d_with_indices_backward`` /
``avg_pool{2,3}d_backward`` (a 1-D pool's backward is the 2-D kernel's on its ``(N, C, 1, L)``
view, as PyTorch's autograd runs it): NC[D][H]W input or unbatched C[D][H]W, an int or one
value per axis for every per-axis argument, ``divisor_override=`` for the 2-D and 3-D averages."""

from __future__ import annotations

import numpy as np

from ..backends import available_backends, backends_with_role, get_backend
from ..backends.base import Unsupported
from ..problem import PoolProblem
from ..reference import pool_divisors
from .common import batched, checked_backend, float_array, layout, native

__all__ = ["max_pool1d", "max_pool2d", "max_pool3d", "avg_pool1d", "avg_pool2d", "avg_pool3d",
           "max_pool1d_backward", "max_pool2d_backward", "max_pool3d_backward",
           "avg_pool1d_backward", "avg_pool2d_backward", "avg_pool3d_backward"]


def _problem(shape, kernel_size, stride, padding, dilation, ceil_mode, alg, dtype, direction) -> PoolProblem:
    return PoolProblem.from_torch_args(shape, kernel_size, stride, padding, dilation, ceil_mode, alg=alg,
                                       dtype=dtype, direction=direction)


def _alg(count_include_pad) -> str:
    if not isinstance(count_include_pad, bool):
        raise ValueError(f"count_include_pad={count_include_pad!r}: expected True or False")
    return "avg_p" if count_include_pad else "avg_np"


def _override(divisor_override) -> int | None:
    """PyTorch's ``divisor_override``: None, or a nonzero int every window's sum is divided by."""
    if divisor_override is None:
        return None
    if isinstance(divisor_override, bool) or not isinstance(divisor_override, (int, np.integer)) \
            or divisor_override == 0:
        raise ValueError(f"divisor_override={divisor_override!r}: expected a nonzero int or None")
    return int(divisor_override)


def _rescale(a: np.ndarray, p: PoolProblem, override: int) -> np.ndarray:
    """An average's result (or gradient) re-divided by ``override`` instead of each window's
    divisor (``a * div / override``, in the array's dtype)."""
    div = pool_divisors(p).astype(a.dtype)
    return a * (div / a.dtype.type(override))


def _max_pool(rank, x, kernel_size, stride, padding, dilation, ceil_mode, return_indices, backend, candidates):
    fn = f"max_pool{rank}d"
    xb, unbatched = batched(float_array(x, "input"), rank, fn)
    p = _problem(xb.shape, kernel_size, stride, padding, dilation, ceil_mode, "max", str(xb.dtype), "fwd")
    if backend == "auto" and return_indices and candidates is None:
        candidates = [n for n in backends_with_role("own", "pool") if hasattr(get_backend(n), "argmax")]
    xl = layout(xb, rank)
    b = checked_backend(p, backend, candidates, (xl,), None)
    if return_indices and not hasattr(b, "argmax"):
        keep = [n for n in available_backends("pool") if hasattr(get_backend(n), "argmax")]
        raise Unsupported(f"{backend}: return_indices needs the argmax of every window, which this backend "
                          f"does not compute; accepted: {', '.join(keep)}")
    y = native(b.run(b.prepare(p, None), xl), rank, unbatched)
    if return_indices:
        return y, native(np.asarray(b.argmax(p, xl), dtype=np.int64), rank, unbatched)
    return y


def _avg_pool(rank, x, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override, backend,
              candidates):
    fn = f"avg_pool{rank}d"
    xb, unbatched = batched(float_array(x, "input"), rank, fn)
    over = _override(divisor_override)
    p = _problem(xb.shape, kernel_size, stride, padding, 1, ceil_mode, _alg(count_include_pad), str(xb.dtype), "fwd")
    xl = layout(xb, rank)
    b = checked_backend(p, backend, candidates, (xl,), None)
    y = b.run(b.prepare(p, None), xl)
    if over is not None:
        y = _rescale(y, p, over)
    return native(y, rank, unbatched)


def _grad(grad_output, p: PoolProblem, rank: int, unbatched: bool, dtype) -> np.ndarray:
    g = float_array(grad_output, "grad_output")
    if g.dtype != dtype:
        raise ValueError(f"grad_output dtype {g.dtype} and input dtype {dtype} differ")
    want = native(np.empty(p.output_shape, np.int8), rank, unbatched).shape
    if g.shape != want:
        raise ValueError(f"grad_output shape {g.shape} does not match the pooling output {want} of this input and "
                         f"these arguments")
    return layout(g[None] if unbatched else g, rank)


def _max_pool_backward(rank, grad_output, x, kernel_size, stride, padding, dilation, ceil_mode, indices, backend,
                       candidates):
    fn = f"max_pool{rank}d_backward"
    xb, unbatched = batched(float_array(x, "input"), rank, fn)
    p = _problem(xb.shape, kernel_size, stride, padding, dilation, ceil_mode, "max", str(xb.dtype), "bwd_d")
    g = _grad(grad_output, p, rank, unbatched, xb.dtype)
    if indices is not None:
        want = native(np.empty(p.output_shape, np.int8), rank, unbatched).shape
        if not isinstance(indices, np.ndarray) or indices.shape != want or indices.dtype.kind not in "iu":
            raise ValueError(f"indices: expected an integer array of shape {want} ({fn[:-9]}'s return_indices), "
                             f"got {getattr(indices, 'dtype', type(indices).__name__)} {getattr(indices, 'shape', '')}")
        plane = int(np.prod(p.spatial))
        if indices.size and (indices.min() < 0 or indices.max() >= plane):
            raise ValueError(f"indices: flat offsets must lie in [0, {plane}) (the input's spatial size)")
        indices = layout(indices[None] if unbatched else indices, rank)
    xl = layout(xb, rank)
    b = checked_backend(p, backend, candidates, (g,), xl)
    return native(b.run(b.prepare(p, xl, indices=indices), g), rank, unbatched)


def _avg_pool_backward(rank, grad_output, input_shape, kernel_size, stride, padding, ceil_mode, count_include_pad,
                       divisor_override, backend, candidates):
    fn = f"avg_pool{rank}d_backward"
    if isinstance(input_shape, np.ndarray):
        input_shape = input_shape.shape
    try:
        shape = tuple(int(v) for v in input_shape)
    except (TypeError, ValueError):
        raise ValueError(f"input_shape={input_shape!r}: expected the forward input's shape") from None
    if len(shape) not in (rank + 1, rank + 2):
        raise ValueError(f"{fn}: input_shape {shape} is {len(shape)}-D; expected {rank + 1}-D (unbatched) or "
                         f"{rank + 2}-D (batched)")
    unbatched = len(shape) == rank + 1
    dtype = float_array(grad_output, "grad_output").dtype
    over = _override(divisor_override)
    p = _problem(((1,) if unbatched else ()) + shape, kernel_size, stride, padding, 1, ceil_mode,
                 _alg(count_include_pad), str(dtype), "bwd_d")
    g = _grad(grad_output, p, rank, unbatched, dtype)
    if over is not None:  # the gradient of sum/override: dy*div/override through the usual dy/div
        g = _rescale(g, p, over)
    b = checked_backend(p, backend, candidates, (g,), None)
    return native(b.run(b.prepare(p, None), g), rank, unbatched)


_MAX_DOC = """{n}-D max pooling with ``torch.nn.functional.max_pool{n}d``'s semantics.

Parameters
----------
x : ndarray, shape (N, C, ...{n} spatial) or unbatched (C, ...)
    float32 or float64.
kernel_size, stride, padding, dilation : int or {n} ints
    ``stride=None`` is the kernel size; padding at most half the kernel (PyTorch's rule);
    padded positions never win.
ceil_mode : bool
    Round the output size up; a last window must start inside the input or its front padding.
return_indices : bool
    Also return the argmax of every window as flat int64 offsets into the input's spatial
    size (the first maximum in row-major window order, the last NaN: PyTorch's rule), for
    :func:`max_pool{n}d_backward`.
backend : str, optional
    Default ``convbench.backends.DEFAULTS["pool"]`` (the compiled loops). Any name from
    ``convbench.available_backends("pool")``, or ``"auto"`` (the built-in rules: pool_numba).
candidates : list of str, optional
    With ``backend="auto"``: the pooling backends to choose from.

Returns
-------
ndarray, or ``(output, indices)`` with ``return_indices``

Raises
------
ValueError
    A window larger than the padded input, padding over half the window, an input of another
    rank, bad arguments.
convbench.Unsupported
    The backend's capabilities exclude this problem.
"""

_AVG_DOC = """{n}-D average pooling with ``torch.nn.functional.avg_pool{n}d``'s semantics.

``count_include_pad=True`` is benchdnn's ``avg_p`` (the divisor is the window clipped to the
padded input), ``False`` its ``avg_np`` (the window clipped to the input).{override} Other
parameters, returns and errors as :func:`max_pool{n}d` (no dilation, as in PyTorch).
"""

_OVERRIDE = (" ``divisor_override`` (a nonzero int) divides every window's sum by itself instead (the "
             "average times its divisor over the override: within a rounding of PyTorch's sum/override).")

_MAX_BWD_DOC = """The input gradient of :func:`max_pool{n}d`: every output's gradient goes to its
window's first maximum, and overlapping windows add.

``grad_output`` has the forward output's shape, ``x`` is the forward input, ``indices`` (optional)
what ``max_pool{n}d(..., return_indices=True)`` returned (computed from ``x`` when omitted);
the other arguments are the forward call's. Returns an array of ``x``'s shape.
"""

_AVG_BWD_DOC = """The input gradient of :func:`avg_pool{n}d`: every output's gradient, divided by its
window's divisor{override_short}, spread over the window.

``input_shape`` is the forward input's shape (or the input itself); the rest as
:func:`avg_pool{n}d`. The gradient has the dtype of ``grad_output``.
"""


def _make(rank: int) -> dict:
    def max_pool(x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, return_indices=False, *,
                 backend: str | None = None, candidates=None):
        return _max_pool(rank, x, kernel_size, stride, padding, dilation, ceil_mode, return_indices, backend,
                         candidates)

    def max_pool_backward(grad_output, x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,
                          indices=None, *, backend: str | None = None, candidates=None):
        return _max_pool_backward(rank, grad_output, x, kernel_size, stride, padding, dilation, ceil_mode,
                                  indices, backend, candidates)

    if rank == 1:  # torch's avg_pool1d has no divisor_override
        def avg_pool(x, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True, *,
                     backend: str | None = None, candidates=None):
            return _avg_pool(rank, x, kernel_size, stride, padding, ceil_mode, count_include_pad, None, backend,
                             candidates)

        def avg_pool_backward(grad_output, input_shape, kernel_size, stride=None, padding=0, ceil_mode=False,
                              count_include_pad=True, *, backend: str | None = None, candidates=None):
            return _avg_pool_backward(rank, grad_output, input_shape, kernel_size, stride, padding, ceil_mode,
                                      count_include_pad, None, backend, candidates)
    else:
        def avg_pool(x, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True,
                     divisor_override=None, *, backend: str | None = None, candidates=None):
            return _avg_pool(rank, x, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override,
                             backend, candidates)

        def avg_pool_backward(grad_output, input_shape, kernel_size, stride=None, padding=0, ceil_mode=False,
                              count_include_pad=True, divisor_override=None, *, backend: str | None = None,
                              candidates=None):
            return _avg_pool_backward(rank, grad_output, input_shape, kernel_size, stride, padding, ceil_mode,
                                      count_include_pad, divisor_override, backend, candidates)
    docs = {"max_pool": _MAX_DOC, "avg_pool": _AVG_DOC, "max_pool_backward": _MAX_BWD_DOC,
            "avg_pool_backward": _AVG_BWD_DOC}
    out = {}
    for f in (max_pool, avg_pool, max_pool_backward, avg_pool_backward):
        base = f.__name__
        name = base.replace("pool", f"pool{rank}d")
        f.__name__ = f.__qualname__ = name
        f.__doc__ = docs[base].format(n=rank, override=_OVERRIDE if rank > 1 else "",
                                      override_short=" (or ``divisor_override``)" if rank > 1 else "")
        out[name] = f
    return out


_P1, _P2, _P3 = _make(1), _make(2), _make(3)
max_pool1d = _P1["max_pool1d"]
max_pool2d = _P2["max_pool2d"]
max_pool3d = _P3["max_pool3d"]
avg_pool1d = _P1["avg_pool1d"]
avg_pool2d = _P2["avg_pool2d"]
avg_pool3d = _P3["avg_pool3d"]
max_pool1d_backward = _P1["max_pool1d_backward"]
max_pool2d_backward = _P2["max_pool2d_backward"]
max_pool3d_backward = _P3["max_pool3d_backward"]
avg_pool1d_backward = _P1["avg_pool1d_backward"]
avg_pool2d_backward = _P2["avg_pool2d_backward"]
avg_pool3d_backward = _P3["avg_pool3d_backward"]
