"""Backend registry: names become objects in one validating function.

Adding a backend is one module plus one line in :data:`REGISTRY`. Modules are
imported lazily, so ``import convbench`` does not pull in torch or pyFFTW, and a
backend whose dependency is missing is listed with the reason instead of failing.
"""

from __future__ import annotations

import importlib
from functools import lru_cache

from .base import Backend, Capabilities, Unsupported

__all__ = ["REGISTRY", "get_backend", "available_backends", "registered_backends",
           "backend_class", "unavailable_reason", "Backend", "Capabilities", "Unsupported"]

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
    "scipy_signal": "convbench.backends.scipy_peer:ScipySignal",
    "scipy_ndimage": "convbench.backends.scipy_peer:ScipyNdimage",
    "scipy_fftconv": "convbench.backends.scipy_peer:ScipyFFTConv",
}


@lru_cache(maxsize=None)
def backend_class(name: str) -> type[Backend] | None:
    """The class registered under ``name`` (None if its module cannot be imported)."""
    mod, _, cls = REGISTRY[name].partition(":")
    try:
        return getattr(importlib.import_module(mod), cls)
    except ImportError:
        return None


@lru_cache(maxsize=None)
def unavailable_reason(name: str) -> str | None:
    """None if backend ``name`` can run here, else why not."""
    if name not in REGISTRY:
        return "not registered"
    mod = REGISTRY[name].partition(":")[0]
    try:
        importlib.import_module(mod)
    except ImportError as e:
        return f"cannot import {mod}: {e}"
    return backend_class(name).unavailable_reason()


def registered_backends() -> list[str]:
    """Every registered name, available here or not."""
    return list(REGISTRY)


def available_backends() -> list[str]:
    """Names of the backends usable on this machine, in table order."""
    return [n for n in REGISTRY if unavailable_reason(n) is None]


def get_backend(name: str) -> Backend:
    """A new instance of backend ``name``.

    Raises
    ------
    ValueError
        If ``name`` is unknown or not available here; the message lists the available ones.
    """
    if not isinstance(name, str) or name not in REGISTRY:
        raise ValueError(f"unknown backend {name!r}; available: {', '.join(available_backends())}")
    reason = unavailable_reason(name)
    if reason is not None:
        raise ValueError(f"backend {name!r} is not available here ({reason}); "
                         f"available: {', '.join(available_backends())}")
    return backend_class(name)()
