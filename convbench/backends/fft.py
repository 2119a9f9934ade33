"""``fft_pyfftw`` and ``fft_scipy``: convolution by the convolution theorem.

Cross-correlation with a kernel ``w`` is a pointwise product in the frequency domain,
``y = IFFT(FFT(x) * conj(FFT(w)))`` (circular, of size ``N``); with ``N >= T + ext - 1``
the first ``T`` outputs of each axis have no wrap-around and equal the valid
correlation. Per problem (Mathieu et al., 2014, for the multi-channel form):

1. **weight spectra** ``conj(rfft2(w))`` for every (out, in) channel pair, computed
   once in ``prepare`` with the ``1/N`` inverse normalisation folded in;
2. **input transform**: each input channel of each tile (or of the whole image) once,
   real-to-complex;
3. **multiply**: at every frequency, ``Y (tiles x oc/g) = X (tiles x ic/g) @ W (ic/g x oc/g)``,
   a batched complex GEMM (BLAS ``cgemm`` per frequency through ``numpy.matmul``); a
   single input channel per group makes it an element-wise product (and the spectra keep
   the tile-major layout, see :func:`_spectra`);
4. **output transform**: each output channel of each tile once, complex-to-real, then the
   valid part of every tile is placed, subsampled for stride.

Transform sizes are fast lengths (products of 2, 3, 5, 7), not blind powers of two.
Overlap-save tiling: when the image is much larger than the kernel, the output is cut
into tiles of ``T = N - ext + 1`` and each tile's ``N x N`` input patch is transformed
separately. ``N`` per axis is chosen by a cost model (arithmetic plus memory traffic,
below) among fast lengths from ``2 * ext`` to the whole padded image, subject to the
backend's memory limit. Dilation dilates the kernel (zeros between taps); stride
computes the stride-1 result and subsamples it; groups split the GEMM.

``fft_pyfftw`` builds FFTW plans in ``prepare`` (planner effort configurable, default
``FFTW_MEASURE``, see :func:`set_planner_effort`). FFTW writes the spectra straight
into the layout the GEMM wants (frequency-major, via strided output arrays) and reads
the product back the same way. Plans are cached by everything that changes them
(shapes, strides, dtype, axes, direction, effort, threads), and FFTW wisdom is saved
to disk and reloaded, so later runs plan in milliseconds. ``fft_scipy`` runs the same
algorithm on ``scipy.fft`` (``workers=`` threads), which returns new arrays in its own
layout, so the spectra are copied into place: the difference between the two rows is
what pyFFTW buys. It is also the FFT backend that works without pyFFTW.
"""

from __future__ import annotations

import ctypes
import math
import os
import pickle
import time
from dataclasses import dataclass
from collections import OrderedDict
from functools import lru_cache
from pathlib import Path

import numpy as np
from numpy.lib.stride_tricks import as_strided

from .. import threads as _threads
from ..problem import ConvProblem
from .base import Backend, Capabilities, Plan, best_times, default_memory_limit, stable_choice

try:
    import scipy.fft as sfft
except ImportError:  # pragma: no cover
    sfft = None
try:
    import pyfftw
except ImportError:  # pragma: no cover - reported by unavailable_reason
    pyfftw = None

__all__ = ["FFTPyFFTW", "FFTScipy", "set_planner_effort", "set_wisdom", "wisdom_state", "fftw_build", "fft_geometry",
           "FFTGeometry", "EFFORTS"]

EFFORTS = ("FFTW_ESTIMATE", "FFTW_MEASURE", "FFTW_PATIENT", "FFTW_EXHAUSTIVE")
_EFFORT = "FFTW_MEASURE"

#: flops charged per byte moved in the cost model: roughly one core's GEMM speed over its
#: memory bandwidth here (~200 GFLOP/s / ~40 GB/s); it makes the model prefer tiles whose
#: spectra stay small when the arithmetic is otherwise equal
FLOPS_PER_BYTE = 5.0


def set_planner_effort(effort: str) -> None:
    """FFTW planner effort for plans built from now on (``ESTIMATE``, ``MEASURE``, ...)."""
    global _EFFORT
    e = effort.upper()
    if not e.startswith("FFTW_"):
        e = "FFTW_" + e
    if e not in EFFORTS:
        raise ValueError(f"FFTW planner effort {effort!r}: accepted are "
                         f"{', '.join(x[5:].lower() for x in EFFORTS)}")
    _EFFORT = e


def get_planner_effort() -> str:
    return _EFFORT


