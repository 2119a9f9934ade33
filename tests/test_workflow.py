"""The Python API for notebooks: run, load, report, compare."""

from __future__ import annotations

import pytest

import convbench

FAST = dict(min_time=0.005, max_time=0.02, min_rounds=2, quiet=True, no_plots=True)


def test_run_returns_the_summary_and_keeps_out(tmp_path, capsys):
    out = tmp_path / "nb"
    df = convbench.run(sizes=[8, 12], kernels="3", channels=[2], backends=["im2col_blas", "direct_numba"],
                       out=str(out), **FAST)
    assert len(df) == 4 and set(df.status) == {"passed"} and df.attrs["out"] == str(out)
    assert (out / "summary.csv").is_file() and df.attrs["meta"]["config"]["backends"] == ["im2col_blas",
                                                                                          "direct_numba"]
    again = convbench.load(out)
    assert list(again.time_median_s) == list(df.time_median_s) and len(again.attrs["samples"]) > 0
    w = convbench.report(out, plots=False)
    assert "Fastest backend per problem" in w["tables"].read_text()
    c = convbench.compare(out, out)
    frame = c.frame()
    assert len(frame) == 4 and (frame.ratio == 1.0).all() and not c.regressions


def test_run_without_out_leaves_nothing_behind(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    df = convbench.run(problem="mb1ic2ih6oc2kh3", backends="im2col_blas", **FAST)
    assert len(df) == 1 and df.attrs["out"] is None
    assert not (tmp_path / "results").exists()


@pytest.mark.parametrize("kwargs, match", [
    (dict(sizes="3,,4"), "sizes: '3,,4' has an empty value"),
    (dict(sizes=[0]), "sizes: 0 is out of range"),
    (dict(kernels=["abc"]), "kernels: 'abc' is not an integer"),
    (dict(backends="nope"), "unknown backend 'nope'"),
    (dict(sizez=[8]), "unknown option\\(s\\) sizez; accepted: problem, suite"),
    (dict(direction="sideways"), "direction: 'sideways' is not one of fwd, bwd_d, bwd_w, both, all"),
    (dict(min_time=-1), "min_time: -1 must be a positive finite number"),
])
def test_bad_options_raise_value_error_before_running(kwargs, match, tmp_path):
    with pytest.raises(ValueError, match=match):
        convbench.run(out=str(tmp_path / "x"), **kwargs)
    assert not (tmp_path / "x").exists()
