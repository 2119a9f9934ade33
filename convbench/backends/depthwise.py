"""Generated depthwise kernels for ``direct_numba``: 3x3 and 5x5 taps unrolled, stride 1 or 2.

For each (image, group) job the group's input planes (depthwise: one) are copied once into
a zero-bordered scratch that fits in L2, split into ``stride`` column phases
(``buf[c, q, r, j] = xpad[r, j*stride + q]``), so that every tap of every output row is a
contiguous run at a constant offset: the loop over the row is one fused multiply-add
expression of all ``kh*kw`` taps and vectorises (measured: a dynamic tap offset, or a
separate pass per tap, made LLVM give up and ran 8-15x slower). The input is read from
memory once and the output written once, the least traffic a depthwise layer can have.
The jobs run in one part per thread, each allocating and zeroing its scratch once (a job
rewrites the same interior and never the border): an allocation per job cost about as much as
a 7x7 or 14x14 plane's work (MobileNetV2 b12-b17: 1.2-1.5x faster without it, measured).
"""

from __future__ import annotations

from .codegen import load_generated

__all__ = ["SHAPES", "depthwise_kernel", "fits", "blocked_fits", "LANES", "BLOCKED_BELOW"]

#: (kernel, stride) pairs with a generated kernel (dilation 1)
SHAPES = ((3, 1), (3, 2), (5, 1), (5, 2))
MAX_ICG = 8
#: channels per vector in the channel-blocked kernel (8 float32 lanes of AVX2)
LANES = 8
#: strided outputs narrower than this take the channel-blocked kernel (pure depthwise only): a
#: row shorter than one vector runs the row kernel's scalar remainder alone. Measured on
#: MobileNetV2 at 1 thread against the row kernel: b14.dw (576 channels, 14 -> 7, stride 2)
#: 236 -> 173 us; at stride 1 (b15-17, 7x7) and at 14 wide the transposing copies cost more
#: than the vector arithmetic saves (136 -> 279 us, 165 -> 221 us), so those keep the row kernel
BLOCKED_BELOW = LANES


def fits(p) -> bool:
    """True when ``p`` (a forward problem) has a generated depthwise kernel."""
    return (p.rank == 2 and p.g > 1 and p.icg <= MAX_ICG and p.kh == p.kw and p.sh == p.sw and (p.kh, p.sh) in SHAPES
            and p.dh == 0 and p.dw == 0)


def _header(parallel: bool) -> list[str]:
    """The generated module's imports and the kernel's decorator (serial builds cached on disk)."""
    deco = "@njit(parallel=True, fastmath=True, nogil=True)" if parallel else \
        "@njit(fastmath=True, cache=True, nogil=True)"
    return ["import numpy as np", "from numba import njit, prange", "", deco]


def _source(k: int, s: int, parallel: bool, ph: int = 0, pw: int = 0) -> str:
    L = _header(parallel)
    a = L.append
    # the paddings are literals: with a run-time offset in an index numba cannot prove it
    # non-negative, adds its negative-index wraparound to every access and LLVM no longer
    # vectorises (measured 4-5x slower copies)
    a("def kern(x, w, out, icg, ocg, hp, wq, nchunk):")
    a(f"    ph = {ph}")
    a(f"    pw = {pw}")
    a("    mb, ic, ih, iw = x.shape")
    a("    oc = out.shape[1]")
    a("    oh = out.shape[2]")
    a("    ow = out.shape[3]")
    a("    g = ic // icg")
    a("    rh = min(ih, hp - ph)")
    a(f"    rw = min(iw, {s} * wq - pw)")
    # jobs (image, group) in nchunk runs, one scratch per run: allocated and zeroed once (a
    # job rewrites the same interior; the zero border is never written)
    a("    jobs = mb * g")
    a("    for part in prange(nchunk):")
    a(f"      buf = np.zeros((icg, {s}, hp, wq), dtype=x.dtype)")
    a("      for job in range(part * jobs // nchunk, (part + 1) * jobs // nchunk):")
    a("        n = job // g")
    a("        gi = job - n * g")
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


