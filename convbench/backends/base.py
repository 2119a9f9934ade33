"""The backend contract: capabilities as data, one-off ``prepare``, hot ``run``.

A backend is one class in one module plus one line in ``backends/__init__.py``.
What it can do is declared in :class:`Capabilities` (a frozen dataclass the
generic :meth:`Backend.supports` reads, and that ``convbench list`` and the test
suite's skips are driven by); a backend adds only the checks data cannot express
by overriding :meth:`Backend._supports`.

Lifecycle, as the runner times it::

    b = get_backend(name, memory_limit=..., **options)   # options: the class's ``options``
    est = b.estimate(problem)           # Estimate: executed/multiply flops, workspace bytes,
                                        # from the shape alone, cached per problem
    reason = b.supports(problem)        # None, or why not (no work done)
    plan = b.prepare(problem, weights)  # timed as prepare_s: JIT, planning, weight
                                        # transforms, matrix assembly
    y = b.run(plan, x)                  # timed: the hot path, validates nothing

The estimate lets the runner refuse a problem before touching memory; the plan carries
its own accounting (``plan.flops_executed``, ``plan.flops_multiply``,
``plan.workspace_bytes``, ``plan.note``), since ``prepare`` may pick among candidates by
timing and a sparse operator's nonzeros depend on the weights, not only the shape. The
plan's ``state`` is a backend's own dataclass: everything ``run`` needs, nothing else.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, ClassVar, Generic, TypeVar

import numpy as np

from ..flops import prod
from ..format import fmt_bytes
from ..problem import ConvProblem

__all__ = ["Unsupported", "Capabilities", "Backend", "Plan", "Estimate", "ROLES"]

#: what a backend can be to a sweep (see :attr:`Backend.role`)
ROLES = ("own", "peer", "oracle", "meta")


class Unsupported(NotImplementedError):
    """Raised when a backend's declared capabilities exclude a problem; ``str(e)`` is the reason."""


#: Relative error tolerance of algorithms that are exact in exact arithmetic (direct
#: loops, im2col + GEMM): on benchdnn-style integer data they reproduce the float64
#: result bit for bit, so this only leaves room for reassociation on large sums.
EXACT_RTOL = {"float32": 1e-6, "float64": 1e-13}


