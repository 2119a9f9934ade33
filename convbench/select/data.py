"""Measurements for the selector: passed rows of result directories, checked to come from
this machine, one dtype, one thread count and one direction."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

__all__ = ["fingerprint", "fingerprint_id", "Measurements", "load_measurements", "TuneError"]


class TuneError(ValueError):
    """Input that tune cannot use: one line saying what is missing or mismatched."""


def fingerprint(machine: dict | None = None) -> dict:
    """What a selector is valid for: CPU model, core count and the vector flags."""
    if machine is None:
        from ..machine import machine_info
        machine = machine_info()
    return {"cpu_model": str(machine.get("cpu_model", "")), "cores": int(machine.get("cores") or 0),
            "cpu_flags": sorted(machine.get("cpu_flags") or [])}


def fingerprint_id(fp: dict) -> str:
    return hashlib.sha1(json.dumps(fp, sort_keys=True).encode()).hexdigest()[:12]


@dataclass
class Measurements:
    """Median times: ``times`` is a problems x backends frame (NaN: not run / not passed);
    ``problems`` the problem objects by descriptor; ``suite`` per descriptor ('' outside one)."""

    times: pd.DataFrame
    problems: dict
    suite: dict
    dtype: str
    threads: int
    direction: str
    sources: list
    first_call: pd.DataFrame | None = None  #: prepare + first run seconds (measure mode's cost)
    #: per cell, the standard error of log2(median time) from its repeated rounds (NaN: unknown)
    noise: pd.DataFrame | None = None
    #: the machine's measured peaks (meta.json ``peaks``: fma_gflops, sgemm_gflops, stream ...)
    peaks: dict | None = None

    def subset(self, labels) -> "Measurements":
        labels = [x for x in labels if x in self.times.index]
        fc = self.first_call.loc[labels] if self.first_call is not None else None
        nz = self.noise.loc[labels] if self.noise is not None else None
        return Measurements(self.times.loc[labels], {k: self.problems[k] for k in labels},
                            {k: self.suite[k] for k in labels}, self.dtype, self.threads, self.direction,
                            self.sources, fc, nz, self.peaks)


def _median_se_log2(df: pd.DataFrame) -> pd.Series:
    """Standard error of log2(median) per row from its rounds: the IQR as a normal spread
    (IQR / 1.349), times 1.253 for a median, over sqrt(rounds), relative to the median."""
    import numpy as np
    med = df.time_median_s.astype(float)
    iqr = df.time_iqr_s.astype(float) if "time_iqr_s" in df.columns else med * np.nan
    rounds = df.rounds.astype(float).clip(lower=1) if "rounds" in df.columns else med * np.nan
    rel = (iqr / 1.349) * 1.253 / np.sqrt(rounds) / med
    return np.log2(1.0 + rel)


def _peaks(metas: list) -> dict | None:
    """The median of each numeric peak over the directories that recorded one."""
    import numpy as np
    vals: dict = {}
    for m in metas:
        pk = m.get("peaks") or {}
        flat = dict(pk, **{f"stream_{k}": v for k, v in (pk.get("stream") or {}).items()})
        for k, v in flat.items():
            if isinstance(v, (int, float)) and np.isfinite(v) and v > 0:
                vals.setdefault(k, []).append(float(v))
    return {k: float(np.median(v)) for k, v in vals.items()} or None


def load_measurements(dirs, *, dtype: str | None = None, threads: int | None = None, direction: str = "fwd",
                      check_machine: bool = True, warn=None) -> Measurements:
    """Passed rows of ``dirs`` for one dtype, thread count and direction.

    Raises
    ------
    TuneError
        No such directory, no passed rows, rows from another machine (``check_machine``),
        several dtypes or thread counts without a choice, or none of the requested one.
    """
    from ..problem import parse_problem
    from ..results import ResultsError, load_meta, load_summary
    here = fingerprint() if check_machine else None
    frames, foreign, metas = [], [], []
    warn = warn or (lambda m: None)
    for d in dirs:
        d = Path(d)
        if not (d / "summary.csv").is_file():
            raise TuneError(f"tune: {str(d)!r} is not a convbench result directory (no summary.csv)")
        try:
            df, meta = load_summary(d), load_meta(d)
        except (ResultsError, OSError, ValueError) as e:
            raise TuneError(f"tune: {str(d)!r}: unreadable results ({e})") from None
        if here is not None:
            there = fingerprint(meta.get("machine") or {})
            if there != here:
                diff = [k for k in here if here[k] != there[k]]
                foreign.append(f"{str(d)!r} was measured on another machine ({', '.join(diff)} differ: "
                               f"{there.get('cpu_model')!r}, {there.get('cores')} cores)")
                continue
        df = df.assign(source=str(d))
        frames.append(df)
        metas.append(meta)
    if foreign and not frames:
        raise TuneError(f"tune: {foreign[0]}; a selector is fitted to the machine it runs on"
                        + (f" (and {len(foreign) - 1} more such directories)" if len(foreign) > 1 else ""))
    for f in foreign:
        warn(f"tune: warning: {f}; its rows are left out")
    df = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    if df.empty or "status" not in df.columns or not (df.status == "passed").any():
        raise TuneError(f"tune: no passed rows in {', '.join(map(str, dirs))}; run `convbench run` there first")
    df = df[(df.status == "passed") & (df.backend != "*")]
    if "kind" in df.columns:
        df = df[df.kind.astype(str).isin(["conv", "", "nan"])]
    df = df[df.get("weight_density", 1.0).astype(float) >= 1.0]
    for col, want, flag in (("dtype", dtype, "--dtype"), ("threads", threads, "--threads"),
                            ("direction", direction, "--direction")):
        have = sorted(set(df[col].astype(str))) if col in df.columns else []
        if want is None:
            want = df[col].astype(str).value_counts().idxmax() if have else None
            if len(have) > 1:
                warn(f"tune: warning: the rows hold several {col}s ({', '.join(have)}); fitting {col} {want} "
                     f"(the most rows); choose with {flag}")
        if str(want) not in have:
            raise TuneError(f"tune: no passed rows with {col} {want} (the rows have {', '.join(have) or 'none'}); "
                            f"accepted {flag}: {', '.join(have)}")
        df = df[df[col].astype(str) == str(want)]
        if col == "dtype":
            dtype = want
        elif col == "threads":
            threads = int(want)
    times = df.pivot_table(index="problem", columns="backend", values="time_median_s", aggfunc="min")
    noise = (df.assign(se=_median_se_log2(df)).sort_values("time_median_s")
             .drop_duplicates(["problem", "backend"])
             .pivot_table(index="problem", columns="backend", values="se", aggfunc="first", dropna=False)
             .reindex(index=times.index, columns=times.columns))
    first = None
    if {"prepare_s", "first_run_s"} <= set(df.columns):
        first = (df.assign(fc=df.prepare_s.astype(float) + df.first_run_s.astype(float))
                 .pivot_table(index="problem", columns="backend", values="fc", aggfunc="min")
                 .reindex(index=times.index, columns=times.columns))
    problems, suite = {}, {}
    for lab, g in df.groupby("problem"):
        desc = str(g.descriptor.iloc[0]) if "descriptor" in g.columns and str(g.descriptor.iloc[0]) else lab
        try:
            problems[lab] = parse_problem(desc).replace(dtype=dtype, direction=direction)
        except (ValueError, TypeError):
            continue
        suite[lab] = str(g.suite.iloc[0]) if "suite" in g.columns and isinstance(g.suite.iloc[0], str) else ""
    keep = [lab for lab in times.index if lab in problems]
    times = times.loc[keep]
    return Measurements(times, problems, suite, dtype, int(threads), direction, [str(d) for d in dirs],
                        first.loc[keep] if first is not None else None, noise.loc[keep], _peaks(metas))
