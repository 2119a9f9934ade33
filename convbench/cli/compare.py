"""``convbench compare BASE NEW``: two runs compared offline (ratio, CI, Mann-Whitney, verdict)."""

from __future__ import annotations

from pathlib import Path

from .common import EXIT_FAIL, EXIT_OK, GATE_OPTIONS, UsageError, add_options, normalize

NAME = "compare"
HELP = "compare two runs offline: ratio, CI, Mann-Whitney, verdict"
DESCRIPTION = ("BASE and NEW are convbench result directories or pytest-benchmark JSON files. Exit status: "
               "0 clean, 1 regression (with --fail-above), 2 usage error.")


def setup(p) -> None:
    p.add_argument("base", metavar="BASE")
    p.add_argument("new", metavar="NEW")
    add_options(p, GATE_OPTIONS)
    p.add_argument("--markdown", metavar="FILE", help="also write the table as Markdown (CI summary)")


def run(*, base: str, new: str, markdown: str | None = None, **gate) -> int:
    from ..comparison import compare_runs, load_run, render_markdown, render_text
    from ..results import ResultsError
    g = normalize(GATE_OPTIONS, gate, "compare")
    try:
        b, n = load_run(base), load_run(new)
    except ResultsError as e:
        raise UsageError(f"compare: {e}") from None
    factor = g["fail_above"] or g["factor"]
    c = compare_runs(b, n, factor=factor, alpha=g["alpha"], normalize=g["normalize"])
    print(render_text(c))
    if markdown:
        Path(markdown).write_text(render_markdown(c))
    return EXIT_FAIL if (g["fail_above"] and c.regressions) else EXIT_OK
