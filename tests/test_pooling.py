"""Pooling: the problem kind, its descriptor, every pooling backend against the float64
reference (forward and backward), the PyTorch-semantics API, and the refusals."""

from __future__ import annotations

import re

import numpy as np
import pytest

import convbench
from convbench.backends import get_backend
from convbench.data import check_output, make_case, reference_case
from convbench.problem import POOL_ALGS, PoolProblem, parse_problem
from convbench.reference import pool_divisors, pool_reference

from .conftest import backend_params, requires_torch


def pool_problems(n: int = 30, seed: int = 7) -> list[PoolProblem]:
    """Random valid pooling problems: every algorithm, overlapping and strided windows,
    padding, dilation (max), ceil mode, rectangular windows, both dtypes. Fixed seed."""
    rng = np.random.default_rng(seed)
    out = []
    while len(out) < n:
        alg = POOL_ALGS[len(out) % 3]
        kh, kw = int(rng.integers(1, 5)), int(rng.integers(1, 5))
        kwargs = dict(mb=int(rng.integers(1, 3)), ic=int(rng.integers(1, 5)), ih=int(rng.integers(3, 14)),
                      iw=int(rng.integers(3, 14)), kh=kh, kw=kw, sh=int(rng.integers(1, 4)),
                      sw=int(rng.integers(1, 4)), ph=int(rng.integers(0, kh // 2 + 1)),
                      pw=int(rng.integers(0, kw // 2 + 1)), alg=alg,
                      dh=int(rng.integers(0, 2)) if alg == "max" and rng.random() < 0.3 else 0,
                      dtype="float64" if rng.random() < 0.25 else "float32")
        try:
            p = PoolProblem(**kwargs)
        except ValueError:
            continue
        if len(out) % 4 == 1:  # ceil mode where it gives one more output row
            try:
                p = PoolProblem(**dict(kwargs, oh=p.oh + 1))
            except ValueError:
                pass
        out.append(p)
    out += [PoolProblem.parse(d) for d in ("mb1ic64ih112kh3sh2ph1", "--alg=max mb1ic8ih16kh2sh2",
                                           "--alg=avg_np mb2ic3ih7kh7", "--alg=avg_p mb1ic5ih9oh5kh3sh2ph1",
                                           # global pools (the window is the plane: their own kernels)
                                           "--alg=max mb2ic5ih6iw4kh6kw4", "--alg=avg_p mb2ic9ih7kh7")]
    return out


def pool_problems_of_rank(rank: int, n: int, seed: int) -> list[PoolProblem]:
    """Random 1-D or 3-D pooling problems: every algorithm, strides, padding, dilation (max),
    ceil mode, both dtypes. Fixed seed."""
    rng = np.random.default_rng(seed)
    axes = "dhw"[3 - rank:]
    out = []
    while len(out) < n:
        alg = POOL_ALGS[len(out) % 3]
        kw = dict(mb=int(rng.integers(1, 3)), ic=int(rng.integers(1, 4)), alg=alg, rank=rank,
                  dtype="float64" if rng.random() < 0.25 else "float32")
        for a in axes:
            k = int(rng.integers(1, 4))
            kw.update({"i" + a: int(rng.integers(3, 30 if rank == 1 else 9)), "k" + a: k, "s" + a: int(rng.integers(1, 3)),
                       "p" + a: int(rng.integers(0, k // 2 + 1)),
                       "d" + a: int(rng.integers(0, 2)) if alg == "max" and rng.random() < 0.3 else 0})
        try:
            p = PoolProblem(**kw)
        except ValueError:
            continue
        if len(out) % 4 == 1:  # ceil mode on every axis
            try:
                p = PoolProblem(**dict(kw, **{"o" + a: getattr(p, "o" + a) + 1 for a in axes}))
            except ValueError:
                pass
        out.append(p)
    return out


POOLS = pool_problems() + pool_problems_of_rank(1, 6, 71) + pool_problems_of_rank(3, 10, 73) + [
    PoolProblem.parse(d) for d in ("--alg=max mb1ic4id8ih9iw10kd3kh3kw3sd2sh2sw2pd1ph1pw1",
                                   "--alg=avg_p mb1ic3id4ih6iw6kd2kh2kw2sd2sh2sw2", "--alg=avg_np mb2ic2id4ih5iw3kd4kh5kw3",
                                   "--alg=max mb1ic3iw40kw3sw2pw1")]


def _refuses_as_declared(b, p) -> bool:
    reason = b.supports(p)
    c = b.capabilities
    declared = (p.direction == "bwd_d" and not c.transposed) or p.dtype not in c.dtypes or \
        (not c.asymmetric_padding and not p.torch_compatible)
    if declared:
        assert reason is not None, f"{b.name} accepts {p.label} although its capabilities exclude it"
    if reason is None:
        return False
    with pytest.raises(convbench.Unsupported, match=re.escape(reason)):
        b.check(p)
    return True


@pytest.mark.parametrize("name", backend_params("pool"))
@pytest.mark.parametrize("direction", ["fwd", "bwd_d"])
@pytest.mark.parametrize("p", POOLS, ids=[p.label for p in POOLS])
def test_pool_backend_matches_reference(name, direction, p):
    t = p.replace(direction=direction, oh=p.oh, ow=p.ow)
    b = get_backend(name)
    if _refuses_as_declared(b, t):
        return
    case = make_case(t)
    y = b.run(b.prepare(t, case.constant), *case.inputs)
    assert y.shape == t.dst_shape and y.dtype == np.dtype(t.dtype)
    ref = reference_case(t, case)
    chk = check_output(y, ref, t, b.capabilities.tolerance(t.dtype, t))
    assert chk["status"] == "passed", chk
    if (direction == "fwd" and t.alg != "avg_np" or t.alg == "max") and b.capabilities.exact:
        # integer fills: max, its gradient and avg_p's sums are exact
        num = y.astype(np.float64) * (pool_divisors(t) if t.alg == "avg_p" and direction == "fwd" else 1)
        den = ref * (pool_divisors(t) if t.alg == "avg_p" and direction == "fwd" else 1)
        np.testing.assert_allclose(num, den, rtol=1e-6 if t.dtype == "float32" else 1e-12)


@pytest.mark.parametrize("name", backend_params("pool"))
def test_pool_plan_is_reusable_and_counts_indices_as_workspace(name):
    b = get_backend(name)
    p = PoolProblem.parse("--dir=BWD_D mb2ic3ih9kh3sh2ph1")
    if b.supports(p) is not None:
        pytest.skip(b.supports(p))
    case = make_case(p)
    plan = b.prepare(p, case.constant)
    (dy,) = case.inputs
    d1 = b.run(plan, dy).copy()
    d2 = b.run(plan, 2 * dy)
    np.testing.assert_array_equal(d2, 2 * d1)
    assert not np.shares_memory(d1, b.run(plan, dy))
    if b.role != "peer":
        assert b.estimate(p).workspace_bytes >= 4 * p.mb * p.ic * p.oh * p.ow  # the int32 argmax
    assert plan.workspace_bytes is None or plan.workspace_bytes >= 4 * p.mb * p.ic * p.oh * p.ow


def test_listing_by_kind():
    pools = convbench.available_backends("pool")
    assert {"pool_reference", "pool_numpy", "pool_numba"} <= set(pools)
    assert convbench.available_backends() == convbench.available_backends("conv")
    assert not set(pools) & set(convbench.available_backends())
    with pytest.raises(ValueError, match="kind='bogus': accepted are conv, pool"):
        convbench.available_backends("bogus")


@pytest.mark.parametrize("p", POOLS, ids=[p.label for p in POOLS])
def test_descriptor_round_trips(p):
    for t in (p, p.replace(direction="bwd_d", oh=p.oh, ow=p.ow)):
        assert PoolProblem.parse(t.label) == t
        assert parse_problem(t.label) == t


def test_descriptor_form():
    p = PoolProblem.parse("mb1ic64ih112kh3sh2ph1")
    assert (p.alg, p.oh, p.ow, p.direction) == ("max", 56, 56, "fwd")
    assert p.label == "--alg=max mb1ic64ih112kh3sh2ph1"
    assert PoolProblem.parse("--alg=pooling_avg_exclude_padding mb1ic3ih5kh3").alg == "avg_np"
    c = PoolProblem.parse("mb1ic3ih6kh3sh2oh3")  # ceil mode written as the output size
    assert c.ceil_mode and c.descriptor == "mb1ic3ih6oh3kh3sh2ph0"
    assert isinstance(parse_problem("mb1ic3ih6oc3kh3"), convbench.ConvProblem)
    assert isinstance(parse_problem("mb1ic3ih6kh3"), PoolProblem)


@pytest.mark.parametrize("make, match", [
    (lambda: PoolProblem.parse("mb1ic3ih4kh7"), "window kh=7 .* larger than the padded input"),
    (lambda: PoolProblem.parse("mb1ic3ih8kh3ph2"), "padding ph=2 with kh=3: must be between 0 and half"),
    (lambda: PoolProblem.parse("--alg=median mb1ic3ih8kh3"), "pooling algorithm 'median': accepted are max"),
    (lambda: PoolProblem.parse("--alg=avg_p mb1ic3ih8kh3dh1"), "dilation .* accepted only with alg max"),
    (lambda: PoolProblem.parse("mb1ic3ih8oc3kh3 --alg=max"), "."),
    (lambda: PoolProblem.parse("--alg=max mb1ic3ih8oc4kh3"), "keeps its channels"),
    (lambda: PoolProblem.parse("--dir=BWD_W --alg=max mb1ic3ih8kh3"), "accepted are FWD_D, FWD_I and BWD_D"),
    (lambda: PoolProblem.parse("mb1ic3ih6oh9kh3sh2ph0"), "ceil_mode rule"),
    (lambda: convbench.max_pool2d(np.zeros((1, 1, 4, 4), np.float32), 5), "larger than the padded input"),
    (lambda: convbench.max_pool2d(np.zeros((1, 1, 8, 8), np.float32), 3, padding=2), "half the window"),
    (lambda: convbench.avg_pool2d(np.zeros((1, 1, 8, 8), np.float32), 3, count_include_pad="yes"),
     "count_include_pad"),
    (lambda: convbench.max_pool2d(np.zeros((1, 1, 8, 8), np.float32), 2, backend="im2col_blas"),
     "runs conv problems, not pool"),
    (lambda: convbench.max_pool2d(np.zeros((1, 1, 2, 8, 8), np.float32), 2), "5-D; a 2-D operation takes"),
    (lambda: convbench.max_pool2d_backward(np.zeros((1, 1, 3, 3), np.float32), np.zeros((1, 1, 8, 8), np.float32), 2),
     r"grad_output shape \(1, 1, 3, 3\) does not match the pooling output \(1, 1, 4, 4\)"),
    (lambda: convbench.max_pool2d_backward(np.zeros((1, 1, 4, 4), np.float32), np.zeros((1, 1, 8, 8), np.float32), 2,
                                           indices=np.full((1, 1, 4, 4), 64)), r"\[0, 64\)"),
])
def test_bad_pooling_input_names_the_field(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_api_hand_values():
    x = np.arange(16, dtype=np.float32).reshape(1, 1, 4, 4)
    np.testing.assert_array_equal(convbench.max_pool2d(x, 2)[0, 0], [[5, 7], [13, 15]])
    y, idx = convbench.max_pool2d(x, 2, return_indices=True)
    assert idx.dtype == np.int64 and idx[0, 0].tolist() == [[5, 7], [13, 15]]
    # 3x3 windows, stride 1, padding 1: the corner sees x[0:2, 0:2] = 0+1+4+5 = 10
    assert convbench.avg_pool2d(x, 3, 1, 1)[0, 0, 0, 0] == pytest.approx(10 / 9)      # padding counted
    assert convbench.avg_pool2d(x, 3, 1, 1, count_include_pad=False)[0, 0, 0, 0] == pytest.approx(10 / 4)
    g = np.ones((1, 1, 2, 2), np.float32)
    dx = convbench.max_pool2d_backward(g, x, 2, indices=idx)
    assert dx[0, 0].tolist() == [[0, 0, 0, 0], [0, 1, 0, 1], [0, 0, 0, 0], [0, 1, 0, 1]]
    da = convbench.avg_pool2d_backward(g, x.shape, 2)
    np.testing.assert_array_equal(da, np.full(x.shape, 0.25, np.float32))


@requires_torch
@pytest.mark.parametrize("name", [n for n in ("pool_reference", "pool_numpy", "pool_numba", "pool_torch")])
@pytest.mark.parametrize("args", [
    dict(kernel_size=3, stride=2, padding=1), dict(kernel_size=3, stride=2, padding=1, ceil_mode=True),
    dict(kernel_size=(2, 3), stride=None, padding=(1, 0), ceil_mode=True), dict(kernel_size=2),
    dict(kernel_size=(3, 2), stride=(1, 2), padding=(1, 1), dilation=(2, 1)),
])
def test_api_matches_torch(name, args):
    import torch
    import torch.nn.functional as F
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 3, 11, 9)).astype(np.float32)
    xt = torch.from_numpy(x).requires_grad_()
    yt, it = F.max_pool2d(xt, return_indices=True, **args)
    g = rng.standard_normal(yt.shape).astype(np.float32)
    yt.backward(torch.from_numpy(g))
    y, idx = convbench.max_pool2d(x, return_indices=True, backend=name, **args)
    np.testing.assert_array_equal(y, yt.detach().numpy())
    np.testing.assert_array_equal(idx, it.numpy())
    for ind in (idx, None):
        dx = convbench.max_pool2d_backward(g, x, indices=ind, backend=name, **args)
        np.testing.assert_allclose(dx, xt.grad.numpy(), atol=1e-6)
    if "dilation" in args:
        return
    for cip in (True, False):
        xt = torch.from_numpy(x).requires_grad_()
        at = F.avg_pool2d(xt, count_include_pad=cip, **args)
        ga = rng.standard_normal(at.shape).astype(np.float32)
        at.backward(torch.from_numpy(ga))
        np.testing.assert_allclose(convbench.avg_pool2d(x, count_include_pad=cip, backend=name, **args),
                                   at.detach().numpy(), rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(convbench.avg_pool2d_backward(ga, x.shape, count_include_pad=cip, backend=name,
                                                                 **args), xt.grad.numpy(), rtol=1e-5, atol=1e-6)


@requires_torch
@pytest.mark.parametrize("p", POOLS[:12], ids=[p.label for p in POOLS[:12]])
def test_reference_matches_torch(p):
    import torch
    import torch.nn.functional as F
    x = np.random.default_rng(5).standard_normal(p.input_shape)
    if not p.torch_compatible:
        pytest.skip("an output size PyTorch cannot express (ceil mode on one axis)")
    kw = dict(kernel_size=(p.kh, p.kw), stride=(p.sh, p.sw), padding=(p.ph, p.pw), ceil_mode=p.torch_ceil_mode)
    if p.alg == "max":
        yt = F.max_pool2d(torch.from_numpy(x), dilation=(p.dh + 1, p.dw + 1), **kw)
    else:
        yt = F.avg_pool2d(torch.from_numpy(x), count_include_pad=p.alg == "avg_p", **kw)
    np.testing.assert_allclose(pool_reference(x, p)[0], yt.numpy(), rtol=1e-12)


@pytest.mark.parametrize("call, match", [
    (lambda x, dy: convbench.conv2d_weight(x, (4, 3, 3, 3), dy), r"weight shape \(4, 3, 3, 3\) has ic/groups=3"),
    (lambda x, dy: convbench.conv2d_weight(x, (4, 2, 3), dy), "expected 4 positive ints"),
    (lambda x, dy: convbench.conv2d_weight(x, (3, 1, 3, 3), dy, groups=2), "not divisible by groups=2"),
    (lambda x, dy: convbench.conv2d_weight(x, (4, 2, 3, 3), dy[:, :, :5]),
     r"grad_output shape \(1, 4, 5, 6\) does not match the forward output \(1, 4, 6, 6\)"),
    (lambda x, dy: convbench.conv2d_weight(x, (4, 2, 3, 3), dy.astype(np.float64)), "differ"),
    (lambda x, dy: convbench.conv2d_weight(x, (4, 2, 3, 3), dy, backend="pool_numba"), "runs pool problems"),
])
def test_bad_weight_gradient_input(call, match):
    x = np.ones((1, 2, 8, 8), np.float32)
    dy = np.ones((1, 4, 6, 6), np.float32)
    with pytest.raises(ValueError, match=match):
        call(x, dy)


def test_weight_gradient_unsupported_says_why():
    x = np.ones((1, 2, 8, 8), np.float32)
    dy = np.ones((1, 4, 6, 6), np.float32)
    with pytest.raises(convbench.Unsupported, match="dense_matrix: the weight gradient does not apply"):
        convbench.conv2d_weight(x, (4, 2, 3, 3), dy, backend="dense_matrix")
    dy2 = np.ones((1, 4, 3, 3), np.float32)
    with pytest.raises(convbench.Unsupported, match="winograd_f4x3: stride 2x2 not supported"):
        convbench.conv2d_weight(x, (4, 2, 3, 3), dy2, stride=2, backend="winograd_f4x3")


@requires_torch
@pytest.mark.parametrize("args", [dict(), dict(stride=2, padding=1), dict(padding=(1, 2), dilation=(2, 1)),
                                  dict(groups=2, stride=(1, 2))])
def test_weight_gradient_api_matches_torch(args):
    import torch
    rng = np.random.default_rng(11)
    x = rng.standard_normal((2, 4, 10, 9)).astype(np.float32)
    ws = (6, 4 // args.get("groups", 1), 3, 3)
    y = torch.nn.functional.conv2d(torch.from_numpy(x), torch.zeros(ws), **args)
    dy = rng.standard_normal(y.shape).astype(np.float32)
    ref = torch.nn.grad.conv2d_weight(torch.from_numpy(x), ws, torch.from_numpy(dy), **args).numpy()
    for name in ("reference", "im2col_blas", "direct_numba", "fft_pyfftw", "fft_scipy", "winograd_f2x3"):
        try:
            dw = convbench.conv2d_weight(x, ws, dy, backend=name, **args)
        except convbench.Unsupported:
            assert name.startswith("winograd") and (args.get("stride", 1) != 1 or "dilation" in args)
            continue
        np.testing.assert_allclose(dw, ref, rtol=1e-4, atol=1e-4 * np.abs(ref).max())


# ---------------------------------------------------------------------------- NaN and inf, as PyTorch has them
NONFINITE = [  # (input shape, kernel, stride, padding, dilation): windows with padding, overlap, dilation
    ((1, 2, 6, 7), 2, 2, 0, 1), ((1, 2, 7, 6), 3, 1, 1, 1), ((2, 1, 8, 8), 3, 2, 1, 2), ((1, 3, 5, 5), 5, 5, 0, 1)]


def _nonfinite(shape, seed):
    """Integers with NaN, +inf and -inf sprinkled in; the first window of every plane holds two
    NaNs (the argmax must be the last), and one plane is all -inf (the argmax: the first tap)."""
    rng = np.random.default_rng(seed)
    x = rng.integers(-3, 4, size=shape).astype(np.float32)
    m = rng.random(shape)
    x[m < 0.1], x[(m >= 0.1) & (m < 0.2)], x[(m >= 0.2) & (m < 0.3)] = np.nan, np.inf, -np.inf
    x[:, :, 0, 0] = x[:, :, 1, 1] = np.nan
    x[0, -1] = -np.inf
    return x


def test_the_reference_follows_pytorch_on_the_issues_plane():
    """A 4x4 plane with NaN at both ends, 2x2 windows: torch gives [nan, 7, 13, nan] and
    points each NaN window's index at its NaN."""
    from convbench.reference import pool_reference
    x = np.arange(16, dtype=np.float32).reshape(1, 1, 4, 4)
    x[0, 0, 0, 0] = x[0, 0, 3, 3] = np.nan
    y, arg = pool_reference(x, PoolProblem.from_torch_args(x.shape, 2))
    assert np.array_equal(np.isnan(y.ravel()), [True, False, False, True]) and list(y.ravel()[1:3]) == [7, 13]
    assert list(arg.ravel()) == [0, 7, 13, 15]


@requires_torch
@pytest.mark.parametrize("name", backend_params("pool"))
@pytest.mark.parametrize("alg", ["max", "avg_p", "avg_np"])
@pytest.mark.parametrize("geometry", NONFINITE, ids=[str(g) for g in NONFINITE])
def test_nonfinite_inputs_give_pytorchs_result(name, alg, geometry):
    """Every pooling backend against torch on NaN/inf inputs, forward (values and the argmax)
    and backward; a backend that cannot match says so in its capabilities (``nonfinite``)."""
    import torch
    shape, k, s, pad, dil = geometry
    if alg != "max":
        dil = 1
    b = get_backend(name)
    if not b.capabilities.nonfinite:
        pytest.skip(f"{name} declares nonfinite=False: NaN/inf inputs do not give PyTorch's result")
    p = PoolProblem.from_torch_args(shape, k, s, pad, dil, alg=alg)
    if b.supports(p) is not None:
        pytest.skip(b.supports(p))
    x = _nonfinite(shape, k * 10 + s)
    xt = torch.from_numpy(x).requires_grad_()
    if alg == "max":
        yt, it = torch.nn.functional.max_pool2d(xt, k, s, pad, dil, return_indices=True)
    else:
        yt = torch.nn.functional.avg_pool2d(xt, k, s, pad, count_include_pad=alg == "avg_p")
    g = np.arange(1, yt.numel() + 1, dtype=np.float32).reshape(yt.shape)
    yt.backward(torch.from_numpy(g))
    y = b.run(b.prepare(p, None), x)
    np.testing.assert_allclose(y, yt.detach().numpy(), rtol=1e-6, equal_nan=True)
    if alg == "max" and hasattr(b, "argmax"):
        np.testing.assert_array_equal(b.argmax(p, x), it.numpy())
    pb = p.replace(direction="bwd_d")
    if b.supports(pb) is None:
        dx = b.run(b.prepare(pb, x if alg == "max" else None), g)
        np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=1e-6, equal_nan=True)
