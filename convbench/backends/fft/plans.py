"""FFTW plans for the FFT backends: planner effort, wisdom on disk, a byte-bounded plan cache.

A plan is built once and run many times (pyFFTW's builders); the cache key holds
everything that changes a plan (batch, dtype, sizes, channel layout, pruned rows, planner
effort, threads, whether wisdom is in use). FFTW wisdom is process-wide state inside FFTW
itself; :data:`WISDOM` loads it from ``~/.cache/convbench/fftw_wisdom.pkl`` once, and after
planning merges what this process learnt into that file under a lock, so concurrent runs
add to each other's wisdom instead of the last writer's file replacing the others'.
"""

from __future__ import annotations

import atexit
import fcntl
import os
import pickle
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

try:
    import pyfftw
except ImportError:  # pragma: no cover - reported by the backend's unavailable_reason
    pyfftw = None

__all__ = ["EFFORTS", "normalise_effort", "WISDOM", "Wisdom", "pyfftw_plans", "spectra", "view", "pad_to",
           "PLAN_CACHE_STATS", "clear_plan_cache", "Transforms", "cache_dir"]

EFFORTS = ("FFTW_ESTIMATE", "FFTW_MEASURE", "FFTW_PATIENT", "FFTW_EXHAUSTIVE")


def normalise_effort(effort: str) -> str:
    """``measure``, ``FFTW_MEASURE``, ... as FFTW's flag name; ValueError listing the accepted ones."""
    e = str(effort).upper()
    if not e.startswith("FFTW_"):
        e = "FFTW_" + e
    if e not in EFFORTS:
        raise ValueError(f"FFTW planner effort {effort!r}: accepted are "
                         f"{', '.join(x[5:].lower() for x in EFFORTS)}")
    return e


