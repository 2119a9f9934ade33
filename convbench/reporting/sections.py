"""The report's sections, one function each, in reading order.

``tables.md`` answers, in this order: which backend is fastest for each problem and by how
much (the question a user comes with), then the evidence: median times, effective
GFLOP/s, speed-up against a baseline backend, network roll-ups, arithmetic executed vs the
direct count, parameters and workspace, numerical error, transform phases, and every
skipped, mistrusted or failed cell with its reason.

Adding a section is one function decorated with :func:`section`: it takes the
:class:`~convbench.reporting.data.ReportData` and returns a
:class:`~convbench.reporting.document.Section` (or None when it has nothing to show). A
section that raises is left out with a one-line warning; the rest of the report is written.
"""

from __future__ import annotations

import math
from typing import Callable

from ..format import fmt_bytes, fmt_count, fmt_rate, fmt_ratio, fmt_time, is_missing, safe_ratio
from .data import SHORT_STATUS, ReportData, activations, rollups, training_layers
from .document import Section, Table

__all__ = ["SECTIONS", "section", "build_sections"]

#: key -> section function, in reading order
SECTIONS: dict[str, Callable[[ReportData], Section | None]] = {}


def section(key: str):
    """Register a section function under ``key`` (its place: the order of definition)."""
    def register(fn):
        SECTIONS[key] = fn
        return fn
    return register


#: sections that need at least one backend row (the rest also speak of invalid grid points)
_NEEDS_ROWS = ("median_times", "gflops", "speedup", "arithmetic", "parameters", "workspace", "error")


def build_sections(data: ReportData, keys: list[str] | None = None, warn: Callable[[str], None] | None = None
                   ) -> list[Section]:
    """Every registered section that has something to show (or those named in ``keys``)."""
    out = []
    for key, fn in SECTIONS.items():
        if keys is not None and key not in keys:
            continue
        if key in _NEEDS_ROWS and not data.problems:
            continue
        try:
            s = fn(data)
        except Exception as e:  # noqa: BLE001 - one section's failure must not lose the report
            if warn is not None:
                warn(f"warning: report section {key!r} skipped ({e.__class__.__name__}: {e})")
            continue
        if s is not None:
            s.key = key
            out.append(s)
    return out


def _num(v) -> float:
    try:
        return float(v)
    except (TypeError, ValueError):
        return float("nan")


# ---------------------------------------------------------------------------- header
@section("header")
def header(d: ReportData) -> Section:
    meta, cfg = d.meta, d.config
    m = meta.get("machine", {})
    blas = m.get("blas", {})

    def v(x, unknown="unknown"):
        return unknown if x is None or x == "" else x
    libs = ", ".join(f"{lib.get('internal_api')} {lib.get('version')} ({lib.get('architecture')})"
                     for lib in blas.get("libraries", []))
    git = meta.get("git", {}) or {}
    commit = str(git.get("commit"))[:10] if git.get("commit") else "unknown"
    lines = [f"- run: {v(meta.get('started'))} to {meta.get('finished') or 'unfinished'}, "
             f"convbench {v(meta.get('convbench_version'))}, commit {commit}"
             f"{' (dirty)' if git.get('dirty') else ''}",
             f"- machine: {v(m.get('cpu_model'))}, {v(m.get('cores'), '?')} cores, "
             f"threads per backend: {v(cfg.get('threads'), '?')}"
             + (f" (also {', '.join(str(t) for t in cfg['thread_counts'][1:])}: section Thread scaling)"
                if len(cfg.get("thread_counts") or []) > 1 else "")
             + ("; hot and cold cache (section Hot vs cold cache; every other table: hot)"
                if "cold" in (cfg.get("caches") or []) and "hot" in (cfg.get("caches") or [])
                else "; cold cache: buffers rotated across 2x the last-level cache" if "cold" in
                (cfg.get("caches") or []) else ""),
             f"- BLAS: {libs or 'unknown'}; OPENBLAS_CORETYPE={v(blas.get('env'), 'unset')}; "
             f"best for this CPU: {v(blas.get('cpu_best'))}"]
    if blas.get("warning"):
        lines.append(f"- **warning:** {blas['warning']}")
    ex = meta.get("executor") or {}
    if ex.get("kind") == "dask":
        where = f"local cluster of {ex['workers']} workers" if ex.get("workers") else ex.get("scheduler")
        lines.append(f"- executor: Dask ({where}); each problem's backends timed together on one worker "
                     f"(see Machines)")
    groups = _machine_groups(meta)
    if len(groups) > 1:
        lines.append(f"- **warning:** rows were measured on {len(groups)} different machine kinds "
                     f"({'; '.join(', '.join(hs) for hs in groups.values())}); their times share the tables "
                     f"below but compare only within one machine (the `host` column; see Machines)")
    ct = meta.get("blas_coretype", {})
    if ct:
        lines.append(f"- kernel-set choice: `--blas-coretype {ct.get('requested')}`"
                     f"{' applied' if ct.get('applied') else ' not applied: ' + str(ct.get('note', ''))}; "
                     f"OpenBLAS alone picks {v(meta.get('blas_autodetected'))}")
    lines.append(f"- timing: backends of a problem timed interleaved, round by round; median of "
                 f">= {v(cfg.get('min_rounds'), '?')} rounds; `±` is IQR/median. Data: integers in [-2, 2] "
                 f"(benchdnn style), checked against a float64 reference.")
    dens = cfg.get("weight_density", [1.0])
    dens = dens if isinstance(dens, list) else [dens]
    if any(x != 1.0 for x in dens):
        lines.append(f"- weight densities {', '.join(f'{x:g}' for x in dens)}: pruned problems are labelled "
                     f"`@density D` (the same zeros for every backend)")
    return Section("convbench results", blocks=["\n".join(lines)], level=1)


