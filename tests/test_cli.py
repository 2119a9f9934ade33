"""The command line through ``main(argv)``: good runs, and every kind of bad input."""

from __future__ import annotations

import json
import shutil
import sys

import pytest

from convbench.cli import main
from convbench.results import SCHEMA_VERSION, SUMMARY_COLUMNS, load_summary


@pytest.mark.parametrize("argv, fragment", [
    (["run", "--sizes", "3,,4"], "empty value"),
    (["run", "--sizes", "0"], "out of range"),
    (["run", "--sizes", "-4"], "out of range"),
    (["run", "--sizes", "8", "--kernels", "abc"], "'abc' is not an integer"),
    (["run", "--sizes", "8x"], "'' is not an integer"),
    (["run", "--backends", "nope"], "unknown backend 'nope'; available:"),
    (["run", "--exclude", "nope"], "--exclude: unknown backend 'nope'"),
    (["run", "--dtype", "f16"], "unknown dtype 'f16'; expected"),
    (["run", "--problem", "mb1ic3ih5oc"], "descriptor"),
    (["run", "--problem", "mb1ic3ih5oc4kh9"], "larger than the padded input"),
    (["run", "--kernels", "3"], "need --sizes"),
    (["run", "--threads", "0"], "--threads"),
    (["run", "--threads", "999"], "exceeds the"),
    (["run", "--padding", "bogus"], "expected comma-separated 'valid', 'same'"),
    (["run", "--min-time", "-1"], "positive"),
    (["run", "--weight-density", "2"], "(0, 1]"),
    (["run", "--suite", "nonesuch"], "unknown suite 'nonesuch'"),
    (["run", "--suite-file", "/nonexistent/file"], "no such file"),
    (["run", "--blas-coretype", "Pentium9"], "accepted are auto, native"),
    (["run", "--memory-limit", "lots"], "not a size"),
    (["run", "--direction", "sideways"], "'sideways' is not one of fwd, bwd_d, bwd_w, both, all"),
    (["run", "--direction", "fwd,bwd_x"], "'bwd_x' is not one of"),
    (["run", "--pool", "nope", "--sizes", "8"], "unknown pooling algorithm 'nope'; expected"),
    (["run", "--pool", "max", "--kernels", "3"], "needs --sizes"),
    (["run", "--pool", "max", "--sizes", "8", "--groups", "2"], "have no groups"),
    (["run", "--problem=--alg=max_x mb1ic4ih8kh3"], "pooling algorithm 'max_x': accepted are max, avg_p, avg_np"),
    (["run", "--problem=--alg=max mb1ic4ih4kh7"], "larger than the padded input"),
    (["run", "--problem=--alg=max mb1ic4ih8kh3ph2"], "half the window"),
    (["run", "--problem=--alg=avg_p mb1ic4ih8kh3dh1"], "average pooling has no dilation"),
    (["run", "--resume", "/nonexistent/dir"], "no meta.json"),
    (["run", "--sizes", "16x16", "--kernels", "3x3x3"], "--sizes 16x16 (2-D) and --kernels 3x3x3 (3-D) give different ranks"),
    (["run", "--sizes", "16x16", "--rank", "3"], "--sizes 16x16 (2-D) and --rank 3 give different ranks"),
    (["run", "--sizes", "8x8x8x8"], "is not N, HxW or DxHxW"),
    (["run", "--sizes", "8", "--rank", "4"], "--rank"),
    (["run", "--problem", "mb1ic4id8ih8oc4kd3kh3kw3"], "iw and kw are required"),
    (["run", "--problem", "mb1ic4id8ih8iw8oc4kd9kh3kw3"], "kernel kd=9"),
    (["report", "/nonexistent/dir"], "not a directory"),
    (["frobnicate"], "invalid choice"),
    ([], "no command given; expected a command first, one of:"),
    (["--bogus"], "unknown option '--bogus'; expected a command first"),
])
def test_bad_input_one_line_exit_2(argv, fragment, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert fragment in lines[0]
    assert "Traceback" not in err


def test_out_path_that_is_a_file(tmp_path, capsys):
    f = tmp_path / "afile"
    f.write_text("x")
    assert main(["run", "--suite", "smoke", "--out", str(f)]) == 2
    assert "is a file" in capsys.readouterr().err


def test_report_on_foreign_directory(tmp_path, capsys):
    (tmp_path / "meta.json").write_text('{"tool": "other"}')
    assert main(["report", str(tmp_path)]) == 2
    assert "not written by convbench" in capsys.readouterr().err


def test_run_grid_writes_tables(tmp_path, tiny_run_args, capsys):
    out = tmp_path / "r"
    argv = ["run", "--sizes", "8,12", "--kernels", "3,5", "--strides", "1,2", "--channels", "2",
            "--backends", "direct_numba,im2col_blas", "--out", str(out)] + tiny_run_args
    assert main(argv) == 0
    df = load_summary(out)
    assert (out / "summary.csv").read_text().splitlines()[0] == ",".join(SUMMARY_COLUMNS)
    assert set(df.backend) == {"direct_numba", "im2col_blas"}
    assert len(df) == 2 * 2 * 2 * 2
    assert (df.status == "passed").all()
    assert (df.gflops_effective > 0).all()
    meta = json.loads((out / "meta.json").read_text())
    assert meta["schema_version"] == SCHEMA_VERSION and meta["config"]["threads"] == [1]
    assert meta["machine"]["blas"]["libraries"] and "cpu_model" in meta["machine"]
    assert meta["argv"][:2] == ["convbench", "run"]
    tables = (out / "tables.md").read_text()
    for heading in ("Fastest backend per problem", "Median time per call", "Effective GFLOP/s",
                    "Speed-up vs", "direct op count vs executed", "Parameters and workspace",
                    "Error against the float64 reference"):
        assert heading in tables
    assert "tables:" in capsys.readouterr().out


def test_invalid_grid_points_are_skipped_rows(tmp_path, tiny_run_args):
    out = tmp_path / "r"
    assert main(["run", "--sizes", "4", "--kernels", "3,7", "--channels", "1", "--backends", "im2col_blas",
                 "--out", str(out)] + tiny_run_args) == 0
    df = load_summary(out)
    bad = df[df.backend == "*"]
    assert len(bad) == 1 and bad.iloc[0].status == "skipped" and "larger than" in bad.iloc[0].reason
    assert "larger than" in (out / "tables.md").read_text()


def test_grids_of_every_rank(tmp_path, tiny_run_args):
    """--sizes DxHxW and --rank 1 make 3-D and 1-D grids; an invalid 3-D point is a skipped row
    whose label names its axes."""
    out = tmp_path / "r"
    assert main(["run", "--sizes", "6x8x8,2", "--kernels", "3", "--rank", "3", "--channels", "2",
                 "--backends", "im2col_blas,direct_numba", "--out", str(out)] + tiny_run_args) == 0
    df = load_summary(out)
    assert set(df[df.backend != "*"]["rank"]) == {3}
    assert (df[df.backend != "*"].status == "passed").all()
    bad = df[df.backend == "*"]
    assert len(bad) == 1 and bad.iloc[0].problem.startswith("mb1ic2id2ih2iw2oc2kd3") and "larger than" in bad.iloc[0].reason
    out1 = tmp_path / "r1"
    assert main(["run", "--sizes", "40", "--rank", "1", "--kernels", "3,5", "--backends", "im2col_blas",
                 "--out", str(out1)] + tiny_run_args) == 0
    df1 = load_summary(out1)
    assert set(df1["rank"]) == {1} and list(df1.problem) == ["mb1ic16iw40oc16kw3", "mb1ic16iw40oc16kw5"]


def test_existing_results_are_not_overwritten(tmp_path, tiny_run_args, capsys):
    out = tmp_path / "r"
    args = ["run", "--problem", "mb1ic2ih6oc2kh3", "--backends", "im2col_blas", "--out", str(out)]
    assert main(args + tiny_run_args) == 0
    assert main(args + tiny_run_args) == 2
    assert "already holds results; use --resume" in capsys.readouterr().err


def test_dry_run_lists_problems(capsys):
    assert main(["run", "--suite", "smoke", "--dry-run", "--backends", "im2col_blas"]) == 0
    out = capsys.readouterr().out
    assert "5 problems x 1 backends" in out and "smoke:3x3" in out


def test_list_info_suites(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    assert "direct_numba" in out and "im2col_blas" in out and "reference" in out
    assert main(["list", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert {r["name"] for r in rows} >= {"direct_numba", "im2col_blas"}
    assert main(["suites"]) == 0
    assert "smoke" in capsys.readouterr().out
    assert main(["info", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["peak"]["sgemm_gflops"] > 0 and info["blas"]["cpu_best"]
    if info["libraries"].get("pyfftw") and sys.platform.startswith("linux"):
        fftw = info["fftw_build"]  # the SIMD codelets the FFT backend runs
        assert fftw["version"].startswith("fftw-3") and "libfftw3f" in fftw["path"]
        assert set(fftw["simd_missing"]) <= {"sse2", "avx", "avx2", "avx512"}
        assert not set(fftw["simd_missing"]) & set(fftw["version"].split("-")[2:])


def test_report_rewrites_tables(tmp_path, tiny_run_args):
    out = tmp_path / "r"
    assert main(["run", "--problem", "mb1ic2ih6oc2kh3", "--backends", "im2col_blas,direct_numba",
                 "--out", str(out)] + tiny_run_args) == 0
    (out / "tables.md").unlink()
    assert main(["report", str(out), "--baseline", "direct_numba"]) == 0
    assert "Speed-up vs `direct_numba`" in (out / "tables.md").read_text()


# ---------------------------------------------------------------------------- hostile inputs
def _one_line_exit_2(argv, capsys, fragment):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and fragment in err[0], err
    return err[0]


def test_a_non_empty_directory_is_never_overwritten(tmp_path, tiny_run_args, capsys):
    d = tmp_path / "mine"
    d.mkdir()
    for f in ("report.md", "tables.md", "meta.json"):
        (d / f).write_text("the user's own file")
    _one_line_exit_2(["run", "--problem", "mb1ic2ih6oc2kh3", "--out", str(d)] + tiny_run_args, capsys,
                     "is not empty (it holds meta.json, report.md, tables.md); expected a new or empty directory")
    assert all((d / f).read_text() == "the user's own file" for f in ("report.md", "tables.md", "meta.json"))


def test_resume_with_other_sweep_flags_is_refused(tmp_path, tiny_run_args, capsys):
    out = tmp_path / "r"
    assert main(["run", "--problem", "mb1ic2ih6oc2kh3", "--backends", "im2col_blas", "--out", str(out)]
                + tiny_run_args) == 0
    capsys.readouterr()
    _one_line_exit_2(["run", "--resume", str(out), "--problem", "mb1ic4ih8oc4kh3", "--min-time", "1"], capsys,
                     "--resume finishes exactly the stored sweep; --min-time, --problem would change it")
    assert main(["run", "--resume", str(out), "--quiet", "--no-plots"]) == 0  # display flags are fine


def test_resume_of_a_directory_mixing_two_sweeps_is_refused(tmp_path, tiny_run_args, capsys):
    a, b = tmp_path / "a", tmp_path / "b"
    for d, prob in ((a, "mb1ic2ih6oc2kh3"), (b, "mb1ic2ih7oc2kh3")):
        assert main(["run", "--problem", prob, "--backends", "im2col_blas", "--out", str(d)] + tiny_run_args) == 0
    with open(a / "summary.csv", "a") as f:
        f.write("".join((b / "summary.csv").read_text().splitlines(True)[1:]))
    capsys.readouterr()
    _one_line_exit_2(["run", "--resume", str(a)], capsys, "holds cells this directory's meta.json does not list")


@pytest.mark.parametrize("argv, fragment", [
    (["run", "--min-time", "1", "--max-time", "0.1"], "--max-time 0.1 is below --min-time 1"),
    (["run", "--min-time", "5"], "(--max-time defaults to 2)"),
    (["compare", "a", "b", "--alpha", "2"], "'2' is out of range; expected a number between 0 and 1"),
    (["calibrate", "--runs", "1"], "1 is out of range; expected an integer >= 2, e.g. 6"),
    (["--bogus"], "unknown option '--bogus'; expected a command first, one of: calibrate, check"),
])
def test_messages_that_name_the_problem(argv, fragment, capsys):
    line = _one_line_exit_2(argv, capsys, fragment)
    assert "required" not in line and "e.g. 1,2" not in line


def test_bad_memory_limit_variable_is_named(monkeypatch, capsys):
    monkeypatch.setenv("CONVBENCH_MEMORY_LIMIT", "abc")
    _one_line_exit_2(["run", "--problem", "mb1ic2ih6oc2kh3", "--dry-run"], capsys,
                     "CONVBENCH_MEMORY_LIMIT 'abc' is not a size; expected bytes such as 4G")


def test_report_and_compare_name_file_column_and_line(tmp_path, tiny_run_args, capsys):
    out = tmp_path / "r"
    assert main(["run", "--problem", "mb1ic2ih6oc2kh3", "--backends", "im2col_blas", "--out", str(out)]
                + tiny_run_args) == 0
    good = tmp_path / "good"
    shutil.copytree(out, good)
    text = (out / "summary.csv").read_text().splitlines()
    cols = text[0].split(",")
    cells = text[1].split(",")
    cells[cols.index("time_median_s")] = "abc"
    (out / "summary.csv").write_text("\n".join([text[0], ",".join(cells)]) + "\n")
    capsys.readouterr()
    _one_line_exit_2(["report", str(out)], capsys, "summary.csv:2: column 'time_median_s' holds 'abc', not a number")
    _one_line_exit_2(["compare", str(good), str(out)], capsys, "summary.csv:2: column 'time_median_s' holds 'abc'")
    _one_line_exit_2(["compare", str(good), str(good), "--markdown", str(good / "summary.csv" / "x.md")], capsys,
                     "--markdown")


def test_a_gate_that_compared_nothing_fails(tmp_path, tiny_run_args, capsys):
    a, b = tmp_path / "a", tmp_path / "b"
    assert main(["run", "--problem", "mb1ic2ih6oc2kh3", "--backends", "im2col_blas", "--out", str(a)]
                + tiny_run_args) == 0
    assert main(["run", "--problem", "mb1ic2ih7oc2kh3", "--backends", "im2col_blas", "--out", str(b)]
                + tiny_run_args) == 0
    capsys.readouterr()
    assert main(["compare", str(a), str(b), "--fail-above", "1.3"]) == 1
    out = capsys.readouterr().out
    assert "compare FAILED: no cell was timed on both sides (1 cells only in the base, 1 only in the new run" in out
    assert main(["compare", str(a), str(b)]) == 0  # without a gate it is only a report


def test_report_of_a_run_with_no_rows(tmp_path, capsys):
    from convbench.results import SUMMARY_COLUMNS, write_meta
    write_meta(tmp_path, {"tool": "convbench", "schema_version": 2, "config": {}})
    (tmp_path / "summary.csv").write_text(",".join(SUMMARY_COLUMNS) + "\n")
    (tmp_path / "samples.csv").write_text("problem,weight_density,backend,round,iterations,time_s\n")
    assert main(["report", str(tmp_path)]) == 0
    tables = (tmp_path / "tables.md").read_text()
    assert "None" not in tables and "No cell was run" in tables


def test_two_runs_on_one_directory(tmp_path):
    """The second concurrent run is refused (lock file); the first one's rows stay its own."""
    import subprocess
    import time
    out = tmp_path / "r"
    argv = [sys.executable, "-m", "convbench", "run", "--backends", "im2col_blas", "--min-time", "0.5",
            "--max-time", "0.6", "--quiet", "--no-plots", "--out", str(out)]
    first = subprocess.Popen(argv + ["--problem", "mb1ic4ih12oc4kh3", "--problem", "mb1ic4ih14oc4kh3"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        t_end = time.time() + 60
        while not (out / ".convbench.lock").exists() and time.time() < t_end:
            time.sleep(0.05)
        second = subprocess.run([sys.executable, "-m", "convbench", "run", "--resume", str(out), "--quiet"],
                                capture_output=True, text=True, timeout=120)
        assert second.returncode == 2
        assert "another convbench run (pid" in second.stderr and len(second.stderr.strip().splitlines()) == 1
    finally:
        first.communicate(timeout=120)
    assert first.returncode == 0
    assert len(load_summary(out)) == 2


def test_disk_full_mid_run_keeps_rows_and_prints_resume(tmp_path, tiny_run_args, monkeypatch, capsys):
    from convbench import results
    real = results._AppendFile.append
    calls = {"n": 0}

    def full(self, records):
        if self.path.name == "summary.csv" and calls["n"] >= 2:
            raise results.ResultsWriteError(self.path, OSError(28, "No space left on device"))
        if self.path.name == "summary.csv":
            calls["n"] += 1
        return real(self, records)
    monkeypatch.setattr(results._AppendFile, "append", full)
    out = tmp_path / "r"
    rc = main(["run", "--problem", "mb1ic2ih6oc2kh3", "--problem", "mb1ic2ih7oc2kh3", "--problem", "mb1ic2ih8oc2kh3",
               "--backends", "im2col_blas", "--out", str(out)] + tiny_run_args)
    err = capsys.readouterr().err
    assert rc == 1 and "Traceback" not in err
    assert f"cannot write {out}/summary.csv: No space left on device; every row written before is intact" in err
    assert f"convbench run --resume {out}" in err
    monkeypatch.setattr(results._AppendFile, "append", real)
    assert len(load_summary(out)) == 1  # the header, then one row: what was written is there
    assert main(["run", "--resume", str(out), "--quiet", "--no-plots"]) == 0
    assert len(load_summary(out)) == 3
