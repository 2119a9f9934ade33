"""``convbench publish DIR... --out SITE``: a static results site, viewable from ``file://``.

Pages (plain HTML; the data of each page embedded as JSON; figures drawn by plotly.js, shipped
once as ``plotly.min.js`` next to them, so nothing is fetched and no server is needed):

* ``index.html``: the runs (commit, date, machine, suite, cells), the changes the history found;
* ``history.html``: per cell, the median time across commits, one line per machine (machines
  never mixed), the steps found by :mod:`convbench.history` marked with their ratio and commit;
* ``run-N.html``: per run, the report's table of cells, filterable by backend, rank, suite and
  status, with the same figure as the run's ``report.html``;
* ``compare.html``: two runs side by side (two machines, or two commits), their common cells in
  a table and one against the other.

Hovering a point shows the problem, backend, median, IQR and commit. Why plotly: one offline
bundle (``plotly.offline.get_plotlyjs``) that draws SVG with hover tooltips, zoom and log axes,
no server or CDN; altair needs vega-embed from a CDN unless a converter is installed, bokeh's
standalone pages load BokehJS the same way.

The site directory is marked (:data:`MARKER`): ``publish`` replaces a site it wrote, never a
non-empty directory it did not create, and never a site of a newer format.
"""

from __future__ import annotations

import html
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

__all__ = ["SiteError", "publish", "MARKER", "SITE_FORMAT", "plotly_js", "run_rows", "figure_html"]

MARKER = ".convbench-site.json"
SITE_FORMAT = 1
ASSETS = Path(__file__).with_name("site_assets")
_CSS = ("body{font-family:system-ui,sans-serif;max-width:1300px;margin:1.5em auto;padding:0 1em;color:#222}"
        "table{border-collapse:collapse;margin:1em 0;font-size:12px}th,td{border:1px solid #ccc;padding:3px 7px}"
        "th{background:#f3f3f3;position:sticky;top:0}nav a{margin-right:1.2em}code{background:#f5f5f5}"
        "label{margin-right:1em;font-size:13px}.fig{min-height:420px}.note{color:#555;font-size:13px}"
        "td.num{text-align:right}")


class SiteError(ValueError):
    """Input ``publish`` cannot use, or an output directory it must not touch (exit 2)."""


@dataclass
class Run:
    """One result directory as the site shows it."""

    index: int
    path: Path
    meta: dict
    df: object
    commit: str
    date: str
    machine: str
    machine_label: str

    @property
    def label(self) -> str:
        return f"{self.commit[:10] or 'no commit'} on {self.machine_label} ({self.path.name})"


@lru_cache(maxsize=1)
def plotly_js() -> str:
    """The plotly.js bundle of the installed plotly package (offline; about 4.8 MB)."""
    from plotly.offline import get_plotlyjs
    return get_plotlyjs()


def _json_script(id_: str, obj) -> str:
    text = json.dumps(obj, allow_nan=False, default=str).replace("</", "<\\/")
    return f'<script type="application/json" id="{id_}">{text}</script>'


def _page(title: str, body: str, init: str | None, assets: str = "") -> str:
    nav = ('<nav><a href="index.html">runs</a><a href="history.html">history</a>'
           '<a href="compare.html">compare</a></nav>')
    script = (f'<script src="{assets}plotly.min.js"></script><script src="{assets}site.js"></script>'
              + (f"<script>{init}</script>" if init else ""))
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<link rel='icon' href='data:,'><style>{_CSS}</style></head><body>{nav}<h1>{html.escape(title)}</h1>"
            f"{body}{script}</body></html>\n")


def _finite(x):
    try:
        f = float(x)
    except (TypeError, ValueError):
        return None
    return f if f == f and f not in (float("inf"), float("-inf")) else None


def run_rows(df, commit: str = "") -> list[dict]:
    """A summary's rows as the figures and tables use them (one per cell and backend)."""
    out = []
    for r in df[df.backend != "*"].itertuples():
        out.append(dict(problem=str(r.problem), backend=str(r.backend), suite=str(getattr(r, "suite", "") or ""),
                        rank=int(getattr(r, "rank", 2) or 2) if _finite(getattr(r, "rank", 2)) else 2,
                        direction=str(getattr(r, "direction", "") or ""), status=str(r.status),
                        reason=str(getattr(r, "reason", "") or "")[:200], median=_finite(r.time_median_s),
                        q1=_finite(getattr(r, "time_q1_s", None)), q3=_finite(getattr(r, "time_q3_s", None)),
                        gflops=_finite(getattr(r, "gflops_effective", None)), commit=commit))
    return out


