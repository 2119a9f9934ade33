"""The public API: PyTorch semantics, argument forms, errors."""

from __future__ import annotations

import numpy as np
import pytest

import convbench

from .conftest import requires_torch

rng = np.random.default_rng(11)


def _x(*shape, dtype=np.float32):
    return rng.integers(-2, 3, shape).astype(dtype)


@requires_torch
@pytest.mark.parametrize("backend", ["im2col_blas", "direct_numba", "reference", "sparse_csr", "dense_matrix",
                                     "fft_scipy"])
@pytest.mark.parametrize("kw", [dict(), dict(stride=2, padding=1), dict(stride=(2, 1), padding=(0, 2), dilation=(2, 1)),
                                dict(groups=2, padding=1)])
def test_conv2d_matches_torch(backend, kw):
    import torch
    x, w = _x(2, 4, 9, 11), _x(6, 4 // kw.get("groups", 1), 3, 3)
    ref = torch.nn.functional.conv2d(torch.from_numpy(x), torch.from_numpy(w), **kw).numpy()
    y = convbench.conv2d(x, w, backend=backend, **kw)
    assert y.shape == ref.shape and y.dtype == np.float32
    np.testing.assert_allclose(y, ref, rtol=1e-5, atol=1e-4)


@requires_torch
@pytest.mark.parametrize("backend", ["reference", "im2col_blas", "direct_numba", "dense_matrix", "sparse_csr",
                                     "torch_onednn"])
@pytest.mark.parametrize("kw", [dict(), dict(stride=2, padding=1, output_padding=1),
                                dict(stride=3, padding=2, dilation=2, output_padding=2),
                                dict(groups=2, stride=2), dict(padding=3)])
def test_conv_transpose2d_matches_torch(backend, kw):
    import torch
    g = kw.get("groups", 1)
    x, w = _x(2, 4, 5, 6), _x(4, 6 // g, 3, 3)
    ref = torch.nn.functional.conv_transpose2d(torch.from_numpy(x), torch.from_numpy(w), **kw).numpy()
    y = convbench.conv_transpose2d(x, w, backend=backend, **kw)
    assert y.shape == ref.shape
    np.testing.assert_allclose(y, ref, rtol=1e-5, atol=1e-4)


def test_float64_and_default_backend():
    x, w = _x(1, 2, 6, 6, dtype=np.float64), _x(3, 2, 3, 3, dtype=np.float64)
    y = convbench.conv2d(x, w, padding=1)
    assert y.dtype == np.float64 and y.shape == (1, 3, 6, 6)


@pytest.mark.parametrize("call, match", [
    (lambda: convbench.conv2d(_x(1, 2, 6, 6), _x(3, 2, 3, 3, dtype=np.float64)), "dtype float32 and weight dtype float64"),
    (lambda: convbench.conv2d(_x(1, 2, 6, 6).astype(np.int32), _x(3, 2, 3, 3).astype(np.int32)), "not supported"),
    (lambda: convbench.conv2d(_x(1, 2, 6, 6), _x(3, 3, 3, 3)), r"weight.shape\[1\] == 2"),
    (lambda: convbench.conv2d(_x(1, 2, 6, 6), _x(3, 2, 9, 9)), "larger than the padded input"),
    (lambda: convbench.conv2d(_x(1, 2, 6, 6), _x(3, 2, 3, 3), stride=0), "stride sh=0"),
    (lambda: convbench.conv2d(_x(1, 2, 6, 6), _x(3, 2, 3, 3), stride="2"), "expected an int or a pair"),
    (lambda: convbench.conv2d(_x(1, 2, 6, 6), _x(3, 2, 3, 3), backend="nope"), "available:"),
    (lambda: convbench.conv2d([[1.0]], _x(3, 2, 3, 3)), "numpy arrays"),
    (lambda: convbench.conv_transpose2d(_x(1, 2, 6, 6), _x(2, 3, 3, 3), stride=2, output_padding=2),
     "output_padding"),
])
def test_errors(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_unsupported_carries_the_reason():
    with pytest.raises(convbench.Unsupported, match="winograd_f4x3: stride 2x2 not supported"):
        convbench.conv2d(_x(1, 2, 8, 8), _x(2, 2, 3, 3), stride=2, backend="winograd_f4x3")
    with pytest.raises(convbench.Unsupported, match="forward pass only"):
        convbench.conv_transpose2d(_x(1, 2, 8, 8), _x(2, 2, 3, 3), backend="fft_scipy")


def test_padding_same_and_valid_as_torch():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((1, 2, 7, 8)).astype(np.float32)
    w = rng.standard_normal((3, 2, 4, 3)).astype(np.float32)  # even kh: the extra row goes below
    y = convbench.conv2d(x, w, padding="same", backend="reference")
    assert y.shape == (1, 3, 7, 8)
    yv = convbench.conv2d(x, w, padding="valid", backend="reference")
    assert yv.shape == (1, 3, 4, 6)
    # 'same' is the explicit top/left padding plus one more row at the bottom
    p = convbench.ConvProblem.from_torch_args(x.shape, w.shape, padding="same")
    assert (p.ph, p.ph_r, p.pw, p.pw_r) == (1, 2, 1, 1)
    with pytest.raises(ValueError, match="padding='same' is not supported for strided convolutions"):
        convbench.conv2d(x, w, padding="same", stride=2)
    with pytest.raises(ValueError, match="expected an int, a pair of ints, 'valid' or 'same'"):
        convbench.conv2d(x, w, padding="full")


@requires_torch
def test_padding_same_matches_torch():
    import torch
    rng = np.random.default_rng(1)
    x = rng.standard_normal((1, 2, 9, 8)).astype(np.float32)
    w = rng.standard_normal((3, 2, 4, 5)).astype(np.float32)
    for dil in (1, 2):
        ref = torch.nn.functional.conv2d(torch.from_numpy(x), torch.from_numpy(w), padding="same",
                                         dilation=dil).numpy()
        y = convbench.conv2d(x, w, padding="same", dilation=dil, backend="direct_numba")
        np.testing.assert_allclose(y, ref, rtol=1e-4, atol=1e-4)


def test_infinite_weights_follow_each_algorithm_as_documented():
    """conv2d's Notes: direct/GEMM give inf, FFT gives nan where the transform spreads it."""
    x = np.ones((1, 1, 6, 6), np.float32)
    w = np.ones((1, 1, 3, 3), np.float32)
    w[0, 0, 1, 1] = np.inf
    direct = convbench.conv2d(x, w, backend="direct_numba")
    assert np.isposinf(direct).all()
    fft = convbench.conv2d(x, w, backend="fft_scipy")
    assert np.isnan(fft).any() and not np.isfinite(fft).any()
