"""Tables, plots and the report of a result directory. Renders only: never measures anything.

``tables.md`` answers, in this order: which backend is fastest for each problem and
by how much (the question a user comes with), then the evidence: median times,
effective GFLOP/s, speed-up against a baseline backend, network roll-ups, arithmetic
executed vs the direct count, parameters and workspace, numerical error, transform
phases, and every skipped, mistrusted or failed cell with its reason.

``report.md`` puts the plots (:mod:`convbench.plots`) in front of those tables and reads
well on a code-hosting site; ``report.html`` is the same document in one self-contained
file (images embedded), for mailing or archiving.
"""

from __future__ import annotations

import math
from pathlib import Path

from .params import parameter_table_row
from .problem import ConvProblem
from .results import load_meta, load_summary

__all__ = ["md_table", "render_tables", "write_tables", "write_report", "rollups", "fmt_time", "fmt_bytes",
           "fmt_count", "markdown_to_html"]


# ---------------------------------------------------------------------------- formatting
def fmt_time(s) -> str:
    if s is None or (isinstance(s, float) and math.isnan(s)):
        return ""
    if s < 1e-3:
        return f"{s * 1e6:.1f} us"
    if s < 1:
        return f"{s * 1e3:.3g} ms"
    return f"{s:.3g} s"


def fmt_bytes(n) -> str:
    if n is None or (isinstance(n, float) and math.isnan(n)):
        return ""
    n = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return ""