def _machine_groups(meta: dict) -> dict:
    """Hosts of meta.json grouped by what makes their timings comparable."""
    from ..executor import comparable
    groups: dict = {}
    for host, fp in (meta.get("hosts") or {}).items():
        groups.setdefault(comparable(fp), []).append(host)
    return groups


# ---------------------------------------------------------------------------- the answer
@section("at_a_glance")
def at_a_glance(d: ReportData) -> Section | None:
    def count(probs, bks):
        wins: dict = {}
        for prob in probs:
            best = d.passed(prob, bks)
            if best:
                wins[best[0].backend] = wins.get(best[0].backend, 0) + 1
        return ", ".join(f"**{b}** {n}" for b, n in sorted(wins.items(), key=lambda kv: -kv[1]))
    conv, pool = count(d.problems, [b for b in d.backends if b != "auto"]), count(d.pool_problems, d.pool_backends)
    if not conv and not pool:
        return None
    text = ((f"Fastest backend, counted over the {len(d.problems)} convolution problems: {conv}. "
             if conv else "")
            + (f"Over the {len(d.pool_problems)} pooling problems: {pool}. " if pool else "")
            + "The table below says by how much and what came second; the figures in "
              "`report.md` show where each algorithm wins (by size, kernel and stride) and why "
              "(arithmetic saved vs time saved, roofline).")
    return Section("At a glance", intro=text)


@section("fastest")
def fastest(d: ReportData) -> Section:
    if not d.problems and not d.pool_problems:
        return Section("Fastest backend per problem", intro=(
            "No cell was run: summary.csv holds no rows of a backend (an interrupted run, or only invalid "
            "grid points; see below)."))
    rows = []
    pool_base = "pool_torch" if "pool_torch" in d.pool_backends else None
    for prob in d.problems + d.pool_problems:
        is_pool = prob in d.pool_problems
        ok = d.passed(prob, d.pool_backends if is_pool else [b for b in d.backends if b != "auto"])
        if not ok:
            rows.append([prob, "(none passed)", "", "", "", ""])
            continue
        best = ok[0]
        second = ok[1] if len(ok) > 1 else None
        base = d.cells.get((prob, pool_base if is_pool else d.baseline))
        vs_base = fmt_ratio(base.time_median_s, best.time_median_s) if base is not None \
            and base.status == "passed" else ""
        rate = fmt_rate(best.gbs_effective, "") + " GB/s" if is_pool else fmt_rate(best.gflops_effective, "")
        rows.append([prob, f"**{best.backend}** ({best.algorithm})", fmt_time(best.time_median_s), rate,
                     f"{second.backend} +{(second.time_median_s / best.time_median_s - 1) * 100:.0f}%"
                     if second is not None and best.time_median_s > 0 else "", vs_base])
    vs = f"speed-up vs {d.baseline}" + (f" (pools: vs {pool_base})" if pool_base and d.pool_problems else "")
    headers = ["problem", "fastest", "median", "GFLOP/s" + (" (pools: GB/s)" if d.pool_problems else ""),
               "runner-up (slower by)", vs]
    return Section("Fastest backend per problem", blocks=[Table(headers, rows)])


