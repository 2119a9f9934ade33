"""scipy peers: what a scipy user would write, one N-D call per (image, out, in) channel triple
(scipy's calls are N-D already: a 3-D problem is one 3-D call per triple).

``scipy_signal``
    ``scipy.signal.correlate(x, w, mode="valid", method=m)`` with ``m`` from scipy's
    own public chooser ``scipy.signal.choose_conv_method`` (direct or FFT), decided
    in ``prepare`` on the problem's shapes and recorded in the row's note.
``scipy_ndimage``
    ``scipy.ndimage.correlate`` (scipy's compiled direct loop), the reference point for
    direct single-channel filtering.
``scipy_fftconv``
    ``scipy.signal.fftconvolve`` on the flipped kernel (convolution = correlation with
    the kernel reversed), the reference point for FFT filtering.

All three run on the zero-padded input and subsample for stride (scipy has no
strided correlation), so stride > 1 is honest but wasteful, exactly as it would be
for a scipy user. Multi-channel problems cost ``mb * oc * ic/g`` Python-level
calls, so the capability ``max_calls`` refuses large layers (and large batches) up front.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..flops import prod
from ..problem import ConvProblem
from .base import Backend, Capabilities, Estimate, Plan, fill_padded

try:
    import scipy.ndimage as ndi
    import scipy.signal as sps
except ImportError:  # pragma: no cover
    sps = ndi = None

_CAPS = dict(asymmetric_padding=True, threads="single", max_calls=1024, ranks=(1, 2, 3))


def _dilated_kernel(k: np.ndarray, p: ConvProblem) -> np.ndarray:
    """The kernel with the dilation gaps made explicit (zeros), for libraries without dilation."""
    if not any(ax.d for ax in p.axes):
        return k
    nd = len(p.axes)
    out = np.zeros(k.shape[:-nd] + tuple(ax.ext for ax in p.axes), dtype=k.dtype)
    out[(Ellipsis,) + tuple(slice(None, None, ax.d + 1) for ax in p.axes)] = k
    return out


def _every(p) -> tuple:
    """Subsampling at the stride, every layout axis."""
    return tuple(slice(None, None, ax.s) for ax in p.axes)


@dataclass
class ScipyState:
    """The kernels as the library call takes them (dilation gaps made explicit; flipped for
    ``fftconvolve``), the zero-padded input, and ``scipy_signal``'s chosen method."""

    w: np.ndarray
    xp: np.ndarray
    method: str = ""


