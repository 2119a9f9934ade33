"""The regression comparator, on runs recorded on this project's machine kind.

``tests/data/aa1`` and ``aa2`` are two identical runs (A/A); ``slow15`` is the same run with
``--inject-slowdown im2col_blas=1.5``. They were recorded with::

    convbench run --suite-file tests/data/ci_small.txt \\
        --backends im2col_blas,direct_numba,winograd_f4x3 --out tests/data/aa1   # (and aa2)
    convbench run ... --inject-slowdown im2col_blas=1.5 --out tests/data/slow15
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pandas as pd
import pytest

from convbench.cli import main
from convbench.comparison import compare_runs, load_run, render_markdown
from convbench.results import ResultsError

DATA = Path(__file__).parent / "data"


@pytest.fixture
def copy(tmp_path):
    def _copy(name):
        dst = tmp_path / name
        shutil.copytree(DATA / name, dst)
        return dst
    return _copy


def test_flags_injected_slowdown_on_one_backend_only():
    c = compare_runs(load_run(DATA / "aa1"), load_run(DATA / "slow15"), factor=1.3)
    flagged = {r.backend for r in c.regressions}
    assert flagged == {"im2col_blas"}
    for r in c.rows:
        if r.backend == "im2col_blas":
            assert 1.35 < r.ratio < 1.7 and r.p < 0.01
    assert len([r for r in c.rows if r.backend == "im2col_blas"]) == len(c.regressions)


def test_same_samples_and_aa_rerun_are_clean():
    same = compare_runs(load_run(DATA / "aa1"), load_run(DATA / "aa1"), factor=1.3)
    assert not same.regressions and all(r.ratio == 1.0 for r in same.rows)
    aa = compare_runs(load_run(DATA / "aa1"), load_run(DATA / "aa2"), factor=1.3)
    assert not aa.regressions
    assert max(r.ratio for r in aa.rows) < 1.3


def _scale(path: Path, factor: float, backend: str | None = None):
    s = pd.read_csv(path / "samples.csv")
    sel = s.backend == backend if backend else slice(None)
    s.loc[sel, "time_s"] *= factor
    s.to_csv(path / "samples.csv", index=False)


def test_uniformly_slower_machine_is_not_a_regression_with_the_sentinel(copy):
    slow = copy("aa2")
    _scale(slow, 1.4)  # every round, sentinel included, 1.4x slower: a slower machine today
    base = load_run(DATA / "aa1")
    assert not compare_runs(base, load_run(slow), factor=1.3, normalize="sentinel").regressions
    assert compare_runs(base, load_run(slow), factor=1.3, normalize="none").regressions


def test_noise_floor_raises_the_threshold(copy):
    base = copy("aa1")
    cells = {f"{r.problem}|{r.backend}": 2.0 for r in load_run(base).cells.values()}
    (base / "noise.json").write_text(json.dumps({"cells": cells}))
    c = compare_runs(load_run(base), load_run(DATA / "slow15"), factor=1.3)
    assert not c.regressions and all(r.threshold == 2.0 for r in c.rows)


def test_exit_codes_and_markdown(tmp_path, capsys):
    md = tmp_path / "cmp.md"
    assert main(["compare", str(DATA / "aa1"), str(DATA / "slow15"), "--fail-above", "1.3",
                 "--markdown", str(md)]) == 1
    out = capsys.readouterr().out
    assert "REGRESSION" in out and "im2col_blas" in out
    assert "| cell | base | new | ratio | 95% CI | p | threshold | verdict |" in md.read_text()
    assert main(["compare", str(DATA / "aa1"), str(DATA / "aa2"), "--fail-above", "1.3"]) == 0
    # without --fail-above the report never fails the build
    assert main(["compare", str(DATA / "aa1"), str(DATA / "slow15")]) == 0


def test_machine_mismatch_is_warned_first(copy, capsys):
    other = copy("aa2")
    meta = json.loads((other / "meta.json").read_text())
    meta["machine"]["cpu_model"] = "Some Other CPU"
    meta["machine"]["blas"]["libraries"][0]["architecture"] = "Haswell"
    (other / "meta.json").write_text(json.dumps(meta))
    assert main(["compare", str(DATA / "aa1"), str(other)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("warning: blas kernels differ") or lines[0].startswith("warning: cpu differs")
    assert any("Some Other CPU" in line for line in lines[:3])


def test_missing_cells_are_reported(copy, capsys):
    part = copy("aa2")
    s = pd.read_csv(part / "summary.csv")
    gone = s.iloc[0]
    s.iloc[1:].to_csv(part / "summary.csv", index=False)
    c = compare_runs(load_run(DATA / "aa1"), load_run(part))
    assert (gone.problem, gone.backend) in c.missing_in_new
    assert main(["compare", str(DATA / "aa1"), str(part)]) == 0
    assert "only in base" in capsys.readouterr().out


@pytest.mark.parametrize("make, fragment", [
    (lambda d: None, "no such result directory"),
    (lambda d: d.write_text('{"benchmarks": "nope"}'), "not a pytest-benchmark file"),
    (lambda d: d.write_text("not json at all"), "not a readable JSON file"),
    (lambda d: (d.mkdir(), (d / "meta.json").write_text('{"tool": "other"}')), "not written by convbench"),
    (lambda d: (shutil.copytree(DATA / "aa1", d), (d / "summary.csv").write_text("a,b\n1,2\n")), "missing columns"),
])
def test_malformed_or_foreign_inputs_exit_2(tmp_path, capsys, make, fragment):
    bad = tmp_path / "bad"
    make(bad)
    assert main(["compare", str(DATA / "aa1"), str(bad)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and fragment in err[0]
    with pytest.raises(ResultsError, match=re.escape(fragment)):
        load_run(bad)


def _pytest_benchmark_json(path: Path, scale: float):
    benches = []
    for i, (prob, backend) in enumerate([("p1", "a"), ("p1", "b"), ("p2", "a")]):
        data = [(1e-3 + 1e-6 * k) * (scale if backend == "a" else 1.0) for k in range(20)]
        benches.append({"group": prob, "name": f"test_conv[{prob}-{backend}]", "extra_info":
                        {"problem": prob, "backend": backend},
                        "stats": {"median": sorted(data)[10], "data": data}})
    path.write_text(json.dumps({"machine_info": {"cpu": {"brand_raw": "X"}}, "benchmarks": benches}))


def test_pytest_benchmark_files(tmp_path):
    a, b = tmp_path / "0001.json", tmp_path / "0002.json"
    _pytest_benchmark_json(a, 1.0)
    _pytest_benchmark_json(b, 1.6)
    c = compare_runs(load_run(a), load_run(b), factor=1.3)
    assert {(r.problem, r.backend) for r in c.regressions} == {("p1", "a"), ("p2", "a")}
    assert "p1 / a" in render_markdown(c)
