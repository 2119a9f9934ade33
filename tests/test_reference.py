"""The oracle itself: checked against a literal seven-loop implementation and PyTorch."""

from __future__ import annotations

import numpy as np
import pytest

from convbench.problem import ConvProblem
from convbench.reference import conv2d_reference, conv_transpose2d_reference

from .conftest import requires_torch


def loops(x, w, p):
    """The textbook definition, one multiply-add at a time (tiny problems only)."""
    y = np.zeros(p.output_shape)
    for n in range(p.mb):
        for o in range(p.oc):
            gi = o // p.ocg
            for i in range(p.oh):
                for j in range(p.ow):
                    acc = 0.0
                    for c in range(p.icg):
                        for r in range(p.kh):
                            for s in range(p.kw):
                                hi = i * p.sh - p.ph + r * (p.dh + 1)
                                wi = j * p.sw - p.pw + s * (p.dw + 1)
                                if 0 <= hi < p.ih and 0 <= wi < p.iw:
                                    acc += w[o, c, r, s] * x[n, gi * p.icg + c, hi, wi]
                    y[n, o, i, j] = acc
    return y


CASES = ["mb2ic4ih6iw7oc6kh3kw2sh2ph1dh1dw1", "g2mb1ic4ih5oc6kh3ph2", "mb1ic2ih5oc3oh8kh3ph3",
         "g3mb1ic3ih7oc3kh3sh2ph1", "mb1ic2ih9oc2oh3kh3sh3"]


@pytest.mark.parametrize("text", CASES)
def test_reference_equals_loops(text):
    p = ConvProblem.parse(text)
    rng = np.random.default_rng(0)
    x = rng.standard_normal(p.input_shape)
    w = rng.standard_normal(p.weight_shape)
    np.testing.assert_allclose(conv2d_reference(x, w, p), loops(x, w, p), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("text", CASES)
def test_transposed_reference_is_the_adjoint(text):
    """<conv(x), y> == <x, conv_T(y)> for random x, y: the defining property."""
    p = ConvProblem.parse(text)
    rng = np.random.default_rng(1)
    x = rng.standard_normal(p.input_shape)
    yy = rng.standard_normal(p.output_shape)
    w = rng.standard_normal(p.weight_shape)
    lhs = np.vdot(conv2d_reference(x, w, p), yy)
    rhs = np.vdot(x, conv_transpose2d_reference(yy, w, p.replace(direction="bwd_d")))
    assert abs(lhs - rhs) < 1e-9 * max(1.0, abs(lhs))


@requires_torch
@pytest.mark.parametrize("text", [c for c in CASES if ConvProblem.parse(c).torch_compatible])
def test_reference_equals_torch(text):
    import torch
    p = ConvProblem.parse(text)
    rng = np.random.default_rng(2)
    x = rng.standard_normal(p.input_shape)
    w = rng.standard_normal(p.weight_shape)
    t = torch.nn.functional.conv2d(torch.from_numpy(x), torch.from_numpy(w), stride=(p.sh, p.sw),
                                   padding=(p.ph, p.pw), dilation=(p.dh + 1, p.dw + 1), groups=p.g).numpy()
    np.testing.assert_allclose(conv2d_reference(x, w, p), t, rtol=1e-10, atol=1e-10)


# ---------------------------------------------------------------------------- 1-D and 3-D
def loops3d(x, w, p):
    """The textbook 3-D definition, one multiply-add at a time."""
    y = np.zeros(p.output_shape)
    for n in range(p.mb):
        for o in range(p.oc):
            gi = o // p.ocg
            for a in range(p.od):
                for i in range(p.oh):
                    for j in range(p.ow):
                        acc = 0.0
                        for c in range(p.icg):
                            for q in range(p.kd):
                                for r in range(p.kh):
                                    for s in range(p.kw):
                                        di = a * p.sd - p.pd + q * (p.dd + 1)
                                        hi = i * p.sh - p.ph + r * (p.dh + 1)
                                        wi = j * p.sw - p.pw + s * (p.dw + 1)
                                        if 0 <= di < p.id and 0 <= hi < p.ih and 0 <= wi < p.iw:
                                            acc += w[o, c, q, r, s] * x[n, gi * p.icg + c, di, hi, wi]
                        y[n, o, a, i, j] = acc
    return y


CASES_3D = ["mb1ic2id4ih5iw3oc3kd2kh3kw2sd2ph1dw1", "g2mb2ic4id3oc2kd3pd1", "mb1ic1id5ih4iw4oc2od4kd3kh2kw2pd1"]


@pytest.mark.parametrize("text", CASES_3D)
def test_3d_reference_equals_loops(text):
    from convbench.reference import conv_reference
    p = ConvProblem.parse(text)
    rng = np.random.default_rng(3)
    x = rng.standard_normal(p.input_shape)
    w = rng.standard_normal(p.weight_shape)
    np.testing.assert_allclose(conv_reference(x, w, p), loops3d(x, w, p), rtol=1e-12, atol=1e-12)


@requires_torch
@pytest.mark.parametrize("text", ["mb2ic4iw17oc6kw3sw2pw1dw1", "g2mb1ic4iw9oc2kw4pw2", "mb2ic3id5ih6iw7oc4kd3kh2kw3sd2ph1",
                                  "g3mb1ic3id6oc6kd3sd2pd1dd1"])
def test_1d_and_3d_oracles_equal_torch(text):
    """conv, its transpose, its weight gradient and pooling at ranks 1 and 3 against torch."""
    import torch
    from convbench.problem import PoolProblem
    from convbench.reference import conv_reference, conv_transpose_reference, conv_weight_reference, pool_reference
    p = ConvProblem.parse(text)
    n = p.rank
    conv = {1: torch.nn.functional.conv1d, 3: torch.nn.functional.conv3d}[n]
    rng = np.random.default_rng(5)
    x = rng.standard_normal(p.input_shape)
    w = rng.standard_normal(p.weight_shape)
    dy = rng.standard_normal(p.output_shape)
    sq = (lambda a: a[:, :, 0]) if n == 1 else (lambda a: a)  # a 1-D problem is laid out NC1W
    kw = dict(stride=tuple(ax.s for ax in p.axes)[-n:], padding=tuple(ax.p for ax in p.axes)[-n:],
              dilation=tuple(ax.d + 1 for ax in p.axes)[-n:], groups=p.g)
    xt, wt = torch.from_numpy(sq(x)).requires_grad_(), torch.from_numpy(sq(w)).requires_grad_()
    yt = conv(xt, wt, **kw)
    np.testing.assert_allclose(sq(conv_reference(x, w, p)), yt.detach().numpy(), rtol=1e-10, atol=1e-10)
    yt.backward(torch.from_numpy(sq(dy)))
    np.testing.assert_allclose(sq(conv_transpose_reference(dy, w, p)), xt.grad.numpy(), rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(sq(conv_weight_reference(x, dy, p)), wt.grad.numpy(), rtol=1e-10, atol=1e-10)
    q = PoolProblem.from_torch_args(sq(x).shape, 2, 2, 1 if min(p.spatial) > 2 else 0, alg="max")
    pool = {1: torch.nn.functional.max_pool1d, 3: torch.nn.functional.max_pool3d}[n]
    yq, iq = pool(torch.from_numpy(sq(x)), 2, 2, q.pw, return_indices=True)
    y, arg = pool_reference(x.reshape(q.input_shape), q)
    np.testing.assert_array_equal(sq(y), yq.numpy())
    np.testing.assert_array_equal(sq(arg), iq.numpy())
