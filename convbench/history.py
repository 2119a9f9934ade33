"""Timings across commits: one series per cell and machine, steps found by change-point
detection, and the commit range that brought each regression, improvement or slow drift.

* **Points.** Each result directory is one run of one commit on one machine (``meta.json``:
  ``git.commit``, its date, and the machine: CPU, cores, BLAS kernel set, threads). Runs of the
  same commit and machine (sharded sweeps, reruns) merge into one point per cell: their timed
  rounds are pooled and the point is their median (pytest-benchmark #260). Machines are never
  mixed in one series.
* **Steps.** ruptures' PELT on log2(median) per series (``l2`` cost), with the penalty
  calibrated on the series' A/A noise: ``PENALTY_SIGMAS^2 * sigma^2 * log(n)``, where sigma is
  the robust spread of consecutive differences (most neighbouring commits change nothing, so
  their differences are A/A pairs), floored by the points' own sampling error.
* **Findings.** A step whose segment means differ by more than ``threshold`` is a regression or
  an improvement, with the range (last commit before, first commit after]. Consecutive steps of
  one sign whose accumulated change crosses ``threshold`` while none does alone are one *drift*
  over their whole range, reported once with the total (asv #932: only the last step of a slow slide was flagged).
"""

from __future__ import annotations

import hashlib
import json
import math
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

__all__ = ["HistoryError", "Finding", "load_points", "require_common", "detect_steps", "series_steps", "findings",
           "PENALTY_SIGMAS"]

#: the PELT penalty in units of the A/A variance (times log n): a step must stand out by this
#: many standard deviations of consecutive-commit noise
PENALTY_SIGMAS = 3.0


class HistoryError(ValueError):
    """Input history cannot use: one line naming the directory and what is wrong."""


@dataclass
class Finding:
    """A regression, improvement or drift of one cell on one machine."""

    machine: str
    problem: str
    backend: str
    kind: str          #: regression, improvement, drift-regression, drift-improvement
    ratio: float       #: time after / time before
    before: str        #: last commit of the old level
    after: str         #: first commit of the new level
    commits: int       #: commits in the range (after included)


def _machine(meta: dict) -> tuple[str, str]:
    """(id, label) of the run's machine: CPU, cores, BLAS kernel set, threads."""
    m = meta.get("machine") or {}
    blas = ",".join(sorted({str(lib.get("architecture")) for lib in (m.get("blas") or {}).get("libraries", [])}))
    cfg = meta.get("config") or {}
    threads = cfg.get("threads") if isinstance(cfg.get("threads"), (int, list)) else None
    key = {"cpu": m.get("cpu_model"), "cores": m.get("cores"), "blas": blas, "threads": threads}
    label = f"{m.get('cpu_model') or '?'} ({m.get('cores') or '?'} cores, {blas or '?'} BLAS)"
    return hashlib.sha1(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:10], label


def _commit_date(meta: dict, commit: str | None) -> str:
    """ISO date of the commit: recorded in meta.json, else from git here, else the run's start."""
    git = meta.get("git") or {}
    if git.get("date"):
        return str(git["date"])
    if commit:
        try:
            out = subprocess.run(["git", "-C", str(Path(__file__).resolve().parent.parent), "show", "-s",
                                  "--format=%cI", commit], capture_output=True, text=True, timeout=10)
            if out.returncode == 0 and out.stdout.strip():
                return out.stdout.strip()
        except (OSError, subprocess.SubprocessError):
            pass
    return str(meta.get("started") or "")


