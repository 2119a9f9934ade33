"""``winograd_f{m}x{r}``: Winograd minimal filtering F(m x m, r x r) (Lavin & Gray, 2016).

The output is cut into ``m x m`` tiles; each needs an ``n x n`` input tile
(``n = m + r - 1``). Per tile and channel pair the direct method spends ``m^2 r^2``
multiplies, Winograd ``n^2``: for F(4x4, 3x3) 36 instead of 144, a 4x reduction on
large outputs, less where partial edge tiles are computed in full (3.06x on 14x14).

Three stages, each timed as a phase:

input transform   ``V = B^T d B`` for every tile and input channel. A compiled loop
                  (numba) reads tiles from a zero-padded channels-last copy of the input
                  (:mod:`.layout`) and vectorises over channels; coefficients equal to
                  zero are skipped.
multiply          for each of the ``n^2`` transformed positions, one GEMM over channels:
                  ``M[xy] (tiles x oc/g) = V[xy] (tiles x ic/g) @ U[xy] (ic/g x oc/g)``,
                  all of them in one batched ``numpy.matmul`` call (BLAS per position);
                  depthwise problems become an element-wise product.
output transform  ``Y = A^T M A`` per tile and output channel, compiled, into channels-last
                  tiles, then reordered into the NC[D]HW output (:mod:`.layout`); rows and
                  columns of edge tiles beyond the output are computed but not stored.

In 1-D the tiles are F(m, r); in 3-D F(m^3, r^3) runs as three passes of the 1-D
transform, one axis each (Budden et al. 2017), block of depth tiles by block
(:data:`WINO3_BLOCK_BYTES`), with ``n^3`` batched GEMMs per block.

The weight transform ``U = G g G^T`` happens once, in ``prepare``. The transform
matrices come from :mod:`convbench.toomcook` (exact rational Toom-Cook); the point
set is the backend's ``winograd_points`` option (CLI ``--winograd-points``) and is
recorded in each row's note, since it changes the numerical error.

Capabilities: stride 1, no dilation, kernel exactly ``r x r``; groups and any
padding (including asymmetric) are supported.

The weight gradient (Lavin & Gray, section 4.3: "the output tile is the filter") is a
correlation of the input with the output gradient whose *result* is the ``r x r`` kernel:
F(r x r, m x m), the output gradient cut into ``m x m`` tiles playing the filter and the
input into the overlapping ``n x n`` patches under them (``n = m + r - 1``, the forward
variant's own ``n``). Per tile ``dW_tile = A^T [(G dY_t G^T) . (B^T x_t B)] A`` with the
F(r, m) matrices; ``A^T ... A`` is linear, so the element-wise products are summed over all
tiles of all images first: at each of the ``n^2`` positions one GEMM
``(oc/g x tiles) @ (tiles x ic/g)``, reducing over the long tile axis, then one output
transform per weight. Multiplies per (tile, channel pair): ``n^2`` against ``m^2 r^2`` directly.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.lib.stride_tricks import as_strided

from ..flops import dense_flops, prod
from ..problem import ConvProblem
from ..toomcook import POINT_SETS, validate_points, winograd_transform
from .base import Backend, Capabilities, Estimate, Plan, volume
from .layout import to_channels_first, to_channels_last, warm
from .winograd_kernels import staged_kernels, transform_kernels

try:
    import numba
except ImportError:  # pragma: no cover
    numba = None


def _slabs(count: int, shape: tuple, dt) -> np.ndarray:
    """``count`` arrays of ``shape`` stacked on a new first axis, each slab starting an odd
    number of cache lines after the previous one.

    The transforms stream through all ``n^2`` slabs of V and M at once; with a slab size
    that is a multiple of 4 KiB (e.g. 784 tiles x 64 channels x 4 bytes) every stream maps
    to the same cache sets, and the input transform ran 4x slower (measured: 1.9 ms vs
    0.4 ms on 64@56^2). An odd stride in cache lines spreads them over the sets.
    """
    it = np.dtype(dt).itemsize
    elems = int(np.prod(shape))
    lines = -(-elems * it // 64)
    lines += 1 - lines % 2
    stride = lines * 64 // it
    return np.empty((count, stride), dtype=dt)[:, :elems].reshape(count, *shape)


def _nnz(M) -> int:
    return sum(1 for row in M for v in row if v != 0)


def own_view(a: np.ndarray, p: ConvProblem) -> np.ndarray:
    """``a`` over the problem's own axes only: a 1-D problem's NC1W array as ``(N, C, W)``."""
    return a.reshape(a.shape[:2] + a.shape[a.ndim - p.rank:])


def _along(mat: np.ndarray, arr: np.ndarray, axis: int) -> np.ndarray:
    """``mat`` applied along ``axis`` of ``arr`` (one 1-D transform of a nested N-D one)."""
    return np.moveaxis(np.tensordot(mat, arr, axes=([1], [axis])), 0, axis)


def _nest(mat: np.ndarray, arr: np.ndarray, axes) -> np.ndarray:
    """``mat`` applied along each of ``axes`` in turn: the N-D transform of a tensor product."""
    for ax in axes:
        arr = _along(mat, arr, ax)
    return arr


#: bytes of V, M and the staged buffers per block of depth tiles in 3-D: the whole volume's
#: transformed tiles (n^3 = 216 values per tile and channel for F(4,3)) ran into gigabytes
#: (5.4 GiB for 3-D U-Net's 32->64 layer on 114x130x130); blocks of 4, 16, 64 MiB and the whole
#: volume ran 427/375/374/365 ms on U-Net's 64->64 layer at 56x64x64 (torch 545; 1 thread)
WINO3_BLOCK_BYTES = 64 << 20


def _depth_block(p: ConvProblem, tiles: tuple, m: int, r: int) -> int:
    """Depth tiles per block of the 3-D transforms (at least one): V, M and the buffers
    between the passes of one block fit :data:`WINO3_BLOCK_BYTES`."""
    td, th, tw = tiles
    n = m + r - 1
    one = p.itemsize * (sum(prod(v) for v in _staged_buffers(p, (1, th, tw), m, r, 1).values())
                        + n ** 3 * th * tw * (p.ic + p.oc))
    return max(1, min(td, WINO3_BLOCK_BYTES // one))


def _staged_buffers(p: ConvProblem, tiles: tuple, m: int, r: int, block: int) -> dict:
    """Shapes of the buffers between the staged 3-D passes, for a block of ``block`` depth
    tiles of one image: ``s1`` (after depth) and ``s2`` (after height) of the input transform,
    ``z1`` (after width) and ``z2`` (after height) of the output transform."""
    _, th, tw = tiles
    n = m + r - 1
    Hp, Wp = th * m + r - 1, tw * m + r - 1
    return {"s1": (1, block, n, Hp, Wp, p.ic), "s2": (block, n, th, n, Wp, p.ic),
            "z1": (block, n, th, n, tw * m, p.oc), "z2": (block, n, th * m, tw * m, p.oc)}


@dataclass
class WinogradState:
    """``U``: transformed weights ``(n^rank, g, icg, ocg)``; ``xn``: zero-padded channels-last
    input; ``V``/``M``: transformed input and product slabs ``(n^rank, g, tiles, c)``; ``Y``:
    channels-last output tiles; ``kin``/``kout``: the compiled transforms; ``tiles`` per axis."""

    tiles: tuple
    U: np.ndarray
    xn: np.ndarray
    V: np.ndarray
    M: np.ndarray
    Y: np.ndarray
    kin: Any
    kout: Any
    parallel: bool
    #: 3-D: the staged kernels, the buffers between their passes (see :func:`_staged_buffers`)
    #: and the blocks ``(image, first depth tile, depth tiles)`` the volume is transformed in
    staged: dict | None = None
    stage: dict | None = None
    blocks: list | None = None


@dataclass
class WinogradGradState:
    """Weight-gradient plan: the F(r, m) matrices (float64 for the output transform), the
    zero-padded input and output gradient, and the tiles per axis."""

    tiles: tuple
    BT: np.ndarray
    G: np.ndarray
    AT: np.ndarray
    xp: np.ndarray
    dyp: np.ndarray


class _Winograd(Backend):
    """F(m^rank, r^rank); subclasses set ``m`` and ``r``."""

    m: int = 4
    r: int = 3
    algorithm = "winograd"
    options = {"winograd_points": "lavin"}

    def _configure(self, winograd_points: str) -> None:
        # a name from convbench.toomcook.POINT_SETS or a comma-separated list of rationals;
        # whether the count fits F(m, r) is checked in prepare
        self.points = validate_points(winograd_points)

    @classmethod
    def unavailable_reason(cls) -> str | None:
        return None if numba is not None else "numba is not installed"

    # ------------------------------------------------------------------ geometry
    def _tiles(self, p: ConvProblem) -> tuple:
        """Output tiles along each of the problem's own axes."""
        return tuple(-(-o // self.m) for o in p.own("o"))

    def _name(self, p: ConvProblem) -> str:
        """``F(4x4x4,3x3x3)``: the algorithm at the problem's rank."""
        return f"F({'x'.join([str(self.m)] * p.rank)},{'x'.join([str(self.r)] * p.rank)})"

    # ------------------------------------------------------------------ plan
    def _prepare_wgrad(self, p: ConvProblem) -> Plan[WinogradGradState]:
        m, r = self.m, self.r
        tr = winograd_transform(r, m, self.points)   # F(r, m): the kernel is the output
        dt = np.dtype(p.dtype)
        _, G, BT = tr.arrays(dt)
        tiles = self._tiles(p)
        st = WinogradGradState(tiles=tiles, BT=BT, G=G, AT=tr.arrays(np.float64)[0],
                               xp=np.zeros((p.mb, p.ic) + tuple(t * m + r - 1 for t in tiles), dtype=dt),
                               dyp=np.zeros((p.mb, p.oc) + tuple(t * m for t in tiles), dtype=dt))
        note = (f"weight gradient F({'x'.join([str(r)] * p.rank)},{'x'.join([str(m)] * p.rank)}) points "
                f"{self.points}: " + ",".join(str(a) for a in tr.points) + ",inf")
        return self.make_plan(p, st, note=note)

    def _wgrad(self, plan: Plan[WinogradGradState], x: np.ndarray, dy: np.ndarray) -> np.ndarray:
        p, st = plan.problem, plan.state
        m, r, R = self.m, self.r, p.rank
        n = m + r - 1
        pads, read = p.own("p"), p.read[len(p.read) - R:]
        st.xp[(slice(None), slice(None)) + tuple(slice(q, q + k) for q, k in zip(pads, read))] = \
            own_view(x, p)[(slice(None), slice(None)) + tuple(slice(0, k) for k in read)]
        st.dyp[(slice(None), slice(None)) + tuple(slice(0, o) for o in p.own("o"))] = own_view(dy, p)
        sN, sC, *sp = st.xp.strides
        patches = as_strided(st.xp, shape=(p.mb, p.ic) + st.tiles + (n,) * R,
                             strides=(sN, sC) + tuple(m * v for v in sp) + tuple(sp), writeable=False)
        # input patches and output-gradient tiles transformed, then laid out (n^R, channels, tiles)
        V = _nest(st.BT, patches, range(2 + R, 2 + 2 * R))                # (mb, ic, tiles, n^R)
        split = (p.mb, p.oc) + tuple(v for t in st.tiles for v in (t, m))
        U = st.dyp.reshape(split).transpose((0, 1) + tuple(range(2, 2 + 2 * R, 2)) + tuple(range(3, 3 + 2 * R, 2)))
        U = _nest(st.G, U, range(2 + R, 2 + 2 * R))                       # (mb, oc, tiles, n^R)
        T = p.mb * prod(st.tiles)
        order = tuple(range(2 + R, 2 + 2 * R)) + (1, 0) + tuple(range(2, 2 + R))
        V = V.transpose(order).reshape(n ** R, p.g, p.icg, T)
        U = U.transpose(order).reshape(n ** R, p.g, p.ocg, T)
        M = np.matmul(U, V.transpose(0, 1, 3, 2))            # (n^R, g, ocg, icg): summed over the tiles
        M = M.reshape((n,) * R + (p.oc, p.icg)).astype(np.float64)
        dw = _nest(st.AT, M, range(R))                       # (r^R, oc, icg)
        dw = dw.transpose((R, R + 1) + tuple(range(R)))
        return np.ascontiguousarray(dw, dtype=p.dtype).reshape(p.weight_shape)

    def prepare(self, p: ConvProblem, w: np.ndarray | None) -> Plan:
        if p.direction == "bwd_w":
            return self._prepare_wgrad(p)
        m, r, R = self.m, self.r, p.rank
        n = m + r - 1
        tr = winograd_transform(m, r, self.points)
        dt = np.dtype(p.dtype)
        tiles = self._tiles(p)
        T = p.mb * prod(tiles)
        # U[xi, g, icg, ocg] = (G (x) G (x) ... g)[xi] for each (o, c): exact in float64, then cast
        G64 = tr.arrays(np.float64)[1]
        wg = own_view(w.astype(np.float64), p).reshape((p.g, p.ocg, p.icg) + (r,) * R)
        U = _nest(G64, wg, range(3, 3 + R))                  # (g, ocg, icg, n^R)
        U = U.transpose(tuple(range(3, 3 + R)) + (0, 2, 1))
        U = np.ascontiguousarray(U.reshape(n ** R, p.g, p.icg, p.ocg), dtype=dt)
        parallel = numba.get_num_threads() > 1 and dense_flops(p) >= 4e6
        warm(p.dtype, parallel)  # the layout reorders, compiled before any timed run
        kin, kout = transform_kernels(m, r, self.points, p.dtype, parallel, R) if R < 3 else (None, None)
        bd = _depth_block(p, tiles, m, r) if R == 3 else 0
        Tb = bd * tiles[1] * tiles[2] if R == 3 else T  # tiles of V and M at a time
        st = WinogradState(tiles=tiles, U=U, parallel=parallel, kin=kin, kout=kout,
                           xn=np.zeros((p.mb,) + tuple(t * m + r - 1 for t in tiles) + (p.ic,), dtype=dt),
                           V=_slabs(n ** R, (p.g, Tb, p.icg), dt), M=_slabs(n ** R, (p.g, Tb, p.ocg), dt),
                           Y=np.empty((p.mb,) + tuple(t * m for t in tiles) + (p.oc,), dtype=dt))
        # compile now (or load numba's cache), never in a timed run: on the plan's own buffers,
        # whose array types (the slabs are not C-contiguous) are exactly what run() passes;
        # stand-in arrays of another layout made the first real call compile again (measured
        # with a cold cache: 3.3 s and 6.3 s in the first run of F(2x2,5x5) and F(4x4,5x5))
        if R == 3:
            st.staged = staged_kernels(m, r, self.points, p.dtype, parallel)
            st.stage = {k: np.empty(v, dtype=dt) for k, v in _staged_buffers(p, tiles, m, r, bd).items()}
            st.blocks = [(i, t0, min(bd, tiles[0] - t0)) for i in range(p.mb) for t0 in range(0, tiles[0], bd)]
            st.M[...] = 0
            self._staged_volume(p, st, np.zeros(p.input_shape, dtype=dt), multiply=False)
        else:
            self._stage_input(Plan(p, st), np.zeros(p.input_shape, dtype=dt))
            st.M[...] = 0
            kout(st.M, st.Y, m, *tiles, p.ocg)
        self._stage_output(Plan(p, st), transform=False)  # the layout reorder compiled too
        how = (f"staged (one axis per pass, {bd} of {tiles[0]} depth tiles a block)" if R == 3 else "fused")
        note = (f"{self._name(p)} points {self.points}: " + ",".join(str(a) for a in tr.points)
                + f",inf; {how} {'parallel' if parallel else 'serial'} transforms")
        return self.make_plan(p, st, note=note)

    # ------------------------------------------------------------------ the work
    def _fill(self, p: ConvProblem, st: WinogradState, x: np.ndarray) -> None:
        """The input into the zero-bordered channels-last ``xn`` (a compiled reorder)."""
        R = p.rank
        read = (1,) * (3 - len(p.read)) + tuple(p.read)
        pads = (0,) * (3 - R) + tuple(p.own("p"))
        xn5 = st.xn.reshape((p.mb,) + (1,) * (3 - R) + st.xn.shape[1:1 + R] + (p.ic,))
        to_channels_last(volume(x)[:, :, :read[0], :read[1], :read[2]], xn5, pads, st.parallel)

    def _stage_input(self, plan: Plan[WinogradState], x: np.ndarray) -> None:
        p, st = plan.problem, plan.state
        self._fill(p, st, x)
        st.kin(st.xn, st.V, self.m, *st.tiles, p.icg)

    def _transform_output(self, p: ConvProblem, st: WinogradState) -> None:
        """The output transform into the channels-last tiles ``Y`` (1-D and 2-D)."""
        st.kout(st.M, st.Y, self.m, *st.tiles, p.ocg)

    def _staged_volume(self, p: ConvProblem, st: WinogradState, x: np.ndarray, multiply: bool = True) -> dict:
        """The 3-D pipeline, block of depth tiles by block: B^T along depth, height, then width
        (into the V slabs), the multiply, A^T along width (from the M slabs), height, then depth
        (into ``Y``). Returns the seconds spent per phase (input, multiply, output)."""
        k, b, m, r = st.staged, st.stage, self.m, self.r
        _, th, tw = st.tiles
        Hp, Wp = st.xn.shape[2:4]
        n = m + r - 1
        ic, oc, W = p.ic, p.oc, tw * m
        spent = {"input": 0.0, "multiply": 0.0, "output": 0.0}
        t0 = time.perf_counter()
        self._fill(p, st, x)
        spent["input"] = time.perf_counter() - t0
        for i, d0, nb in st.blocks:
            t1 = time.perf_counter()
            T = nb * th * tw
            V, M = st.V[:, :, :T], st.M[:, :, :T]
            s1, s2, z1, z2 = b["s1"][:, :nb], b["s2"][:nb], b["z1"][:nb], b["z2"][:nb]
            src = st.xn[i, d0 * m:(d0 + nb) * m + r - 1].reshape(1, nb * m + r - 1, Hp * Wp * ic)
            k["tin"](src, s1.reshape(1, nb, n, Hp * Wp * ic), m)
            k["tin"](s1.reshape(nb * n, Hp, Wp * ic), s2.reshape(nb * n, th, n, Wp * ic), m)
            k["tin_last"](s2, V, m, tw, p.icg)
            t2 = time.perf_counter()
            if multiply:
                self._multiply(p, V, st.U, M)
            t3 = time.perf_counter()
            k["tout_first"](M, z1, m, tw, p.ocg)
            k["tout"](z1.reshape(nb * n * th, n, W * oc), z2.reshape(nb * n * th, m, W * oc))
            k["tout"](z2.reshape(nb, n, th * m * W * oc),
                      st.Y[i, d0 * m:(d0 + nb) * m].reshape(nb, m, th * m * W * oc))
            t4 = time.perf_counter()
            spent["input"] += t2 - t1
            spent["multiply"] += t3 - t2
            spent["output"] += t4 - t3
        return spent

    @staticmethod
    def _multiply(p: ConvProblem, V: np.ndarray, U: np.ndarray, M: np.ndarray) -> None:
        if p.icg == 1:
            np.multiply(V, U, out=M)  # (.., T, 1) * (.., 1, ocg)
        else:
            np.matmul(V, U, out=M)

    def _stage_multiply(self, plan: Plan[WinogradState]) -> None:
        p, st = plan.problem, plan.state
        self._multiply(p, st.V, st.U, st.M)

    def _stage_output(self, plan: Plan[WinogradState], transform: bool = True) -> np.ndarray:
        p, st = plan.problem, plan.state
        R = p.rank
        if transform:
            self._transform_output(p, st)
        # channels-last tiles -> NC[D]HW output, dropping the parts of edge tiles beyond the output
        y = np.empty(p.output_shape, dtype=st.Y.dtype)  # never a view of the plan's buffers
        Y5 = st.Y.reshape((p.mb,) + (1,) * (3 - R) + st.Y.shape[1:1 + R] + (p.oc,))
        to_channels_first(Y5, volume(y), st.parallel)
        return y

    def run(self, plan: Plan, *inputs: np.ndarray) -> np.ndarray:
        if plan.problem.direction == "bwd_w":
            return self._wgrad(plan, *inputs)
        x = inputs[0]
        if plan.state.staged is not None:
            self._staged_volume(plan.problem, plan.state, x)
            return self._stage_output(plan, transform=False)
        self._stage_input(plan, x)
        self._stage_multiply(plan)
        return self._stage_output(plan)

    def phases(self, plan: Plan[WinogradState], *inputs: np.ndarray) -> dict[str, float] | None:
        if plan.problem.direction == "bwd_w":
            return None  # the phases are those of the forward/backward-data pipeline
        (x,) = inputs
        if plan.state.staged is not None:  # 3-D: the phases summed over the blocks
            spent = self._staged_volume(plan.problem, plan.state, x)
            t0 = time.perf_counter()
            self._stage_output(plan, transform=False)
            spent["output"] += time.perf_counter() - t0
            return spent
        t0 = time.perf_counter()
        self._stage_input(plan, x)
        t1 = time.perf_counter()
        self._stage_multiply(plan)
        t2 = time.perf_counter()
        self._stage_output(plan)
        t3 = time.perf_counter()
        return {"input": t1 - t0, "multiply": t2 - t1, "output": t3 - t2}

    # ------------------------------------------------------------------ accounting
    def _estimate(self, p: ConvProblem) -> Estimate:
        """Multiply stage: ``n^rank`` multiply-adds per tile and channel pair. Executed: that
        plus both transforms as the compiled loops run them (the nested 1-D transforms: stage
        ``k`` of the input transform passes over the nonzeros of B^T for ``n^(rank-1)`` lines
        per input tile and channel; stage ``k`` of the output transform over those of A^T for
        ``m^k n^(rank-1-k)`` lines per output tile and channel; a multiply-add counts 2).
        Workspace: padded input, V, M and U."""
        tiles = self._tiles(p)
        n, m, r, R = self.m + self.r - 1, self.m, self.r, p.rank
        T = p.mb * prod(tiles)
        mult = 2 * n ** R * T * p.oc * p.icg
        xn = p.mb * prod(t * m + r - 1 for t in tiles) * p.ic
        if p.direction == "bwd_w":  # F(r, m): transforms of input patches, dY tiles, then of each weight
            tg = winograd_transform(r, m, self.points)
            t_in = 2 * R * n ** (R - 1) * _nnz(tg.BT) * T * p.ic
            t_dy = 2 * sum(n ** (k + 1) * m ** (R - k) for k in range(R)) * T * p.oc
            t_out = 2 * sum(r ** (k + 1) * n ** (R - k) for k in range(R)) * p.oc * p.icg
            ws = p.itemsize * (xn + p.mb * p.oc * prod(t * m for t in tiles) + n ** R * T * (p.ic + p.oc)) \
                + 8 * n ** R * p.oc * p.icg
            return Estimate(float(t_in + t_dy + mult + t_out), float(mult), ws)
        tr = winograd_transform(m, r, self.points)
        if R == 3:  # V and M hold one block of depth tiles
            bd = _depth_block(p, tiles, m, r)
            ws = p.itemsize * (xn + n ** R * bd * tiles[1] * tiles[2] * (p.ic + p.oc) + n ** R * p.oc * p.icg
                               + p.mb * prod(t * m for t in tiles) * p.oc)
        else:
            ws = p.itemsize * (xn + n ** R * T * (p.ic + p.oc) + n ** R * p.oc * p.icg)
        if R == 3:  # the staged passes: lines per pass times the nonzeros of the 1-D matrix
            td, th, tw = tiles
            Hp, Wp = th * m + r - 1, tw * m + r - 1
            lines_in = p.mb * td * (Hp * Wp + n * th * Wp + n * th * n * tw) * p.ic
            lines_out = p.mb * td * n * th * (n * tw + tw * m) * p.oc + p.mb * td * th * m * tw * m * p.oc
            t_in, t_out = 2 * _nnz(tr.BT) * lines_in, 2 * _nnz(tr.AT) * lines_out
            ws += p.itemsize * sum(prod(v) for v in _staged_buffers(p, tiles, m, r, bd).values())
            return Estimate(float(t_in + mult + t_out), float(mult), ws)
        t_in = 2 * R * n ** (R - 1) * _nnz(tr.BT) * T * p.ic
        t_out = 2 * sum(m ** k * n ** (R - 1 - k) for k in range(R)) * _nnz(tr.AT) * T * p.oc
        return Estimate(float(t_in + mult + t_out), float(mult), ws)


def _make(m: int, r: int, rtol32: float):
    caps = Capabilities(kernel_sizes=(r,), ranks=(1, 2, 3), strides=(1,), dilation=False, exact=False,
                        backward_weights=True, rtol={"float32": rtol32, "float64": rtol32 * 1e-8}, threads="numba",
                        rank_rtol=RANK_RTOL)

    class W(_Winograd):
        pass
    W.m, W.r = m, r
    W.name = f"winograd_f{m}x{r}"
    W.description = f"Winograd F({m}x{m},{r}x{r}): {m + r - 1}^2 multiplies per {m}x{m} tile " \
                    f"(direct: {m * m * r * r}); nested F(m^3,r^3) in 3-D ({(m + r - 1) ** 3} vs {m ** 3 * r ** 3}), " \
                    f"F(m,r) in 1-D; compiled transforms, batched BLAS GEMMs"
    W.capabilities = caps
    W.__name__ = W.__qualname__ = f"Winograd_F{m}x{r}"
    return W


#: the tolerance's factor per rank: every nested transform multiplies the error's growth (the
#: transforms' norms multiply); measured on the contract problems and I3D/U-Net layers
RANK_RTOL = {1: 1.0, 2: 1.0, 3: 4.0}

# Tolerances (norm-wise relative error, float32) grow with the tile: the transforms'
# entries grow with n. Measured on the contract problems and ResNet layers, with margin.
WinogradF2x3 = _make(2, 3, 1e-5)
WinogradF4x3 = _make(4, 3, 5e-5)
WinogradF6x3 = _make(6, 3, 2e-4)
WinogradF2x5 = _make(2, 5, 5e-5)
WinogradF4x5 = _make(4, 5, 5e-4)

__all__ = ["POINT_SETS", "WinogradState", "WinogradF2x3", "WinogradF4x3", "WinogradF6x3",
           "WinogradF2x5", "WinogradF4x5"]
