"""The runner: cell states, verification, rows on disk."""

from __future__ import annotations

import numpy as np
import pytest

from convbench import backends as reg
from convbench.problem import ConvProblem
from convbench.data import check_output, make_data
from convbench.problem import InvalidProblem
from convbench.results import load_samples, load_summary
from convbench.sentinel import SENTINEL
from convbench.sweep import expand_grid
from tests.sweeps import cell_rows, sweep

FAKES = {"fake_wrong": "tests.fakes:WrongBackend", "fake_crash": "tests.fakes:CrashBackend",
         "fake_nan": "tests.fakes:NanBackend", "fake_f64only": "tests.fakes:NarrowBackend"}


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
    res = sweep(tmp_path, probs, ["im2col_blas"] + fakes)
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
    sweep(tmp_path, [ConvProblem.parse("mb1ic4ih8oc4kh3")], ["im2col_blas"], cell_budget=1e-9)
    r = load_summary(tmp_path).iloc[0]
    assert r.status == "skipped" and "over budget" in r.reason


def test_grid_reports_invalid_points():
    grid = expand_grid(sizes=[(4, 4), (16, 16)], kernels=[(3, 3), (7, 7)], strides=[1, 2],
                       channels=[2], padding=["valid", "same"])
    assert len(grid) == 16
    bad = [g for g in grid if not g.valid]
    assert bad and all("larger than the padded input" in b.reason for b in bad)
    same = [g for g in grid if g.valid and g.ih == 16 and g.kh == 7 and g.sh == 2
            and g.ph == 2]
    assert same and same[0].oh == 8  # TF SAME: ceil(16 / 2)


# ---------------------------------------------------------------------------- hostile inputs
def test_zero_reference_is_judged_by_absolute_error():
    p = ConvProblem.parse("mb1ic1ih4oc1kh3ph1")
    ref = np.zeros(p.output_shape)
    exact = check_output(np.zeros(p.output_shape, np.float32), ref, p, 1e-6, bound=36.0)
    assert exact["status"] == "passed" and exact["rel_err"] == 0 and exact["max_abs_err"] == 0
    noisy = np.full(p.output_shape, 2e-5, np.float32)  # FFT round-off around a zero output
    ok = check_output(noisy, ref, p, 1e-4, bound=36.0)   # within 1e-4 * 36
    assert ok["status"] == "passed" and np.isnan(ok["rel_err"])
    bad = check_output(noisy, ref, p, 1e-6, bound=1.0)
    assert bad["status"] == "mistrusted" and "reference is all zeros" in bad["reason"]


def test_windows_reading_only_padding_run_and_report(tmp_path):
    """benchdnn's 'brgemm_perform_outwork': flops_direct is 0, the reference is all zeros."""
    from convbench.reporting import write_report
    p = ConvProblem.parse("mb2ic48ih23iw12oc134oh12ow4kh2kw1sh2sw13ph1pw14")
    from convbench.flops import problem_counts
    assert problem_counts(p)["flops_direct"] == 0
    sweep(tmp_path, [p], ["im2col_blas", "direct_numba", "fft_scipy", "fft_pyfftw"])
    from convbench.results import write_meta
    write_meta(tmp_path, {"tool": "convbench", "schema_version": 2, "config": {}})
    df = load_summary(tmp_path)
    assert (df.status == "passed").all(), df[["backend", "status", "reason"]]
    assert (df.max_abs_err[df.backend.isin(["im2col_blas", "direct_numba"])] == 0).all()
    warnings = []
    write_report(tmp_path, plots=True, warn=warnings.append)  # no ZeroDivisionError anywhere
    assert not warnings
    assert "(n/a)" in (tmp_path / "tables.md").read_text()


def test_fft_reads_no_memory_it_never_wrote():
    """The FFT buffers the plans read are all written first: the same problem gives the same
    output from fresh plans on differently filled memory, and warnings are errors here."""
    import warnings
    from convbench.backends import get_backend
    p = ConvProblem.parse("mb2ic48ih23iw12oc134oh12ow4kh2kw1sh2sw13ph1pw14")
    x, w = make_data(p)
    for name in ("fft_scipy", "fft_pyfftw"):
        b = get_backend(name)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            plan = b.prepare(p, w)
            y = b.run(plan, x)
        assert np.all(np.isfinite(y)) and np.max(np.abs(y)) < 1e-3, name


