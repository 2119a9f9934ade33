"""``dense_matrix`` and ``sparse_csr``: the convolution as multiplication by its matrix.

The operator ``A`` maps the flattened input (per group: ``ic/g * ih * iw``, NCHW order)
to the flattened output (``oc/g * oh * ow``); padding, stride and dilation are folded
in (an output pixel's row holds the weights of the taps that land on real input
pixels; taps on padding have no entry). It is block diagonal over groups; each block
is a doubly blocked Toeplitz matrix. See :mod:`convbench.flops` for what its size
and sparsity say about parameter sharing and local connectivity.

Assembly (in ``prepare``) never materialises more than it stores. For one group the
column pattern of an output pixel does not depend on the output channel, so it is
built once per pixel, vectorised over (channel, tap), and repeated for every output
channel; the values are the weights gathered by tap index. Pruned (zero) weights
are dropped.

``dense_matrix`` expands the pattern into the dense block (``A^T``, so that the run is
``y = x @ A^T``: one BLAS GEMM over the batch per group). Its ``workspace_bytes`` is the
matrix size, known from the shape alone, and a problem over the memory limit is
refused in ``supports`` before anything is allocated: a VGG-16 layer would need 41 TB.

``sparse_csr`` keeps the pattern as a ``scipy.sparse`` matrix; ``prepare`` builds CSR,
CSC and (for channel blocks of 8+ weights) NHWC-ordered BSR forms and keeps whichever
multiplies fastest on this problem (measured: CSC 1.7x faster than CSR on
``mb4ic8ih16oc8kh3ph1``, CSR 1.2x faster than CSC on ``mb1ic16ih16oc16kh3ph1``, BSR 1.75x
faster than CSR on ``mb1ic16ih24oc16kh3ph1`` with dense weights and 5x slower with 10%).
``run`` calls scipy's compiled matvec kernels directly.
Its nonzeros equal the in-bounds taps times the channel pairs, fewer with pruned
weights, so its run time follows the weight density.

The transposed convolution multiplies by ``A^T`` (dense: ``x @ A``; sparse: ``A^T`` in
its faster form).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..flops import operator_nnz, prod
from ..problem import ConvProblem
from ..timing import best_times
from .base import Backend, Capabilities, Estimate, Plan, stable_choice

try:
    import scipy.sparse as sp
except ImportError:  # pragma: no cover
    sp = None
try:  # scipy's compiled kernels behind A @ x, called directly: saves ~5-40 us of dispatch per run
    from scipy.sparse import _sparsetools as _st
except ImportError:  # pragma: no cover - private module; fall back to A @ x
    _st = None

__all__ = ["DenseMatrix", "SparseCSR", "SparseState", "operator_pattern", "operator_csr", "SPARSE_FORMATS"]

#: storage of ``sparse_csr``: ``auto`` (time CSR/CSC/BSR in prepare, keep the fastest) or one
#: format always (CSR isolates what zero weights save: BSR stores whole channel blocks)
SPARSE_FORMATS = ("auto", "csr", "csc", "bsr")


def _axis_pairs(o: int, i: int, k: int, s: int, p: int, d: int):
    """``valid (o, k)`` mask and input index for every (output position, tap) of one axis."""
    oo = np.arange(o)[:, None]
    kk = np.arange(k)[None, :]
    idx = oo * s - p + kk * (d + 1)
    return (idx >= 0) & (idx < i), idx


def operator_pattern(p: ConvProblem):
    """Column pattern of one group's operator, shared by all output channels.

    Returns
    -------
    counts : ndarray (pixels,)
        Nonzeros per output pixel (voxel) and output channel.
    cols : ndarray (sum(counts),) int32
        Column (``c * ih*iw + iy * iw + ix``; a depth term in 3-D) of every entry, pixel by
        pixel, ascending.
    taps : ndarray (sum(counts),) int64
        Index of each entry's weight within one output channel's ``(ic/g, *kernel)`` kernel.
    """
    axes = p.axes
    n = len(axes)
    shape = p.out_spatial + (p.icg,) + p.kernel
    mask = np.ones((1,) * len(shape), dtype=bool)
    col = np.arange(p.icg).reshape((1,) * n + (-1,) + (1,) * n) * prod(p.spatial)
    step = 1
    for j in reversed(range(n)):  # per axis: (o, k) pairs placed at the axis's output and tap dims
        ax = axes[j]
        m, idx = _axis_pairs(ax.o, ax.i, ax.k, ax.s, ax.p, ax.d)
        at = (1,) * j + (ax.o,) + (1,) * (n - 1 - j) + (1,) + (1,) * j + (ax.k,) + (1,) * (n - 1 - j)
        mask = mask & m.reshape(at)
        col = col + idx.reshape(at) * step
        step *= ax.i
    tap = np.arange(p.icg * prod(p.kernel)).reshape((1,) * n + (p.icg,) + p.kernel)
    mask = np.broadcast_to(mask, shape)
    col = np.broadcast_to(col, shape)[mask].astype(np.int32)
    taps = np.broadcast_to(tap, shape)[mask]
    counts = mask.reshape(prod(p.out_spatial), -1).sum(axis=1)
    return counts, col, taps


def operator_csr(p: ConvProblem, w: np.ndarray, drop_zeros: bool = True):
    """The forward operator ``A`` (``oc*oh*ow x ic*ih*iw``, block diagonal over groups) as CSR."""
    counts, cols, taps = operator_pattern(p)
    HW = prod(p.spatial)
    P = prod(p.out_spatial)
    wk = w.reshape(p.g, p.ocg, p.icg * prod(p.kernel))
    per_row = np.tile(counts, p.oc)                      # rows ordered (group, o, pixel)
    # one group at a time: the pattern repeated for every output channel (np.tile and np.take
    # on contiguous blocks: 10x faster than broadcasting the index arrays)
    data = np.concatenate([np.take(wk[gi], taps, axis=1).reshape(-1) for gi in range(p.g)])
    indices = np.concatenate([np.tile(cols + np.int32(gi * p.icg * HW), p.ocg) for gi in range(p.g)])
    if drop_zeros and np.count_nonzero(w) < w.size:     # pruned weights: drop their entries
        keep = data != 0
        rows = np.repeat(np.arange(p.oc * P), per_row)
        per_row = np.bincount(rows[keep], minlength=p.oc * P)
        data, indices = data[keep], indices[keep]
    indptr = np.zeros(p.oc * P + 1, dtype=np.int64)
    np.cumsum(per_row, out=indptr[1:])
    if indptr[-1] < 2 ** 31:
        indptr = indptr.astype(np.int32)
    return sp.csr_matrix((np.ascontiguousarray(data), np.ascontiguousarray(indices), indptr),
                         shape=(p.oc * P, p.ic * HW))


def _flat_src(p: ConvProblem) -> tuple[int, int]:
    """(rows, cols) of the operator the run applies: forward ``A``, transposed ``A^T``."""
    n_out, n_in = p.oc * prod(p.out_spatial), p.ic * prod(p.spatial)
    return (n_in, n_out) if p.transposed else (n_out, n_in)


class DenseMatrix(Backend):
    name = "dense_matrix"
    algorithm = "dense matrix"
    description = "explicit dense operator (doubly blocked Toeplitz), one BLAS GEMM over the batch per group"
    capabilities = Capabilities(exact=True, transposed=True, threads="blas", memory_fraction=1 / 16,
                                ranks=(1, 2, 3))
    direction_reasons = {"bwd_w": "the weight gradient does not apply: this algorithm's matrix is assembled from "
                                  "the weights in prepare, while dW's operator would be built from the input x, "
                                  "new every training step (setup per run, not an algorithm to time)"}

    @classmethod
    def unavailable_reason(cls) -> str | None:
        return None if sp is not None else "scipy is not installed"

    def _estimate(self, p: ConvProblem) -> Estimate:
        # the g dense blocks (decided from the shape alone) and one GEMM over the batch each
        entries = p.g * (p.ocg * prod(p.out_spatial)) * (p.icg * prod(p.spatial))
        flops = float(2 * p.mb * entries)
        return Estimate(flops, flops, entries * p.itemsize)

    def prepare(self, p: ConvProblem, w: np.ndarray) -> Plan:
        dt = np.dtype(p.dtype)
        P = prod(p.out_spatial)
        n_out, n_in = p.ocg * P, p.icg * prod(p.spatial)
        AT = np.zeros((p.g, n_in, n_out), dtype=dt)     # A^T per group: y = x @ A^T
        counts, cols, taps = operator_pattern(p)
        rows = np.repeat(np.arange(P), counts)
        wk = w.reshape(p.g, p.ocg, p.icg * prod(p.kernel)).astype(dt)
        for gi in range(p.g):
            for o in range(p.ocg):  # one fancy assignment per output channel: rows o*P + pixel
                AT[gi, cols, o * P + rows] = wk[gi, o, taps]
        return self.make_plan(p, AT)

    def run(self, plan: Plan[np.ndarray], x: np.ndarray) -> np.ndarray:
        p = plan.problem
        AT = plan.state  # A^T per group: (g, n_in, n_out)
        if p.transposed:
            src = x.reshape(p.mb, p.g, -1)
            y = np.empty((p.mb, p.g, AT.shape[1]), dtype=x.dtype)
            for gi in range(p.g):
                np.matmul(src[:, gi], AT[gi].T, out=y[:, gi])
            return y.reshape(p.dst_shape)
        src = x.reshape(p.mb, p.g, -1)
        y = np.empty((p.mb, p.g, AT.shape[2]), dtype=x.dtype)
        for gi in range(p.g):
            np.matmul(src[:, gi], AT[gi], out=y[:, gi])
        return y.reshape(p.dst_shape)


@dataclass
class SparseState:
    """The operator in the storage format ``fmt`` prepare kept, and scipy's compiled matvec
    kernels for it (None: plain ``A @ x``)."""

    A: Any
    fmt: str
    kern: Any


class SparseCSR(Backend):
    name = "sparse_csr"
    algorithm = "sparse matrix"
    description = "the operator as scipy.sparse (CSR or CSC, measured), nonzeros = in-bounds taps"
    # 1/32 of free RAM (~0.7 GB here): a ResNet 3x3 layer's operator (113M nonzeros, 0.9 GB)
    # takes ~3 s of page faults to assemble and runs 30x slower than im2col; raise the limit
    # with --memory-limit to see it
    capabilities = Capabilities(exact=True, transposed=True, threads="single", memory_fraction=1 / 32,
                                ranks=(1, 2, 3))
    direction_reasons = {"bwd_w": "the weight gradient does not apply: this algorithm's matrix is assembled from "
                                  "the weights in prepare, while dW's operator would be built from the input x, "
                                  "new every training step (setup per run, not an algorithm to time)"}
    options = {"sparse_format": "auto"}

    @classmethod
    def unavailable_reason(cls) -> str | None:
        return None if sp is not None else "scipy is not installed"

    def _configure(self, sparse_format: str) -> None:
        if sparse_format not in SPARSE_FORMATS:
            raise ValueError(f"sparse format {sparse_format!r}: accepted are {', '.join(SPARSE_FORMATS)}")
        self.format = sparse_format

    def _estimate(self, p: ConvProblem) -> Estimate:
        # CSR at full density: values + int32 column indices + row pointers (dense weights:
        # pruning only shrinks it); the CSC form is converted and the slower one dropped.
        # 2 flops per nonzero and image.
        nnz = operator_nnz(p)
        rows, _ = _flat_src(p)
        idx = 4 if nnz < 2 ** 31 else 8
        flops = float(2 * nnz * p.mb)
        return Estimate(flops, flops, nnz * (p.itemsize + idx) + (rows + 1) * idx)

    #: try the block format when blocks hold at least this many weights
    MIN_BSR_BLOCK = 8
    #: above this many nonzeros keep CSR without building and timing the alternatives: the
    #: conversions of a 100M-nonzero operator took ~10 s per problem, for a few percent
    MAX_NNZ_TUNED = 5_000_000

    def prepare(self, p: ConvProblem, w: np.ndarray) -> Plan:
        """Build the operator and keep the storage format that multiplies fastest here.

        Candidates (for operators up to ``MAX_NNZ_TUNED`` nonzeros; beyond, CSR):
        CSR and CSC of ``A`` (NCHW order); for forward problems whose
        (out, in) channel blocks hold at least ``MIN_BSR_BLOCK`` weights, also BSR of ``A``
        with rows and columns in NHWC order, where each (output pixel, input pixel) pair
        is one dense ``oc/g x ic/g`` block (one index per block instead of per weight;
        measured 1.3-1.75x faster than CSR on 8- and 16-channel layers with dense weights,
        slower with pruned ones, whose zeros a block must store).
        """
        dt = np.dtype(p.dtype)
        A = operator_csr(p, w.astype(dt))
        if p.transposed:
            A = A.T.tocsr()
        nnz = A.nnz
        fmt = self.format
        # the plan's count: 2 flops per stored nonzero and image (pruned weights are not multiplied)
        count = dict(flops_executed=float(2 * nnz * p.mb), flops_multiply=float(2 * nnz * p.mb))
        if fmt == "csr" or (fmt == "bsr" and p.transposed):
            return self.make_plan(p, SparseState(A, "csr", self._kernels("csr", A, p)),
                                  note=f"csr (--sparse-format {fmt}), nnz {nnz}", **count)
        if nnz > self.MAX_NNZ_TUNED and fmt == "auto":
            return self.make_plan(p, SparseState(A, "csr", self._kernels("csr", A, p)),
                                  note=f"csr (nnz {nnz} > {self.MAX_NNZ_TUNED}: CSC/BSR not tried)", **count)
        forms = {"csr": A, "csc": A.tocsc()}
        if not p.transposed and (p.ocg * p.icg >= self.MIN_BSR_BLOCK or fmt == "bsr"):
            P, HW = prod(p.out_spatial), prod(p.spatial)
            rows = np.arange(p.oc * P).reshape(p.oc, P).T.reshape(-1)   # (pixel, channel) order
            cols = np.arange(p.ic * HW).reshape(p.ic, HW).T.reshape(-1)
            forms["bsr"] = A[rows][:, cols].tobsr(blocksize=(p.ocg, p.icg))
        kerns = {name: self._kernels(name, M, p) for name, M in forms.items()}
        xs = np.zeros(p.src_shape, dtype=dt)
        names = list(forms)
        times = dict(zip(names, best_times([lambda name=name: self._apply(name, forms[name], kerns[name], p, xs)
                                            for name in names])))
        best = stable_choice(list(times.items())) if fmt == "auto" else fmt
        note = f"{best} ({', '.join(f'{k} {v * 1e3:.3f} ms' for k, v in times.items())}), nnz {nnz}"
        return self.make_plan(p, SparseState(forms[best], best, kerns[best]), note=note, **count)

    @staticmethod
    def _kernels(name: str, M, p: ConvProblem):
        """scipy's compiled matvec kernels for ``M`` (None: fall back to ``M @ x``)."""
        if _st is None:
            return None
        return getattr(_st, f"{name}_matvec"), getattr(_st, f"{name}_matvecs")

    @staticmethod
    def _apply(fmt: str, A, kern, p: ConvProblem, x: np.ndarray) -> np.ndarray:
        m, n = A.shape
        if fmt == "bsr":  # NHWC in, NHWC out
            R, C = A.blocksize
            nd = x.ndim - 2   # channels-last, images last: (*spatial, c, mb)
            xn = np.ascontiguousarray(x.transpose(tuple(range(2, 2 + nd)) + (1, 0)) if p.mb > 1 else
                                      x[0].transpose(tuple(range(1, 1 + nd)) + (0,)))
            if kern is None:
                Y = A @ xn.reshape(n, -1)
            else:
                Y = np.zeros((m, p.mb), dtype=x.dtype)
                if p.mb == 1:
                    kern[0](m // R, n // C, R, C, A.indptr, A.indices, A.data.reshape(-1), xn.reshape(-1),
                            Y.reshape(-1))
                else:
                    kern[1](m // R, n // C, p.mb, R, C, A.indptr, A.indices, A.data.reshape(-1),
                            xn.reshape(-1), Y.reshape(-1))
            y = np.empty(p.dst_shape, dtype=x.dtype)
            nd = y.ndim - 2
            np.copyto(y, Y.reshape(p.out_spatial + (p.oc, p.mb)).transpose((nd + 1, nd) + tuple(range(nd))))
            return y
        if p.mb == 1:
            if kern is None:
                return (A @ x.reshape(-1)).reshape(p.dst_shape)
            y = np.zeros(m, dtype=x.dtype)
            kern[0](m, n, A.indptr, A.indices, A.data, x.reshape(-1), y)
            return y.reshape(p.dst_shape)
        X = np.ascontiguousarray(x.reshape(p.mb, n).T)      # (inputs, mb): the matvecs layout
        if kern is None:
            Y = A @ X
        else:
            Y = np.zeros((m, p.mb), dtype=x.dtype)
            kern[1](m, n, p.mb, A.indptr, A.indices, A.data, X.reshape(-1), Y.reshape(-1))
        return np.ascontiguousarray(Y.T).reshape(p.dst_shape)

    def run(self, plan: Plan[SparseState], x: np.ndarray) -> np.ndarray:
        st = plan.state
        return self._apply(st.fmt, st.A, st.kern, plan.problem, x)
