"""The answer a user comes with: the run, which backend is fastest per problem, what auto chose."""

from __future__ import annotations

from ...backends import ranked_backends
from ...format import fmt_rate, fmt_ratio, fmt_time
from ...stats import regret_summary
from ..data import ReportData
from ..document import Section, Table
from . import section


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
             f"threads per backend: {cfg.threads[0] if cfg.threads else '?'}"
             + (f" (also {', '.join(str(t) for t in cfg.threads[1:])}: section Thread scaling)"
                if len(cfg.threads) > 1 else "")
             + ("; hot and cold cache (section Hot vs cold cache; every other table: hot)"
                if {"cold", "hot"} <= set(cfg.cache)
                else "; cold cache: buffers rotated across 2x the last-level cache" if "cold" in cfg.cache else ""),
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
                 f">= {cfg.min_rounds} rounds; `±` is IQR/median. Data: integers in [-2, 2] "
                 f"(benchdnn style), checked against a float64 reference.")
    dens = cfg.weight_density
    if any(x != 1.0 for x in dens):
        lines.append(f"- weight densities {', '.join(f'{x:g}' for x in dens)}: pruned problems are labelled "
                     f"`@density D` (the same zeros for every backend)")
    return Section("convbench results", blocks=["\n".join(lines)], level=1)

def _machine_groups(meta: dict) -> dict:
    """Hosts of meta.json grouped by what makes their timings comparable."""
    from ...machine import comparable
    groups: dict = {}
    for host, fp in (meta.get("hosts") or {}).items():
        groups.setdefault(comparable(fp), []).append(host)
    return groups

@section("at_a_glance")
def at_a_glance(d: ReportData) -> Section | None:
    def count(probs, bks):
        wins: dict = {}
        for prob in probs:
            best = d.passed(prob, bks)
            if best:
                wins[best[0].backend] = wins.get(best[0].backend, 0) + 1
        return ", ".join(f"**{b}** {n}" for b, n in sorted(wins.items(), key=lambda kv: -kv[1]))
    conv, pool = count(d.problems, d.algorithms), count(d.pool_problems, d.pool_backends)
    if not conv and not pool:
        return None
    by_rank = ""
    if len(d.ranks) > 1:  # the answer differs with the rank: say it per rank
        parts = []
        for r in d.ranks:
            probs = [p for p in d.problems if d.rank_of(p) == r]
            if probs and count(probs, d.algorithms):
                parts.append(f"{r}-D ({len(probs)}): {count(probs, d.algorithms)}")
        by_rank = "By spatial rank: " + "; ".join(parts) + ". " if parts else ""
    text = ((f"Fastest backend, counted over the {len(d.problems)} convolution problems: {conv}. "
             if conv else "")
            + by_rank
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
    pool_base = next(iter(ranked_backends(d.pool_backends)), None)
    for prob in d.problems + d.pool_problems:
        is_pool = prob in d.pool_problems
        ok = d.passed(prob, d.pool_backends if is_pool else d.algorithms)
        if not ok:
            rows.append([prob, "(none passed)", "", "", "", "", f"{d.rank_of(prob)}-D"])
            continue
        best = ok[0]
        second = ok[1] if len(ok) > 1 else None
        base = d.cells.get((prob, pool_base if is_pool else d.baseline))
        vs_base = fmt_ratio(base.time_median_s, best.time_median_s) if base is not None \
            and base.status == "passed" else ""
        rate = fmt_rate(best.gbs_effective, "") + " GB/s" if is_pool else fmt_rate(best.gflops_effective, "")
        rows.append([prob, f"**{best.backend}** ({best.algorithm})", fmt_time(best.time_median_s), rate,
                     f"{second.backend} +{(second.time_median_s / best.time_median_s - 1) * 100:.0f}%"
                     if second is not None and best.time_median_s > 0 else "", vs_base, f"{d.rank_of(prob)}-D"])
    vs = f"speed-up vs {d.baseline}" + (f" (pools: vs {pool_base})" if pool_base and d.pool_problems else "")
    headers = ["problem", "fastest", "median", "GFLOP/s" + (" (pools: GB/s)" if d.pool_problems else ""),
               "runner-up (slower by)", vs, "rank"]
    return Section("Fastest backend per problem", blocks=[Table(headers, rows)])

@section("auto")
def auto_choice(d: ReportData) -> Section | None:
    """What ``backend=auto`` (a backend whose role is a choice among the others) chose per
    problem and its measured regret in this run."""
    rows, regrets = [], []
    own = d.with_role("own")
    for chooser in d.with_role("meta"):
        for prob in d.problems:
            a = d.cells.get((prob, chooser))
            ok = d.passed(prob, own)
            if a is None or a.status != "passed" or not ok:
                continue
            best = ok[0]
            regret = a.time_median_s / best.time_median_s if best.time_median_s > 0 else float("nan")
            regrets.append(regret)
            rows.append([prob, a.chosen or "?", fmt_time(a.time_median_s), best.backend,
                         fmt_time(best.time_median_s), f"{regret:.2f}"])
    if not rows:
        return None
    r = regret_summary(regrets)
    return Section("What backend=auto chose", intro=(
        f"auto's choice per problem (the selector fitted by `convbench tune`, else the built-in rules) "
        f"against the fastest of convbench's own backends measured in this run. Regret over "
        f"{r['n']} problems: geometric mean {r['geomean']:.3f}, p95 {r['p95']:.2f}, max {r['max']:.2f}; top-1 "
        f"{sum(1 for row in rows if row[1] == row[3]) / len(rows):.0%}. (auto's time is its chosen backend "
        f"timed again, so a ratio below 1 is noise.)"),
        blocks=[Table(["problem", "auto chose", "auto median", "fastest own", "its median", "regret"], rows)])
