"""Thread-count sweeps (``--threads 1,2``), cold caches (``--cache cold``) and the peers' thread control."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

from convbench import backends as reg
from convbench.backends.base import Backend, Capabilities, Plan
from convbench.problem import ConvProblem
from convbench.reference import conv2d_reference
from convbench.cells import Cell, cell_label, variant_tag
from convbench.data import harness_bytes
from convbench.executors import run_sweep
from convbench.results import ResultWriter, load_samples, load_summary, repair_for_resume
from convbench.runner import COLD_FOOTPRINT_LLC, COLD_MAX_COPIES, cell_bytes, cold_copies, timed_call
from tests.sweeps import cell_rows, config

TWO_CORES = (os.cpu_count() or 1) >= 2


class CountingBackend(Backend):
    """Counts its prepares and remembers which weight and input arrays each call saw."""
    name = "fake_counting"
    algorithm = "test"
    capabilities = Capabilities()
    prepared = 0
    seen: list = []

    def prepare(self, p, w):
        type(self).prepared += 1
        return Plan(p, {"w": w})

    def run(self, plan, x):
        type(self).seen.append((id(plan.state["w"]), id(x)))
        return conv2d_reference(x, plan.state["w"], plan.problem).astype(plan.problem.dtype)


@pytest.fixture
def counting(monkeypatch):
    monkeypatch.setattr(reg, "REGISTRY", {**reg.REGISTRY, "fake_counting": "tests.test_variants:CountingBackend"})
    reg.backend_class.cache_clear()
    reg.unavailable_reason.cache_clear()
    CountingBackend.prepared = 0
    CountingBackend.seen = []
    yield "fake_counting"
    reg.backend_class.cache_clear()
    reg.unavailable_reason.cache_clear()


def test_variant_labels_name_only_what_differs_from_the_runs_own():
    p = ConvProblem.parse("mb1ic4ih8oc4kh3")
    assert variant_tag(1, "hot", 1) == "" and Cell(p, 1.0, 1, "hot", primary=(1, "hot")).label == p.label
    assert Cell(p, 1.0, 2, "hot", primary=(1, "hot")).label == f"{p.label} @2 threads"
    assert Cell(p, 0.5, 2, "cold", primary=(1, "hot")).label == f"{p.label} @density 0.5 @2 threads, cold cache"
    assert Cell(p, 1.0, 1, "hot", primary=(1, "cold")).label == f"{p.label} @hot cache"  # a cold-first run
    # rows as a CSV holds them: an old file without the columns is the run's own variant
    assert cell_label("p", 1.0, variant_tag(float("nan"), "", 1)) == "p"
    # identity is the fields; labels and tags are derived
    assert Cell(p, 1.0, 2, "hot", suite="a") == Cell(p, 1.0, 2, "hot", suite="b")
    assert Cell(p, 1.0, 2, "hot").key == (p.label, 1.0, 2, "hot")


def test_cold_copies_span_twice_the_last_level_cache():
    llc = 32 << 20
    small = ConvProblem.parse("mb1ic16ih28oc16kh3ph1")
    per = small.operand_bytes + 100_000
    k = cold_copies(small, 100_000, llc)
    assert k == min(COLD_MAX_COPIES, 1 + -(-COLD_FOOTPRINT_LLC * llc // per))
    mid = ConvProblem.parse("mb1ic64ih112oc64kh3ph1")
    k = cold_copies(mid, 4 << 20, llc)
    assert 1 < k < COLD_MAX_COPIES and k * (mid.operand_bytes + (4 << 20)) >= COLD_FOOTPRINT_LLC * llc
    assert cold_copies(mid, 80 << 20, llc) == 1  # one set already spans the caches


def test_cold_calls_rotate_through_distinct_weights_and_inputs(counting):
    p = ConvProblem.parse("mb1ic2ih8oc2kh3ph1")
    k = cold_copies(p, cell_bytes(p, reg.get_backend(counting).estimate(p)))
    # max_time: every set must come round at least once, whatever the round time on this host
    (row,), _ = cell_rows(p, [counting], cache="cold", phases=False, min_rounds=2 * k, max_time=120.0)
    assert row["status"] == "passed" and row["cache"] == "cold"
    assert f"cold cache: {k} buffer set(s) rotated" in row["note"]
    assert CountingBackend.prepared == k  # the verified plan and k - 1 more, each from its own weights
    timed = CountingBackend.seen[1:]  # after the verification run: the timed calls, each on the next set
    assert len(set(w for w, _ in timed)) == k and len(set(x for _, x in timed)) == k


def test_the_timed_call_cycles_and_slows():
    import time
    calls = []
    sets = [("a", (1,)), ("b", (2,)), ("c", (3,))]
    fn = timed_call(lambda plan, x: calls.append(plan), sets)
    for _ in range(7):
        fn()
    assert calls == list("abcabca")
    assert timed_call(lambda plan, x: plan, sets[:1])() == "a"
    slow = timed_call(lambda plan, x: time.sleep(0.002), sets[:1], 3.0)
    t0 = time.perf_counter()
    slow()
    assert time.perf_counter() - t0 >= 0.006  # the call, then twice its time spinning


def test_cold_copies_count_against_the_memory_limit():
    p = ConvProblem.parse("mb1ic16ih28oc16kh3ph1")
    b = reg.get_backend("im2col_blas")
    cb = cell_bytes(p, b.estimate(p))
    limit = harness_bytes(p) + 2 * cb  # room for the hot cell, not for its cold copies
    rows, _ = cell_rows(p, ["im2col_blas"], phases=False, limit=limit)
    assert rows[0]["status"] == "passed"
    rows, _ = cell_rows(p, ["im2col_blas"], phases=False, limit=limit, cache="cold")
    assert rows[0]["status"] == "skipped" and "cold-cache copies" in rows[0]["reason"]


@pytest.mark.skipif(not TWO_CORES, reason="needs 2 cores")
def test_a_sweep_over_threads_and_caches_writes_every_variant_and_resumes(tmp_path):
    p = ConvProblem.parse("mb1ic8ih16oc8kh3ph1")
    cfg = config([p], ["im2col_blas", "direct_numba"], threads=(1, 2), cache=("hot", "cold"), phases=False)
    w = ResultWriter(tmp_path)
    res = run_sweep(cfg, w)
    w.close()
    assert res["problems"] == 4  # one problem in four variants
    df = load_summary(tmp_path)
    assert sorted(zip(df.threads.astype(int), df.cache)) == sorted([(t, c) for t in (1, 2) for c in ("hot", "cold")]
                                                                   * 2)
    assert (df.status == "passed").all()
    assert set(df.cell) == {p.label, f"{p.label} @cold cache", f"{p.label} @2 threads",
                            f"{p.label} @2 threads, cold cache"}
    smp = load_samples(tmp_path)
    assert set(smp.cell) >= set(df.cell)
    assert set(zip(smp.threads.astype(int), smp.cache)) == {(1, "hot"), (1, "cold"), (2, "hot"), (2, "cold")}
    # nothing left to do on resume: every variant's cell is on disk with its rounds
    done, msgs = repair_for_resume(tmp_path)
    assert not msgs and done == {c.key + (b,) for c in cfg.cells() for b in ("im2col_blas", "direct_numba")}
    again = run_sweep(cfg, ResultWriter(tmp_path), done=done)
    assert again["rows"] == 0


@pytest.mark.skipif(not TWO_CORES, reason="needs 2 cores")
def test_cli_threads_and_cache_report_scaling_and_cold_side_by_side(tmp_path):
    out = tmp_path / "r"
    r = subprocess.run([sys.executable, "-m", "convbench", "run", "--problem", "mb1ic8ih16oc8kh3ph1",
                        "--backends", "im2col_blas,direct_numba",
                        "--threads", "1,2", "--cache", "hot,cold", "--min-time", "0.005", "--max-time", "0.02",
                        "--out", str(out), "--quiet"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    tables = (out / "tables.md").read_text()
    assert "## Thread scaling" in tables and "## Hot vs cold cache" in tables
    scaling = tables.split("## Thread scaling")[1].split("\n## ")[0]
    assert "| im2col_blas | 1 -> 2 | 1 |" in scaling and "| direct_numba | 1 -> 2 | 1 |" in scaling
    main = tables.split("## Median time per call")[1].split("\n## ")[0]
    assert "@2 threads" not in main and "cold cache" not in main  # the other tables: the run's own variant
    assert (out / "plots" / "thread_scaling.png").is_file()
    import json
    cfg = json.loads((out / "meta.json").read_text())["config"]
    assert cfg["threads"] == [1, 2] and cfg["cache"] == ["hot", "cold"]  # as the options name them


@pytest.mark.parametrize("args, fragment", [
    (["--threads", "0"], "--threads"), (["--threads", "1,1"], "repeats 1"), (["--threads", "64"], "exceeds"),
    (["--cache", "warm"], "'warm' is not a cache state"), (["--cache", "hot,hot"], "repeats hot")])
def test_bad_threads_and_cache_are_one_line_exit_2(tmp_path, args, fragment):
    r = subprocess.run([sys.executable, "-m", "convbench", "run", "--problem", "mb1ic1ih8oc1kh3",
                        "--out", str(tmp_path / "o")] + args, capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and fragment in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert "Traceback" not in r.stderr and not (tmp_path / "o").exists()


def test_check_times_the_baselines_backends():
    from convbench.cli.check import baseline_backends
    from convbench.comparison import RunData
    base = RunData(source="b", kind="dir", machine={}, cells={("p", "im2col_blas"): None, ("p", "gone"): None,
                                                              ("q", "direct_numba"): None})
    assert baseline_backends(base) == "direct_numba,im2col_blas"


# ---------------------------------------------------------------------------- peers' thread control
def test_onnxruntime_sessions_take_the_runs_thread_count():
    pytest.importorskip("onnxruntime")
    from convbench import threads
    p = ConvProblem.parse("mb1ic4ih8oc4kh3ph1")
    b = reg.get_backend("onnxruntime")
    w = np.ones(p.weight_shape, np.float32)
    plan = b.prepare(p, w)
    assert plan.state.threads == threads.get_threads()
    assert b.supports(ConvProblem.parse("--dir=BWD_W mb1ic4ih8oc4kh3ph1")).startswith("ONNX has no weight-gradient")
    assert "negative padding" in b.supports(ConvProblem.parse("mb1ic4ih12oc4kh3sh2ph0oh4"))  # 3 rows unread
    for d in ("mb1ic4ih10oc4kh3sh2oh4", "mb1ic8ih56oc4kh1sh2", "--dir=BWD_D mb1ic8ih56oc4kh1sh2"):  # 1 row
        p = ConvProblem.parse(d)
        assert p.ph_r < 0 and b.supports(p) is None
        from convbench.data import check_output, make_case, reference_case
        case = make_case(p)
        y = b.run(b.prepare(p, case.constant), *case.inputs)
        assert check_output(y, reference_case(p, case), p, 1e-5)["status"] == "passed", d


@pytest.mark.skipif(not TWO_CORES or not hasattr(os, "sched_setaffinity"), reason="needs 2 cores and affinity")
def test_xla_pool_is_pinned_to_the_thread_count():
    pytest.importorskip("jax")
    code = (
        "from convbench import threads; threads.preset_environment(2)\n"
        "import numpy as np, os\n"
        "from convbench.backends import get_backend\n"
        "from convbench.problem import ConvProblem\n"
        "p = ConvProblem.parse('mb1ic4ih8oc4kh3ph1'); b = get_backend('jax_xla')\n"
        "threads.set_threads(1); b.prepare(p, np.ones(p.weight_shape, np.float32))\n"
        "pool = threads.xla_pool_threads(); assert pool\n"
        "one = {len(os.sched_getaffinity(t)) for t in pool}\n"
        "threads.set_threads(2)\n"
        "two = {len(os.sched_getaffinity(t)) for t in pool}\n"
        "print(one, two, threads.thread_report()['xla']['pinned_to_cores'])\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("{1} {2}")
