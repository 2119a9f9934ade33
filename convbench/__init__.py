"""convbench: benchmark convolution algorithms against each other, honestly and fast.

Public API (PyTorch semantics)::

    import convbench
    y = convbench.conv2d(x, w, stride=1, padding=1, backend="im2col_blas")
    convbench.available_backends()      # ['reference', 'direct_numba', 'im2col_blas', ...]
    convbench.get_backend("direct_numba")

The benchmark workflow, for notebooks (the CLI's operations, returning DataFrames)::

    df = convbench.run(sizes=[64, 128], kernels=[3, 7], out="results/nb")
    convbench.load("results/nb"); convbench.report("results/nb"); convbench.compare(a, b)

Attributes are imported lazily (PEP 562) so that ``import convbench`` loads no
numpy: the command line must be able to choose the OpenBLAS kernel set
(``OPENBLAS_CORETYPE``) before numpy is loaded.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

_LAZY = {
    **{f"{f}{r}d{s}": "convbench.api" for r in (1, 2, 3)
       for f, s in (("conv", ""), ("conv_transpose", ""), ("conv", "_weight"), ("max_pool", ""), ("avg_pool", ""),
                    ("max_pool", "_backward"), ("avg_pool", "_backward"))},
    "FootprintError": "convbench.api",
    "PoolProblem": "convbench.problem",
    "choose_backend": "convbench.select.auto",
    "ConvProblem": "convbench.problem",
    "available_backends": "convbench.backends",
    "registered_backends": "convbench.backends",
    "get_backend": "convbench.backends",
    "Unsupported": "convbench.backends.base",
    "Backend": "convbench.backends.base",
    "Capabilities": "convbench.backends.base",
    "Plan": "convbench.backends.base",
    "Estimate": "convbench.backends.base",
    "run": "convbench.workflow",
    "load": "convbench.workflow",
    "report": "convbench.workflow",
    "compare": "convbench.workflow",
}

__all__ = sorted(_LAZY) + ["__version__"]


def __getattr__(name: str):
    mod = _LAZY.get(name)
    if mod is None:
        raise AttributeError(f"module 'convbench' has no attribute {name!r}")
    value = getattr(importlib.import_module(mod), name)
    globals()[name] = value
    return value


def __dir__():
    return __all__