@pytest.mark.parametrize("argv_problem, fragment", [
    ("mb1ic16ih100000oc16kh3", "the test data and float64 reference need"),     # --sizes 100000
    ("mb1ic100000ih14oc100000kh3ph1", "the test data and float64 reference need"),  # 100000 channels
    ("mb100000ic16ih64oc16kh3ph1", "the test data and float64 reference need"),    # --batch 100000
])
def test_huge_problems_are_refused_from_the_shape(tmp_path, argv_problem, fragment):
    import resource
    p = ConvProblem.parse(argv_problem)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # backends without a workspace limit of their own: only the harness estimate stands in the way
    names = ["direct_numba", "winograd_f4x3"]
    rows, out = cell_rows(p, names, limit=8 << 30)
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert not any(r.times for r in out.results) and all(r["status"] == "skipped" for r in rows)
    assert all(fragment in r["reason"] and "bytes" in r["reason"] and "over the cell memory limit of 8589934592"
               in r["reason"] for r in rows)
    assert grown_mb < 200  # nothing of the problem's size was allocated


def test_a_cell_over_the_limit_is_skipped_and_the_others_run():
    """mb64ic64ih224oc64kh3ph1 in miniature: harness plus im2col's columns over the limit, the
    direct loop under it."""
    from convbench.data import harness_bytes
    from convbench.runner import cell_bytes
    from convbench.backends import get_backend
    p = ConvProblem.parse("mb2ic16ih40oc16kh3ph1")
    hb = harness_bytes(p)
    im2col = cell_bytes(p, get_backend("im2col_blas").estimate(p))
    direct = cell_bytes(p, get_backend("direct_numba").estimate(p))
    assert direct < im2col
    limit = hb + (direct + im2col) // 2
    rows, _ = cell_rows(p, ["im2col_blas", "direct_numba"], limit=limit)
    by = {r["backend"]: r for r in rows}
    assert by["im2col_blas"]["status"] == "skipped" and f"needs {hb + im2col} bytes" in by["im2col_blas"]["reason"]
    assert by["direct_numba"]["status"] == "passed"


def test_reference_in_chunks_equals_the_whole(monkeypatch):
    from convbench import data as runner
    p = ConvProblem.parse("mb5ic3ih9oc4kh3sh2ph1")
    x, w = make_data(p)
    whole = runner.reference_output(p, x, w)
    monkeypatch.setattr(runner, "REF_CHUNK_BYTES", 1)  # one image per chunk
    assert runner._ref_batch_chunk(p) == 1
    np.testing.assert_array_equal(runner.reference_output(p, x, w), whole)
    t = p.replace(direction="bwd_d")
    xt, wt = make_data(t)
    monkeypatch.setattr(runner, "REF_CHUNK_BYTES", 1 << 30)
    full_t = runner.reference_output(t, xt, wt)
    monkeypatch.setattr(runner, "REF_CHUNK_BYTES", 1)
    np.testing.assert_array_equal(runner.reference_output(t, xt, wt), full_t)


def test_cell_memory_limit_sources(monkeypatch):
    from convbench.runner import cell_memory_limit
    assert cell_memory_limit(123) == (123, "--memory-limit")
    monkeypatch.setenv("CONVBENCH_MEMORY_LIMIT", "2G")
    assert cell_memory_limit() == (2 << 30, "CONVBENCH_MEMORY_LIMIT")
    monkeypatch.delenv("CONVBENCH_MEMORY_LIMIT")
    limit, src = cell_memory_limit()
    assert 0 < limit and "margin" in src


def test_explicit_output_size_is_noted_in_every_row(tmp_path):
    p = ConvProblem.parse("mb1ic4ih5oc4oh8kh3ph3")
    rows, _ = cell_rows(p, ["im2col_blas", "winograd_f4x3"])
    assert all("oh implies asymmetric padding: bottom 2 vs top 3" in r["note"] for r in rows)


