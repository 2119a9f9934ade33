"""What did not run and where it ran: cells that did not pass, machines, notes."""

from __future__ import annotations

from ...format import fmt_time
from ..data import ReportData
from ..document import Section, Table
from . import section
from .answer import _machine_groups


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
