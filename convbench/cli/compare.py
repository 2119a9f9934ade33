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
        write_markdown(markdown, render_markdown(c))
    if g["fail_above"] and not c.rows:
        print(f"compare FAILED: no cell was timed on both sides ({nothing_compared(c)}); a gate that compared "
              f"nothing has not passed")
        return EXIT_FAIL
    return EXIT_FAIL if (g["fail_above"] and c.regressions) else EXIT_OK


def nothing_compared(c) -> str:
    """Why a comparison has no rows, in numbers."""
    return (f"{len(c.missing_in_new)} cells only in the base, {len(c.missing_in_base)} only in the new run, "
            f"{len(c.not_timed)} not timed on a side")


def write_markdown(path: str, text: str) -> None:
    try:
        Path(path).write_text(text)
    except OSError as e:
        raise UsageError(f"compare: --markdown {path!r}: cannot write ({e.strerror or e})") from None