def test_plans_timed_together_must_fit_together():
    """Interleaved timing keeps every admitted plan alive: the second backend whose plan would
    not fit next to the first one's is skipped (a --batch 100000 sweep was OOM-killed when each
    cell fitted alone)."""
    from convbench.backends import get_backend
    from convbench.data import harness_bytes
    from convbench.runner import cell_bytes
    p = ConvProblem.parse("mb2ic16ih40oc16kh3ph1")
    hb = harness_bytes(p)
    a = cell_bytes(p, get_backend("direct_numba").estimate(p))
    b = cell_bytes(p, get_backend("im2col_blas").estimate(p))
    limit = hb + max(a, b) + min(a, b) // 2  # each fits alone, both do not
    rows, _ = cell_rows(p, ["direct_numba", "im2col_blas"], limit=limit)
    by = {r["backend"]: r for r in rows}
    assert by["direct_numba"]["status"] == "passed"
    assert by["im2col_blas"]["status"] == "skipped"
    assert "next to the test data and the plans of the backends timed with it" in by["im2col_blas"]["reason"]


# ---------------------------------------------------------------------------- the runner's steps, one by one
def _ctx(backends, **kw):
    from convbench.runner import Context
    from tests.sweeps import config
    return Context.build(config([], backends, **kw))


