"""``convbench history DIR...``: timings across commits and machines, with the steps and slow
drifts found in them and the commit range that brought each."""

from __future__ import annotations

import json as _json
import sys

from .common import EXIT_OK, UsageError

NAME = "history"
HELP = "time series per cell and machine across commits: regressions, improvements, drifts"
DESCRIPTION = ("DIR... are result directories of many commits (meta.json git.commit) and machines. Runs of one "
               "commit and machine merge into one point (their rounds pooled); machines are never mixed. Steps "
               "are found with ruptures' PELT, the penalty calibrated on each series' A/A noise; a step or a run "
               "of same-sign steps whose change passes --threshold is listed with its commit range.")


def _ratio(v) -> float:
    import argparse
    try:
        f = float(v)
    except (TypeError, ValueError):
        f = float("nan")
    if not f > 1.0:
        raise argparse.ArgumentTypeError(f"{v!r} is not a threshold; expected a time ratio above 1, e.g. 1.1")
    return f


def setup(p) -> None:
    p.add_argument("dirs", nargs="+", metavar="DIR", help="result directories (any commits, any machines)")
    p.add_argument("--threshold", type=_ratio, default=1.1, metavar="RATIO",
                   help="report changes beyond this time ratio (default 1.1)")
    p.add_argument("--json", action="store_true", help="machine-readable findings")


def run(*, dirs, threshold: float = 1.1, json: bool = False) -> int:  # noqa: A002
    try:
        import ruptures  # noqa: F401
    except ImportError:
        raise UsageError("history: needs the ruptures package (pip install 'convbench[history]' or "
                         "pip install ruptures)") from None
    from ..history import HistoryError, findings, load_points, require_common
    threshold = _ratio(threshold) if not isinstance(threshold, float) else threshold
    try:
        pts = load_points(dirs)
        require_common(pts, len(dirs))
    except HistoryError as e:
        raise UsageError(str(e)) from None
    found = findings(pts, threshold)
    if json:
        print(_json.dumps([f.__dict__ for f in found], indent=2))
        return EXIT_OK
    labels = dict(zip(pts.machine, pts.machine_label))
    series = pts.groupby(["machine", "problem", "backend"]).ngroups
    commits = pts.groupby("machine").commit.nunique()
    print(f"history: {series} series over {len(labels)} machine(s) "
          f"({', '.join(f'{labels[m]}: {n} commits' for m, n in commits.items())}); "
          f"{len(found)} change(s) beyond {threshold:g}x", file=sys.stderr)
    for f in sorted(found, key=lambda f: (f.machine, -abs(f.ratio - 1))):
        print(f"{f.kind:18s} {f.ratio:6.2f}x  {f.problem} / {f.backend}  [{labels[f.machine]}]  "
              f"{f.before[:10]}..{f.after[:10]} ({f.commits} commit{'s' if f.commits != 1 else ''})")
    return EXIT_OK
