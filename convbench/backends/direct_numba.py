"""``direct_numba``: the direct convolution loop nest, compiled with numba.

Several loop nests, chosen in ``prepare`` from the shape, because no single loop order
is good for both a 64-channel ResNet layer and a one-channel image:

``blocked`` (1-D and 2-D, at least 8 output channels per group, a reduction of 16)
    Channel-blocked direct convolution (:mod:`.blocked`): 16-48 output channels in vector
    registers against 7 output pixels, an LLVM-IR micro-kernel through a numba intrinsic,
    each input value read through a table of offsets into the zero-bordered stride phases of
    the input (no unfold). Strided backward data runs as one stride-1 forward problem per
    phase of ``dx`` (:mod:`.polyphase`, layout ``polyphase``), and the weight gradient on the
    same micro-kernel (:mod:`.blocked_wgrad`, layout ``blocked_wgrad``).

``nhwc`` (register-blocked, many channels per group: 3-D, few output channels)
    The input is copied once per run to a zero-padded NHWC buffer, so for one output
    pixel and one kernel row the taps it needs are one contiguous run of
    ``kw * ic`` values (or ``kw`` runs of ``ic/g`` values with groups or horizontal
    dilation). Each work item computes a block of 4 output channels x 4 output
    pixels in 16 scalar accumulators; the innermost loop runs along that contiguous
    run and LLVM vectorises it (``fastmath`` allows the reassociation), so every
    vector of inputs is loaded once for 4 channels and every vector of weights once
    for 4 pixels. Output channels and columns are padded up to multiples of 4 (the
    weights with zero rows), so there is no tail code; the padding work is counted
    in ``flops_executed``. Measured while choosing this design: a naive NCHW
    multiply-accumulate loop ran at 25 GFLOP/s on ``mb1ic64ih56oc64kh3ph1``, this
    nest at ~130 GFLOP/s on one core.

    With few channels per group (ResNeXt's 4 or 8), the groups are folded into the images
    instead: each group gets its own channels-last buffer, so a kernel row's taps of a group
    are one contiguous run of ``kw * ic/g`` values, and the same 4x4 nest runs with the
    group's weights (measured interleaved against ``rows``, 1 thread: 3-D g16 64->64 at
    8x28x28 26.9 -> 5.3 ms, 2-D g4 48->48 7x7 at 28 px 11.6 -> 1.2 ms, 1-D g2 16->16 k5 at
    4096 1.0 -> 0.33 ms).

``depthwise`` (few channels per group, 3x3 or 5x5, stride 1 or 2)
    Generated kernels (:mod:`.depthwise`): every tap a contiguous run of an L2-resident
    stride-phase plane, all taps of a row fused in one vectorised expression.
    ``depthwise_flat``: pure depthwise with "same" padding (every MobileNet layer), the same
    expression over the whole output plane at once (edge columns masked), so 7- and 14-wide
    planes run in vector code too; ``depthwise_cb``: narrow strided planes otherwise,
    vectorised over 8 channels.

``stem`` (one to four input channels, no groups: RGB stems, grey images)
    Generated kernels (:mod:`.stem`): the image split into stride phases once, then per block
    of 4 output channels a vectorised loop along the output row with one accumulator per
    channel, each tap's input vector loaded once for the 4 of them.

``rows`` (the other few-channels-per-group cases)
    Vectorised along an output row: for each tap, ``acc[j] += w * x[j*sw + ...]``,
    four taps fused per pass over the row to cut the accumulator traffic four-fold.

Both parallelise with ``prange`` over (image, channel block, output row) when more
than one thread is allowed and the problem is big enough; with one thread a serial
build of the same loop runs. Compilation happens in ``prepare`` (serial builds are
cached on disk by numba), never in a timed run. Stride, padding (including asymmetric), dilation and groups are all
supported; the transposed convolution runs as the forward loop on the
stride-dilated input with the flipped, transposed kernel.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..flops import dense_flops, prod
from ..problem import ConvProblem
from . import blocked, blocked_wgrad, depthwise, polyphase, stem
from .base import Backend, Capabilities, Estimate, Plan, fill_padded, volume
from .layout import to_channels_last, warm

try:  # numba is a hard dependency, but keep `convbench list` working without it
    import numba
    from numba import njit, prange
except ImportError:  # pragma: no cover - reported by unavailable_reason
    numba = None

BLOCK = 4  # output channels x output pixels per register block


def _ceil_to(n: int, m: int) -> int:
    return -(-n // m) * m


if numba is not None:
    def _nhwc_4x4(xf, wf, out, sh, dhp, swc, nseg, segstep, seglen, icg, ocg4, zero, vol, gfold):
        # xf: (mb, dp*hp, cols*ic) padded NDHWC, one image row flattened (dp = 1 in 2-D)
        # wf: (g*ocg4, kd*kh, nseg*seglen); out: (mb, g*ocg4, od*oh, owp), owp % 4 == 0
        # vol: (oh, hp, sd, dilated depth step, kd) -- the depth axis folded into the rows
        # gfold > 1: the groups are folded into the images, each with its own channels-last
        # buffer: xf (mb*g, dp*hp, cols*icg), out (mb*g, ocg4, od*oh, owp), image n has group n % g
        mb, ocp, ohh, owp = out.shape
        oh, hp, sd, ddp, kd = vol
        kh = wf.shape[1] // kd
        nob = ocp // 4
        per_img = nob * ohh
        for job in prange(mb * per_img):
            n = job // per_img
            rem = job - n * per_img
            ob = rem // ohh
            yy = rem - ob * ohh
            z = yy // oh
            y = yy - z * oh
            o0 = ob * 4
            goff = (o0 // ocg4) * icg
            wo = (n % gfold) * ocg4 + o0
            for x0 in range(0, owp, 4):
                a00 = a01 = a02 = a03 = zero
                a10 = a11 = a12 = a13 = zero
                a20 = a21 = a22 = a23 = zero
                a30 = a31 = a32 = a33 = zero
                for rr in range(kd * kh):
                    a_ = rr // kh
                    r = rr - a_ * kh
                    row = (z * sd + a_ * ddp) * hp + y * sh + r * dhp
                    for sg in range(nseg):
                        b = x0 * swc + sg * segstep + goff
                        wb = sg * seglen
                        x0r = xf[n, row, b:b + seglen]
                        x1r = xf[n, row, b + swc:b + swc + seglen]
                        x2r = xf[n, row, b + 2 * swc:b + 2 * swc + seglen]
                        x3r = xf[n, row, b + 3 * swc:b + 3 * swc + seglen]
                        w0r = wf[wo, rr, wb:wb + seglen]
                        w1r = wf[wo + 1, rr, wb:wb + seglen]
                        w2r = wf[wo + 2, rr, wb:wb + seglen]
                        w3r = wf[wo + 3, rr, wb:wb + seglen]
                        for j in range(seglen):
                            v0 = x0r[j]
                            v1 = x1r[j]
                            v2 = x2r[j]
                            v3 = x3r[j]
                            c0 = w0r[j]
                            c1 = w1r[j]
                            c2 = w2r[j]
                            c3 = w3r[j]
                            a00 += c0 * v0
                            a01 += c0 * v1
                            a02 += c0 * v2
                            a03 += c0 * v3
                            a10 += c1 * v0
                            a11 += c1 * v1
                            a12 += c1 * v2
                            a13 += c1 * v3
                            a20 += c2 * v0
                            a21 += c2 * v1
                            a22 += c2 * v2
                            a23 += c2 * v3
                            a30 += c3 * v0
                            a31 += c3 * v1
                            a32 += c3 * v2
                            a33 += c3 * v3
                out[n, o0, yy, x0] = a00
                out[n, o0, yy, x0 + 1] = a01
                out[n, o0, yy, x0 + 2] = a02
                out[n, o0, yy, x0 + 3] = a03
                out[n, o0 + 1, yy, x0] = a10
                out[n, o0 + 1, yy, x0 + 1] = a11
                out[n, o0 + 1, yy, x0 + 2] = a12
                out[n, o0 + 1, yy, x0 + 3] = a13
                out[n, o0 + 2, yy, x0] = a20
                out[n, o0 + 2, yy, x0 + 1] = a21
                out[n, o0 + 2, yy, x0 + 2] = a22
                out[n, o0 + 2, yy, x0 + 3] = a23
                out[n, o0 + 3, yy, x0] = a30
                out[n, o0 + 3, yy, x0 + 1] = a31
                out[n, o0 + 3, yy, x0 + 2] = a32
                out[n, o0 + 3, yy, x0 + 3] = a33

    def _rows(xp, w, out, sh, sw, dhp, dwp, icg, ocg, vol):
        # xp: (mb, ic, dp*hp, wp) padded NCDHW; w: (oc, icg, kd*kh, kw);
        # out: (mb, oc, od*oh, ow) zeroed; vol as in _nhwc_4x4
        mb, oc, ohh, ow = out.shape
        oh, hp, sd, ddp, kd = vol
        kh = w.shape[2] // kd
        kw = w.shape[3]
        span = (ow - 1) * sw + 1
        per_img = oc * ohh
        for job in prange(mb * per_img):
            n = job // per_img
            rem = job - n * per_img
            o = rem // ohh
            yy = rem - o * ohh
            z = yy // oh
            y = yy - z * oh
            cb = (o // ocg) * icg
            acc = out[n, o, yy]
            for c in range(icg):
                for rr in range(kd * kh):
                    a_ = rr // kh
                    r = rr - a_ * kh
                    xr = xp[n, cb + c, (z * sd + a_ * ddp) * hp + y * sh + r * dhp]
                    s = 0
                    while s + 4 <= kw:
                        w0 = w[o, c, rr, s]
                        w1 = w[o, c, rr, s + 1]
                        w2 = w[o, c, rr, s + 2]
                        w3 = w[o, c, rr, s + 3]
                        x0 = xr[s * dwp:s * dwp + span:sw]
                        x1 = xr[(s + 1) * dwp:(s + 1) * dwp + span:sw]
                        x2 = xr[(s + 2) * dwp:(s + 2) * dwp + span:sw]
                        x3 = xr[(s + 3) * dwp:(s + 3) * dwp + span:sw]
                        for j in range(ow):
                            acc[j] += w0 * x0[j] + w1 * x1[j] + w2 * x2[j] + w3 * x3[j]
                        s += 4
                    while s < kw:
                        w0 = w[o, c, rr, s]
                        x0 = xr[s * dwp:s * dwp + span:sw]
                        for j in range(ow):
                            acc[j] += w0 * x0[j]
                        s += 1

    def _wgrad(xc, dyc, out, sh, sw, dhp, dwp, vol):
        # xc: (mb, dp*hp, wp, ic) zero-padded channels-last input; dyc: (mb, od*oh, ow, oc)
        # channels-last output gradient; out: (g, kd*kh, kw, icg, ocg); vol as in _nhwc_4x4.
        # One job per (group, tap, block of 4 input channels): every (image, output pixel)
        # adds the outer product of 4 input values and the pixel's ocg output gradients
        # into 4 accumulator rows (4 x ocg, L1-resident), a contiguous vectorised stream.
        # Measured against the per-channel-pair loop it replaced (rows of ow taps, 1 thread):
        # mb1ic192ih13oc384kh3ph1 167 -> 26 ms, mb1ic3ih224oc64kh11sh4ph2 67 -> 51 ms.
        mb = xc.shape[0]
        ohh, ow = dyc.shape[1], dyc.shape[2]
        oh, hp, sd, ddp, kd = vol
        od = ohh // oh
        g, kk, kw, icg, ocg = out.shape
        kh = kk // kd
        ncb = (icg + 3) // 4
        for job in prange(g * kk * kw * ncb):
            gi = job // (kk * kw * ncb)
            rest = job - gi * (kk * kw * ncb)
            r = rest // (kw * ncb)
            rest -= r * (kw * ncb)
            s = rest // ncb
            cb = rest - s * ncb
            c0 = cb * 4
            nc = min(4, icg - c0)
            cx = gi * icg + c0
            o0 = gi * ocg
            a = np.zeros((4, ocg), dtype=out.dtype)
            a0 = a[0]
            a1 = a[1]
            a2 = a[2]
            a3 = a[3]
            a_ = r // kh
            rh = r - a_ * kh
            for n in range(mb):
                for yy in range(od * oh):
                    z = yy // oh
                    y = yy - z * oh
                    row = (z * sd + a_ * ddp) * hp + y * sh + rh * dhp
                    for j in range(ow):
                        xv = xc[n, row, j * sw + s * dwp]
                        d = dyc[n, yy, j]
                        if nc == 4:
                            x0 = xv[cx]
                            x1 = xv[cx + 1]
                            x2 = xv[cx + 2]
                            x3 = xv[cx + 3]
                            for o in range(ocg):
                                dv = d[o0 + o]
                                a0[o] += x0 * dv
                                a1[o] += x1 * dv
                                a2[o] += x2 * dv
                                a3[o] += x3 * dv
                        else:
                            for k in range(nc):
                                xk = xv[cx + k]
                                ak = a[k]
                                for o in range(ocg):
                                    ak[o] += xk * d[o0 + o]
            for k in range(nc):
                out[gi, r, s, c0 + k, :] = a[k]

    # Serial builds are cached on disk; parallel ones are compiled on first use (numba's
    # cache index does not tell the two apart, so only one flavour may be cached).
    # With one thread the serial build is used: numba's parallel launch costs ~80 us a
    # call (measured: 89 us vs 11 us on mb1ic8ih16oc8kh3ph1) and buys nothing.
    KERNELS = {
        ("nhwc", False): njit(fastmath=True, cache=True, nogil=True)(_nhwc_4x4),
        ("nhwc", True): njit(parallel=True, fastmath=True, nogil=True)(_nhwc_4x4),
        ("rows", False): njit(fastmath=True, cache=True, nogil=True)(_rows),
        ("rows", True): njit(parallel=True, fastmath=True, nogil=True)(_rows),
        ("wgrad", False): njit(fastmath=True, cache=True, nogil=True)(_wgrad),
        ("wgrad", True): njit(parallel=True, fastmath=True, nogil=True)(_wgrad),
    }

#: below this many executed flops a parallel launch costs more than it saves
PARALLEL_MIN_FLOPS = 4e6


def _transposed_as_forward(p: ConvProblem) -> tuple[ConvProblem, tuple]:
    """The forward problem equal to ``p``'s transposed convolution on a stride-dilated input.

    Transposed conv of ``p`` = forward conv (stride 1, dilation of ``p``) of ``x`` with
    ``s-1`` zeros between its elements on every axis, padded by ``ext-1-p`` at the start,
    with the kernel flipped and in/out channels swapped per group. When ``p > ext-1`` that
    padding is negative: the first ``p-(ext-1)`` elements of the dilated input are dropped
    instead. Returns ``(problem, elements dropped per layout axis)``.
    """
    fields, crop = {}, []
    for a in p.layout_axes:
        ax = p.axis(a)
        f = ax.ext - 1 - ax.p
        c = max(0, -f)
        crop.append(c)
        if a in p.own_axes:
            fields.update({"i" + a: (ax.o - 1) * ax.s + 1 - c, "k" + a: ax.k, "p" + a: max(f, 0), "d" + a: ax.d,
                           "o" + a: ax.i})
    q = ConvProblem(mb=p.mb, ic=p.oc, oc=p.ic, g=p.g, rank=p.rank, dtype=p.dtype, **fields)
    return q, tuple(crop)


def flip_transpose_weights(w: np.ndarray, p: ConvProblem) -> np.ndarray:
    """Weights of :func:`_transposed_as_forward`: ``(ic, oc/g) + kernel``, kernel flipped."""
    k = p.kernel
    wt = w.reshape((p.g, p.ocg, p.icg) + k).transpose((0, 2, 1) + tuple(range(3, 3 + len(k))))
    wt = wt[(Ellipsis,) + (slice(None, None, -1),) * len(k)]
    return np.ascontiguousarray(wt.reshape((p.ic, p.ocg) + k))


def dilate_input(x: np.ndarray, p: ConvProblem, crop: tuple = ()) -> np.ndarray:
    """Insert ``s-1`` zeros between the elements of ``x`` on every axis (transposed conv
    input), dropping the first ``crop[i]`` elements of layout axis ``i`` of the result."""
    strides = tuple(ax.s for ax in p.axes)
    cut = (slice(None), slice(None)) + tuple(slice(c, None) for c in (crop or (0,) * len(strides)))
    if all(s == 1 for s in strides):
        return x[cut] if any(crop) else x
    u = np.zeros(x.shape[:2] + tuple((ax.o - 1) * ax.s + 1 for ax in p.axes), dtype=x.dtype)
    u[(slice(None), slice(None)) + tuple(slice(None, None, s) for s in strides)] = x
    return u[cut]


def _vol(q: ConvProblem) -> tuple:
    """The kernels' depth arguments: ``(oh, hp, sd, dilated depth step, kd)`` (a 2-D problem's
    depth is one plane, so its rows are the plain rows)."""
    return (q.oh, q.hp, q.sd, q.dd + 1, q.kd)


@dataclass
class DirectState:
    """A compiled loop nest and its buffers for forward problem ``q`` (the transposed one's
    forward equivalent, after ``crop`` elements of its dilated input are dropped per axis).

    ``weights``: ``(g*ocg4, kd*kh, kw*icg)`` register-block layout (``nhwc``) or
    ``(oc, icg, kd*kh, kw)`` (``rows``); ``xbuf``: zero-padded input (N[D]HWC or NC[D]HW);
    ``obuf``: padded output scratch when the block padding makes the output larger than
    ``q``'s (``nhwc`` only). Weight gradient (``wgrad``): ``xbuf`` the padded channels-last
    input, ``obuf`` the channels-last output gradient, ``wbuf`` the ``(g, kd*kh, kw, icg, ocg)``
    result. A 3-D problem's depth is folded into the rows: row ``z*hp + y`` of a padded
    plane stack, output row ``z*oh + y``.
    """

    q: ConvProblem
    layout: dict
    kernel: Any
    parallel: bool
    weights: np.ndarray
    xbuf: np.ndarray
    obuf: np.ndarray | None
    zero: Any
    crop: tuple = ()
    wbuf: np.ndarray | None = None
    #: ``depthwise_flat``: the column masks (:func:`.depthwise.flat_masks`); ``blocked``: the
    #: reduction offsets (:func:`.blocked.offsets`); ``blocked_wgrad``: the pixel offsets
    #: (:func:`.blocked_wgrad.pixel_offsets`)
    mask: np.ndarray | None = None


@dataclass
class PolyState:
    """Backward data at stride > 1 by phases (:mod:`.polyphase`): per phase of ``dx``, its
    forward sub-problem's state (``None``: zeros)."""

    phases: list
    states: list