class _ScipyBase(Backend):
    direction_reasons = {"bwd_d": "scipy has no transposed convolution call; this peer is the forward pass a "
                                  "scipy user writes",
                         "bwd_w": "scipy has no weight-gradient call; this peer is the forward pass a scipy "
                                  "user writes"}
    role = "peer"

    @classmethod
    def unavailable_reason(cls) -> str | None:
        return None if sps is not None else "scipy is not installed"

    def prepare(self, p: ConvProblem, w: np.ndarray) -> Plan[ScipyState]:
        wd = _dilated_kernel(np.array(w, dtype=p.dtype, order="C", copy=True), p)
        st = ScipyState(w=wd, xp=np.zeros((p.mb, p.ic) + p.padded, dtype=p.dtype))
        return self.make_plan(p, st, note=self._adapt(p, st))

    def _adapt(self, p: ConvProblem, st: ScipyState) -> str:
        """Per-library preparation of ``st``; returns the row's note."""
        return ""

    def _correlate_valid(self, st: ScipyState, a: np.ndarray, k: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def run(self, plan: Plan[ScipyState], x: np.ndarray) -> np.ndarray:
        p, st = plan.problem, plan.state
        xp = fill_padded(st.xp, x, p)
        y = np.empty(p.output_shape, dtype=x.dtype)
        w = st.w
        for n in range(p.mb):
            for o in range(p.oc):
                cb = (o // p.ocg) * p.icg
                acc = self._correlate_valid(st, xp[n, cb], w[o, 0])
                for c in range(1, p.icg):
                    acc += self._correlate_valid(st, xp[n, cb + c], w[o, c])
                y[n, o] = acc[_every(p)]
        return y

    def _estimate(self, p: ConvProblem) -> Estimate:
        # the zero-padded input; scipy's own temporaries and flops are not visible from here
        return Estimate(workspace_bytes=p.mb * p.ic * prod(p.padded) * p.itemsize)


class ScipySignal(_ScipyBase):
    name = "scipy_signal"
    algorithm = "scipy.signal (auto)"
    description = "scipy.signal.correlate per channel pair, method from choose_conv_method"
    capabilities = Capabilities(exact=False, rtol={"float32": 1e-5, "float64": 1e-12}, **_CAPS)

    def _adapt(self, p: ConvProblem, st: ScipyState) -> str:
        sample = np.zeros(p.padded, dtype=p.dtype)
        st.method = sps.choose_conv_method(sample, st.w[0, 0], mode="valid")
        return f"scipy chose method={st.method}"

    def _correlate_valid(self, st, a, k):
        return sps.correlate(a, k, mode="valid", method=st.method)


class ScipyNdimage(_ScipyBase):
    name = "scipy_ndimage"
    algorithm = "scipy.ndimage (direct)"
    description = "scipy.ndimage.correlate per channel pair (compiled direct loop)"
    capabilities = Capabilities(exact=True, **_CAPS)

    def _correlate_valid(self, st, a, k):
        # ndimage centres the kernel (origin 0 at k//2) and keeps the input size;
        # the 'valid' region starts at the kernel centre
        full = ndi.correlate(a, k, mode="constant", cval=0.0)
        return full[tuple(slice(n // 2, n // 2 + m - n + 1) for n, m in zip(k.shape, a.shape))]


class ScipyFFTConv(_ScipyBase):
    name = "scipy_fftconv"
    algorithm = "scipy.signal.fftconvolve"
    description = "scipy.signal.fftconvolve per channel pair (kernel flipped: correlation)"
    capabilities = Capabilities(exact=False, rtol={"float32": 1e-5, "float64": 1e-12}, **_CAPS)

    def _adapt(self, p: ConvProblem, st: ScipyState) -> str:
        # convolution = correlation, kernel reversed on every axis
        st.w = np.ascontiguousarray(st.w[(slice(None), slice(None)) + (slice(None, None, -1),) * len(p.axes)])
        return ""

    def _correlate_valid(self, st, a, k):
        return sps.fftconvolve(a, k, mode="valid")


class ScipyPool(Backend):
    """``pool_scipy``: what a scipy user writes for pooling: ``scipy.ndimage.maximum_filter`` (or
    ``uniform_filter`` for averages) over each image-channel, then subsampling at the stride.

    The filter is centred, so the window anchored at an output position is read at the offset
    of its centre. ``uniform_filter`` divides by the whole window; ``avg_np`` divides the sum of
    the input by the same filter of a mask of ones instead. Forward only."""

    name = "pool_scipy"
    kind = "pool"
    algorithm = "scipy.ndimage filters"
    description = "scipy.ndimage maximum_filter / uniform_filter per image, then subsampled"
    role = "peer"
    # maximum_filter lets a NaN win or lose by position and uniform_filter spreads it past the
    # window: on NaN or inf inputs this peer does not give PyTorch's result (tests/test_pooling.py)
    capabilities = Capabilities(exact=False, rtol={"float32": 1e-5, "float64": 1e-12}, transposed=False,
                                threads="single", max_calls=4096, nonfinite=False, ranks=(1, 2, 3))

    @classmethod
    def unavailable_reason(cls) -> str | None:
        return None if ndi is not None else "scipy is not installed"

    def _supports(self, p) -> str | None:
        if p.ceil_mode and p.alg != "max":
            return "ceil_mode averages clip the last windows, which uniform_filter cannot express"
        return None

    def prepare(self, p, x, indices=None) -> Plan:
        shape = tuple(max(w, ax.p + ax.i) for w, ax in zip(p.padded, p.axes))
        fill = -np.inf if p.alg == "max" else 0.0
        xp = np.full((p.mb, p.ic) + shape, fill, dtype=p.dtype)
        foot = np.zeros(tuple(ax.ext for ax in p.axes), dtype=bool)
        foot[tuple(slice(None, None, ax.d + 1) for ax in p.axes)] = True
        st = {"xp": xp, "foot": foot, "fill": fill, "inside": tuple(slice(ax.p, ax.p + ax.i) for ax in p.axes)}
        if p.alg == "avg_np":
            mask = np.zeros(shape, dtype=np.float64)
            mask[st["inside"]] = 1
            st["count"] = self._window(p, ndi.uniform_filter(mask, size=p.kernel, mode="constant"))
        return self.make_plan(p, st, workspace_bytes=xp.nbytes)

    @staticmethod
    def _window(p, full: np.ndarray) -> np.ndarray:
        """The filtered values at the windows' anchors (the filter's centre, ext//2 from the start)."""
        return full[(Ellipsis,) + tuple(slice(ax.ext // 2, ax.ext // 2 + (ax.o - 1) * ax.s + 1, ax.s)
                                        for ax in p.axes)]

    def run(self, plan: Plan, *inputs: np.ndarray) -> np.ndarray:
        p, st = plan.problem, plan.state
        xp = st["xp"]
        xp[(slice(None), slice(None)) + st["inside"]] = inputs[0]
        y = np.empty(p.output_shape, dtype=xp.dtype)
        for n in range(p.mb):
            for c in range(p.ic):
                if p.alg == "max":
                    f = ndi.maximum_filter(xp[n, c], footprint=st["foot"], mode="constant", cval=st["fill"])
                    y[n, c] = self._window(p, f)
                else:
                    f = self._window(p, ndi.uniform_filter(xp[n, c], size=p.kernel, mode="constant"))
                    y[n, c] = f / st["count"] if p.alg == "avg_np" else f
        return y
