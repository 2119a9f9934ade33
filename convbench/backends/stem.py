"""Generated direct kernels for few input channels (network stems: RGB in, 3x3/2 or 7x7/2) for
``direct_numba``.

The row kernel ran these at 13 GFLOP/s: with three input channels there is no channel run to
vectorise along, and a strided row is not one either. Here each image's channels are first split
into their ``sh*sw`` stride phases (``phase[c, qr, qc][r, t] = xpad[c, s*r + qr, s*t + qc]``, one
zero-bordered scratch made at prepare whose border stays zero), so that for every tap the
inputs of an output row are one contiguous run at a literal offset. Then, per block of
:data:`BLOCK` output channels and output row, the loop along the row keeps one accumulator per
channel of the block, loads each tap's input vector once and multiplies it by the block's
weights (held as scalars, broadcast): 4 fused multiply-adds per load, written straight into the
NCHW output rows. Input channels are an outer loop (the output is re-read for the 2nd and 3rd),
which keeps the generated body at ``kh*kw*BLOCK`` statements (a 7x7 stem's compiled in about 4
seconds; with the channels unrolled too it took 13 s at a block of 8 and was no faster).

Measured against ONNX Runtime/MLAS in one interleaved run, 1 thread, SkylakeX OpenBLAS kernels
(block 2/4/8): MobileNetV2 stem 313/276-316/355 us against 284-292; VGG-16 conv1_1
2255/2373/2876 us against 3014-3093; ResNet-50 conv1 3868/3152/3051 us against 2280. Every
index is flat with literal strides: with the arrays' run-time strides LLVM could not rule out
overlap between the block's output rows and gave up vectorising (13 GFLOP/s).
"""

from __future__ import annotations

from .codegen import load_generated

__all__ = ["BLOCK", "MAX_IC", "MAX_TAPS", "fits", "geometry", "stem_kernel"]

#: output channels per register block
BLOCK = 4
#: at most this many input channels (RGB, RGBA, a grey image)
MAX_IC = 4
#: at most this many taps per channel (7x7): the generated body grows with it
MAX_TAPS = 49
#: output rows at least this wide: a narrower row never reaches a full vector
MIN_OW = 16


def fits(p) -> bool:
    """True when ``p`` (a forward problem) runs the generated few-input-channel kernel."""
    return (p.rank == 2 and p.g == 1 and p.ic <= MAX_IC and p.kh * p.kw <= MAX_TAPS and p.dh == 0 and p.dw == 0
            and p.ow >= MIN_OW)


def geometry(p) -> dict:
    """The phase scratch of ``p``: ``hq x wq`` per phase plane, ``sh*sw`` planes per channel."""
    hq = p.oh + (p.kh - 1) // p.sh
    wq = p.ow + (p.kw - 1) // p.sw
    return dict(hq=hq, wq=wq, size=p.ic * p.sh * p.sw * hq * wq)


def _fill(a, p, g) -> None:
    """Emit the copy of image ``n`` into its stride phases (every column phase in one loop)."""
    sh, sw, ph, pw, hq, wq = p.sh, p.sw, p.ph, p.pw, g["hq"], g["wq"]
    plane = hq * wq
    a(f"      for c in range({p.ic}):")
    a(f"        for r in range({p.ih}):")
    a(f"          rr = r + {ph}")
    a(f"          if rr // {sh} >= {hq}:")
    a("            continue")
    a(f"          base = c * {sh * sw * plane} + (rr % {sh}) * {sw * plane} + (rr // {sh}) * {wq}")
    lo = [max(0, -(-(pw - qc) // sw)) for qc in range(sw)]
    hi = [min(wq, (p.iw - 1 + pw - qc) // sw + 1) for qc in range(sw)]
    mlo, mhi = max(lo), min(hi)
    a(f"          for t in range({mlo}, {mhi}):")
    for qc in range(sw):
        a(f"            xb[base + {qc * plane} + t] = x[n, c, r, t * {sw} + {qc - pw}]")
    for qc in range(sw):  # the columns only some phases have
        for r0, r1 in ((lo[qc], min(mlo, hi[qc])), (max(mhi, lo[qc]), hi[qc])):
            if r1 > r0:
                a(f"          for t in range({r0}, {r1}):")
                a(f"            xb[base + {qc * plane} + t] = x[n, c, r, t * {sw} + {qc - pw}]")


def _block(a, p, g, base: str, nb: int, ind: int) -> None:
    """Emit output channels ``base .. base+nb-1`` of image ``n``: input channels outer, then
    rows, then the vectorised loop along the row with ``nb`` accumulators."""
    sh, sw, hq, wq = p.sh, p.sw, g["hq"], g["wq"]
    plane, ohw = hq * wq, p.oh * p.ow
    taps = [(ky, kx) for ky in range(p.kh) for kx in range(p.kw)]
    i = " " * ind
    a(i + f"ob0 = n * {p.oc * ohw} + ({base}) * {ohw}")
    a(i + f"for c in range({p.ic}):")
    a(i + f"  cb = c * {sh * sw * plane}")
    for o in range(nb):
        for t, (ky, kx) in enumerate(taps):
            a(i + f"  w{o}_{t} = w[{base} + {o}, c, {ky}, {kx}]")
    a(i + f"  for y in range({p.oh}):")
    a(i + f"    xo = cb + y * {wq}")
    a(i + f"    oo = ob0 + y * {p.ow}")
    a(i + f"    for j in range({p.ow}):")
    for t, (ky, kx) in enumerate(taps):
        off = ((ky % sh) * sw + kx % sw) * plane + (ky // sh) * wq + kx // sw
        a(i + f"      v = xb[xo + j + {off}]")
        for o in range(nb):
            a(i + f"      a{o} {'=' if t == 0 else '+='} w{o}_{t} * v")
    for o in range(nb):
        a(i + "      if c == 0:")
        a(i + f"        of[oo + {o * ohw} + j] = a{o}")
        a(i + "      else:")
        a(i + f"        of[oo + {o * ohw} + j] += a{o}")


def _source(p, parallel: bool) -> str:
    g = geometry(p)
    deco = "@njit(parallel=True, fastmath=True, nogil=True)" if parallel else \
        "@njit(fastmath=True, cache=True, nogil=True)"
    L = ["import numpy as np", "from numba import njit, prange", "", deco, "def kern(x, w, out, xb):"]
    a = L.append
    a("    mb = x.shape[0]")
    a("    of = out.reshape(-1)")
    a("    for n in range(mb):")
    _fill(a, p, g)
    nfull = p.oc // BLOCK
    a(f"      for ob in prange({nfull}):")  # blocks write disjoint output channels
    _block(a, p, g, f"ob * {BLOCK}", BLOCK, 8)
    if p.oc % BLOCK:
        _block(a, p, g, str(nfull * BLOCK), p.oc % BLOCK, 6)
    return "\n".join(L) + "\n"


_KERNELS: dict = {}


def stem_kernel(p, parallel: bool):
    """The compiled kernel for ``p`` (:func:`fits`), specialised to its shape (serial builds
    cached on disk): ``kern(x, w, out, xb)`` with ``w`` the ``(oc, ic, kh, kw)`` weights and
    ``xb`` a zeroed scratch of :func:`geometry`'s ``size`` kept by the plan."""
    key = (p.ic, p.oc, p.ih, p.iw, p.oh, p.ow, p.kh, p.kw, p.sh, p.sw, p.ph, p.pw, parallel)
    if key not in _KERNELS:
        _KERNELS[key] = load_generated("stem", _source(p, parallel))["kern"]
    return _KERNELS[key]
