"""Hostile inputs, round three: what a user can do to convbench that must not lose data, hang,
allocate past the machine or end in a traceback. One test (or more) per case of the issue.

Disk-full and read-only cases mount a small tmpfs or a read-only bind mount (root only;
elsewhere they skip with the reason), and unmount in a ``finally``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import resource
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from convbench.cli import main
from convbench.results import SCHEMA_VERSION

FAST = ["--min-time", "0.005", "--max-time", "0.02", "--min-rounds", "2", "--quiet", "--no-plots"]
PROBLEM = "mb1ic4ih12oc4kh3ph1"


def _one_line(capsys, fragment: str) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and fragment in err[0] and "Traceback" not in err[0], err
    return err[0]


def _digest(d: Path) -> dict:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(Path(d).iterdir()) if p.is_file()}


@pytest.fixture(scope="module")
def small_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("small") / "run"
    assert main(["run", "--problem", PROBLEM, "--problem", "mb1ic4ih10oc4kh3", "--backends", "im2col_blas,direct_numba",
                 "--out", str(out), *FAST]) == 0
    return out


# ---------------------------------------------------------------------------- 1. resume never rewrites
@pytest.mark.parametrize("damage", ["newer schema", "older schema", "foreign columns", "unreadable config"])
def test_resume_refuses_a_directory_it_cannot_fully_read_and_touches_nothing(small_run, tmp_path, capsys, damage):
    d = tmp_path / "d"
    shutil.copytree(small_run, d)
    meta = json.loads((d / "meta.json").read_text())
    meta["finished"] = None
    if damage == "newer schema":
        meta["schema_version"] = 99
    elif damage == "older schema":
        meta["schema_version"] = 4
    elif damage == "unreadable config":
        meta["config"]["problems"] = ["not a descriptor"]
    (d / "meta.json").write_text(json.dumps(meta))
    if damage == "foreign columns":
        text = (d / "samples.csv").read_text().splitlines()
        (d / "samples.csv").write_text("\n".join(["a,b,c"] + text[1:]) + "\n")
    before = _digest(d)
    assert main(["run", "--resume", str(d), "--quiet"]) == 2
    line = _one_line(capsys, "")
    assert {"newer schema": "schema version 99", "older schema": "schema v4", "foreign columns": "columns differ",
            "unreadable config": "cannot be read"}[damage] in line
    assert _digest(d) == before and not (d / ".convbench.lock").exists()  # not a byte changed, nothing added


# ---------------------------------------------------------------------------- 3. the API's memory
def test_the_api_refuses_what_does_not_fit_before_allocating(monkeypatch):
    import convbench
    monkeypatch.setenv("CONVBENCH_MEMORY_LIMIT", "1G")
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t0 = time.perf_counter()
    with pytest.raises(convbench.FootprintError, match=r"needs \d+ bytes \(8\.1 GiB\), over the memory limit of "
                                                        r"1073741824 bytes"):
        convbench.conv2d(np.ones((1, 1, 2048, 2048), np.float32), np.ones((512, 1, 3, 3), np.float32))
    x = np.broadcast_to(np.ones((1, 1, 1, 1), np.float32), (256, 64, 1024, 1024))  # 64 GiB, as a view
    for call in (lambda: convbench.conv2d(x, np.ones((8, 64, 3, 3), np.float32)),
                 lambda: convbench.max_pool2d(x, 2), lambda: convbench.avg_pool2d(x, 2)):
        with pytest.raises(MemoryError, match=r"a contiguous copy of input \(256, 64, 1024, 1024\) needs 68719476736"):
            call()
    assert time.perf_counter() - t0 < 30  # refused from the shapes, not after a swap storm
    assert (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024 < 300


def test_numpy_integers_are_accepted_wherever_ints_are():
    import convbench
    x, w = np.ones((1, 2, 6, 6), np.float32), np.ones((4, 2, 3, 3), np.float32)
    base = convbench.conv2d(x, w, padding=1, groups=1, dilation=1, stride=1)
    got = convbench.conv2d(x, w, padding=np.int64(1), groups=np.int64(1), dilation=np.int32(1),
                           stride=(np.int64(1), np.int16(1)))
    np.testing.assert_array_equal(got, base)
    assert convbench.conv_transpose2d(x, np.ones((2, 3, 3, 3), np.float32), stride=np.int64(2), groups=np.int8(1),
                                      output_padding=np.int32(1)).shape == (1, 3, 14, 14)
    assert convbench.conv2d_weight(x, (4, 2, 3, 3), np.ones((1, 4, 4, 4), np.float32), groups=np.int64(1)).shape == \
        (4, 2, 3, 3)
    assert convbench.max_pool2d(x, np.int64(2), stride=np.int32(2), padding=np.uint8(0)).shape == (1, 2, 3, 3)
    with pytest.raises(ValueError, match="expected an int or a pair of ints"):
        convbench.conv2d(x, w, stride=True)


# ---------------------------------------------------------------------------- 4, 5, 8: bounds from the options
@pytest.mark.parametrize("argv, fragment", [
    (["study", "--canvas", "3000"], "--canvas 3000 --batch 32: the study would hold about"),
    (["study", "--canvas", "1000000"], "accepted here: --canvas"),
    (["study", "--epochs", "1000000000"], "--epochs 1000000000: accepted 0 (no training) to 500"),
    (["run", "--fuzz", "1000000000", "--dry-run"], "expected an integer from 1 to 100000"),
    (["run", "--problem", PROBLEM, "--executor", "dask", "--workers", "64"], "this machine has"),
])
def test_options_that_cannot_be_done_are_refused_at_once(tmp_path, capsys, argv, fragment):
    t0 = time.perf_counter()
    assert main(argv + ["--out", str(tmp_path / "o")]) == 2
    assert time.perf_counter() - t0 < 10
    line = _one_line(capsys, fragment)
    if "--workers" in argv:
        assert f"{os.cpu_count()} core(s)" in line and "--oversubscribe" in line
    assert not (tmp_path / "o").exists()


def test_a_study_that_fits_is_estimated_from_its_options():
    from convbench.study.experiment import StudyConfig, footprint
    small, large = footprint(StudyConfig()), footprint(StudyConfig(canvas=96))
    assert small["total"] < 256 << 20 < 4 << 30 < large["total"]  # measured at 96 px: 7.6 GB of dense weights


# ---------------------------------------------------------------------------- 6, 12: schedulers that do not answer
@contextlib.contextmanager
def _listener(reply: bytes | None):
    """A loopback listener that accepts and says nothing (``reply`` None) or sends ``reply``."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen()
    conns, stop = [], threading.Event()

    def serve():
        s.settimeout(0.2)
        while not stop.is_set():
            try:
                c, _ = s.accept()
            except OSError:
                continue
            conns.append(c)
            if reply is not None:
                c.sendall(reply)
    t = threading.Thread(target=serve, daemon=True)
    t.start()
    try:
        yield f"tcp://127.0.0.1:{s.getsockname()[1]}"
    finally:
        stop.set()
        t.join(5)
        for c in conns:
            c.close()
        s.close()