def figure_html(rows: list[dict], commit: str, assets: str = "") -> str:
    """The interactive figure of a run (``report.html`` embeds it beside the static images)."""
    return ('<div id="fig" class="fig"></div>' + _json_script("run-data", {"rows": rows, "commit": commit})
            + f'<script src="{assets}plotly.min.js"></script><script src="{assets}site.js"></script>'
            + '<script>var d = convbench.data("run-data"); convbench.runFigure(document.getElementById("fig"), '
              'd.rows.filter(function (r) { return r.status === "passed"; }), d.commit);</script>')


def _load(dirs) -> list[Run]:
    from .history import _commit_date, _machine
    from .results import ResultsError, load_meta, load_summary
    runs = []
    for i, d in enumerate(dirs):
        d = Path(d)
        try:
            meta, df = load_meta(d), load_summary(d)
        except (ResultsError, OSError, ValueError) as e:
            raise SiteError(f"publish: {str(d)!r}: {e}") from None
        m = meta.get("machine") or {}
        if not (m.get("cpu_model") or m.get("blas")):
            raise SiteError(f"publish: {str(d)!r} records no machine fingerprint (meta.json machine: CPU, cores, "
                            f"BLAS kernels); its times cannot be placed on a machine")
        commit = (meta.get("git") or {}).get("commit") or ""
        mid, label = _machine(meta)
        runs.append(Run(i, d, meta, df, commit, _commit_date(meta, commit or None)[:19].replace("T", " "), mid, label))
    return runs


def _history(runs: list[Run], threshold: float) -> tuple[list[dict], list]:
    """The series of every cell and machine, with the changes :func:`convbench.history.findings`
    reports beyond ``threshold`` placed on them: a step (``steps``: the index of its first
    commit) or a drift (``drifts``: the range of commits it spans)."""
    from .history import findings, load_points
    with_commit = [r.path for r in runs if r.commit]
    if not with_commit:
        return [], []
    pts = load_points(with_commit)
    found = findings(pts, threshold) if len(pts) else []
    by: dict = {}
    for f in found:
        by.setdefault((f.machine, f.problem, f.backend), []).append(f)
    series = []
    for (mid, prob, backend), s in pts.groupby(["machine", "problem", "backend"], sort=False):
        s = s.sort_values("date")
        commits = list(s.commit)
        steps, drifts = [], []
        for f in by.get((mid, prob, backend), []):
            if f.kind.startswith("drift"):
                drifts.append(dict(start=commits.index(f.before), end=commits.index(f.after), ratio=float(f.ratio)))
            else:
                steps.append(dict(at=commits.index(f.after), before=commits.index(f.before), ratio=float(f.ratio)))
        series.append(dict(cell=f"{prob} / {backend}", problem=prob, backend=backend, machine=mid,
                           machine_label=s.machine_label.iloc[0],
                           dates=[str(x)[:19].replace("T", " ") for x in s.date], commits=commits,
                           median=[float(v) for v in s.median_s], q1=[_finite(v) for v in s.q1_s],
                           q3=[_finite(v) for v in s.q3_s], steps=steps, drifts=drifts))
    return series, found


def _index(runs: list[Run], found, labels: dict) -> str:
    rows = "".join(
        f"<tr><td><a href='run-{r.index}.html'>{html.escape(r.path.name)}</a></td><td><code>{r.commit[:10]}</code></td>"
        f"<td>{html.escape(r.date)}</td><td>{html.escape(r.machine_label)}</td>"
        f"<td>{html.escape(', '.join(sorted({str(s) for s in r.df.suite.dropna().unique() if str(s)})) or '-')}</td>"
        f"<td class='num'>{int((r.df.backend != '*').sum())}</td></tr>" for r in runs)
    body = (f"<p class='note'>{len(runs)} run(s) on {len({r.machine for r in runs})} machine(s). Open a run for its "
            f"table and figure, the history for one cell across commits, or compare two runs.</p>"
            f"<table><thead><tr><th>run</th><th>commit</th><th>commit date</th><th>machine</th><th>suites</th>"
            f"<th>rows</th></tr></thead><tbody>{rows}</tbody></table>")
    if found:
        items = "".join(f"<tr><td>{html.escape(f.kind)}</td><td class='num'>{f.ratio:.2f}x</td>"
                        f"<td>{html.escape(f.problem)} / {html.escape(f.backend)}</td>"
                        f"<td>{html.escape(labels.get(f.machine, f.machine))}</td>"
                        f"<td><code>{f.before[:10]}..{f.after[:10]}</code></td></tr>" for f in found)
        body += ("<h2>Changes across commits</h2><table><thead><tr><th>change</th><th>ratio</th><th>cell</th>"
                 f"<th>machine</th><th>commits</th></tr></thead><tbody>{items}</tbody></table>")
    else:
        body += "<p class='note'>No change across commits beyond the threshold (see the history page).</p>"
    return _page("convbench results", body, None)


