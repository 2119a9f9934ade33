"""Backend registry: names become objects in one validating function.

Adding a backend is one module plus one line in :data:`REGISTRY`. Modules are
imported lazily, so ``import convbench`` does not pull in torch or pyFFTW, and a
backend whose dependency is missing is listed with the reason instead of failing.

:func:`resolve_backends` turns a user's ``all|a,b`` and exclusion list into names (the
one place a bad name is reported); :func:`configured_backend` builds one with the
algorithm settings of a run, passing each backend only the options its class declares.
"""

from __future__ import annotations

from functools import lru_cache

from ..threads import held_import
from .base import ROLES, Backend, Capabilities, Unsupported

__all__ = ["REGISTRY", "get_backend", "available_backends", "registered_backends", "resolve_backends",
           "configured_backend", "backend_class", "backend_kind", "backend_role", "backends_with_role",
           "default_baseline", "ranked_backends", "pool_companion", "unavailable_reason", "Backend", "Capabilities", "Unsupported",
           "KINDS", "ROLES", "DEFAULTS", "QUICK", "uses_fftw"]

#: name -> "module:Class", in the order tables list them
REGISTRY: dict[str, str] = {
    "reference": "convbench.backends.reference_backend:Reference",
    "direct_numba": "convbench.backends.direct_numba:DirectNumba",
    "im2col_blas": "convbench.backends.im2col_blas:Im2colBlas",
    "fft_pyfftw": "convbench.backends.fft:FFTPyFFTW",
    "fft_scipy": "convbench.backends.fft:FFTScipy",
    "winograd_f2x3": "convbench.backends.winograd:WinogradF2x3",
    "winograd_f4x3": "convbench.backends.winograd:WinogradF4x3",
    "winograd_f6x3": "convbench.backends.winograd:WinogradF6x3",
    "winograd_f2x5": "convbench.backends.winograd:WinogradF2x5",
    "winograd_f4x5": "convbench.backends.winograd:WinogradF4x5",
    "sparse_csr": "convbench.backends.matrix:SparseCSR",
    "dense_matrix": "convbench.backends.matrix:DenseMatrix",
    "torch_onednn": "convbench.backends.torch_peer:TorchOneDNN",
    "onnxruntime": "convbench.backends.onnx_peer:OnnxRuntime",
    "jax_xla": "convbench.backends.jax_peer:JaxXLA",
    "scipy_signal": "convbench.backends.scipy_peer:ScipySignal",
    "scipy_ndimage": "convbench.backends.scipy_peer:ScipyNdimage",
    "scipy_fftconv": "convbench.backends.scipy_peer:ScipyFFTConv",
    "auto": "convbench.select.backend:Auto",
    "pool_reference": "convbench.backends.pooling:PoolReference",
    "pool_numpy": "convbench.backends.pooling:PoolNumpy",
    "pool_numba": "convbench.backends.pooling:PoolNumba",
    "pool_torch": "convbench.backends.torch_peer:TorchPool",
    "pool_scipy": "convbench.backends.scipy_peer:ScipyPool",
}


#: the backend of each kind that runs when none is named (the functional API, the study), and
#: the few that compile fast enough for a quick study
DEFAULTS = {"conv": "im2col_blas", "pool": "pool_numba"}
QUICK = ("im2col_blas", "direct_numba")


@lru_cache(maxsize=None)
def backend_class(name: str) -> type[Backend] | None:
    """The class registered under ``name`` (None if it is not registered or its module
    cannot be imported)."""
    if name not in REGISTRY:
        return None
    mod, _, cls = REGISTRY[name].partition(":")
    try:
        return getattr(held_import(mod), cls)
    except ImportError:
        return None


@lru_cache(maxsize=None)
def unavailable_reason(name: str) -> str | None:
    """None if backend ``name`` can run here, else why not."""
    if name not in REGISTRY:
        return "not registered"
    mod = REGISTRY[name].partition(":")[0]
    try:
        held_import(mod)
    except ImportError as e:
        return f"cannot import {mod}: {e}"
    return backend_class(name).unavailable_reason()


KINDS = ("conv", "pool")


def backend_kind(name: str) -> str:
    """``conv`` or ``pool``: which problems a registered backend runs."""
    cls = backend_class(name)
    return getattr(cls, "kind", "conv") if cls is not None else "conv"


def backend_role(name: str) -> str:
    """What backend ``name`` is to a sweep (:data:`ROLES`; ``own`` for a name not registered
    or not importable here, as rows of a backend since removed read)."""
    cls = backend_class(name)
    return cls.role if cls is not None else "own"


def backends_with_role(role: str, kind: str | None = None, available: bool = True) -> list[str]:
    """Names of the backends with ``role`` (of ``kind`` when given), in table order; only those
    usable here unless ``available=False``."""
    if role not in ROLES:
        raise ValueError(f"role={role!r}: accepted are {', '.join(ROLES)}")
    names = available_backends(kind) if available else registered_backends(kind)
    return [n for n in names if backend_role(n) == role]


