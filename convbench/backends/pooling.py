"""Pooling backends: ``pool_reference`` (the float64 oracle), ``pool_numpy`` (``sliding_window_view``
reductions) and ``pool_numba`` (compiled, vectorised along an output row).

A pooling problem (:class:`~convbench.problem.PoolProblem`) is max, average with the padding
counted (``avg_p``) or average without it (``avg_np``), forward or backward (``bwd_d``: the
input gradient). The backward pass of max needs the argmax of the forward pass: ``prepare``
takes the forward input (the cell's constant), runs the forward pass once and keeps the
int32 argmax of every output as the plan's state; its bytes are the plan's workspace.
Ties go to the first maximum in row-major window order (PyTorch's rule); the benchmark's
data for max pooling are distinct, so every backend routes a gradient to the same element.

Averages divide by the window clipped to the padded input (``avg_p``, PyTorch's
``count_include_pad=True``) or to the input (``avg_np``), as :func:`~convbench.reference.pool_divisors`.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from ..flops import prod
from ..problem import PoolProblem
from ..reference import pool_backward_reference, pool_divisors, pool_reference
from .base import Backend, Capabilities, Estimate, Plan, volume
from .codegen import load_generated

try:
    import numba
    from numba import njit, prange
except ImportError:  # pragma: no cover
    numba = None

__all__ = ["PoolReference", "PoolNumpy", "PoolNumba", "PoolBackend", "PoolState"]


@dataclass
class PoolState:
    """Buffers of one pooling plan: the padded input (border ``-inf`` for max, 0 for averages),
    the divisors of an average, and (max backward) the argmax of every output as flat int32
    offsets into ``ih*iw``."""

    xp: np.ndarray | None = None
    div: np.ndarray | None = None
    argmax: np.ndarray | None = None
    extra: Any = None


class PoolBackend(Backend):
    """Shared parts of the pooling backends: capabilities, the argmax a max backward keeps,
    and accounting (bytes, no flops)."""

    kind = "pool"
    algorithm = "pooling"
    capabilities = Capabilities(exact=True, transposed=True, threads="single", ranks=(1, 2, 3))

    def _padded_shape(self, p: PoolProblem) -> tuple:
        return (p.mb, p.ic) + tuple(max(w, ax.p + ax.i) for w, ax in zip(p.padded, p.axes))

    def _needs_padded(self, p: PoolProblem) -> bool:
        """Whether the plan keeps a padded copy of the input (or of the input gradient)."""
        return p.direction == "fwd" or p.alg != "max"

    def _estimate(self, p: PoolProblem) -> Estimate:
        pad = int(np.prod(self._padded_shape(p))) * p.itemsize if self._needs_padded(p) else 0
        idx = 4 * p.mb * p.ic * prod(p.out_spatial) if p.alg == "max" and p.direction == "bwd_d" else 0
        return Estimate(workspace_bytes=pad + idx)

    def _argmax(self, p: PoolProblem, x: np.ndarray) -> np.ndarray:
        """The argmax the backward pass routes through (subclasses compute it their way)."""
        return pool_reference(x, p)[1].astype(np.int32)

    def argmax(self, p: PoolProblem, x: np.ndarray) -> np.ndarray:
        """The first maximum of every window of max pooling ``p`` over ``x``, as flat int32
        offsets into ``ih*iw`` (``id*ih*iw`` in 3-D: PyTorch's ``return_indices`` convention),
        computed this backend's way."""
        return self._argmax(p, x)

    def prepare(self, p: PoolProblem, x: np.ndarray | None, indices: np.ndarray | None = None) -> Plan[PoolState]:
        """One pooling plan. For max's backward, ``x`` is the forward input whose argmax the
        gradient is routed through, or ``indices`` gives that argmax (flat offsets into
        ``ih*iw``, as :meth:`argmax` or PyTorch's ``return_indices`` return them)."""
        st = PoolState()
        fill = -np.inf if p.alg == "max" else 0.0
        if self._needs_padded(p):
            st.xp = np.full(self._padded_shape(p), fill, dtype=p.dtype)
        if p.alg != "max":
            st.div = pool_divisors(p).astype(p.dtype)
        if p.direction == "bwd_d" and p.alg == "max":
            st.argmax = self._argmax(p, x) if indices is None else np.ascontiguousarray(indices, dtype=np.int32)
        self._setup(p, st)
        return self.make_plan(p, st, note=self._note(p))

    def _setup(self, p: PoolProblem, st: PoolState) -> None:
        """Backend-specific one-off work (compilation)."""

    def _note(self, p: PoolProblem) -> str:
        return ""


def _inside(p: PoolProblem) -> tuple:
    """Index of the input inside a padded buffer (every layout axis)."""
    return (slice(None), slice(None)) + tuple(slice(ax.p, ax.p + ax.i) for ax in p.axes)


class PoolReference(PoolBackend):
    name = "pool_reference"
    role = "oracle"
    algorithm = "reference"
    description = "float64 tap-by-tap pooling and its gradient: the oracle"

    def run(self, plan: Plan[PoolState], *inputs: np.ndarray) -> np.ndarray:
        p = plan.problem
        (a,) = inputs
        if p.direction == "fwd":
            return pool_reference(a, p)[0].astype(p.dtype)
        if p.alg == "max":  # route through the kept argmax (what prepare computed)
            dx = np.zeros((p.mb * p.ic, prod(p.spatial)))
            np.add.at(dx, (np.arange(p.mb * p.ic)[:, None], plan.state.argmax.reshape(p.mb * p.ic, -1)),
                      a.astype(np.float64).reshape(p.mb * p.ic, -1))
            return dx.reshape(p.input_shape).astype(p.dtype)
        return pool_backward_reference(a, np.zeros(p.input_shape), p).astype(p.dtype)


class PoolNumpy(PoolBackend):
    name = "pool_numpy"
    algorithm = "pooling (numpy)"
    description = "numpy sliding_window_view: one reduction over every window (max or sum)"

    def _windows(self, p: PoolProblem, xp: np.ndarray) -> np.ndarray:
        """``(mb, ic, *out, *kernel)`` view of every window of the padded input."""
        nd = len(p.axes)
        v = sliding_window_view(xp, tuple(ax.ext for ax in p.axes), axis=tuple(range(2, 2 + nd)))
        return v[(slice(None), slice(None)) + tuple(slice(0, (ax.o - 1) * ax.s + 1, ax.s) for ax in p.axes)
                 + tuple(slice(None, None, ax.d + 1) for ax in p.axes)]

    def _argmax(self, p: PoolProblem, x: np.ndarray) -> np.ndarray:
        """PyTorch's argmax (see :func:`convbench.reference.pool_reference`): the first maximum
        in row-major window order, the last NaN of a window, the first tap inside the input of
        a window that holds nothing above ``-inf``."""
        nd = len(p.axes)
        xp = np.full(self._padded_shape(p), -np.inf, dtype=p.dtype)
        xp[_inside(p)] = x
        flat = self._windows(p, xp).reshape(p.output_shape + (-1,))
        k = flat.argmax(axis=-1)  # the first maximum (numpy: the first NaN)
        nan = np.isnan(flat)
        if nan.any():
            k = np.where(nan.any(axis=-1), flat.shape[-1] - 1 - nan[..., ::-1].argmax(axis=-1), k)
        low = np.take_along_axis(flat, k[..., None], axis=-1)[..., 0] == -np.inf
        if low.any():  # padding is -inf too: the first tap inside the input, per output position
            first = np.zeros(p.out_spatial, dtype=np.int64)
            for i, ax in enumerate(p.axes):
                t0 = -(-np.maximum(ax.p - np.arange(ax.o) * ax.s, 0) // (ax.d + 1))
                first = first * ax.k + t0.reshape((-1,) + (1,) * (nd - 1 - i))
            k = np.where(low, first, k)
        taps = np.unravel_index(k, p.kernel)
        flat_in = np.zeros(k.shape, dtype=np.int64)
        for i, (t, ax) in enumerate(zip(taps, p.axes)):
            pos = np.arange(ax.o).reshape((-1,) + (1,) * (nd - 1 - i)) * ax.s - ax.p + t * (ax.d + 1)
            flat_in = flat_in * ax.i + pos
        return flat_in.astype(np.int32)

    def run(self, plan: Plan[PoolState], *inputs: np.ndarray) -> np.ndarray:
        p, st = plan.problem, plan.state
        (a,) = inputs
        nd = len(p.axes)
        if p.direction == "fwd":
            st.xp[_inside(p)] = a
            win = self._windows(p, st.xp)
            taps = tuple(range(-nd, 0))
            if p.alg == "max":
                return win.max(axis=taps)
            y = win.sum(axis=taps)
            y /= st.div
            return y
        plane = prod(p.spatial)
        if p.alg == "max":
            dx = np.zeros(p.mb * p.ic * plane, dtype=p.dtype)
            base = (np.arange(p.mb * p.ic, dtype=np.int64) * plane)[:, None]
            np.add.at(dx, (base + st.argmax.reshape(p.mb * p.ic, -1)).reshape(-1), a.reshape(-1))
            return dx.reshape(p.input_shape)
        share = a / st.div
        st.xp[...] = 0
        for tap in np.ndindex(*p.kernel):
            st.xp[(slice(None), slice(None)) + tuple(slice(t, t + (ax.o - 1) * ax.s + 1, ax.s)
                                                     for t, ax in zip(tap, p.axes))] += share
        return np.ascontiguousarray(st.xp[_inside(p)])


_FWD_SOURCE = """# generated by convbench.backends.pooling: forward pooling, mode={mode}, window {KD}x{KH}x{KW}
import numpy as np
from numba import njit, prange

{consts}
IS_MAX = {is_max}
KEEP = {keep}


@njit(parallel={parallel}, nogil=True, boundscheck=False, error_model="numpy", cache=True, fastmath={fastmath})
def kern(x, out, arg, div, init, SD, SH, SW, DD, DH, DW, PD, PH, PW, kd, kh, kw):
    # x: (mb, ic, id, ih, iw) (id = 1 in 2-D); out, arg: (mb, ic, od, oh, ow); div: (od, oh, ow)
{local}    mb, ic, id_, ih, iw = x.shape
    od, oh, ow = out.shape[2], out.shape[3], out.shape[4]
    j0 = min(ow, (PW + SW - 1) // SW)
    j1 = max(j0, min(ow, (iw - 1 - (KW - 1) * DW + PW) // SW + 1))
    y0 = min(oh, (PH + SH - 1) // SH)
    y1 = max(y0, min(oh, (ih - 1 - (KH - 1) * DH + PH) // SH + 1))
    z0 = min(od, (PD + SD - 1) // SD)
    z1 = max(z0, min(od, (id_ - 1 - (KD - 1) * DD + PD) // SD + 1))
    for nc in prange(mb * ic):
        n = nc // ic
        c = nc - n * ic
        vol = x[n, c]
        for z in range(od):
          q0 = z * SD - PD
          zin = z >= z0 and z < z1
          for y in range(oh):
            r0 = y * SH - PH
            orow = out[n, c, z, y]
            inside = zin and y >= y0 and y < y1
            for j in range(ow):
                b = j * SW - PW
                m = init
                k = -1
                if inside and j >= j0 and j < j1:
                    if KEEP:
                        k = (q0 * ih + r0) * iw + b  # the first tap: a window of -inf keeps it
                    # the plain comparison, and a flag for NaN (PyTorch makes the window's maximum
                    # NaN): tested per tap, the NaN rule cost 1.17-1.37x on max pools, the flag
                    # and a rescan of the (rare) windows holding one 1.17-1.26x
                    nan = False
                    for a in range(KD):
                        for r in range(KH):
                            for s in range(KW):
                                v = vol[q0 + a * DD, r0 + r * DH, b + s * DW]
                                if IS_MAX:
                                    if KEEP:
                                        if v > m:
                                            m = v
                                            k = ((q0 + a * DD) * ih + r0 + r * DH) * iw + b + s * DW
                                    else:
                                        m = v if v > m else m
                                    nan |= v != v
                                else:
                                    m += v
                    if IS_MAX and nan:  # the window's last NaN, as PyTorch keeps it
                        for a in range(KD):
                            for r in range(KH):
                                for s in range(KW):
                                    v = vol[q0 + a * DD, r0 + r * DH, b + s * DW]
                                    if v != v:
                                        m = v
                                        k = ((q0 + a * DD) * ih + r0 + r * DH) * iw + b + s * DW
                else:
                    for a in range(KD):
                        qq = q0 + a * DD
                        if qq < 0 or qq >= id_:
                            continue
                        for r in range(KH):
                            rr = r0 + r * DH
                            if rr < 0 or rr >= ih:
                                continue
                            for s in range(KW):
                                cc = b + s * DW
                                if cc < 0 or cc >= iw:
                                    continue
                                v = vol[qq, rr, cc]
                                if IS_MAX:
                                    if k < 0 or v > m or v != v:
                                        m = v
                                        k = (qq * ih + rr) * iw + cc
                                else:
                                    m += v
                if IS_MAX:
                    orow[j] = m
                    if KEEP:
                        arg[n, c, z, y, j] = k
                else:
                    orow[j] = m / div[z, y, j]
"""


# the windows networks use, compiled with the window as a constant (the taps unroll); any
# other window runs one generic kernel with the window as an argument (one compile per mode)
_UNROLLED = frozenset({(1, 2, 2), (1, 3, 3), (2, 2, 2), (3, 3, 3), (1, 1, 2), (1, 1, 3)})


def _fwd_kernel(mode: str, window: tuple, parallel: bool):
    """The forward kernel for a ``(kd, kh, kw)`` window (``kd = 1`` in 2-D)."""
    if window not in _UNROLLED:
        window = (0, 0, 0)
    return _fwd_kernel_for(mode, window, parallel)


@lru_cache(maxsize=None)
def _fwd_kernel_for(mode: str, window: tuple, parallel: bool):
    """A forward pooling kernel compiled for one window size (a compile-time constant, so
    the taps unroll; stride, dilation and padding are arguments) or, with ``KH = KW = 0``,
    for any window (passed as arguments), generated as source so
    numba's disk cache keeps it (:func:`~convbench.backends.codegen.load_generated`).

    ``mode``: ``max``, ``argmax`` (max that also keeps its flat offset) or ``sum`` (divided
    by ``div``). Max is PyTorch's rule, non-finite inputs included: taps inside the input in
    row-major order, a tap replaces the running maximum when it is greater or NaN (so the
    first of equal maxima, and the last NaN, is kept; a window of ``-inf`` keeps its first).
    It reads the unpadded input: outputs whose window lies inside it (the interior) run
    without bounds tests, the border outputs test each tap. Measured on the ResNet-50 stem
    pool (mb1ic64ih112kh3sh2ph1, one thread): 7.25 ms for the row-vectorised loop on a padded
    copy it replaced (a data-dependent store per tap), 0.5-0.8 ms for this one.
    """
    KD, KH, KW = window
    if window in _UNROLLED:
        consts, local = f"KD = {KD}\nKH = {KH}\nKW = {KW}", ""
    else:
        consts, local = "", "    KD, KH, KW = kd, kh, kw\n"
        KD = KH = KW = "any"
    src = _FWD_SOURCE.format(mode=mode, KD=KD, KH=KH, KW=KW,
                             consts=consts, local=local, is_max=mode != "sum", keep=mode == "argmax",
                             parallel=parallel, fastmath='{"reassoc"}' if mode == "sum" else "False")
    return load_generated("pool", src)["kern"]


if numba is not None:
    def _max_bwd(dy, arg, dx):
        # dx: (mb*ic, ih*iw) zeroed; arg: (mb*ic, oh*ow) flat offsets; one image-channel at a time
        nc, npix = arg.shape
        for k in prange(nc):
            a = arg[k]
            d = dy[k]
            out = dx[k]
            for j in range(npix):
                out[a[j]] += d[j]

    def _avg_bwd(dy, div, dxp, kd, kh, kw, sd, sh, sw):
        # dxp: padded (mb, ic, D, H, W) zeroed; every window's real and padded elements get dy/div
        mb, ic, od, oh, ow = dy.shape
        for nc in prange(mb * ic):
            n = nc // ic
            c = nc - n * ic
            for z in range(od):
                for y in range(oh):
                    d = dy[n, c, z, y]
                    dv = div[z, y]
                    for a in range(kd):
                        for r in range(kh):
                            row = dxp[n, c, z * sd + a, y * sh + r]
                            for s in range(kw):
                                for j in range(ow):
                                    row[s + j * sw] += d[j] / dv[j]

    def _global(x2, out, is_max):
        # global pooling (the window is the whole unpadded plane): one plane per row of x2,
        # reduced with 8 independent accumulators so the adds (or maxes) do not wait on
        # each other; a single running sum is bound by the add latency (measured on
        # mb1ic2048ih7kh7: 164 us with the windowed kernel, numpy's pairwise sum 132 us)
        nc, n = x2.shape
        for k in prange(nc):
            v = x2[k]
            acc = np.empty(8, dtype=x2.dtype)
            for t in range(8):
                acc[t] = v[0] if is_max else 0
            m = n - n % 8
            for i in range(0, m, 8):
                for t in range(8):
                    if is_max:  # a NaN propagates (PyTorch's max), whatever lane it lands in
                        w = v[i + t]
                        acc[t] = w if w > acc[t] or w != w else acc[t]
                    else:
                        acc[t] += v[i + t]
            r = acc[0]
            for t in range(1, 8):
                r = (acc[t] if acc[t] > r or acc[t] != acc[t] else r) if is_max else r + acc[t]
            for i in range(m, n):
                r = (v[i] if v[i] > r or v[i] != v[i] else r) if is_max else r + v[i]
            out[k] = r

    _KERNELS = {name: {par: njit(parallel=par, fastmath=False, cache=not par, nogil=True)(fn)
                       for par in (False, True)}
                for name, fn in (("max_bwd", _max_bwd), ("avg_bwd", _avg_bwd), ("global", _global))}


def _is_global(p: PoolProblem) -> bool:
    """The window is the whole unpadded plane or volume (global pooling, one output per channel)."""
    return all(ax.k == ax.i and ax.o == 1 and not (ax.p or ax.d) for ax in p.axes)


def _window(p: PoolProblem) -> tuple:
    """``(kd, kh, kw)`` of the kernels (``kd = 1`` in 2-D, ``kh = 1`` in 1-D)."""
    return (p.kd, p.kh, p.kw)


class PoolNumba(PoolBackend):
    name = "pool_numba"
    algorithm = "pooling (compiled)"
    description = "compiled (numba) loop per window geometry, unpadded input; argmax kept for max's backward"
    capabilities = Capabilities(exact=True, transposed=True, threads="numba", ranks=(1, 2, 3))

    @classmethod
    def unavailable_reason(cls) -> str | None:
        return None if numba is not None else "numba is not installed"

    def _needs_padded(self, p: PoolProblem) -> bool:
        return p.direction == "bwd_d" and p.alg != "max"  # the forward kernels read x itself

    @staticmethod
    def _parallel() -> bool:
        return numba.get_num_threads() > 1

    def _kernel(self, name: str):
        return _KERNELS[name][self._parallel()]

    def _fwd(self, p: PoolProblem, mode: str):
        return _fwd_kernel(mode, _window(p), self._parallel())

    def _forward(self, p: PoolProblem, x: np.ndarray, mode: str, div=None) -> tuple[np.ndarray, np.ndarray]:
        dt = np.dtype(p.dtype)
        out = np.empty(p.output_shape, dtype=dt)
        arg = np.empty(p.output_shape if mode == "argmax" else (1,) * len(p.output_shape), dtype=np.int32)
        if mode != "argmax" and _is_global(p):
            flat = out.reshape(-1)  # global pooling: the window is the whole plane
            self._kernel("global")(np.ascontiguousarray(x).reshape(p.mb * p.ic, -1), flat, mode == "max")
            if mode == "sum":
                flat /= dt.type(prod(p.kernel))  # no padding: both averages divide by the window
            return out, arg
        init = dt.type(0 if mode == "sum" else -np.inf)
        d = div.reshape((1,) * (3 - div.ndim) + div.shape) if div is not None else np.ones((1, 1, 1), dt)
        self._fwd(p, mode)(volume(x), volume(out), volume(arg), d, init, p.sd, p.sh, p.sw, p.dd + 1, p.dh + 1,
                           p.dw + 1, p.pd, p.ph, p.pw, p.kd, p.kh, p.kw)
        return out, arg

    def _argmax(self, p: PoolProblem, x: np.ndarray) -> np.ndarray:
        return self._forward(p, np.ascontiguousarray(x, dtype=p.dtype), "argmax")[1]

    def _setup(self, p: PoolProblem, st: PoolState) -> None:
        # compile now (numba's JIT, timed as setup) on arrays of the plan's exact types, never in a run
        dt = np.dtype(p.dtype)
        one = np.zeros((1, 1, 1, 1, 1), dt)
        if p.direction == "fwd":
            mode = "max" if p.alg == "max" else "sum"
            tiny = p.replace(mb=1, ic=1, oh=p.oh, ow=p.ow)
            self._forward(tiny, np.zeros(tiny.input_shape, dt), mode, st.div)
        elif p.alg == "max":
            self._kernel("max_bwd")(np.zeros((1, 1), dt), np.zeros((1, 1), np.int32), np.zeros((1, 1), dt))
        else:
            self._kernel("avg_bwd")(one.copy(), np.ones((1, 1, 1), dt), one.copy(), 1, 1, 1, 1, 1, 1)

    def run(self, plan: Plan[PoolState], *inputs: np.ndarray) -> np.ndarray:
        p, st = plan.problem, plan.state
        (a,) = inputs
        if p.direction == "fwd":
            return self._forward(p, a, "max" if p.alg == "max" else "sum", st.div)[0]
        if p.alg == "max":
            dx = np.zeros((p.mb * p.ic, prod(p.spatial)), dtype=a.dtype)
            self._kernel("max_bwd")(a.reshape(p.mb * p.ic, -1), st.argmax.reshape(p.mb * p.ic, -1), dx)
            return dx.reshape(p.input_shape)
        if _is_global(p):  # every input element gets its plane's gradient over the window
            dx = np.empty(p.input_shape, dtype=a.dtype)
            np.divide(a.reshape((p.mb, p.ic) + (1,) * len(p.axes)), a.dtype.type(prod(p.kernel)), out=dx)
            return dx
        st.xp[...] = 0
        div = st.div.reshape((1,) * (3 - st.div.ndim) + st.div.shape)
        self._kernel("avg_bwd")(volume(a), div, volume(st.xp), p.kd, p.kh, p.kw, p.sd, p.sh, p.sw)
        return np.ascontiguousarray(st.xp[_inside(p)])
