"""The backend contract, for every registered backend (unavailable ones skip with a reason).

Each backend must produce the reference's shape and dtype, agree with the float64
reference within its declared tolerance on problems covering stride, padding,
dilation, groups, asymmetric padding and both dtypes, and raise ``Unsupported``
exactly where ``supports`` says it cannot run a problem.
"""

from __future__ import annotations

import numpy as np
import pytest

import convbench
from convbench.backends import get_backend
from convbench.backends.base import Backend, Capabilities
from convbench.problem import ConvProblem
from convbench.runner import check_output, make_data, reference_output

from .conftest import PROBLEMS, backend_params


@pytest.mark.parametrize("name", backend_params())
@pytest.mark.parametrize("p", PROBLEMS, ids=[p.label for p in PROBLEMS])
def test_forward_matches_reference(name, p):
    b = get_backend(name)
    reason = b.supports(p)
    x, w = make_data(p)
    if reason is not None:
        with pytest.raises(convbench.Unsupported, match=name):
            b.check(p)
        if p.torch_compatible:  # the public API refuses it the same way
            with pytest.raises(convbench.Unsupported, match=name):
                convbench.conv2d(x, w, stride=(p.sh, p.sw), padding=(p.ph, p.pw),
                                 dilation=(p.dh + 1, p.dw + 1), groups=p.g, backend=name)
        return
    y = b.run(b.prepare(p, w), x)
    assert y.shape == p.output_shape
    assert y.dtype == np.dtype(p.dtype)
    chk = check_output(y, reference_output(p, x, w), p, b.capabilities.tolerance(p.dtype))
    assert chk["status"] == "passed", chk


@pytest.mark.parametrize("name", backend_params())
@pytest.mark.parametrize("p", PROBLEMS[:14], ids=[p.label for p in PROBLEMS[:14]])
def test_transposed_matches_reference(name, p):
    t = p.replace(transposed=True)
    b = get_backend(name)
    reason = b.supports(t)
    if reason is not None:
        with pytest.raises(convbench.Unsupported):
            b.check(t)
        return
    x, w = make_data(t)
    y = b.run(b.prepare(t, w), x)
    assert y.shape == t.dst_shape and y.dtype == np.dtype(t.dtype)
    chk = check_output(y, reference_output(t, x, w), t, b.capabilities.tolerance(t.dtype))
    assert chk["status"] == "passed", chk


@pytest.mark.parametrize("name", backend_params())
def test_plan_is_reusable_and_does_not_alias_outputs(name):
    b = get_backend(name)
    p = ConvProblem.parse("mb2ic8ih10oc8kh3ph1" if getattr(b, "r", 3) == 3 else "mb2ic8ih10oc8kh5ph2")
    if b.supports(p) is not None:
        pytest.skip(b.supports(p))
    x, w = make_data(p)
    plan = b.prepare(p, w)
    y1 = b.run(plan, x).copy()
    y2 = b.run(plan, x * 2)
    y3 = b.run(plan, x)
    np.testing.assert_allclose(y2, 2 * y1, rtol=1e-5)
    np.testing.assert_allclose(y3, y1, rtol=1e-6)


@pytest.mark.parametrize("name", backend_params())
def test_declared_capabilities_drive_supports(name):
    b = get_backend(name)
    c = b.capabilities
    assert isinstance(c, Capabilities)
    assert b.algorithm and b.name == name
    p64 = ConvProblem.parse("--dt=f64 mb1ic2ih8oc2kh3")
    if "float64" not in c.dtypes:
        assert "dtype" in b.supports(p64)
    k = c.kernel_sizes[0][0] if c.kernel_sizes else 3
    if c.strides is not None:
        bad = max(c.strides) + 1
        assert "stride" in b.supports(ConvProblem.parse(f"mb1ic2ih16oc2kh{k}sh{bad}"))
    if not c.dilation:
        assert "dilation" in b.supports(ConvProblem.parse(f"mb1ic2ih16oc2kh{k}dh1"))
    fl = b.flops(p64)
    assert fl != fl or fl > 0  # NaN (unknown, peers) or a positive count


def test_unsupported_is_not_implemented_error():
    assert issubclass(convbench.Unsupported, NotImplementedError)


def test_unknown_backend_lists_available():
    with pytest.raises(ValueError, match="available: .*im2col_blas"):
        convbench.get_backend("nope")
    assert "im2col_blas" in convbench.available_backends()
    assert "direct_numba" in convbench.available_backends()
    assert "reference" in convbench.available_backends()


def test_memory_limit_refuses_from_shape_alone():
    class Hungry(Backend):
        name = "hungry"
        algorithm = "test"
        capabilities = Capabilities(memory_limit_bytes=1000)

        def workspace_bytes(self, p):
            return 10 ** 12

        def prepare(self, p, w):  # pragma: no cover - must never be reached
            raise AssertionError("prepare called despite the memory limit")

    reason = Hungry().supports(ConvProblem.parse("mb1ic2ih8oc2kh3"))
    assert reason and "1000000000000 bytes" in reason and "memory limit" in reason


@pytest.mark.parametrize("name", backend_params())
@pytest.mark.parametrize("desc", ["mb1ic1ih8oc1kh3ph1", "mb1ic3ih8oc1kh3ph1"])
def test_plan_owns_its_weights_and_outputs_are_fresh(name, desc):
    """Changing the caller's weights after prepare must not change the plan, and two runs
    must return distinct arrays (single-channel shapes make accidental views likely)."""
    p = ConvProblem.parse(desc)
    b = get_backend(name)
    if b.supports(p) is not None:
        pytest.skip(b.supports(p))
    x, w = make_data(p)
    plan = b.prepare(p, w)
    y1 = b.run(plan, x)
    keep = y1.copy()
    w[...] = 0
    y2 = b.run(plan, 2 * x)
    assert not np.shares_memory(y1, y2)
    np.testing.assert_array_equal(y1, keep)
    np.testing.assert_allclose(y2, 2 * keep, rtol=1e-5, atol=1e-4)
