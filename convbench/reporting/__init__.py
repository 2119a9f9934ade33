"""Tables, figures and the report of a result directory. Renders only: never measures.

``tables.md``, ``report.md`` and ``report.html`` are all rendered from one list of sections
(:mod:`.sections`, one function each) built from :class:`~.data.ReportData` (the
problem x backend pivot, made once); ``report.md`` adds the figures (:mod:`.plots`) after
the header and reads well on a code-hosting site; ``report.html`` is the same document in
one self-contained file (figures embedded), for mailing or archiving.
"""

from __future__ import annotations

import sys
from pathlib import Path

from ..results import check_writable, write_atomic
from .data import ReportData, choose_baseline, load_data, rollups
from .document import Figure, Section, Table, md_table, to_html, to_markdown
from .sections import SECTIONS, build_sections

__all__ = ["write_report", "write_tables", "render_tables", "summary_table", "rollups", "md_table",
           "ReportData", "Section", "Table", "Figure", "SECTIONS", "choose_baseline"]


def _stderr(msg: str) -> None:
    print(msg, file=sys.stderr)


def render_tables(out_dir: Path, baseline: str | None = None, warn=_stderr) -> str:
    """The Markdown text of ``tables.md`` for a result directory."""
    return to_markdown(build_sections(load_data(out_dir, baseline), warn=warn))


def write_tables(out_dir: Path, baseline: str | None = None, warn=_stderr) -> Path:
    path = Path(out_dir) / "tables.md"
    write_atomic(path, render_tables(out_dir, baseline, warn))
    return path


def summary_table(out_dir: Path, baseline: str | None = None) -> str:
    """The "fastest backend per problem" section as Markdown (what ``convbench run`` prints)."""
    return to_markdown(build_sections(load_data(out_dir, baseline), keys=["fastest"]))


def _interactive(data: ReportData, out_dir: Path, warn) -> str:
    """The interactive figure of ``report.html`` (plotly.js written next to it: the page stays
    viewable from disk with no network), beside the static PNG/SVG ones; "" without plotly."""
    try:
        from ..site import ASSETS, figure_html, plotly_js, run_rows
        js = plotly_js()
    except ImportError:
        warn("report.html: plotly is not installed; the interactive figure is left out")
        return ""
    write_atomic(out_dir / "plotly.min.js", js)
    write_atomic(out_dir / "site.js", (ASSETS / "site.js").read_text())
    commit = (data.meta.get("git") or {}).get("commit") or ""
    return ("<h2>Interactive figure</h2><p>Median time per call of every timed cell, one colour per backend "
            "(log scale; hover a point for its problem, backend, median, IQR and commit; drag to zoom).</p>"
            + figure_html(run_rows(data.df, commit), commit))


def write_report(out_dir: Path, baseline: str | None = None, plots: bool = True, warn=_stderr,
                 interactive: bool | None = None) -> dict:
    """``tables.md``, ``plots/*.png|svg``, ``report.md`` and ``report.html`` for a result directory.

    ``interactive`` (default: ``plots``) adds the plotly figure to ``report.html``, with
    ``plotly.min.js`` written next to it; ``--no-plots`` (tables only) leaves both out.

    A section or figure that cannot be computed is left out with a one-line warning
    (through ``warn``); the rest is written. Every file is written to a temporary name and
    renamed, so a report that fails (a full disk) leaves the previous one whole. Returns the
    paths written, by kind.

    Raises
    ------
    ResultsError
        The directory cannot be read as a result directory.
    ResultsWriteError
        A file cannot be written (a read-only directory, a full disk): nothing was replaced.
    """
    out_dir = Path(out_dir)
    data = load_data(out_dir, baseline)
    check_writable(out_dir)
    sections = build_sections(data, warn=warn)
    write_atomic(out_dir / "tables.md", to_markdown(sections))
    written = {}
    if plots:
        from .plots import PLOTS, write_plots
        direct = [b for b in data.with_role("own") if data.family.get(b) == "direct"]
        direct_base = direct[0] if direct else data.baseline
        written = write_plots(data.df, data.meta, out_dir, rollups(data.df), direct_base, warn=warn,
                              variants=data.variants)
    doc = list(sections)
    if written:
        figs = [Figure(PLOTS[stem][0], PLOTS[stem][1], f"plots/{stem}.png", f"plots/{stem}.svg") for stem in written]
        at = 1 if doc and doc[0].key == "header" else 0
        doc.insert(at, Section("Figures", blocks=figs, key="figures"))
    write_atomic(out_dir / "report.md", to_markdown(doc))
    page = to_html(doc, out_dir)
    figure = _interactive(data, out_dir, warn) if (plots if interactive is None else interactive) else ""
    if figure:
        at = page.find("<h2>", page.find("<h2>Figures</h2>") + 1) if "<h2>Figures</h2>" in page else -1
        at = at if at >= 0 else page.rfind("</body>")
        page = page[:at] + figure + page[at:]
    write_atomic(out_dir / "report.html", page)
    return {"tables": out_dir / "tables.md", "report_md": out_dir / "report.md",
            "report_html": out_dir / "report.html", "plots": written}
