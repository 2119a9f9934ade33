"""Tidy result files: versioned schema, incremental appends, provenance, loading.

A result directory holds

``summary.csv``   one row per (problem, backend), columns :data:`SUMMARY_COLUMNS`
``samples.csv``   one row per timed round, columns :data:`SAMPLE_COLUMNS`
``meta.json``     schema version, convbench version, machine, BLAS, threads, libraries,
                  git commit, argv and the sweep configuration (so ``--resume`` can
                  finish a run without the user retyping it)
``tables.md``     rendered by :mod:`convbench.reporting` (with ``report.md``/``.html``)

Rows are appended and flushed as soon as they are measured, so a sweep killed
half-way keeps every finished row. Units live in column names (``_s``, ``_bytes``)
and values are stored in SI; scaling happens only when rendering.

A row is made in one place, :meth:`convbench.cells.CellResult.row`; every count derived
from the problem (``flops_direct``, ``flops_dense``, ``params`` and the parameter-table
counts, ``bytes_io``: :func:`convbench.flops.problem_counts`) is stored in it, so reports only
render. Schema history: v1 lacked ``kind`` (conv or pool), ``alg`` (the pooling algorithm),
``flops_dense``, ``params_fully_connected``, ``params_locally_connected``, ``bytes_io`` and
``gbs_effective``; :func:`load_summary` derives them from the descriptor when reading a v1
directory (every v1 row is a convolution). v2 lacked ``host`` and ``worker`` (where a row was
measured; v3 runs on a Dask cluster); they read as empty. v4 added ``cache`` and the samples'
``threads`` and ``cache``. v5 added the structured columns readers used to parse out of text:
``layer`` (the problem without its direction knob), ``role`` (own, peer, oracle, meta) and
``chosen`` (the backend ``auto`` ran), and the problem's ``rank`` with the depth fields
``id od kd sd pd dd``; they are derived when reading older directories (where every problem
ran as 2-D, 1-D ones with ``ih = kh = 1``).
Other versions are refused with the version named, and a directory written by a newer
convbench is never modified.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import math
import os
from pathlib import Path

from .cells import PHASES

__all__ = ["SCHEMA_VERSION", "READABLE_VERSIONS", "SUMMARY_COLUMNS", "SAMPLE_COLUMNS", "STATUSES", "ResultWriter",
           "primary_variant_of", "load_summary", "load_samples", "load_meta", "write_meta", "new_meta",
           "ResultsError", "ResultsWriteError", "repair_for_resume", "row_key", "RunLock", "LOCK_NAME",
           "check_unlocked", "check_appendable", "run_in_progress", "atomic_path", "write_atomic", "check_writable"]

SCHEMA_VERSION = 5
#: versions this convbench reads (older ones are upgraded on load, see the module docstring)
READABLE_VERSIONS = (1, 2, 3, 4, 5)

#: cell states, as benchdnn names them
STATUSES = ("passed", "skipped", "mistrusted", "failed")

PROBLEM_COLUMNS = ["problem", "descriptor", "name", "layer", "suite", "multiplicity", "kind", "alg", "direction",
                   "dtype", "rank", "mb", "ic", "id", "ih", "iw", "oc", "od", "oh", "ow", "kd", "kh", "kw", "sd", "sh",
                   "sw", "pd", "ph", "pw", "dd", "dh", "dw", "g", "weight_density"]
SUMMARY_COLUMNS = PROBLEM_COLUMNS + [
    "backend", "algorithm", "role", "peer", "chosen", "threads", "cache", "status", "reason", "note",
    "prepare_s", "first_run_s",
    "time_min_s", "time_median_s", "time_mean_s", "time_stddev_s", "time_q1_s", "time_q3_s",
    "time_iqr_s", "rounds", "iterations", "cpu_util",
    "flops_direct", "flops_dense", "flops_executed", "flops_multiply", "gflops_effective",
    "params", "params_fully_connected", "params_locally_connected", "bytes_io", "gbs_effective", "workspace_bytes",
    "max_abs_err", "rel_err", "tolerance",
] + [f"phase_{ph}_s" for ph in PHASES] + ["host", "worker"]

#: columns v2 added; a v1 directory gets them from its descriptors on load
_V2_COUNTS = ("flops_dense", "params_fully_connected", "params_locally_connected", "bytes_io")


SAMPLE_COLUMNS = ["problem", "weight_density", "backend", "round", "iterations", "time_s", "threads", "cache"]

def primary_variant_of(out_dir: Path) -> tuple[int | None, str | None]:
    """The first thread count and cache state of the run in ``out_dir`` (its ``meta.json``);
    ``(None, None)`` where there is no readable ``meta.json`` (the first row decides then)."""
    try:
        cfg = json.loads((Path(out_dir) / "meta.json").read_text()).get("config", {})
    except (OSError, ValueError, AttributeError):
        return None, None
    from .config import primary_variant
    return primary_variant(cfg)


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


class ResultsWriteError(OSError):
    """A result file could not be written (disk full, permissions): the rows written before are
    intact, the failed record was rolled back."""

    def __init__(self, path: Path, err: OSError):
        super().__init__(err.errno, f"cannot write {path}: {err.strerror or err}")
        self.path = Path(path)


def _record(values: list) -> str:
    """One CSV record on one line (newlines inside a field become spaces)."""
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerow([str(v).replace("\r", " ").replace("\n", " ") for v in values])
    return buf.getvalue()


class _AppendFile:
    """A CSV file appended to in whole records: each append is one ``write`` of complete lines,
    flushed and fsynced; a write that fails or comes up short (disk full) is cut back to the
    file's previous size, so the file never ends in a partial record."""

    def __init__(self, path: Path, columns: list[str]):
        self.path, self.columns = path, columns
        new = not path.exists() or path.stat().st_size == 0
        if not new:
            with open(path, newline="") as f:
                header = next(csv.reader(f), [])
            if header != columns:
                raise ResultsError(f"{path}: columns differ from this convbench's schema "
                                   f"v{SCHEMA_VERSION}; use a new --out directory")
        self.fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        if new:
            self.append([_record(columns)])

    def append(self, records: list[str]) -> None:
        data = "".join(records).encode()
        size = os.fstat(self.fd).st_size
        try:
            written = os.write(self.fd, data)
            if written != len(data):
                raise OSError(28, "No space left on device (short write)")
            os.fsync(self.fd)
        except OSError as e:
            try:
                os.ftruncate(self.fd, size)
            except OSError:
                pass
            raise ResultsWriteError(self.path, e) from None

    def close(self) -> None:
        os.close(self.fd)