@section("auto")
def auto_choice(d: ReportData) -> Section | None:
    """What ``backend=auto`` chose per problem and its measured regret in this run."""
    if "auto" not in d.backends:
        return None
    import re
    own = [b for b in d.backends if b != "auto" and not _is_peer(d, b)]
    rows, regrets = [], []
    for prob in d.problems:
        a = d.cells.get((prob, "auto"))
        if a is None or a.status != "passed":
            continue
        m = re.search(r"auto chose (\w+)", str(a.note or ""))
        ok = d.passed(prob, own)
        if not ok:
            continue
        best = ok[0]
        regret = a.time_median_s / best.time_median_s if best.time_median_s > 0 else float("nan")
        regrets.append(regret)
        rows.append([prob, m.group(1) if m else "?", fmt_time(a.time_median_s), best.backend,
                     fmt_time(best.time_median_s), f"{regret:.2f}"])
    if not rows:
        return None
    r = [v for v in regrets if v == v]
    gm = math.exp(sum(math.log(v) for v in r) / len(r)) if r else float("nan")
    srt = sorted(r)
    p95 = srt[min(len(srt) - 1, int(math.ceil(0.95 * len(srt))) - 1)] if srt else float("nan")
    return Section("What backend=auto chose", intro=(
        f"auto's choice per problem (the selector fitted by `convbench tune`, else the built-in rules) "
        f"against the fastest of convbench's own backends measured in this run. Regret over "
        f"{len(r)} problems: geometric mean {gm:.3f}, p95 {p95:.2f}, max {max(r):.2f}; top-1 "
        f"{sum(1 for row in rows if row[1] == row[3]) / len(rows):.0%}. (auto's time is its chosen backend "
        f"timed again, so a ratio below 1 is noise.)"),
        blocks=[Table(["problem", "auto chose", "auto median", "fastest own", "its median", "regret"], rows)])


def _is_peer(d: ReportData, backend: str) -> bool:
    rows = d.real[d.real.backend == backend]
    return bool(len(rows)) and str(rows.peer.iloc[0]).lower() in ("true", "1")


# ---------------------------------------------------------------------------- evidence
@section("median_times")
def median_times(d: ReportData) -> Section:
    def tcell(c):
        med, iqr = c.time_median_s, _num(c.time_iqr_s)
        spread = f" ±{iqr / med * 100:.0f}%" if med and not math.isnan(iqr) else ""
        return fmt_time(med) + spread
    return Section("Median time per call", blocks=[Table(["problem"] + d.backends, d.pivot(tcell, footnotes=True))])


@section("gflops")
def gflops(d: ReportData) -> Section:
    return Section("Effective GFLOP/s (direct op count / median time)", blocks=[Table(
        ["problem"] + d.backends, d.pivot(lambda c: fmt_rate(c.gflops_effective, "")))])


@section("speedup")
def speedup(d: ReportData) -> Section | None:
    if not d.baseline:
        return None
    rows = []
    for prob in d.problems:
        base = d.cells.get((prob, d.baseline))
        bt = base.time_median_s if base is not None and base.status == "passed" else float("nan")
        r = [prob]
        for b in d.backends:
            c = d.cells.get((prob, b))
            if c is None:
                r.append("")
            elif c.status != "passed":
                r.append(SHORT_STATUS.get(c.status, ""))
            else:
                r.append(fmt_ratio(bt, c.time_median_s))
        rows.append(r)
    return Section(f"Speed-up vs `{d.baseline}` (> 1 is faster; same run, interleaved)",
                   blocks=[Table(["problem"] + d.backends, rows)])


@section("rollup")
def rollup(d: ReportData) -> Section | None:
    rs = rollups(d.df)
    if not rs:
        return None
    blocks = []
    for r in rs:
        dirs = " + ".join(r["directions"])
        pools = f", {r['pool_layers']} of them pooling" if r["pool_layers"] else ""
        blocks.append(f"### {r['suite']}, {r['pass_name']} ({dirs}): {r['layers']} layers{pools} "
                      f"({r['problems']} unique shapes), batch {r['batch']}\n")
        if r["uncovered"]:
            blocks.append(f"{r['uncovered']} layer cells were run by no backend; the totals below leave them out.\n")
        share = (lambda v: "" if v != v else f"{v * 100:.1f}%")
        rows = [["**best backend per layer**", fmt_time(r["oracle"]), "1.00x", share(r["oracle_pool_share"]),
                 ", ".join(f"{b} {n}" for b, n in sorted(r["picks"].items(), key=lambda kv: -kv[1]))]]
        for b, t in sorted(r["totals"].items(), key=lambda kv: kv[1]):
            comp = r["companions"].get(b)
            rows.append([b, fmt_time(t), fmt_ratio(t, r["oracle"]), share(r["pool_share"].get(b, float("nan"))),
                         f"pools on {comp}" if comp else ""])
        for b, n in sorted(r["incomplete"].items()):
            rows.append([b, "", "", "", f"cannot run {n} of the {r['cells']} conv layer passes"])
        blocks.append(Table(["backend", "network time", "vs best per layer", "pooling share", "layers chosen / note"],
                            rows, align=["l", "r", "r", "r", "l"]))
    return Section("Network roll-up", intro=(
        "Layers weighted by their multiplicity in the network. Inference is every layer's forward "
        "pass; the training step adds each convolution's bwd_d and bwd_w and each pool's bwd_d. "
        "A convolution backend's pooling layers run on its companion (torch_onednn: pool_torch; "
        "convbench's own backends: the fastest own pooling backend), and `pooling share` is their "
        "part of its total. The oracle picks the fastest backend cell by cell (layer and "
        "direction), which is what a framework choosing per layer could reach."), blocks=blocks)