def fmt_count(n) -> str:
    if n is None or (isinstance(n, float) and math.isnan(n)):
        return ""
    n = float(n)
    for unit, f in (("T", 1e12), ("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(n) >= f:
            return f"{n / f:.3g}{unit}"
    return f"{n:.0f}"


def _num(v) -> float:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return float("nan")
    return f


def md_table(headers: list[str], rows: list[list], align: list[str] | None = None) -> str:
    """A GitHub-flavoured Markdown table (``|`` in cells escaped)."""
    def cell(v):
        return str(v).replace("|", "\\|").replace("\n", " ")
    align = align or ["l"] + ["r"] * (len(headers) - 1)
    sep = ["---:" if a == "r" else ":---" for a in align]
    out = ["| " + " | ".join(cell(h) for h in headers) + " |", "| " + " | ".join(sep) + " |"]
    out += ["| " + " | ".join(cell(v) for v in r) + " |" for r in rows]
    return "\n".join(out)


# ---------------------------------------------------------------------------- tables
_SHORT = {"skipped": "skip", "failed": "FAIL", "mistrusted": "WRONG"}


class _Notes:
    """Numbered footnotes for non-passed cells, deduplicated by text."""

    def __init__(self):
        self.items: list[str] = []

    def ref(self, text: str) -> int:
        if text not in self.items:
            self.items.append(text)
        return self.items.index(text) + 1


def _pivot_cells(df, problems, backends, value_fn, notes: _Notes | None):
    rows = []
    for prob in problems:
        sub = df[df.problem == prob]
        r = [prob]
        for b in backends:
            cell = sub[sub.backend == b]
            if cell.empty:
                r.append("")
                continue
            c = cell.iloc[-1]
            if c.status == "passed":
                r.append(value_fn(c))
            else:
                tag = _SHORT.get(c.status, c.status)
                if notes is not None and c.reason:
                    r.append(f"{tag} [{notes.ref(f'{c.status}: {c.reason}')}]")
                else:
                    r.append(tag)
        rows.append(r)
    return rows


def rollups(df) -> list[dict]:
    """Per suite (density 1 only): network time of each backend, layers weighted by their
    multiplicity, and the best-backend-per-layer oracle.

    A backend that cannot run every layer of the suite gets no total (``incomplete`` says
    how many layers it lacks); the oracle takes, layer by layer, the fastest backend that ran.
    """
    out = []
    if "suite" not in df.columns:
        return out
    real = df[(df.backend != "*") & (df.suite != "") & (df.weight_density >= 1.0)]
    for suite, sub in real.groupby("suite", sort=False):
        probs = list(dict.fromkeys(sub.problem))
        mult = sub.drop_duplicates("problem").set_index("problem").multiplicity.to_dict()
        ok = sub[(sub.status == "passed") & sub.time_median_s.notna()]
        totals, incomplete, picks = {}, {}, {}
        for b, g in ok.groupby("backend", sort=False):
            t = g.set_index("problem").time_median_s
            missing = [pr for pr in probs if pr not in t.index]
            if missing:
                incomplete[b] = sum(mult[pr] for pr in missing)
            else:
                totals[b] = float(sum(mult[pr] * t[pr] for pr in probs))
        oracle = 0.0
        uncovered = 0
        for pr in probs:
            cand = ok[ok.problem == pr]
            if cand.empty:
                uncovered += mult[pr]
                continue
            best = cand.loc[cand.time_median_s.idxmin()]
            oracle += mult[pr] * float(best.time_median_s)
            picks[best.backend] = picks.get(best.backend, 0) + int(mult[pr])
        out.append(dict(suite=suite, problems=len(probs), layers=int(sum(mult.values())),
                        batch=",".join(str(int(v)) for v in sorted(sub.mb.unique())), totals=totals,
                        incomplete=incomplete, oracle=oracle, uncovered=uncovered, picks=picks))
    return out


def _rollup_section(rs: list[dict]) -> list[str]:
    L = []
    for r in rs:
        L.append(f"### {r['suite']}: {r['layers']} layers ({r['problems']} unique shapes), batch {r['batch']}\n")
        if r["uncovered"]:
            L.append(f"{r['uncovered']} layers were run by no backend; the totals below leave them out.\n")
        rows = [["**best backend per layer**", fmt_time(r["oracle"]), "1.00x",
                 ", ".join(f"{b} {n}" for b, n in sorted(r["picks"].items(), key=lambda kv: -kv[1]))]]
        for b, t in sorted(r["totals"].items(), key=lambda kv: kv[1]):
            rows.append([b, fmt_time(t), f"{t / r['oracle']:.2f}x" if r["oracle"] else "", ""])
        for b, n in sorted(r["incomplete"].items()):
            rows.append([b, "", "", f"cannot run {n} of {r['layers']} layers"])
        L.append(md_table(["backend", "network time", "vs best per layer", "layers chosen / note"], rows,
                          align=["l", "r", "r", "l"]))
        L.append("")
    return L


def choose_baseline(backends: list[str], requested: str | None = None) -> str | None:
    if requested and requested in backends:
        return requested
    for cand in ("torch_onednn", "im2col_blas"):
        if cand in backends:
            return cand
    return backends[0] if backends else None


def render_tables(out_dir: Path, baseline: str | None = None) -> str:
    """The Markdown text of ``tables.md`` for a result directory."""
    out_dir = Path(out_dir)
    meta = load_meta(out_dir)
    df = load_summary(out_dir)
    return render_frame(df, meta, baseline)


def render_frame(df, meta: dict, baseline: str | None = None) -> str:
    # the row of a table is a cell: a problem at one weight density
    df = df.assign(problem=df["cell"]) if "cell" in df.columns else df
    real = df[df.backend != "*"]
    problems = list(dict.fromkeys(real.problem))
    backends = list(dict.fromkeys(real.backend))
    baseline = choose_baseline(backends, baseline or meta.get("config", {}).get("baseline"))
    notes = _Notes()
    L: list[str] = []
    m = meta.get("machine", {})
    blas = m.get("blas", {})
    libs = ", ".join(f"{lib.get('internal_api')} {lib.get('version')} ({lib.get('architecture')})"
                     for lib in blas.get("libraries", []))
    cfg = meta.get("config", {})
    L.append("# convbench results\n")
    L.append(f"- run: {meta.get('started', '')} to {meta.get('finished', 'unfinished')}, "
             f"convbench {meta.get('convbench_version', '')}, commit {str(meta.get('git', {}).get('commit'))[:10]}"
             f"{' (dirty)' if meta.get('git', {}).get('dirty') else ''}")
    L.append(f"- machine: {m.get('cpu_model', '?')}, {m.get('cores', '?')} cores, "
             f"threads per backend: {cfg.get('threads', '?')}")
    L.append(f"- BLAS: {libs or 'unknown'}; OPENBLAS_CORETYPE={blas.get('env')}; "
             f"best for this CPU: {blas.get('cpu_best')}")
    if blas.get("warning"):
        L.append(f"- **warning:** {blas['warning']}")
    ct = meta.get("blas_coretype", {})
    if ct:
        L.append(f"- kernel-set choice: `--blas-coretype {ct.get('requested')}`"
                 f"{' applied' if ct.get('applied') else ' not applied: ' + str(ct.get('note', ''))}; "
                 f"OpenBLAS alone picks {meta.get('blas_autodetected')}")
    L.append(f"- timing: backends of a problem timed interleaved, round by round; median of "
             f">= {cfg.get('min_rounds', '?')} rounds; `±` is IQR/median. Data: integers in [-2, 2] "
             f"(benchdnn style), checked against a float64 reference.")
    dens = cfg.get("weight_density", [1.0])
    dens = dens if isinstance(dens, list) else [dens]
    if any(d != 1.0 for d in dens):
        L.append(f"- weight densities {', '.join(f'{d:g}' for d in dens)}: pruned problems are labelled "
                 f"`@density D` (the same zeros for every backend)")
    L.append("")

    # --- the answer first
    wins = {}
    for prob in problems:
        sub = real[(real.problem == prob) & (real.status == "passed") & real.time_median_s.notna()]
        if not sub.empty:
            b = sub.loc[sub.time_median_s.idxmin()].backend
            wins[b] = wins.get(b, 0) + 1
    if wins:
        L.append("## At a glance\n")
        L.append("Fastest backend, counted over the " + str(len(problems)) + " problems: "
                 + ", ".join(f"**{b}** {n}" for b, n in sorted(wins.items(), key=lambda kv: -kv[1]))
                 + ". The table below says by how much and what came second; the figures in "
                   "`report.md` show where each algorithm wins (by size, kernel and stride) and why "
                   "(arithmetic saved vs time saved, roofline).\n")
    L.append("## Fastest backend per problem\n")
    rows = []
    for prob in problems:
        sub = real[(real.problem == prob) & (real.status == "passed")].copy()
        sub = sub[sub.time_median_s.notna()].sort_values("time_median_s")
        if sub.empty:
            rows.append([prob, "(none passed)", "", "", "", ""])
            continue
        best = sub.iloc[0]
        second = sub.iloc[1] if len(sub) > 1 else None
        base = sub[sub.backend == baseline]
        vs_base = (f"{base.iloc[0].time_median_s / best.time_median_s:.2f}x"
                   if not base.empty else "")
        rows.append([prob, f"**{best.backend}** ({best.algorithm})", fmt_time(best.time_median_s),
                     f"{_num(best.gflops_effective):.1f}",
                     f"{second.backend} +{(second.time_median_s / best.time_median_s - 1) * 100:.0f}%"
                     if second is not None else "", vs_base])
    L.append(md_table(["problem", "fastest", "median", "GFLOP/s", "runner-up (slower by)",
                       f"speed-up vs {baseline}"], rows))
    L.append("")

    # --- times
    L.append("## Median time per call\n")
    def tcell(c):
        med = c.time_median_s
        iqr = _num(c.time_iqr_s)
        spread = f" ±{iqr / med * 100:.0f}%" if med and not math.isnan(iqr) else ""
        return fmt_time(med) + spread
    L.append(md_table(["problem"] + backends, _pivot_cells(real, problems, backends, tcell, notes)))
    L.append("")

    L.append("## Effective GFLOP/s (direct op count / median time)\n")
    L.append(md_table(["problem"] + backends, _pivot_cells(
        real, problems, backends, lambda c: f"{_num(c.gflops_effective):.1f}", None)))
    L.append("")

    if baseline:
        L.append(f"## Speed-up vs `{baseline}` (> 1 is faster; same run, interleaved)\n")
        rows = []
        for prob in problems:
            sub = real[(real.problem == prob)]
            base = sub[(sub.backend == baseline) & (sub.status == "passed")]
            bt = base.iloc[0].time_median_s if not base.empty else float("nan")
            r = [prob]
            for b in backends:
                c = sub[sub.backend == b]
                if c.empty or c.iloc[-1].status != "passed" or math.isnan(bt):
                    r.append("" if c.empty or c.iloc[-1].status == "passed" else _SHORT.get(c.iloc[-1].status, ""))
                else:
                    r.append(f"{bt / c.iloc[-1].time_median_s:.2f}x")
            rows.append(r)
        L.append(md_table(["problem"] + backends, rows))
        L.append("")

    rs = rollups(df)
    if rs:
        L.append("## Network roll-up\n")
        L.append("Layers weighted by their multiplicity in the network; the oracle picks the fastest "
                 "backend layer by layer, which is what a framework choosing per layer could reach.\n")
        L += _rollup_section(rs)

    # --- arithmetic
    L.append("## Arithmetic: direct op count vs executed (ratio executed/direct)\n")
    L.append("`flops_direct` is benchdnn's count (2 ops per multiply-add on a real input pixel, "
             "padding excluded), the same for every backend. Executed counts what each algorithm's "
             "code does, including padding taps and transforms; below 1.0 means fewer operations "
             "than the direct loop (FFT, Winograd). Shown for cells that ran; peers' internals are "
             "not counted.\n")
    rows = []
    for prob in problems:
        sub = real[real.problem == prob]
        fd = _num(sub.flops_direct.iloc[0])
        r = [prob, fmt_count(fd)]
        for b in backends:
            c = sub[(sub.backend == b) & (sub.status == "passed")]
            fe = _num(c.iloc[-1].flops_executed) if not c.empty else float("nan")
            r.append("" if math.isnan(fe) else f"{fmt_count(fe)} ({fe / fd:.2f})")
        rows.append(r)
    L.append(md_table(["problem", "flops_direct"] + backends, rows))
    L.append("")

    mult = real[real.flops_multiply.notna() & real.flops_executed.notna()
                & (real.flops_multiply < real.flops_executed) & (real.status == "passed")]
    if not mult.empty:
        mbk = list(dict.fromkeys(mult.backend))
        L.append("## Multiplication reduction of transform algorithms\n")
        L.append("Multiply-adds a direct loop spends (all `kh*kw` taps of every output, padding "
                 "included) divided by those of the transform algorithm's element-wise/GEMM stage: "
                 "Winograd F(m,r) reaches (m*r/(m+r-1))^2 on outputs that are a multiple of m and "
                 "less where edge tiles are partial; transforms are extra (previous table).\n")
        rows = []
        for prob in list(dict.fromkeys(mult.problem)):
            sub = real[real.problem == prob]
            r0 = sub.iloc[0]
            dense = 2.0 * r0.mb * r0.oc * (r0.ic / r0.g) * r0.oh * r0.ow * r0.kh * r0.kw
            r = [prob]
            for b in mbk:
                c = sub[(sub.backend == b) & (sub.status == "passed")]
                fm = _num(c.iloc[-1].flops_multiply) if not c.empty else float("nan")
                r.append("" if math.isnan(fm) or fm <= 0 else f"{dense / fm:.2f}x")
            rows.append(r)
        L.append(md_table(["problem"] + mbk, rows))
        L.append("")

    L.append("## Why convolution beats a dense layer: parameters of the same mapping\n")
    L.append("Weights needed to map this input to this output by a fully-connected layer (the dense "
             "operator, per group), by a locally-connected layer (one weight per nonzero of the "
             "operator: local connectivity, no sharing) and by the convolution (shared kernels). "
             "`locality` = dense / locally-connected, `sharing` = locally-connected / conv.\n")
    rows = []
    for prob, dprob in dict.fromkeys(zip(real.problem, real.descriptor)):
        try:
            pr = parameter_table_row(ConvProblem.parse(dprob))
        except ValueError:
            continue
        rows.append([prob, fmt_count(pr["dense_entries"]), fmt_count(pr["locally_connected_weights"]),
                     fmt_count(pr["conv_weights"]), f"{pr['locality_ratio']:.3g}x", f"{pr['sharing_ratio']:.3g}x",
                     f"{pr['operator_density'] * 100:.3g}%"])
    L.append(md_table(["problem", "fully connected", "locally connected", "convolution", "locality",
                       "sharing", "operator density"], rows))
    L.append("")

    L.append("## Parameters and workspace\n")
    rows = []
    for prob in problems:
        sub = real[real.problem == prob]
        r = [prob, fmt_count(_num(sub.params.iloc[0]))]
        for b in backends:
            c = sub[sub.backend == b]
            r.append(fmt_bytes(_num(c.iloc[-1].workspace_bytes)) if not c.empty else "")
        rows.append(r)
    L.append(md_table(["problem", "weights"] + backends, rows))
    L.append("")

    L.append("## Error against the float64 reference (relative L2 / max abs)\n")
    def ecell(c):
        return f"{_num(c.rel_err):.1e} / {_num(c.max_abs_err):.1e}"
    rows = []
    for prob in problems:
        sub = real[real.problem == prob]
        r = [prob]
        for b in backends:
            c = sub[sub.backend == b]
            if c.empty or math.isnan(_num(c.iloc[-1].rel_err)):
                r.append("")
            else:
                r.append(ecell(c.iloc[-1]))
        rows.append(r)
    worst = ["**worst relative error**"]
    for b in backends:
        errs = real[real.backend == b].rel_err.dropna()
        worst.append(f"**{errs.max():.1e}**" if not errs.empty else "")
    rows.append(worst)
    L.append(md_table(["problem"] + backends, rows))
    L.append("")

    phase_cols = [c for c in real.columns if c.startswith("phase_")]
    ph = real[real[phase_cols].notna().any(axis=1)] if phase_cols else real.iloc[0:0]
    if not ph.empty:
        L.append("## Transform phases (median seconds of one run, measured separately)\n")
        rows = [[r["problem"], r["backend"]] + [fmt_time(_num(r[c])) for c in phase_cols] +
                [fmt_time(r["time_median_s"])] for _, r in ph.iterrows()]
        L.append(md_table(["problem", "backend"] + [c[6:-2] for c in phase_cols] + ["total median"], rows))
        L.append("")

    extra = df[(df.backend == "*")]
    if notes.items or not extra.empty:
        L.append("## Skipped, mistrusted and failed cells\n")
        for i, t in enumerate(notes.items, 1):
            L.append(f"{i}. {t}")
        for r in extra.itertuples():
            L.append(f"- `{r.problem}`: {r.reason}")
        L.append("")

    notes_rows = real[(real.note != "") & (real.status == "passed")]
    if not notes_rows.empty:
        L.append("## Notes (what each backend chose)\n")
        rows = []
        for (b, note), grp in notes_rows.groupby(["backend", "note"], sort=False):
            probs = list(dict.fromkeys(grp.problem))
            where = ", ".join(f"`{x}`" for x in probs) if len(probs) <= 3 else f"{len(probs)} problems"
            rows.append([b, note, where])
        L.append(md_table(["backend", "note", "problems"], rows, align=["l", "l", "l"]))
        L.append("")
    return "\n".join(L)


def write_tables(out_dir: Path, baseline: str | None = None) -> Path:
    path = Path(out_dir) / "tables.md"
    path.write_text(render_tables(out_dir, baseline))
    return path


def write_report(out_dir: Path, baseline: str | None = None, plots: bool = True) -> dict:
    """``tables.md``, ``plots/*.png|svg``, ``report.md`` and ``report.html`` for a result directory.

    Returns the paths written, by kind.
    """
    out_dir = Path(out_dir)
    meta = load_meta(out_dir)
    df = load_summary(out_dir)
    tables = render_frame(df, meta, baseline)
    (out_dir / "tables.md").write_text(tables)
    real = df[df.backend != "*"]
    base = choose_baseline(list(dict.fromkeys(real.backend)), baseline or meta.get("config", {}).get("baseline"))
    direct_base = "direct_numba" if "direct_numba" in set(real.backend) else base
    written = {}
    if plots:
        from .plots import PLOTS, write_plots
        written = write_plots(df.assign(problem=df.cell), meta, out_dir, rollups(df), direct_base)
    else:
        PLOTS = {}
    head, _, rest = tables.partition("\n## ")
    md = [head.rstrip(), ""]
    if written:
        md.append("## Figures\n")
        for stem, paths in written.items():
            title, what = PLOTS[stem]
            png = next(p for p in paths if p.suffix == ".png")
            md.append(f"### {title}\n\n{what} ([SVG](plots/{stem}.svg))\n\n![{title}](plots/{png.name})\n")
    md.append("## " + rest if rest else "")
    text = "\n".join(md)
    (out_dir / "report.md").write_text(text)
    (out_dir / "report.html").write_text(markdown_to_html(text, out_dir, title="convbench report"))
    return {"tables": out_dir / "tables.md", "report_md": out_dir / "report.md",
            "report_html": out_dir / "report.html", "plots": written}


# ---------------------------------------------------------------------------- HTML
_CSS = ("body{font-family:system-ui,sans-serif;max-width:1200px;margin:2em auto;padding:0 1em;color:#222}"
        "table{border-collapse:collapse;margin:1em 0;font-size:13px}th,td{border:1px solid #ccc;padding:3px 7px}"
        "th{background:#f3f3f3}td.r,th.r{text-align:right}img{max-width:100%;border:1px solid #eee}"
        "code{background:#f5f5f5;padding:0 3px}h1,h2,h3{border-bottom:1px solid #eee}")


def _inline(text: str) -> str:
    import html
    import re
    t = html.escape(text, quote=False)
    t = re.sub(r"`([^`]+)`", r"<code>\1</code>", t)
    t = re.sub(r"\*\*([^*]+)\*\*", r"<b>\1</b>", t)
    t = re.sub(r"\[([^\]]+)\]\(([^)]+)\)", r'<a href="\2">\1</a>', t)
    return t


def markdown_to_html(text: str, base: Path, title: str = "") -> str:
    """HTML for the Markdown subset convbench writes (headings, paragraphs, lists, tables,
    images, code, bold, links), with every local image embedded as a data URI."""
    import base64
    import html
    import re
    out = [f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
           f"<style>{_CSS}</style></head><body>"]
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        ln = lines[i]
        m = re.match(r"(#{1,6}) (.*)", ln)
        img = re.match(r"!\[([^\]]*)\]\(([^)]+)\)", ln.strip())
        if m:
            n = len(m.group(1))
            out.append(f"<h{n}>{_inline(m.group(2))}</h{n}>")
        elif img:
            path = Path(base) / img.group(2)
            if path.is_file():
                data = base64.b64encode(path.read_bytes()).decode()
                out.append(f"<p><img alt='{html.escape(img.group(1))}' src='data:image/png;base64,{data}'></p>")
            else:
                out.append(f"<p>[missing image {html.escape(img.group(2))}]</p>")
        elif ln.startswith("|"):
            rows = []
            while i < len(lines) and lines[i].startswith("|"):
                rows.append(lines[i])
                i += 1
            cells = [[c.strip().replace("\\|", "|") for c in re.split(r"(?<!\\)\|", r)[1:-1]] for r in rows]
            align = ["r" if c.endswith(":") and not c.startswith(":") else "" for c in cells[1]] \
                if len(cells) > 1 else []
            out.append("<table><tr>" + "".join(f"<th class='{a}'>{_inline(c)}</th>"
                                                for c, a in zip(cells[0], align)) + "</tr>")
            for r in cells[2:]:
                out.append("<tr>" + "".join(f"<td class='{a}'>{_inline(c)}</td>" for c, a in zip(r, align)) + "</tr>")
            out.append("</table>")
            continue
        elif re.match(r"(- |\d+\. )", ln):
            tag = "ul" if ln.startswith("- ") else "ol"
            out.append(f"<{tag}>")
            while i < len(lines) and re.match(r"(- |\d+\. )", lines[i]):
                item = re.sub(r"^(- |\d+\. )", "", lines[i])
                out.append(f"<li>{_inline(item)}</li>")
                i += 1
            out.append(f"</{tag}>")
            continue
        elif ln.strip():
            out.append(f"<p>{_inline(ln)}</p>")
        i += 1
    out.append("</body></html>")
    return "\n".join(out)
