"""``convbench report DIR``: (re)write tables.md, the figures, report.md and report.html."""

from __future__ import annotations

from pathlib import Path

from .common import EXIT_OK, UsageError

NAME = "report"
HELP = "(re)write tables.md, plots, report.md and report.html for a result directory"


def setup(p) -> None:
    p.add_argument("dir", metavar="DIR")
    p.add_argument("--baseline", default=None, metavar="NAME", help="backend for the speed-up table")
    p.add_argument("--no-plots", action="store_true", help="tables only")


def run(*, dir: str, baseline: str | None = None, no_plots: bool = False) -> int:  # noqa: A002
    from ..reporting import write_report
    from ..results import ResultsError
    d = Path(dir)
    if not d.is_dir():
        raise UsageError(f"report: {dir!r} is not a directory; expected a convbench result directory")
    try:
        w = write_report(d, baseline, plots=not no_plots)
    except ResultsError as e:
        raise UsageError(f"report: {e}") from None
    print(f"tables: {w['tables']}")
    print(f"report: {w['report_md']} and {w['report_html']} ({len(w['plots'])} figures in {d}/plots)")
    return EXIT_OK