def _own_label(b: str, own: bool) -> str:
    return b if own else f"{b} (peer)"


def _network_table(d: ReportData, keep) -> list:
    from .variants import network_ratios
    rows = []
    for r in network_ratios(d.variants):
        if not keep(r):
            continue
        rows.append([r["suite"], str(r["threads"]), r["cache"], r["peer"], f"{r['layers']} ({r['shapes']} shapes)",
                     fmt_time(r["own"]), fmt_time(r["peer_time"]), f"{r['ratio']:.2f}x",
                     f"{r['missing']} shape(s) not run by both" if r["missing"] else ""])
    return rows


_NET_HEAD = ["network", "threads", "cache", "peer", "conv layers", "best own per layer", "peer", "peer / best own",
             "note"]
_NET_INTRO = ("Whole networks, forward convolution layers weighted by their multiplicity: the best own backend per "
              "layer against each peer on the layers both ran (> 1x: convbench's best is faster).")


@section("scaling")
def scaling_section(d: ReportData) -> Section | None:
    from .variants import scaling, thread_counts
    if d.variants is None:
        return None
    counts = thread_counts(d.variants)
    if len(counts) < 2:
        return None
    sc = scaling(d.variants)
    rows = []
    for r in sorted(sc, key=lambda r: (r["t"], not r["own"], -r["geomean"])):
        flag = ""
        if r["cpu_util_t"] == r["cpu_util_t"] and r["cpu_util_t"] < 1.15 and r["t"] > 1:
            flag = f"used {r['cpu_util_t']:.2f} cores at {r['t']} threads: ignores the setting or cannot split the work"
        elif r["cpu_util_t0"] == r["cpu_util_t0"] and r["cpu_util_t0"] > r["t0"] + 0.5:
            flag = f"used {r['cpu_util_t0']:.2f} cores at {r['t0']} thread(s): over the setting"
        rows.append([_own_label(r["backend"], r["own"]), f"{r['t0']} -> {r['t']}", str(r["problems"]),
                     f"{r['geomean']:.2f}x", f"{r['min']:.2f}x - {r['max']:.2f}x",
                     f"{r['cpu_util_t0']:.2f} / {r['cpu_util_t']:.2f}", flag])
    blocks = [Table(["backend", "threads", "problems", "speed-up (geomean)", "range", "cores busy (median)", "flag"],
                    rows, align=["l", "l", "r", "r", "r", "r", "l"])]
    from .variants import primary_cache
    pc = primary_cache(d.variants)
    net = _network_table(d, lambda r: r["cache"] == pc)
    if net:
        blocks += [_NET_INTRO + "\n", Table(_NET_HEAD, net, align=["l", "r", "l", "l", "r", "r", "r", "r", "l"])]
    return Section("Thread scaling", intro=(
        f"Each backend against itself: its time at {counts[0]} thread(s) over its time at the other count, on "
        "the problems it passed at both, in the run's first cache state, from this one run (every library given the same count: "
        "numba, BLAS, FFTW, scipy.fft, torch, ONNX Runtime sessions; XLA's pool pinned to that many cores). "
        "`cores busy` is CPU time over wall time, the evidence that a backend used the threads it was given; "
        "small problems often cannot split their work. When the run uses every core of the machine, a "
        "pool that waits by spinning (OpenBLAS's, OpenMP's) and any other process compete with the next "
        "backend's threads, so multi-thread times vary far more than single-thread ones: read the range "
        "column before the geomean. Figure `thread_scaling` draws the first table."),
        blocks=blocks)


