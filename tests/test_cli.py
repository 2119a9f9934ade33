"""The command line through ``main(argv)``: good runs, and every kind of bad input."""

from __future__ import annotations

import json
import sys

import pytest

from convbench.cli import main
from convbench.results import SUMMARY_COLUMNS, load_summary


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
    (["run", "--direction", "sideways"], "invalid choice"),
    (["run", "--resume", "/nonexistent/dir"], "no meta.json"),
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
    assert meta["schema_version"] == 2 and meta["config"]["threads"] == 1
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
