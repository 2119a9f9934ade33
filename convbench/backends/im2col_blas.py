"""``im2col_blas``: unfold the input into a column matrix, then a BLAS GEMM per group.

Chellapilla et al. (2006): every output pixel's receptive field becomes one column
of a ``(ic/g * kh * kw) x (mb * oh * ow)`` matrix, and the convolution becomes
``W_g @ cols`` with ``W_g`` the ``(oc/g) x (ic/g * kh * kw)`` weights of group g.

The unfold is a single strided view (``as_strided`` over the zero-padded input:
one axis per kernel tap, one per output pixel) copied into a contiguous buffer,
with no Python loop over pixels. Its innermost axis runs along an output row, so
for stride 1 the copy is a sequence of contiguous row moves. At stride > 1 that axis is
not contiguous and numpy's copy went element by element: strided forward layers unfold
with a compiled loop instead (:mod:`.unfold`), in ~2 MiB blocks of output rows whose GEMM
writes straight into the output.

Cache blocking: the column matrix is built and multiplied in chunks of output rows (of
columns, for rows longer than the cache: 1-D sequences)
sized to the CPU's L2 cache (``K * columns * itemsize ~ L2``), so the GEMM reads
columns the copy has just written while they are still in L2, instead of
streaming a matrix of several MiB through L3. Measured on the ResNet-50 layers
(one thread, interleaved with oneDNN): one unblocked unfold + GEMM ran 0.75x of
oneDNN's speed on 64@56^2 and 0.89x on 128@28^2; 8-row chunks (~1 MiB of columns)
ran 0.87x and 0.91x. Small images are not split; instead several images share
one GEMM (a wider N keeps BLAS efficient). The padded input, the column buffer, the GEMM
scratch and every strided view over them are made once in ``prepare`` and reused,
as a framework's scratchpad would be; ``run`` is copies and GEMMs only.

The transposed convolution is the adjoint: ``cols = W_g^T @ x`` (one GEMM per
group) followed by col2im, a scatter-add of each kernel tap's slab into the
padded output (a loop over the kh*kw taps, each a vectorised strided add).

The weight gradient reuses the unfold: ``dW_g += dY_g @ cols^T`` per chunk of whole images,
the output gradient of the chunk as an ``(oc/g) x (images * oh * ow)`` matrix (a copy of a
transpose) times the column matrix transposed, accumulated over the chunks. Its chunks are
sized to a few MiB rather than L2, since the GEMM now reduces over the long pixel axis. A
1x1 stride-1 kernel needs no unfold: the input itself is the column matrix.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.lib.stride_tricks import as_strided

from ..flops import dense_flops, prod
from ..machine import cache_bytes
from ..problem import ConvProblem
from . import unfold
from .base import Backend, Capabilities, Estimate, Plan, crop_padded, fill_padded, volume

#: bytes of column buffer per chunk: the L2 cache (the column block of one GEMM)
CHUNK_BYTES = cache_bytes(2)
#: bytes of column buffer per GEMM for the transposed path (no cache blocking there)
WORKSPACE_CAP = 256 << 20
#: bytes of column buffer per chunk of the weight gradient (whole images; the GEMM reduces
#: over the chunk's pixels, so a long chunk keeps it efficient)
WGRAD_CHUNK_BYTES = 8 << 20


#: a 1x1 stride-1 weight gradient with at least this many pixels per image reduces image
#: by image on the NCHW arrays themselves (no copy); below it the per-image GEMMs are too
#: short (K = pixels) and the chunk's images are first gathered into one long GEMM.
#: Measured (1 thread, mb8, ms): ic512 oc2048 7x7 per-image 16.2 vs gathered 12.1 (torch 13.2);
#: ic1024 oc256 14x14 12.4 vs 12.6 (12.8); ic64 oc256 56x56 12.0 vs 14.6 (11.6).
WGRAD_1X1_DIRECT_PIXELS = 1024


def _taps(p: ConvProblem) -> int:
    return prod(p.kernel)


def _pixels(p: ConvProblem) -> int:
    """Output pixels (voxels) per image and channel."""
    return prod(p.out_spatial)


def _wgrad_images(p: ConvProblem) -> int:
    """Images per weight-gradient chunk (at least one)."""
    per = p.icg * _taps(p) * _pixels(p) * p.itemsize
    if _direct_1x1(p):
        if _pixels(p) >= WGRAD_1X1_DIRECT_PIXELS:
            return 1
        per = (p.icg + p.ocg) * _pixels(p) * p.itemsize  # both gathered
    return max(1, min(p.mb, WGRAD_CHUNK_BYTES // max(per, 1)))


def _direct_1x1(p: ConvProblem) -> bool:
    """A 1x1(x1) kernel at stride 1 without padding: the input already is the column matrix."""
    return all(ax.k == 1 and ax.s == 1 and ax.p == 0 and ax.o == ax.i for ax in p.axes)


#: columns per GEMM of the strided unfold: measured on ResNet-50's stem (K=147, 1 thread), the
#: GEMM ran at 72 GFLOP/s on 784 columns (1 MiB), 83 on 3136 (1.8 MiB), 55 on the whole 12544
STRIDED_CHUNK_BYTES = 2 << 20


def _strided_rows(p: ConvProblem) -> int:
    return min(p.oh, max(1, STRIDED_CHUNK_BYTES // (p.icg * p.kh * p.kw * p.ow * p.itemsize)))


def _pointwise(p: ConvProblem) -> bool:
    """A forward 1x1(x1) kernel without padding: no unfold at all. At stride 1 the NC[D]HW
    input itself is the ``(ic, pixels)`` operand of each image's GEMM (no copy); at a larger
    stride the input is subsampled into one buffer first."""
    return (not p.transposed and p.direction == "fwd"
            and all(ax.k == 1 and ax.p == 0 for ax in p.axes) and all(r <= 0 for r in p.pads_r))


def _even(n: int, most: int) -> int:
    """Block length at most ``most`` that splits ``n`` into equal blocks (no last sliver)."""
    return -(-n // -(-n // most))


def _blocking(p: ConvProblem) -> tuple[str, int]:
    """How the forward GEMM is chunked: ``("images", n)``, ``("planes", n)``, ``("rows", n)``
    or ``("columns", n)``, ``n`` of them per chunk (see :func:`chunks`)."""
    row_bytes = p.icg * _taps(p) * p.ow * p.itemsize
    rows = CHUNK_BYTES // row_bytes
    if rows >= p.od * p.oh:
        return "images", max(1, rows // (p.od * p.oh))
    if rows >= p.oh:
        return "planes", _even(p.od, rows // p.oh)
    if rows >= 1:
        return "rows", _even(p.oh, rows)
    return "columns", _even(p.ow, max(1, CHUNK_BYTES // (p.icg * _taps(p) * p.itemsize)))


def _chunk_extent(p: ConvProblem) -> tuple[int, bool]:
    """Columns of the largest chunk, and whether every chunk is one whole image, from the
    shape alone (a huge problem has millions of chunks: the estimate must not list them)."""
    how, n = _blocking(p)
    if how == "images":
        per = min(n, p.mb)
        return per * p.od * p.oh * p.ow, per == 1
    return {"planes": n * p.oh * p.ow, "rows": n * p.ow, "columns": n}[how], False


def chunks(p: ConvProblem) -> list[tuple[int, int, int, int, int, int, int, int]]:
    """Forward GEMM chunks ``(first image, images, first output plane, planes, first output
    row, rows, first output column, columns)`` (one plane in 1-D and 2-D, one row in 1-D).

    Whole images are grouped while their columns fit :data:`CHUNK_BYTES`; a larger image is
    split into blocks of output planes that do, a plane that does not into blocks of rows,
    and a row that does not (long 1-D sequences) into blocks of columns.
    """
    how, n = _blocking(p)
    if how == "images":
        return [(n0, min(n, p.mb - n0), 0, p.od, 0, p.oh, 0, p.ow) for n0 in range(0, p.mb, n)]
    if how == "planes":
        return [(i, 1, z0, min(n, p.od - z0), 0, p.oh, 0, p.ow) for i in range(p.mb) for z0 in range(0, p.od, n)]
    if how == "rows":
        return [(i, 1, z, 1, y0, min(n, p.oh - y0), 0, p.ow) for i in range(p.mb) for z in range(p.od)
                for y0 in range(0, p.oh, n)]
    return [(i, 1, z, 1, y, 1, x0, min(n, p.ow - x0)) for i in range(p.mb) for z in range(p.od)
            for y in range(p.oh) for x0 in range(0, p.ow, n)]


def _chunk(p: ConvProblem) -> int:
    """Images per GEMM on the transposed path, so columns stay under :data:`WORKSPACE_CAP`."""
    per_image = p.icg * _taps(p) * _pixels(p) * p.itemsize
    return max(1, min(p.mb, WORKSPACE_CAP // max(per_image, 1)))


def _unfold_view(xv: np.ndarray, p: ConvProblem, gi: int, nb: int, nz: int, nr: int,
                 nc: int | None = None) -> np.ndarray:
    """The read-only ``(icg, kd, kh, kw, nb, nz, nr, nc)`` view of group ``gi``'s windows in the
    padded input ``xv`` (a 5-D view starting at the chunk's first image, plane, row and
    column; ``nc`` output columns, all ``ow`` by default)."""
    sN, sC, sD, sH, sW = xv.strides
    return as_strided(xv[:, gi * p.icg:(gi + 1) * p.icg],
                      shape=(p.icg, p.kd, p.kh, p.kw, nb, nz, nr, p.ow if nc is None else nc),
                      strides=(sC, (p.dd + 1) * sD, (p.dh + 1) * sH, (p.dw + 1) * sW, sN, p.sd * sD, p.sh * sH,
                               p.sw * sW), writeable=False)


@dataclass
class PointwiseState:
    """1x1 forward plan: weights per group ``(g, oc/g, ic/g)`` and, above stride 1, the
    subsampled-input buffer."""

    w: np.ndarray
    sub: np.ndarray | None


@dataclass
class StridedState:
    """Strided forward plan (stems, stride-2 layers): weights per group, the padded input, the
    column buffer for ``rows`` output rows at a time, the compiled unfold."""

    w: np.ndarray
    xp: np.ndarray
    cols: np.ndarray
    rows: int
    kernel: object


@dataclass
class ForwardState:
    """Forward plan: weights per group, the padded input and column buffers, and per GEMM
    chunk and group one step ``(column source view, column destination view, columns,
    weights, GEMM scratch, scratch as output block, output index)``; ``whole``: one chunk
    per image, the GEMM writes straight into the output; ``geoms``: for an unpadded problem,
    each step's source view as ``(shape, strides, byte offset)``, rebuilt over the input itself
    at run time (under a microsecond a view) instead of copying it into ``xp``."""

    P: int
    w: np.ndarray
    xp: np.ndarray
    cols: np.ndarray
    steps: list
    whole: bool
    geoms: list | None = None


@dataclass
class WeightGradState:
    """Weight-gradient plan: images per chunk, the padded input, column and output-gradient
    buffers, and per chunk and group the unfold views (None for a 1x1 stride-1 kernel)."""

    nb: int
    xp: np.ndarray | None
    cols: np.ndarray | None
    dyc: np.ndarray
    steps: list


@dataclass
class TransposedState:
    """Transposed plan: ``mbc`` images per GEMM, transposed weights per group, column
    buffer and the padded output col2im scatters into."""

    mbc: int
    P: int
    wt: np.ndarray
    cols: np.ndarray
    yp: np.ndarray


class Im2colBlas(Backend):
    name = "im2col_blas"
    baseline_rank = 1
    algorithm = "im2col+gemm"
    description = "unfold (strided view, one copy) + one BLAS GEMM per group; col2im for transposed"
    capabilities = Capabilities(exact=True, transposed=True, backward_weights=True, threads="blas",
                                memory_fraction=0.5, ranks=(1, 2, 3))

    def _prepare_wgrad(self, p: ConvProblem) -> Plan[WeightGradState]:
        dt = np.dtype(p.dtype)
        nb = _wgrad_images(p)
        P = _pixels(p)
        dyc = np.empty((p.ocg, nb * P), dtype=dt)
        if _direct_1x1(p):
            if P >= WGRAD_1X1_DIRECT_PIXELS:
                return self.make_plan(p, WeightGradState(1, None, None, np.empty((0, 0), dt), []),
                                      note="1x1: the input is the column matrix, one GEMM per image")
            cols = np.empty((p.icg, nb * P), dtype=dt)
            return self.make_plan(p, WeightGradState(nb, None, cols, dyc, []),
                                  note=f"1x1: {nb} image(s) gathered per GEMM")
        K = p.icg * _taps(p)
        xp = np.zeros((p.mb, p.ic) + p.padded, dtype=dt)
        cols = np.empty((K, nb * P), dtype=dt)
        steps = []
        for n0 in range(0, p.mb, nb):
            k = min(nb, p.mb - n0)
            c = cols[:, :k * P]
            for gi in range(p.g):
                src = _unfold_view(volume(xp)[n0:], p, gi, k, p.od, p.oh)
                steps.append((n0, k, gi, src, c.reshape(src.shape), c))
        return self.make_plan(p, WeightGradState(nb, xp, cols, dyc, steps), note=f"{nb} image(s) per GEMM")

    def _wgrad(self, plan: Plan[WeightGradState], x: np.ndarray, dy: np.ndarray) -> np.ndarray:
        p, st = plan.problem, plan.state
        P, ocg, icg = _pixels(p), p.ocg, p.icg
        dw = np.zeros((p.g, ocg, icg * _taps(p)), dtype=x.dtype)
        if st.xp is None:  # 1x1, stride 1: dW_g += dY_g (ocg x P) @ X_g^T (P x icg)
            tmp = np.empty((ocg, icg), dtype=x.dtype)
            if st.cols is None:  # long images: one GEMM per image on the arrays as they are
                for n in range(p.mb):
                    for gi in range(p.g):
                        np.matmul(dy[n, gi * ocg:(gi + 1) * ocg].reshape(ocg, P),
                                  x[n, gi * icg:(gi + 1) * icg].reshape(icg, P).T, out=tmp)
                        dw[gi] += tmp
                return dw.reshape(p.weight_shape)
            for n0 in range(0, p.mb, st.nb):
                k = min(st.nb, p.mb - n0)
                for gi in range(p.g):
                    xc, dc = st.cols[:, :k * P], st.dyc[:, :k * P]
                    np.copyto(xc.reshape(icg, k, P),
                              x[n0:n0 + k, gi * icg:(gi + 1) * icg].reshape(k, icg, P).transpose(1, 0, 2))
                    np.copyto(dc.reshape(ocg, k, P),
                              dy[n0:n0 + k, gi * ocg:(gi + 1) * ocg].reshape(k, ocg, P).transpose(1, 0, 2))
                    np.matmul(dc, xc.T, out=tmp)
                    dw[gi] += tmp
            return dw.reshape(p.weight_shape)
        fill_padded(st.xp, x, p)
        tmp = np.empty((ocg, icg * _taps(p)), dtype=x.dtype)
        for n0, k, gi, src, dst, cols in st.steps:
            np.copyto(dst, src)
            d = st.dyc[:, :k * P].reshape(ocg, k, P)
            np.copyto(d, dy[n0:n0 + k, gi * ocg:(gi + 1) * ocg].reshape(k, ocg, P).transpose(1, 0, 2))
            np.matmul(st.dyc[:, :k * P], cols.T, out=tmp)
            dw[gi] += tmp
        return dw.reshape(p.weight_shape)

    def prepare(self, p: ConvProblem, w: np.ndarray | None) -> Plan:
        if p.direction == "bwd_w":
            return self._prepare_wgrad(p)
        dt = np.dtype(p.dtype)
        K = p.icg * _taps(p)
        P = _pixels(p)
        wg = np.array(w, dtype=dt, order="C", copy=True).reshape(p.g, p.ocg, K)  # owned copy
        if p.transposed:
            mbc = _chunk(p)
            return self.make_plan(p, TransposedState(mbc=mbc, P=P, wt=np.ascontiguousarray(wg.transpose(0, 2, 1)),
                                                     cols=np.empty((K, mbc * P), dtype=dt),
                                                     yp=np.zeros((p.mb, p.ic) + p.padded, dtype=dt)))
        if _pointwise(p):
            strided = p.out_spatial != p.spatial
            sub = np.empty(p.output_shape[:1] + (p.ic,) + p.out_spatial, dtype=dt) if strided else None
            one = "x".join(["1"] * p.rank)
            return self.make_plan(p, PointwiseState(w=wg, sub=sub),
                                  note=f"{one}: " + ("subsampled, then " if strided else "") +
                                       "one GEMM per image and group on the input as it is laid out, no unfold")
        if unfold.fits(p):
            rows = _strided_rows(p)
            kern = unfold.unfold_kernel(p.sh, p.sw, p.dh + 1, p.dw + 1)
            st = StridedState(w=wg, xp=np.zeros((p.mb, p.ic, p.hp, p.wp), dtype=dt),
                              cols=np.empty((K, rows * p.ow), dtype=dt), rows=rows, kernel=kern)
            kern(np.zeros((1, p.kh, p.kw), dt), np.empty((p.kh * p.kw, 1), dt), 0, 1, 1, p.kh, p.kw)  # compile now
            return self.make_plan(p, st, note=f"strided unfold (compiled), {rows} output rows per GEMM")
        ch = chunks(p)
        ncols, whole = _chunk_extent(p)
        xp = np.zeros((p.mb, p.ic) + p.padded, dtype=dt)
        cols = np.empty((K, ncols), dtype=dt)
        tmp = None if whole else np.empty((p.ocg, ncols), dtype=dt)
        # Every strided view is built here once, over buffers the plan owns, so run()
        # is only copies and GEMMs (as_strided costs ~10 us a call in Python).
        xv = volume(xp)
        steps = []
        for n0, nb, z0, nz, y0, nr, x0, nc in ch:
            ncol = nb * nz * nr * nc
            c = cols[:, :ncol]
            for gi in range(p.g):
                src = _unfold_view(xv[n0:, :, z0 * p.sd:, y0 * p.sh:, x0 * p.sw:], p, gi, nb, nz, nr, nc)
                # a block of one row writes straight into the output (a 2-D view BLAS writes at full
                # speed); a block of several images, planes or part-rows goes through the scratch
                row = not whole and nb == nz == nr == 1
                t = None if whole or row else tmp[:, :ncol]
                steps.append((src, c.reshape(src.shape), c, wg[gi], t,
                              t.reshape(p.ocg, nb, nz, nr, nc).transpose(1, 0, 2, 3, 4) if t is not None else None,
                              (n0, slice(gi * p.ocg, (gi + 1) * p.ocg), z0, y0, slice(x0, x0 + nc)) if row else
                              (slice(n0, n0 + nb), slice(gi * p.ocg, (gi + 1) * p.ocg), slice(z0, z0 + nz),
                               slice(y0, y0 + nr), slice(x0, x0 + nc))))
        geoms = None
        if tuple(p.padded) == tuple(p.spatial) and not any(p.own("p")):  # the input is its own padded copy
            base = xp.__array_interface__["data"][0]
            geoms = [(src.shape, src.strides, src.__array_interface__["data"][0] - base) for src, *_ in steps]
        return self.make_plan(p, ForwardState(P=P, w=wg, xp=xp, cols=cols, steps=steps, whole=whole, geoms=geoms))

    def run(self, plan: Plan, *inputs: np.ndarray) -> np.ndarray:
        p = plan.problem
        if p.direction == "bwd_w":
            return self._wgrad(plan, *inputs)
        return self._transposed(plan, inputs[0]) if p.transposed else self._forward(plan, inputs[0])

    def _pointwise_forward(self, plan: Plan[PointwiseState], x: np.ndarray) -> np.ndarray:
        p, st = plan.problem, plan.state
        if st.sub is not None:
            np.copyto(st.sub, x[(slice(None), slice(None)) + tuple(slice(0, (ax.o - 1) * ax.s + 1, ax.s)
                                                                  for ax in p.axes)])
            x = st.sub
        y = np.empty(p.output_shape, dtype=x.dtype)
        P, icg, ocg = _pixels(p), p.icg, p.ocg
        for gi in range(p.g):  # numpy runs the batch of images as one call
            np.matmul(st.w[gi], x[:, gi * icg:(gi + 1) * icg].reshape(p.mb, icg, P),
                      out=y[:, gi * ocg:(gi + 1) * ocg].reshape(p.mb, ocg, P))
        return y

    def _strided_forward(self, plan: Plan[StridedState], x: np.ndarray) -> np.ndarray:
        p, st = plan.problem, plan.state
        xp = fill_padded(st.xp, x, p)
        y = np.empty(p.output_shape, dtype=xp.dtype)
        icg, ocg, ow = p.icg, p.ocg, p.ow
        for n in range(p.mb):
            for gi in range(p.g):
                xg = xp[n, gi * icg:(gi + 1) * icg]
                yg = y[n, gi * ocg:(gi + 1) * ocg].reshape(ocg, p.oh * ow)
                for y0 in range(0, p.oh, st.rows):
                    nr = min(st.rows, p.oh - y0)
                    st.kernel(xg, st.cols, y0, nr, ow, p.kh, p.kw)
                    # straight into the output's rows (a strided view BLAS writes at full speed)
                    np.matmul(st.w[gi], st.cols[:, :nr * ow], out=yg[:, y0 * ow:(y0 + nr) * ow])
        return y

    def _forward(self, plan: Plan[ForwardState], x: np.ndarray) -> np.ndarray:
        p, st = plan.problem, plan.state
        if isinstance(st, PointwiseState):
            return self._pointwise_forward(plan, x)
        if isinstance(st, StridedState):
            return self._strided_forward(plan, x)
        dt = st.xp.dtype
        if st.geoms is not None and x.dtype == dt and x.flags.c_contiguous:
            srcs = [np.ndarray(shape, dt, x, off, strides) for shape, strides, off in st.geoms]
        else:
            fill_padded(st.xp, x, p)
            srcs = [step[0] for step in st.steps]
        y = np.empty(p.output_shape, dtype=dt)
        if st.whole:  # one chunk per image: the GEMM writes straight into the output
            for src, (_, dst, cols, wmat, _, _, (n, g, _, _, _)) in zip(srcs, st.steps):
                np.copyto(dst, src)
                np.matmul(wmat, cols, out=y[n.start, g].reshape(p.ocg, st.P))
            return y
        yv = volume(y)
        for src, (_, dst, cols, wmat, tmp, tmp5, idx) in zip(srcs, st.steps):
            np.copyto(dst, src)
            if tmp is None:
                np.matmul(wmat, cols, out=yv[idx])
            else:
                np.matmul(wmat, cols, out=tmp)
                yv[idx] = tmp5
        return y

    def _transposed(self, plan: Plan[TransposedState], x: np.ndarray) -> np.ndarray:
        p, st = plan.problem, plan.state
        yp = st.yp
        yp.fill(0)
        icg, ocg, P, mbc = p.icg, p.ocg, st.P, st.mbc
        axes = p.axes
        for n0 in range(0, p.mb, mbc):
            nb = min(mbc, p.mb - n0)
            cols = st.cols[:, :nb * P]
            for gi in range(p.g):
                xg = x[n0:n0 + nb, gi * ocg:(gi + 1) * ocg]  # (nb, ocg) + out_spatial
                if nb == 1:
                    np.matmul(st.wt[gi], xg.reshape(ocg, P), out=cols)
                else:
                    np.matmul(st.wt[gi], np.swapaxes(xg, 0, 1).reshape(ocg, nb * P), out=cols)
                ct = cols.reshape((icg,) + p.kernel + (nb,) + p.out_spatial)
                dst = yp[n0:n0 + nb, gi * icg:(gi + 1) * icg]
                # col2im: every tap's slab added into the padded output at its strided offset
                for tap in np.ndindex(*p.kernel):
                    win = tuple(slice(t * (ax.d + 1), t * (ax.d + 1) + (ax.o - 1) * ax.s + 1, ax.s)
                                for t, ax in zip(tap, axes))
                    dst[(slice(None), slice(None)) + win] += np.swapaxes(ct[(slice(None),) + tap], 0, 1)
        return crop_padded(yp, p)

    def _estimate(self, p: ConvProblem) -> Estimate:
        # the GEMM multiplies padding taps too: 2 * oc * (ic/g*taps) * (mb*pixels);
        # col2im adds (transposed) are taps*ic/g*pixels*mb*g more
        gemm = float(dense_flops(p))
        it, K, P = p.itemsize, p.icg * _taps(p), _pixels(p)
        pad = p.mb * p.ic * prod(p.padded) * it
        if p.direction == "bwd_w":  # the same products, reduced over the pixels instead
            nb = _wgrad_images(p)
            ws = p.ocg * nb * P * it + p.oc * K * it
            if _direct_1x1(p):
                if P < WGRAD_1X1_DIRECT_PIXELS:
                    ws += p.icg * nb * P * it
                else:
                    ws -= p.ocg * nb * P * it
            else:
                ws += pad + K * nb * P * it
            return Estimate(gemm, gemm, ws)
        extra = p.mb * p.ic * _taps(p) * P if p.transposed else 0
        if p.transposed:
            ws = K * _chunk(p) * P * it + pad
        elif _pointwise(p):
            ws = p.mb * p.ic * P * it if p.out_spatial != p.spatial else 0
        elif unfold.fits(p):
            rows = _strided_rows(p)
            ws = pad + K * rows * p.ow * it
        else:
            ncols, whole = _chunk_extent(p)
            ws = K * ncols * it + pad + (0 if whole else p.ocg * ncols * it)  # cols + padded x + GEMM out
        # a GEMM algorithm's multiplication stage is all of it (the base contract's rule)
        return Estimate(gemm + extra, gemm + extra, ws)