@section("cache")
def cache_section(d: ReportData) -> Section | None:
    from .variants import cache_effect, layer_ratios
    if d.variants is None:
        return None
    eff = cache_effect(d.variants)
    if not eff:
        return None
    rows = [[_own_label(r["backend"], r["own"]), str(r["threads"]), str(r["problems"]), f"{r['geomean']:.2f}x",
             f"{r['min']:.2f}x - {r['max']:.2f}x"]
            for r in sorted(eff, key=lambda r: (r["threads"], not r["own"], r["geomean"]))]
    blocks = ["Each backend against itself: cold time over hot time (> 1: slower when its buffers are not in cache).\n",
              Table(["backend", "threads", "problems", "cold / hot (geomean)", "range"], rows,
                    align=["l", "r", "r", "r", "r"])]
    peer = next((b for b in ("torch_onednn", "onnxruntime", "jax_xla") if b in set(d.variants.backend)), None)
    if peer:
        lr = layer_ratios(d.variants, peer)
        by = {}
        for r in lr:
            by.setdefault((r["problem"], r["density"], r["threads"]), {})[r["cache"]] = r
        prow = []
        for (prob, dens, t), v in by.items():
            h, c = v.get("hot"), v.get("cold")
            if h is None or c is None:
                continue
            prow.append([prob + (f" @density {dens:g}" if dens < 1 else ""), str(t),
                         f"{fmt_time(h['own'])} ({h['own_backend']})", f"{fmt_time(c['own'])} ({c['own_backend']})",
                         fmt_time(h["peer"]), fmt_time(c["peer"]), f"{h['ratio']:.2f}x", f"{c['ratio']:.2f}x"])
        if prow:
            blocks += [f"Per problem, the best own backend and `{peer}`, hot and cold side by side "
                       f"(`{peer}` / best own: > 1x, convbench's best is faster).\n",
                       Table(["problem", "threads", "best own, hot", "best own, cold", f"{peer}, hot",
                              f"{peer}, cold", "ratio hot", "ratio cold"], prow,
                             align=["l", "r", "r", "r", "r", "r", "r", "r"])]
    net = _network_table(d, lambda r: True)
    if net:
        blocks += [_NET_INTRO + "\n", Table(_NET_HEAD, net, align=["l", "r", "l", "l", "r", "r", "r", "r", "l"])]
    return Section("Hot vs cold cache", intro=(
        "Hot: the same input, weights and output every call (the benchmark loop). Cold: each backend's buffers "
        "(inputs, plan with its weights and workspace, output) are copied until the copies span twice the "
        "last-level cache, at most 256 copies or 2 s of preparing them, and every call takes the next set, as a "
        "layer inside a network finds its data (XNNPACK's buffer rotation, benchdnn's --cold-cache). Each row's "
        "note says how many sets were rotated."), blocks=blocks)


@section("training")
def training(d: ReportData) -> Section | None:
    groups = training_layers(d.df)
    if not groups:
        return None
    blocks = []
    for g in groups:
        title = g["suite"] or "problems outside a suite"
        blocks.append(f"### {title}: per layer, the fastest backend of each direction\n")
        rows = []
        tot = {"fwd": 0.0, "bwd_d": 0.0, "bwd_w": 0.0, "step": 0.0}
        for it in g["layers"]:
            m = it["multiplicity"]
            r = [it["name"] or it["layer"], f"x{m}"]
            for dname in ("fwd", "bwd_d", "bwd_w"):
                b = it["best"].get(dname)
                r.append("" if b is None else f"{fmt_time(b[0])} {b[1]}")
                if b is not None:
                    tot[dname] += m * b[0]
            r.append(fmt_time(it["step"]) if it["step"] is not None else "")
            tot["step"] += m * (it["step"] or 0.0)
            rows.append(r)
        rows.append(["**network (x multiplicity)**", ""] + [f"**{fmt_time(tot[k])}**" for k in
                                                             ("fwd", "bwd_d", "bwd_w", "step")])
        blocks.append(Table(["layer", "mult", "fwd", "bwd_d", "bwd_w", "training step (best per direction)"], rows,
                            align=["l", "r", "r", "r", "r", "r"]))
        bks = g["backends"]
        blocks.append(f"\n{title}: training step (fwd + bwd_d + bwd_w; pools fwd + bwd_d) of each layer per backend\n")
        rows = []
        for it in g["layers"]:
            best = min(it["per_backend"].values()) if it["per_backend"] else float("nan")
            rows.append([it["name"] or it["layer"]] + [
                ("" if b not in it["per_backend"] else
                 (f"**{fmt_time(it['per_backend'][b])}**" if it["per_backend"][b] == best
                  else fmt_time(it["per_backend"][b]))) for b in bks])
        blocks.append(Table(["layer"] + bks, rows))
    return Section("Training step per layer (fwd, bwd_d, bwd_w)", intro=(
        "The three passes a training step runs per layer, as DeepBench and convnet-benchmarks time "
        "them: forward, backward-data (the gradient w.r.t. the input, a transposed convolution) and "
        "backward-weights (dW = correlate(x, dY), benchdnn's op count = forward's). The first table "
        "takes the fastest backend per direction; the second is each backend on its own (bold: the "
        "layer's fastest single backend; empty: it lacks a direction)."), blocks=blocks)


