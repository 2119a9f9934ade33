"""FFT convolution of volumes (3-D problems): geometry, plans and the run, for both engines.

The algorithm is the 2-D one's (:mod:`.backends`) over three axes: weight spectra once in
``prepare``; per pass, the tiles' input patches transformed with a 3-D real FFT, at every
frequency one complex GEMM over the channels, the product transformed back, the valid part
of every tile placed, subsampled for stride.

Overlap-save tiles along every axis: a volume is rarely much larger than its kernel on all
three axes, but the longest axes (a 56x56 frame of a 16-frame clip) are where tiling pays, so
each axis's transform length is chosen on its own among fast lengths from ``2 * ext`` to the
whole padded axis (:func:`ranked_volume_geometries`: arithmetic, weighted by each length's
speed, plus memory traffic, within the memory limit). A pass is one tile plane (the tiles of
one image at one depth tile) when that keeps the spectra small, or all tiles at once;
``prepare`` times the model's best candidates both ways and keeps the fastest.

pyFFTW: one batched 3-D plan each way (planner effort and wisdom as in 2-D), the forward
writing the spectra straight into the multiply's frequency-major layout through a strided
view. scipy.fft: ``rfftn``/``irfftn`` with ``workers=``, copied into that layout. The passes
are not pruned (every patch row holds data once tiled; a whole padded volume's zero planes
are a small part of three axes' work).
"""

from __future__ import annotations

import itertools
import math
import time
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from numpy.lib.stride_tricks import as_strided

from ...flops import prod
from ...problem import ConvProblem
from .geometry import FLOPS_PER_BYTE, _axis_candidates, _lg, length_efficiency
from .plans import view

__all__ = ["VolumeGeometry", "ranked_volume_geometries", "volume_geometry", "smallest_volume_workspace",
           "fftn_flops", "VolumeState", "build", "execute", "candidates", "mode_note", "weight_spectra"]

#: at most this many lengths per axis enter the search (the cheapest per unit of output)
AXIS_CANDIDATES = 8


def fftn_flops(n: tuple) -> float:
    """One real N-D transform: real transforms along the last axis, complex ones along the
    others on the half spectrum (benchFFT's ``2.5 n log2 n`` real, ``5 n log2 n`` complex)."""
    *outer, nw = n
    half = nw // 2 + 1
    f = prod(outer) * 2.5 * nw * _lg(nw)
    for i, a in enumerate(outer):
        f += prod(outer[:i] + outer[i + 1:]) * half * 5 * a * _lg(a)
    return f


