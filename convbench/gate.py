"""The CI regression gate: A/A calibration into a baseline, and re-measurement of flagged cells.

``convbench calibrate`` runs the same suite several times (A/A runs); :func:`write_baseline`
turns those runs into a baseline directory: the first run's summary and meta, every run's
rounds pooled into ``samples.csv`` and, per cell, a noise floor in ``noise.json`` (the
largest normalised ratio any two A/A runs produced, times a margin). ``convbench check``
compares a new run with that baseline (:func:`convbench.comparison.compare_runs`) and passes
the flagged cells to :func:`persistent_regressions`, which re-measures them in fresh runs
and keeps only those flagged every time, as asv and benchdnn's performance CI do, so a
noisy shared machine does not fail the gate on a one-off spike.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Callable

from .comparison import Comparison, RunData, compare_runs, load_run

__all__ = ["POOL_ROUNDS", "aa_run_dirs", "noise_floors", "write_baseline", "persistent_regressions"]

#: rounds per cell and A/A run kept in a calibrated baseline's pooled samples
POOL_ROUNDS = 40


def aa_run_dirs(runs_dir: Path) -> list[Path]:
    """The ``run<N>`` result directories under ``runs_dir``, in run order."""
    return sorted((d for d in Path(runs_dir).glob("run*") if (d / "meta.json").is_file()),
                  key=lambda d: int(d.name[3:]) if d.name[3:].isdigit() else 0)


def noise_floors(runs: list[RunData], *, normalize: str, margin: float) -> tuple[dict, dict]:
    """Per cell ``"problem|backend"``: the largest ratio between any two of ``runs`` (each
    ordered pair, normalised as the gate normalises), and that ratio times ``margin``.

    Returns ``(floors, worst)``.
    """
    worst: dict = {}
    for i, a in enumerate(runs):
        for j, b in enumerate(runs):
            if i == j:
                continue
            for r in compare_runs(a, b, factor=1.0, normalize=normalize).rows:
                key = f"{r.problem}|{r.backend}"
                worst[key] = max(worst.get(key, 1.0), r.ratio)
    return {k: round(w * margin, 4) for k, w in worst.items()}, worst


def _pool_samples(dirs: list[Path], dest: Path, rounds: int) -> None:
    """Every run's rounds in one ``samples.csv``: at most ``rounds`` evenly spaced rounds per
    cell and run, so a committed baseline stays small."""
    import pandas as pd
    pooled = []
    for d in dirs:
        smp = pd.read_csv(d / "samples.csv", dtype={"problem": str, "backend": str})
        for _, g in smp.groupby(["problem", "weight_density", "backend"], sort=False):
            step = max(1, -(-len(g) // rounds))
            pooled.append(g.iloc[::step])
    pd.concat(pooled).to_csv(dest, index=False, float_format="%.6g")


def write_baseline(dirs: list[Path], out: Path, *, normalize: str, margin: float, suite: str,
                   rounds: int = POOL_ROUNDS) -> list[tuple[str, float]]:
    """Make ``out`` a baseline from the A/A run directories ``dirs`` (at least two).

    Writes ``summary.csv``, ``meta.json``, ``tables.md`` (from the first run), the pooled
    ``samples.csv``, ``noise.json`` and ``calibration.md``. Returns the cells with their
    largest A/A ratio, largest first.
    """
    from .reporting.document import md_table
    if len(dirs) < 2:
        raise ValueError(f"calibration needs 2 or more A/A runs, got {len(dirs)}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    floors, worst = noise_floors([load_run(d) for d in dirs], normalize=normalize, margin=margin)
    for f in ("summary.csv", "meta.json", "tables.md"):
        if (dirs[0] / f).is_file():
            shutil.copy(dirs[0] / f, out / f)
    _pool_samples(dirs, out / "samples.csv", rounds)
    (out / "noise.json").write_text(json.dumps({
        "tool": "convbench", "kind": "noise floors", "runs": len(dirs), "margin": margin, "normalize": normalize,
        "suite": suite, "cells": floors}, indent=2, sort_keys=True))
    ws = sorted(worst.items(), key=lambda kv: -kv[1])
    text = ["# A/A calibration", "", f"{len(dirs)} identical runs of suite `{suite}`; for every cell the largest "
            f"ratio of {normalize}-normalised medians between any two runs, and the floor (x{margin}) "
            f"`convbench compare` uses as that cell's threshold when it exceeds the factor.", "",
            md_table(["cell", "largest A/A ratio", "floor"],
                     [[k.replace("|", " / "), f"{v:.3f}", f"{floors[k]:.3f}"] for k, v in ws])]
    (out / "calibration.md").write_text("\n".join(text) + "\n")
    return ws


def persistent_regressions(base: RunData, first: Comparison, remeasure: Callable[[int, list[str], str], RunData],
                           *, retries: int, factor: float, alpha: float, normalize: str,
                           log: Callable[[str], None] = lambda s: None) -> list:
    """The regressions of ``first`` that every re-measurement confirms.

    ``remeasure(attempt, problems, backends)`` runs the flagged problems again (whole
    problems, with every backend the baseline timed on them, because peer normalisation
    needs the flagged cell's neighbours measured with it) and returns the new run.
    """
    suspects = {(r.problem, r.backend) for r in first.regressions}
    for k in range(retries):
        if not suspects:
            break
        log(f"check: re-measuring {len(suspects)} flagged cell(s), attempt {k + 1}")
        probs = sorted({pr for pr, _ in suspects})
        bks = ",".join(sorted({b for (pr, b), cell in base.cells.items() if pr in probs and cell.status == "passed"}))
        again = compare_runs(base, remeasure(k + 1, probs, bks), factor=factor, alpha=alpha, normalize=normalize)
        still = {(r.problem, r.backend) for r in again.regressions}
        for key in sorted(suspects - still):
            log(f"check: {key[0]} / {key[1]} not confirmed on re-measurement: noise")
        suspects &= still
    return [r for r in first.regressions if (r.problem, r.backend) in suspects]