@section("pooling")
def pooling(d: ReportData) -> Section | None:
    if not d.pool_problems:
        return None
    st = d.stream
    dram, l2 = st.get("copy_dram_gbs"), st.get("copy_l2_gbs")
    rows = []
    for prob in d.pool_problems:
        ok = d.passed(prob, d.pool_backends)
        c0 = d.first[prob]
        if not ok:
            rows.append([prob, fmt_bytes(_num(c0.bytes_io)), "(none passed)", "", "", "", ""])
            continue
        b = ok[0]
        g = _num(b.gbs_effective)
        rows.append([prob, fmt_bytes(_num(c0.bytes_io)), f"**{b.backend}**", fmt_time(b.time_median_s),
                     fmt_rate(g, ""), f"{g / dram * 100:.0f}%" if dram else "",
                     f"{g / l2 * 100:.0f}%" if l2 else ""])
    roof = (f"Measured on this machine (meta.json `peaks.stream`): STREAM copy {dram:.1f} GB/s from DRAM, "
            f"{l2:.1f} GB/s within L2; triad {st.get('triad_dram_gbs', float('nan')):.1f} / "
            f"{st.get('triad_l2_gbs', float('nan')):.1f} GB/s. " if dram and l2 else
            "This run recorded no STREAM bandwidth (meta.json `peaks.stream`), so no % of bandwidth. ")
    pivot = d.pivot(lambda c: f"{fmt_time(c.time_median_s)} ({fmt_rate(c.gbs_effective, '')} GB/s)",
                    footnotes=True, problems=d.pool_problems, backends=d.pool_backends)
    err = d.pivot(lambda c: "exact" if _num(c.max_abs_err) == 0 else f"{_num(c.rel_err):.1e}",
                  problems=d.pool_problems, backends=d.pool_backends)
    return Section("Pooling: bytes moved and bandwidth", intro=(
        "Pooling does no multiply-adds worth counting; it is judged by the bytes it must move (input "
        "and output once each, plus the int32 argmax a max pool's backward reads) per second. " + roof
        + "A layer whose bytes fit in L2 can beat the DRAM figure."),
        blocks=[Table(["problem", "bytes moved", "fastest", "median", "GB/s", "% of DRAM copy", "% of L2 copy"],
                      rows), "\nEvery pooling backend, median time (GB/s):\n",
                Table(["problem"] + d.pool_backends, pivot),
                "\nError against the float64 reference (integer data: max and avg_p are exact):\n",
                Table(["problem"] + d.pool_backends, err)])


@section("activations")
def activations_section(d: ReportData) -> Section | None:
    nets = activations(d.df)
    if not nets:
        return None
    blocks = []
    for n in nets:
        rows = []
        for it in n["layers"]:
            shrink = fmt_ratio(it["in_elems"], it["out_elems"]) if it["in_elems"] != it["out_elems"] else "1.00x"
            rows.append([it["name"] or it["layer"], it["kind"], f"x{it['multiplicity']}", it["out_shape"],
                         fmt_count(it["out_elems"]), fmt_bytes(it["out_elems"] * it["itemsize"]), shrink,
                         fmt_count(it["flops"])])
        blocks += [f"### {n['suite']}\n", Table(["layer", "kind", "mult", "output (C x H x W)", "activation elements",
                                                  "bytes per image", "input / output", "direct ops per image"],
                                                 rows, align=["l", "l", "r", "l", "r", "r", "r", "r"])]
    return Section("Activation size through the network", intro=(
        "Each layer's output per image, in network order: stride and pooling shrink the activation "
        "(input / output > 1), and with it the input, and so the op count, of every later layer. "
        "Figure `activations` draws the same columns."), blocks=blocks)


