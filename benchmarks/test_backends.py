"""pytest-benchmark suite: the CI problem set x every available backend.

    pytest benchmarks/ --benchmark-autosave           # record
    pytest benchmarks/ --benchmark-compare            # compare with the last record
    convbench compare .benchmarks/.../0001_x.json .benchmarks/.../0002_y.json

Each case prepares its plan (JIT, transforms, planning) outside the timed call, checks
the output against the float64 reference once, and only then times ``run``. Benchmarks
are grouped by problem; ``extra_info`` carries the problem and backend so that
``convbench compare`` matches the cells of two saved files.
"""

from __future__ import annotations

import pytest

from convbench.backends import available_backends, get_backend
from convbench.flops import direct_flops
from convbench.data import check_output, make_data, reference_output
from convbench.suites import load_suite

PROBLEMS = [e.problem for e in load_suite("ci")]
BACKENDS = [b for b in available_backends() if b != "reference"]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("problem", PROBLEMS, ids=[p.descriptor for p in PROBLEMS])
def test_conv(benchmark, problem, backend):
    b = get_backend(backend)
    reason = b.supports(problem)
    if reason is not None:
        pytest.skip(reason)
    x, w = make_data(problem)
    plan = b.prepare(problem, w)
    chk = check_output(b.run(plan, x), reference_output(problem, x, w), problem,
                       b.capabilities.tolerance(problem.dtype))
    assert chk["status"] == "passed", chk
    benchmark.group = problem.label
    benchmark.extra_info.update(problem=problem.label, backend=backend, flops_direct=direct_flops(problem))
    benchmark(b.run, plan, x)