def blocked_fits(p) -> bool:
    """True when ``p`` (fitting a generated kernel) runs the channel-blocked kernel: pure
    depthwise (one input and one output channel per group) on small planes."""
    return fits(p) and p.icg == 1 and p.ocg == 1 and p.sh > 1 and p.ow < BLOCKED_BELOW


def _source_blocked(k: int, s: int, parallel: bool, ph: int, pw: int) -> str:
    """Small planes, vectorised over channels as oneDNN and XNNPACK do: a job is one image and
    :data:`LANES` channels, copied (transposed) into a zero-bordered channel-interleaved scratch
    ``buf[r, col, c]``; each output pixel is then one fused multiply-add expression over the
    ``k*k`` taps whose inner loop is the ``LANES`` channels (one vector), and the result is
    transposed back into the NCHW output."""
    L = _header(parallel)
    a = L.append
    a("def kern(x, w, out, hp, wp, nchunk):")
    a("    mb, C, ih, iw = x.shape")
    a("    oh = out.shape[2]")
    a("    ow = out.shape[3]")
    a("    rh = min(ih, hp - %d)" % ph)
    a("    rw = min(iw, wp - %d)" % pw)
    a(f"    nb = (C + {LANES - 1}) // {LANES}")
    a("    jobs = mb * nb")
    a("    for part in prange(nchunk):")
    a(f"      buf = np.zeros((hp, wp, {LANES}), dtype=x.dtype)")
    a(f"      ob = np.empty((oh, ow, {LANES}), dtype=x.dtype)")
    a(f"      wb = np.zeros(({k * k}, {LANES}), dtype=x.dtype)")
    a("      for job in range(part * jobs // nchunk, (part + 1) * jobs // nchunk):")
    a("        n = job // nb")
    a(f"        c0 = (job - n * nb) * {LANES}")
    a(f"        cn = min({LANES}, C - c0)")
    a("        for c in range(cn):")
    for ky in range(k):
        for kx in range(k):
            a(f"            wb[{ky * k + kx}, c] = w[c0 + c, 0, {ky}, {kx}]")
    a("            for r in range(rh):")
    a("                for col in range(rw):")
    a(f"                    buf[r + {ph}, col + {pw}, c] = x[n, c0 + c, r, col]")
    a("        for y in range(oh):")
    a(f"            y0 = y * {s}")
    a("            for j in range(ow):")
    a(f"                j0 = j * {s}")
    a(f"                for c in range({LANES}):")
    terms = " + ".join(f"wb[{ky * k + kx}, c] * buf[y0 + {ky}, j0 + {kx}, c]" for ky in range(k) for kx in range(k))
    a(f"                    ob[y, j, c] = {terms}")
    a("        for c in range(cn):")
    a("            for y in range(oh):")
    a("                for j in range(ow):")
    a("                    out[n, c0 + c, y, j] = ob[y, j, c]")
    return "\n".join(L) + "\n"


_KERNELS: dict = {}


def depthwise_kernel(k: int, s: int, parallel: bool, ph: int, pw: int, blocked: bool = False):
    """The compiled kernel for ``k x k`` taps at stride ``s`` and paddings ``ph, pw`` (serial
    builds cached on disk): ``kern(x, w, out, icg, ocg, hp, wq, nchunk)``; the (image, group)
    jobs run in ``nchunk`` parts (1 serial, the thread count parallel), each with one scratch
    allocated and zeroed once. ``blocked``: the channel-blocked small-plane kernel
    ``kern(x, w, out, hp, wp, nchunk)`` (:func:`blocked_fits`)."""
    key = (k, s, parallel, ph, pw, blocked)
    if key not in _KERNELS:
        src = (_source_blocked if blocked else _source)(k, s, parallel, ph, pw)
        _KERNELS[key] = load_generated("depthwise_cb" if blocked else "depthwise", src)["kern"]
    return _KERNELS[key]