def test_admit_decides_from_the_shape_alone(fakes):
    """admit: capabilities, budget evidence and memory, with nothing allocated; every refusal
    has its reason and the admitted keep their order."""
    import resource

    from convbench.cells import Cell
    from convbench.runner import admit, make_backends
    from tests.sweeps import config
    huge = ConvProblem.parse("mb1ic16ih100000oc16kh3")
    instances = make_backends(config([], ["im2col_blas", "direct_numba", "fake_f64only"]))
    instances["broken"] = RuntimeError("no library")
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    adm, refused = admit(Cell(huge), ["im2col_blas", "direct_numba", "fake_f64only", "broken"], instances,
                         (1 << 30, "test"), budget_skips={"direct_numba": "over budget: evidence"})
    assert (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024 < 100
    assert not adm
    why = {r.backend: (r.status, r.reason) for r in refused}
    assert why["broken"] == ("failed", "cannot build the backend: RuntimeError: no library")
    assert why["direct_numba"] == ("skipped", "over budget: evidence")
    assert why["fake_f64only"][0] == "skipped" and "dtype float32 not supported" in why["fake_f64only"][1]
    assert why["im2col_blas"][0] == "skipped" and "bytes" in why["im2col_blas"][1]  # its own limit, or the cell's
    small = ConvProblem.parse("mb1ic4ih8oc4kh3")
    adm, refused = admit(Cell(small), ["direct_numba", "im2col_blas"], instances, (1 << 30, "test"))
    assert [a.result.backend for a in adm] == ["direct_numba", "im2col_blas"] and not refused
    assert all(a.result.role == "own" and a.copies == 1 for a in adm)


def test_prepare_and_verify_states(fakes):
    from convbench.cells import Cell
    from convbench.data import make_case, output_bound, reference_case
    from convbench.runner import admit, prepare_and_verify
    p = ConvProblem.parse("mb1ic4ih8oc4kh3ph1")
    ctx = _ctx(["im2col_blas", "fake_wrong", "fake_crash"], cell_budget=30.0)
    case = make_case(p)
    ref, bound = reference_case(p, case), output_bound(p, case)
    adm, _ = admit(Cell(p), ["im2col_blas", "fake_wrong", "fake_crash"], ctx.instances, (1 << 30, "test"))
    plans = {a.result.backend: prepare_and_verify(Cell(p), a, case, ref, bound, ctx) for a in adm}
    res = {a.result.backend: a.result for a in adm}
    assert plans["im2col_blas"] is not None and res["im2col_blas"].status == "passed"
    assert res["im2col_blas"].check["max_abs_err"] == 0 and res["im2col_blas"].prepare_s >= 0
    assert plans["fake_wrong"] is None and res["fake_wrong"].status == "mistrusted"
    assert plans["fake_crash"] is None and res["fake_crash"].status == "failed"
    assert "kaboom in run" in res["fake_crash"].reason
    ctx.config = ctx.config.replace(cell_budget=1e-12)  # one run over the budget: verified, then skipped
    (a,), _ = admit(Cell(p), ["im2col_blas"], ctx.instances, (1 << 30, "test"))
    assert prepare_and_verify(Cell(p), a, case, ref, bound, ctx) is None
    assert a.result.status == "skipped" and a.result.reason.startswith("over budget: one run took")


def test_time_backends_interleaves_and_keeps_going_past_a_failure():
    from convbench.timing import TimingConfig
    from convbench.runner import time_backends
    order = []

    def ok():
        order.append("ok")

    def flaky():
        order.append("flaky")
        if order.count("flaky") > 3:
            raise RuntimeError("gave up")
    timing = TimingConfig(round_time=1e-6, min_rounds=4, min_time=0.0, max_time=1.0, warmup_time=0.0)
    benches, errors = time_backends({"ok": ok, "flaky": flaky}, {"ok": 1.0, "flaky": 1.0}, timing)
    assert list(benches) == ["ok"] and benches["ok"].rounds >= 4
    assert errors == {"flaky": "during timing: RuntimeError: gave up"}
    assert "ok" in order[order.index("flaky"):]  # rounds alternate: the loop went on after flaky's


def test_finish_summarises_the_rounds_and_flags_extra_cores():
    from convbench.cells import CellResult
    from convbench.runner import finish
    from convbench.timing import Bench
    b = Bench(lambda: None)
    b.times, b.iterations, b.timed_s, b.cpu_s = [3.0, 1.0, 2.0], 4, 1.0, 2.2
    r = finish(CellResult("x"), b, threads=1)
    assert r.stats["median"] == 2.0 and r.times == [3.0, 1.0, 2.0] and r.iterations == 4
    assert r.notes == ["used 2.2 cores with --threads 1"]
    assert finish(CellResult("y"), b, threads=2).notes == []


def test_one_loop_for_every_executor_writes_rounds_then_rows(tmp_path):
    """The sweep loop is the executor's only caller: an executor that only maps units to
    outcomes gets the same files as a local run, in the same order, and a unit that never
    came back has rows made by the same code as a measured one."""
    from convbench.cells import CellOutcome, CellResult
    from convbench.executors import run_sweep
    from convbench.executors.dask import failed_outcome
    from convbench.results import ResultWriter
    from tests.sweeps import config
    probs = [ConvProblem.parse("mb1ic4ih8oc4kh3"), ConvProblem.parse("mb1ic4ih10oc4kh3")]
    events = []

    class Fake:
        def map(self, cfg, jobs):
            for n, (unit, skips) in enumerate(jobs):
                if n == 0:
                    r = CellResult("im2col_blas", algorithm="im2col+gemm", role="own", times=[1e-3, 2e-3],
                                   stats={"median": 1.5e-3, "min": 1e-3, "mean": 1.5e-3, "stddev": 0.0,
                                          "q1": 1e-3, "q3": 2e-3, "iqr": 1e-3, "rounds": 2}, iterations=1)
                    yield unit, CellOutcome([r], drift=[1e-4], host="h", worker="w1")
                else:
                    yield unit, failed_outcome(unit, "the worker died")

        def status(self, outcome):
            events.append(outcome.worker)
            return ""

        def report(self):
            return {"hosts": {"h": {}}}

        def close(self):
            events.append("closed")
    w = ResultWriter(tmp_path)
    out = run_sweep(config(probs, ["im2col_blas"]), w, Fake(), progress=None)
    w.close()
    assert out["problems"] == 2 and out["rows"] == 2 and out["hosts"] == {"h": {}} and events == ["closed"]
    df = load_summary(tmp_path)
    assert list(df.status) == ["passed", "failed"] and df.reason.iloc[1] == "the worker died"
    assert list(df.host) == ["h", ""] and df.role.tolist() == ["own", "own"]
    assert df.flops_direct.notna().all()  # the failed row has the problem's columns too
    smp = load_samples(tmp_path)
    assert list(smp.backend) == ["im2col_blas", "im2col_blas", SENTINEL]
