"""``convbench calibrate``: A/A runs of a suite into a baseline with per-cell noise floors."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from .common import (EXIT_OK, GATE_RUN_OPTIONS, UsageError, add_options, gate_run_kwargs, normalize, option,
                     positive_float, single_int)
from . import run as run_cmd

NAME = "calibrate"
HELP = "A/A runs of a suite: per-cell noise floors and a baseline"
DESCRIPTION = ("Runs the suite several times, measures how far each cell's normalised median moves between "
               "identical runs, and writes DIR as a baseline (all runs' rounds pooled) with noise.json and "
               "calibration.md.")
PRELOAD = True

OPTIONS = [
    option("suite", str, default="ci", help="the suite to calibrate (ci)"),
    option("runs", single_int(2, "6"), default=5, metavar="N", help="A/A runs, at least 2 (5)"),
    option("out", str, default="results/baseline", metavar="DIR", help="the baseline directory to write"),
    option("margin", positive_float, default=1.1, help="floor = largest A/A ratio x margin (1.1)"),
    option("keep_runs", None, action="flag", help="keep the individual A/A runs in DIR/aa/"),
    option("reuse_runs", str, metavar="AA_DIR",
           help="compute the floors from existing A/A runs (AA_DIR/run1, run2, ...) instead of running"),
    option("normalize", None, default="peers", choices=("none", "sentinel", "peers"),
           help="normalisation the floors are measured under (use the gate's)"),
] + GATE_RUN_OPTIONS


def setup(p) -> None:
    add_options(p, OPTIONS)


def run(**options) -> int:
    """A/A runs -> per-cell noise floors; DIR becomes a baseline with all runs' rounds pooled."""
    from ..gate import aa_run_dirs, write_baseline
    o = normalize(OPTIONS, options, "calibrate")
    out = Path(o["out"])
    if o["reuse_runs"]:
        dirs = aa_run_dirs(Path(o["reuse_runs"]))
        if len(dirs) < 2:
            raise UsageError(f"calibrate: --reuse-runs {o['reuse_runs']!r} holds {len(dirs)} runs; need 2 or more")
    else:
        if out.exists() and any(out.iterdir()):
            raise UsageError(f"calibrate: --out {str(out)!r} is not empty; remove it or choose another directory")
        dirs = []
        for i in range(o["runs"]):
            d = out / "aa" / f"run{i + 1}"
            print(f"calibrate: A/A run {i + 1} of {o['runs']} -> {d}", file=sys.stderr)
            res = run_cmd.execute(**gate_run_kwargs(o, suite=[o["suite"]], out=str(d)))
            if res.status != EXIT_OK:
                return res.status
            dirs.append(d)
    ws = write_baseline(dirs, out, normalize=o["normalize"], margin=o["margin"], suite=o["suite"])
    if not o["keep_runs"] and not o["reuse_runs"]:
        shutil.rmtree(out / "aa")
    print(f"baseline with noise floors in {out} (largest A/A ratio {ws[0][1]:.3f} at {ws[0][0]})"
          if ws else f"baseline in {out}")
    return EXIT_OK