class ResultWriter:
    """Appends rows to ``summary.csv`` / ``samples.csv`` in ``out_dir``, durably, a whole record
    per write (see :class:`_AppendFile`). The runner writes a cell's samples before its summary
    row, so a summary row on disk implies its rounds are on disk too."""

    def __init__(self, out_dir: Path):
        self.out_dir = Path(out_dir)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.summary_path = self.out_dir / "summary.csv"
        self.samples_path = self.out_dir / "samples.csv"
        self._summary = _AppendFile(self.summary_path, SUMMARY_COLUMNS)
        self._samples = _AppendFile(self.samples_path, SAMPLE_COLUMNS)

    def summary(self, row: dict) -> None:
        unknown = set(row) - set(SUMMARY_COLUMNS)
        if unknown:
            raise KeyError(f"unknown result columns {sorted(unknown)}")
        self._summary.append([_record([_fmt(row.get(c)) for c in SUMMARY_COLUMNS])])

    def samples(self, key: tuple, backend: str, iterations: int, times: list[float]) -> None:
        """The rounds of ``backend`` on a cell (``key``: :attr:`convbench.cells.Cell.key`)."""
        problem, density, threads, cache = key
        self._samples.append([_record([problem, repr(density), backend, i, iterations, f"{float(t):.6g}", threads,
                                       cache]) for i, t in enumerate(times)])

    def close(self) -> None:
        self._summary.close()
        self._samples.close()


