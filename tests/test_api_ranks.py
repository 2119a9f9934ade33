"""The functional API at every rank against PyTorch, one to one: conv1d/2d/3d, their transposes
and weight gradients, 1-D/2-D/3-D pooling and its backward, over a grid of the argument forms
torch documents (positional and keyword, an int or one per axis, 'same'/'valid', bias=,
groups, dilation, unbatched inputs, ceil_mode, return_indices, divisor_override), and the
errors where the ranks do not match."""

from __future__ import annotations

import numpy as np
import pytest

import convbench

from .conftest import requires_torch

rng = np.random.default_rng(25)

#: input spatial sizes per rank (odd, unequal)
SIZES = {1: (23,), 2: (9, 11), 3: (6, 7, 9)}


def _x(*shape, dtype=np.float32):
    return rng.integers(-3, 4, shape).astype(dtype)


def _t(a):
    import torch
    return None if a is None else torch.from_numpy(a)


CONV_FORMS = [
    ((), {}),
    ((None, 2, 1), {}),                                    # bias, stride, padding positional
    ((), {"stride": 1, "padding": "same", "dilation": 2}),
    ((), {"padding": "valid", "groups": 2}),
    ((), {"stride": (2, 1, 2), "padding": (1, 0, 2), "dilation": (1, 2, 1)}),   # one value per axis
    ((), {"bias": True, "padding": 1}),
    ((), {"unbatched": True, "padding": "same"}),
]


def _per_axis(kw: dict, rank: int) -> dict:
    """A form's per-axis tuples cut to ``rank`` values."""
    return {k: (v[:rank] if isinstance(v, tuple) else v) for k, v in kw.items()}