def load_points(dirs) -> pd.DataFrame:
    """One row per (machine, commit, problem, backend): ``median_s`` over the pooled rounds of
    every run of that commit and machine, ``rounds``, ``runs``, ``date``, ``machine_label``."""
    from .results import ResultsError, load_meta, load_samples, load_summary
    frames = []
    for d in dirs:
        d = Path(d)
        try:
            meta, df = load_meta(d), load_summary(d)
        except (ResultsError, OSError, ValueError) as e:
            raise HistoryError(f"history: {str(d)!r}: {e}") from None
        if not ((meta.get("machine") or {}).get("cpu_model") or (meta.get("machine") or {}).get("blas")):
            raise HistoryError(f"history: {str(d)!r} records no machine fingerprint (meta.json machine: CPU, "
                               f"cores, BLAS kernels); its times cannot be placed in a machine's series")
        commit = (meta.get("git") or {}).get("commit")
        if not commit:
            raise HistoryError(f"history: {str(d)!r} records no git commit (meta.json git.commit); "
                               f"a history needs the commit of every run")
        mid, label = _machine(meta)
        try:
            smp = load_samples(d)
            smp = smp[smp.backend != "*"]
        except (ResultsError, OSError, ValueError):
            smp = pd.DataFrame(columns=["cell", "backend", "time_s"])
        ok = df[(df.status == "passed") & (df.backend != "*")]
        rounds = smp[["cell", "backend", "time_s"]].merge(ok[["cell", "backend"]], on=["cell", "backend"])
        missing = ok.merge(rounds[["cell", "backend"]].drop_duplicates(), on=["cell", "backend"], how="left",
                           indicator=True)
        missing = missing[missing._merge == "left_only"]  # rows without rounds: their median stands for them
        rounds = pd.concat([rounds, missing[["cell", "backend"]].assign(time_s=missing.time_median_s.to_numpy())])
        frames.append(rounds.assign(machine=mid, machine_label=label, commit=commit,
                                    date=_commit_date(meta, commit), run=str(d)))
    if not frames:
        raise HistoryError("history: no result directories given")
    allr = pd.concat(frames, ignore_index=True)
    allr["time_s"] = allr.time_s.astype(float)
    g = allr.groupby(["machine", "machine_label", "commit", "date", "cell", "backend"], sort=False)
    pts = g.agg(median_s=("time_s", "median"), q1_s=("time_s", lambda x: x.quantile(0.25)),
                q3_s=("time_s", lambda x: x.quantile(0.75)), rounds=("time_s", "size"),
                runs=("run", "nunique")).reset_index()
    return pts.rename(columns={"cell": "problem"}).sort_values(["machine", "problem", "backend", "date"])


def require_common(points: pd.DataFrame, ndirs: int) -> None:
    """Raise :class:`HistoryError` when no cell has two points on one machine: the directories
    have nothing in common to make a series of (other problems, backends, machines, or one commit)."""
    n = points.groupby(["machine", "problem", "backend"]).commit.nunique()
    if ndirs > 1 and not (n >= 2).any():
        machines, commits = points.machine.nunique(), points.commit.nunique()
        raise HistoryError(f"history: the {ndirs} directories have nothing in common: no cell (problem and backend) "
                           f"was measured at two commits on one machine ({commits} commit(s), {machines} machine(s)); "
                           f"give runs of the same suite across commits")


def _sigma(y: np.ndarray, rounds: np.ndarray) -> float:
    """A/A spread of one point in log2: robust spread of consecutive differences / sqrt 2,
    at least the median sampling error of a point's median."""
    d = np.diff(y)
    mad = 1.4826 * float(np.median(np.abs(d - np.median(d)))) / math.sqrt(2) if len(d) >= 2 else 0.0
    return max(mad, 0.005 * 1.253 / math.sqrt(max(1.0, float(np.median(rounds)))), 1e-4)


def detect_steps(y: np.ndarray, sigma: float) -> list[int]:
    """Indices where a new level starts (PELT, l2 cost, penalty from ``sigma``)."""
    import ruptures
    if len(y) < 2:
        return []
    pen = PENALTY_SIGMAS ** 2 * sigma ** 2 * math.log(max(len(y), 2))
    bkps = ruptures.Pelt(model="l2", min_size=1, jump=1).fit(y.reshape(-1, 1)).predict(pen=pen)
    return [b for b in bkps if b < len(y)]


def series_steps(s: pd.DataFrame) -> tuple[list[int], list[float]]:
    """One series' points (ordered by date): the indices where a new level starts and the
    levels (mean log2 time of each segment)."""
    y = np.log2(s.median_s.to_numpy(float))
    steps = detect_steps(y, _sigma(y, s.rounds.to_numpy(float)))
    edges = [0, *steps, len(y)]
    return steps, [float(np.mean(y[a:b])) for a, b in zip(edges, edges[1:])]


def findings(points: pd.DataFrame, threshold: float = 1.1) -> list[Finding]:
    """Regressions, improvements and drifts over ``threshold`` (a time ratio) in every series."""
    lim = math.log2(threshold)
    out = []
    for (mid, prob, backend), s in points.groupby(["machine", "problem", "backend"], sort=False):
        s = s.sort_values("date")
        commits = s.commit.tolist()
        steps, levels = series_steps(s)
        chain: list = []  # consecutive sub-threshold steps of one sign

        def close_chain():
            total = sum(d for _, d in chain)
            if chain and abs(total) > lim:
                first, last = chain[0][0], chain[-1][0]
                out.append(Finding(mid, prob, backend, "drift-regression" if total > 0 else "drift-improvement",
                                   2 ** total, commits[first - 1], commits[last], last - first + 1))
            chain.clear()
        for i, at in enumerate(steps):
            d = levels[i + 1] - levels[i]
            if abs(d) > lim:
                close_chain()
                out.append(Finding(mid, prob, backend, "regression" if d > 0 else "improvement", 2 ** d,
                                   commits[at - 1], commits[at], 1))
                continue
            if chain and np.sign(chain[0][1]) != np.sign(d):
                close_chain()
            chain.append((at, d))
        close_chain()
    return out
