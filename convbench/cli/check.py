"""``convbench check``: the CI gate. Run a suite, compare with a baseline, re-measure suspects."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from .common import (EXIT_FAIL, EXIT_OK, GATE_OPTIONS, GATE_RUN_OPTIONS, UsageError, add_options, gate_run_kwargs,
                     normalize, option, positive_float, single_int)
from . import run as run_cmd

NAME = "check"
HELP = "CI gate: run a suite, compare with a baseline, re-measure suspects"
DESCRIPTION = ("Runs the suite, compares it with the baseline and re-runs every cell flagged as a regression; "
               "only a regression seen in every attempt fails the check (exit 1).")
PRELOAD = True


def fraction_or_zero(value):
    """A number in [0, 1]."""
    import argparse
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise argparse.ArgumentTypeError(f"{value!r} is not a number; expected a fraction in [0, 1], e.g. 0.5") from None
    if not 0 <= v <= 1:
        raise argparse.ArgumentTypeError(f"{value!r} is outside [0, 1]; e.g. 0.5 (0: no A/A sample)")
    return v


OPTIONS = [
    option("baseline", str, default="results/baseline", metavar="DIR", help="the committed baseline"),
    option("suite", str, default="ci", help="the suite to run (ci)"),
    option("retries", single_int(0, "2"), default=2, metavar="N",
           help="re-measurements a flagged cell must survive (2)"),
    option("out", str, metavar="DIR", help="where the check's runs go (default results/check-<timestamp>)"),
    option("against", str, metavar="REF",
           help="measure the git commit REF and the working tree side by side in this run instead of comparing "
                "with --baseline: two worker processes, rounds alternated per problem, the run's own A/A floor "
                "(REF 'merge-base': the merge base with the main branch; e.g. HEAD~1)"),
    option("allow_dirty", None, action="flag",
           help="--against: measure uncommitted changes as the head side (the report records them)"),
    option("allow_deps_drift", None, action="flag",
           help="--against: measure even when REF declares other dependencies (both run from this virtualenv)"),
    option("rounds", single_int(5, "15"), default=15, metavar="N",
           help="--against: rounds per problem and side (15)"),
    option("round_time", positive_float, default=0.005, metavar="S",
           help="--against: target seconds of one backend's round (0.005)"),
    option("problem_time", positive_float, default=10.0, metavar="S",
           help="--against: after this many seconds of a problem's rounds, stop at a third of --rounds (10)"),
    option("cell_budget", positive_float, default=5.0, metavar="S",
           help="--against: a backend whose single run takes longer is skipped on that problem (5)"),
    option("aa_sample", fraction_or_zero, default=0.5, metavar="F",
           help="--against: fraction of the problems also timed in a second base process for the A/A floor (0.5)"),
    option("accepted", str, metavar="FILE",
           help="--against: the record of reviewed, intended slowdowns (default benchmarks/accepted-slowdowns.toml "
                "of the working tree)"),
] + GATE_OPTIONS + GATE_RUN_OPTIONS


def setup(p) -> None:
    add_options(p, OPTIONS)


def baseline_backends(base) -> str:
    """The baseline's backends that are available here, in table order (comma-separated)."""
    from ..backends import available_backends
    have = {b for _, b in base.cells}
    return ",".join(b for b in available_backends(None) if b in have)


class _RunFailed(Exception):
    def __init__(self, status: int):
        super().__init__(status)
        self.status = status


def run(**options) -> int:
    """Run the suite, compare with the baseline, re-measure flagged cells; fail on persistent ones."""
    from ..comparison import compare_runs, load_run, render_markdown, render_text
    from ..gate import persistent_regressions
    from ..results import ResultsError
    o = normalize(OPTIONS, options, "check")
    if o["against"]:
        from .check_against import run_against
        return run_against(o)
    against_only = [n for n in ("allow_dirty", "allow_deps_drift", "accepted") if o[n]]
    if against_only:
        raise UsageError(f"check: --{against_only[0].replace('_', '-')} applies to --against REF only")
    try:
        base = load_run(o["baseline"])
    except ResultsError as e:
        raise UsageError(f"check: baseline {e}") from None
    out = Path(o["out"]) if o["out"] else Path("results") / f"check-{time.strftime('%Y%m%d-%H%M%S')}"
    if o["backends"] == "all":  # the gate times what the baseline has: a peer installed since adds no cells
        o["backends"] = baseline_backends(base) or "all"
    factor = o["fail_above"] or o["factor"]

    def measure(d: Path, **which):
        res = run_cmd.execute(**gate_run_kwargs(o, out=str(d), **which))
        if res.status != EXIT_OK:
            raise _RunFailed(res.status)
        return load_run(d)

    try:
        c = compare_runs(base, measure(out / "run", suite=[o["suite"]]), factor=factor, alpha=o["alpha"],
                         normalize=o["normalize"])
        print(render_text(c))
        (out / "compare.md").write_text(render_markdown(c))
        if not c.rows:
            from .compare import nothing_compared
            print(f"\ncheck FAILED: no cell was timed in both the baseline and this run ({nothing_compared(c)}); "
                  f"a gate that compared nothing has not passed")
            return EXIT_FAIL
        foreign = [w for w in c.warnings if w.split(" differs")[0] in ("cpu", "cores", "blas kernels", "threads")]
        if foreign:
            print("\ncheck: the baseline was recorded on a different machine or configuration "
                  f"({'; '.join(foreign)}); the comparison above is informational and does not gate. "
                  "Record a baseline on this machine kind with `make baseline`.")
            return EXIT_OK
        confirmed = persistent_regressions(
            base, c, lambda k, probs, bks: measure(out / f"retry{k}", problem=probs, backends=bks),
            retries=o["retries"], factor=factor, alpha=o["alpha"], normalize=o["normalize"],
            log=lambda s: print(s, file=sys.stderr))
    except _RunFailed as e:
        return e.status
    if confirmed:
        print(f"\ncheck FAILED: {len(confirmed)} regression(s) confirmed on every re-measurement:")
        for r in confirmed:
            print(f"  {r.problem} / {r.backend}: {r.ratio:.2f}x (threshold {r.threshold:.2f}, p={r.p:.1e})")
        return EXIT_FAIL if o["fail_above"] else EXIT_OK
    print(f"\ncheck passed: no regression above {factor:g}x (or the cell's noise floor) persisted")
    return EXIT_OK
