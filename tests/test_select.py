"""The fuzzer, backend='auto' and choose_backend, measure mode, and `convbench tune`:
fitting, storage, evaluation and its bad input."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import warnings

import numpy as np
import pandas as pd
import pytest

import convbench
from convbench.cli import main
from convbench.fuzz import fuzz_problems
from convbench.problem import ConvProblem
from convbench.select import auto
from convbench.select.data import Measurements
from convbench.select.evaluate import regret_table, summarise
from convbench.select.rules import builtin_rule, nnpack_rule

FAST = "direct_numba,im2col_blas,fft_pyfftw"


@pytest.fixture(autouse=True)
def isolated_selector(tmp_path, monkeypatch):
    """No test reads or writes the developer's fitted selector."""
    monkeypatch.setenv("CONVBENCH_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("CONVBENCH_SELECTOR", raising=False)
    auto.reset()
    auto.set_mode("model")
    yield
    auto.reset()
    auto.set_mode("model")


def test_fuzzer_is_reproducible_valid_and_within_budget():
    a, b, c = fuzz_problems(40, 7), fuzz_problems(40, 7), fuzz_problems(40, 8)
    assert [p.label for p in a] == [p.label for p in b]
    assert [p.label for p in a] != [p.label for p in c]
    assert len({p.label for p in a}) == 40
    assert all(2 * p.mb * p.oc * p.icg * p.oh * p.ow * p.kh * p.kw <= 4e8 for p in a)
    big = fuzz_problems(300, 1)
    assert any(p.g == p.ic and p.icg == 1 and p.g > 1 for p in big)  # depthwise
    assert any(p.sh > 1 for p in big) and any(p.dh for p in big) and max(p.kh for p in big) > 11
    assert all(1 <= p.kh <= 15 for p in big)
    with pytest.raises(ValueError, match="raise the budgets"):
        fuzz_problems(5, 0, max_flops=1)


@pytest.mark.parametrize("rank,lo,hi,klo,khi", [(1, 8, 4096, 1, 31), (3, 4, 64, 1, 7)])
def test_fuzzer_draws_problems_of_the_rank_asked(rank, lo, hi, klo, khi):
    ps = fuzz_problems(60, 2, rank=rank)
    assert [p.label for p in ps] == [p.label for p in fuzz_problems(60, 2, rank=rank)]
    assert {p.rank for p in ps} == {rank} and len({p.label for p in ps}) == 60
    assert all(lo <= i <= hi for p in ps for i in p.own("i"))
    assert all(klo <= k <= khi for p in ps for k in p.own("k"))
    assert max(max(p.own("k")) for p in ps) > khi // 2  # the range is drawn, not a corner of it
    if rank == 3:
        assert any(len(set(p.own("i"))) > 1 for p in ps) and any(p.kd == p.kh == p.kw > 1 for p in ps)
    assert all(2 * p.mb * p.oc * p.icg * np.prod(p.own("o")) * np.prod(p.own("k")) <= 4e8 for p in ps)
    with pytest.raises(ValueError, match="rank 4"):
        fuzz_problems(3, 0, rank=4)


def test_run_fuzz_takes_the_rank(capsys):
    assert main(["run", "--fuzz", "3", "--seed", "4", "--rank", "3", "--dry-run", "--backends", "im2col_blas"]) == 0
    out = capsys.readouterr().out
    assert all(p.label in out for p in fuzz_problems(3, 4, rank=3))
    from convbench.sweep import expand_problems
    assert {e.suite for e in expand_problems(fuzz=3, seed=4, rank=3)} == {"fuzz-4-3d"}


def test_run_fuzz_dry_run_lists_the_same_problems(capsys):
    assert main(["run", "--fuzz", "4", "--seed", "3", "--dry-run", "--backends", "im2col_blas"]) == 0
    first = capsys.readouterr().out
    assert main(["run", "--fuzz", "4", "--seed", "3", "--dry-run", "--backends", "im2col_blas"]) == 0
    assert capsys.readouterr().out == first
    assert all(p.label in first for p in fuzz_problems(4, 3))
    assert main(["run", "--fuzz", "0"]) == 2


@pytest.mark.parametrize("p", fuzz_problems(25, 11), ids=lambda p: p.label)
def test_auto_never_picks_a_backend_that_cannot_run_the_problem(p):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for cands in (None, ["winograd_f4x3", "im2col_blas"], ["fft_pyfftw", "direct_numba", "winograd_f2x5"]):
            name = auto.choose_for_problem(p, cands)
            assert convbench.get_backend(name).supports(p) is None
            assert cands is None or name in cands


def test_rules_warn_once_and_choose_backend_takes_shapes_or_arrays():
    with pytest.warns(UserWarning, match="no fitted selector"):
        a = convbench.choose_backend((1, 32, 28, 28), (32, 32, 3, 3), padding=1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a second call does not warn again
        x = np.zeros((1, 32, 28, 28), np.float32)
        assert convbench.choose_backend(x, np.zeros((32, 32, 3, 3), np.float32), padding=1) == a
    assert a == "winograd_f4x3"
    assert convbench.choose_backend((1, 1, 128, 128), (1, 1, 9, 9), padding=4) == "fft_pyfftw"
    assert convbench.choose_backend((1, 8, 16, 16), (8, 1, 3, 3), groups=8) == "direct_numba"
    assert convbench.choose_backend((1, 8, 16, 16), (8, 8, 3, 3), stride=2, direction="bwd_w") == "direct_numba"
    assert convbench.choose_backend((1, 8, 16, 16), (8, 8, 1, 1), stride=2, direction="bwd_w") == "im2col_blas"
    with pytest.raises(ValueError, match="no candidate runs"):
        convbench.choose_backend((1, 1, 8, 8), (1, 1, 5, 5), candidates=["winograd_f4x3"])
    with pytest.raises(ValueError, match="direction"):
        convbench.choose_backend((1, 1, 8, 8), (1, 1, 3, 3), direction="sideways")
    assert nnpack_rule(ConvProblem(mb=1, ic=4, oc=4, ih=8, iw=8, kh=1, kw=1)) == "direct_numba"
    assert builtin_rule(ConvProblem(mb=1, ic=4, oc=4, ih=8, iw=8, kh=1, kw=1)) == "im2col_blas"


def test_auto_results_are_correct_in_every_api_function():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 6, 12, 12)).astype(np.float32)
    w = rng.standard_normal((4, 3, 3, 3)).astype(np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        y = convbench.conv2d(x, w, padding=1, groups=2, backend="auto")
        ref = convbench.conv2d(x.astype(np.float64), w.astype(np.float64), padding=1, groups=2,
                               backend="reference")
        np.testing.assert_allclose(y, ref, rtol=1e-4, atol=1e-4)
        dy = rng.standard_normal(y.shape).astype(np.float32)
        dx = convbench.conv_transpose2d(dy, w, padding=1, groups=2, backend="auto")
        np.testing.assert_allclose(dx, convbench.conv_transpose2d(dy, w, padding=1, groups=2, backend="reference"),
                                   rtol=1e-4, atol=1e-4)
        dw = convbench.conv2d_weight(x, w.shape, dy, padding=1, groups=2, backend="auto")
        np.testing.assert_allclose(dw, convbench.conv2d_weight(x, w.shape, dy, padding=1, groups=2,
                                                               backend="reference"), rtol=1e-3, atol=1e-3)
        m, idx = convbench.max_pool2d(x, 2, return_indices=True, backend="auto")
        np.testing.assert_array_equal(m, convbench.max_pool2d(x, 2, backend="pool_reference"))
        g = convbench.max_pool2d_backward(m, x, 2, indices=idx, backend="auto")
        assert g.shape == x.shape
        a = convbench.avg_pool2d(x, 3, 1, 1, backend="auto")
        np.testing.assert_allclose(a, convbench.avg_pool2d(x, 3, 1, 1, backend="pool_reference"), rtol=1e-5, atol=1e-6)
        y2 = convbench.conv2d(x, w, padding=1, groups=2, backend="auto", candidates=["direct_numba"])
        np.testing.assert_allclose(y2, ref, rtol=1e-4, atol=1e-4)
    with pytest.raises(ValueError, match="unknown backend"):
        convbench.conv2d(x, w, padding=1, groups=2, backend="auto", candidates=["nope"])
    with pytest.raises(ValueError, match="candidates= is for backend='auto'"):
        convbench.conv2d(x, w, padding=1, groups=2, backend="im2col_blas", candidates=["direct_numba"])


def test_measure_mode_times_the_candidates_once_and_caches():
    auto.set_mode("measure")
    x = np.random.default_rng(1).standard_normal((1, 4, 10, 10)).astype(np.float32)
    w = np.random.default_rng(2).standard_normal((4, 4, 3, 3)).astype(np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cands = ["im2col_blas", "direct_numba", "winograd_f4x3"]
        y = convbench.conv2d(x, w, padding=1, backend="auto", candidates=cands)
        convbench.conv2d(x, w, padding=1, backend="auto", candidates=cands)
    log = auto.measure_log()
    assert len(log) == 1 and log[0]["chosen"] in cands and set(log[0]["times"]) == set(cands)
    assert log[0]["chosen"] == min(log[0]["times"], key=log[0]["times"].get)
    assert log[0]["overhead_s"] > 0 and log[0]["calls_to_repay"] > 0
    ref = convbench.conv2d(x.astype(np.float64), w.astype(np.float64), padding=1, backend="reference")
    np.testing.assert_allclose(y, ref, rtol=1e-4, atol=1e-4)
    with pytest.raises(ValueError, match="accepted: model, measure"):
        auto.set_mode("fastest")


def test_regret_and_summary_by_hand():
    probs = {f"p{i}": ConvProblem(mb=1, ic=1, oc=1, ih=8 + i, iw=8 + i, kh=3, kw=3) for i in range(3)}
    times = pd.DataFrame({"im2col_blas": [1.0, 2.0, 4.0], "direct_numba": [2.0, 1.0, 1.0],
                          "torch_onednn": [0.5, 1.0, 2.0]}, index=list(probs))
    m = Measurements(times, probs, {k: "" for k in probs}, "float32", 1, "fwd", [])
    tab = regret_table(m, {"always im2col_blas": lambda p: "im2col_blas", "torch_onednn": None},
                       ["im2col_blas", "direct_numba"])
    s = summarise(tab).set_index("policy")
    assert s.loc["always im2col_blas", "regret_max"] == 4.0
    assert abs(s.loc["always im2col_blas", "regret_geomean"] - (1 * 2 * 4) ** (1 / 3)) < 1e-12
    assert abs(s.loc["always im2col_blas", "top1"] - 1 / 3) < 1e-12
    assert abs(s.loc["torch_onednn", "regret_geomean"] - (0.5 * 1 * 2) ** (1 / 3)) < 1e-12


@pytest.fixture(scope="module")
def measured(tmp_path_factory):
    """A small measured fuzz sweep (12 problems, three backends, short timing)."""
    out = tmp_path_factory.mktemp("tune") / "fuzz"
    args = ["run", "--fuzz", "12", "--seed", "4", "--backends", FAST, "--min-time", "0.002", "--max-time",
            "0.02", "--min-rounds", "2", "--cell-budget", "0.2", "--quiet", "--no-plots", "--out", str(out)]
    assert main(args) == 0
    return out


def test_tune_fits_stores_and_auto_finds_it_in_a_new_process(tmp_path, capsys):
    from .tuning_worlds import CANDS, learnable, world
    fuzz, nets, _ = world(tmp_path, learnable)
    rep = tmp_path / "rep"
    assert main(["tune", str(fuzz), str(nets), "--evaluate", "--model", "linear", "--candidates", ",".join(CANDS),
                 "--report", str(rep), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "installed the linear selector for float32, 1 thread(s), fwd" in out and "regret geomean" in out, out
    path = auto.default_path()
    assert path.is_file() and path.parent == tmp_path / "cache" / "selectors"
    doc = json.loads(path.read_text())
    assert doc["revision"] == 1 and doc["selectors"][0]["fingerprint"]["cores"] == os.cpu_count()
    assert (rep / "evaluation.md").is_file() and (rep / "decision_map.png").is_file()
    text = (rep / "evaluation.md").read_text()
    for baseline in ("always im2col_blas", "best single", "NNPACK rules", "scipy-style two-way", "built-in rules",
                     "Verdict: the selector against the built-in rules", "rules decided"):
        assert baseline in text
    # a new process finds the fitted selector by itself: no rules warning
    code = ("import warnings, convbench; warnings.simplefilter('error'); "
            "print(convbench.choose_backend((1, 16, 20, 20), (16, 16, 3, 3), padding=1))")
    env = dict(os.environ, CONVBENCH_CACHE_DIR=str(tmp_path / "cache"))
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() in CANDS
    # a second tune bumps the revision and keeps the previous file
    assert main(["tune", str(fuzz), str(nets), "--model", "linear", "--candidates", ",".join(CANDS), "--quiet"]) == 0
    assert json.loads(path.read_text())["revision"] == 2 and path.with_name(path.stem + ".prev.json").is_file()


def test_tune_on_problems_of_two_ranks_judges_each_and_auto_chooses_volumes(measured, tmp_path):
    vol = tmp_path / "fuzz3d"
    args = ["run", "--fuzz", "10", "--seed", "4", "--rank", "3", "--backends", FAST, "--min-time", "0.002",
            "--max-time", "0.02", "--min-rounds", "2", "--cell-budget", "0.2", "--quiet", "--no-plots", "--out", str(vol)]
    assert main(args) == 0
    rep = tmp_path / "rep"
    assert main(["tune", str(measured), str(vol), "--evaluate", "--model", "linear", "--report", str(rep),
                 "--quiet"]) == 0
    text = (rep / "evaluation.md").read_text()
    assert "**2-D problems**" in text and "**3-D problems**" in text
    regret = pd.read_csv(rep / "regret.csv")
    assert set(regret["rank"]) == {2, 3}
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # tune's verdict is used (a selector or the rules it kept): no warning
        pick = convbench.choose_backend((1, 8, 12, 12, 12), (8, 8, 3, 3, 3), padding=1)
    assert pick in auto.own_candidates("conv")


@pytest.mark.parametrize("kind", ["linear", "trees", "hybrid", "roofline"])
def test_selector_kinds_fit_round_trip_and_choose_admissible(measured, tmp_path, kind):
    from convbench.select import store
    from convbench.select.data import load_measurements
    from convbench.select.model import fit_selector
    meas = load_measurements([measured])
    sel = fit_selector(meas, kind, FAST.split(","))
    path, rev = store.write(tmp_path / "s.json", sel)
    back = [s for s in store.entries(path) if s.direction == "fwd"][0]
    p = ConvProblem(mb=1, ic=8, oc=8, ih=20, iw=20, kh=5, kw=5, ph=2, pw=2)
    assert back.kind == kind and back.choose(p, ["im2col_blas", "direct_numba"]) == sel.choose(
        p, ["im2col_blas", "direct_numba"])
    assert back.choose(p, ["fft_pyfftw"]) == "fft_pyfftw" and back.choose(p, []) is None


def test_corrupt_selector_file_warns_naming_it_and_falls_back(tmp_path, monkeypatch):
    bad = tmp_path / "sel.json"
    bad.write_text("{not json")
    monkeypatch.setenv("CONVBENCH_SELECTOR", str(bad))
    auto.reset()
    with pytest.warns(UserWarning, match=str(bad)):
        name = convbench.choose_backend((1, 32, 28, 28), (32, 32, 3, 3), padding=1)
    assert name == "winograd_f4x3"  # the built-in rules


def test_tune_bad_input(measured, tmp_path, capsys):
    def err(argv):
        assert main(argv) == 2
        e = capsys.readouterr().err.strip()
        assert "\n" not in e and "Traceback" not in e
        return e
    assert "not a convbench result directory" in err(["tune", str(tmp_path)])
    assert "no passed rows with dtype float64" in err(["tune", str(measured), "--dtype", "float64"])
    assert "no passed rows with threads 2" in err(["tune", str(measured), "--threads", "2"])
    assert "--model 'forest'" in err(["tune", str(measured), "--model", "forest"])
    other = tmp_path / "other"
    shutil.copytree(measured, other)
    meta = json.loads((other / "meta.json").read_text())
    meta["machine"]["cpu_model"] = "Some Other CPU"
    (other / "meta.json").write_text(json.dumps(meta))
    assert "measured on another machine" in err(["tune", str(other)])
    empty = tmp_path / "empty"
    shutil.copytree(measured, empty)
    df = pd.read_csv(empty / "summary.csv")
    df.assign(status="failed").to_csv(empty / "summary.csv", index=False)
    assert "no passed rows" in err(["tune", str(empty)])
    # another machine among good directories: a warning, and the rest is fitted
    assert main(["tune", str(measured), str(other), "--out", str(tmp_path / "s.json"), "--quiet"]) == 0
    assert "its rows are left out" in capsys.readouterr().err


def test_run_with_auto_shows_its_choice(tmp_path):
    out = tmp_path / "r"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert main(["run", "--problem", "mb1ic16ih16oc16kh3ph1", "--problem", "mb1ic1ih64oc1kh9ph4",
                     "--backends", "auto,im2col_blas,fft_pyfftw,winograd_f4x3", "--min-time", "0.002",
                     "--max-time", "0.02", "--quiet", "--no-plots", "--out", str(out)]) == 0
    df = pd.read_csv(out / "summary.csv")
    auto = df[df.backend == "auto"]
    own = {"im2col_blas", "fft_pyfftw", "winograd_f4x3", "direct_numba", "fft_scipy", "dense_matrix", "sparse_csr",
           "winograd_f2x3", "winograd_f6x3", "winograd_f2x5", "winograd_f4x5"}
    assert len(auto) == 2 and set(auto.chosen) <= own and (auto.role == "meta").all()  # a column, not a note
    assert (auto.status == "passed").all()
    tables = (out / "tables.md").read_text()
    assert "What backend=auto chose" in tables
    section = tables.split("What backend=auto chose")[1].split("\n## ")[0]
    assert all(f"| {c} |" in section for c in auto.chosen)


def test_features_count_every_axis_and_name_the_rank():
    from convbench.select.features import FEATURES, features
    at = {n: i for i, n in enumerate(FEATURES)}
    vol = ConvProblem(mb=1, ic=8, oc=8, id=8, ih=12, iw=16, kd=3, kh=3, kw=3, pd=1, ph=1, pw=1, rank=3)
    line = ConvProblem(mb=1, ic=8, oc=8, iw=64, kw=5, sw=2, rank=1)
    f3, f1 = features(vol), features(line)
    assert f3[at["rank"]] == 3 and f3[at["kd"]] == 3 and f3[at["wino3"]] == 1
    assert f3[at["log_in_px"]] == pytest.approx(np.log2(8 * 12 * 16))
    assert f3[at["log_taps"]] == pytest.approx(np.log2(27)) and f3[at["log_od"]] == pytest.approx(3)
    assert f1[at["rank"]] == 1 and f1[at["log_taps"]] == pytest.approx(np.log2(5)) and f1[at["stride"]] == 2
    assert f1[at["kh"]] == 1 and f1[at["log_in_px"]] == pytest.approx(6)


def test_builtin_rules_for_stems_and_large_depthwise_kernels():
    """The rules follow what was measured (issue 28): stems and small image filters run
    direct_numba's generated stem kernel forward; a 15x15 depthwise blur goes to the FFT."""
    stem3 = ConvProblem(mb=1, ic=3, oc=32, ih=224, iw=224, kh=3, kw=3, sh=2, sw=2, ph=1, pw=1)
    assert builtin_rule(stem3) == "direct_numba"
    assert builtin_rule(stem3.replace(direction="bwd_d")) == "im2col_blas"  # its transposed form has 32 channels
    # 7x7 RGB stems: the channel-blocked kernel (1.37x im2col_blas on ResNet-50's conv1)
    assert builtin_rule(stem3.replace(kh=7, kw=7, ph=3, pw=3)) == "direct_numba"
    assert builtin_rule(stem3.replace(oc=8, kh=7, kw=7, ph=3, pw=3)) == "im2col_blas"  # 8 channels: half a panel
    blur = ConvProblem(mb=1, ic=3, oc=3, g=3, ih=256, iw=256, kh=15, kw=15, ph=7, pw=7)
    assert builtin_rule(blur) == "fft_pyfftw"
    assert builtin_rule(blur.replace(kh=3, kw=3, ph=1, pw=1)) == "direct_numba"


def test_builtin_rules_for_the_channel_blocked_kernel():
    """Long reductions go to direct_numba's channel-blocked kernel forward and in bwd_d (at
    stride 2 by phases), and so do weight gradients of kernels larger than 1x1; short
    reductions and 1x1 weight gradients stay with the GEMM; 3x3 at stride 1 keeps
    Winograd except on planes of at most 64 outputs."""
    late = ConvProblem(mb=1, ic=512, oc=2048, ih=7, iw=7, kh=1, kw=1)
    assert builtin_rule(late) == "direct_numba"
    assert builtin_rule(late.replace(direction="bwd_d")) == "direct_numba"
    assert builtin_rule(late.replace(direction="bwd_w")) == "im2col_blas"  # 1x1: a GEMM without an unfold
    assert builtin_rule(late.replace(direction="bwd_w", kh=3, kw=3, ph=1, pw=1)) == "direct_numba"
    assert builtin_rule(late.replace(direction="bwd_w", kh=3, kw=3, ph=1, pw=1, g=2)) != "direct_numba"  # groups
    assert builtin_rule(late.replace(ic=64, ih=56, iw=56)) == "direct_numba"  # a reduction of 64
    assert builtin_rule(late.replace(ic=16, ih=56, iw=56)) == "im2col_blas"  # of 16
    s2 = ConvProblem(mb=1, ic=128, oc=128, ih=56, iw=56, kh=3, kw=3, sh=2, sw=2, ph=1, pw=1)
    assert builtin_rule(s2) == "direct_numba"
    assert builtin_rule(s2.replace(direction="bwd_d")) == "direct_numba"  # phase by phase
    assert builtin_rule(s2.replace(direction="bwd_d", ic=4, oc=4)) == "im2col_blas"  # phases of 4 channels
    s1 = ConvProblem(mb=1, ic=512, oc=512, ih=7, iw=7, kh=3, kw=3, ph=1, pw=1)
    assert builtin_rule(s1) == "direct_numba"
    assert builtin_rule(s1.replace(ic=128, oc=128, ih=28, iw=28)) == "winograd_f4x3"


def test_features_mark_same_padded_depthwise_and_few_input_channels():
    """The two features that let a fitted model learn direct_numba's whole-plane depthwise and
    stem kernels (held-out MobileNet-v2 regret 1.176 -> 1.090 with them, issue 28)."""
    from convbench.select.features import FEATURES, features
    at = {n: i for i, n in enumerate(FEATURES)}
    dw = ConvProblem(mb=1, ic=576, oc=576, g=576, ih=14, iw=14, kh=3, kw=3, sh=2, sw=2, ph=1, pw=1)
    assert features(dw)[at["dw_same"]] == 1 and features(dw)[at["few_ic"]] == 0
    assert features(dw.replace(ph=0, pw=0))[at["dw_same"]] == 0  # 6 wide, not ceil(14 / 2)
    rgb = ConvProblem(mb=1, ic=3, oc=32, ih=224, iw=224, kh=3, kw=3, sh=2, sw=2, ph=1, pw=1)
    assert features(rgb)[at["few_ic"]] == 1 and features(rgb)[at["dw_same"]] == 0
    assert features(rgb.replace(ic=8))[at["few_ic"]] == 0