# ---------------------------------------------------------------------------- wisdom
def _wisdom_path() -> Path:
    base = os.environ.get("CONVBENCH_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "convbench")
    return Path(base) / "fftw_wisdom.pkl"


_WISDOM = {"enabled": True, "loaded_from": None, "loaded_bytes": 0}


def _load_wisdom() -> None:
    try:
        path = _wisdom_path()
        with open(path, "rb") as f:
            pyfftw.import_wisdom(pickle.load(f))
        _WISDOM.update(loaded_from=str(path), loaded_bytes=path.stat().st_size)
    except (OSError, ValueError, EOFError, pickle.UnpicklingError, TypeError):
        pass


def set_wisdom(enabled: bool) -> None:
    """Use the FFTW wisdom file (default) or plan from scratch in this process.

    FFTW reuses wisdom of a higher effort for a lower-effort request, so after one
    ``--fftw-effort patient`` run, later ``measure`` runs on the machine get the patient
    plans: faster, but dependent on the cache's history. ``False`` forgets all wisdom and
    neither reads nor writes the file, so a run's plans come from its own effort alone.
    """
    if pyfftw is None:
        return
    if not enabled:
        pyfftw.forget_wisdom()
        _PLAN_CACHE.clear()
        _WISDOM.update(enabled=False, loaded_from=None, loaded_bytes=0)
    elif not _WISDOM["enabled"]:
        _WISDOM["enabled"] = True
        _PLAN_CACHE.clear()
        _load_wisdom()


def wisdom_state() -> dict:
    """Whether wisdom is in use and which file (and how many bytes of it) was loaded."""
    return dict(_WISDOM)


def _save_wisdom() -> None:
    if not _WISDOM["enabled"]:
        return
    path = _wisdom_path()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        with open(tmp, "wb") as f:
            pickle.dump(pyfftw.export_wisdom(), f)
        tmp.replace(path)
    except OSError:
        pass


if pyfftw is not None:
    _load_wisdom()


#: FFTW's SIMD codelet sets, as its version string names them, and the CPU flag each needs
_FFTW_SIMD = {"sse2": "sse2", "avx": "avx", "avx2": "avx2", "avx512": "avx512f"}


@lru_cache(maxsize=1)
def fftw_build() -> dict | None:
    """The single-precision FFTW library pyFFTW loaded: its own version string (which
    names the SIMD codelet sets compiled in, e.g. ``fftw-3.3.5-sse2-avx``), path, and
    the sets this CPU could run but the build lacks.

    FFT speed here is bounded by those codelets: the pyFFTW wheels bundle an SSE2/AVX
    build, so on an AVX-512 CPU the transforms run 256-bit without FMA while oneDNN's JIT
    uses the whole width (an FFTW 3.3.10 built here with AVX2/AVX-512 codelets ran the
    same 2-D transform pairs 5-17% faster, measured). None without pyFFTW or off Linux.
    """
    if pyfftw is None:
        return None
    try:
        with open("/proc/self/maps") as f:
            paths = sorted({line.split()[-1] for line in f if "libfftw3f" in line
                            and not any(t in line for t in ("_omp", "_threads"))})
        for path in paths:
            version = (ctypes.c_char * 128).in_dll(ctypes.CDLL(path), "fftwf_version").value.decode()
            from ..blas import cpu_flags
            flags, built = cpu_flags(), set(version.split("-")[2:])
            missing = [k for k, flag in _FFTW_SIMD.items() if flag in flags and k not in built]
            return {"version": version, "path": path, "simd_missing": missing}
    except (OSError, ValueError, UnicodeDecodeError):
        pass
    return None


# ---------------------------------------------------------------------------- geometry
def fast_len(n: int) -> int:
    """Smallest 7-smooth length >= n (FFTW and pocketfft are fast on 2^a 3^b 5^c 7^d)."""
    m = max(1, n)
    while True:
        k = m
        for f in (2, 3, 5, 7):
            while k % f == 0:
                k //= f
        if k == 1:
            return m
        m += 1


def _factor_counts(n: int) -> dict:
    out = {}
    for f in (2, 3, 5, 7):
        while n % f == 0:
            out[f] = out.get(f, 0) + 1
            n //= f
    return out


def length_efficiency(n: int) -> float:
    """Relative speed of FFT length ``n`` for the cost model (1.0 for powers of two).

    Fitted to FFTW float32 2-D real transforms measured on this project's machine
    (GFLOP/s relative to 256x256): 288 (2^5 3^2) 0.94, 320 0.91, 300 0.87, 280 0.78,
    270 (2 3^3 5) 0.61, 294 (2 3 7^2) 0.58. Factors of 3, 5, 7 cost a little each, and a
    length with hardly any factor of 2 costs more.
    """
    c = _factor_counts(n)
    e = 0.93 ** c.get(3, 0) * 0.9 ** c.get(5, 0) * 0.8 ** c.get(7, 0)
    return e * (0.85 if c.get(2, 0) <= 1 else 1.0)


def _lg(n: int) -> float:
    return math.log2(n) if n > 1 else 0.0


def fft_flops(nh: int, nw: int, rows: int | None = None) -> float:
    """One real 2-D transform done as the code does it: real transforms of length ``nw``
    on ``rows`` rows (default all ``nh``) and complex transforms of length ``nh`` on the
    ``nw//2 + 1`` columns, counted with the conventional ``2.5 n log2 n`` (real) and
    ``5 n log2 n`` (complex) of benchFFT. With all rows this is ``2.5 N log2 N`` for
    ``N = nh*nw`` plus the one extra column pass a real transform needs (``nw//2 + 1``
    complex columns rather than ``nw/2``)."""
    rows = nh if rows is None else rows
    return rows * 2.5 * nw * _lg(nw) + (nw // 2 + 1) * 5 * nh * _lg(nh)


@dataclass(frozen=True)
class FFTGeometry:
    """Transform size, tiles and cost of one choice of ``(Nh, Nw)``.

    ``by_row``: overlap-save tiles go through transform, multiply and inverse a part of one
    tile row at a time (``tw / split`` tiles of one image, sized to :data:`PASS_BYTES`), so a
    pass's patches and spectra stay in cache (rather than all ``mb*th*tw`` tiles per
    stage); ``prepare`` times both.
    """

    nh: int
    nw: int
    th: int   # tiles along h
    tw: int
    Th: int   # valid stride-1 outputs per tile along h
    Tw: int
    hbuf: int  # rows of the padded input the tiles cover
    wbuf: int
    flops: float
    multiply_flops: float
    transform_flops: float
    workspace_bytes: int
    model_cost: float  # flops with transforms weighted by length efficiency
    by_row: bool = False
    split: int = 1  # by_row: each tile row is done in this many equal passes

    @property
    def per_pass(self) -> int:
        """Tiles held at once: a part of one tile row (``by_row``) or all of them."""
        return self.tw // self.split if self.by_row else self.th * self.tw

    @property
    def tiles(self) -> int:
        return self.th * self.tw

    @property
    def nwh(self) -> int:
        return self.nw // 2 + 1

    @property
    def label(self) -> str:
        return (f"{self.nh}x{self.nw}" + (f"/{self.tiles}t" if self.tiles > 1 else "")
                + (("/row" if self.split == 1 else f"/row{self.split}") if self.by_row else ""))


def _batch(p: ConvProblem, geo: FFTGeometry) -> int:
    """Transforms per FFTW call (the plans' batch size)."""
    return geo.per_pass if geo.by_row else p.mb * geo.tiles


@lru_cache(maxsize=None)
def _axis_candidates(ext: int, extent: int) -> tuple[int, ...]:
    """Lengths to try along one axis: 7-smooth lengths of the form 2^a 3^b (5 or 7)^(0|1)
    from about 2*ext up to 1.25x the whole padded axis (a slightly longer but smoother
    length is often faster than the shortest one)."""
    lo, hi = max(2 * ext, ext + 1), max(fast_len(extent), int(1.25 * extent))
    out = set()
    for extra in (1, 5, 7):
        a = extra
        while a <= hi:
            b = a
            while b <= hi:
                if b >= lo:
                    out.add(b)
                b *= 3
            a *= 2
    out.add(fast_len(extent))
    return tuple(sorted(n for n in out if n >= min(lo, fast_len(extent))))


#: bytes one pass of overlap-save tiles may hold (patches plus spectra) when tiles run by
#: row: about half of a core's L2 on current x86 (1 MiB here), so a pass stays in cache
PASS_BYTES = 512 << 10


def _aliasing(p: ConvProblem, tiled: bool) -> tuple[bool, bool]:
    """Which buffers the pyFFTW plans share: ``(inverse output over the patches, product over
    the input spectra)``. Tile patches are rewritten before every forward transform, so with
    as many channels out as in the inverse can write over them; with one channel in and one
    out per group the element-wise product can overwrite the input spectra (the forward
    transform rewrites them every call). Half the working set, so more of a pass stays in
    cache (1024^2, 15x15, 72 tiles of 128x144, same process: all tiles at once 6.6 -> 5.7 ms,
    a tile row per pass 4.5 -> 4.4 ms, measured)."""
    return tiled and p.icg == p.ocg, p.icg == p.ocg == 1


def _tile_bytes(p: ConvProblem, nh: int, nw: int, tiled: bool) -> int:
    """Patches, spectra and inverse output of one tile (all its channels), shared buffers
    counted once (see :func:`_aliasing`)."""
    out_over_in, in_place = _aliasing(p, tiled)
    real = nh * nw * p.itemsize
    spec = nh * (nw // 2 + 1) * 2 * p.itemsize
    return (p.ic * real + (0 if out_over_in else p.oc * real)
            + p.ic * spec + (0 if in_place else p.oc * spec))


def _split(tw: int, tile_bytes: int) -> int:
    """Passes per tile row: the fewest whose equal parts fit :data:`PASS_BYTES` (one tile
    per pass when even one does not fit)."""
    for parts in range(1, tw + 1):
        if tw % parts == 0 and (tw // parts) * tile_bytes <= PASS_BYTES:
            return parts
    return tw


def _geometry(p: ConvProblem, nh: int, nw: int, by_row: bool = False, split: int | None = None) -> FFTGeometry:
    """Tiles, cost and workspace of transform size ``(nh, nw)``; ``by_row`` runs the tiles a
    part of a tile row at a time, ``split`` parts per row (default: see :func:`_split`)."""
    H1 = p.hp - p.ext_h + 1   # stride-1 valid outputs
    W1 = p.wp - p.ext_w + 1
    Th, Tw = nh - p.ext_h + 1, nw - p.ext_w + 1
    th, tw = -(-H1 // Th), -(-W1 // Tw)
    tiled = th * tw > 1
    by_row = by_row and tiled
    per_tile = _tile_bytes(p, nh, nw, tiled)
    if not by_row:
        split = 1
    elif split is None or tw % split:
        split = _split(tw, per_tile)
    B = p.mb * th * tw
    Bc = tw // split if by_row else B  # tiles held at once
    F = nh * (nw // 2 + 1)
    cplx = 2 * p.itemsize
    # pruned passes: only rows that can hold input are transformed forward, only rows
    # that are kept are transformed back (see _rows)
    (r0, r1), orows = _rows(p, nh, tiled)
    transform = B * (p.ic * fft_flops(nh, nw, r1 - r0) + p.oc * fft_flops(nh, nw, orows))
    speed = math.sqrt(length_efficiency(nh) * length_efficiency(nw))
    if p.icg == 1:
        mult = 6.0 * F * B * p.oc   # complex multiply, no accumulation
    else:
        mult = 8.0 * F * B * p.oc * p.icg  # complex multiply-add
    ws = (Bc * per_tile                             # patches, spectra, inverse output
          + F * p.oc * p.icg * cplx                 # weight spectra
          + (p.mb * p.ic * ((th - 1) * Th + nh) * ((tw - 1) * Tw + nw) * p.itemsize if tiled else 0))
    return FFTGeometry(nh, nw, th, tw, Th, Tw, (th - 1) * Th + nh, (tw - 1) * Tw + nw,
                       transform + mult, mult, transform, int(ws), transform / speed + mult, by_row, split)


def _rows(p: ConvProblem, nh: int, tiled: bool) -> tuple[tuple[int, int], int]:
    """Rows of a transform input that can be nonzero, and rows of its output that are computed.

    Whole image: input rows outside ``[ph, ph + read_h)`` are padding (zero), and only the
    first ``(oh-1)*sh + 1`` output rows are used, so the row passes skip the others (a
    pruned 2-D FFT). Tiles: every input row holds data and the few output rows a tile
    drops do not pay for a second pass, so each tile is one native 2-D transform (batched
    2-D plans ran 20-30% faster than two pruned passes on 72 tiles of 128x144, measured).
    """
    if tiled:
        return (0, nh), nh
    return (p.ph, p.ph + p.read_h), (p.oh - 1) * p.sh + 1


def ranked_geometries(p: ConvProblem, memory_limit: int | None = None) -> list[FFTGeometry]:
    """Every candidate ``(Nh, Nw)`` within ``memory_limit``, cheapest first by the cost model:
    transform flops divided by :func:`length_efficiency`, plus multiply flops, plus
    ``FLOPS_PER_BYTE`` per workspace byte."""
    out = []
    for nh in _axis_candidates(p.ext_h, p.hp):
        for nw in _axis_candidates(p.ext_w, p.wp):
            g = _geometry(p, nh, nw)
            if memory_limit is None or g.workspace_bytes <= memory_limit:
                out.append((g.model_cost + FLOPS_PER_BYTE * g.workspace_bytes, g))
    return [g for _, g in sorted(out, key=lambda t: t[0])]


def fft_geometry(p: ConvProblem, memory_limit: int | None = None) -> FFTGeometry | None:
    """The cost model's choice (what ``flops``/``workspace_bytes`` report before ``prepare``
    has measured); None when no tiling fits the memory limit."""
    r = ranked_geometries(p, memory_limit)
    return r[0] if r else None


def _smallest_workspace(p: ConvProblem) -> int:
    return min(_geometry(p, nh, nw).workspace_bytes
               for nh in _axis_candidates(p.ext_h, p.hp) for nw in _axis_candidates(p.ext_w, p.wp))


# ---------------------------------------------------------------------------- engines
def _view(a: np.ndarray, shape: tuple) -> np.ndarray:
    """``a`` reshaped without copying (raises if the strides do not allow it): the plan's
    stages write through these views into FFTW's own arrays."""
    v = a.view()
    v.shape = shape
    return v


def _pad_to(n: int, m: int) -> int:
    return -(-n // m) * m


def _spectra(B: int, nh: int, nwh: int, g: int, icg: int, ocg: int, cdt, alloc) -> dict:
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
_PLAN_CACHE: "OrderedDict[tuple, dict]" = OrderedDict()
PLAN_CACHE_STATS = {"hits": 0, "misses": 0}


def _pyfftw_plans(*key) -> dict:
    """:func:`_build_pyfftw_plans` through a byte-bounded LRU cache keyed by all its arguments."""
    if key in _PLAN_CACHE:
        _PLAN_CACHE.move_to_end(key)
        PLAN_CACHE_STATS["hits"] += 1
        return _PLAN_CACHE[key]
    PLAN_CACHE_STATS["misses"] += 1
    plans = _build_pyfftw_plans(*key)
    _PLAN_CACHE[key] = plans
    total = sum(e["nbytes"] for e in _PLAN_CACHE.values())
    while total > PLAN_CACHE_BYTES and len(_PLAN_CACHE) > 1:
        _, old = _PLAN_CACHE.popitem(last=False)
        total -= old["nbytes"]
    return plans


def _build_pyfftw_plans(B: int, dtype: str, nh: int, nw: int, g: int, icg: int, ocg: int, in_rows: tuple,
                        out_rows: int, effort: str, nthreads: int) -> dict:
    """Cached FFTW plans and their arrays for one geometry (everything that changes a plan
    is in the key).

    When some input rows are known to be zero or some output rows are not kept (a whole
    padded image), each 2-D transform runs as two passes that skip those rows (a pruned
    2-D FFT):

    forward  ``P[..., r0:r1, :]`` --r2c rows--> ``Xr`` --c2c columns--> ``X`` (in the multiply's
             layout, see :func:`_spectra`, written through a strided view)
    inverse  ``Y`` --c2c columns--> ``Yr`` --c2r rows ``[:out_rows]``--> ``R``

    Otherwise (overlap-save tiles) each way is one batched 2-D plan, ``P -> X`` and ``Y -> R``.
    """
    nwh = nw // 2 + 1
    cdt = np.complex64 if dtype == "float32" else np.complex128
    r0, r1 = in_rows
    # rows padded to whole 64-byte lines: a pass that starts at row r0 must start aligned,
    # or FFTW falls back to unaligned codelets (measured 3x slower on 288x288)
    wr = _pad_to(nw, 64 // np.dtype(dtype).itemsize)
    wc = _pad_to(nwh, 64 // np.dtype(cdt).itemsize)
    P = pyfftw.zeros_aligned((B, g, icg, nh, wr), dtype=dtype)[..., :nw]
    spec = _spectra(B, nh, nwh, g, icg, ocg, cdt, lambda shape, dt: pyfftw.empty_aligned(shape, dtype=dt))
    unpruned = (r0, r1) == (0, nh) and out_rows == nh
    # buffers shared as _aliasing says (tiles are exactly the unpruned transforms)
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
    plans = dict(fwd=fwd, inv=inv, P=P, R=R, **spec)
    plans["nbytes"] = sum(a.base.nbytes if a.base is not None else a.nbytes for a in bufs)
    P[...] = 0   # planning with MEASURE scribbles on the arrays; the zero rows must be zero
    _save_wisdom()
    return plans


class _FFTBase(Backend):
    algorithm = "fft"
    engine = ""
    capabilities = Capabilities(exact=False, rtol={"float32": 1e-4, "float64": 1e-11}, threads="fftw",
                                memory_limit_bytes=default_memory_limit(0.25))

    def _supports(self, p: ConvProblem) -> str | None:
        if fft_geometry(p, self.memory_limit()) is None:
            need = _smallest_workspace(p)
            return (f"needs at least {need} bytes of spectra/workspace for any tile size, over the "
                    f"memory limit of {self.memory_limit()} bytes")
        return None

    #: how many of the cost model's best tile sizes ``prepare`` times before choosing
    AUTOTUNE = 6

    # ------------------------------------------------------------------ plan
    def prepare(self, p: ConvProblem, w: np.ndarray) -> Plan:
        """Choose the tile size, build the transforms, compute the weight spectra.

        The cost model ranks tile sizes; the best ``AUTOTUNE`` candidates are then timed
        (transform-multiply-transform passes on zeros, round-robin, see ``best_times``) and the fastest is
        kept (with hysteresis, see :func:`~convbench.backends.base.stable_choice`), because
        FFT speed depends on the length's factors as much as on its size
        (measured here: 288^2 transforms in 105 us, 272^2 in 378 us, 270^2 in 140 us).
        Each tiled candidate is also timed a part of a tile row at a time (``by_row``), which
        keeps a pass's patches and spectra in cache (1024^2 image, 15x15 kernel, 72 tiles of
        128x144, same process: 5.5 ms all tiles per stage, 4.2 ms a whole tile row per
        pass, 4.1 ms two tiles per pass, measured).
        All of this is one-off work and counts in ``prepare_s``.
        """
        cands = ranked_geometries(p, self.memory_limit())[:max(1, self.AUTOTUNE)]
        rows = [_geometry(p, g.nh, g.nw, by_row=True) for g in cands if g.tiles > 1]
        cands += [r for r in rows if r.per_pass < p.mb * r.tiles]
        geo, tried = cands[0], []
        if len(cands) > 1:
            x0 = np.zeros(p.src_shape, dtype=p.dtype)
            plans = [Plan(p, self._build(p, g, None)) for g in cands]
            times = best_times([lambda plan=plan: self.run(plan, x0) for plan in plans])
            tried = list(zip(cands, times))
            geo = stable_choice(tried)
        st = self._build(p, geo, w)
        st["tried"] = tried
        return Plan(p, st)

    def _build(self, p: ConvProblem, geo: FFTGeometry, w: np.ndarray | None) -> dict:
        """Buffers, transforms and (unless ``w`` is None: timing only) weight spectra."""
        dt = np.dtype(p.dtype)
        nh, nw, nwh = geo.nh, geo.nw, geo.nwh
        cdt = np.complex64 if dt == np.float32 else np.complex128
        if w is None:
            W = np.zeros((nh, nwh, p.g, p.icg, p.ocg) if p.icg > 1 else (1, p.g, p.ocg, nh, nwh), dtype=cdt)
        else:
            # dilated kernel, zero-padded to N, conj for correlation, 1/N folded in;
            # transformed in float64, then rounded once
            kd = np.zeros((p.oc, p.icg, nh, nw), dtype=np.float64)
            kd[:, :, :p.ext_h:p.dh + 1, :p.ext_w:p.dw + 1] = w
            spec = np.conj(np.fft.rfft2(kd)) / (nh * nw)
            spec = spec.reshape(p.g, p.ocg, p.icg, nh, nwh)
            if p.icg > 1:  # frequency-major (nh, nwh, g, icg, ocg) for the GEMM
                W = np.ascontiguousarray(spec.transpose(3, 4, 0, 2, 1), dtype=cdt)
            else:  # (1, g, ocg, nh, nwh), broadcast against X (B, g, 1, nh, nwh)
                W = np.ascontiguousarray(spec[None, :, :, 0], dtype=cdt)
        st = dict(geo=geo, W=W, B=_batch(p, geo), tiled=geo.tiles > 1)
        self._engine_prepare(p, st, dt)
        if st["tiled"]:
            xp = np.zeros((p.mb, p.ic, geo.hbuf, geo.wbuf), dtype=dt)
            s = xp.strides
            src = as_strided(xp, shape=(p.mb, geo.th, geo.tw, p.ic, nh, nw),
                             strides=(s[0], geo.Th * s[2], geo.Tw * s[3], s[1], s[2], s[3]), writeable=False)
            st["fill"] = xp
            # output assembly: valid (Th, Tw) of each tile -> (mb, oc, th, Th, tw, Tw)
            full = np.empty((p.mb, p.oc, geo.th, geo.Th, geo.tw, geo.Tw), dtype=dt)
            st["full"] = full
            if geo.by_row:  # one (image, part of a tile row) per pass: patches in, valid outputs out
                c = geo.per_pass
                P4 = _view(st["P"], (c, p.ic, nh, nw))
                R4 = _view(st["R"], (c, p.oc, nh, nw))[..., :geo.Th, :geo.Tw].transpose(1, 2, 0, 3)
                st["chunks"] = [(src[b, a, k:k + c], P4, R4, full[b, :, a, :, k:k + c])
                                for b in range(p.mb) for a in range(geo.th) for k in range(0, geo.tw, c)]
            else:
                P6 = _view(st["P"], (p.mb, geo.th, geo.tw, p.ic, nh, nw))
                R6 = _view(st["R"], (p.mb, geo.th, geo.tw, p.oc, nh, nw))[..., :geo.Th, :geo.Tw] \
                    .transpose(0, 3, 1, 4, 2, 5)
                st["chunks"] = [(src, P6, R6, full)]
        else:
            st["fill"] = _view(st["P"], (p.mb, p.ic, nh, nw))  # the transform input is the padded image
            st["fill"][...] = 0
            st["R4"] = _view(st["R"], (p.mb, p.oc, nh, nw))
            st["chunks"] = [(None, None, None, None)]
        mode = (f"overlap-save {geo.th}x{geo.tw} tiles{', row by row' if geo.by_row else ''}"
                if st["tiled"] else "whole image")
        st["note"] = (f"N={nh}x{nw}, {mode}"
                      f"{', FFTW ' + get_planner_effort()[5:].lower() if self.engine == 'pyfftw' else ''}")
        return st

    def _engine_prepare(self, p: ConvProblem, st: dict, dt) -> None:
        raise NotImplementedError

    # ------------------------------------------------------------------ stages
    def _execute(self, plan: Plan, x: np.ndarray, acc: dict | None = None) -> np.ndarray:
        """Pad ``x`` into the transform input, then per chunk (all tiles at once, or one tile
        row: see :class:`FFTGeometry`) forward transform, multiply, inverse transform and
        keep the valid outputs; finally subsample for stride. With ``acc``, the time of each
        stage (input: padding, patches, forward; multiply; output: inverse, assembly) is
        added to ``acc`` (the clock calls cost well under 1% of a chunk)."""
        p, st = plan.problem, plan.state
        clock = time.perf_counter
        t0 = clock() if acc is not None else 0.0
        h, w = p.read_h, p.read_w
        st["fill"][:, :, p.ph:p.ph + h, p.pw:p.pw + w] = x[:, :, :h, :w]
        mult = np.multiply if p.icg == 1 else np.matmul  # (B, g, 1, ..) * (1, g, ocg, ..) or GEMM
        X, W, Y = st["X"], st["W"], st["Y"]
        for src, dst, res, out in st["chunks"]:
            if src is not None:
                np.copyto(dst, src)
            self._forward(st)
            if acc is not None:
                t1 = clock()
                acc["input"] += t1 - t0
            mult(X, W, out=Y)
            if acc is not None:
                t2 = clock()
                acc["multiply"] += t2 - t1
            self._inverse(st)
            if res is not None:
                np.copyto(out, res)
            if acc is not None:
                t0 = clock()
                acc["output"] += t0 - t2
        geo = st["geo"]
        if st["tiled"]:
            full = st["full"].reshape(p.mb, p.oc, geo.th * geo.Th, geo.tw * geo.Tw)
        else:
            full = st["R4"]
        y = np.empty(p.output_shape, dtype=full.dtype)  # never a view of the plan's buffers
        np.copyto(y, full[:, :, :(p.oh - 1) * p.sh + 1:p.sh, :(p.ow - 1) * p.sw + 1:p.sw])
        if acc is not None:
            acc["output"] += clock() - t0
        return y

    def run(self, plan: Plan, x: np.ndarray) -> np.ndarray:
        return self._execute(plan, x)

    def phases(self, plan: Plan, x: np.ndarray) -> dict[str, float]:
        acc = {"input": 0.0, "multiply": 0.0, "output": 0.0}
        self._execute(plan, x, acc)
        return acc

    def note(self, plan: Plan) -> str:
        st = plan.state
        if not st.get("tried"):
            return st["note"]
        alts = ", ".join(f"{g.label} {t * 1e3:.2f}ms" for g, t in st["tried"])
        return f"{st['note']} (timed: {alts})"

    # ------------------------------------------------------------------ accounting
    def flops(self, p: ConvProblem) -> float:
        geo = fft_geometry(p, self.memory_limit())
        return float("nan") if geo is None else geo.flops

    def multiply_flops(self, p: ConvProblem) -> float:
        geo = fft_geometry(p, self.memory_limit())
        return float("nan") if geo is None else geo.multiply_flops

    def workspace_bytes(self, p: ConvProblem) -> int | None:
        geo = fft_geometry(p, self.memory_limit())
        return _smallest_workspace(p) if geo is None else geo.workspace_bytes

    # what the plan prepare chose by timing (the methods above report the cost model's pick)
    def executed_flops(self, plan: Plan) -> float:
        return plan.state["geo"].flops

    def plan_multiply_flops(self, plan: Plan) -> float:
        return plan.state["geo"].multiply_flops

    def plan_workspace_bytes(self, plan: Plan) -> int | None:
        return plan.state["geo"].workspace_bytes


class FFTPyFFTW(_FFTBase):
    name = "fft_pyfftw"
    engine = "pyfftw"
    description = "FFT (pyFFTW plans, wisdom cached), batched complex GEMM over channels, overlap-save tiles"

    @classmethod
    def unavailable_reason(cls) -> str | None:
        return None if pyfftw is not None else "pyfftw is not installed"

    def _engine_prepare(self, p: ConvProblem, st: dict, dt) -> None:
        geo = st["geo"]
        in_rows, out_rows = _rows(p, geo.nh, geo.tiles > 1)
        plans = _pyfftw_plans(st["B"], p.dtype, geo.nh, geo.nw, p.g, p.icg, p.ocg, in_rows, out_rows,
                              get_planner_effort(), _threads.get_threads())
        st.update(plans)

    def _forward(self, st: dict) -> None:
        for plan in st["fwd"]:
            plan.execute()

    def _inverse(self, st: dict) -> None:
        for plan in st["inv"]:
            plan.execute()


class FFTScipy(_FFTBase):
    name = "fft_scipy"
    engine = "scipy"
    description = "FFT (scipy.fft, workers=threads), same algorithm as fft_pyfftw"
    capabilities = Capabilities(exact=False, rtol={"float32": 1e-4, "float64": 1e-11}, threads="scipy.fft",
                                memory_limit_bytes=default_memory_limit(0.25))

    @classmethod
    def unavailable_reason(cls) -> str | None:
        return None if sfft is not None else "scipy is not installed"

    def _engine_prepare(self, p: ConvProblem, st: dict, dt) -> None:
        geo = st["geo"]
        B = st["B"]
        cdt = np.complex64 if dt == np.float32 else np.complex128
        st["P"] = np.zeros((B, p.g, p.icg, geo.nh, geo.nw), dtype=dt)
        st.update(_spectra(B, geo.nh, geo.nwh, p.g, p.icg, p.ocg, cdt, lambda shape, d: np.empty(shape, dtype=d)))
        st["R"] = np.empty((B, p.g, p.ocg, geo.nh, geo.nw), dtype=dt)
        st["Xr"] = np.zeros((B, p.g, p.icg, geo.nh, geo.nwh), dtype=cdt)
        st["rows"] = _rows(p, geo.nh, geo.tiles > 1)
        st["workers"] = _threads.get_threads()

    # the same transforms as fft_pyfftw (pruned two-pass, or 2-D on tiles; see _build_pyfftw_plans)
    def _forward(self, st: dict) -> None:
        (r0, r1), _ = st["rows"]
        wk = st["workers"]
        if st["tiled"]:
            np.copyto(st["Xs"], sfft.rfft2(st["P"], workers=wk))
            return
        st["Xr"][..., r0:r1, :] = sfft.rfft(st["P"][..., r0:r1, :], axis=-1, workers=wk)
        np.copyto(st["Xs"], sfft.fft(st["Xr"], axis=-2, workers=wk))

    def _inverse(self, st: dict) -> None:
        geo = st["geo"]
        _, orows = st["rows"]
        wk = st["workers"]
        if st["tiled"]:
            st["R"][...] = sfft.irfft2(st["Ys"], s=(geo.nh, geo.nw), norm="forward", workers=wk)
            return
        yr = sfft.ifft(st["Ys"], axis=-2, norm="forward", workers=wk)
        st["R"][..., :orows, :] = sfft.irfft(yr[..., :orows, :], n=geo.nw, axis=-1, norm="forward", workers=wk)