@dataclass(frozen=True)
class Capabilities:
    """What a backend supports, as data.

    Attributes
    ----------
    dtypes : tuple of str
        Data types it runs in (``"float32"``, ``"float64"``).
    kernel_sizes : tuple of int, optional
        The only kernel sizes it accepts, the same on every spatial axis of the problem (``3``:
        a 3-tap, 3x3 or 3x3x3 kernel); ``None`` means any.
    max_kernel : int, optional
        Largest kernel size on any axis; ``None`` means no limit.
    strides : tuple of int, optional
        Accepted stride values (every axis); ``None`` means any.
    dilation : bool
        Whether dilated kernels are supported.
    groups : bool
        Whether ``g > 1`` is supported.
    asymmetric_padding : bool
        Whether problems whose output size implies bottom/right padding different
        from PyTorch's symmetric rule are supported.
    forward, transposed, backward_weights : bool
        Which directions it runs: forward (``fwd``), backward data (``bwd_d``: the transposed
        convolution, or a pooling layer's input gradient), backward weights (``bwd_w``).
    exact : bool
        True for algorithms that are exact in exact arithmetic; they are held to
        :data:`EXACT_RTOL`. Transform algorithms set False and give ``rtol``.
    rtol : dict, optional
        Norm-wise relative error tolerance per dtype for inexact algorithms.
    rank_rtol : dict, optional
        Factor on ``rtol`` per spatial rank (nested N-D transforms grow the error per axis).
    memory_fraction : float, optional
        Largest workspace it may use, as a fraction of the memory available when the
        backend is made (``--memory-limit`` or the constructor's ``memory_limit`` override
        it); larger problems are refused from the shape alone, before anything is allocated.
    max_calls : int, optional
        For libraries called once per (image, output channel, input channel) from Python
        (the scipy peers): refuse ``mb * oc * ic/g`` calls above this.
    threads : str
        Which thread control applies (``"numba"``, ``"blas"``, ``"fftw"``,
        ``"scipy.fft"``, ``"torch"`` or ``"single"`` for code that never runs threads).
    ranks : tuple of int
        Spatial ranks it runs: 1 (laid out NC1W, so every 2-D code path runs it), 2, 3.
    nonfinite : bool
        Whether NaN and ±inf inputs give PyTorch's outputs (a NaN propagates; a max pool's
        argmax points at the last NaN of its window). False documents a backend that does not
        (tested against PyTorch either way: ``tests/test_pooling.py``).
    """

    dtypes: tuple[str, ...] = ("float32", "float64")
    kernel_sizes: tuple[int, ...] | None = None
    max_kernel: int | None = None
    strides: tuple[int, ...] | None = None
    dilation: bool = True
    groups: bool = True
    asymmetric_padding: bool = True
    forward: bool = True
    transposed: bool = False
    backward_weights: bool = False
    exact: bool = True
    rtol: dict | None = None
    rank_rtol: dict | None = None
    memory_fraction: float | None = None
    max_calls: int | None = None
    threads: str = "single"
    ranks: tuple[int, ...] = (1, 2)
    nonfinite: bool = True

    def tolerance(self, dtype: str, problem=None) -> float:
        """Norm-wise relative error allowed for ``dtype`` (and for ``problem``'s direction).

        The weight gradient sums ``mb * oh * ow`` products per weight where the forward pass
        sums ``ic/g * kh * kw``; rounding error grows with the square root of a sum's length,
        so for ``bwd_w`` the tolerance is scaled by ``sqrt(mb*oh*ow / (ic/g*kh*kw))`` when that
        is above 1 (benchdnn scales its bwd_w threshold with ``mb*oh*ow`` too). On integer
        data below float32's exact range the exact algorithms still match bit for bit.
        """
        base = EXACT_RTOL[dtype] if self.exact or not self.rtol else float(self.rtol[dtype])
        if problem is not None and self.rank_rtol:
            base *= self.rank_rtol.get(problem.rank, 1.0)
        if problem is not None and problem.direction == "bwd_w":
            n = problem.mb * prod(problem.out_spatial)
            k = problem.icg * prod(problem.kernel)
            base *= max(1.0, (n / k) ** 0.5)
        return base

    def as_dict(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass(frozen=True)
class Estimate:
    """What a backend will do on a problem, from the shape alone (nothing allocated).

    ``flops_executed``: operations ``run`` performs (padding taps and transforms included;
    NaN when unknown, e.g. inside a peer library). ``flops_multiply``: those of the
    multiplication stage alone (the element-wise/GEMM stage of a transform algorithm; all
    of them for direct and GEMM algorithms). ``workspace_bytes``: memory held besides
    input, weights and output while ``run`` executes (None when unknown). ``prepare_bytes``:
    what ``prepare`` holds at its peak when that is more (the runner admits a cell on the
    larger of the two).
    """

    flops_executed: float = float("nan")
    flops_multiply: float = float("nan")
    workspace_bytes: int | None = None
    #: the most ``prepare`` holds at once, when more than ``workspace_bytes`` (candidates
    #: built side by side to be timed); None: no more than the workspace
    prepare_bytes: int | None = None


S = TypeVar("S")


@dataclass
class Plan(Generic[S]):
    """What ``prepare`` returns: the problem, the backend's own typed state for ``run``, and
    the accounting of *this* plan (prepare may have chosen among candidates by timing, so it
    can differ from the shape-only :class:`Estimate`)."""

    problem: ConvProblem
    state: S
    flops_executed: float = float("nan")
    flops_multiply: float = float("nan")
    workspace_bytes: int | None = None
    note: str = ""
    #: the backend that runs this plan, when the backend is a choice among others (``auto``)
    chosen: str = ""


def _x(sizes) -> str:
    return "x".join(map(str, sizes))


def inner(p: ConvProblem) -> tuple[tuple, tuple]:
    """Index tuples (after the batch and channel axes) of the part of the input the windows
    read: inside the padded buffer, and in the input itself (every layout axis)."""
    read = p.read
    return (tuple(slice(ax.p, ax.p + r) for ax, r in zip(p.axes, read)),
            tuple(slice(0, r) for r in read))


def fill_padded(buf: np.ndarray, x: np.ndarray, p: ConvProblem) -> np.ndarray:
    """Copy the part of ``x`` (NCHW, or NCDHW in 3-D) the convolution reads into zero-bordered
    ``buf`` (``(mb, ic) + >= padded``, allocated once by ``prepare``; its border stays zero)."""
    dst, src = inner(p)
    buf[(slice(None), slice(None)) + dst] = x[(slice(None), slice(None)) + src]
    return buf


def crop_padded(yp: np.ndarray, p: ConvProblem) -> np.ndarray:
    """The input-shaped image inside a padded result (transposed convolutions); input
    elements the forward problem never reads are 0."""
    y = np.zeros(p.input_shape, dtype=yp.dtype)
    dst, src = inner(p)
    y[(slice(None), slice(None)) + src] = yp[(slice(None), slice(None)) + dst]
    return y


def volume(a: np.ndarray) -> np.ndarray:
    """A view of an NC[D]HW array with a depth axis: ``(n, c, d, h, w)`` (``d = 1`` in 2-D)."""
    return a if a.ndim == 5 else a.reshape(a.shape[:2] + (1,) + a.shape[2:])


def available_memory_bytes() -> int:
    """Memory available to this process now (``MemAvailable``), or 8 GiB when unknown."""
    from ..machine import memory_bytes
    return memory_bytes("MemAvailable") or (8 << 30)


class Backend:
    """Base class of every backend. Subclasses set the class attributes and implement
    :meth:`prepare`, :meth:`run` and :meth:`_estimate`.

    Parameters
    ----------
    memory_limit : int, optional
        Workspace limit in bytes, overriding the declared capability (``--memory-limit``).
    **options
        The algorithm settings the class declares in :attr:`options` (e.g. ``fftw_effort``
        for ``fft_pyfftw``); anything else is a ``ValueError`` naming what is accepted.
    """

    #: name used in tables and on the command line
    name: ClassVar[str] = ""
    #: algorithm family shown in tables (``direct``, ``im2col+gemm``, ``fft``, ...)
    algorithm: ClassVar[str] = ""
    #: one-line description for ``convbench list``
    description: ClassVar[str] = ""
    #: what the backend is to a sweep (:data:`ROLES`): ``own`` (one of convbench's algorithms),
    #: ``peer`` (a third-party implementation shown for comparison), ``oracle`` (a float64
    #: reference: what the others are judged by, never in ``--backends all``) or ``meta`` (a
    #: choice among the others, such as ``auto``)
    role: ClassVar[str] = "own"
    #: how readily tables quote speed-ups against this backend when the user names none (lower
    #: first; None: never by default)
    baseline_rank: ClassVar[int | None] = None
    #: the pooling backend that runs a network's pooling layers next to this one in a network
    #: roll-up (a peer's own library); None: the fastest of convbench's own pooling backends
    pool_companion: ClassVar[str | None] = None
    capabilities: ClassVar[Capabilities] = Capabilities()
    #: algorithm settings this backend takes, with their defaults (constructor keywords)
    options: ClassVar[dict[str, Any]] = {}
    #: the problems it runs: "conv" (ConvProblem) or "pool" (PoolProblem)
    kind: ClassVar[str] = "conv"
    #: why a direction the capabilities exclude does not apply to this algorithm (shown in
    #: the refusal instead of the generic sentence)
    direction_reasons: ClassVar[dict[str, str]] = {}

    def __init__(self, *, memory_limit: int | None = None, **options):
        unknown = sorted(set(options) - set(self.options))
        if unknown:
            accepted = ", ".join(self.options) or "none"
            raise ValueError(f"{self.name}: unknown option(s) {', '.join(unknown)}; accepted: {accepted}")
        if memory_limit is not None and (isinstance(memory_limit, bool) or not isinstance(memory_limit, int)
                                         or memory_limit <= 0):
            raise ValueError(f"{self.name}: memory_limit={memory_limit!r}: expected a positive number of bytes")
        if memory_limit is None and self.capabilities.memory_fraction is not None:
            memory_limit = default_memory_limit(self.capabilities.memory_fraction)
        self._memory_limit = memory_limit
        self._estimates: dict[ConvProblem, Estimate] = {}
        self.settings = {**self.options, **options}
        self._configure(**self.settings)

    def _configure(self, **settings) -> None:
        """Validate and apply the algorithm settings (subclasses with :attr:`options`)."""

    # ---------------------------------------------------------------- availability
    @classmethod
    def unavailable_reason(cls) -> str | None:
        """None when the backend can run on this machine, else why not (e.g. missing package)."""
        return None

    # ---------------------------------------------------------------- capabilities
    def supports(self, p: ConvProblem) -> str | None:
        """None when this backend can run ``p``, else the reason it cannot (one line)."""
        c = self.capabilities
        if p.kind != self.kind:
            return f"{self.name} runs {self.kind} problems, not {getattr(p, 'kind', 'conv')}"
        direction = p.direction
        wanted = {"fwd": c.forward, "bwd_d": c.transposed, "bwd_w": c.backward_weights}
        if not wanted.get(direction, False) and direction in self.direction_reasons:
            return self.direction_reasons[direction]
        if direction == "bwd_d" and not c.transposed:
            return (f"{self.name} implements the forward pass only, not the backward-data pass"
                    + (" (the transposed convolution)" if self.kind == "conv" else ""))
        if direction == "fwd" and not c.forward:
            return f"{self.name} does not implement the forward pass"
        if direction == "bwd_w" and not c.backward_weights:
            return f"{self.name} does not implement the weight gradient (bwd_w)"
        if p.rank not in c.ranks:
            return (f"{p.rank}-D problems not supported (runs {', '.join(f'{r}-D' for r in c.ranks)})")
        if p.dtype not in c.dtypes:
            return f"dtype {p.dtype} not supported (supports {', '.join(c.dtypes)})"
        k = p.own("k")
        if c.kernel_sizes is not None and (len(set(k)) > 1 or k[0] not in c.kernel_sizes):
            ks = ", ".join("x".join([str(n)] * p.rank) for n in c.kernel_sizes)
            return f"kernel {_x(k)} not supported (supports {ks})"
        if c.max_kernel is not None and max(k) > c.max_kernel:
            return f"kernel {_x(k)} larger than {c.max_kernel}"
        if c.strides is not None and not set(p.own("s")) <= set(c.strides):
            return f"stride {_x(p.own('s'))} not supported (supports {', '.join(map(str, c.strides))})"
        if not c.dilation and any(p.own("d")):
            return "dilation not supported"
        if not c.groups and p.kind == "conv" and p.g > 1:
            return "groups > 1 not supported"
        if not c.asymmetric_padding and not p.torch_compatible and self.kind == "pool":
            return (f"output size {p.oh}x{p.ow} is neither PyTorch's floor size {'x'.join(map(str, p.torch_sizes(False)))} "
                    f"nor its ceil_mode size {'x'.join(map(str, p.torch_sizes(True)))} on both axes")
        if not c.asymmetric_padding and not p.torch_compatible:
            return (f"asymmetric padding (bottom/right {p.ph_r}/{p.pw_r} vs top/left {p.ph}/{p.pw}) "
                    f"not supported")
        if c.max_calls is not None and p.channel_pairs > c.max_calls:
            return (f"{p.channel_pairs} library calls (images x channel pairs) exceed this per-pair "
                    f"loop's limit of {c.max_calls}")
        limit = self.memory_limit()
        if limit is not None:
            need = self.estimate(p).workspace_bytes
            if need is not None and need > limit:
                return (f"needs {need} bytes ({fmt_bytes(need)}) of workspace, over the memory limit "
                        f"of {limit} bytes ({fmt_bytes(limit)})")
        return self._supports(p)

    def memory_limit(self) -> int | None:
        """The workspace limit in force (the constructor's, else the declared fraction of the
        memory available when this backend was made; None: no limit of its own)."""
        return self._memory_limit

    def _supports(self, p: ConvProblem) -> str | None:
        """Extra checks a subclass cannot express as capability data."""
        return None

    def check(self, p: ConvProblem) -> None:
        """Raise :class:`Unsupported` with the reason if ``p`` is not supported."""
        reason = self.supports(p)
        if reason is not None:
            raise Unsupported(f"{self.name}: {reason}")

    # ---------------------------------------------------------------- accounting
    def estimate(self, p: ConvProblem) -> Estimate:
        """Shape-only accounting of ``p`` (computed once per problem and cached)."""
        est = self._estimates.get(p)
        if est is None:
            est = self._estimates[p] = self._estimate(p)
        return est

    def _estimate(self, p: ConvProblem) -> Estimate:
        """Subclasses: what :meth:`estimate` returns (default: unknown, as for a peer)."""
        return Estimate()

    def make_plan(self, p: ConvProblem, state: Any, *, note: str = "", **accounting) -> Plan:
        """A :class:`Plan` carrying ``state``, with the estimate's accounting unless
        ``accounting`` (``flops_executed=``, ``flops_multiply=``, ``workspace_bytes=``) says
        what the plan ``prepare`` chose really does."""
        est = self.estimate(p)
        fields_ = dict(flops_executed=est.flops_executed, flops_multiply=est.flops_multiply,
                       workspace_bytes=est.workspace_bytes)
        fields_.update(accounting)
        return Plan(p, state, note=note, **fields_)

    # ---------------------------------------------------------------- the work
    def prepare(self, p: ConvProblem, w: np.ndarray | None) -> Plan:
        """All one-off work for problem ``p``; returns the plan ``run`` needs. ``w`` is the cell's
        constant (:class:`convbench.data.Case`): the weights of a forward or backward-data
        convolution, the forward input of a max pool's backward, None otherwise."""
        raise NotImplementedError

    def run(self, plan: Plan, *inputs: np.ndarray) -> np.ndarray:
        """The hot path: apply the plan to the inputs (``x``; ``dy`` for backward data;
        ``(x, dy)`` for the weight gradient) and return a new output array."""
        raise NotImplementedError

    def phases(self, plan: Plan, *inputs: np.ndarray) -> dict[str, float] | None:
        """Seconds spent per phase of one run, for transform algorithms; None otherwise."""
        return None

    def tolerance(self, p) -> float:
        """Norm-wise relative error allowed on ``p`` (:meth:`Capabilities.tolerance`)."""
        return self.capabilities.tolerance(p.dtype, p)

    def describe(self) -> dict:
        """Name, algorithm, options and capabilities as a plain dict (for ``convbench list``)."""
        d = {"name": self.name, "algorithm": self.algorithm, "role": self.role, "peer": self.role == "peer",
             "description": self.description, "options": dict(self.settings)}
        d.update(self.capabilities.as_dict())
        d["memory_limit_bytes"] = self.memory_limit()
        return d

    def __repr__(self) -> str:
        return f"<backend {self.name} ({self.algorithm})>"


#: a timed candidate replaces the one ranked above it only when faster by this factor
HYSTERESIS = 1.08


def stable_choice(tried: list) -> object:
    """Pick from ``[(candidate, seconds), ...]`` (in the cost model's order) the fastest,
    but keep an earlier-ranked candidate unless a later one beats it by ``HYSTERESIS``:
    timings within a few percent are noise, and flipping between near-equal choices from
    run to run would make A/A comparisons of the same code disagree."""
    best, best_t = tried[0]
    for cand, t in tried[1:]:
        if t * HYSTERESIS < best_t:
            best, best_t = cand, t
    return best


def default_memory_limit(fraction: float = 0.25) -> int:
    """A fraction of the memory available now, or of ``CONVBENCH_MEMORY_LIMIT`` when set."""
    from ..machine import memory_limit_env
    env = memory_limit_env()
    return int((env if env is not None else available_memory_bytes()) * fraction)