def _split_records(path: Path, columns: list[str]) -> tuple[list[str], list[str], list[str]]:
    """``(header line, good record lines, messages)``: a last line cut short (no newline, or
    the wrong number of fields) is dropped with a message; a bad line elsewhere is an error."""
    text = path.read_text() if path.exists() else ""
    if not text:
        return [], [], []
    lines = text.split("\n")
    tail = lines.pop()  # "" when the file ends with a newline
    msgs = []
    if tail:
        msgs.append(f"{path.name}: dropped a partial last line ({len(tail)} bytes, cut mid-record): "
                    f"{tail[:60]!r}")
    header, body = lines[0], lines[1:]
    good = []
    for i, ln in enumerate(body, 2):
        n = len(next(csv.reader([ln]), []))
        if n == len(columns):
            good.append(ln)
        elif i == len(body) + 1:
            msgs.append(f"{path.name}: dropped a partial last line {i} ({n} of {len(columns)} fields)")
        else:
            raise ResultsError(f"{path}:{i}: {n} fields where {len(columns)} are expected; the file is "
                               f"damaged beyond its last line, start a new --out directory")
    return [header], good, msgs


def row_key(get) -> tuple:
    """A row's identity, ``(problem, density, threads, cache, backend)``: a
    :attr:`~convbench.cells.Cell.key` plus the backend. ``get(column)`` reads the row's text."""
    t = get("threads")
    return (get("problem"), float(get("weight_density") or 1.0), int(float(t)) if t else 1, get("cache") or "hot",
            get("backend"))


def repair_for_resume(out_dir: Path, expected: set | None = None) -> tuple[set, list[str]]:
    """Make a result directory safe to append to; returns ``(rows done, messages)``.

    ``expected``: the row keys (:func:`row_key`) the directory's own sweep makes; a row outside
    it means two sweeps were mixed in one directory, and is an error (nothing is rewritten).

    * a partial last line of ``summary.csv`` or ``samples.csv`` (a crash or a full disk) is
      dropped;
    * a measured cell whose rounds are not all in ``samples.csv`` is dropped from the summary,
      and its rounds from the samples, so it is measured again instead of claiming rounds it
      does not have;
    * rounds of cells that have no summary row (written just before a crash) are dropped.

    The files are rewritten atomically (temporary file, then rename) only when something
    changes, and only after every check has passed.
    """
    out_dir = Path(out_dir)
    spath, mpath = out_dir / "summary.csv", out_dir / "samples.csv"
    s_head, s_rows, msgs = _split_records(spath, SUMMARY_COLUMNS)
    m_head, m_rows, m_msgs = _split_records(mpath, SAMPLE_COLUMNS)
    msgs += m_msgs
    if not s_head:
        return set(), msgs
    for path, head, columns in ((spath, s_head, SUMMARY_COLUMNS), (mpath, m_head, SAMPLE_COLUMNS)):
        if head and next(csv.reader(head), []) != columns:
            raise ResultsError(f"{path}: columns differ from this convbench's schema v{SCHEMA_VERSION}; "
                               f"it cannot be resumed, use a new --out directory")
    s_idx = {c: i for i, c in enumerate(SUMMARY_COLUMNS)}
    m_idx = {c: i for i, c in enumerate(SAMPLE_COLUMNS)}
    m_parsed = [next(csv.reader([ln])) for ln in m_rows]
    counts: dict = {}
    for r in m_parsed:
        key = row_key(lambda c: r[m_idx[c]])
        counts[key] = counts.get(key, 0) + 1
    keep_s, done, incomplete = [], set(), set()
    for ln in s_rows:
        r = next(csv.reader([ln]))
        key = row_key(lambda c: r[s_idx[c]])
        if expected is not None and key not in expected:
            raise ResultsError(f"{spath}: holds cells this directory's meta.json does not list (e.g. {key[0]} / "
                               f"{key[4]}): it mixes two sweeps; start a new --out directory")
        rounds = r[s_idx["rounds"]]
        if r[s_idx["status"]] == "passed" and rounds and counts.get(key, 0) < int(float(rounds)):
            incomplete.add(key)
            msgs.append(f"summary.csv: {key[0]} / {key[4]} claims {int(float(rounds))} rounds but samples.csv "
                        f"holds {counts.get(key, 0)}; it will be measured again")
            continue
        keep_s.append(ln)
        done.add(key)
    keep_m = [ln for ln, r in zip(m_rows, m_parsed)
              if row_key(lambda c: r[m_idx[c]]) in done or r[m_idx["backend"]].startswith("_")]
    orphans = len(m_rows) - len(keep_m)
    if orphans and not incomplete:
        msgs.append(f"samples.csv: dropped {orphans} rounds of cells with no summary row (written just before "
                    f"the run stopped)")
    if msgs or orphans:
        for path, head, rows in ((spath, s_head, keep_s), (mpath, m_head or [_record(SAMPLE_COLUMNS).strip()],
                                                          keep_m)):
            tmp = path.with_suffix(".csv.tmp")
            tmp.write_text("\n".join(head + rows) + "\n")
            tmp.replace(path)
    return done, msgs


