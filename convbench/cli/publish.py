"""``convbench publish DIR... --out SITE``: a static results site (see :mod:`convbench.site`)."""

from __future__ import annotations

import sys

from .common import EXIT_OK, UsageError
from .history import _ratio

NAME = "publish"
HELP = "a static results site from result directories: runs, history across commits, comparisons"
DESCRIPTION = ("DIR... are result directories of any commits and machines (meta.json records each one's machine "
               "fingerprint and commit). Writes SITE/index.html, history.html (per cell, time across commits per "
               "machine, the detected steps marked), run-N.html (each run's table, filterable by backend, rank, "
               "suite and status) and compare.html (two runs side by side). No server needed: open "
               "SITE/index.html from disk. SITE must be new, empty, or a site publish wrote before.")


def setup(p) -> None:
    p.add_argument("dirs", nargs="+", metavar="DIR", help="result directories")
    p.add_argument("--out", required=True, metavar="SITE", help="the site directory to write")
    p.add_argument("--threshold", type=_ratio, default=1.1, metavar="RATIO",
                   help="mark steps and drifts across commits beyond this time ratio (default 1.1)")


def run(*, dirs, out: str, threshold: float = 1.1) -> int:
    try:
        import ruptures  # noqa: F401
    except ImportError:
        raise UsageError("publish: needs the ruptures package for the history's step detection "
                         "(pip install 'convbench[history]' or pip install ruptures)") from None
    from ..site import SiteError, publish
    try:
        pages = publish(list(dirs), out, threshold=_ratio(threshold))
    except SiteError as e:
        raise UsageError(str(e)) from None
    print(f"publish: {len(pages['runs'])} run page(s), {pages['series']} series in the history, "
          f"{pages['changes']} change(s) across commits; open {pages['index']}", file=sys.stderr)
    return EXIT_OK