@requires_torch
@pytest.mark.parametrize("rank", [1, 2, 3])
@pytest.mark.parametrize("form", range(len(CONV_FORMS)))
@pytest.mark.parametrize("backend", ["im2col_blas", "direct_numba", "auto"])
def test_conv_matches_torch(rank, form, backend):
    import torch
    args, kw = CONV_FORMS[form]
    kw = _per_axis(kw, rank)
    unbatched = kw.pop("unbatched", False)
    g = kw.get("groups", 1)
    x = _x(*(() if unbatched else (2,)), 4, *SIZES[rank])
    w = _x(6, 4 // g, *(3,) * rank)
    if kw.pop("bias", False) or args[:1] == (None,):
        b = _x(6)
        args = (b,) + args[1:] if args else ()
        kw = kw if args else {**kw, "bias": b}
    F = getattr(torch.nn.functional, f"conv{rank}d")
    targs = tuple(_t(a) if isinstance(a, np.ndarray) else a for a in args)
    tkw = {k: _t(v) if isinstance(v, np.ndarray) else v for k, v in kw.items()}
    ref = F(_t(x), _t(w), *targs, **tkw).numpy()
    y = getattr(convbench, f"conv{rank}d")(x, w, *args, backend=backend, **kw)
    assert y.shape == ref.shape and y.dtype == ref.dtype
    np.testing.assert_allclose(y, ref, rtol=1e-5, atol=1e-3)


TRANSPOSE_FORMS = [{}, {"stride": 2, "padding": 1, "output_padding": 1}, {"groups": 2, "dilation": 2},
                   {"bias": True, "stride": (2, 1, 3), "output_padding": (1, 0, 2)}, {"unbatched": True, "padding": 1}]


@requires_torch
@pytest.mark.parametrize("rank", [1, 2, 3])
@pytest.mark.parametrize("form", range(len(TRANSPOSE_FORMS)))
@pytest.mark.parametrize("backend", ["im2col_blas", "direct_numba"])
def test_conv_transpose_matches_torch(rank, form, backend):
    import torch
    kw = _per_axis(TRANSPOSE_FORMS[form], rank)
    unbatched = kw.pop("unbatched", False)
    g = kw.get("groups", 1)
    x = _x(*(() if unbatched else (2,)), 4, *(s // 2 + 2 for s in SIZES[rank]))
    w = _x(4, 6 // g, *(3,) * rank)
    if kw.pop("bias", False):
        kw["bias"] = _x(6)
    F = getattr(torch.nn.functional, f"conv_transpose{rank}d")
    ref = F(_t(x), _t(w), **{k: _t(v) if isinstance(v, np.ndarray) else v for k, v in kw.items()}).numpy()
    y = getattr(convbench, f"conv_transpose{rank}d")(x, w, backend=backend, **kw)
    assert y.shape == ref.shape
    np.testing.assert_allclose(y, ref, rtol=1e-5, atol=1e-3)


@requires_torch
@pytest.mark.parametrize("rank", [1, 2, 3])
@pytest.mark.parametrize("kw", [{}, {"stride": 2, "padding": 1}, {"dilation": 2, "groups": 2}])
def test_conv_weight_matches_torch(rank, kw):
    import torch
    x = _x(2, 4, *SIZES[rank])
    wshape = (6, 4 // kw.get("groups", 1)) + (3,) * rank
    y = getattr(torch.nn.functional, f"conv{rank}d")(_t(x), torch.zeros(wshape), **kw)
    dy = _x(*y.shape)
    ref = getattr(torch.nn.grad, f"conv{rank}d_weight")(_t(x), wshape, _t(dy), **kw).numpy()
    got = getattr(convbench, f"conv{rank}d_weight")(x, wshape, dy, backend="im2col_blas", **kw)
    assert got.shape == ref.shape
    np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-3)


POOL_FORMS = [{"kernel_size": 2}, {"kernel_size": 3, "stride": 2, "padding": 1},
              {"kernel_size": (3, 2, 3), "stride": (2, 1, 2), "ceil_mode": True},
              {"kernel_size": 3, "stride": 1, "padding": 1, "unbatched": True}]


@requires_torch
@pytest.mark.parametrize("rank", [1, 2, 3])
@pytest.mark.parametrize("form", range(len(POOL_FORMS)))
@pytest.mark.parametrize("backend", ["pool_numba", "pool_numpy"])
def test_pooling_matches_torch(rank, form, backend):
    """Forward (max with indices, both averages, divisor_override in 2-D/3-D) and backward
    (through torch's autograd) against PyTorch."""
    import torch
    kw = _per_axis(POOL_FORMS[form], rank)
    unbatched = kw.pop("unbatched", False)
    x = rng.permutation(np.arange(np.prod((2, 3) + SIZES[rank]))).reshape((2, 3) + SIZES[rank]).astype(np.float32)
    if unbatched:
        x = x[0]
    F = torch.nn.functional
    xt = _t(x).requires_grad_(True)
    ref, ridx = getattr(F, f"max_pool{rank}d")(xt, return_indices=True, **kw)
    y, idx = getattr(convbench, f"max_pool{rank}d")(x, return_indices=True, backend=backend, **kw)
    np.testing.assert_array_equal(y, ref.detach().numpy())
    np.testing.assert_array_equal(idx, ridx.numpy())
    dy = _x(*y.shape)
    ref.backward(_t(dy))
    dx = getattr(convbench, f"max_pool{rank}d_backward")(dy, x, backend=backend, **kw)
    np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=1e-6)
    extra = [{"count_include_pad": False}, {}] + ([{"divisor_override": 3}] if rank > 1 else [])
    for more in extra:
        xt = _t(x).requires_grad_(True)
        ref = getattr(F, f"avg_pool{rank}d")(xt, **kw, **more)
        y = getattr(convbench, f"avg_pool{rank}d")(x, backend=backend, **kw, **more)
        np.testing.assert_allclose(y, ref.detach().numpy(), rtol=1e-6, atol=1e-5)
        ref.backward(_t(dy))
        dx = getattr(convbench, f"avg_pool{rank}d_backward")(dy, x.shape, backend=backend, **kw, **more)
        np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("call, match", [
    (lambda: convbench.conv3d(_x(2, 6, 6), _x(3, 2, 3, 3, 3)), r"input shape \(2, 6, 6\) is 3-D; a 3-D"),
    (lambda: convbench.conv1d(_x(1, 2, 9), _x(3, 2, 3, 3)), r"weight shape \(3, 2, 3, 3\) is 4-D; a 1-D"),
    (lambda: convbench.conv2d(_x(1, 2, 6, 6), _x(3, 2, 3, 3, 3)), "5-D; a 2-D convolution takes"),
    (lambda: convbench.conv3d(_x(1, 2, 6, 6, 4), _x(3, 2, 3, 3, 5)), "kernel kw=5 .* larger than the padded input"),
    (lambda: convbench.conv1d(_x(1, 2, 9), _x(3, 2, 3), stride=(1, 1)), "stride"),
    (lambda: convbench.conv3d_weight(_x(1, 2, 6, 6, 6), (3, 2, 3, 3), _x(1, 3, 4, 4, 4)), "expected 5 positive ints"),
    (lambda: convbench.conv1d_weight(_x(1, 2, 9), (3, 2, 3), _x(1, 3, 7, 1)), r"grad_output shape \(1, 3, 7, 1\) is 4-D"),
    (lambda: convbench.max_pool3d(_x(2, 6, 6), 2), "is 3-D; a 3-D operation"),
    (lambda: convbench.avg_pool2d(_x(1, 2, 6, 6), 2, divisor_override=0), "divisor_override=0"),
    (lambda: convbench.conv2d(_x(1, 2, 6, 6), _x(3, 2, 3, 3), bias=_x(4)), r"bias shape \(4,\)"),
    (lambda: convbench.conv_transpose3d(_x(1, 2, 3, 3, 3), _x(2, 1, 3, 3, 3), stride=2, output_padding=(0, 2, 0)),
     "output_padding"),
])
def test_rank_errors(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_unbatched_and_auto_at_every_rank():
    for rank in (1, 2, 3):
        x, w = _x(3, *SIZES[rank]), _x(4, 3, *(3,) * rank)
        y = getattr(convbench, f"conv{rank}d")(x, w, padding=1, backend="auto")
        ref = getattr(convbench, f"conv{rank}d")(x[None], w, padding=1, backend="reference")[0]
        assert y.shape == (4,) + SIZES[rank]
        np.testing.assert_allclose(y, ref, rtol=1e-4, atol=1e-3)
