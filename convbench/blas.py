"""Which BLAS kernels run, whether the CPU supports better ones, and how to switch.

numpy and scipy wheels ship OpenBLAS built with ``DYNAMIC_ARCH``: at load time it
picks a kernel set from the CPU. Some AVX-512 CPUs are not recognised and get the
AVX2 ("Haswell") kernels; on this project's AMD Zen 5 machine that halves sgemm
(120 vs 225 GFLOP/s on one core, measured), and with it every GEMM-based backend.
``OPENBLAS_CORETYPE=SkylakeX`` selects the AVX-512 kernels, but only if it is in
the environment *before* OpenBLAS is loaded, i.e. before ``import numpy``.

This module therefore imports nothing heavy at module level. The CLI calls
:func:`apply_coretype` first thing; the chosen and the detected kernel sets are
recorded in every run's ``meta.json`` and shown by ``convbench info``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

__all__ = ["CORETYPES", "cpu_flags", "best_coretype", "apply_coretype", "blas_status",
           "autodetected_coretype", "coretype_rank"]

#: OpenBLAS x86-64 kernel sets, weakest first (aliases share a rank)
CORETYPES = ("Prescott", "Core2", "Nehalem", "Sandybridge", "Haswell", "SkylakeX", "Cooperlake",
             "SapphireRapids")
_RANK = {n.lower(): i for i, n in enumerate(CORETYPES)}
_RANK.update({"zen": _RANK["haswell"], "excavator": _RANK["haswell"], "atom": 1, "barcelona": 2,
              "bulldozer": 3, "piledriver": 3, "steamroller": 3, "penryn": 1, "dunnington": 1,
              "opteron": 0, "opteron_sse3": 0, "katmai": 0, "coppermine": 0, "northwood": 0})

#: flags OpenBLAS's SkylakeX kernels need
_AVX512 = {"avx512f", "avx512dq", "avx512cd", "avx512bw", "avx512vl"}


def coretype_rank(name: str | None) -> int:
    """Position of a kernel-set name in :data:`CORETYPES` (-1 when unknown)."""
    return _RANK.get((name or "").lower(), -1)


def cpu_flags() -> set[str]:
    """CPU feature flags from ``/proc/cpuinfo`` (empty off Linux)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    import platform
    return platform.processor() or platform.machine()


def best_coretype(flags: set[str] | None = None) -> str:
    """The strongest OpenBLAS kernel set whose instructions this CPU has.

    SkylakeX is the top choice for AVX-512: Cooperlake and SapphireRapids only add
    bf16/fp16 kernels, which convbench (float32/float64) never calls.
    """
    f = cpu_flags() if flags is None else flags
    if _AVX512 <= f:
        return "SkylakeX"
    if {"avx2", "fma"} <= f:
        return "Haswell"
    if "avx" in f:
        return "Sandybridge"
    if "sse4_2" in f:
        return "Nehalem"
    return "Prescott"


def apply_coretype(choice: str) -> dict:
    """Select the OpenBLAS kernel set for this process; must run before numpy is imported.

    Parameters
    ----------
    choice : str
        ``"auto"``: the best set this CPU supports, overriding an ``OPENBLAS_CORETYPE``
        inherited from the environment (this project's machines export
        ``OPENBLAS_CORETYPE=Haswell``; the value found is recorded); ``"native"``: leave
        the environment and OpenBLAS's own detection alone; or a kernel-set name from
        :data:`CORETYPES`.

    Returns
    -------
    dict
        What was requested and applied, for the run metadata.

    Raises
    ------
    ValueError
        For an unknown kernel-set name.
    """
    rec = {"requested": choice, "env_before": os.environ.get("OPENBLAS_CORETYPE"),
           "openblas_env": {k: v for k, v in os.environ.items() if k.startswith("OPENBLAS_")}}
    if choice not in ("auto", "native") and coretype_rank(choice) < 0:
        raise ValueError(f"--blas-coretype {choice!r}: accepted are auto, native or one of "
                         f"{', '.join(CORETYPES)}")
    if choice == "native":
        target = rec["env_before"]
    elif choice == "auto":
        target = best_coretype()
    else:
        target = next((c for c in CORETYPES if c.lower() == choice.lower()), choice)
    if "numpy" in sys.modules:
        rec["applied"] = False
        rec["note"] = ("numpy was already loaded in this process, so OPENBLAS_CORETYPE cannot take "
                       "effect; start a fresh `convbench` process to choose the kernel set")
    else:
        if target is not None:
            os.environ["OPENBLAS_CORETYPE"] = target
        rec["applied"] = True
    rec["target"] = target
    _APPLIED.clear()
    _APPLIED.update(rec)
    return rec


#: what :func:`apply_coretype` did in this process (empty when it was not called)
_APPLIED: dict = {}


def applied_coretype(requested: str = "auto") -> dict:
    """The kernel-set record of this process for the run metadata: what the command line's
    :func:`apply_coretype` did, or, called from Python, that numpy's choice stands."""
    if _APPLIED:
        return dict(_APPLIED)
    return {"requested": requested, "applied": False,
            "note": "called from Python: the kernel set is whatever numpy loaded"}


def blas_status() -> dict:
    """Loaded BLAS libraries and whether their kernels are below what the CPU supports.

    Call after numpy is imported (it inspects the loaded libraries via threadpoolctl).
    """
    import numpy  # noqa: F401  (make sure numpy's BLAS is loaded)
    from threadpoolctl import threadpool_info
    best = best_coretype()
    libs = []
    below = False
    for info in threadpool_info():
        if info.get("user_api") != "blas":
            continue
        arch = info.get("architecture")
        lib = {"internal_api": info.get("internal_api"), "version": info.get("version"),
               "architecture": arch, "filepath": info.get("filepath"),
               "num_threads": info.get("num_threads")}
        if info.get("internal_api") == "openblas" and coretype_rank(arch) >= 0 \
                and coretype_rank(arch) < coretype_rank(best):
            lib["below_cpu"] = True
            below = True
        libs.append(lib)
    msg = None
    if below:
        archs = sorted({lib["architecture"] for lib in libs if lib.get("below_cpu")})
        env = os.environ.get("OPENBLAS_CORETYPE")
        msg = (f"OpenBLAS runs {'/'.join(archs)} kernels but this CPU supports {best}"
               f"{f' (OPENBLAS_CORETYPE={env} in the environment)' if env else ''}: GEMM-based "
               f"backends run below this machine's speed. `convbench run --blas-coretype auto` "
               f"(the default) selects {best}; in Python, set OPENBLAS_CORETYPE={best} before numpy loads.")
    return {"cpu_best": best, "env": os.environ.get("OPENBLAS_CORETYPE"), "libraries": libs,
            "below_cpu": below, "warning": msg}


def autodetected_coretype(timeout: float = 60.0) -> str | None:
    """The kernel set OpenBLAS picks by itself here (probed in a child process without
    ``OPENBLAS_CORETYPE``), or None if the probe fails."""
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_CORETYPE"}
    code = ("import json, numpy; from threadpoolctl import threadpool_info; "
            "print(json.dumps([i.get('architecture') for i in threadpool_info() "
            "if i.get('internal_api') == 'openblas']))")
    try:
        out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                             timeout=timeout, check=True).stdout
        archs = json.loads(out.strip().splitlines()[-1])
        return archs[0] if archs else None
    except (subprocess.SubprocessError, OSError, ValueError, IndexError):
        return None
