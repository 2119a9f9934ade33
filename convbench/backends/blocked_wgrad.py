"""The weight gradient on the channel-blocked micro-kernel (``direct_numba``, layout
``blocked_wgrad``).

``dw[oc, c, ky, kx] = sum over pixels P = (n, oy, ox) of dy[n, oc, oy, ox] * xpad[n, c, s*oy +
ky*d, s*ox + kx]``. With the input in a zero-bordered channels-last buffer, the values a pixel
multiplies for one kernel row, over ``(kx, c)``, are one contiguous run of ``kw * ic``. So the
micro-kernel of :mod:`.blocked` computes a tile of ``MR`` output channels x ``NR`` consecutive
values of that run, reducing over pixels: per pixel it loads the pixel's ``MR`` output
gradients (``dy`` packed per run into panels ``[panel][P][MR]``) and broadcasts ``NR`` input
values read at ``xtab[P] + ky*d*row + j`` (``xtab``: each pixel's offset in the buffer, made at
prepare; the stride lives there). No unfolded matrix is built. Pixels are taken in chunks whose
``dy`` panel stays in L2 across the tiles of every kernel row; each tile's result is added into
the ``(oc, kh, kw*ic)`` gradient.
"""

from __future__ import annotations

import numpy as np

from .blocked import NR, _panel
from .codegen import load_generated
from .simd import vector_lanes

__all__ = ["fits", "geometry", "wgrad_kernel"]

#: pixels per chunk: at 32 channels a panel, a 16 KiB slice of packed ``dy``, and the chunk's
#: input lines, stay in L1 across the tiles of every kernel row
CHUNK = 128
#: columns (pixels) per block of the per-run reorders
TB = 32


def fits(p) -> bool:
    """True when weight-gradient problem ``p`` runs this kernel: 1-D or 2-D, no groups, no
    horizontal dilation (the run of ``kw * ic`` values must be contiguous), at least 8 output
    channels and a run of at least one tile."""
    return (p.rank <= 2 and p.g == 1 and p.dw == 0 and p.oc >= 8 and p.kw * p.ic >= NR
            and p.dtype in ("float32", "float64"))


