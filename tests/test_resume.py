"""A sweep interrupted (Ctrl-C, or killed outright) keeps its rows and --resume finishes it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from convbench.results import load_summary

PROBLEMS = ["mb1ic4ih12oc4kh3ph1", "mb1ic4ih14oc4kh3ph1", "mb1ic4ih16oc4kh3ph1", "mb1ic4ih18oc4kh3ph1",
            "mb1ic4ih20oc4kh3ph1", "mb1ic4ih22oc4kh3ph1"]


def _start(out: Path, extra=()):
    argv = [sys.executable, "-m", "convbench", "run", "--backends", "im2col_blas,direct_numba",
            "--min-time", "0.3", "--max-time", "0.4", "--out", str(out), *extra]
    for p in PROBLEMS:
        argv += ["--problem", p]
    return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_rows(out: Path, n: int, proc, timeout=120.0):
    t_end = time.time() + timeout
    path = out / "summary.csv"
    while time.time() < t_end:
        if path.exists() and len(path.read_text().splitlines()) - 1 >= n:
            return
        if proc.poll() is not None:
            pytest.fail(f"sweep ended early: {proc.stderr.read()}")
        time.sleep(0.05)
    pytest.fail("no rows appeared")


@pytest.mark.slow
@pytest.mark.parametrize("how", ["sigint", "sigkill"])
def test_interrupt_then_resume(tmp_path, how):
    """Resume after Ctrl-C (the handler's path, which SIGTERM shares: its exit 143, message and
    rows on disk are test_hostile's) and after SIGKILL (no handler at all)."""
    out = tmp_path / "r"
    proc = _start(out)
    _wait_rows(out, 2, proc)
    if how in ("sigint", "sigterm"):
        proc.send_signal(signal.SIGINT if how == "sigint" else signal.SIGTERM)
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == (130 if how == "sigint" else 143), err
        assert "Resume with:" in err and f"convbench run --resume {out}" in err
        assert "Traceback" not in err
        if how == "sigterm":
            assert "terminated (SIGTERM):" in err
    else:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    before = load_summary(out)
    assert 2 <= len(before) < 2 * len(PROBLEMS)
    assert (before.status == "passed").all()
    res = subprocess.run([sys.executable, "-m", "convbench", "run", "--resume", str(out), "--quiet"],
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    after = load_summary(out)
    assert len(after) == 2 * len(PROBLEMS)
    assert not after.duplicated(["problem", "backend"]).any()
    # rows measured before the interruption are kept as they were
    merged = before.merge(after, on=["problem", "backend"], suffixes=("_a", "_b"))
    assert (merged.time_median_s_a == merged.time_median_s_b).all()


@pytest.mark.slow
@pytest.mark.parametrize("delay", [0.2, 0.8, 1.6])
def test_ctrl_c_during_start_up_is_one_line(tmp_path, delay):
    """Whenever Ctrl-C lands while the run starts (imports, machine probe, meta), one line and
    exit 130, never a traceback."""
    out = tmp_path / "r"
    proc = _start(out)
    time.sleep(delay)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert "Traceback" not in err, err
    assert proc.returncode in (0, 130), err
    if proc.returncode == 130:
        lines = [ln for ln in err.strip().splitlines() if ln.strip()]
        assert any("interrupt" in ln for ln in lines)


def test_resume_of_a_mixed_conv_and_pool_sweep_adds_no_rows(tmp_path):
    # a pool backend has no row on a conv problem (and the other way round): that is not a
    # cell left to run, so resuming a finished mixed sweep runs nothing and writes nothing
    from convbench.cli import main
    out = tmp_path / "r"
    argv = ["run", "--out", str(out), "--quiet", "--no-plots", "--min-time", "0.005", "--max-time", "0.02",
            "--min-rounds", "2", "--backends", "im2col_blas,pool_numba", "--problem", "mb1ic4ih8oc4kh3ph1",
            "--problem=--alg=max mb1ic4ih8kh2sh2"]
    assert main(argv) == 0
    before = (out / "summary.csv").read_text()
    assert main(["run", "--resume", str(out), "--quiet", "--no-plots"]) == 0
    assert (out / "summary.csv").read_text() == before


def test_a_ctrl_c_after_an_honoured_stop_is_only_noted():
    """The first Ctrl-C asks the sweep loop to finish what is running; once it has, the run is
    stopping, and a second Ctrl-C while it writes meta.json and its message must not escape
    as a bare KeyboardInterrupt (it did, 1 in ~10 fresh-clone CI runs, two SIGINTs 10 ms apart)."""
    import signal as sg

    from convbench.executors import Interrupt
    before = sg.getsignal(sg.SIGINT)
    with Interrupt() as outer:
        with Interrupt(finish_first=True) as loop:
            loop._sigint(sg.SIGINT, None)
            assert loop.requested and loop.signal == "SIGINT"
        sg.getsignal(sg.SIGINT)(sg.SIGINT, None)  # after the loop: noted, not raised
        assert Interrupt.stopping() == "SIGINT" and outer.signal is None
    assert sg.getsignal(sg.SIGINT) is before and Interrupt.stopping() is None


def test_a_signal_inside_a_finalizer_is_delivered_again_outside_it():
    """An exception raised in a ``__del__`` is printed and swallowed: SIGTERM arriving while
    llvmlite's objects were collected (numba compiling a kernel) left a traceback on stderr and
    a run that went on. The handler re-delivers the signal outside the finalizer instead."""
    import signal as sg
    import sys
    import time

    from convbench.executors import Interrupt, Terminated
    frames = []

    class Collected:
        def __del__(self):
            frames.append(sys._getframe())

    Collected()
    with Interrupt(finish_first=True) as loop:
        loop._sigterm(sg.SIGTERM, frames[0])  # inside the finalizer: not raised, not yet stopping
        assert Interrupt.stopping() is None
        with pytest.raises(Terminated):
            deadline = time.time() + 5
            while time.time() < deadline:
                time.sleep(0.005)  # the re-delivered signal raises here, in this frame
        assert Interrupt.stopping() == "SIGTERM"