@section("arithmetic")
def arithmetic(d: ReportData) -> Section:
    rows = []
    for prob in d.problems:
        fd = _num(d.first[prob].flops_direct)
        r = [prob, fmt_count(fd)]
        for b in d.backends:
            c = d.cells.get((prob, b))
            fe = _num(c.flops_executed) if c is not None and c.status == "passed" else float("nan")
            r.append("" if math.isnan(fe) else f"{fmt_count(fe)} ({fmt_ratio(fe, fd, '{:.2f}') or 'n/a'})")
        rows.append(r)
    return Section("Arithmetic: direct op count vs executed (ratio executed/direct)", intro=(
        "`flops_direct` is benchdnn's count (2 ops per multiply-add on a real input pixel, "
        "padding excluded), the same for every backend. Executed counts what each algorithm's "
        "code does, including padding taps and transforms; below 1.0 means fewer operations "
        "than the direct loop (FFT, Winograd). Shown for cells that ran; peers' internals are "
        "not counted. A problem whose windows read only padding has a direct count of 0 and "
        "no ratio (n/a)."), blocks=[Table(["problem", "flops_direct"] + d.backends, rows)])


@section("multiplication_reduction")
def multiplication_reduction(d: ReportData) -> Section | None:
    real = d.real
    mult = real[real.flops_multiply.notna() & real.flops_executed.notna()
                & (real.flops_multiply < real.flops_executed) & (real.status == "passed")]
    if mult.empty:
        return None
    mbk = list(dict.fromkeys(mult.backend))
    rows = []
    for prob in list(dict.fromkeys(mult.problem)):
        dense = _num(d.first[prob].flops_dense)
        r = [prob]
        for b in mbk:
            c = d.cells.get((prob, b))
            fm = _num(c.flops_multiply) if c is not None and c.status == "passed" else float("nan")
            r.append("" if math.isnan(fm) or fm <= 0 else fmt_ratio(dense, fm))
        rows.append(r)
    return Section("Multiplication reduction of transform algorithms", intro=(
        "Multiply-adds a direct loop spends (all `kh*kw` taps of every output, padding "
        "included) divided by those of the transform algorithm's element-wise/GEMM stage: "
        "Winograd F(m,r) reaches (m*r/(m+r-1))^2 on outputs that are a multiple of m and "
        "less where edge tiles are partial; transforms are extra (previous table)."),
        blocks=[Table(["problem"] + mbk, rows)])


@section("parameters")
def parameters(d: ReportData) -> Section:
    rows = []
    for prob in d.problems:
        c = d.first[prob]
        dense, local, conv = (_num(c.params_fully_connected), _num(c.params_locally_connected), _num(c.params))
        if is_missing(dense) or is_missing(local):
            continue
        rows.append([prob, fmt_count(dense), fmt_count(local), fmt_count(conv),
                     fmt_ratio(dense, local, "{:.3g}x"), fmt_ratio(local, conv, "{:.3g}x"),
                     f"{safe_ratio(local, dense) * 100:.3g}%" if not math.isnan(safe_ratio(local, dense)) else ""])
    return Section("Why convolution beats a dense layer: parameters of the same mapping", intro=(
        "Weights needed to map this input to this output by a fully-connected layer (the dense "
        "operator, per group), by a locally-connected layer (one weight per nonzero of the "
        "operator: local connectivity, no sharing) and by the convolution (shared kernels). "
        "`locality` = dense / locally-connected, `sharing` = locally-connected / conv."),
        blocks=[Table(["problem", "fully connected", "locally connected", "convolution", "locality",
                       "sharing", "operator density"], rows)])


@section("workspace")
def workspace(d: ReportData) -> Section:
    rows = []
    for prob in d.problems:
        r = [prob, fmt_count(_num(d.first[prob].params))]
        for b in d.backends:
            c = d.cells.get((prob, b))
            r.append(fmt_bytes(_num(c.workspace_bytes)) if c is not None else "")
        rows.append(r)
    return Section("Parameters and workspace", blocks=[Table(["problem", "weights"] + d.backends, rows)])


@section("error")
def error(d: ReportData) -> Section:
    rows = []
    for prob in d.problems:
        r = [prob]
        for b in d.backends:
            c = d.cells.get((prob, b))
            if c is None or math.isnan(_num(c.rel_err)):
                r.append("")
            else:
                r.append(f"{_num(c.rel_err):.1e} / {_num(c.max_abs_err):.1e}")
        rows.append(r)
    worst = ["**worst relative error**"]
    for b in d.backends:
        errs = d.real[d.real.backend == b].rel_err.dropna()
        worst.append(f"**{errs.max():.1e}**" if not errs.empty else "")
    rows.append(worst)
    return Section("Error against the float64 reference (relative L2 / max abs)",
                   blocks=[Table(["problem"] + d.backends, rows)])


