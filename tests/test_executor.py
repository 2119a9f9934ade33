"""The Dask executor: a loopback LocalCluster gives the rows a local run gives, survives a
killed worker, resumes a half-finished directory, and refuses a scheduler that does not answer.

Every cluster here listens on 127.0.0.1 only and is closed by the run that started it; each
test checks that no process it started is left behind.
"""

from __future__ import annotations

import json
import signal
import time

import pytest

pytest.importorskip("distributed")
psutil = pytest.importorskip("psutil")

from convbench.cli import main  # noqa: E402
from convbench.executors import FAULT_ENV  # noqa: E402
from convbench.results import load_summary  # noqa: E402

PROBLEMS = ["mb1ic4ih12oc4kh3ph1", "mb2ic8ih10oc8kh3ph1", "mb1ic1ih24oc1kh5ph2", "--alg=max mb1ic4ih12kh2sh2",
            "mb1ic8ih8oc8kh1"]
FAST = ["--min-time", "0.005", "--max-time", "0.02", "--min-rounds", "2", "--quiet", "--no-plots",
        "--backends", "direct_numba,im2col_blas,pool_numba"]


def _argv(out) -> list[str]:
    return ["run", "--out", str(out), *FAST] + [f"--problem={p}" for p in PROBLEMS]


def _cells(df) -> list[tuple]:
    return sorted(zip(df.problem, df.backend, df.status))


def _helper(p) -> bool:
    """multiprocessing's own resource tracker / forkserver: one per parent, for its lifetime."""
    try:
        return any("multiprocessing" in part for part in p.cmdline())
    except psutil.Error:
        return True


@pytest.fixture
def no_leftovers():
    """Fails a test that leaves a child process of this one running (Dask's nannies and
    workers; multiprocessing's own helpers live as long as this process and are not ours)."""
    before = {p.pid for p in psutil.Process().children(recursive=True)}
    yield
    deadline = time.time() + 10
    while True:
        left = [p for p in psutil.Process().children(recursive=True) if p.pid not in before and p.is_running()
                and p.status() != psutil.STATUS_ZOMBIE and not _helper(p)]
        if not left or time.time() > deadline:
            break
        time.sleep(0.2)
    assert not left, f"processes left running: {[p.cmdline()[:3] for p in left]}"


def test_local_cluster_gives_the_rows_of_a_local_run(tmp_path, no_leftovers):
    assert main(_argv(tmp_path / "local")) == 0
    assert main(_argv(tmp_path / "dask") + ["--executor", "dask", "--workers", "2"]) == 0
    local, dist = load_summary(tmp_path / "local"), load_summary(tmp_path / "dask")
    assert _cells(dist) == _cells(local)
    assert set(local.worker) == {"local"}
    assert (dist.host != "").all() and (dist.worker != "").all()
    # a unit (a problem with all its backends) runs on one worker, timed interleaved there
    assert (dist.groupby("problem").worker.nunique() == 1).all()
    meta = json.loads((tmp_path / "dask" / "meta.json").read_text())
    assert meta["executor"]["kind"] == "dask" and meta["executor"]["workers"] == 2
    assert set(meta["hosts"]) == set(dist.host)
    fp = next(iter(meta["hosts"].values()))
    assert fp["cpu_model"] and "numpy" in fp["versions"]
    assert len(meta["units"]) == len(PROBLEMS)
    assert (tmp_path / "dask" / "tables.md").is_file()


def test_a_killed_worker_has_its_unit_retried_and_nothing_is_lost(tmp_path, monkeypatch, no_leftovers):
    marker = tmp_path / "killed"
    monkeypatch.setenv(FAULT_ENV, str(marker))  # the first unit to start kills its worker process
    out = tmp_path / "r"
    assert main(_argv(out) + ["--executor", "dask", "--workers", "2", "--retries", "2"]) == 0
    assert marker.is_file()  # a worker really died
    df = load_summary(out)
    keys = list(zip(df.problem, df.backend))
    assert len(keys) == len(set(keys))  # no duplicated row
    assert len({p for p, _ in keys}) == len(PROBLEMS)  # no lost unit
    assert (df.status != "failed").all(), df[df.status == "failed"].reason.tolist()


