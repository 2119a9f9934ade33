"""Generated numba kernels that numba's on-disk cache can keep across runs.

A kernel specialised by constants (a Winograd tile size, a pooling window) is generated as
Python source, written to a module under :func:`~convbench.backends.fft.plans.cache_dir`
named by a hash of its text, and imported: a real module, so ``@njit(cache=True)`` caches
its machine code beside it and a later process loads it instead of compiling again
(closures, the other way to bake constants in, cannot be cached).
"""

from __future__ import annotations

import hashlib
import importlib
import os
import sys

from .fft.plans import cache_dir

__all__ = ["load_generated"]


def load_generated(family: str, src: str) -> dict:
    """The namespace of generated source ``src`` (module ``cb_{family}_{hash}``).

    Written under ``cache_dir()/{family}_kernels`` and imported; when that directory is not
    writable the source is compiled in memory without numba's disk cache.
    """
    digest = hashlib.sha1(src.encode()).hexdigest()[:16]
    modname = f"cb_{family}_{digest}"
    d = cache_dir() / f"{family}_kernels"
    try:
        d.mkdir(parents=True, exist_ok=True)
        path = d / f"{modname}.py"
        if not path.exists() or path.read_text() != src:
            tmp = path.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_text(src)
            tmp.replace(path)
        # a real, importable module: numba's cache re-imports it by name when loading
        if str(d) not in sys.path:
            sys.path.append(str(d))
        return vars(importlib.import_module(modname))
    except OSError:  # read-only home: compile in memory (no disk cache)
        ns: dict = {}
        exec(compile(src.replace("cache=True", "cache=False"), f"<{modname}>", "exec"), ns)
        return ns
