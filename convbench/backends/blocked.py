"""Channel-blocked direct convolution for ``direct_numba`` (layout ``blocked``): output
channels in vector registers, the way MLAS's NCHWc and oneDNN's nChw16c kernels run.

The weights are packed at prepare into panels of ``MR`` output channels (``MR`` a multiple of
the vector width, zero rows past a group's last channel): panel ``p`` holds, for every
reduction index ``k = c*taps + t`` (input channel ``c`` of the group, tap ``t``), the ``MR``
weights of its channels contiguously. A micro-kernel computes ``NR`` consecutive output pixels
x ``MR`` channels in ``NR * MR / lanes`` vector accumulators that stay in registers for the
whole reduction: per ``k`` it loads ``MR / lanes`` weight vectors and broadcasts ``NR`` input
values, ``NR * MR / lanes`` fused multiply-adds. Input value ``k`` of pixel ``j`` is read at
``xbase + xtab[k] + j``, a table of offsets made at prepare: for a 1x1 convolution at stride
1 the offsets of the input channels' planes in ``x`` itself; otherwise of the taps in a scratch
holding each channel's zero-bordered stride phases (``phase[c, qy, qx][r, t] =
xpad[c, s*r + qy, s*t + qx]``, filled every run and timed with it, as MLAS's input reorder
is), where every tap of an output row is one contiguous run at a fixed offset. So strided,
padded and dilated problems need no unfolded copy: the table is Dukhan's indirection buffer
with one entry per reduction index instead of one per pixel and tap.

The micro-kernel is LLVM vector IR emitted through a numba intrinsic (``llvm.fma`` on
``<lanes x float>``): written as numba loops, with the accumulators in an array or in
scalars, LLVM kept them in memory or vectorised the reduction the wrong way (6-15 GFLOP/s
measured); the intrinsic runs a 2048x512 by 512x49 product at 112 GFLOP/s, 96% of this
machine's FMA peak, against OpenBLAS's 91 (SkylakeX kernels, one thread). The tile is written
to the NCHW output from registers (:func:`microkernel_nchw`): each vector of 16 channels x 7
pixels transposed by three stages of shuffles into channel rows, stored with masked stores. Copied
out through memory instead, a scalar load and store per value, it cost as much as a reduction of
64 input channels (1x1, 16 -> 96 channels at 112 px: 897 us, now 588).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from .codegen import load_generated
from .simd import vector_lanes

__all__ = ["beats_stem", "chosen", "fits", "geometry", "blocked_kernel", "microkernel", "microkernel_nchw",
           "pack_weights", "offsets", "vector_lanes"]

#: output pixels per micro-tile (every ResNet/MobileNet/VGG plane width is a multiple of 7)
NR = 7
#: at least this many reduction values (input channels x taps) per group
MIN_K = 16
#: at least this many output channels per group (fewer: the panel is mostly zero rows)
MIN_OCG = 8


def _panel(ocg: int, itemsize: int) -> tuple[int, int]:
    """``(vectors per panel, NR)`` for ``ocg`` output channels a group: the widest panel whose
    zero rows are fewest, within the register file (accumulators + weights + a broadcast)."""
    lanes, regs = vector_lanes(itemsize)
    best = None
    for mb in (3, 2, 1):
        nr = NR
        while nr * mb + mb + 1 > regs and nr > 1:
            nr -= 1
        if nr * mb + mb + 1 > regs:
            continue
        mr = mb * lanes
        waste = -(-ocg // mr) * mr - ocg
        if best is None or waste < best[0]:
            best = (waste, mb, nr)
    return best[1], best[2]


def fits(p) -> bool:
    """True when forward problem ``p`` runs the channel-blocked kernel: 1-D or 2-D, enough
    channels per group to fill a panel and a reduction long enough to amortise a tile."""
    return (p.rank <= 2 and p.icg * p.kh * p.kw >= MIN_K and p.ocg >= MIN_OCG
            and p.dtype in ("float32", "float64"))


def beats_stem(p) -> bool:
    """True when the blocked kernel should run a few-input-channel problem that :mod:`.stem`
    also fits: a reduction of at least 48 (7x7 on one channel, 5x5 or 7x7 on RGB) and 16 output
    channels, or a strided stem with at least 32. Measured interleaved, 1 thread, SkylakeX
    kernels, stem/blocked time: 7x7/2 RGB -> 64 at 224 px 1.64, 5x5 RGB -> 32 1.33, 7x7 grey ->
    16 at 1024 px 1.32, 3x3/2 RGB -> 32 (MobileNetV2's) 1.09; but 3x3 RGB -> 64 at stride 1
    0.97, 5x5 grey -> 16 0.95, 7x7 grey -> 8 0.68 (half the panel zero)."""
    return p.ocg >= 16 and (p.icg * p.kh * p.kw >= 48 or (p.ocg >= 32 and max(p.sh, p.sw) > 1))


def chosen(p) -> bool:
    """True when ``direct_numba`` runs forward problem ``p`` with this kernel (the depthwise
    kernels take pure depthwise problems first: they never reach :data:`MIN_OCG`)."""
    from . import stem
    return fits(p) and (not stem.fits(p) or beats_stem(p))


def geometry(p) -> dict:
    """The plan's shape facts for forward problem ``p``.

    ``direct``: a 1x1 stride-1 unpadded problem reads ``x`` itself; ``phases``: the stride
    phases the taps use, in scratch order; ``hq x wq``: a phase plane; ``rows x width``: the
    output as the tiles see it (one row of ``oh*ow`` pixels when ``wq == ow``, so tiles run
    across rows); ``mb_v``: vectors per panel; ``mr``: channels per panel; ``npg``: panels per
    group; ``k``: reduction length.
    """
    it = np.dtype(p.dtype).itemsize
    lanes, _ = vector_lanes(it)
    mbv, nr = _panel(p.ocg, it)
    mr = mbv * lanes
    dy, dx = p.dh + 1, p.dw + 1
    taps = [(ky, kx) for ky in range(p.kh) for kx in range(p.kw)]
    direct = (p.kh == p.kw == 1 and p.sh == p.sw == 1 and p.ph == p.pw == 0 and p.oh == p.ih and p.ow == p.iw)
    hq = p.oh + (p.ext_h - 1) // p.sh
    wq = p.ow + (p.ext_w - 1) // p.sw
    phases = sorted({((ky * dy) % p.sh, (kx * dx) % p.sw) for ky, kx in taps})
    if direct:
        hq, wq, phases = p.ih, p.iw, [(0, 0)]
    flat = wq == p.ow
    rows, width = (1, p.oh * p.ow) if flat else (p.oh, p.ow)
    cstride = len(phases) * hq * wq
    return dict(direct=direct, phases=phases, hq=hq, wq=wq, rows=rows, width=width, pitch=wq, mb_v=mbv,
                nr=nr, mr=mr, npg=-(-p.ocg // mr), k=p.icg * len(taps), cstride=cstride, taps=taps,
                scratch=0 if direct else p.ic * cstride)


def pack_weights(w: np.ndarray, p, g: dict) -> np.ndarray:
    """``(oc, icg, kh, kw)`` weights as panels: ``[group, panel, k, MR]`` flattened, zero rows
    past each group's last channel."""
    mr, npg, k = g["mr"], g["npg"], g["k"]
    wg = np.zeros((p.g, npg * mr, k), dtype=w.dtype)
    wg[:, :p.ocg] = w.reshape(p.g, p.ocg, k)
    return np.ascontiguousarray(wg.reshape(p.g, npg, mr, k).transpose(0, 1, 3, 2)).reshape(-1)


def offsets(p, g: dict) -> np.ndarray:
    """Offset of reduction index ``k = c*taps + t`` of group 0 from a tile's first pixel."""
    dy, dx = p.dh + 1, p.dw + 1
    if g["direct"]:
        return np.arange(p.icg, dtype=np.int64) * (p.ih * p.iw)
    plane = g["hq"] * g["wq"]
    pidx = {ph: i for i, ph in enumerate(g["phases"])}
    tab = [c * g["cstride"] + pidx[((ky * dy) % p.sh, (kx * dx) % p.sw)] * plane
           + ((ky * dy) // p.sh) * g["wq"] + (kx * dx) // p.sw
           for c in range(p.icg) for ky, kx in g["taps"]]
    return np.asarray(tab, dtype=np.int64)


def _reduction(builder, nr, mbv, bits, lanes, wptr, wb, xptr, xtp, xb, cnt, init):
    """Emit the micro-kernel's reduction: ``nr x mbv`` vector accumulators (allocas that never
    escape, so SROA/mem2reg keep them in registers) starting at ``init(j, b)``; returns their
    final values."""
    from llvmlite import ir
    from numba.core import cgutils

    ft = ir.FloatType() if bits == 32 else ir.DoubleType()
    vt = ir.VectorType(ft, lanes)
    i64 = ir.IntType(64)
    mr = mbv * lanes
    fma = cgutils.get_or_insert_function(builder.module, ir.FunctionType(vt, [vt, vt, vt]),
                                         f"llvm.fma.v{lanes}f{bits}")
    undef = ir.Constant(vt, ir.Undefined)
    splat = ir.Constant(ir.VectorType(ir.IntType(32), lanes), [0] * lanes)
    acc = [[cgutils.alloca_once_value(builder, init(j, b)) for b in range(mbv)] for j in range(nr)]
    with cgutils.for_range(builder, cnt) as loop:
        k = loop.index
        wv0 = builder.bitcast(builder.gep(wptr, [builder.add(wb, builder.mul(k, ir.Constant(i64, mr)))]),
                              vt.as_pointer())
        wv = [builder.load(builder.gep(wv0, [ir.Constant(i64, b)]), align=bits // 8) for b in range(mbv)]
        xo = builder.add(builder.load(builder.gep(xtp, [k])), xb)
        for j in range(nr):
            s = builder.load(builder.gep(xptr, [builder.add(xo, ir.Constant(i64, j))]))
            bc = builder.shuffle_vector(builder.insert_element(undef, s, ir.Constant(ir.IntType(32), 0)), undef, splat)
            for b in range(mbv):
                builder.store(builder.call(fma, [wv[b], bc, builder.load(acc[j][b])]), acc[j][b])
    return [[builder.load(acc[j][b]) for b in range(mbv)] for j in range(nr)]


@lru_cache(maxsize=None)
def microkernel(nr: int, mbv: int, bits: int, lanes: int, accumulate: bool = False):
    """The numba intrinsic ``mk(wp, wbase, xf, xtab, xbase, tile, n)``: for ``k < n``,
    ``acc[j] += wp[wbase + k*MR : +MR] * xf[xbase + xtab[k] + j]`` for ``j < nr``, the
    ``nr x MR`` accumulators in registers; then ``tile[j*MR + m] = acc[j][m]``. The
    accumulators start at zero, or (``accumulate``) at ``tile[j*MR + m]``, so that a long
    reduction can be taken in cache-sized parts. ``tile`` is read and written from index 0:
    pass a view."""
    from llvmlite import ir
    from numba import types
    from numba.extending import intrinsic

    ft = ir.FloatType() if bits == 32 else ir.DoubleType()
    vt = ir.VectorType(ft, lanes)
    i64 = ir.IntType(64)

    @intrinsic
    def mk(typingctx, wp, wbase, xf, xtab, xbase, tile, n):
        sig = types.void(wp, wbase, xf, xtab, xbase, tile, n)

        def codegen(context, builder, signature, args):
            wpa, wb, xa, xta, xb, ta, cnt = args

            def data(i, v):
                return context.make_array(signature.args[i])(context, builder, v).data

            tv = builder.bitcast(data(5, ta), vt.as_pointer())

            def init(j, b):
                if accumulate:
                    return builder.load(builder.gep(tv, [ir.Constant(i64, j * mbv + b)]), align=bits // 8)
                return ir.Constant(vt, [0.0] * lanes)
            acc = _reduction(builder, nr, mbv, bits, lanes, data(0, wpa), wb, data(2, xa), data(3, xta), xb,
                             cnt, init)
            for j in range(nr):
                for b in range(mbv):
                    builder.store(acc[j][b], builder.gep(tv, [ir.Constant(i64, j * mbv + b)]), align=bits // 8)
            return context.get_dummy_value()

        return sig, codegen

    return mk


def _transpose_plan(lanes: int) -> tuple:
    """Shuffle stages that turn ``8`` vectors of ``lanes`` channels (pixel ``j``'s, ``j < 8``)
    into ``8`` vectors of ``lanes/8`` channels x 8 pixels (channel-major): per stage a list of
    ``(source a, source b, mask)``, masks over the concatenation of a and b. Labels are
    ``(pixel, channel)``; pairs of vectors with the same channels and adjacent pixel groups
    are merged, each output keeping half of the channels."""
    vecs = [[(j, m) for m in range(lanes)] for j in range(8)]
    stages = []
    width = 1
    while width < 8:
        nxt, ops = [], []
        for i in range(0, len(vecs), 2):
            a, b = vecs[i], vecs[i + 1]
            chans = sorted({m for _, m in a})
            for half in (chans[:len(chans) // 2], chans[len(chans) // 2:]):
                want = [(j, m) for m in half for j in sorted({j for j, _ in a + b})]
                pos = {lab: k for k, lab in enumerate(a + b)}
                ops.append((i, i + 1, [pos[lab] for lab in want]))
                nxt.append(want)
        # regroup so that the next stage pairs vectors of the same channels
        order = sorted(range(len(nxt)), key=lambda k: (min(m for _, m in nxt[k]), min(j for j, _ in nxt[k])))
        stages.append((ops, order))
        vecs = [nxt[k] for k in order]
        width *= 2
    return stages, vecs


@lru_cache(maxsize=None)
def microkernel_nchw(nr: int, mbv: int, bits: int, lanes: int):
    """The numba intrinsic ``mk(wp, wbase, xf, xtab, xbase, n, out, obase, ostride, nm)``: the
    reduction of :func:`microkernel`, then the ``nr`` pixels of channel ``m < nm`` written to
    ``out[obase + m*ostride + j]``: each vector of 16 (8) channels x up to 8 pixels transposed in
    registers by three stages of shuffles and stored as channel rows with a masked store (as
    a loop of scalar copies through a tile, the transposition cost as much as a reduction of 64
    input channels). Needs ``nr <= 8`` and ``lanes`` a multiple of 8."""
    from llvmlite import ir
    from numba import types
    from numba.core import cgutils
    from numba.extending import intrinsic

    assert nr <= 8 and lanes % 8 == 0
    ft = ir.FloatType() if bits == 32 else ir.DoubleType()
    vt, v8 = ir.VectorType(ft, lanes), ir.VectorType(ft, 8)
    i64, i32, i1 = ir.IntType(64), ir.IntType(32), ir.IntType(1)
    stages, final = _transpose_plan(lanes)
    per = lanes // 8  # channels per final vector

    @intrinsic
    def mk(typingctx, wp, wbase, xf, xtab, xbase, n, out, obase, ostride, nm):
        sig = types.void(wp, wbase, xf, xtab, xbase, n, out, obase, ostride, nm)

        def codegen(context, builder, signature, args):
            wpa, wb, xa, xta, xb, cnt, oa, ob, ost, nmv = args

            def data(i, v):
                return context.make_array(signature.args[i])(context, builder, v).data

            zero = ir.Constant(vt, [0.0] * lanes)
            acc = _reduction(builder, nr, mbv, bits, lanes, data(0, wpa), wb, data(2, xa), data(3, xta), xb,
                             cnt, lambda j, b: zero)
            optr = data(6, oa)
            ptr = optr.type
            mstore = cgutils.get_or_insert_function(
                builder.module, ir.FunctionType(ir.VoidType(), [v8, ptr, i32, ir.VectorType(i1, 8)]),
                f"llvm.masked.store.v8f{bits}.p0")
            mask = ir.Constant(ir.VectorType(i1, 8), [1 if j < nr else 0 for j in range(8)])
            for b in range(mbv):
                vecs = [acc[j][b] if j < nr else zero for j in range(8)]
                for ops, order in stages:
                    nxt = [builder.shuffle_vector(vecs[i], vecs[k], ir.Constant(ir.VectorType(i32, lanes), m))
                           for i, k, m in ops]
                    vecs = [nxt[o] for o in order]
                for v, labels in zip(vecs, final):
                    for h in range(per):
                        m = labels[h * 8][1]  # this half's channel within the vector block
                        ch = ir.Constant(i64, b * lanes + m)
                        row = builder.shuffle_vector(v, v, ir.Constant(ir.VectorType(i32, 8),
                                                                          list(range(h * 8, h * 8 + 8))))
                        with cgutils.if_likely(builder, builder.icmp_signed("<", ch, nmv)):
                            dst = builder.gep(optr, [builder.add(ob, builder.mul(ch, ost))])
                            builder.call(mstore, [row, dst, ir.Constant(i32, bits // 8), mask])
            return context.get_dummy_value()

        return sig, codegen

    return mk


def _paired(p, g, qy) -> bool:
    """True when row phase ``qy`` of a stride-2 fill splits each source row into both column
    phases with one :func:`.simd.deinterleave2` call: both phases used, and every column's
    place inside its phase row."""
    n = p.iw // 2
    return (p.sw == 2 and (qy, 0) in g["phases"] and (qy, 1) in g["phases"]
            and n >= 1 and n - 1 + (p.pw + 1) // 2 < g["wq"] and (p.iw % 2 == 0 or (p.iw - 1 + p.pw) // 2 < g["wq"]))


def _fill(a, p, g) -> None:
    """Emit the copy of image ``n`` into its used stride phases (interior only: the scratch's
    zero border is never written). At stride 2 both column phases of a row come from one
    vectorised split (:func:`.simd.deinterleave2`); as a loop of strided reads it stayed scalar
    (ResNet-50's 128-channel 56 px input: about 8% of the layer)."""
    plane = g["hq"] * g["wq"]
    pidx = {ph: i for i, ph in enumerate(g["phases"])}
    done = set()
    for i, (qy, qx) in enumerate(g["phases"]):
        r0 = max(0, -(-(p.ph - qy) // p.sh))
        r1 = min(g["hq"], (p.ih - 1 + p.ph - qy) // p.sh + 1)
        if r1 <= r0 or (qy, qx) in done:
            continue
        if _paired(p, g, qy):
            # source column col lands in phase (col + pw) % 2 at t = (col + pw) // 2
            ie, io = pidx[(qy, p.pw % 2)], pidx[(qy, (p.pw + 1) % 2)]
            done |= {(qy, 0), (qy, 1)}
            a(f"        for c in range({p.ic}):")
            a(f"            ib = c * {p.ih * p.iw} + ({r0 * p.sh + qy - p.ph}) * {p.iw}")
            a(f"            ob = c * {g['cstride']} + {r0 * g['wq']}")
            a(f"            dein(xn, ib, {p.sh * p.iw}, xb, ob + {ie * plane + p.pw // 2}, "
              f"ob + {io * plane + (p.pw + 1) // 2}, {g['wq']}, {p.iw // 2}, {r1 - r0})")
            if p.iw % 2:
                a(f"            for r in range({r1 - r0}):")
                a(f"                xb[ob + {ie * plane + (p.iw - 1 + p.pw) // 2} + r * {g['wq']}] = "
                  f"xn[ib + r * {p.sh * p.iw} + {p.iw - 1}]")
            continue
        t0 = max(0, -(-(p.pw - qx) // p.sw))
        t1 = min(g["wq"], (p.iw - 1 + p.pw - qx) // p.sw + 1)
        if t1 <= t0:
            continue
        a(f"        for c in range({p.ic}):")
        a(f"            for r in range({r0}, {r1}):")
        a(f"                ob = c * {g['cstride']} + {i * plane} + r * {g['wq']}")
        a(f"                ib = c * {p.ih * p.iw} + (r * {p.sh} + {qy - p.ph}) * {p.iw} + {qx - p.pw}")
        a(f"                for t in range({t0}, {t1}):")
        a(f"                    xb[ob + t] = xn[ib + t * {p.sw}]")


def _source(p, g: dict, parallel: bool) -> str:
    """A driver specialised to ``p``'s geometry: per image, fill the phases, then per (group,
    panel) in parallel, every micro-tile of every output row, each written to the NCHW output
    (transposed in registers, :func:`microkernel_nchw`; through a tile where the vector width
    is not a multiple of 8 values, float64 on 256-bit vectors)."""
    it = np.dtype(p.dtype).itemsize
    lanes, _ = vector_lanes(it)
    nr, mbv, mr, npg, k = g["nr"], g["mb_v"], g["mr"], g["npg"], g["k"]
    ohw = p.oh * p.ow
    width, rows = g["width"], g["rows"]
    full, tail = width // nr, width % nr
    deco = "@njit(parallel=True, fastmath=True, nogil=True)" if parallel else \
        "@njit(fastmath=True, cache=True, nogil=True)"
    nchw = nr <= 8 and lanes % 8 == 0
    kind = "microkernel_nchw" if nchw else "microkernel"
    L = ["import numpy as np", "from numba import njit, prange",
         f"from convbench.backends.blocked import {kind}",
         f"mk = {kind}({nr}, {mbv}, {it * 8}, {lanes})",
         "from convbench.backends.simd import deinterleave2",
         f"dein = deinterleave2({lanes * it})"]
    if tail:
        L.append(f"mkt = {kind}({tail}, {mbv}, {it * 8}, {lanes})")
    L += ["", deco, "def kern(x, wp, xtab, out, xb):"]
    a = L.append
    a("    mb = x.shape[0]")
    a("    of = out.reshape(-1)")
    a("    for n in range(mb):")
    a(f"        xn = x[n].reshape({p.ic * p.ih * p.iw})")
    if g["direct"]:
        a("        src = xn")
        cst = p.ih * p.iw
    else:
        _fill(a, p, g)
        a("        src = xb")
        cst = g["cstride"]
    a(f"        for pp in prange({p.g * npg}):")
    a(f"            gi = pp // {npg}")
    a(f"            m0 = (pp - gi * {npg}) * {mr}")
    a(f"            nm = min({mr}, {p.ocg} - m0)")
    a(f"            ob = n * {p.oc * ohw} + (gi * {p.ocg} + m0) * {ohw}")
    a(f"            xg = gi * {p.icg * cst}")
    if nchw:  # the micro-kernel writes its pixels' channel rows itself
        a(f"            for r in range({rows}):")
        a(f"                for jt in range({full}):")
        a(f"                    mk(wp, pp * {k * mr}, src, xtab, xg + r * {g['pitch']} + jt * {nr}, {k}, of, "
          f"ob + r * {width} + jt * {nr}, {ohw}, nm)")
        if tail:
            a(f"                mkt(wp, pp * {k * mr}, src, xtab, xg + r * {g['pitch']} + {full * nr}, {k}, of, "
              f"ob + r * {width} + {full * nr}, {ohw}, nm)")
        return "\n".join(L) + "\n"
    a(f"            tile = np.empty({nr * mr}, dtype=wp.dtype)")
    a(f"            for r in range({rows}):")
    a(f"                for jt in range({full}):")
    a(f"                    mk(wp, pp * {k * mr}, src, xtab, xg + r * {g['pitch']} + jt * {nr}, tile, {k})")
    a(f"                    o0 = ob + r * {width} + jt * {nr}")
    a("                    for m in range(nm):")
    a(f"                        for j in range({nr}):")
    a(f"                            of[o0 + m * {ohw} + j] = tile[j * {mr} + m]")
    if tail:
        a(f"                mkt(wp, pp * {k * mr}, src, xtab, xg + r * {g['pitch']} + {full * nr}, tile, {k})")
        a(f"                o0 = ob + r * {width} + {full * nr}")
        a("                for m in range(nm):")
        a(f"                    for j in range({tail}):")
        a(f"                        of[o0 + m * {ohw} + j] = tile[j * {mr} + m]")
    return "\n".join(L) + "\n"


_KERNELS: dict = {}


def blocked_kernel(p, g: dict, parallel: bool):
    """The compiled driver for forward problem ``p`` (:func:`fits`, :func:`geometry` ``g``),
    specialised to its shape (serial builds cached on disk): ``kern(x, wp, xtab, out, xb)``
    with ``x`` ``(mb, ic, ih, iw)``, ``out`` ``(mb, oc, oh, ow)`` and ``xb`` a zeroed scratch
    of ``g["scratch"]`` values kept by the plan."""
    src = _source(p, g, parallel)
    if src not in _KERNELS:
        _KERNELS[src] = load_generated("blocked", src)["kern"]
    return _KERNELS[src]
