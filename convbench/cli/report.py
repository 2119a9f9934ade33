"""``convbench report DIR``: (re)write tables.md, the figures, report.md and report.html."""

from __future__ import annotations

from pathlib import Path

from .common import EXIT_FAIL, EXIT_OK, UsageError

NAME = "report"
HELP = "(re)write tables.md, plots, report.md and report.html for a result directory"


def setup(p) -> None:
    p.add_argument("dir", metavar="DIR")
    p.add_argument("--baseline", default=None, metavar="NAME", help="backend for the speed-up table")
    p.add_argument("--no-plots", action="store_true", help="tables only")


def run(*, dir: str, baseline: str | None = None, no_plots: bool = False) -> int:  # noqa: A002
    import sys

    from ..reporting import write_report
    from ..results import ResultsError, ResultsWriteError, load_summary, run_in_progress
    d = Path(dir)
    if not d.is_dir():
        raise UsageError(f"report: {dir!r} is not a directory; expected a convbench result directory")
    pid = run_in_progress(d)
    if pid is not None:
        try:
            done = load_summary(d).cell.nunique()
        except ResultsError:
            done = 0
        print(f"report: a run (pid {pid}) is still writing {d}; this report shows the {done} cell(s) finished so "
              f"far and is partial until the run ends", file=sys.stderr)
    try:
        w = write_report(d, baseline, plots=not no_plots)
    except ResultsWriteError as e:
        print(f"convbench: report: {e.strerror}; the report files there before are unchanged", file=sys.stderr)
        return EXIT_FAIL
    except ResultsError as e:
        raise UsageError(f"report: {e}") from None
    print(f"tables: {w['tables']}")
    print(f"report: {w['report_md']} and {w['report_html']} ({len(w['plots'])} figures in {d}/plots)")
    return EXIT_OK