def _run_page(r: Run) -> str:
    rows = run_rows(r.df, r.commit)
    filters = ""
    for col, what in (("backend", "backend"), ("rank", "rank"), ("suite", "suite"), ("status", "status")):
        vals = sorted({str(x[col]) for x in rows})
        opts = "".join(f"<option value='{html.escape(v)}'>{html.escape(v or '(none)')}</option>" for v in vals)
        filters += f"<label>{what} <select class='filter' name='{col}'><option value=''>all</option>{opts}</select></label>"
    trs = "".join(
        f"<tr data-backend='{html.escape(x['backend'])}' data-rank='{x['rank']}' data-suite='{html.escape(x['suite'])}' "
        f"data-status='{html.escape(x['status'])}'><td>{html.escape(x['problem'])}</td><td>{html.escape(x['backend'])}</td>"
        f"<td>{x['rank']}</td><td>{html.escape(x['suite'])}</td><td>{html.escape(x['status'])}</td>"
        f"<td class='num'>{_fmt(x['median'])}</td><td class='num'>{_fmt(x['q1'])} - {_fmt(x['q3'])}</td>"
        f"<td class='num'>{'' if x['gflops'] is None else format(x['gflops'], '.2f')}</td>"
        f"<td>{html.escape(x['reason'])}</td></tr>" for x in rows)
    body = (f"<p class='note'>commit <code>{r.commit[:10] or '-'}</code> ({html.escape(r.date)}), "
            f"{html.escape(r.machine_label)}; result directory <code>{html.escape(str(r.path))}</code></p>"
            f"<div>{filters} <span id='count' class='note'></span></div><div id='fig' class='fig'></div>"
            f"<table id='rows'><thead><tr><th>problem</th><th>backend</th><th>rank</th><th>suite</th><th>status</th>"
            f"<th>median</th><th>IQR</th><th>GFLOP/s</th><th>reason</th></tr></thead><tbody>{trs}</tbody></table>"
            + _json_script("run-data", {"rows": rows, "commit": r.commit}))
    return _page(f"run {r.path.name}", body, "convbench.initRun();")


def _fmt(s) -> str:
    from .format import fmt_time
    return "-" if s is None else (fmt_time(s) or "-")


def _history_page(series: list[dict], threshold: float) -> str:
    if not series:
        return _page("history", "<p class='note'>No run records its git commit: nothing to place across commits.</p>",
                     None)
    cells = sorted({s["cell"] for s in series}, key=lambda c: (-max(len(s["median"]) for s in series
                                                                    if s["cell"] == c), c))
    with_steps = {s["cell"] for s in series if s["steps"] or s["drifts"]}
    opts = "".join(f"<option value='{html.escape(c)}'>{html.escape(c)}{' (step)' if c in with_steps else ''}</option>"
                   for c in sorted(cells, key=lambda c: (c not in with_steps, c)))
    body = ("<p class='note'>One line per machine (CPU, cores, BLAS kernel set, threads; never mixed); runs of one "
            "commit and machine are pooled into one point; dashed lines mark the steps beyond "
            f"{threshold:g}x that ruptures' PELT found (penalty calibrated on the series' own commit-to-commit "
            "noise), shaded bands the slow drifts whose same-sign steps together pass it. Cells with a change "
            "come first in the list.</p>"
            f"<label>cell <select id='cell'>{opts}</select></label> <span id='count' class='note'></span>"
            "<div id='fig' class='fig'></div>" + _json_script("history-data", {"series": series, "threshold": threshold}))
    return _page("history across commits", body, "convbench.initHistory();")