def cache_dir() -> Path:
    """convbench's cache directory (``CONVBENCH_CACHE_DIR``, else ``$XDG_CACHE_HOME/convbench``)."""
    base = os.environ.get("CONVBENCH_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "convbench")
    return Path(base)


class Wisdom:
    """FFTW's accumulated wisdom and the file it persists in.

    ``use(True)`` (the default state) loads the file once; ``use(False)`` forgets all wisdom
    and neither reads nor writes the file, so a run's plans come from its own planner effort
    alone. FFTW reuses wisdom of a higher effort for a lower-effort request, so after one
    ``--fftw-effort patient`` run later ``measure`` runs on the machine get the patient plans.
    """

    def __init__(self):
        self.enabled = True
        self.loaded_from: str | None = None
        self.loaded_bytes = 0
        self._loaded = False
        self._saved = None  # the wisdom as last loaded or saved: nothing new, nothing to write
        self._dirty = False
        self._last_save = 0.0

    @property
    def path(self) -> Path:
        return cache_dir() / "fftw_wisdom.pkl"

    def use(self, enabled: bool) -> None:
        if pyfftw is None:
            return
        if not enabled:
            if self.enabled or self._loaded:
                pyfftw.forget_wisdom()
                clear_plan_cache()
            self.enabled, self._loaded, self.loaded_from, self.loaded_bytes = False, False, None, 0
            self._saved = None
            return
        if not self.enabled:
            clear_plan_cache()
            self._last_save = 0.0  # back on: the next plans' wisdom is saved at once
        self.enabled = True
        self.load()

    def load(self) -> None:
        """Import the wisdom file once per process (a missing or corrupt file is ignored)."""
        if pyfftw is None or not self.enabled or self._loaded:
            return
        self._loaded = True
        try:
            path = self.path
            with open(path, "rb") as f:
                pyfftw.import_wisdom(pickle.load(f))
            self.loaded_from, self.loaded_bytes = str(path), path.stat().st_size
            self._saved = pyfftw.export_wisdom()
        except (OSError, ValueError, EOFError, pickle.UnpicklingError, TypeError, AttributeError):
            pass

    #: seconds between two saves of newly planned wisdom (the rest is saved at exit)
    SAVE_EVERY_S = 20.0

    def planned(self) -> None:
        """Plans were just built: their wisdom is saved now if the last save is older than
        :attr:`SAVE_EVERY_S`, else at the next such call or when the process exits (a killed
        process loses only planning time of its next run)."""
        self._dirty = True
        if time.monotonic() - self._last_save >= self.SAVE_EVERY_S:
            self.save()

    def flush(self) -> None:
        """Save wisdom planned since the last save (registered to run at exit)."""
        if self._dirty:
            self.save()

    def save(self) -> None:
        """Merge this process's wisdom into the file: under an exclusive lock, import what the
        file holds now (another process may have added to it), export the union, replace the
        file atomically. Only when planning added wisdom since the last load or save: plans
        built from wisdom add none, and merging a 1 MB file on every plan cost 8.6 s of a
        default sweep (296 saves, measured with cProfile)."""
        if pyfftw is None or not self.enabled:
            return
        self._dirty, self._last_save = False, time.monotonic()
        if pyfftw.export_wisdom() == self._saved:
            return
        path = self.path
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with open(path.with_suffix(".lock"), "a") as lock:
                fcntl.flock(lock, fcntl.LOCK_EX)
                try:
                    with open(path, "rb") as f:
                        pyfftw.import_wisdom(pickle.load(f))
                except (OSError, ValueError, EOFError, pickle.UnpicklingError, TypeError, AttributeError):
                    pass
                tmp = path.with_suffix(f".{os.getpid()}.tmp")
                merged = pyfftw.export_wisdom()
                with open(tmp, "wb") as f:
                    pickle.dump(merged, f)
                tmp.replace(path)
                self._saved = merged
        except OSError:
            pass  # a read-only cache costs planning time next run, nothing else

    def state(self) -> dict:
        """For meta.json: whether wisdom is in use and which file (and how many bytes) was loaded."""
        return {"enabled": self.enabled, "loaded_from": self.loaded_from, "loaded_bytes": self.loaded_bytes}


WISDOM = Wisdom()
atexit.register(WISDOM.flush)


def view(a: np.ndarray, shape: tuple) -> np.ndarray:
    """``a`` reshaped without copying (raises if the strides do not allow it): the plan's
    stages write through these views into FFTW's own arrays."""
    v = a.view()
    v.shape = shape
    return v


def pad_to(n: int, m: int) -> int:
    return -(-n // m) * m


def spectra(B: int, nh: int, nwh: int, g: int, icg: int, ocg: int, cdt, alloc) -> dict:
    """Spectra arrays in the layout the multiply wants, plus ``(B, g, c, nh, nwh)`` views of
    them for the transforms.

    Several input channels per group: frequency-major ``(nh, nwh, g, B, c)``, so that at each
    frequency the channel reduction is a contiguous ``(B x icg) @ (icg x ocg)`` GEMM. One
    input channel per group: the multiply is element-wise, and the natural tile-major layout
    keeps the transforms' writes contiguous (frequency-major writes with stride B made small
    overlap-save tiles 3x slower, measured on 1024^2 with a 15x15 kernel).
    """
    if icg > 1:
        X = alloc((nh, nwh, g, B, icg), cdt)
        Y = alloc((nh, nwh, g, B, ocg), cdt)
        return dict(X=X, Y=Y, Xs=X.transpose(3, 2, 4, 0, 1), Ys=Y.transpose(3, 2, 4, 0, 1))
    X = alloc((B, g, 1, nh, nwh), cdt)
    Y = alloc((B, g, ocg, nh, nwh), cdt)
    return dict(X=X, Y=Y, Xs=X, Ys=Y)


#: cached plans hold their arrays, so the cache is bounded by bytes, least recent evicted
PLAN_CACHE_BYTES = 512 << 20
_PLAN_CACHE: "OrderedDict[tuple, Transforms]" = OrderedDict()
PLAN_CACHE_STATS = {"hits": 0, "misses": 0}


def clear_plan_cache() -> None:
    _PLAN_CACHE.clear()


@dataclass
class Transforms:
    """The arrays one FFT plan works in, and (pyFFTW) the FFTW plans between them.

    ``P``: transform input (tile patches or the padded image); ``R``: inverse output;
    ``X``/``Y``: input/output spectra in the multiply's layout, ``Xs``/``Ys`` the same
    memory as ``(B, g, c, nh, nwh)`` views for the transforms (see :func:`spectra`);
    ``fwd``/``inv``: pyFFTW plans run in order; ``Xr``: row-pass spectra (scipy engine,
    pruned passes). ``nbytes``: memory held, for the plan cache's bound.
    """

    P: np.ndarray
    R: np.ndarray
    X: np.ndarray
    Y: np.ndarray
    Xs: np.ndarray
    Ys: np.ndarray
    fwd: list = field(default_factory=list)
    inv: list = field(default_factory=list)
    Xr: np.ndarray | None = None
    nbytes: int = 0


def pyfftw_plans(*key) -> Transforms:
    """:func:`_build_pyfftw_plans` through a byte-bounded LRU cache keyed by all its arguments."""
    if key in _PLAN_CACHE:
        _PLAN_CACHE.move_to_end(key)
        PLAN_CACHE_STATS["hits"] += 1
        return _PLAN_CACHE[key]
    PLAN_CACHE_STATS["misses"] += 1
    plans = _build_pyfftw_plans(*key)
    _PLAN_CACHE[key] = plans
    total = sum(e.nbytes for e in _PLAN_CACHE.values())
    while total > PLAN_CACHE_BYTES and len(_PLAN_CACHE) > 1:
        _, old = _PLAN_CACHE.popitem(last=False)
        total -= old.nbytes
    return plans


def _build_pyfftw_plans(B: int, dtype: str, nh: int, nw: int, g: int, icg: int, ocg: int, in_rows: tuple,
                        out_rows: int, effort: str, nthreads: int) -> Transforms:
    """Cached FFTW plans and their arrays for one geometry (everything that changes a plan
    is in the key).

    When some input rows are known to be zero or some output rows are not kept (a whole
    padded image), each 2-D transform runs as two passes that skip those rows (a pruned
    2-D FFT):

    forward  ``P[..., r0:r1, :]`` --r2c rows--> ``Xr`` --c2c columns--> ``X`` (in the multiply's
             layout, see :func:`spectra`, written through a strided view)
    inverse  ``Y`` --c2c columns--> ``Yr`` --c2r rows ``[:out_rows]``--> ``R``

    Otherwise (overlap-save tiles) each way is one batched 2-D plan, ``P -> X`` and ``Y -> R``.
    """
    nwh = nw // 2 + 1
    cdt = np.complex64 if dtype == "float32" else np.complex128
    r0, r1 = in_rows
    # rows padded to whole 64-byte lines: a pass that starts at row r0 must start aligned,
    # or FFTW falls back to unaligned codelets (measured 3x slower on 288x288)
    wr = pad_to(nw, 64 // np.dtype(dtype).itemsize)
    wc = pad_to(nwh, 64 // np.dtype(cdt).itemsize)
    P = pyfftw.zeros_aligned((B, g, icg, nh, wr), dtype=dtype)[..., :nw]
    spec = spectra(B, nh, nwh, g, icg, ocg, cdt, lambda shape, dt: pyfftw.empty_aligned(shape, dtype=dt))
    unpruned = (r0, r1) == (0, nh) and out_rows == nh
    # buffers shared as geometry.aliasing says (tiles are exactly the unpruned transforms)
    R = P if unpruned and icg == ocg else pyfftw.empty_aligned((B, g, ocg, nh, wr), dtype=dtype)[..., :nw]
    if icg == ocg == 1:
        spec.update(Y=spec["X"], Ys=spec["Xs"])
    bufs = list({id(a): a for a in (P, R, spec["X"], spec["Y"])}.values())
    kw = dict(flags=(effort,), threads=nthreads)
    kw_destroy = dict(flags=(effort, "FFTW_DESTROY_INPUT"), threads=nthreads)
    if unpruned:  # nothing to prune
        fwd = [pyfftw.FFTW(P, spec["Xs"], axes=(-2, -1), direction="FFTW_FORWARD", **kw)]
        inv = [pyfftw.FFTW(spec["Ys"], R, axes=(-2, -1), direction="FFTW_BACKWARD", normalise_idft=False,
                           **kw_destroy)]
    else:
        Xr = pyfftw.zeros_aligned((B, g, icg, nh, wc), dtype=cdt)[..., :nwh]
        Yr = pyfftw.empty_aligned((B, g, ocg, nh, wc), dtype=cdt)[..., :nwh]
        bufs += [Xr, Yr]
        fwd = [pyfftw.FFTW(P[..., r0:r1, :], Xr[..., r0:r1, :], axes=(-1,), direction="FFTW_FORWARD", **kw),
               pyfftw.FFTW(Xr, spec["Xs"], axes=(-2,), direction="FFTW_FORWARD", **kw)]
        inv = [pyfftw.FFTW(spec["Ys"], Yr, axes=(-2,), direction="FFTW_BACKWARD", normalise_idft=False, **kw),
               pyfftw.FFTW(Yr[..., :out_rows, :], R[..., :out_rows, :], axes=(-1,), direction="FFTW_BACKWARD",
                           normalise_idft=False, **kw_destroy)]
        Xr[...] = 0  # rows outside [r0, r1) are never written and must read as zero
    P[...] = 0   # planning with MEASURE scribbles on the arrays; the zero rows must be zero
    WISDOM.planned()
    return Transforms(P=P, R=R, fwd=fwd, inv=inv, nbytes=sum(a.base.nbytes if a.base is not None else a.nbytes
                                                             for a in bufs), **spec)
