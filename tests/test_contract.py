"""The backend contract, for every registered backend (unavailable ones skip with a reason).

Each backend must produce the reference's shape and dtype, agree with the float64
reference within its declared tolerance on problems covering stride, padding,
dilation, groups, asymmetric padding and both dtypes, and raise ``Unsupported``
exactly where ``supports`` says it cannot run a problem.
"""

from __future__ import annotations

import math
import re

import numpy as np
import pytest

import convbench
from convbench.backends import get_backend
from convbench.backends.base import Backend, Capabilities, Estimate
from convbench.flops import direct_flops
from convbench.problem import ConvProblem
from convbench.data import check_output, make_case, make_data, reference_case, reference_output

from .conftest import PROBLEMS, PROBLEMS_1D, PROBLEMS_3D, backend_params


def declared_violations(c: Capabilities, p: ConvProblem) -> list[str]:
    """What a problem asks that the declared capabilities exclude, computed here from the data
    alone (not through ``supports``), so the contract cannot pass by restating the backend."""
    out = []
    wanted = {"fwd": c.forward, "bwd_d": c.transposed, "bwd_w": c.backward_weights}
    if not wanted[p.direction]:
        out.append("direction")
    if p.dtype not in c.dtypes:
        out.append("dtype")
    if p.rank not in c.ranks:
        out.append("rank")
    kernel = [getattr(p, "k" + a) for a in "dhw"[3 - p.rank:]]
    if c.kernel_sizes is not None and any(k not in c.kernel_sizes or k != kernel[0] for k in kernel):
        out.append("kernel")
    if c.max_kernel is not None and max(kernel) > c.max_kernel:
        out.append("kernel")
    if c.strides is not None and not {getattr(p, "s" + a) for a in "dhw"[3 - p.rank:]} <= set(c.strides):
        out.append("stride")
    if not c.dilation and any(getattr(p, "d" + a) for a in "dhw"[3 - p.rank:]):
        out.append("dilation")
    if not c.groups and p.g > 1:
        out.append("groups")
    if not c.asymmetric_padding and not p.torch_compatible:
        out.append("asymmetric")
    if c.max_calls is not None and p.mb * p.oc * p.icg > c.max_calls:
        out.append("library calls")
    return out


#: refusals a backend may add beyond its declared data, and the words its reason then uses
EXTRA_REFUSALS = ("memory limit", "output_padding", "negative padding")

#: every conv backend that declares bwd_w support, and those that must (the issue names them)
MUST_BWD_W = {"reference", "im2col_blas", "direct_numba", "fft_pyfftw", "fft_scipy", "winograd_f2x3",
              "winograd_f4x3", "winograd_f6x3", "torch_onednn"}


def _check_refusal(b, p, x, w):
    """A backend refuses a problem exactly when its declared capabilities (or a declared limit)
    exclude it, and every entry point refuses it with the same reason."""
    reason = b.supports(p)
    violations = declared_violations(b.capabilities, p)
    if violations:
        assert reason is not None, f"{b.name} accepts {p.label} although its capabilities exclude {violations}"
    if reason is None:
        return False
    assert violations or any(k in reason for k in EXTRA_REFUSALS), \
        f"{b.name} refuses {p.label} ({reason!r}) without a declared capability or limit that excludes it"
    with pytest.raises(convbench.Unsupported, match=re.escape(f"{b.name}: {reason}")):
        b.check(p)
    if p.torch_compatible and p.direction == "fwd":  # the public API refuses it the same way
        native = (lambda a: a.reshape(a.shape[:2] + a.shape[3:])) if p.rank == 1 else (lambda a: a)
        with pytest.raises(convbench.Unsupported, match=re.escape(reason)):
            getattr(convbench, f"conv{p.rank}d")(native(x), native(w), stride=p.own("s"), padding=p.own("p"),
                                                 dilation=tuple(d + 1 for d in p.own("d")), groups=p.g,
                                                 backend=b.name)
    return True


#: every rank: the 2-D problems, then 1-D and 3-D ones
ALL_RANKS = PROBLEMS + PROBLEMS_1D + PROBLEMS_3D
#: what the transposed test runs: a part of each rank's problems
TRANSPOSED = PROBLEMS[:14] + PROBLEMS_1D[::2] + PROBLEMS_3D[::2]


@pytest.mark.parametrize("name", backend_params())
@pytest.mark.parametrize("p", ALL_RANKS, ids=[p.label for p in ALL_RANKS])
def test_forward_matches_reference(name, p):
    b = get_backend(name)
    x, w = make_data(p)
    if _check_refusal(b, p, x, w):
        return
    y = b.run(b.prepare(p, w), x)
    assert y.shape == p.output_shape
    assert y.dtype == np.dtype(p.dtype)
    chk = check_output(y, reference_output(p, x, w), p, b.capabilities.tolerance(p.dtype, p))
    assert chk["status"] == "passed", chk