def _compare_page(runs: list[Run]) -> str:
    data = []
    for r in runs:
        cells = {f"{x['problem']}|{x['backend']}": [x["median"], x["q1"], x["q3"]] for x in run_rows(r.df)
                 if x["status"] == "passed" and x["median"]}
        data.append(dict(label=r.label, commit=r.commit, cells=cells))
    b_default = next((r.index for r in runs if r.machine != runs[0].machine), min(1, len(runs) - 1))

    def sel(id_, chosen):
        return f"<select id='{id_}'>" + "".join(
            f"<option value='{r.index}'{' selected' if r.index == chosen else ''}>{html.escape(r.label)}</option>"
            for r in runs) + "</select>"
    body = ("<p class='note'>Two runs side by side: two machines on one commit, or two commits on one machine. "
            "Points above the dotted line are slower in B.</p>"
            f"<label>A {sel('run-a', 0)}</label><label>B {sel('run-b', b_default)}</label> "
            "<span id='count' class='note'></span><div id='fig' class='fig'></div>"
            "<table id='pairs'><thead><tr><th>problem</th><th>backend</th><th>A median</th><th>B median</th>"
            "<th>B/A</th></tr></thead><tbody></tbody></table>" + _json_script("compare-data", {"runs": data}))
    return _page("compare two runs", body, "convbench.initCompare();")


def _check_out(out: Path) -> None:
    if not out.exists():
        return
    if not out.is_dir():
        raise SiteError(f"publish: --out {str(out)!r} is a file; give a directory")
    if not any(out.iterdir()):
        return
    marker = out / MARKER
    if not marker.is_file():
        raise SiteError(f"publish: --out {str(out)!r} is not empty and was not written by convbench publish; "
                        f"choose a new or empty directory")
    try:
        fmt = int(json.loads(marker.read_text()).get("format", 0))
    except (ValueError, AttributeError, OSError):
        raise SiteError(f"publish: {str(marker)!r} is unreadable; not replacing {str(out)!r}") from None
    if fmt > SITE_FORMAT:
        raise SiteError(f"publish: {str(out)!r} was written by a newer convbench (site format {fmt}, this one writes "
                        f"{SITE_FORMAT}); not modified")


def publish(dirs, out, threshold: float = 1.1) -> dict:
    """Write the site for the result directories ``dirs`` into ``out``; returns the pages by kind.
    Steps and drifts across commits are marked when their change passes ``threshold`` (a time
    ratio, as ``convbench history --threshold``).

    The site is built in a temporary directory next to ``out`` and moved into place, so a
    failure leaves the previous site whole.

    Raises
    ------
    SiteError
        A directory that is not a result directory or records no machine fingerprint; an
        ``out`` that is not empty and not a site of this format or older.
    """
    from . import __version__
    from .history import HistoryError
    out = Path(out)
    if not dirs:
        raise SiteError("publish: no result directories given")
    _check_out(out)
    runs = _load(dirs)
    try:
        series, found = _history(runs, threshold)
    except HistoryError as e:
        raise SiteError(str(e).replace("history:", "publish:", 1)) from None
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o777 & ~umask)  # a site is for reading (mkdtemp made it owner-only)
        (tmp / "plotly.min.js").write_text(plotly_js())
        shutil.copy(ASSETS / "site.js", tmp / "site.js")
        labels = {r.machine: r.machine_label for r in runs}
        pages = {"index": tmp / "index.html", "history": tmp / "history.html", "compare": tmp / "compare.html"}
        pages["index"].write_text(_index(runs, found, labels))
        pages["history"].write_text(_history_page(series, threshold))
        pages["compare"].write_text(_compare_page(runs))
        for r in runs:
            (tmp / f"run-{r.index}.html").write_text(_run_page(r))
        (tmp / MARKER).write_text(json.dumps({"tool": "convbench", "kind": "site", "format": SITE_FORMAT,
                                              "convbench": __version__, "runs": [str(r.path) for r in runs]}))
        if out.exists():
            old = out.with_name(f".{out.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            out.rename(old)
            tmp.rename(out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return {"index": out / "index.html", "history": out / "history.html", "compare": out / "compare.html",
            "runs": [out / f"run-{r.index}.html" for r in runs], "changes": len(found), "series": len(series)}
