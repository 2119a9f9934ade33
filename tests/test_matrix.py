"""Matrix-equivalent backends: the operator itself, its nonzeros, the memory guard."""

from __future__ import annotations

import resource
import time

import numpy as np
import pytest

from convbench.backends import get_backend
from convbench.backends.matrix import operator_csr
from convbench.flops import operator_nnz
from convbench.problem import ConvProblem
from convbench.reference import conv2d_reference
from convbench.data import make_data
from tests.sweeps import cell_rows

CASES = ["mb1ic3ih7iw6oc2kh3kw3ph1pw1", "mb2ic2ih9oc4kh3sh2ph1", "mb1ic2ih8oc3kh3ph2dh1", "g2mb1ic4ih6oc6kh3ph1",
         "mb1ic2ih5oc2oh8kh3ph3", "mb1ic1ih10iw10oc1kh2kw3sh3sw2"]


@pytest.mark.parametrize("desc", CASES)
def test_operator_times_input_is_the_convolution(desc):
    p = ConvProblem.parse(desc)
    rng = np.random.default_rng(0)
    x = rng.standard_normal(p.input_shape)
    w = rng.standard_normal(p.weight_shape)
    A = operator_csr(p, w)
    assert A.shape == (p.oc * p.oh * p.ow, p.ic * p.ih * p.iw)
    y = (A @ x.reshape(p.mb, -1).T).T.reshape(p.output_shape)
    np.testing.assert_allclose(y, conv2d_reference(x, w, p), atol=1e-12)
    assert A.nnz == operator_nnz(p)  # nonzeros = in-bounds taps x channel pairs
    dense = get_backend("dense_matrix").prepare(p.replace(dtype="float64"), w).state
    blocks = [A[gi * p.ocg * p.oh * p.ow:(gi + 1) * p.ocg * p.oh * p.ow,
                gi * p.icg * p.ih * p.iw:(gi + 1) * p.icg * p.ih * p.iw].toarray() for gi in range(p.g)]
    for gi in range(p.g):
        np.testing.assert_array_equal(dense[gi].T, blocks[gi])


def test_pruned_weights_shrink_the_sparse_operator():
    p = ConvProblem.parse("mb1ic16ih12oc16kh3ph1")
    b = get_backend("sparse_csr")
    _, w1 = make_data(p, 1.0)
    _, w01 = make_data(p, 0.1)
    full, pruned = b.prepare(p, w1), b.prepare(p, w01)
    assert full.state.A.nnz == operator_nnz(p)
    assert 0.07 * operator_nnz(p) < pruned.state.A.nnz < 0.13 * operator_nnz(p)
    assert pruned.flops_executed == 2 * pruned.state.A.nnz  # the plan counts what it stores
    assert b.estimate(p).flops_executed == 2 * operator_nnz(p)  # the shape's estimate: all weights


@pytest.mark.parametrize("fmt", ["csr", "csc", "bsr"])
def test_forced_sparse_format_is_kept_and_correct(fmt):
    p = ConvProblem.parse("mb2ic8ih9oc8kh3ph1")
    b = get_backend("sparse_csr", sparse_format=fmt)
    x, w = make_data(p, 0.3)
    plan = b.prepare(p, w)
    y = b.run(plan, x)
    assert plan.state.fmt == fmt
    np.testing.assert_allclose(y, conv2d_reference(x.astype(np.float64), w.astype(np.float64), p),
                               rtol=1e-5, atol=1e-4)


def test_unknown_sparse_format_names_the_accepted_ones():
    with pytest.raises(ValueError, match="accepted are auto, csr, csc, bsr"):
        get_backend("sparse_csr", sparse_format="coo")


def test_dense_refuses_from_the_shape_before_allocating():
    b = get_backend("dense_matrix", memory_limit=1_000_000)
    p = ConvProblem.parse("mb1ic8ih16oc8kh3ph1")
    reason = b.supports(p)
    need = b.estimate(p).workspace_bytes
    assert reason and f"needs {need} bytes" in reason and "memory limit of 1000000" in reason
    assert need == (8 * 256) ** 2 * 4


def test_vgg_layer_refusal_is_fast_and_allocates_nothing():
    """The runner checks capabilities before it makes data or the reference."""
    p = ConvProblem.parse("mb1ic64ih224oc64kh3ph1")
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t0 = time.perf_counter()
    rows, out = cell_rows(p, ["dense_matrix"])
    elapsed = time.perf_counter() - t0
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert rows[0]["status"] == "skipped" and "bytes" in rows[0]["reason"] and not out.results[0].times
    assert rows[0]["workspace_bytes"] == (64 * 224 * 224) ** 2 * 4
    assert elapsed < 1.0 and grown_mb < 100  # data, not timing: the work is O(1) in the shape