LOCK_NAME = ".convbench.lock"


def _lock_holder(fd: int) -> str:
    return os.pread(fd, 64, 0).decode(errors="replace").strip() or "?"


def _held_error(out_dir: Path, holder: str) -> ResultsError:
    return ResultsError(f"{out_dir}: another convbench run (pid {holder}) is writing this directory; wait for it "
                        f"to finish or choose another --out (if no such process is alive, the lock is stale: "
                        f"delete {Path(out_dir) / LOCK_NAME})")


def check_unlocked(out_dir: Path) -> None:
    """Raise :class:`ResultsError` when a live run holds ``out_dir``'s lock (nothing is written)."""
    import fcntl
    path = Path(out_dir) / LOCK_NAME
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        raise _held_error(Path(out_dir), _lock_holder(fd)) from None
    finally:
        os.close(fd)


def run_in_progress(out_dir: Path) -> str | None:
    """The pid of the run writing ``out_dir`` right now, or None."""
    try:
        check_unlocked(out_dir)
    except ResultsError as e:
        return str(e).split("(pid ", 1)[1].split(")", 1)[0]
    return None


def check_appendable(out_dir: Path) -> None:
    """Raise :class:`ResultsError` unless every result file of ``out_dir`` has this schema's
    columns, so appending to it can finish it (checked before anything is written)."""
    for name, columns in (("summary.csv", SUMMARY_COLUMNS), ("samples.csv", SAMPLE_COLUMNS)):
        path = Path(out_dir) / name
        if not path.is_file() or path.stat().st_size == 0:
            continue
        try:
            with open(path, newline="") as f:
                header = next(csv.reader(f), [])
        except (OSError, UnicodeDecodeError, csv.Error) as e:
            raise ResultsError(f"{path}: not readable ({e}); it cannot be resumed, use a new --out directory") from None
        if header != columns:
            raise ResultsError(f"{path}: columns differ from this convbench's schema v{SCHEMA_VERSION}; it cannot be "
                               f"resumed, use a new --out directory")


class RunLock:
    """An exclusive lock on a result directory for the life of a run (``.convbench.lock``,
    ``flock``): a second run on the same directory is refused instead of mixing rows.

    The file holds the pid and is removed when the run ends (under the lock; a run that was
    waiting on the removed file tries again on the new one). A lock that cannot be written
    (a full disk, a read-only directory) is refused in one line and leaves nothing behind.
    """

    def __init__(self, out_dir: Path):
        self.path = Path(out_dir) / LOCK_NAME
        self.fd: int | None = None

    def __enter__(self):
        import fcntl
        while True:
            created = not self.path.exists()
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            except OSError as e:
                raise ResultsError(f"{self.path.parent}: cannot write its lock file ({e.strerror}); a read-only or "
                                   f"full directory cannot take a run: copy it elsewhere or free space") from None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = _lock_holder(fd)
                os.close(fd)
                raise _held_error(self.path.parent, holder) from None
            try:
                same = os.fstat(fd).st_ino == os.stat(self.path).st_ino
            except OSError:
                same = False
            if same:
                break
            os.close(fd)  # the run that held it removed the file while we waited: take the new one
        try:
            os.ftruncate(fd, 0)
            if os.pwrite(fd, str(os.getpid()).encode(), 0) == 0:
                raise OSError(28, "No space left on device")
        except OSError as e:
            if created:
                self._remove(fd)
            os.close(fd)
            raise ResultsError(f"{self.path.parent}: cannot write its lock file ({e.strerror}); free space, then "
                               f"run again") from None
        self.fd = fd
        return self

    def _remove(self, fd: int) -> None:
        try:
            if os.fstat(fd).st_ino == os.stat(self.path).st_ino:
                self.path.unlink()
        except OSError:
            pass

    def __exit__(self, *exc):
        if self.fd is not None:
            self._remove(self.fd)
            os.close(self.fd)  # closing releases the lock
            self.fd = None
        return False


