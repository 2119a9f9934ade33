"""Generated depthwise kernels for ``direct_numba``: 3x3 and 5x5 taps unrolled, stride 1 or 2.

For each (image, group) job the group's input planes (depthwise: one) are copied once into
a zero-bordered scratch that fits in L2, split into ``stride`` column phases
(``buf[c, q, r, j] = xpad[r, j*stride + q]``), so that every tap of every output row is a
contiguous run at a constant offset: the loop over the row is one fused multiply-add
expression of all ``kh*kw`` taps and vectorises (measured: a dynamic tap offset, or a
separate pass per tap, made LLVM give up and ran 8-15x slower). The input is read from
memory once and the output written once, the least traffic a depthwise layer can have.
"""

from __future__ import annotations

from .codegen import load_generated

__all__ = ["SHAPES", "depthwise_kernel", "fits"]

#: (kernel, stride) pairs with a generated kernel (dilation 1)
SHAPES = ((3, 1), (3, 2), (5, 1), (5, 2))
MAX_ICG = 8


def fits(p) -> bool:
    """True when ``p`` (a forward problem) has a generated depthwise kernel."""
    return (p.g > 1 and p.icg <= MAX_ICG and p.kh == p.kw and p.sh == p.sw and (p.kh, p.sh) in SHAPES
            and p.dh == 0 and p.dw == 0)


def _source(k: int, s: int, parallel: bool, ph: int = 0, pw: int = 0) -> str:
    deco = "@njit(parallel=True, fastmath=True, nogil=True)" if parallel else \
        "@njit(fastmath=True, cache=True, nogil=True)"
    L = []
    a = L.append
    a("import numpy as np")
    a("from numba import njit, prange")
    a("")
    a(deco)
    # the paddings are literals: with a run-time offset in an index numba cannot prove it
    # non-negative, adds its negative-index wraparound to every access and LLVM no longer
    # vectorises (measured 4-5x slower copies)
    a("def kern(x, w, out, icg, ocg, hp, wq):")
    a(f"    ph = {ph}")
    a(f"    pw = {pw}")
    a("    mb, ic, ih, iw = x.shape")
    a("    oc = out.shape[1]")
    a("    oh = out.shape[2]")
    a("    ow = out.shape[3]")
    a("    g = ic // icg")
    a("    rh = min(ih, hp - ph)")
    a(f"    rw = min(iw, {s} * wq - pw)")
    a("    for job in prange(mb * g):")
    a("        n = job // g")
    a("        gi = job - n * g")
    a(f"        buf = np.zeros((icg, {s}, hp, wq), dtype=x.dtype)")
    # full indices, no per-row views: a numba view costs a reference-count round trip, and
    # one per row and tap made this loop 5x slower than a copy (measured)
    a("        for c in range(icg):")
    a("            ch = gi * icg + c")
    a("            for r in range(rh):")
    if s == 1:
        a("                for col in range(rw):")
        a("                    buf[c, 0, r + ph, col + pw] = x[n, ch, r, col]")
    else:
        a(f"                t_lo = (pw + {s - 1}) // {s}")
        a(f"                t_hi = (rw + pw) // {s}")
        a("                for t in range(t_lo, t_hi):")
        for q in range(s):
            a(f"                    buf[c, {q}, r + ph, t] = x[n, ch, r, {s} * t + {q} - pw]")
        for rng in (f"range(min(rw, {s} * t_lo - pw))", f"range(max(0, {s} * t_hi - pw), rw)"):
            a(f"                for col in {rng}:")
            a("                    pc = col + pw")
            a(f"                    buf[c, pc % {s}, r + ph, pc // {s}] = x[n, ch, r, col]")
    a("        for m in range(ocg):")
    a("            o = gi * ocg + m")
    a("            for c in range(icg):")
    for ky in range(k):
        for kx in range(k):
            a(f"                w{ky}_{kx} = w[o, c, {ky}, {kx}]")
    a("                for y in range(oh):")
    a(f"                    y0 = y * {s}")
    terms = " + ".join(f"w{ky}_{kx} * buf[c, {kx % s}, y0 + {ky}, j + {kx // s}]"
                       for ky in range(k) for kx in range(k))
    a("                    if c == 0:")
    a("                        for j in range(ow):")
    a(f"                            out[n, o, y, j] = {terms}")
    a("                    else:")
    a("                        for j in range(ow):")
    a(f"                            out[n, o, y, j] += {terms}")
    return "\n".join(L) + "\n"


_KERNELS: dict = {}


def depthwise_kernel(k: int, s: int, parallel: bool, ph: int, pw: int):
    """The compiled kernel for ``k x k`` taps at stride ``s`` and paddings ``ph, pw`` (serial
    builds cached on disk): ``kern(x, w, out, icg, ocg, hp, wq)``."""
    key = (k, s, parallel, ph, pw)
    if key not in _KERNELS:
        _KERNELS[key] = load_generated("depthwise", _source(k, s, parallel, ph, pw))["kern"]
    return _KERNELS[key]