def ranked_backends(names, kind: str | None = None) -> list[str]:
    """Those of ``names`` (of ``kind`` when given) that tables may quote speed-ups against,
    most readily first (their ``baseline_rank``): the framework peers, then im2col + GEMM."""
    got = [(backend_class(n).baseline_rank, i, n) for i, n in enumerate(names)
           if (kind is None or backend_kind(n) == kind) and backend_class(n) is not None
           and backend_class(n).baseline_rank is not None]
    return [n for _, _, n in sorted(got)]


def default_baseline(names, kind: str | None = None) -> str | None:
    """The backend a table quotes speed-ups against when the user names none: the first of
    :func:`ranked_backends`, else the first name (of ``kind`` when given)."""
    names = [n for n in names if kind is None or backend_kind(n) == kind]
    ranked = ranked_backends(names)
    return ranked[0] if ranked else (names[0] if names else None)


def pool_companion(name: str) -> str | None:
    """The pooling backend that runs a network's pools next to convolution backend ``name``
    (its own library's), or None: the fastest of convbench's own pooling backends does."""
    cls = backend_class(name)
    return cls.pool_companion if cls is not None else None


def uses_fftw(name: str) -> bool:
    """Whether backend ``name`` plans with FFTW (its runs depend on the wisdom file)."""
    cls = backend_class(name)
    return cls is not None and cls.capabilities.threads == "fftw"


def registered_backends(kind: str | None = None) -> list[str]:
    """Every registered name, available here or not (of one ``kind`` when given)."""
    return [n for n in REGISTRY if kind is None or backend_kind(n) == kind]


def available_backends(kind: str | None = "conv") -> list[str]:
    """Names of the backends usable on this machine, in table order: the convolution ones by
    default, ``"pool"`` for pooling, None for every kind.

    Raises
    ------
    ValueError
        An unknown kind.
    """
    if kind is not None and kind not in KINDS:
        raise ValueError(f"kind={kind!r}: accepted are {', '.join(KINDS)} or None (every kind)")
    return [n for n in REGISTRY if unavailable_reason(n) is None and (kind is None or backend_kind(n) == kind)]


def get_backend(name: str, **options) -> Backend:
    """A new instance of backend ``name``.

    Parameters
    ----------
    name : str
        A registered, available backend.
    **options
        ``memory_limit`` (bytes) and the algorithm settings the backend declares in its
        ``options`` (``convbench list`` shows them), e.g.
        ``get_backend("fft_pyfftw", fftw_effort="patient")``.

    Raises
    ------
    ValueError
        If ``name`` is unknown or not available here (the message lists the available ones),
        or an option is unknown or has a bad value.
    """
    if not isinstance(name, str) or name not in REGISTRY:
        raise ValueError(f"unknown backend {name!r}; available: {', '.join(available_backends(None))}")
    reason = unavailable_reason(name)
    if reason is not None:
        raise ValueError(f"backend {name!r} is not available here ({reason}); "
                         f"available: {', '.join(available_backends(None))}")
    return backend_class(name)(**options)


def configured_backend(name: str, settings: dict | None = None, memory_limit: int | None = None) -> Backend:
    """Backend ``name`` built with a run's algorithm ``settings``: of those, only the
    options its class declares are passed (``fftw_effort`` reaches ``fft_pyfftw`` only).
    ``memory_limit`` replaces the workspace limit of a backend that declares one (a
    fraction of free memory otherwise); backends without one are bounded by the runner's
    per-cell footprint check alone."""
    cls = backend_class(name)
    opts = {k: v for k, v in (settings or {}).items() if cls is not None and k in cls.options}
    if cls is not None and cls.capabilities.memory_fraction is None:
        memory_limit = None
    return get_backend(name, memory_limit=memory_limit, **opts)


def resolve_backends(spec: str = "all", exclude: str = "", kinds=None) -> list[str]:
    """Names from a user's selection: ``all`` (every available backend of the given ``kinds``,
    default every kind, own algorithms and peers: not the oracles, not ``auto``) or a comma-separated list, minus the
    comma-separated ``exclude``.

    Raises
    ------
    ValueError
        An empty, unknown or unavailable name (listing the accepted ones), or nothing left.
    """
    avail = available_backends(None)
    spec = ",".join(spec) if isinstance(spec, (list, tuple)) else str(spec)
    exclude = ",".join(exclude) if isinstance(exclude, (list, tuple)) else str(exclude or "")
    if spec.strip().lower() == "all":
        names = [n for n in avail if backend_role(n) in ("own", "peer")
                 and (kinds is None or backend_kind(n) in kinds)]
    else:
        names = []
        for n in spec.split(","):
            n = n.strip()
            if not n:
                raise ValueError(f"--backends {spec!r}: empty name; expected all or names from: {', '.join(avail)}")
            if n not in REGISTRY:
                raise ValueError(f"--backends: unknown backend {n!r}; available: {', '.join(avail)}")
            if n not in avail:
                raise ValueError(f"--backends: {n!r} is not available here ({unavailable_reason(n)}); "
                                 f"available: {', '.join(avail)}")
            names.append(n)
    for n in [e.strip() for e in exclude.split(",") if e.strip()]:
        if n not in REGISTRY:
            raise ValueError(f"--exclude: unknown backend {n!r}; registered: {', '.join(REGISTRY)}")
        names = [m for m in names if m != n]
    if not names:
        raise ValueError("no backends left to run")
    return list(dict.fromkeys(names))