class DirectNumba(Backend):
    name = "direct_numba"
    algorithm = "direct"
    description = ("compiled direct loop nest (numba): channel-blocked (LLVM-IR micro-kernel), generated "
                   "depthwise and stem kernels, 4x4 register-blocked NHWC, or row-vectorised NCHW")
    capabilities = Capabilities(exact=True, transposed=True, backward_weights=True, threads="numba",
                                ranks=(1, 2, 3))

    #: use the register-blocked nest when the contiguous inner run is at least this long
    MIN_SEGMENT = 16
    #: ... or, with groups folded into images, when a group's run of kw * icg taps is
    MIN_GROUP_SEGMENT = 8

    @classmethod
    def unavailable_reason(cls) -> str | None:
        return None if numba is not None else "numba is not installed"

    # ------------------------------------------------------------------ planning
    @staticmethod
    def _forward_problem(p: ConvProblem) -> ConvProblem:
        return _transposed_as_forward(p)[0] if p.transposed else p

    def _layout(self, q: ConvProblem) -> dict:
        """Loop-nest choice and buffer geometry for forward problem ``q`` (shape only)."""
        if depthwise.flat_fits(q):
            return dict(kind="depthwise_flat")
        if depthwise.blocked_fits(q):
            return dict(kind="depthwise_cb")
        if depthwise.fits(q):
            return dict(kind="depthwise", wq=-(-q.wp // q.sw))
        if blocked.chosen(q):
            return dict(kind="blocked", **blocked.geometry(q))
        if stem.fits(q):
            return dict(kind="stem")
        contiguous = q.g == 1 and q.dw == 0
        nseg, seglen = (1, q.kw * q.ic) if contiguous else (q.kw, q.icg)
        ocg4 = _ceil_to(q.ocg, BLOCK)
        owp = _ceil_to(q.ow, BLOCK)
        cols = (owp - 1) * q.sw + q.ext_w
        if seglen >= self.MIN_SEGMENT and q.ocg >= 2:
            return dict(kind="nhwc", nseg=nseg, seglen=seglen, ocg4=ocg4, owp=owp, cols=cols,
                        segstep=(q.dw + 1) * q.ic, gfold=1)
        # few channels per group: each group its own channels-last buffer, so that a kernel
        # row's taps of a group are one contiguous run of kw * icg values
        gseg = (1, q.kw * q.icg) if q.dw == 0 else (q.kw, q.icg)
        if q.g > 1 and q.icg >= 2 and q.ocg >= 2 and gseg[1] >= self.MIN_GROUP_SEGMENT:
            return dict(kind="nhwc", nseg=gseg[0], seglen=gseg[1], ocg4=ocg4, owp=owp, cols=cols,
                        segstep=(q.dw + 1) * q.icg, gfold=q.g)
        return dict(kind="rows")

    @staticmethod
    def _polyphase(p: ConvProblem) -> list | None:
        """The phases of a strided backward-data problem when each runs the channel-blocked
        kernel (:mod:`.polyphase`); None otherwise (the stride-dilated input instead)."""
        if not (p.transposed and p.rank <= 2 and any(ax.s > 1 for ax in p.axes)):
            return None
        phs = polyphase.phases(p)
        if all(ph.q is None or blocked.chosen(ph.q) for ph in phs) and any(ph.q is not None for ph in phs):
            return phs
        return None

    def _prepare_wgrad(self, p: ConvProblem) -> Plan[DirectState]:
        dt = np.dtype(p.dtype)
        parallel = numba.get_num_threads() > 1 and self.estimate(p).flops_executed >= PARALLEL_MIN_FLOPS
        if blocked_wgrad.fits(p):
            g = blocked_wgrad.geometry(p)
            kernel = blocked_wgrad.wgrad_kernel(p, g, parallel)
            bufs = blocked_wgrad.buffers(p, g, dt)
            st = DirectState(q=p, layout={"kind": "blocked_wgrad", **g}, kernel=kernel, parallel=parallel,
                             weights=np.empty(0, dt), xbuf=bufs["xb"], obuf=bufs["dyp"], zero=dt.type(0),
                             wbuf=bufs["dwb"], mask=bufs["xtab"])
            # compile now (or load numba's disk cache) for the run's argument types, without running:
            # the kernel is specialised to the shape, so a stand-in array would have to be full size
            four = numba.typeof(np.empty((0, 0, 0, 0), dt))
            kernel.compile((four, four) + tuple(numba.typeof(a) for a in (st.obuf, st.xbuf, st.mask, st.wbuf)))
            return self.make_plan(p, st, note=f"weight gradient: channel-blocked ({g['mr']}-channel panels x "
                                              f"{g['nr']} of the {g['run']}-value kernel-row runs, pixels reduced "
                                              f"in chunks of {blocked_wgrad.CHUNK}), "
                                              f"{'parallel' if parallel else 'serial'}")
        kernel = KERNELS[("wgrad", parallel)]
        # channels-last buffers: the padded input (border stays zero), the output gradient and
        # the (g, kd*kh, kw, icg, ocg) result, all allocated once here
        xbuf = np.zeros((p.mb, p.dp, p.hp, p.wp, p.ic), dtype=dt)
        obuf = np.empty((p.mb, p.od, p.oh, p.ow, p.oc), dtype=dt)
        st = DirectState(q=p, layout={"kind": "wgrad"}, kernel=kernel, parallel=parallel, weights=np.empty(0, dt),
                         xbuf=xbuf, obuf=obuf, zero=dt.type(0),
                         wbuf=np.empty((p.g, p.kd * p.kh, p.kw, p.icg, p.ocg), dtype=dt))
        # compile now, on arrays of the run's types
        kernel(np.zeros((1, 1, 1, 1), dt), np.zeros((1, 1, 1, 1), dt), np.zeros((1, 1, 1, 1, 1), dt), 1, 1, 1, 1,
               (1, 1, 1, 1, 1))
        return self.make_plan(p, st, note="weight gradient: channels-last outer products, 4 input channels "
                                          f"per job, {'parallel' if parallel else 'serial'}")

    def prepare(self, p: ConvProblem, w: np.ndarray | None) -> Plan[DirectState]:
        if p.direction == "bwd_w":
            return self._prepare_wgrad(p)
        phs = self._polyphase(p)
        if phs is not None:  # each phase an ordinary forward plan
            subs = [None if ph.q is None else self.prepare(ph.q, polyphase.sub_weights(w, p, ph)) for ph in phs]
            first = next(sp for sp in subs if sp is not None)
            return self.make_plan(p, PolyState(phs, [None if sp is None else sp.state for sp in subs]),
                                  note=f"polyphase: {sum(sp is not None for sp in subs)} of {len(phs)} phases of dx "
                                       f"as stride-1 forward problems ({first.note})")
        q = self._forward_problem(p)
        wq = flip_transpose_weights(w, p) if p.transposed else w
        lay = self._layout(q)
        dt = np.dtype(q.dtype)
        parallel = numba.get_num_threads() > 1 and self.estimate(p).flops_executed >= PARALLEL_MIN_FLOPS
        crop = _transposed_as_forward(p)[1] if p.transposed else ()
        if lay["kind"] == "nhwc":
            ocg4 = lay["ocg4"]
            # (oc, icg, kd, kh, kw) -> per group zero-padded to ocg4 rows -> (g*ocg4, kd*kh, kw*icg)
            wg = np.zeros((q.g, ocg4, q.kd, q.kh, q.kw, q.icg), dtype=dt)
            wg[:, :q.ocg] = wq.reshape(q.g, q.ocg, q.icg, q.kd, q.kh, q.kw).transpose(0, 1, 3, 4, 5, 2)
            weights = np.ascontiguousarray(wg.reshape(q.g * ocg4, q.kd * q.kh, q.kw * q.icg))
        else:  # the plan owns its weights
            weights = np.array(wq, dtype=dt, order="C", copy=True).reshape(q.oc, q.icg, q.kd * q.kh, q.kw)
        mask = None
        if lay["kind"] == "depthwise_flat":
            kernel = depthwise.flat_kernel(q, parallel)
            weights = weights.reshape(q.weight_shape)
            mask = depthwise.flat_masks(q, dt)
        elif lay["kind"] == "stem":
            kernel = stem.stem_kernel(q, parallel)
            weights = weights.reshape(q.weight_shape)
        elif lay["kind"] == "blocked":
            kernel = blocked.blocked_kernel(q, lay, parallel)
            weights = blocked.pack_weights(weights, q, lay)
            mask = blocked.offsets(q, lay)
        elif lay["kind"] in ("depthwise", "depthwise_cb"):
            kernel = depthwise.depthwise_kernel(q.kh, q.sh, parallel, q.ph, q.pw, lay["kind"] == "depthwise_cb")
            weights = weights.reshape(q.weight_shape)
        else:
            kernel = KERNELS[(lay["kind"], parallel)]
        if lay["kind"] == "depthwise_flat":  # the thread count is fixed for the plan's life
            lay = {**lay, "nchunk": min(q.mb * q.g, numba.get_num_threads()) if parallel else 1}
        st = DirectState(q=q, layout=lay, kernel=kernel, parallel=parallel,
                         weights=weights, zero=dt.type(0), crop=crop, mask=mask, **self._buffers(q, lay, dt))
        # compile now (or load numba's on-disk cache), never inside a timed run
        if lay["kind"] == "nhwc":
            warm(q.dtype, parallel)
            tiny = q.replace(mb=1, ih=q.ext_h, iw=q.ext_w, sh=1, sw=1, ph=0, pw=0)
            if q.rank == 3:
                tiny = tiny.replace(id=q.ext_d, sd=1, pd=0)
            tl = self._layout(tiny)
            self._forward(DirectState(**{**st.__dict__, "q": tiny, "layout": tl, **self._buffers(tiny, tl, dt)}),
                          np.zeros(tiny.input_shape, dtype=dt))
        elif lay["kind"] == "depthwise":
            k = q.kh
            st.kernel(np.zeros((1, 1, k, k), dt), np.zeros((1, 1, k, k), dt), np.zeros((1, 1, 1, 1), dt),
                      1, 1, k + 2 * q.ph, -(-(k + 2 * q.pw) // q.sw), 1)
        elif lay["kind"] == "blocked":  # specialised to the shape: compiled at its size
            st.kernel(np.zeros((1, q.ic, q.ih, q.iw), dt), weights, mask, np.zeros((1, q.oc, q.oh, q.ow), dt),
                      st.xbuf)
        elif lay["kind"] == "stem":  # specialised to the shape: compiled at its size
            st.kernel(np.zeros((1,) + q.input_shape[1:], dt), weights, np.zeros((1,) + q.output_shape[1:], dt), st.xbuf)
        elif lay["kind"] == "depthwise_flat":  # specialised to the plane: compiled at its size
            st.kernel(np.zeros((1, 1, q.ih, q.iw), dt), np.zeros((1, 1, q.kh, q.kw), dt),
                      np.zeros((1, 1, q.oh, q.ow), dt), mask, 1)
        elif lay["kind"] == "depthwise_cb":
            k = q.kh
            st.kernel(np.zeros((1, 1, k, k), dt), np.zeros((1, 1, k, k), dt), np.zeros((1, 1, 1, 1), dt),
                      k + 2 * q.ph, k + 2 * q.pw, 1)
        else:
            st.kernel(np.zeros((1, 1, 1, 1), dt), np.zeros((1, 1, 1, 1), dt),
                      np.zeros((1, 1, 1, 1), dt), 1, 1, 1, 1, 1, 1, (1, 1, 1, 1, 1))
        folded = ", groups folded into images (a channels-last buffer each)" if lay.get("gfold", 1) > 1 else ""
        if lay["kind"] == "blocked":
            folded = (f" ({lay['mr']}-channel panels x {lay['nr']}-pixel tiles, reduction {lay['k']}, "
                      + ("input read in place" if lay["direct"] else f"{len(lay['phases'])} stride phase(s)") + ")")
        return self.make_plan(p, st, note=f"loop nest: {lay['kind']}{folded}, {'parallel' if parallel else 'serial'}")

    # ------------------------------------------------------------------ the work
    @staticmethod
    def _buffers(q: ConvProblem, lay: dict, dt) -> dict:
        """Zero-padded input buffer (its border stays zero across runs) and output scratch."""
        if lay["kind"] == "nhwc":
            ocp = q.g * lay["ocg4"]
            direct = ocp == q.oc and lay["owp"] == q.ow
            gf = lay["gfold"]
            return dict(xbuf=np.zeros((q.mb * gf, q.dp, q.hp, lay["cols"], q.ic // gf), dtype=dt),
                        obuf=None if direct else np.empty((q.mb, ocp, q.od * q.oh, lay["owp"]), dtype=dt))
        if lay["kind"] == "blocked":  # the stride phases of one image; their zero border is never written
            return dict(xbuf=np.zeros(max(1, lay["scratch"]), dtype=dt), obuf=None)
        if lay["kind"] == "stem":  # the stride phases of one image; their zero border is never written
            return dict(xbuf=np.zeros(stem.geometry(q)["size"], dtype=dt), obuf=None)
        if lay["kind"] in ("depthwise", "depthwise_cb", "depthwise_flat"):  # per-run scratch inside the kernel
            return dict(xbuf=np.zeros(0, dtype=dt), obuf=None)
        return dict(xbuf=np.zeros((q.mb, q.ic, q.dp, q.hp, q.wp), dtype=dt), obuf=None)

    @staticmethod
    def _chunks(st: DirectState) -> int:
        """Parts the depthwise kernels split their jobs into: one per thread."""
        jobs = st.q.mb * (-(-st.q.g // depthwise.LANES) if st.layout["kind"] == "depthwise_cb" else st.q.g)
        return min(jobs, numba.get_num_threads()) if st.parallel else 1

    def _forward(self, st: DirectState, x: np.ndarray) -> np.ndarray:
        q, lay = st.q, st.layout
        dt = x.dtype
        xb = st.xbuf
        if lay["kind"] == "nhwc":
            cols, gf = lay["cols"], lay["gfold"]
            d, h, wd = q.read_d, q.read_h, q.read_w
            c = q.ic // gf  # channels per buffer row: all of them, or a group's
            src = volume(x).reshape((q.mb * gf, c) + volume(x).shape[2:])
            to_channels_last(src[:, :, :d, :h, :wd], xb, (q.pd, q.ph, q.pw), st.parallel)
            obuf = st.obuf
            out = np.empty((q.mb, q.oc, q.od * q.oh, q.ow), dtype=dt) if obuf is None else obuf
            st.kernel(xb.reshape(q.mb * gf, q.dp * q.hp, cols * c), st.weights,
                      out.reshape((q.mb * gf, out.shape[1] // gf) + out.shape[2:]), q.sh, q.dh + 1,
                      q.sw * c, lay["nseg"], lay["segstep"], lay["seglen"], q.icg, lay["ocg4"], st.zero, _vol(q), gf)
            if obuf is None:
                return out.reshape(q.output_shape)
            out = out.reshape(q.mb, q.g, lay["ocg4"], q.od * q.oh, lay["owp"])[:, :, :q.ocg, :, :q.ow]
            return np.ascontiguousarray(out).reshape(q.output_shape)
        if lay["kind"] == "depthwise":
            out = np.empty(q.output_shape, dtype=dt)
            st.kernel(np.ascontiguousarray(x), st.weights, out, q.icg, q.ocg, q.hp, lay["wq"], self._chunks(st))
            return out
        if lay["kind"] == "depthwise_cb":
            out = np.empty(q.output_shape, dtype=dt)
            st.kernel(np.ascontiguousarray(x), st.weights, out, q.hp, q.wp, self._chunks(st))
            return out
        if lay["kind"] == "stem":
            out = np.empty(q.output_shape, dtype=dt)
            st.kernel(np.ascontiguousarray(x), st.weights, out, st.xbuf)
            return out
        if lay["kind"] == "blocked":
            out = np.empty(q.output_shape, dtype=dt)
            st.kernel(np.ascontiguousarray(x).reshape(q.mb, q.ic, q.ih, q.iw), st.weights, st.mask,
                      out.reshape(q.mb, q.oc, q.oh, q.ow), st.xbuf)
            return out
        if lay["kind"] == "depthwise_flat":
            out = np.empty(q.output_shape, dtype=dt)
            st.kernel(np.ascontiguousarray(x), st.weights, out, st.mask, lay["nchunk"])
            return out
        fill_padded(volume(xb) if q.rank == 3 else xb.reshape(q.mb, q.ic, q.hp, q.wp), x, q)
        out = np.zeros((q.mb, q.oc, q.od * q.oh, q.ow), dtype=dt)
        st.kernel(xb.reshape(q.mb, q.ic, q.dp * q.hp, q.wp), st.weights, out, q.sh, q.sw, q.dh + 1, q.dw + 1,
                  q.icg, q.ocg, _vol(q))
        return out.reshape(q.output_shape)

    def run(self, plan: Plan[DirectState], *inputs: np.ndarray) -> np.ndarray:
        p = plan.problem
        if p.direction == "bwd_w" and plan.state.layout["kind"] == "blocked_wgrad":
            x, dy = inputs
            st, g = plan.state, plan.state.layout
            st.kernel(np.ascontiguousarray(x).reshape(p.mb, p.ic, p.ih, p.iw),
                      np.ascontiguousarray(dy).reshape(p.mb, p.oc, p.oh, p.ow), st.obuf, st.xbuf, st.mask, st.wbuf)
            dw = st.wbuf.reshape(g["npanel"] * g["mr"], p.kh, p.kw, p.ic)[:p.oc].transpose(0, 3, 1, 2)
            return np.ascontiguousarray(dw).reshape(p.weight_shape)
        if p.direction == "bwd_w":
            x, dy = inputs
            st = plan.state
            d, h, w = p.read_d, p.read_h, p.read_w
            st.xbuf[:, p.pd:p.pd + d, p.ph:p.ph + h, p.pw:p.pw + w, :] = \
                volume(x)[:, :, :d, :h, :w].transpose(0, 2, 3, 4, 1)
            st.obuf[...] = volume(dy).transpose(0, 2, 3, 4, 1)
            st.kernel(st.xbuf.reshape(p.mb, p.dp * p.hp, p.wp, p.ic), st.obuf.reshape(p.mb, p.od * p.oh, p.ow, p.oc),
                      st.wbuf, p.sh, p.sw, p.dh + 1, p.dw + 1, _vol(p))
            # (g, kd*kh, kw, icg, ocg) -> (oc, icg, kd, kh, kw)
            dw = st.wbuf.reshape(p.g, p.kd, p.kh, p.kw, p.icg, p.ocg).transpose(0, 5, 4, 1, 2, 3)
            return np.ascontiguousarray(dw).reshape(p.weight_shape)
        x = inputs[0]
        if isinstance(plan.state, PolyState):
            return self._polyphase_run(p, plan.state, x)
        if p.transposed:
            x = dilate_input(x, p, plan.state.crop)
        return self._forward(plan.state, x)

    def _polyphase_run(self, p: ConvProblem, st: PolyState, dy: np.ndarray) -> np.ndarray:
        """Each phase's forward run, written into its strided positions of ``dx``."""
        (ih, iw), (oh, ow) = p.spatial, p.out_spatial
        d4 = dy.reshape(p.mb, p.oc, oh, ow)
        dx = np.empty((p.mb, p.ic, ih, iw), dtype=dy.dtype)
        (sh, sw) = (ax.s for ax in p.axes)
        for ph, sub in zip(st.phases, st.states):
            r0, r1 = ph.start
            part = dx[:, :, r0::sh, r1::sw]
            if ph.q is None:
                part[...] = 0
            else:
                c0, c1 = ph.crop
                part[...] = self._forward(sub, d4[:, :, c0:, c1:]).reshape(part.shape)
        return dx.reshape(p.input_shape)

    # ------------------------------------------------------------------ accounting
    def _estimate(self, p: ConvProblem) -> Estimate:
        if p.direction == "bwd_w" and blocked_wgrad.fits(p):  # the zero lanes of the last panel run too
            g = blocked_wgrad.geometry(p)
            flops = float(dense_flops(p)) * g["npanel"] * g["mr"] / p.oc
            return Estimate(flops, flops, blocked_wgrad.workspace(p, g))
        if p.direction == "bwd_w":  # every tap of every output, padding included, as the loop runs it
            flops = float(dense_flops(p))
            return Estimate(flops, flops, (p.mb * p.ic * prod(p.padded) + p.mb * p.oc * prod(p.out_spatial)
                                           + 2 * p.params) * p.itemsize)
        phs = self._polyphase(p)
        if phs is not None:  # the phases' forward runs
            ests = [self.estimate(ph.q) for ph in phs if ph.q is not None]
            flops = float(sum(e.flops_executed for e in ests))
            return Estimate(flops, flops, sum(e.workspace_bytes for e in ests))
        q = self._forward_problem(p)
        lay = self._layout(q)
        it = q.itemsize
        up = q.mb * q.ic * prod(q.spatial) * it if p.transposed and any(ax.s > 1 for ax in p.axes) else 0
        if lay["kind"] == "nhwc":
            flops = float(2 * q.mb * q.g * lay["ocg4"] * q.icg * prod(q.kernel) * q.od * q.oh * lay["owp"])
            buf = q.mb * q.dp * q.hp * lay["cols"] * q.ic * it
            if q.g * lay["ocg4"] != q.oc or lay["owp"] != q.ow:
                buf += q.mb * q.g * lay["ocg4"] * q.od * q.oh * lay["owp"] * it
        elif lay["kind"] == "stem":  # exactly the taps inside the input or its padding
            flops = float(dense_flops(q))
            buf = stem.geometry(q)["size"] * it
        elif lay["kind"] == "blocked":  # zero rows of the last panel per group run too
            flops = float(2 * q.mb * q.g * lay["npg"] * lay["mr"] * lay["k"] * q.oh * q.ow)
            buf = (lay["scratch"] + q.g * lay["npg"] * lay["mr"] * lay["k"]
                   + lay["nr"] * lay["mr"] * max(1, numba.get_num_threads())) * it + lay["k"] * 8
        elif lay["kind"] == "depthwise_flat":  # the masks' multiplies run too; phase planes per thread
            g = depthwise.flat_geometry(q)
            flops = float(dense_flops(q) + q.mb * q.oc * q.oh * q.ow * len(g["dxs"]))
            buf = (q.sh * q.sw * g["seg"] * max(1, numba.get_num_threads()) + max(1, len(g["dxs"])) * q.oh * q.ow) * it
        elif lay["kind"] == "depthwise_cb":  # LANES channels of padded input and output per thread
            cb = -(-q.oc // depthwise.LANES) * depthwise.LANES
            flops = float(dense_flops(q)) * cb / q.oc
            buf = (q.hp * q.wp + q.oh * q.ow + q.kh * q.kw) * depthwise.LANES * it * max(1, numba.get_num_threads())
        elif lay["kind"] == "depthwise":  # one group's phase planes per run of jobs (per thread)
            flops = float(dense_flops(q))
            buf = q.icg * q.sw * q.hp * lay["wq"] * it * max(1, numba.get_num_threads())
        else:
            flops = float(dense_flops(q))
            buf = q.mb * q.ic * prod(q.padded) * it
        return Estimate(flops, flops, up + buf)