@contextlib.contextmanager
def atomic_path(path: Path):
    """A temporary name beside ``path`` to write to; renamed over ``path`` when the block ends
    without an error, removed otherwise. So a failed write (a full disk) never replaces a good
    file with a partial one. An ``OSError`` comes out as :class:`ResultsWriteError`."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        yield tmp
        os.replace(tmp, path)
    except OSError as e:
        raise ResultsWriteError(path, e) from None
    finally:
        try:
            tmp.unlink()
        except OSError:
            pass


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` whole or not at all (see :func:`atomic_path`)."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def check_writable(out_dir: Path) -> None:
    """Raise :class:`ResultsWriteError` when ``out_dir`` takes no new file (read-only, full)."""
    write_atomic(Path(out_dir) / ".convbench-write-test", "")
    try:
        (Path(out_dir) / ".convbench-write-test").unlink()
    except OSError:
        pass


def write_meta(out_dir: Path, meta: dict) -> None:
    write_atomic(Path(out_dir) / "meta.json", json.dumps(meta, indent=2, sort_keys=True, default=str))


def new_meta(*, argv: list[str], config, coretype: dict) -> dict:
    """The ``meta.json`` record of a new run: schema and convbench version, start time,
    argv, the sweep configuration as it is (:meth:`~convbench.config.SweepConfig.to_record`,
    what ``--resume`` reads back), machine, commit, BLAS kernel set, thread report, FFTW
    wisdom and build, and the measured roofline peaks."""
    import time

    from . import __version__, threads
    from .blas import autodetected_coretype
    from .machine import fftw_build, git_commit, machine_info, roofline_peaks
    meta = {"tool": "convbench", "schema_version": SCHEMA_VERSION, "convbench_version": __version__,
            "started": time.strftime("%Y-%m-%dT%H:%M:%S"), "argv": list(argv),
            "config": config.to_record(), "machine": machine_info(), "git": git_commit(),
            "blas_coretype": coretype, "blas_autodetected": autodetected_coretype(),
            "threads": threads.thread_report(), "peaks": roofline_peaks()}
    from .backends import uses_fftw
    if any(uses_fftw(b) for b in config.backends):
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


_TEXT_COLUMNS = ("problem", "descriptor", "name", "layer", "suite", "kind", "alg", "direction", "dtype", "backend",
                 "algorithm", "role", "chosen", "status", "reason", "note", "host", "worker", "cache")


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
        elif c not in _TEXT_COLUMNS and c != "peer" and not pd.api.types.is_numeric_dtype(df[c]):
            num = pd.to_numeric(df[c], errors="coerce")
            bad = num.isna() & df[c].notna() & (df[c].astype(str).str.strip() != "")
            if bad.any():
                i = int(bad.idxmax())
                raise ResultsError(f"{path}:{i + 2}: column {c!r} holds {df[c].iloc[i]!r}, not a number")
            df[c] = num
    return df


def _upgrade_v1(df):
    """Derive the v2 count columns of a v1 summary from its descriptors (problem columns only)."""
    from .flops import problem_counts
    from .problem import parse_problem
    df["kind"] = df["kind"].replace("", "conv").fillna("conv")
    if not df[list(_V2_COUNTS)].isna().all().all():
        return df
    cache: dict = {}
    for i, label in enumerate(df.problem):
        if label not in cache:  # the label is a descriptor with benchdnn's --dir/--dt knobs
            try:
                cache[label] = problem_counts(parse_problem(label))
            except (ValueError, TypeError):
                cache[label] = {}
        for k in _V2_COUNTS:
            if k in cache[label]:
                df.iat[i, df.columns.get_loc(k)] = cache[label][k]
    return df


def _upgrade_v4(df):
    """Derive the v5 columns of an older summary: ``layer`` (the label without its ``--dir=``
    knob), ``role`` (the ``peer`` flag, else the registry's role of the backend name) and
    ``chosen`` (from the note ``auto chose NAME`` that ``auto`` rows carried before v5)."""
    import re
    if df["layer"].eq("").all() or df["layer"].isna().all():
        df["layer"] = [re.sub(r"--dir=\w+\s+", "", str(p)) for p in df.problem]
    if df["role"].eq("").all() or df["role"].isna().all():
        from .backends import backend_role
        peer = df["peer"].astype(str).str.strip().str.lower().isin(["true", "1", "1.0"])
        df["role"] = ["peer" if pr else ("" if b == "*" else backend_role(b)) for pr, b in zip(peer, df.backend)]
    if df["chosen"].eq("").all() or df["chosen"].isna().all():
        df["chosen"] = [m.group(1) if (m := re.search(r"auto chose (\w+)", str(n))) else "" for n in df.note]
    if df["rank"].isna().all():  # before ranks every problem ran as 2-D (1-D ones with ih = kh = 1)
        for f, v in (("rank", 2), ("id", 1), ("od", 1), ("kd", 1), ("sd", 1), ("pd", 0), ("dd", 0)):
            df[f] = v
    return df


def load_summary(out_dir: Path):
    """``summary.csv`` as a DataFrame (raises :class:`ResultsError` when unreadable).

    Rows of older schemas gain the columns they lack (see the module docstring); every row
    gains ``variant`` (:func:`~convbench.cells.variant_tag`: "" for the run's own thread count
    and cache state) and ``cell`` (its :func:`~convbench.cells.cell_label`)."""
    df = _read_csv(Path(out_dir) / "summary.csv", SUMMARY_COLUMNS)
    for c in ("reason", "note", "name", "suite", "host", "worker", "layer", "role", "chosen"):
        df[c] = df[c].fillna("").astype(str)
    if df["descriptor"].isna().all() or df["descriptor"].eq("").all():
        df["descriptor"] = df["problem"]
    df = _upgrade_v4(_upgrade_v1(df))
    df["multiplicity"] = df["multiplicity"].fillna(1).astype(int)
    df["weight_density"] = df["weight_density"].fillna(1.0)
    _variants(df, out_dir)
    return df


def _variants(df, out_dir: Path) -> None:
    """Add ``cache`` (hot where not recorded), ``variant`` and ``cell`` to a loaded table."""
    from .cells import cell_label, variant_tag
    primary, pcache = primary_variant_of(out_dir)
    df["cache"] = df["cache"].replace("", "hot").fillna("hot")
    if pcache is None:  # no meta.json: the first row is the run's own variant
        pcache = str(df["cache"].iloc[0]) if len(df) else "hot"
        if "threads" in df.columns and df["threads"].notna().any():
            primary = int(df["threads"].dropna().iloc[0])
    th = df["threads"] if "threads" in df.columns else [None] * len(df)
    df["variant"] = [variant_tag(t, c, primary, pcache) for t, c in zip(th, df.cache)]
    df["cell"] = [cell_label(p, d, v) for p, d, v in zip(df.problem, df.weight_density, df.variant)]


def load_samples(out_dir: Path):
    """``samples.csv`` as a DataFrame (with the ``cell`` label of :func:`load_summary`)."""
    df = _read_csv(Path(out_dir) / "samples.csv", SAMPLE_COLUMNS)
    _variants(df, out_dir)
    return df
