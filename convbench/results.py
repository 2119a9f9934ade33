"""Tidy result files: versioned schema, incremental appends, provenance, loading.

A result directory holds

``summary.csv``   one row per (problem, backend), columns :data:`SUMMARY_COLUMNS`
``samples.csv``   one row per timed round, columns :data:`SAMPLE_COLUMNS`
``meta.json``     schema version, convbench version, machine, BLAS, threads, libraries,
                  git commit, argv and the sweep configuration (so ``--resume`` can
                  finish a run without the user retyping it)
``tables.md``     rendered by :mod:`convbench.report`

Rows are appended and flushed as soon as they are measured, so a sweep killed
half-way keeps every finished row. Units live in column names (``_s``, ``_bytes``)
and values are stored in SI; scaling happens only when rendering.
"""

from __future__ import annotations

import csv
import json
import math
import os
from pathlib import Path

__all__ = ["SCHEMA_VERSION", "SUMMARY_COLUMNS", "SAMPLE_COLUMNS", "STATUSES", "ResultWriter", "cell_label",
           "load_summary", "load_samples", "load_meta", "write_meta", "ResultsError"]

SCHEMA_VERSION = 1

#: cell states, as benchdnn names them
STATUSES = ("passed", "skipped", "mistrusted", "failed")

PROBLEM_COLUMNS = ["problem", "descriptor", "name", "suite", "multiplicity", "direction", "dtype", "mb", "ic",
                   "ih", "iw", "oc", "oh", "ow", "kh", "kw", "sh", "sw", "ph", "pw", "dh", "dw", "g",
                   "weight_density"]
PHASES = ("input", "multiply", "output")
SUMMARY_COLUMNS = PROBLEM_COLUMNS + [
    "backend", "algorithm", "peer", "threads", "status", "reason", "note",
    "prepare_s", "first_run_s",
    "time_min_s", "time_median_s", "time_mean_s", "time_stddev_s", "time_q1_s", "time_q3_s",
    "time_iqr_s", "rounds", "iterations", "cpu_util",
    "flops_direct", "flops_executed", "flops_multiply", "gflops_effective", "params", "workspace_bytes",
    "max_abs_err", "rel_err", "tolerance",
] + [f"phase_{ph}_s" for ph in PHASES]
SAMPLE_COLUMNS = ["problem", "weight_density", "backend", "round", "iterations", "time_s"]


def cell_label(problem: str, weight_density: float) -> str:
    """Row label of a cell's problem: the descriptor, plus the weight density when pruned."""
    d = float(weight_density) if weight_density == weight_density else 1.0
    return problem if d >= 1.0 else f"{problem} @density {d:g}"


class ResultsError(ValueError):
    """A result directory or file that cannot be read (missing, malformed, foreign)."""


def _fmt(v) -> str:
    if v is None:
        return ""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        if math.isnan(v):
            return ""
        return repr(v)
    return str(v)


class ResultWriter:
    """Appends rows to ``summary.csv`` / ``samples.csv`` in ``out_dir``, flushing each row."""

    def __init__(self, out_dir: Path):
        self.out_dir = Path(out_dir)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.summary_path = self.out_dir / "summary.csv"
        self.samples_path = self.out_dir / "samples.csv"
        self._summary = self._open(self.summary_path, SUMMARY_COLUMNS)
        self._samples = self._open(self.samples_path, SAMPLE_COLUMNS)

    @staticmethod
    def _open(path: Path, columns: list[str]):
        new = not path.exists() or path.stat().st_size == 0
        if not new:
            with open(path, newline="") as f:
                header = next(csv.reader(f), [])
            if header != columns:
                raise ResultsError(f"{path}: columns differ from this convbench's schema "
                                   f"v{SCHEMA_VERSION}; use a new --out directory")
        f = open(path, "a", newline="")
        w = csv.writer(f)
        if new:
            w.writerow(columns)
            f.flush()
        return f, w, columns

    def _write(self, handle, row: dict) -> None:
        f, w, columns = handle
        unknown = set(row) - set(columns)
        if unknown:
            raise KeyError(f"unknown result columns {sorted(unknown)}")
        w.writerow([_fmt(row.get(c)) for c in columns])
        f.flush()
        os.fsync(f.fileno())

    def summary(self, row: dict) -> None:
        self._write(self._summary, row)

    def samples(self, problem: str, weight_density: float, backend: str, iterations: int,
                times: list[float]) -> None:
        f, w, _ = self._samples
        for i, t in enumerate(times):
            w.writerow([problem, repr(float(weight_density)), backend, i, iterations, f"{float(t):.6g}"])
        f.flush()
        os.fsync(f.fileno())

    def close(self) -> None:
        for f, _, _ in (self._summary, self._samples):
            f.close()