def test_a_unit_whose_workers_keep_dying_is_recorded_failed(tmp_path, monkeypatch, no_leftovers):
    # --retries 0: the one death is final; its cells are failed rows with the reason
    monkeypatch.setenv(FAULT_ENV, str(tmp_path / "killed"))
    out = tmp_path / "r"
    assert main(_argv(out) + ["--executor", "dask", "--workers", "2", "--retries", "0"]) == 0
    df = load_summary(out)
    failed = df[df.status == "failed"]
    assert failed.problem.nunique() == 1 and "worker running this unit died" in failed.reason.iloc[0]
    assert df.problem.nunique() == len(PROBLEMS)


def test_resume_of_a_half_finished_directory_through_dask(tmp_path, no_leftovers):
    out = tmp_path / "r"
    assert main(_argv(out)) == 0
    full = _cells(load_summary(out))
    # cut the directory back to its first problem's rows, as an interrupted local run leaves it
    lines = (out / "summary.csv").read_text().splitlines(keepends=True)
    first = PROBLEMS[0]
    (out / "summary.csv").write_text("".join([lines[0]] + [ln for ln in lines[1:] if ln.startswith(first + ",")]))
    meta = json.loads((out / "meta.json").read_text())
    meta["finished"] = None
    (out / "meta.json").write_text(json.dumps(meta))
    assert main(["run", "--resume", str(out), "--quiet", "--no-plots", "--executor", "dask", "--workers", "2"]) == 0
    df = load_summary(out)
    assert _cells(df) == full
    assert set(df[df.problem == first].worker) == {"local"}
    assert "local" not in set(df[df.problem != first].worker)


def test_a_scheduler_that_does_not_answer(tmp_path, capsys, no_leftovers):
    t0 = time.perf_counter()
    status = main(_argv(tmp_path / "r") + ["--executor", "dask", "--scheduler", "tcp://127.0.0.1:9"])
    err = capsys.readouterr().err.strip().splitlines()
    assert status == 2 and time.perf_counter() - t0 < 30
    assert len(err) == 1 and "no Dask scheduler answered" in err[0], err
    assert not (tmp_path / "r" / "meta.json").exists()  # nothing written: the directory stays usable


@pytest.mark.parametrize("extra, fragment", [
    (["--executor", "dask"], "exactly one of --workers N"),
    (["--executor", "dask", "--workers", "2", "--scheduler", "tcp://h:1"], "exactly one of --workers N"),
    (["--workers", "2"], "go with --executor dask"),
    (["--executor", "dask", "--scheduler", "nowhere"], "not a scheduler address"),
    (["--executor", "spark"], "invalid choice"),
])
def test_bad_executor_flags(tmp_path, capsys, extra, fragment):
    assert main(_argv(tmp_path / "r") + extra) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and fragment in err[0], err


def test_units_leave_out_cells_on_disk():
    from convbench.cells import pending
    from convbench.problem import parse_problem
    from tests.sweeps import config
    cfg = config([parse_problem(p) for p in PROBLEMS[:2]], ["a", "b"])
    key = [c.key for c in cfg.cells()]
    units, complete = pending(cfg.cells(), ["a", "b"], {key[0] + ("a",), key[0] + ("b",), key[1] + ("a",)},
                              kind_of=lambda name: "conv")
    assert complete == 1 and [(u.cell.label, u.todo) for u in units] == [(PROBLEMS[1], ("b",))]


@pytest.mark.parametrize("bench", [True, False])
def test_joining_a_running_cluster_by_its_scheduler(tmp_path, capsys, bench, no_leftovers):
    from distributed import LocalCluster
    kw = dict(resources={"bench": 1}) if bench else {}
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False, protocol="tcp://", host="127.0.0.1",
                      dashboard_address=None, **kw) as cluster:
        status = main(_argv(tmp_path / "r") + ["--executor", "dask", "--scheduler", cluster.scheduler_address])
    if bench:
        assert status == 0
        df = load_summary(tmp_path / "r")
        assert df.problem.nunique() == len(PROBLEMS) and (df.worker != "").all()
    else:  # a worker without the resource would never run a timed unit: refused up front
        err = capsys.readouterr().err.strip().splitlines()
        assert status == 2 and "no worker offers the 'bench' resource" in err[-1], err