@section("phases")
def phases(d: ReportData) -> Section | None:
    real = d.real
    cols = [c for c in real.columns if c.startswith("phase_")]
    ph = real[real[cols].notna().any(axis=1)] if cols else real.iloc[0:0]
    if ph.empty:
        return None
    rows = [[r["problem"], r["backend"]] + [fmt_time(_num(r[c])) for c in cols] + [fmt_time(r["time_median_s"])]
            for _, r in ph.iterrows()]
    return Section("Transform phases (median seconds of one run, measured separately)", blocks=[
        Table(["problem", "backend"] + [c[6:-2] for c in cols] + ["total median"], rows)])


@section("cells")
def cells(d: ReportData) -> Section | None:
    extra = d.df[d.df.backend == "*"]
    if not d.notes and extra.empty:
        return None
    lines = [f"{i}. {t}" for i, t in enumerate(d.notes, 1)]
    lines += [f"- `{r.problem}`: {r.reason}" for r in extra.itertuples()]
    return Section("Skipped, mistrusted and failed cells", blocks=["\n".join(lines)])


@section("machines")
def machines(d: ReportData) -> Section | None:
    hosts = d.meta.get("hosts") or {}
    if (d.meta.get("executor") or {}).get("kind") != "dask" and len(hosts) <= 1:
        return None
    rows_all = d.df[d.df.backend != "*"]
    groups = _machine_groups(d.meta)
    rows = []
    for i, (_, hs) in enumerate(groups.items(), 1):
        for h in hs:
            fp = hosts[h]
            mine = rows_all[rows_all.host == h] if "host" in rows_all.columns else rows_all.iloc[0:0]
            rows.append([f"{i}", h, fp.get("cpu_model", ""), "; ".join(fp.get("blas") or []), fp.get("fftw", ""),
                         str(mine.problem.nunique()), ", ".join(sorted(set(mine.worker))) if len(mine) else ""])
    units = d.meta.get("units") or []
    extra = ""
    if units:
        import numpy as np
        sec = np.array([u["seconds"] for u in units if u["seconds"] == u["seconds"]])
        wall = np.array([u["wall"] for u in units if u["seconds"] == u["seconds"]])
        if sec.size:
            extra = (f" Units: {sec.size}, median {fmt_time(float(np.median(sec)))} of work each on its worker, "
                     f"{fmt_time(float(np.median(wall - sec)))} median from submission to result beyond that "
                     f"(queueing behind other units plus the scheduler's round trip).")
    blocks = [Table(["kind", "host", "CPU", "BLAS", "FFTW", "problems", "workers"], rows,
                    align=["r", "l", "l", "l", "l", "r", "l"])]
    if len(groups) > 1 and "host" in rows_all.columns:
        # the answer per machine kind: a problem's backends ran together on one worker, so
        # their comparison holds within a kind even where the kinds' absolute times differ
        for i, (_, hs) in enumerate(groups.items(), 1):
            mine = rows_all[rows_all.host.isin(hs)]
            out = []
            for prob in dict.fromkeys(mine.problem):
                ok = d.passed(prob)
                ok = [c for c in ok if c.host in hs]
                if ok:
                    out.append([prob, f"**{ok[0].backend}**", fmt_time(ok[0].time_median_s),
                                f"{ok[1].backend} +{(ok[1].time_median_s / ok[0].time_median_s - 1) * 100:.0f}%"
                                if len(ok) > 1 and ok[0].time_median_s > 0 else ""])
            blocks += [f"\nMachine kind {i} ({', '.join(hs)}): fastest backend per problem measured there\n",
                       Table(["problem", "fastest", "median", "runner-up (slower by)"], out)]
    return Section("Machines", intro=(
        "Where the rows were measured. Hosts in one machine kind (same CPU, BLAS kernel set, FFTW build "
        "and library versions) are comparable; times from different kinds are not, so with several "
        "kinds the fastest backends are also given per kind." + extra), blocks=blocks)


@section("notes")
def notes(d: ReportData) -> Section | None:
    real = d.real
    rows_ = real[(real.note != "") & (real.status == "passed")]
    if rows_.empty:
        return None
    rows = []
    for (b, note), grp in rows_.groupby(["backend", "note"], sort=False):
        probs = list(dict.fromkeys(grp.problem))
        where = ", ".join(f"`{x}`" for x in probs) if len(probs) <= 3 else f"{len(probs)} problems"
        rows.append([b, note, where])
    return Section("Notes (what each backend chose)", blocks=[Table(["backend", "note", "problems"], rows,
                                                                     align=["l", "l", "l"])])
