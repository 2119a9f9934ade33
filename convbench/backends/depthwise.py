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

import numpy as np

from .codegen import load_generated
from .simd import vector_lanes

__all__ = ["SHAPES", "depthwise_kernel", "fits", "blocked_fits", "flat_fits", "flat_geometry", "flat_masks",
           "LANES", "BLOCKED_BELOW"]

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


def _tap_weights(a, k: int, index: str, indent: int) -> None:
    """Emit one scalar per tap, ``w{ky}_{kx} = w[index, ky, kx]``, read once per channel."""
    for ky in range(k):
        for kx in range(k):
            a(" " * indent + f"w{ky}_{kx} = w[{index}, {ky}, {kx}]")


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
    _tap_weights(a, k, "o, c", 16)
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


def flat_geometry(p) -> dict:
    """The whole-plane kernel's buffer geometry for ``p`` (:func:`flat_fits`): the input plane is
    split into ``s*s`` stride phases (``phase[qr, qc][r, t] = x[s*r + qr, s*t + qc]``), each
    ``hq x wq`` with ``wq == ow``, stored one after another in segments of ``seg`` values with
    ``lead`` zeros before the plane and enough after it. Tap ``(ky, kx)`` of output ``o = y*ow + j``
    then reads phase ``((ky - ph) % s, (kx - pw) % s)`` at ``o + dy*wq + dx`` with
    ``dy, dx = (ky - ph) // s, (kx - pw) // s``: one offset per tap for the whole plane. A read
    of row ``-1`` or ``hq`` lands in the zeros; a read of column ``-1`` or ``wq`` wraps into the
    neighbouring row, which the tap's column mask zeroes (those are padding positions, because
    ``s*wq >= iw``)."""
    s, k = p.sh, p.kh
    hq, wq = -(-p.ih // s), -(-p.iw // s)
    taps = []
    for ky in range(k):
        dy, qr = divmod(ky - p.ph, s)
        for kx in range(k):
            dx, qc = divmod(kx - p.pw, s)
            taps.append((ky, kx, qr, qc, dy, dx))
    dys, dxs = [t[4] for t in taps], [t[5] for t in taps]
    lead = max(0, -min(dys)) * wq + max(0, -min(dxs))
    last = (p.oh - 1 + max(dys)) * wq + p.ow - 1 + max(dxs)  # the largest read past the lead
    seg = lead + hq * wq + max(0, last - (hq * wq - 1))
    return dict(hq=hq, wq=wq, taps=taps, lead=lead, seg=seg, dxs=sorted({d for d in dxs if d != 0}))


def flat_fits(p) -> bool:
    """True when ``p`` runs the whole-plane kernel: pure depthwise with ``ow == ceil(iw / s)``
    (the "same" padding of every MobileNet-style layer).

    At stride 2 the plane's split into column phases is :func:`.simd.deinterleave2` (vector
    loads and shuffles, masked row ends). As a numba loop it stayed scalar on rows shorter than
    its vector body: measured interleaved at 1 thread against ONNX Runtime (SkylakeX kernels),
    MobileNetV2 b4.dw (56 -> 28) 76.9 us against 102.4 (the row kernel 128.4, the numba-loop
    split 163), b7.dw 26.6 against 44.2 (was 56.6), b14.dw 30.6 against 37.1 (was 44.3)."""
    return fits(p) and p.icg == 1 and p.ocg == 1 and p.ow == -(-p.iw // p.sw)


def flat_masks(p, dtype) -> np.ndarray:
    """``(max(1, len(dxs)), oh*ow)`` column masks of the whole-plane kernel: row ``i`` is 1 where
    output column ``j + dxs[i]`` lies inside the phase plane, 0 where the read wrapped."""
    g = flat_geometry(p)
    j = np.arange(p.oh * p.ow) % p.ow
    m = np.ones((max(1, len(g["dxs"])), p.oh * p.ow), dtype=dtype)
    for i, dx in enumerate(g["dxs"]):
        m[i] = (j + dx >= 0) & (j + dx < g["wq"])
    return m


#: a plane at least this large is copied in one loop (stride 1); a smaller one row by row
#: (measured on 7x7: the one-loop copy never reached its vector body, 49 -> 29 us for b15-17)
PLANE_COPY_MIN = 128


def _source_flat(p, parallel: bool) -> str:
    """Same-padded planes, vectorised over the whole output plane: each channel's plane is copied
    (split into stride phases) into a zero-bordered scratch (:func:`flat_geometry`), then every
    output of the plane is one fused multiply-add expression over the ``k*k`` taps at literal
    offsets, column-wrapped taps multiplied by their mask, written straight into the NCHW
    output. The loop runs over ``oh*ow`` values instead of ``ow``: a 7- or 14-wide row is
    shorter than one unrolled vector body, so the row kernel ran those planes in scalar code."""
    gm = flat_geometry(p)
    s, k, ih, iw = p.sh, p.kh, p.ih, p.iw
    wq, lead, seg = gm["wq"], gm["lead"], gm["seg"]
    n = p.oh * p.ow
    L = _header(parallel)
    L[-1:-1] = ["from convbench.backends.simd import deinterleave2",
                f"dein = deinterleave2({vector_lanes(1)[0]})", ""]
    a = L.append
    a("def kern(x, w, out, mask, nchunk):")
    a("    mb, C = x.shape[0], x.shape[1]")
    a("    xf = x.reshape(mb, C, -1)")
    a("    of = out.reshape(mb, C, -1)")
    a("    jobs = mb * C")
    a("    for part in prange(nchunk):")
    a(f"      buf = np.zeros({s * s * seg}, dtype=x.dtype)")
    a("      for job in range(part * jobs // nchunk, (part + 1) * jobs // nchunk):")
    a("        b = job // C")
    a("        c = job - b * C")
    _tap_weights(a, k, "c, 0", 8)
    if s == 1 and ih * iw >= PLANE_COPY_MIN:
        a(f"        for i in range({ih * iw}):")
        a(f"            buf[i + {lead}] = xf[b, c, i]")
    else:
        full = iw // s
        for qr in range(s):
            rows = len(range(qr, ih, s))
            if s == 2:  # two column phases: vector loads, shuffles, masked row ends (:func:`.simd.deinterleave2`)
                base = qr * s * seg + lead
                a(f"        dein(xf[b, c], {qr * iw}, {s * iw}, buf, {base}, {base + seg}, {wq}, {full}, {rows})")
                if iw % 2 == 0:
                    continue
            a(f"        for rr in range({rows}):")
            a(f"            r = rr * {s} + {qr}")
            a(f"            base = {qr * s * seg + lead} + rr * {wq}")
            if s != 2:  # every column phase in one loop
                a(f"            for t in range({full}):")
                for qc in range(s):
                    a(f"                buf[base + {qc * seg} + t] = x[b, c, r, t * {s} + {qc}]")
            for qc in range(iw - full * s):
                a(f"            buf[base + {qc * seg + full}] = x[b, c, r, {full * s + qc}]")
    groups = []
    for di, dx in enumerate([0] + gm["dxs"]):
        terms = " + ".join(f"w{ky}_{kx} * buf[i + {(qr * s + qc) * seg + lead + dy * wq + dx}]"
                           for (ky, kx, qr, qc, dy, ddx) in gm["taps"] if ddx == dx)
        groups.append(f"({terms})" if dx == 0 else f"mask[{di - 1}, i] * ({terms})")
    a(f"        for i in range({n}):")
    a(f"            of[b, c, i] = {' + '.join(groups)}")
    return "\n".join(L) + "\n"


_KERNELS: dict = {}


def flat_kernel(p, parallel: bool):
    """The compiled whole-plane kernel for ``p`` (:func:`flat_fits`), specialised to its shape
    (serial builds cached on disk): ``kern(x, w, out, mask, nchunk)`` with ``mask`` from
    :func:`flat_masks`; the (image, channel) jobs run in ``nchunk`` parts."""
    key = ("flat", p.kh, p.sh, p.ph, p.pw, p.ih, p.iw, p.oh, p.ow, parallel)
    if key not in _KERNELS:
        _KERNELS[key] = load_generated("depthwise_flat", _source_flat(p, parallel))["kern"]
    return _KERNELS[key]


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
