"""``jax_xla``: ``jax.lax.conv_general_dilated`` under ``jax.jit`` on XLA:CPU, as a peer.

Forward is the layer as a JAX user writes it (NCHW input, OIHW weights, explicit low/high
padding, ``rhs_dilation``, ``feature_group_count``); the backward-data and weight-gradient
passes are what ``jax.vjp`` of that forward compiles to (XLA emits the transposed
convolutions; the forward itself is dead code and removed). Weights are an argument of the
compiled function, not a constant folded into it, so one compilation serves every plan of a
shape: compiled functions are cached per problem. Compilation happens in ``prepare``;
``run`` is the call plus ``np.asarray`` of the result (which waits for XLA and hands the
buffer to NumPy), so both directions of the host/device boundary are in the timing, as they
are for a user calling JAX from NumPy.

Threads: XLA:CPU has no thread-count setting that holds (its ``intra_op_parallelism_threads``
flag is not honoured by the Eigen pool it starts; measured here: 1.8 cores busy with it set
to 1). :func:`convbench.threads.set_threads` therefore pins XLA's pool threads
(``tf_XLAEigen``) to the first ``n`` cores this process may use, which bounds the compute
they do; the calling thread, which waits, stays free. The rows' ``cpu_util`` shows what that
gives (1.1-1.2 cores at one thread, the waiting thread's share).

float64 needs ``jax_enable_x64``, set when JAX is first imported here (on first use). Registered only when
``jax`` imports (``pip install 'convbench[peers-extra]'``).
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from ..problem import ConvProblem
from .base import Backend, Capabilities, Plan


def _jax():
    """``jax``, imported on first use (listing the backends must not pay its 1-2 s import),
    with float64 enabled."""
    import jax
    jax.config.update("jax_enable_x64", True)
    return jax

_COMPILED: dict = {}


def _forward(p: ConvProblem) -> Callable:
    from jax import lax
    axes = p.axes  # the arrays' spatial axes (a 1-D problem's NC1W as a 2-D call with h = 1)
    pad = [(ax.p, r) for ax, r in zip(axes, p.pads_r)]
    sp = "".join(a.upper() for a in p.layout_axes)

    def fwd(x, w):
        return lax.conv_general_dilated(x, w, tuple(ax.s for ax in axes), pad,
                                        rhs_dilation=tuple(ax.d + 1 for ax in axes),
                                        dimension_numbers=("NC" + sp, "OI" + sp, "NC" + sp), feature_group_count=p.g)
    return fwd


def compiled(p: ConvProblem) -> Callable:
    """The jitted function of ``p``'s direction (cached per problem): ``fwd(x, w)``,
    ``bwd_d(dy, w)`` or ``bwd_w(x, dy)``."""
    key = (p.descriptor, p.direction, p.dtype)
    fn = _COMPILED.get(key)
    if fn is not None:
        return fn
    jax = _jax()
    fwd = _forward(p)
    dt = p.dtype
    if p.direction == "fwd":
        fn = jax.jit(fwd)
    elif p.direction == "bwd_d":
        def bwd_d(dy, w):
            return jax.vjp(lambda x: fwd(x, w), jax.numpy.zeros(p.input_shape, dt))[1](dy)[0]
        fn = jax.jit(bwd_d)
    else:
        def bwd_w(x, dy):
            return jax.vjp(lambda w: fwd(x, w), jax.numpy.zeros(p.weight_shape, dt))[1](dy)[0]
        fn = jax.jit(bwd_w)
    _COMPILED[key] = fn
    return fn


@dataclass
class JaxState:
    fn: Callable
    w: Any


class JaxXLA(Backend):
    name = "jax_xla"
    baseline_rank = 3
    algorithm = "JAX (XLA:CPU)"
    description = "jax.lax.conv_general_dilated under jax.jit (backward passes through jax.vjp) on XLA:CPU"
    role = "peer"
    capabilities = Capabilities(exact=False, rtol={"float32": 1e-5, "float64": 1e-12}, transposed=True,
                                backward_weights=True, threads="xla", ranks=(1, 2, 3))

    @classmethod
    def unavailable_reason(cls) -> str | None:
        if importlib.util.find_spec("jax") is None or importlib.util.find_spec("jaxlib") is None:
            return "jax is not installed (pip install 'convbench[peers-extra]')"
        return None

    def prepare(self, p: ConvProblem, w: np.ndarray | None) -> Plan:
        from ..threads import get_threads, set_threads
        jax = _jax()
        fn = compiled(p)
        wd = None if p.direction == "bwd_w" else jax.device_put(np.array(w, dtype=p.dtype, copy=True))
        args = [np.zeros(s, dtype=p.dtype) for s in p.operand_shapes]
        np.asarray(fn(*args) if wd is None else fn(args[0], wd))  # compiles; XLA's pool starts here
        set_threads(get_threads())  # pin a pool that the first call started
        return self.make_plan(p, JaxState(fn, wd), note=f"jax {jax.__version__}, XLA:CPU")

    def run(self, plan: Plan[JaxState], *inputs: np.ndarray) -> np.ndarray:
        st = plan.state
        if st.w is None:
            return np.asarray(st.fn(*inputs))
        return np.asarray(st.fn(inputs[0], st.w))