def test_a_scheduler_that_goes_away_ends_the_run_with_its_rows_kept(tmp_path, no_leftovers):
    import os
    import signal
    import socket
    import subprocess
    import sys
    bindir = os.path.dirname(sys.executable)
    with socket.socket() as s:  # a free loopback port
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    addr = f"tcp://127.0.0.1:{port}"
    quiet = dict(stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    sched = subprocess.Popen([os.path.join(bindir, "dask"), "scheduler", "--host", "127.0.0.1", "--port", str(port),
                              "--no-dashboard"], **quiet)
    worker = run = None
    try:
        deadline = time.time() + 30
        while time.time() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.2)
        worker = subprocess.Popen([os.path.join(bindir, "dask"), "worker", addr, "--nworkers", "1", "--nthreads", "1",
                                   "--resources", "bench=1", "--no-dashboard", "--host", "127.0.0.1"], **quiet)
        out = tmp_path / "r"
        run = subprocess.Popen([sys.executable, "-m", "convbench", "run", "--suite", "resnet50", "--quiet",
                                "--no-plots", "--backends", "im2col_blas,direct_numba", "--executor", "dask",
                                "--scheduler", addr, "--out", str(out)],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        summary = out / "summary.csv"
        deadline = time.time() + 120
        while time.time() < deadline and run.poll() is None:  # some units finished, most pending
            if summary.is_file() and len(summary.read_text().splitlines()) > 3:
                break
            time.sleep(0.2)
        sched.send_signal(signal.SIGKILL)
        _, err = run.communicate(timeout=120)
    finally:
        for proc in (run, worker, sched):
            if proc is not None and proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    proc.kill()
    lines = [ln for ln in err.strip().splitlines() if not ln.startswith("convbench: 25 problems")]
    assert run.returncode == 1, err
    assert lines[0].startswith("convbench: the Dask scheduler went away;") and "--resume" in lines[-1], err
    df = load_summary(out)
    keys = list(zip(df.problem, df.backend))
    assert 0 < len(keys) == len(set(keys))


@pytest.mark.parametrize("sig, code, fragment", [(signal.SIGINT, 130, "interrupted:"),
                                                 (signal.SIGTERM, 143, "terminated (SIGTERM):")])
def test_a_signal_to_the_process_group_ends_a_dask_run_with_its_rows_and_cluster(tmp_path, no_leftovers, sig, code,
                                                                               fragment):
    """Ctrl-C reaches the whole process group (the workers too): the run finishes or abandons
    what is running, keeps every finished row, ends the cluster it started and says how to
    resume; no worker traceback, no leaked semaphore."""
    import os
    import subprocess
    import sys
    out = tmp_path / "r"
    p = subprocess.Popen([sys.executable, "-m", "convbench", "run", "--suite", "resnet50", "--backends",
                          "im2col_blas,direct_numba", *FAST[:6], "--quiet", "--no-plots", "--executor", "dask",
                          "--workers", "2", "--out", str(out)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         start_new_session=True)
    try:
        deadline = time.time() + 120
        while time.time() < deadline and p.poll() is None:
            f = out / "summary.csv"
            if f.is_file() and len(f.read_text().splitlines()) > 3:
                break
            time.sleep(0.1)
        os.killpg(p.pid, sig)
        _, err = p.communicate(timeout=120)
    finally:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()
    assert p.returncode == code, err
    assert fragment in err and "Resume with:" in err, err
    assert "Traceback" not in err and "leaked semaphore" not in err, err
    df = load_summary(out)
    keys = list(zip(df.problem, df.backend))
    assert 0 < len(keys) == len(set(keys))
    assert main(["run", "--resume", str(out), "--quiet", "--no-plots"]) == 0  # and it finishes locally