def geometry(p) -> dict:
    """Shape facts: panels (``mr`` channels, ``mb_v`` vectors, ``npanel``), the run length
    ``run = kw*ic``, the channels-last buffer ``hb x wb`` (the padded rows and columns the
    windows read), and the pixel count ``npix``."""
    it = np.dtype(p.dtype).itemsize
    lanes, _ = vector_lanes(it)
    mbv, nr = _panel(p.oc, it)
    mr = mbv * lanes
    return dict(mr=mr, mb_v=mbv, nr=nr, npanel=-(-p.oc // mr), run=p.kw * p.ic, hb=p.hp, wb=p.wp,
                npix=p.mb * p.oh * p.ow, lanes=lanes)


def pixel_offsets(p, g: dict) -> np.ndarray:
    """Each pixel's offset (its window's first value) in the channels-last buffer."""
    n, oy, ox = np.meshgrid(np.arange(p.mb), np.arange(p.oh), np.arange(p.ow), indexing="ij")
    return (((n * g["hb"] + oy * p.sh) * g["wb"] + ox * p.sw) * p.ic).astype(np.int64).reshape(-1)


def _source(p, g: dict, parallel: bool) -> str:
    it = np.dtype(p.dtype).itemsize
    nr, mbv, mr, run, npix = g["nr"], g["mb_v"], g["mr"], g["run"], g["npix"]
    full, tail = run // nr, run % nr
    hb, wb, ohw = g["hb"], g["wb"], p.oh * p.ow
    rh, rw = p.read_h, p.read_w
    deco = "@njit(parallel=True, fastmath=True, nogil=True)" if parallel else \
        "@njit(fastmath=True, cache=True, nogil=True)"
    L = ["import numpy as np", "from numba import njit, prange",
         "from convbench.backends.blocked import microkernel",
         f"mk = microkernel({nr}, {mbv}, {it * 8}, {g['lanes']}, True)"]
    if tail:
        L.append(f"mkt = microkernel({tail}, {mbv}, {it * 8}, {g['lanes']}, True)")
    L += ["", deco, "def kern(x, dy, dyp, xb, xtab, dwb):"]
    a = L.append
    a(f"    xf = x.reshape({p.mb}, {p.ic}, {p.ih * p.iw})")
    a(f"    df = dy.reshape({p.mb}, {p.oc}, {ohw})")
    # both reorders in blocks of TB columns/pixels: each block's reads and writes stay in L1
    a("    # the input into the channels-last buffer (its zero border is never written)")
    a(f"    for n in prange({p.mb}):")
    a(f"        for r in range({rh}):")
    a(f"            for t0 in range(0, {rw}, {TB}):")
    a(f"                tn = min({TB}, {rw} - t0)")
    a(f"                o = ((n * {hb} + r + {p.ph}) * {wb} + t0 + {p.pw}) * {p.ic}")
    a(f"                for c in range({p.ic}):")
    a(f"                    i0 = r * {p.iw} + t0")
    a("                    for t in range(tn):")
    a(f"                        xb[o + t * {p.ic} + c] = xf[n, c, i0 + t]")
    a("    # dy into panels [panel][pixel][MR] (the lanes past the last channel stay zero)")
    a(f"    for n in prange({p.mb}):")
    a(f"        for i0 in range(0, {ohw}, {TB}):")
    a(f"            tn = min({TB}, {ohw} - i0)")
    a(f"            for oc in range({p.oc}):")
    a(f"                pb = (oc // {mr}) * {npix * mr} + (n * {ohw} + i0) * {mr} + oc % {mr}")
    a("                for i in range(tn):")
    a(f"                    dyp[pb + i * {mr}] = df[n, oc, i0 + i]")
    nt = full + (1 if tail else 0)
    tsz = nr * mr
    a(f"    for pn in prange({g['npanel']}):")
    a("        # one accumulator tile per (kernel row, run tile), carried across the pixel chunks")
    a(f"        tb = np.zeros({p.kh * nt * tsz}, dtype=dwb.dtype)")
    a(f"        for c0 in range(0, {npix}, {CHUNK}):")
    a(f"            cn = min({CHUNK}, {npix} - c0)")
    a("            xt = xtab[c0:c0 + cn]")
    a(f"            wb0 = (pn * {npix} + c0) * {mr}")
    a(f"            for ky in range({p.kh}):")
    a(f"                kb = ky * {(p.dh + 1) * wb * p.ic}")
    a(f"                for jt in range({full}):")
    a(f"                    tt = (ky * {nt} + jt) * {tsz}")
    a(f"                    mk(dyp, wb0, xb, xt, kb + jt * {nr}, tb[tt:tt + {tsz}], cn)")
    if tail:
        a(f"                tt = (ky * {nt} + {full}) * {tsz}")
        a(f"                mkt(dyp, wb0, xb, xt, kb + {full * nr}, tb[tt:tt + {tsz}], cn)")
    a(f"        ob = pn * {mr * p.kh * run}")
    a(f"        for ky in range({p.kh}):")
    a(f"            for jt in range({nt}):")
    a(f"                w = min({nr}, {run} - jt * {nr})")
    a(f"                tt = (ky * {nt} + jt) * {tsz}")
    a(f"                for m in range({mr}):")
    a("                    for j in range(w):")
    a(f"                        dwb[ob + m * {p.kh * run} + ky * {run} + jt * {nr} + j] = tb[tt + j * {mr} + m]")
    return "\n".join(L) + "\n"


_KERNELS: dict = {}


def wgrad_kernel(p, g: dict, parallel: bool):
    """The compiled kernel for weight-gradient problem ``p`` (:func:`fits`), specialised to its
    shape: ``kern(x, dy, dyp, xb, xtab, dwb)`` with the buffers of :func:`buffers`; ``dwb``
    receives the ``(npanel*MR, kh, kw*ic)`` gradient."""
    src = _source(p, g, parallel)
    if src not in _KERNELS:
        _KERNELS[src] = load_generated("blocked_wgrad", src)["kern"]
    return _KERNELS[src]


def buffers(p, g: dict, dtype) -> dict:
    """The plan's buffers, zeroed once: ``xb`` the channels-last padded input, ``dyp`` the
    packed output gradient, ``dwb`` the padded gradient, ``xtab`` the pixel offsets."""
    dt = np.dtype(dtype)
    return dict(xb=np.zeros(p.mb * g["hb"] * g["wb"] * p.ic, dt), dyp=np.zeros(g["npanel"] * g["npix"] * g["mr"], dt),
                dwb=np.zeros(g["npanel"] * g["mr"] * p.kh * g["run"], dt), xtab=pixel_offsets(p, g))


def workspace(p, g: dict) -> int:
    """Bytes of :func:`buffers`."""
    it = np.dtype(p.dtype).itemsize
    return (p.mb * g["hb"] * g["wb"] * p.ic + g["npanel"] * g["npix"] * g["mr"]
            + g["npanel"] * g["mr"] * p.kh * g["run"]) * it + g["npix"] * 8