def write_meta(out_dir: Path, meta: dict) -> None:
    path = Path(out_dir) / "meta.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(meta, indent=2, sort_keys=True, default=str))
    tmp.replace(path)


def load_meta(out_dir: Path) -> dict:
    path = Path(out_dir) / "meta.json"
    if not path.is_file():
        raise ResultsError(f"{out_dir}: no meta.json, not a convbench result directory")
    try:
        meta = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise ResultsError(f"{path}: not readable JSON ({e})") from None
    if not isinstance(meta, dict) or meta.get("tool") != "convbench":
        raise ResultsError(f"{path}: not written by convbench")
    if meta.get("schema_version") != SCHEMA_VERSION:
        raise ResultsError(f"{path}: schema version {meta.get('schema_version')} is not "
                           f"{SCHEMA_VERSION}, the one this convbench reads")
    return meta


_TEXT_COLUMNS = ("problem", "descriptor", "name", "suite", "direction", "dtype", "backend", "algorithm",
                 "status", "reason", "note")


#: columns without which a file is not a convbench result; the others are filled in
#: (empty text, NaN, multiplicity 1) so that files from older or partial runs still load
REQUIRED = {"summary.csv": ("problem", "backend", "status"), "samples.csv": ("problem", "backend", "time_s")}


def _read_csv(path: Path, columns: list[str]):
    import pandas as pd
    if not path.is_file():
        raise ResultsError(f"{path.parent}: no {path.name}")
    try:
        df = pd.read_csv(path, keep_default_na=True, dtype={c: str for c in _TEXT_COLUMNS})
    except Exception as e:  # pandas raises many types for malformed input
        raise ResultsError(f"{path}: not a readable CSV ({e.__class__.__name__}: {e})") from None
    missing = [c for c in REQUIRED.get(path.name, columns) if c not in df.columns]
    if missing:
        raise ResultsError(f"{path}: missing columns {missing[:5]}; not a convbench v{SCHEMA_VERSION} file")
    for c in columns:
        if c not in df.columns:
            df[c] = "" if c in _TEXT_COLUMNS else float("nan")
    return df


def load_summary(out_dir: Path):
    """``summary.csv`` as a DataFrame (raises :class:`ResultsError` when unreadable)."""
    df = _read_csv(Path(out_dir) / "summary.csv", SUMMARY_COLUMNS)
    for c in ("reason", "note", "name", "suite"):
        df[c] = df[c].fillna("").astype(str)
    df["multiplicity"] = df["multiplicity"].fillna(1).astype(int)
    df["weight_density"] = df["weight_density"].fillna(1.0)
    if df["descriptor"].eq("").all():
        df["descriptor"] = df["problem"]
    df["cell"] = [cell_label(p, d) for p, d in zip(df.problem, df.weight_density)]
    return df


def load_samples(out_dir: Path):
    """``samples.csv`` as a DataFrame (with the ``cell`` label of :func:`load_summary`)."""
    df = _read_csv(Path(out_dir) / "samples.csv", SAMPLE_COLUMNS)
    df["cell"] = [cell_label(p, d) for p, d in zip(df.problem, df.weight_density)]
    return df
