"""The CI gate: A/A calibration into a baseline, and re-measurement of flagged cells.

Uses the recorded runs of ``tests/data`` (see ``test_compare.py``): ``aa1``/``aa2`` identical,
``slow15`` with ``im2col_blas`` slowed down 1.5x.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

from convbench.cli import main
from convbench.comparison import compare_runs, load_run
from convbench.gate import aa_run_dirs, noise_floors, persistent_regressions, write_baseline

DATA = Path(__file__).parent / "data"


@pytest.fixture
def aa_runs(tmp_path):
    runs = tmp_path / "aa"
    for i, name in enumerate(("aa1", "aa2"), start=1):
        shutil.copytree(DATA / name, runs / f"run{i}")
    (runs / "notes").mkdir()  # not a run: ignored
    return runs


def test_noise_floor_is_the_worst_pairwise_ratio_times_the_margin():
    runs = [load_run(DATA / "aa1"), load_run(DATA / "aa2")]
    floors, worst = noise_floors(runs, normalize="peers", margin=1.1)
    assert set(floors) == set(worst) and floors
    both_ways = {}
    for a, b in ((runs[0], runs[1]), (runs[1], runs[0])):
        for r in compare_runs(a, b, factor=1.0, normalize="peers").rows:
            key = f"{r.problem}|{r.backend}"
            both_ways[key] = max(both_ways.get(key, 1.0), r.ratio)
    for key, w in worst.items():
        assert w == pytest.approx(both_ways[key]) and w >= 1.0
        assert floors[key] == pytest.approx(w * 1.1, abs=1e-4)


def test_write_baseline_pools_rounds_and_writes_floors(aa_runs, tmp_path):
    dirs = aa_run_dirs(aa_runs)
    assert [d.name for d in dirs] == ["run1", "run2"]
    out = tmp_path / "baseline"
    ws = write_baseline(dirs, out, normalize="peers", margin=1.2, suite="ci_small", rounds=5)
    noise = json.loads((out / "noise.json").read_text())
    assert noise["runs"] == 2 and noise["margin"] == 1.2 and noise["suite"] == "ci_small"
    assert set(noise["cells"]) == {k for k, _ in ws}
    assert [v for _, v in ws] == sorted((v for _, v in ws), reverse=True)
    pooled = pd.read_csv(out / "samples.csv")
    per_cell = pooled.groupby(["problem", "weight_density", "backend"]).size()
    assert per_cell.max() <= 2 * 5 and per_cell.min() >= 2  # both runs contribute, each capped
    assert (out / "summary.csv").read_text() == (dirs[0] / "summary.csv").read_text()
    assert "largest A/A ratio" in (out / "calibration.md").read_text()
    assert load_run(out).cells  # the baseline loads as a run


def test_write_baseline_needs_two_runs(aa_runs, tmp_path):
    with pytest.raises(ValueError, match="2 or more"):
        write_baseline(aa_run_dirs(aa_runs)[:1], tmp_path / "b", normalize="peers", margin=1.1, suite="x")


def test_calibrate_from_recorded_runs_then_compare_uses_the_floors(aa_runs, tmp_path, capsys):
    out = tmp_path / "baseline"
    assert main(["calibrate", "--reuse-runs", str(aa_runs), "--out", str(out)]) == 0
    assert "largest A/A ratio" in capsys.readouterr().out
    assert (aa_runs / "run1").is_dir()  # reused runs are never deleted
    assert main(["compare", str(out), str(DATA / "aa2"), "--fail-above", "1.3"]) == 0
    assert main(["compare", str(out), str(DATA / "slow15"), "--fail-above", "1.3"]) == 1


def test_calibrate_rejects_too_few_runs(tmp_path, capsys):
    (tmp_path / "aa").mkdir()
    assert main(["calibrate", "--reuse-runs", str(tmp_path / "aa"), "--out", str(tmp_path / "b")]) == 2
    err = capsys.readouterr().err
    assert "holds 0 runs; need 2 or more" in err and "Traceback" not in err


@pytest.mark.parametrize("again, confirmed", [("slow15", True), ("aa2", False)])
def test_only_regressions_every_remeasurement_confirms_are_kept(again, confirmed):
    base = load_run(DATA / "aa1")
    first = compare_runs(base, load_run(DATA / "slow15"), factor=1.3)
    assert first.regressions
    calls, log = [], []

    def remeasure(attempt, problems, backends):
        calls.append((attempt, problems, backends))
        return load_run(DATA / again)

    kept = persistent_regressions(base, first, remeasure, retries=2, factor=1.3, alpha=0.01,
                                  normalize="peers", log=log.append)
    assert bool(kept) is confirmed
    assert {r.backend for r in kept} <= {"im2col_blas"}
    # flagged problems re-run whole, with every backend the baseline timed there
    assert calls[0][1] == sorted({r.problem for r in first.regressions})
    assert set(calls[0][2].split(",")) == {"im2col_blas", "direct_numba", "winograd_f4x3"}
    assert len(calls) == (2 if confirmed else 1)  # nothing left to re-measure once dismissed
    assert confirmed or any("not confirmed on re-measurement" in m for m in log)


def test_no_flagged_cells_means_no_remeasurement():
    base = load_run(DATA / "aa1")
    first = compare_runs(base, base, factor=1.3)

    def remeasure(*args):  # pragma: no cover - must not be called
        raise AssertionError("re-measured a clean run")

    assert persistent_regressions(base, first, remeasure, retries=2, factor=1.3, alpha=0.01,
                                  normalize="peers") == []
