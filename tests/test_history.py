"""`convbench history`: series per cell and machine across commits, shards merged, steps and
slow drifts found with their commit ranges, machines never mixed, bad input."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from convbench.cli import main
from convbench.results import SCHEMA_VERSION

pytest.importorskip("ruptures")

from convbench.history import findings, load_points  # noqa: E402

MACHINES = {"a": ("CPU A", "SkylakeX"), "b": ("CPU B", "Haswell")}


def run_dir(path, commit, day, machine, times: dict, rng, rounds=7, noise=0.01):
    """A result directory of one commit on one machine: ``times`` is backend -> median seconds
    of one problem, with ``rounds`` lognormal rounds around it."""
    path.mkdir(parents=True)
    cpu, blas = MACHINES[machine]
    summ, smp = [], []
    for b, t in times.items():
        ts = t * np.exp(rng.normal(0, noise, rounds))
        summ.append(dict(problem="p1", descriptor="mb1ic8ih16oc8kh3ph1", backend=b, status="passed",
                         weight_density=1.0, time_median_s=float(np.median(ts)), rounds=rounds))
        smp += [dict(problem="p1", weight_density=1.0, backend=b, round=i, iterations=1, time_s=float(v))
                for i, v in enumerate(ts)]
    return write_run(path, summ, smp, commit, day, cpu, blas)


def write_run(path, summ: list, smp: list, commit: str, day: int, cpu: str, blas: str):
    """A result directory's files: the summary and sample rows, and a meta.json with the commit
    (dated 2026-11-``day``) and the machine fingerprint (CPU, 2 cores, BLAS kernel set)."""
    pd.DataFrame(summ).to_csv(path / "summary.csv", index=False)
    pd.DataFrame(smp).to_csv(path / "samples.csv", index=False)
    meta = {"tool": "convbench", "schema_version": SCHEMA_VERSION, "config": {"threads": [1]},
            "git": {"commit": commit, "date": f"2026-11-{day:02d}T12:00:00+00:00"},
            "machine": {"cpu_model": cpu, "cores": 2, "blas": {"libraries": [{"architecture": blas}]}}}
    (path / "meta.json").write_text(json.dumps(meta))
    return path


def series(tmp_path, levels, machine="a", seed=0, backend="im2col_blas"):
    rng = np.random.default_rng(seed)
    return [run_dir(tmp_path / f"{machine}-{i:02d}", f"{i:02d}" + "c" * 38, i + 1, machine,
                    {backend: 1e-3 * lv}, rng) for i, lv in enumerate(levels)]


def test_a_step_is_found_with_its_commit_range_and_aa_noise_is_not(tmp_path):
    dirs = series(tmp_path, [1.0] * 10 + [1.3] * 10)
    f = findings(load_points(dirs), 1.1)
    assert len(f) == 1 and f[0].kind == "regression" and f[0].ratio == pytest.approx(1.3, rel=0.03)
    assert f[0].before.startswith("09") and f[0].after.startswith("10")
    flat = series(tmp_path / "flat", [1.0] * 20, seed=1)
    assert findings(load_points(flat), 1.1) == []
    better = series(tmp_path / "better", [1.0] * 8 + [0.7] * 8, seed=2)
    assert [x.kind for x in findings(load_points(better), 1.1)] == ["improvement"]


def test_a_slow_drift_is_found_over_its_range(tmp_path):
    levels = [1.0] * 5 + [1.0 + 0.03 * i for i in range(1, 11)] + [1.3] * 5  # +3% a commit, 10 commits
    f = findings(load_points(series(tmp_path, levels, seed=3)), 1.1)
    assert len(f) == 1 and f[0].kind == "drift-regression", f  # one finding for the whole slide
    assert f[0].ratio == pytest.approx(1.3, rel=0.05) and f[0].commits >= 5
    assert "04" <= f[0].before[:2] <= "06" and "13" <= f[0].after[:2] <= "15"


def test_machines_are_never_mixed_and_shards_merge(tmp_path):
    a = series(tmp_path, [1.0] * 12)
    b = series(tmp_path, [1.5] * 12, machine="b", seed=4)  # another machine, 1.5x slower throughout
    # a second shard of commit 05 on machine a: one point, its rounds pooled
    shard = run_dir(tmp_path / "a-05-shard", "05" + "c" * 38, 6, "a", {"im2col_blas": 1e-3}, np.random.default_rng(9))
    pts = load_points(a + b + [shard])
    assert pts.machine.nunique() == 2 and len(pts) == 24
    p05 = pts[(pts.commit.str.startswith("05")) & (pts.machine_label.str.startswith("CPU A"))]
    assert len(p05) == 1 and int(p05.rounds.iloc[0]) == 14 and int(p05.runs.iloc[0]) == 2
    assert findings(pts, 1.1) == []  # interleaving the two machines would have made steps


def test_history_cli(tmp_path, capsys):
    dirs = series(tmp_path, [1.0] * 6 + [1.5] * 6)
    assert main(["history", *map(str, dirs)]) == 0
    out = capsys.readouterr().out
    assert "regression" in out and "1.5" in out and "p1" in out and "05cccccccc..06cccccccc" in out
    assert main(["history", *map(str, dirs), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["kind"] == "regression"

    def err(argv):
        assert main(argv) == 2
        e = capsys.readouterr().err.strip()
        assert "\n" not in e and "Traceback" not in e
        return e
    assert "not a threshold" in err(["history", str(dirs[0]), "--threshold", "0.9"])
    assert "no meta.json" in err(["history", str(tmp_path)])
    meta = json.loads((dirs[0] / "meta.json").read_text())
    del meta["git"]
    (dirs[0] / "meta.json").write_text(json.dumps(meta))
    assert "records no git commit" in err(["history", *map(str, dirs)])
