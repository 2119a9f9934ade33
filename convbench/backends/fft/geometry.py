"""FFT convolution geometry and cost model: transform sizes, overlap-save tiles, flops, bytes.

Shape-only and allocation-free, so the runner can refuse or account for a problem before
anything is built. Transform sizes are fast lengths (products of 2, 3, 5, 7), not blind
powers of two. Overlap-save tiling: when the image is much larger than the kernel, the
output is cut into tiles of ``T = N - ext + 1`` and each tile's ``N x N`` input patch is
transformed separately. ``N`` per axis is chosen by a cost model (arithmetic plus memory
traffic, :func:`ranked_geometries`) among fast lengths from ``2 * ext`` to the whole padded
image, subject to the backend's memory limit. The ranking is computed once per
(problem, memory limit) and cached: ``supports``, ``estimate`` and ``prepare`` all read it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

from ...problem import ConvProblem

__all__ = ["FFTGeometry", "fast_len", "length_efficiency", "fft_flops", "geometry", "ranked_geometries",
           "fft_geometry", "smallest_workspace", "workspace_floor", "pruned_rows", "aliasing", "batch_size", "PASS_BYTES",
           "FLOPS_PER_BYTE"]

#: flops charged per byte moved in the cost model: roughly one core's GEMM speed over its
#: memory bandwidth here (~200 GFLOP/s / ~40 GB/s); it makes the model prefer tiles whose
#: spectra stay small when the arithmetic is otherwise equal
FLOPS_PER_BYTE = 5.0


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


def batch_size(p: ConvProblem, geo: FFTGeometry) -> int:
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


def aliasing(p: ConvProblem, tiled: bool) -> tuple[bool, bool]:
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
    counted once (see :func:`aliasing`)."""
    out_over_in, in_place = aliasing(p, tiled)
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


def geometry(p: ConvProblem, nh: int, nw: int, by_row: bool = False, split: int | None = None) -> FFTGeometry:
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
    # that are kept are transformed back (see pruned_rows)
    (r0, r1), orows = pruned_rows(p, nh, tiled)
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


def pruned_rows(p: ConvProblem, nh: int, tiled: bool) -> tuple[tuple[int, int], int]:
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


def workspace_floor(p: ConvProblem) -> int:
    """A lower bound on every geometry's workspace: each one holds the padded input at least
    once (the whole-image transform input, or the copy overlap-save tiles are cut from)."""
    return p.mb * p.ic * p.hp * p.wp * p.itemsize


@lru_cache(maxsize=4096)
def ranked_geometries(p: ConvProblem, memory_limit: int | None = None) -> tuple[FFTGeometry, ...]:
    """Every candidate ``(Nh, Nw)`` within ``memory_limit``, cheapest first by the cost model:
    transform flops divided by :func:`length_efficiency`, plus multiply flops, plus
    ``FLOPS_PER_BYTE`` per workspace byte. Empty at once when even :func:`workspace_floor`
    is over the limit (a 100000^2 image has 65536 candidate pairs, none of which fits)."""
    if memory_limit is not None and workspace_floor(p) > memory_limit:
        return ()
    out = []
    for nh in _axis_candidates(p.ext_h, p.hp):
        for nw in _axis_candidates(p.ext_w, p.wp):
            g = geometry(p, nh, nw)
            if memory_limit is None or g.workspace_bytes <= memory_limit:
                out.append((g.model_cost + FLOPS_PER_BYTE * g.workspace_bytes, g))
    return tuple(g for _, g in sorted(out, key=lambda t: t[0]))


def fft_geometry(p: ConvProblem, memory_limit: int | None = None) -> FFTGeometry | None:
    """The cost model's choice (what the backend's estimate reports before ``prepare``
    has measured); None when no tiling fits the memory limit."""
    r = ranked_geometries(p, memory_limit)
    return r[0] if r else None


@lru_cache(maxsize=4096)
def smallest_workspace(p: ConvProblem, memory_limit: int | None = None) -> int:
    """The least workspace any geometry needs (what a refusal quotes); the padded input alone
    (:func:`workspace_floor`) when that is already over ``memory_limit``."""
    floor = workspace_floor(p)
    if memory_limit is not None and floor > memory_limit:
        return floor
    return min(geometry(p, nh, nw).workspace_bytes
               for nh in _axis_candidates(p.ext_h, p.hp) for nw in _axis_candidates(p.ext_w, p.wp))