@pytest.mark.parametrize("name", backend_params())
@pytest.mark.parametrize("p", TRANSPOSED, ids=[p.label for p in TRANSPOSED])
def test_transposed_matches_reference(name, p):
    t = p.replace(direction="bwd_d")
    b = get_backend(name)
    x, w = make_data(t)
    if _check_refusal(b, t, x, w):
        return
    y = b.run(b.prepare(t, w), x)
    assert y.shape == t.dst_shape and y.dtype == np.dtype(t.dtype)
    chk = check_output(y, reference_output(t, x, w), t, b.capabilities.tolerance(t.dtype, t))
    assert chk["status"] == "passed", chk


@pytest.mark.parametrize("name", backend_params())
@pytest.mark.parametrize("p", ALL_RANKS, ids=[p.label for p in ALL_RANKS])
def test_weight_gradient_matches_reference(name, p):
    """bwd_w: dW = correlate(x, dY), checked against the float64 reference with the tolerance
    scaled by the length of its sums (mb*oh*ow)."""
    t = p.replace(direction="bwd_w")
    b = get_backend(name)
    if name in MUST_BWD_W:
        assert b.capabilities.backward_weights, f"{name} must implement the weight gradient"
    case = make_case(t)
    x, dy = case.inputs
    assert x.shape == t.input_shape and dy.shape == t.output_shape
    if _check_refusal(b, t, x, None):
        return
    dw = b.run(b.prepare(t, case.constant), x, dy)
    assert dw.shape == t.weight_shape and dw.dtype == np.dtype(t.dtype)
    chk = check_output(dw, reference_case(t, case), t, b.capabilities.tolerance(t.dtype, t))
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
def test_estimates_count_what_an_own_backend_does(name):
    b = get_backend(name)
    assert isinstance(b.capabilities, Capabilities)
    assert b.algorithm and b.name == name
    p = ConvProblem.parse("--dt=f64 mb1ic2ih8oc2kh3") if "float64" in b.capabilities.dtypes else \
        ConvProblem.parse("mb1ic2ih8oc2kh3")
    if b.capabilities.kernel_sizes:
        k = b.capabilities.kernel_sizes[0]
        p = p.replace(kh=k, kw=k, ih=8 + k, iw=8 + k)
    est = b.estimate(p)
    assert b.estimate(p) is est  # computed once per problem
    if b.role == "peer":  # a peer library's internals are not counted
        assert math.isnan(est.flops_executed)
    else:  # an own backend counts what it does: a positive, finite number (NaN would fail here)
        assert math.isfinite(est.flops_executed) and est.flops_executed >= direct_flops(p) * 0.05
        assert 0 < est.flops_multiply <= est.flops_executed
        assert est.workspace_bytes is not None and est.workspace_bytes >= 0
    if b.supports(p) is None:
        plan = b.prepare(p, make_data(p)[1])
        assert plan.problem == p and isinstance(plan.note, str)
        if b.role != "peer":  # the plan's own accounting, of the same order as the estimate
            assert math.isfinite(plan.flops_executed) and plan.flops_executed > 0


def test_unsupported_is_not_implemented_error():
    assert issubclass(convbench.Unsupported, NotImplementedError)


def test_unknown_backend_lists_available():
    with pytest.raises(ValueError, match="available: .*im2col_blas"):
        convbench.get_backend("nope")
    with pytest.raises(ValueError, match="im2col_blas: unknown option\\(s\\) fftw_effort; accepted: none"):
        convbench.get_backend("im2col_blas", fftw_effort="measure")
    assert "im2col_blas" in convbench.available_backends()
    assert "direct_numba" in convbench.available_backends()
    assert "reference" in convbench.available_backends()


def test_memory_limit_refuses_from_shape_alone():
    class Hungry(Backend):
        name = "hungry"
        algorithm = "test"

        def _estimate(self, p):
            return Estimate(workspace_bytes=10 ** 12)

        def prepare(self, p, w):  # pragma: no cover - must never be reached
            raise AssertionError("prepare called despite the memory limit")

    reason = Hungry(memory_limit=1000).supports(ConvProblem.parse("mb1ic2ih8oc2kh3"))
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


def test_per_call_peers_count_images_too():
    b = convbench.get_backend("scipy_ndimage")
    assert b.supports(ConvProblem.parse("mb1ic32ih8oc32kh3")) is None          # 1024 calls
    reason = b.supports(ConvProblem.parse("mb100000ic16ih16oc16kh3"))         # 25.6M calls
    assert reason == ("25600000 library calls (images x channel pairs) exceed this per-pair loop's limit "
                      "of 1024")
