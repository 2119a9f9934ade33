"""What every functional call shares: array checks at the boundary, the footprint guard,
backend resolution, and the layout convbench's backends take (a 1-D problem's arrays are
laid out NC1W, so every 2-D code path runs it)."""

from __future__ import annotations

import numpy as np

from ..backends import DEFAULTS, available_backends, get_backend
from ..backends.base import Unsupported

__all__ = ["FootprintError", "guard", "contiguous", "float_array", "batched", "layout", "native", "resolve",
           "checked_backend", "same_dtype", "AXES_TEXT"]

#: footprints below this are not checked against the machine (every machine has that much)
_UNCHECKED_BYTES = 64 << 20

#: how the spatial axes of a rank are named in messages
AXES_TEXT = {1: "L", 2: "H, W", 3: "D, H, W"}


class FootprintError(MemoryError):
    """A call whose arrays would not fit in memory, refused from the shapes before anything is
    allocated (the limit is a sweep cell's: ``CONVBENCH_MEMORY_LIMIT``, else the memory
    available less a margin)."""


def guard(nbytes: int, what: str) -> None:
    """:class:`FootprintError` naming the bytes and the limit when ``nbytes`` does not fit."""
    if nbytes <= _UNCHECKED_BYTES:
        return
    from ..format import fmt_bytes
    from ..runner import cell_memory_limit
    limit, src = cell_memory_limit()
    if nbytes > limit:
        hint = "" if "CONVBENCH_MEMORY_LIMIT" in src else "; CONVBENCH_MEMORY_LIMIT sets it"
        raise FootprintError(f"{what} needs {nbytes} bytes ({fmt_bytes(nbytes)}), over the memory limit of {limit} "
                             f"bytes ({fmt_bytes(limit)}; {src}{hint})")


def contiguous(a: np.ndarray, what: str) -> np.ndarray:
    """``a`` C-contiguous; the copy that takes (a broadcast view, say) is checked first."""
    if not a.flags.c_contiguous:
        guard(a.size * a.itemsize, f"a contiguous copy of {what} {a.shape}")
    return np.ascontiguousarray(a)


def float_array(a, what: str) -> np.ndarray:
    """``a`` as a float32/float64 ndarray (anything else: ValueError naming what is accepted)."""
    if not isinstance(a, np.ndarray):
        raise ValueError(f"{what} must be a numpy array, got {type(a).__name__}")
    if a.dtype not in (np.float32, np.float64):
        raise ValueError(f"{what} dtype {a.dtype} is not supported; accepted are float32 and float64")
    return a


def same_dtype(a: np.ndarray, b: np.ndarray, what_a: str, what_b: str) -> None:
    if a.dtype != b.dtype:
        raise ValueError(f"{what_a} dtype {a.dtype} and {what_b} dtype {b.dtype} differ; both must be float32 "
                         f"or float64")


def batched(a: np.ndarray, rank: int, fn: str, what: str = "input", unbatched: bool = True) -> tuple[np.ndarray, bool]:
    """``a`` with a batch axis, and whether it had none (PyTorch takes ``(C, *spatial)`` for one
    image); a rank that does not match ``fn``'s is a ValueError naming both."""
    forms = f"{rank + 1}-D (C, {AXES_TEXT[rank]}) unbatched or " if unbatched else ""
    if a.ndim == rank + 2:
        return contiguous(a, what), False
    if unbatched and a.ndim == rank + 1:
        return contiguous(a, what)[None], True
    raise ValueError(f"{fn}: {what} shape {a.shape} is {a.ndim}-D; a {rank}-D operation takes {forms}"
                     f"{rank + 2}-D (N, C, {AXES_TEXT[rank]}) batched")


def layout(a: np.ndarray, rank: int) -> np.ndarray:
    """``a`` (batched, or a weight) as convbench's backends take it: a 1-D array ``(N, C, L)`` as
    the view ``(N, C, 1, L)``."""
    return a.reshape(a.shape[:2] + (1,) + a.shape[2:]) if rank == 1 else a


def native(a: np.ndarray, rank: int, unbatched: bool = False) -> np.ndarray:
    """A backend's result in PyTorch's layout: 1-D without its unit height, no batch axis when
    the input had none."""
    if rank == 1:
        a = a.reshape(a.shape[:2] + a.shape[3:])
    return a[0] if unbatched else a


def resolve(p, backend: str | None, candidates=None, inputs=None, const=None) -> str:
    """``backend`` (None: the registry's default for the problem's kind,
    :data:`convbench.backends.DEFAULTS`), or for ``"auto"`` the backend
    :mod:`convbench.select.auto` picks (in measure mode, by timing the candidates on
    ``inputs`` at a problem's first call)."""
    if backend is None:
        backend = DEFAULTS[p.kind]
    if backend != "auto":
        if candidates is not None:
            raise ValueError("candidates= is for backend='auto' only")
        return backend
    from ..select import auto
    if candidates is not None:
        if isinstance(candidates, str) or not all(isinstance(c, str) for c in candidates):
            raise ValueError(f"candidates={candidates!r}: expected a list of backend names")
        for c in candidates:
            get_backend(c)  # unknown or unavailable: ValueError listing the accepted ones
        candidates = tuple(candidates)
    if auto.get_mode() == "measure" and inputs is not None:
        return auto.measure_choice(p, candidates, inputs, const)
    return auto.choose_for_problem(p, candidates)


def checked_backend(p, backend: str, candidates=None, inputs=None, const=None):
    """The backend instance that runs ``p``: resolved, of the right kind, supporting ``p``
    (else :class:`~convbench.Unsupported` with its reason), and within the memory limit."""
    backend = resolve(p, backend, candidates, inputs, const)
    b = get_backend(backend)
    if b.kind != p.kind:
        raise ValueError(f"backend={backend!r} runs {b.kind} problems, not {p.kind}; accepted: "
                         f"{', '.join(available_backends(p.kind))}")
    reason = b.supports(p)
    if reason is not None:
        raise Unsupported(f"{backend}: {reason}")
    from ..runner import cell_bytes
    guard(cell_bytes(p, b.estimate(p)), f"{backend} on {p.label} (output, workspace, weights)")
    return b