@dataclass(frozen=True)
class VolumeGeometry:
    """Transform lengths ``n``, tiles per axis, valid outputs per tile ``T`` and the cost."""

    n: tuple
    tiles: tuple
    T: tuple
    flops: float
    multiply_flops: float
    transform_flops: float
    workspace_bytes: int
    model_cost: float
    by_plane: bool = False

    @property
    def count(self) -> int:
        return prod(self.tiles)

    @property
    def freqs(self) -> int:
        return prod(self.n[:-1]) * (self.n[-1] // 2 + 1)

    def per_pass(self, mb: int) -> int:
        """Tiles transformed at once: one tile plane (``by_plane``) or every tile."""
        return prod(self.tiles[1:]) if self.by_plane else mb * self.count

    @property
    def label(self) -> str:
        return "x".join(map(str, self.n)) + (f"/{self.count}t" if self.count > 1 else "") + \
            ("/plane" if self.by_plane else "")


def _geometry(p: ConvProblem, n: tuple, by_plane: bool = False) -> VolumeGeometry:
    axes = p.axes
    valid = tuple(pad - ax.ext + 1 for pad, ax in zip(p.padded, axes))    # stride-1 outputs
    T = tuple(a - ax.ext + 1 for a, ax in zip(n, axes))
    tiles = tuple(-(-v // t) for v, t in zip(valid, T))
    count = prod(tiles)
    by_plane = by_plane and count > tiles[0]
    B = p.mb * count
    Bc = prod(tiles[1:]) if by_plane else B
    F = prod(n[:-1]) * (n[-1] // 2 + 1)
    it, cplx = p.itemsize, 2 * p.itemsize
    transform = B * (p.ic + p.oc) * fftn_flops(n)
    mult = (6.0 * F * B * p.oc) if p.icg == 1 else 8.0 * F * B * p.oc * p.icg
    ws = (Bc * ((p.ic + p.oc) * prod(n) * it + (p.ic + p.oc) * F * cplx)   # patches, result, spectra
          + F * p.oc * p.icg * cplx                                          # weight spectra
          + p.mb * p.ic * prod((t - 1) * s + a for t, s, a in zip(tiles, T, n)) * it  # padded input
          + p.mb * p.oc * prod(t * s for t, s in zip(tiles, T)) * it)        # assembled stride-1 output
    speed = math.prod(length_efficiency(a) for a in n) ** (1 / len(n))
    return VolumeGeometry(n, tiles, T, transform + mult, mult, transform, int(ws), transform / speed + mult,
                          by_plane)


def _lengths(ext: int, extent: int) -> tuple:
    """An axis's candidate lengths, cheapest per valid output first (at most
    :data:`AXIS_CANDIDATES`)."""
    cands = _axis_candidates(ext, extent)
    valid = extent - ext + 1

    def cost(a):
        t = a - ext + 1
        return -(-valid // t) * a * max(_lg(a), 1.0) / length_efficiency(a)
    return tuple(sorted(cands, key=cost)[:AXIS_CANDIDATES])


@lru_cache(maxsize=1024)
def ranked_volume_geometries(p: ConvProblem, memory_limit: int | None = None) -> tuple:
    """Every candidate length triple within ``memory_limit``, cheapest first by the cost model
    (transform flops over their lengths' speed, plus multiply flops, plus
    :data:`~.geometry.FLOPS_PER_BYTE` per workspace byte)."""
    floor = p.mb * p.ic * prod(p.padded) * p.itemsize
    if memory_limit is not None and floor > memory_limit:
        return ()
    out = []
    for n in itertools.product(*(_lengths(ax.ext, pad) for ax, pad in zip(p.axes, p.padded))):
        g = _geometry(p, n)
        if memory_limit is None or g.workspace_bytes <= memory_limit:
            out.append((g.model_cost + FLOPS_PER_BYTE * g.workspace_bytes, g))
    return tuple(g for _, g in sorted(out, key=lambda t: t[0]))


def volume_geometry(p: ConvProblem, memory_limit: int | None = None) -> VolumeGeometry | None:
    r = ranked_volume_geometries(p, memory_limit)
    return r[0] if r else None


def smallest_volume_workspace(p: ConvProblem) -> int:
    """The least workspace any length triple needs (what a refusal quotes)."""
    return min(_geometry(p, n).workspace_bytes
               for n in itertools.product(*(_lengths(ax.ext, pad) for ax, pad in zip(p.axes, p.padded))))


def candidates(p: ConvProblem, memory_limit: int | None, count: int) -> list:
    """What ``prepare`` times: the model's best ``count`` length triples, each tiled one also a
    tile plane per pass (smaller spectra, more of a pass in cache), as many as fit half the
    limit together."""
    ranked = list(ranked_volume_geometries(p, memory_limit)[:max(1, count)])
    planes = [_geometry(p, g.n, by_plane=True) for g in ranked if g.count > g.tiles[0] and p.mb * g.tiles[0] > 1]
    out, held = [], 0
    for g in ranked + [g for g in planes if g.by_plane]:
        if out and memory_limit is not None and held + g.workspace_bytes > memory_limit // 2:
            continue
        out.append(g)
        held += g.workspace_bytes
    return out


@dataclass
class VolumeState:
    """One chosen geometry's buffers and transforms: the zero-bordered input ``xp`` the tiles
    are cut from, per pass ``(patch source, valid-output destination)``, the transforms' arrays
    ``P`` (patches), ``X``/``Y`` (spectra, multiply layout), ``R`` (inverse output), the weight
    spectra ``W`` and the engine's ``fwd``/``inv`` callables; ``full``: the assembled stride-1
    output."""

    geo: VolumeGeometry
    xp: np.ndarray
    passes: list
    P: np.ndarray
    X: np.ndarray
    Y: np.ndarray
    Xs: np.ndarray
    Ys: np.ndarray
    R: np.ndarray
    W: np.ndarray
    full: np.ndarray
    fwd: object = None
    inv: object = None
    tried: list | None = None


def weight_spectra(p: ConvProblem, n: tuple, w: np.ndarray | None) -> np.ndarray:
    """Dilated kernel zero-padded to ``n``, conjugated (correlation), ``1/N`` folded in,
    transformed in float64 and rounded once; frequency-major ``(F, g, icg, ocg)`` for the GEMM,
    or ``(1, g, ocg, *half spectrum)`` for one input channel per group. ``w`` None: zeros of the
    layout (timing candidates)."""
    half = n[:-1] + (n[-1] // 2 + 1,)
    F = prod(half)
    cdt = np.complex64 if p.dtype == "float32" else np.complex128
    if w is None:
        return np.zeros((F, p.g, p.icg, p.ocg) if p.icg > 1 else (1, p.g, p.ocg) + half, dtype=cdt)
    kd = np.zeros((p.oc, p.icg) + n, dtype=np.float64)
    kd[(slice(None), slice(None)) + tuple(slice(0, ax.ext, ax.d + 1) for ax in p.axes)] = w
    spec = np.conj(np.fft.rfftn(kd, axes=(-3, -2, -1))) / prod(n)
    spec = spec.reshape((p.g, p.ocg, p.icg) + half)
    if p.icg > 1:
        return np.ascontiguousarray(spec.reshape(p.g, p.ocg, p.icg, F).transpose(3, 0, 2, 1), dtype=cdt)
    return np.ascontiguousarray(spec[None, :, :, 0], dtype=cdt)


def build(p: ConvProblem, geo: VolumeGeometry, w: np.ndarray | None, alloc, engine) -> VolumeState:
    """Buffers, passes and (unless ``w`` is None) weight spectra for ``geo``; ``alloc(shape,
    dtype)`` makes the transforms' arrays (aligned for FFTW), ``engine(st)`` attaches the
    ``fwd``/``inv`` callables."""
    dt = np.dtype(p.dtype)
    cdt = np.complex64 if dt == np.float32 else np.complex128
    n, tiles, T = geo.n, geo.tiles, geo.T
    c = geo.per_pass(p.mb)
    half = n[:-1] + (n[-1] // 2 + 1,)
    F = prod(half)
    P = alloc((c, p.g, p.icg) + n, dt)
    R = alloc((c, p.g, p.ocg) + n, dt)
    if p.icg > 1:  # frequency-major: at each frequency a contiguous (tiles x icg) @ (icg x ocg)
        X, Y = alloc((F, p.g, c, p.icg), cdt), alloc((F, p.g, c, p.ocg), cdt)
        Xs = X.reshape(half + (p.g, c, p.icg)).transpose(4, 3, 5, 0, 1, 2)
        Ys = Y.reshape(half + (p.g, c, p.ocg)).transpose(4, 3, 5, 0, 1, 2)
    else:
        X, Y = alloc((c, p.g, 1) + half, cdt), alloc((c, p.g, p.ocg) + half, cdt)
        Xs, Ys = X, Y
    xp = np.zeros((p.mb, p.ic) + tuple((t - 1) * s + a for t, s, a in zip(tiles, T, n)), dtype=dt)
    sN, sC, *sp = xp.strides
    src = as_strided(xp, shape=(p.mb,) + tiles + (p.ic,) + n,
                     strides=(sN,) + tuple(t * s for t, s in zip(T, sp)) + (sC,) + tuple(sp), writeable=False)
    full = np.empty((p.mb, p.oc) + tuple(v for t, s in zip(tiles, T) for v in (t, s)), dtype=dt)
    # per tile: its valid (Td, Th, Tw) outputs of every channel, laid into (mb, oc, td, Td, th, Th, tw, Tw)
    fv = full.transpose(0, 2, 4, 6, 1, 3, 5, 7)                       # (mb, td, th, tw, oc, Td, Th, Tw)
    lead = tiles[1:] if geo.by_plane else (p.mb,) + tiles                # a pass's tiles, as their axes
    Pv = view(P, lead + (p.ic,) + n)
    Rv = view(R, lead + (p.oc,) + n)[(Ellipsis,) + tuple(slice(0, s) for s in T)]
    if geo.by_plane:
        passes = [(Pv, src[b, z], Rv, fv[b, z]) for b in range(p.mb) for z in range(tiles[0])]
    else:
        passes = [(Pv, src, Rv, fv)]
    st = VolumeState(geo=geo, xp=xp, passes=passes, P=P, X=X, Y=Y, Xs=Xs, Ys=Ys, R=R,
                     W=weight_spectra(p, n, w), full=full.reshape((p.mb, p.oc) + tuple(t * s for t, s in zip(tiles, T))))
    engine(st)
    return st


def execute(p: ConvProblem, st: VolumeState, x: np.ndarray, acc: dict | None = None) -> np.ndarray:
    """Pad ``x``, then per pass: patches in, forward transform, multiply, inverse, valid
    outputs out; finally subsample for stride. ``acc``: seconds per stage added to it."""
    clock = time.perf_counter
    t0 = clock() if acc is not None else 0.0
    dst = tuple(slice(ax.p, ax.p + r) for ax, r in zip(p.axes, p.read))
    st.xp[(slice(None), slice(None)) + dst] = x[(slice(None), slice(None)) + tuple(slice(0, r) for r in p.read)]
    mult = np.multiply if p.icg == 1 else np.matmul
    for patches, src, res, out in st.passes:
        np.copyto(patches, src)
        st.fwd()
        if acc is not None:
            t1 = clock()
            acc["input"] += t1 - t0
        mult(st.X, st.W, out=st.Y)
        if acc is not None:
            t2 = clock()
            acc["multiply"] += t2 - t1
        st.inv()
        np.copyto(out, res)
        if acc is not None:
            t0 = clock()
            acc["output"] += t0 - t2
    y = np.empty(p.output_shape, dtype=st.full.dtype)  # never a view of the plan's buffers
    np.copyto(y, st.full[(slice(None), slice(None)) + tuple(slice(0, (ax.o - 1) * ax.s + 1, ax.s) for ax in p.axes)])
    if acc is not None:
        acc["output"] += clock() - t0
    return y


def mode_note(geo: VolumeGeometry) -> str:
    """How the passes run, for the plan's note."""
    if geo.count == 1:
        return "whole volume"
    return f"overlap-save {'x'.join(map(str, geo.tiles))} tiles" + (", a tile plane per pass" if geo.by_plane else "")