@pytest.mark.parametrize("reply, fragment", [
    (None, "sent no Dask greeting within"), (b"HTTP/1.0 400 Bad request\r\n\r\n", "does not speak Dask's protocol"),
    (b"\xff" * 64, "does not speak Dask's protocol")])
def test_a_scheduler_address_that_does_not_answer_is_one_line_within_seconds(tmp_path, capsys, reply, fragment):
    with _listener(reply) as addr:
        t0 = time.perf_counter()
        assert main(["run", "--problem", PROBLEM, "--executor", "dask", "--scheduler", addr,
                     "--out", str(tmp_path / "o"), *FAST]) == 2
        assert time.perf_counter() - t0 < 15
    line = _one_line(capsys, fragment)
    assert "MemoryError" not in line
    assert not (tmp_path / "o").exists()  # probed before anything was created


# ---------------------------------------------------------------------------- 9, 10, 11: read-only and full disks
def _mount(*args) -> None:
    r = subprocess.run(["mount", *args], capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount here ({r.stderr.strip() or r.returncode}): needs root")


def _umount(path: Path) -> None:
    subprocess.run(["umount", "-l", str(path)], capture_output=True)


@pytest.fixture
def read_only(small_run, tmp_path):
    """A copy of a finished run behind a read-only bind mount."""
    src, ro = tmp_path / "src", tmp_path / "ro"
    shutil.copytree(small_run, src)
    ro.mkdir()
    _mount("--bind", str(src), str(ro))
    try:
        _mount("-o", "remount,bind,ro", str(ro))
        yield ro
    finally:
        _umount(ro)


def test_read_only_directories_are_one_line(read_only, capsys):
    before = _digest(read_only)
    assert main(["report", str(read_only), "--no-plots"]) == 1
    _one_line(capsys, "Read-only file system")
    meta = json.loads((read_only / "meta.json").read_text())
    assert meta["schema_version"] == SCHEMA_VERSION
    assert main(["run", "--resume", str(read_only), "--quiet"]) == 2
    _one_line(capsys, "cannot write its lock file (Read-only file system)")
    assert _digest(read_only) == before


@pytest.fixture
def small_disk(tmp_path):
    """A 3 MiB tmpfs, unmounted afterwards."""
    d = tmp_path / "disk"
    d.mkdir()
    _mount("-t", "tmpfs", "-o", "size=3m", "tmpfs", str(d))
    try:
        yield d
    finally:
        _umount(d)


def _fill(disk: Path) -> Path:
    filler = disk / "filler"
    with open(filler, "wb") as f:
        try:
            while True:
                f.write(b"\0" * 65536)
        except OSError:
            pass
    return filler


def test_a_full_disk_leaves_the_previous_report_whole(small_run, small_disk, capsys):
    d = small_disk / "run"
    shutil.copytree(small_run, d, ignore=shutil.ignore_patterns("plots", "report.html", "plotly.min.js", "site.js"))
    before = (d / "tables.md").read_bytes()
    assert before
    filler = _fill(small_disk)
    assert main(["report", str(d), "--no-plots"]) == 1
    _one_line(capsys, "No space left on device")
    assert (d / "tables.md").read_bytes() == before  # never a 0-byte tables.md
    assert not [p for p in d.iterdir() if p.name.endswith(".tmp")]
    filler.unlink()
    assert main(["report", str(d), "--no-plots"]) == 0


def test_a_full_disk_at_the_start_of_a_run_leaves_a_reusable_directory(small_disk, capsys):
    out = small_disk / "new"
    out.mkdir()
    filler = _fill(small_disk)
    status = main(["run", "--problem", PROBLEM, "--backends", "im2col_blas", "--out", str(out), *FAST])
    assert status in (1, 2)
    assert "Traceback" not in capsys.readouterr().err
    assert not list(out.iterdir())  # nothing left behind: no lock, no half meta.json
    filler.unlink()
    assert main(["run", "--problem", PROBLEM, "--backends", "im2col_blas", "--out", str(out), *FAST]) == 0


def test_a_directory_holding_only_a_stale_lock_is_reusable(tmp_path, capsys):
    out = tmp_path / "o"
    out.mkdir()
    (out / ".convbench.lock").write_text("")  # what an ENOSPC during the lock write used to leave
    assert main(["run", "--problem", PROBLEM, "--backends", "im2col_blas", "--out", str(out), *FAST]) == 0
    assert (out / "summary.csv").is_file() and not (out / ".convbench.lock").exists()


def test_a_held_lock_is_named_with_how_to_clear_a_stale_one(tmp_path, capsys):
    from convbench.results import RunLock
    out = tmp_path / "o"
    out.mkdir()
    with RunLock(out):
        assert main(["run", "--problem", PROBLEM, "--backends", "im2col_blas", "--out", str(out), *FAST]) == 2
    line = _one_line(capsys, f"another convbench run (pid {os.getpid()}) is writing this directory")
    assert "the lock is stale: delete" in line


# ---------------------------------------------------------------------------- 13: selector files
def _selector_file(tmp_path, mutate) -> Path:
    from convbench.select.data import fingerprint
    from convbench.select.model import FEATURES, Selector, _Linear
    from convbench.select.store import write
    n = len(FEATURES)
    models = {b: _Linear(np.zeros(n), np.ones(n), np.zeros(2 * n), float(i)) for i, b in
              enumerate(("im2col_blas", "direct_numba"))}
    path, _ = write(tmp_path / "sel.json", Selector("linear", models, fingerprint()))
    doc = json.loads(path.read_text())
    mutate(doc["selectors"][0]["models"]["im2col_blas"])
    path.write_text(json.dumps(doc))
    return path


@pytest.mark.parametrize("mutate, fragment", [
    (lambda m: m.update(coef=[0.0, 1.0, 2.0]), "the model of im2col_blas: coef has 3 values where"),
    (lambda m: m["coef"].__setitem__(0, float("nan")), "the model of im2col_blas: coef holds non-finite values"),
])
def test_a_broken_selector_file_is_named_and_auto_falls_back_to_the_rules(tmp_path, monkeypatch, mutate, fragment):
    import warnings

    import convbench
    from convbench.select import auto
    path = _selector_file(tmp_path, mutate)
    monkeypatch.setenv("CONVBENCH_SELECTOR", str(path))
    auto.reset()
    x, w = np.ones((1, 4, 8, 8), np.float32), np.ones((4, 4, 3, 3), np.float32)
    with warnings.catch_warnings(record=True) as got:
        warnings.simplefilter("always")
        y = convbench.conv2d(x, w, backend="auto")
    auto.reset()
    assert y.shape == (1, 4, 6, 6)
    msgs = [str(g.message) for g in got]
    assert any(str(path) in m and fragment in m and "using the built-in rules" in m for m in msgs), msgs


# ---------------------------------------------------------------------------- 14, 16, 17
def test_an_unknown_baseline_is_refused_with_the_runs_backends(small_run, tmp_path, capsys):
    assert main(["run", "--problem", PROBLEM, "--backends", "im2col_blas,direct_numba", "--baseline", "nope",
                 "--out", str(tmp_path / "o"), *FAST]) == 2
    _one_line(capsys, "--baseline 'nope' is not among the backends run; accepted: im2col_blas, direct_numba")
    assert main(["report", str(small_run), "--baseline", "nope", "--no-plots"]) == 2
    _one_line(capsys, "--baseline 'nope' is not a backend of this run; accepted: im2col_blas, direct_numba")


def test_a_long_bad_descriptor_is_echoed_short(tmp_path, capsys):
    assert main(["run", "--problem", "x" * 10_000, "--dry-run"]) == 2
    line = _one_line(capsys, "(10000 chars)")
    assert len(line) < 400


def test_report_says_a_run_is_in_progress(small_run, tmp_path, capsys):
    from convbench.results import RunLock
    d = tmp_path / "d"
    shutil.copytree(small_run, d)
    with RunLock(d):
        assert main(["report", str(d), "--no-plots"]) == 0
    err = capsys.readouterr().err
    assert f"a run (pid {os.getpid()}) is still writing" in err and "2 cell(s) finished so far" in err


# ---------------------------------------------------------------------------- 7, 18, 19: signals
def _signalled_run(tmp_path, extra: list, sigs: list, group: bool) -> tuple[int, str, Path]:
    """A real sweep in its own process group, signalled once a few rows are on disk."""
    out = tmp_path / "sig"
    p = subprocess.Popen([sys.executable, "-m", "convbench", "run", "--suite", "resnet50", "--backends",
                          "im2col_blas,direct_numba", *FAST, "--out", str(out), *extra],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        deadline = time.time() + 120
        while time.time() < deadline and p.poll() is None:
            f = out / "summary.csv"
            if f.is_file() and len(f.read_text().splitlines()) > 3:
                break
            time.sleep(0.1)
        for s in sigs:
            os.killpg(p.pid, s) if group else p.send_signal(s)
            time.sleep(0.01)
        _, err = p.communicate(timeout=120)
    finally:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()
    return p.returncode, err, out


@pytest.mark.slow
@pytest.mark.parametrize("sigs, code", [([signal.SIGTERM, signal.SIGTERM], 143), ([signal.SIGINT, signal.SIGINT], 130)])
def test_every_way_a_run_ends_by_signal_says_where_the_rows_are(tmp_path, sigs, code):
    status, err, out = _signalled_run(tmp_path, [], sigs, group=True)
    assert status == code, err
    assert "Resume with:" in err and f"convbench run --resume {out}" in err and "Traceback" not in err
    assert not (out / ".convbench.lock").exists()
    assert main(["run", "--resume", str(out), "--quiet", "--no-plots"]) == 0
