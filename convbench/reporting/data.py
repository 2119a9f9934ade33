"""The report's view of a result directory, built once: rows, problems, backends, the
problem x backend pivot, footnotes for cells that did not pass, and network roll-ups.

Sections read this and never recompute what the runner stored (counts live in the rows).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..results import load_meta, load_summary

__all__ = ["ReportData", "load_data", "rollups", "choose_baseline", "SHORT_STATUS"]

#: how a cell that did not pass reads in a pivot table
SHORT_STATUS = {"skipped": "skip", "failed": "FAIL", "mistrusted": "WRONG"}


def choose_baseline(backends: list[str], requested: str | None = None) -> str | None:
    """The backend speed-ups are quoted against: the requested one, else torch, else im2col."""
    if requested and requested in backends:
        return requested
    for cand in ("torch_onednn", "im2col_blas"):
        if cand in backends:
            return cand
    return backends[0] if backends else None


@dataclass
class ReportData:
    """A result directory as the sections see it. ``problem`` is the cell label (a problem
    at one weight density); ``cells[(problem, backend)]`` is that cell's row (a namedtuple,
    the last if a cell was written twice); ``first[problem]`` a row of the problem, for its
    problem-level columns; ``notes`` the numbered reasons of every cell that did not pass."""

    df: object
    meta: dict
    baseline: str | None
    real: object = None
    problems: list = field(default_factory=list)
    backends: list = field(default_factory=list)
    cells: dict = field(default_factory=dict)
    first: dict = field(default_factory=dict)
    notes: list = field(default_factory=list)

    def __post_init__(self):
        df = self.df
        if "cell" in df.columns:
            df = self.df = df.assign(problem=df["cell"])
        self.real = df[df.backend != "*"]
        self.problems = list(dict.fromkeys(self.real.problem))
        self.backends = list(dict.fromkeys(self.real.backend))
        self.baseline = choose_baseline(self.backends, self.baseline or self.meta.get("config", {}).get("baseline"))
        for r in self.real.itertuples(index=False):
            self.cells[(r.problem, r.backend)] = r
            self.first.setdefault(r.problem, r)
        for prob in self.problems:
            for b in self.backends:
                c = self.cells.get((prob, b))
                if c is not None and c.status != "passed" and c.reason:
                    self.note_ref(c)

    @property
    def config(self) -> dict:
        return self.meta.get("config", {})

    def note_ref(self, c) -> int:
        """Footnote number of a non-passed cell's reason (deduplicated by text)."""
        text = f"{c.status}: {c.reason}"
        if text not in self.notes:
            self.notes.append(text)
        return self.notes.index(text) + 1

    def passed(self, prob: str) -> list:
        """The problem's passed, timed cells, fastest first."""
        out = [c for b in self.backends if (c := self.cells.get((prob, b))) is not None
               and c.status == "passed" and c.time_median_s == c.time_median_s]
        return sorted(out, key=lambda c: c.time_median_s)

    def pivot(self, value, *, footnotes: bool = False, problems: list | None = None,
              backends: list | None = None) -> list[list]:
        """Rows ``[problem, value(cell) per backend]``; a cell that did not pass shows its
        state (with its footnote number when ``footnotes``), a missing one is empty."""
        rows = []
        for prob in problems or self.problems:
            r = [prob]
            for b in backends or self.backends:
                c = self.cells.get((prob, b))
                if c is None:
                    r.append("")
                elif c.status == "passed":
                    r.append(value(c))
                else:
                    tag = SHORT_STATUS.get(c.status, c.status)
                    r.append(f"{tag} [{self.note_ref(c)}]" if footnotes and c.reason else tag)
            rows.append(r)
        return rows


def load_data(out_dir: Path, baseline: str | None = None) -> ReportData:
    """:class:`ReportData` of a result directory (``ResultsError`` when unreadable)."""
    meta = load_meta(Path(out_dir))  # first: a foreign directory is named as such
    return ReportData(load_summary(Path(out_dir)), meta, baseline)


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
                        batch=",".join(str(int(v)) for v in sorted(sub.mb.dropna().unique())), totals=totals,
                        incomplete=incomplete, oracle=oracle, uncovered=uncovered, picks=picks))
    return out
