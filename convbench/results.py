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

Every count derived from the problem (``flops_direct``, ``flops_dense``, ``params`` and
the parameter-table counts, ``bytes_io``) is computed once by the runner and stored in
the row, so reports only render. Schema history: v1 lacked ``flops_dense``,
``params_fully_connected``, ``params_locally_connected``, ``bytes_io`` and
``gbs_effective``; :func:`load_summary` derives them from the descriptor when reading a
v1 directory. Other versions are refused with the version named.
"""

from __future__ import annotations

import csv
import json
import math
import os
from pathlib import Path

__all__ = ["SCHEMA_VERSION", "READABLE_VERSIONS", "SUMMARY_COLUMNS", "SAMPLE_COLUMNS", "STATUSES", "ResultWriter",
           "cell_label", "load_summary", "load_samples", "load_meta", "write_meta", "new_meta", "ResultsError",
           "problem_counts"]

SCHEMA_VERSION = 2
#: versions this convbench reads (older ones are upgraded on load)
READABLE_VERSIONS = (1, 2)

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
    "flops_direct", "flops_dense", "flops_executed", "flops_multiply", "gflops_effective",
    "params", "params_fully_connected", "params_locally_connected", "bytes_io", "gbs_effective", "workspace_bytes",
    "max_abs_err", "rel_err", "tolerance",
] + [f"phase_{ph}_s" for ph in PHASES]

#: columns v2 added; a v1 directory gets them from its descriptors on load
_V2_COUNTS = ("flops_dense", "params_fully_connected", "params_locally_connected", "bytes_io")


def problem_counts(p) -> dict:
    """The counts of a results row that depend on the problem alone.

    ``flops_direct``: benchdnn's op count (padding taps excluded); ``flops_dense``: a loop
    that multiplies the padding too (all ``kh*kw`` taps of every output); ``params``: the
    convolution's weights; ``params_fully_connected`` / ``params_locally_connected``: the
    weights of a dense and of a locally connected (unshared) layer doing the same mapping;
    ``bytes_io``: input, weights and output, each once (the minimum traffic).
    """
    from .flops import dense_flops, direct_flops
    from .params import dense_entries, operator_nnz
    io = (p.mb * p.ic * p.ih * p.iw + p.params + p.mb * p.oc * p.oh * p.ow) * p.itemsize
    return dict(flops_direct=direct_flops(p), flops_dense=dense_flops(p), params=p.params,
                params_fully_connected=dense_entries(p), params_locally_connected=operator_nnz(p),
                bytes_io=io)
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


def new_meta(*, argv: list[str], config: dict, coretype: dict) -> dict:
    """The ``meta.json`` record of a new run: schema and convbench version, start time,
    argv, the sweep configuration (what ``--resume`` reads back), machine, commit, BLAS
    kernel set, thread report, FFTW wisdom and build, and the measured roofline peaks."""
    import time

    from . import __version__, threads
    from .blas import autodetected_coretype
    from .machine import fftw_build, git_commit, machine_info, roofline_peaks
    meta = {"tool": "convbench", "schema_version": SCHEMA_VERSION, "convbench_version": __version__,
            "started": time.strftime("%Y-%m-%dT%H:%M:%S"), "argv": ["convbench"] + list(argv),
            "config": config, "machine": machine_info(), "git": git_commit(),
            "blas_coretype": coretype, "blas_autodetected": autodetected_coretype(),
            "threads": threads.thread_report(), "peaks": roofline_peaks()}
    if "fft_pyfftw" in config.get("backends", ()):
        from .backends.fft import WISDOM
        meta["fftw_wisdom"] = WISDOM.state()  # plans can come from an earlier run's wisdom
        meta["fftw_build"] = fftw_build()     # which SIMD codelets the transforms run
    return meta


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
    if meta.get("schema_version") not in READABLE_VERSIONS:
        raise ResultsError(f"{path}: schema version {meta.get('schema_version')!r} is not one this convbench "
                           f"reads ({', '.join(map(str, READABLE_VERSIONS))}); it was written by "
                           f"convbench {meta.get('convbench_version', '?')}")
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


def _upgrade_v1(df):
    """Derive the v2 count columns of a v1 summary from its descriptors (problem columns only)."""
    from .problem import ConvProblem
    if not df[list(_V2_COUNTS)].isna().all().all():
        return df
    cache: dict = {}
    for i, label in enumerate(df.problem):
        if label not in cache:  # the label is a descriptor with benchdnn's --dir/--dt knobs
            try:
                cache[label] = problem_counts(ConvProblem.parse(label))
            except (ValueError, TypeError):
                cache[label] = {}
        for k in _V2_COUNTS:
            if k in cache[label]:
                df.iat[i, df.columns.get_loc(k)] = cache[label][k]
    return df


def load_summary(out_dir: Path):
    """``summary.csv`` as a DataFrame (raises :class:`ResultsError` when unreadable).

    A v1 directory's rows gain the v2 count columns, derived from their descriptors."""
    df = _read_csv(Path(out_dir) / "summary.csv", SUMMARY_COLUMNS)
    for c in ("reason", "note", "name", "suite"):
        df[c] = df[c].fillna("").astype(str)
    if df["descriptor"].isna().all() or df["descriptor"].eq("").all():
        df["descriptor"] = df["problem"]
    df = _upgrade_v1(df)
    df["multiplicity"] = df["multiplicity"].fillna(1).astype(int)
    df["weight_density"] = df["weight_density"].fillna(1.0)
    df["cell"] = [cell_label(p, d) for p, d in zip(df.problem, df.weight_density)]
    return df


def load_samples(out_dir: Path):
    """``samples.csv`` as a DataFrame (with the ``cell`` label of :func:`load_summary`)."""
    df = _read_csv(Path(out_dir) / "samples.csv", SAMPLE_COLUMNS)
    df["cell"] = [cell_label(p, d) for p, d in zip(df.problem, df.weight_density)]
    return df
