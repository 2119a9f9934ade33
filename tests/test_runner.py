"""The runner: cell states, verification, rows on disk."""

from __future__ import annotations

import numpy as np
import pytest

from convbench import backends as reg
from convbench.problem import ConvProblem
from convbench.results import ResultWriter, load_samples, load_summary
from convbench.runner import RunConfig, check_output, make_data, run_sweep
from convbench.sentinel import SENTINEL
from convbench.sweep import InvalidProblem, expand_grid
from convbench.timing import TimingConfig

FAKES = {"fake_wrong": "tests.fakes:WrongBackend", "fake_crash": "tests.fakes:CrashBackend",
         "fake_nan": "tests.fakes:NanBackend", "fake_f64only": "tests.fakes:NarrowBackend"}
FAST = TimingConfig(round_time=0, min_rounds=2, min_time=0.0, max_time=0.01, warmup_time=0)


@pytest.fixture
def fakes(monkeypatch):
    monkeypatch.setattr(reg, "REGISTRY", {**reg.REGISTRY, **FAKES})
    reg.backend_class.cache_clear()
    reg.unavailable_reason.cache_clear()
    yield list(FAKES)
    reg.backend_class.cache_clear()
    reg.unavailable_reason.cache_clear()


def test_make_data_is_deterministic_integer_and_pruned():
    p = ConvProblem.parse("mb1ic4ih8oc4kh3")
    x1, w1 = make_data(p)
    x2, w2 = make_data(p)
    assert np.array_equal(x1, x2) and np.array_equal(w1, w2)
    assert np.all(x1 == np.round(x1)) and x1.min() >= -2 and x1.max() <= 2
    assert np.count_nonzero(w1) == w1.size
    _, wp = make_data(ConvProblem.parse("mb1ic64ih8oc64kh3"), weight_density=0.1)
    assert 0.07 < np.count_nonzero(wp) / wp.size < 0.13


def test_check_output_states():
    p = ConvProblem.parse("mb1ic1ih8oc1kh3")
    ref = np.arange(36, dtype=np.float64).reshape(p.output_shape)
    ok = check_output(ref.astype(np.float32), ref, p, 1e-6)
    assert ok["status"] == "passed" and ok["max_abs_err"] == 0
    assert check_output(ref.astype(np.float32) + 1, ref, p, 1e-6)["status"] == "mistrusted"
    bad = ref.astype(np.float32)
    bad[0, 0, 0, 0] = np.inf
    assert check_output(bad, ref, p, 1e-6)["reason"] == "output contains NaN or Inf"
    assert "shape" in check_output(ref[..., :3].astype(np.float32), ref, p, 1e-6)["reason"]
    assert "dtype" in check_output(ref, ref, p, 1e-6)["reason"]
    # one wrong pixel in many cannot hide in the norm
    big = ConvProblem.parse("mb1ic1ih300oc1kh1")
    rb = np.ones(big.output_shape)
    yb = rb.astype(np.float32)
    yb[0, 0, 0, 0] = 2
    assert check_output(yb, rb, big, 1e-2)["status"] == "mistrusted"


def test_every_cell_state_is_recorded_and_the_sweep_goes_on(tmp_path, fakes):
    probs = [ConvProblem.parse("mb1ic4ih8oc4kh3ph1"), InvalidProblem("mb1ic1ih2oc1kh5", "kernel too big"),
             ConvProblem.parse("mb1ic2ih6oc2kh3")]
    cfg = RunConfig(problems=probs, backends=["im2col_blas"] + fakes, timing=FAST)
    w = ResultWriter(tmp_path)
    res = run_sweep(cfg, w)
    w.close()
    assert not res["interrupted"] and res["problems"] == 3
    df = load_summary(tmp_path)
    cell = {(r.problem, r.backend): r for r in df.itertuples()}
    p0 = probs[0].label
    assert cell[(p0, "im2col_blas")].status == "passed"
    assert cell[(p0, "im2col_blas")].time_median_s > 0
    assert cell[(p0, "im2col_blas")].max_abs_err == 0
    assert cell[(p0, "fake_wrong")].status == "mistrusted"
    assert np.isnan(cell[(p0, "fake_wrong")].time_median_s)  # a wrong answer is never a timing
    assert cell[(p0, "fake_crash")].status == "failed"
    assert "kaboom in run" in cell[(p0, "fake_crash")].reason
    assert cell[(p0, "fake_nan")].status == "failed"
    assert cell[(p0, "fake_f64only")].status == "skipped"
    assert "dtype float32 not supported" in cell[(p0, "fake_f64only")].reason
    assert cell[("mb1ic1ih2oc1kh5", "*")].status == "skipped"
    assert cell[(probs[2].label, "im2col_blas")].status == "passed"  # the sweep went on
    samples = load_samples(tmp_path)
    assert set(samples.backend) == {"im2col_blas", SENTINEL}  # drift sentinel rounds ride along
    assert (samples.groupby(["problem", "backend"]).size() >= 2).all()


def test_over_budget_is_skipped_with_reason(tmp_path):
    cfg = RunConfig(problems=[ConvProblem.parse("mb1ic4ih8oc4kh3")], backends=["im2col_blas"],
                    timing=FAST, cell_budget_s=1e-9)
    w = ResultWriter(tmp_path)
    run_sweep(cfg, w)
    w.close()
    r = load_summary(tmp_path).iloc[0]
    assert r.status == "skipped" and "over budget" in r.reason


def test_grid_reports_invalid_points():
    grid = expand_grid(sizes=[(4, 4), (16, 16)], kernels=[(3, 3), (7, 7)], strides=[1, 2],
                       channels=[2], padding=["valid", "same"])
    assert len(grid) == 16
    bad = [g for g in grid if isinstance(g, InvalidProblem)]
    assert bad and all("larger than the padded input" in b.reason for b in bad)
    same = [g for g in grid if not isinstance(g, InvalidProblem) and g.ih == 16 and g.kh == 7 and g.sh == 2
            and g.ph == 2]
    assert same and same[0].oh == 8  # TF SAME: ceil(16 / 2)
