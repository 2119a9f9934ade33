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
