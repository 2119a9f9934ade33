"""``winograd_f{m}x{r}``: Winograd minimal filtering F(m x m, r x r) (Lavin & Gray, 2016).

The output is cut into ``m x m`` tiles; each needs an ``n x n`` input tile
(``n = m + r - 1``). Per tile and channel pair the direct method spends ``m^2 r^2``
multiplies, Winograd ``n^2``: for F(4x4, 3x3) 36 instead of 144, a 4x reduction on
large outputs, less where partial edge tiles are computed in full (3.06x on 14x14).

Three stages, each timed as a phase:

input transform   ``V = B^T d B`` for every tile and input channel. A compiled loop
                  (numba) reads tiles from a zero-padded NHWC copy of the input and
                  vectorises over channels; coefficients equal to zero are skipped.
multiply          for each of the ``n^2`` transformed positions, one GEMM over channels:
                  ``M[xy] (tiles x oc/g) = V[xy] (tiles x ic/g) @ U[xy] (ic/g x oc/g)``,
                  all of them in one batched ``numpy.matmul`` call (BLAS per position);
                  depthwise problems become an element-wise product.
output transform  ``Y = A^T M A`` per tile and output channel, compiled, written straight
                  into the NCHW output; rows/columns of edge tiles beyond the output are
                  computed but not stored.

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
from fractions import Fraction
from functools import lru_cache
from typing import Any

import numpy as np
from numpy.lib.stride_tricks import as_strided

from ..flops import dense_flops
from ..problem import ConvProblem
from ..toomcook import POINT_SETS, validate_points, winograd_transform
from .base import Backend, Capabilities, Estimate, Plan
from .codegen import load_generated

try:
    import numba
except ImportError:  # pragma: no cover
    numba = None


def _lin(coefs, names, consts) -> str:
    """Source of sum(coef * name) with zeros dropped, +-1 as add/sub, other coefficients
    as named constants (typed to the kernel's dtype once, outside the loops)."""
    out = []
    for c, v in zip(coefs, names):
        if c == 0:
            continue
        if c == 1:
            term = v
        elif c == -1:
            term = f"-{v}"
        else:
            key = str(c)
            if key not in consts:
                consts[key] = f"K{len(consts)}"
            term = f"{consts[key]} * {v}"
        out.append(term)
    if not out:
        return "zero"
    s = out[0]
    for t in out[1:]:
        s += f" - {t[1:]}" if t.startswith("-") else f" + {t}"
    return s


def generate_source(m: int, r: int, points: str, dtype: str, parallel: bool) -> str:
    """Python source of the input/output transform kernels for one F(m, r) and point set.

    Each tile's transform is emitted as straight-line code: the exact coefficients are
    folded in, zeros are skipped and +-1 become additions. The innermost loop runs over
    channels (contiguous in the NHWC buffers), so LLVM vectorises the whole tile
    computation across channels.
    """
    tr = winograd_transform(m, r, points)
    n = m + r - 1
    BT, AT = tr.BT, tr.AT
    consts: dict[str, str] = {}
    np_t = {"float32": "np.float32", "float64": "np.float64"}[dtype]
    body_in = []
    for a in range(n):
        for b in range(n):
            body_in.append(f"d{a}_{b} = xn[b_, r0 + {a}, c0 + {b}, c]")
    for x in range(n):
        for b in range(n):
            body_in.append(f"t{x}_{b} = " + _lin([BT[x][a] for a in range(n)], [f"d{a}_{b}" for a in range(n)], consts))
    for x in range(n):
        for y in range(n):
            body_in.append(f"V[{x * n + y}, gi, t, ci] = "
                           + _lin([BT[y][b] for b in range(n)], [f"t{x}_{b}" for b in range(n)], consts))
    body_out = []
    for x in range(n):
        for y in range(n):
            body_out.append(f"q{x}_{y} = M[{x * n + y}, gi, t, o]")
    for i in range(m):
        for y in range(n):
            body_out.append(f"z{i}_{y} = " + _lin([AT[i][x] for x in range(n)], [f"q{x}_{y}" for x in range(n)], consts))
    for i in range(m):
        for j in range(m):
            body_out.append(f"Y[b_, r0 + {i}, c0 + {j}, o0 + o] = "
                            + _lin([AT[j][y] for y in range(n)], [f"z{i}_{y}" for y in range(n)], consts))
    const_lines = [f"    {name} = {np_t}({float(Fraction(k))!r})" for k, name in consts.items()]
    ind = " " * 20
    src = [f"# generated by convbench.backends.winograd for F({m},{r}) points={points!r} {dtype}",
           "import numpy as np",
           "from numba import njit, prange",
           "",
           f"@njit(fastmath=True, nogil=True, cache=True, parallel={parallel})",
           "def kin(xn, V, m, th, tw, icg):",
           "    # xn: (mb, Hp, Wp, ic) zero-padded NHWC -> V: (n*n, g, T, icg)",
           *const_lines,
           f"    zero = {np_t}(0)",
           "    mb = xn.shape[0]",
           "    g = V.shape[1]",
           "    for job in prange(mb * th):",
           "        b_ = job // th",
           "        r0 = (job - b_ * th) * m",
           "        for tj in range(tw):",
           "            t = job * tw + tj",
           "            c0 = tj * m",
           "            for gi in range(g):",
           "                for ci in range(icg):",
           "                    c = gi * icg + ci",
           *[ind + line for line in body_in],
           "",
           f"@njit(fastmath=True, nogil=True, cache=True, parallel={parallel})",
           "def kout(M, Y, m, th, tw, ocg):",
           "    # M: (n*n, g, T, ocg) -> Y: (mb, th*m, tw*m, oc) NHWC tiles",
           *const_lines,
           f"    zero = {np_t}(0)",
           "    mb = Y.shape[0]",
           "    g = M.shape[1]",
           "    for job in prange(mb * th):",
           "        b_ = job // th",
           "        r0 = (job - b_ * th) * m",
           "        for tj in range(tw):",
           "            t = job * tw + tj",
           "            c0 = tj * m",
           "            for gi in range(g):",
           "                o0 = gi * ocg",
           "                for o in range(ocg):",
           *[ind + line for line in body_out],
           ""]
    return "\n".join(src)


@lru_cache(maxsize=None)
def transform_kernels(m: int, r: int, points: str, dtype: str, parallel: bool):
    """``(kin, kout)`` compiled for this F(m, r), point set, dtype and threading.

    The generated source is loaded with :func:`~convbench.backends.codegen.load_generated` (named by a
    hash of its text) and imported, so numba's on-disk cache applies across runs.
    """
    ns = load_generated("wino", generate_source(m, r, points, dtype, parallel))
    return ns["kin"], ns["kout"]


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


@dataclass
class WinogradState:
    """``U``: transformed weights ``(n*n, g, icg, ocg)``; ``xn``: zero-padded NHWC input;
    ``V``/``M``: transformed input and product slabs ``(n*n, g, tiles, c)``; ``Y``: NHWC
    output tiles; ``kin``/``kout``: the compiled transforms."""

    th: int
    tw: int
    U: np.ndarray
    xn: np.ndarray
    V: np.ndarray
    M: np.ndarray
    Y: np.ndarray
    kin: Any
    kout: Any
    parallel: bool


@dataclass
class WinogradGradState:
    """Weight-gradient plan: the F(r, m) matrices (float64 for the output transform), the
    zero-padded input and output gradient, and the transformed slabs."""

    th: int
    tw: int
    BT: np.ndarray
    G: np.ndarray
    AT: np.ndarray
    xp: np.ndarray
    dyp: np.ndarray


class _Winograd(Backend):
    """F(m x m, r x r); subclasses set ``m`` and ``r``."""

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
    def _tiles(self, p: ConvProblem) -> tuple[int, int]:
        return -(-p.oh // self.m), -(-p.ow // self.m)

    def _supports(self, p: ConvProblem) -> str | None:
        return None

    # ------------------------------------------------------------------ plan
    def _prepare_wgrad(self, p: ConvProblem) -> Plan[WinogradGradState]:
        m, r = self.m, self.r
        tr = winograd_transform(r, m, self.points)   # F(r, m): the kernel is the output
        dt = np.dtype(p.dtype)
        _, G, BT = tr.arrays(dt)
        th, tw = self._tiles(p)
        st = WinogradGradState(th=th, tw=tw, BT=BT, G=G, AT=tr.arrays(np.float64)[0],
                               xp=np.zeros((p.mb, p.ic, th * m + r - 1, tw * m + r - 1), dtype=dt),
                               dyp=np.zeros((p.mb, p.oc, th * m, tw * m), dtype=dt))
        note = (f"weight gradient F({r}x{r},{m}x{m}) points {self.points}: "
                + ",".join(str(a) for a in tr.points) + ",inf")
        return self.make_plan(p, st, note=note)

    def _wgrad(self, plan: Plan[WinogradGradState], x: np.ndarray, dy: np.ndarray) -> np.ndarray:
        p, st = plan.problem, plan.state
        m, r = self.m, self.r
        n = m + r - 1
        h, w = p.read_h, p.read_w
        st.xp[:, :, p.ph:p.ph + h, p.pw:p.pw + w] = x[:, :, :h, :w]
        st.dyp[:, :, :p.oh, :p.ow] = dy
        sN, sC, sH, sW = st.xp.strides
        patches = as_strided(st.xp, shape=(p.mb, p.ic, st.th, st.tw, n, n),
                             strides=(sN, sC, m * sH, m * sW, sH, sW), writeable=False)
        tiles = st.dyp.reshape(p.mb, p.oc, st.th, m, st.tw, m)
        # input patches and output-gradient tiles transformed, channels before tiles: (n, n, ch, tiles)
        V = np.einsum("xa,nctuab,yb->xycntu", st.BT, patches, st.BT, optimize=True)
        U = np.einsum("xa,notaub,yb->xyontu", st.G, tiles, st.G, optimize=True)
        T = p.mb * st.th * st.tw
        V = V.reshape(n * n, p.g, p.icg, T)
        U = U.reshape(n * n, p.g, p.ocg, T)
        M = np.matmul(U, V.transpose(0, 1, 3, 2))            # (n*n, g, ocg, icg): summed over the tiles
        M = M.reshape(n, n, p.oc, p.icg).astype(np.float64)
        dw = np.einsum("ix,xyoc,jy->ocij", st.AT, M, st.AT, optimize=True)
        return dw.astype(p.dtype)

    def prepare(self, p: ConvProblem, w: np.ndarray | None) -> Plan:
        if p.direction == "bwd_w":
            return self._prepare_wgrad(p)
        m, r = self.m, self.r
        n = m + r - 1
        tr = winograd_transform(m, r, self.points)
        dt = np.dtype(p.dtype)
        th, tw = self._tiles(p)
        T = p.mb * th * tw
        # U[x*n+y, g, icg, ocg] = (G g G^T)[x, y] for each (o, c): exact in float64, then cast
        G64 = tr.arrays(np.float64)[1]
        wg = w.astype(np.float64).reshape(p.g, p.ocg, p.icg, r, r)
        U = np.einsum("xa,gocab,yb->xygco", G64, wg, G64, optimize=True)
        U = np.ascontiguousarray(U.reshape(n * n, p.g, p.icg, p.ocg), dtype=dt)
        Hp = th * m + r - 1
        Wp = tw * m + r - 1
        parallel = numba.get_num_threads() > 1 and dense_flops(p) >= 4e6
        kin, kout = transform_kernels(m, r, self.points, p.dtype, parallel)
        st = WinogradState(th=th, tw=tw, U=U, parallel=parallel, kin=kin, kout=kout,
                           xn=np.zeros((p.mb, Hp, Wp, p.ic), dtype=dt),
                           V=_slabs(n * n, (p.g, T, p.icg), dt), M=_slabs(n * n, (p.g, T, p.ocg), dt),
                           Y=np.empty((p.mb, th * m, tw * m, p.oc), dtype=dt))
        # compile now (or load numba's cache), never in a timed run: on the plan's own buffers,
        # whose array types (the slabs are not C-contiguous) are exactly what run() passes;
        # stand-in arrays of another layout made the first real call compile again (measured
        # with a cold cache: 3.3 s and 6.3 s in the first run of F(2x2,5x5) and F(4x4,5x5))
        kin(st.xn, st.V, m, th, tw, p.icg)
        st.M[...] = 0
        kout(st.M, st.Y, m, th, tw, p.ocg)
        note = (f"F({m}x{m},{r}x{r}) points {self.points}: " + ",".join(str(a) for a in tr.points)
                + f",inf; {'parallel' if parallel else 'serial'} transforms")
        return self.make_plan(p, st, note=note)

    # ------------------------------------------------------------------ the work
    def _stage_input(self, plan: Plan[WinogradState], x: np.ndarray) -> None:
        p, st = plan.problem, plan.state
        h, w = p.read_h, p.read_w
        st.xn[:, p.ph:p.ph + h, p.pw:p.pw + w, :] = x[:, :, :h, :w].transpose(0, 2, 3, 1)
        st.kin(st.xn, st.V, self.m, st.th, st.tw, p.icg)

    def _stage_multiply(self, plan: Plan[WinogradState]) -> None:
        p, st = plan.problem, plan.state
        if p.icg == 1:
            np.multiply(st.V, st.U, out=st.M)  # (.., T, 1) * (.., 1, ocg)
        else:
            np.matmul(st.V, st.U, out=st.M)

    def _stage_output(self, plan: Plan[WinogradState]) -> np.ndarray:
        p, st = plan.problem, plan.state
        st.kout(st.M, st.Y, self.m, st.th, st.tw, p.ocg)
        # NHWC tiles -> NCHW output, dropping the parts of edge tiles beyond (oh, ow)
        y = np.empty(p.output_shape, dtype=st.Y.dtype)  # never a view of the plan's buffers
        np.copyto(y, st.Y[:, :p.oh, :p.ow, :].transpose(0, 3, 1, 2))
        return y

    def run(self, plan: Plan, *inputs: np.ndarray) -> np.ndarray:
        if plan.problem.direction == "bwd_w":
            return self._wgrad(plan, *inputs)
        x = inputs[0]
        self._stage_input(plan, x)
        self._stage_multiply(plan)
        return self._stage_output(plan)

    def phases(self, plan: Plan[WinogradState], *inputs: np.ndarray) -> dict[str, float] | None:
        if plan.problem.direction == "bwd_w":
            return None  # the phases are those of the forward/backward-data pipeline
        (x,) = inputs
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
        """Multiply stage: ``n^2`` multiply-adds per tile and channel pair. Executed: that
        plus both transforms as the compiled loops run them (two passes over the nonzeros of
        B^T per input tile and channel, ``n + m`` passes over those of A^T per output tile
        and channel; a multiply-add counts 2). Workspace: padded input, V, M and U."""
        th, tw = self._tiles(p)
        n, m = self.m + self.r - 1, self.m
        tiles = p.mb * th * tw
        mult = 2 * n * n * tiles * p.oc * p.icg
        if p.direction == "bwd_w":  # F(r, m): transforms of input patches, dY tiles, then of each weight
            tg = winograd_transform(self.r, self.m, self.points)
            t_in = 2 * 2 * n * _nnz(tg.BT) * tiles * p.ic
            t_dy = 2 * (n * m + n * n) * m * tiles * p.oc
            t_out = 2 * (self.r * n + self.r * self.r) * n * p.oc * p.icg
            ws = p.itemsize * (p.mb * p.ic * (th * m + self.r - 1) * (tw * m + self.r - 1) + p.mb * p.oc * th * m * tw * m
                               + n * n * tiles * (p.ic + p.oc)) + 8 * n * n * p.oc * p.icg
            return Estimate(float(t_in + t_dy + mult + t_out), float(mult), ws)
        tr = winograd_transform(self.m, self.r, self.points)
        t_in = 2 * 2 * n * _nnz(tr.BT) * tiles * p.ic
        t_out = 2 * (n + m) * _nnz(tr.AT) * tiles * p.oc
        xn = p.mb * (th * m + self.r - 1) * (tw * m + self.r - 1) * p.ic
        ws = p.itemsize * (xn + n * n * tiles * (p.ic + p.oc) + n * n * p.oc * p.icg)
        return Estimate(float(t_in + mult + t_out), float(mult), ws)


def _make(m: int, r: int, rtol32: float):
    caps = Capabilities(kernel_sizes=((r, r),), strides=(1,), dilation=False, exact=False, backward_weights=True,
                        rtol={"float32": rtol32, "float64": rtol32 * 1e-8}, threads="numba")

    class W(_Winograd):
        pass
    W.m, W.r = m, r
    W.name = f"winograd_f{m}x{r}"
    W.description = f"Winograd F({m}x{m},{r}x{r}): {m + r - 1}^2 multiplies per {m}x{m} tile " \
                    f"(direct: {m * m * r * r}); compiled transforms, batched BLAS GEMMs"
    W.capabilities = caps
    W.__name__ = W.__qualname__ = f"Winograd_F{m}x{r}"
    return W


# Tolerances (norm-wise relative error, float32) grow with the tile: the transforms'
# entries grow with n. Measured on the contract problems and ResNet layers, with margin.
WinogradF2x3 = _make(2, 3, 1e-5)
WinogradF4x3 = _make(4, 3, 5e-5)
WinogradF6x3 = _make(6, 3, 2e-4)
WinogradF2x5 = _make(2, 5, 5e-5)
WinogradF4x5 = _make(4, 5, 5e-4)

__all__ = ["POINT_SETS", "WinogradState", "WinogradF2x3", "WinogradF4x3", "WinogradF6x3",
           "WinogradF2x5", "WinogradF4x5"]
