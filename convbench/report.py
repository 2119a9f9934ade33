"""Tables from a result directory. Renders only: never measures anything.

``tables.md`` answers, in this order: which backend is fastest for each problem and
by how much (the question a user comes with), then the evidence: median times,
effective GFLOP/s, speed-up against a baseline backend, arithmetic executed vs the
direct count, parameters and workspace, numerical error, transform phases, and
every skipped, mistrusted or failed cell with its reason.
"""

from __future__ import annotations

import math
from pathlib import Path

from .params import parameter_table_row
from .problem import ConvProblem
from .results import load_meta, load_summary

__all__ = ["md_table", "render_tables", "write_tables", "fmt_time", "fmt_bytes", "fmt_count"]


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
