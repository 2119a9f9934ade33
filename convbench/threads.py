"""One thread count for every library: BLAS, OpenMP, numba, FFTW, scipy.fft, torch, ONNX Runtime, XLA.

Fair timing needs every backend to run with the same number of threads. Each
library has its own knob, and they interfere: measured on this project's machine,
calling ``torch.set_num_threads(1)`` *before* numba launched its pool and
threadpoolctl capped the OpenMP runtimes left torch running two threads (CPU time
twice the wall time). :func:`set_threads` therefore applies the knobs in the order
that holds (numba, then torch, then threadpoolctl over every loaded BLAS/OpenMP
runtime) and can be re-applied cheaply after a backend imports a new library.
ONNX Runtime takes the count per session (its backend reads :func:`get_threads` when a plan
is made); XLA:CPU ignores its thread flags, so its pool threads are pinned to ``n`` cores.
The runner also records each cell's CPU-time/wall-time ratio (``cpu_util``) so a
library that ignores the setting shows up in the results rather than going unseen.

Environment variables (``OMP_NUM_THREADS`` ...) only matter before a runtime loads;
:func:`preset_environment` sets them for a fresh process (the CLI calls it first).
"""

from __future__ import annotations

import os
import sys

__all__ = ["set_threads", "get_threads", "preset_environment", "thread_report", "held_import"]

_THREADS = 1
_ENV_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "BLIS_NUM_THREADS",
             "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS")


def preset_environment(n: int) -> None:
    """Set the thread environment variables for runtimes not loaded yet.

    Also selects numba's ``workqueue`` threading layer unless the user chose one:
    it has no OpenMP runtime of its own to fight with torch's and pyFFTW's.
    """
    for var in _ENV_VARS:
        os.environ[var] = str(n)
    os.environ.setdefault("NUMBA_THREADING_LAYER", "workqueue")
    # XLA does not honour these for its Eigen pool (set_threads pins that pool instead); they
    # keep XLA's other intra-op work to ``n`` threads where it does read them
    flags = os.environ.get("XLA_FLAGS", "")
    if "intra_op_parallelism_threads" not in flags:
        os.environ["XLA_FLAGS"] = (flags + f" --xla_cpu_multi_thread_eigen={'false' if n == 1 else 'true'} "
                                   f"intra_op_parallelism_threads={n}").strip()


def xla_pool_threads() -> list[int]:
    """Thread ids of XLA:CPU's Eigen pool in this process (empty before JAX starts it)."""
    out = []
    try:
        for tid in os.listdir("/proc/self/task"):
            try:
                with open(f"/proc/self/task/{tid}/comm") as f:
                    if f.read().startswith("tf_XLA"):
                        out.append(int(tid))
            except OSError:  # the thread ended meanwhile
                pass
    except OSError:
        pass
    return out


def _pin_xla(n: int) -> None:
    """Confine XLA's pool threads to the first ``n`` cores this process may use."""
    if not hasattr(os, "sched_setaffinity"):
        return
    allowed = sorted(os.sched_getaffinity(0))
    cores = allowed[:max(1, n)]
    for tid in xla_pool_threads():
        try:
            os.sched_setaffinity(tid, cores)
        except OSError:
            pass


def get_threads() -> int:
    """The thread count set by :func:`set_threads` (FFTW plans and scipy.fft read it)."""
    return _THREADS


def held_import(mod: str):
    """``importlib.import_module(mod)`` with SIGINT and SIGTERM held until it returns.

    A backend module imports numba, torch, jax...; a Ctrl-C landing inside one of those
    imports was turned into an ``ImportError`` by the library (the backend then read as "not
    installed" and the run failed with a traceback). Held, the signal is delivered the
    moment the import is done, and the run stops cleanly there."""
    import importlib
    import signal
    held = {signal.SIGINT, signal.SIGTERM}
    try:
        old = signal.pthread_sigmask(signal.SIG_BLOCK, held)
    except (AttributeError, OSError, ValueError):  # no pthread_sigmask on this platform
        old = None
    try:
        return importlib.import_module(mod)
    finally:
        if old is not None:
            signal.pthread_sigmask(signal.SIG_SETMASK, old)


def set_threads(n: int) -> None:
    """Apply ``n`` threads to numba, torch (if imported) and every loaded BLAS/OpenMP runtime."""
    global _THREADS
    if n < 1:
        raise ValueError(f"threads={n}: must be >= 1")
    _THREADS = n
    os.environ.setdefault("NUMBA_THREADING_LAYER", "workqueue")
    try:
        numba = held_import("numba")
        numba.set_num_threads(min(n, numba.config.NUMBA_NUM_THREADS))
    except ImportError:
        pass
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(n)
    from threadpoolctl import threadpool_limits
    threadpool_limits(n)
    if "jax" in sys.modules:
        _pin_xla(n)


def thread_report() -> dict:
    """What each runtime reports now: for the run metadata."""
    out: dict = {"requested": _THREADS}
    try:
        from threadpoolctl import threadpool_info
        out["threadpools"] = [
            {k: i.get(k) for k in ("user_api", "internal_api", "prefix", "version", "num_threads",
                                   "architecture", "threading_layer")}
            for i in threadpool_info()]
    except ImportError:
        pass
    numba = sys.modules.get("numba")
    if numba is not None:
        out["numba"] = {"num_threads": numba.get_num_threads(),
                        "threading_layer": os.environ.get("NUMBA_THREADING_LAYER", "default")}
    torch = sys.modules.get("torch")
    if torch is not None:
        out["torch"] = {"num_threads": torch.get_num_threads()}
    if "onnxruntime" in sys.modules:
        out["onnxruntime"] = {"intra_op_num_threads": _THREADS, "inter_op_num_threads": 1, "spinning": False}
    if "jax" in sys.modules:
        pool = xla_pool_threads()
        cores = set()
        for tid in pool:
            try:
                cores |= os.sched_getaffinity(tid)
            except OSError:
                pass
        out["xla"] = {"pool_threads": len(pool), "pinned_to_cores": sorted(cores),
                      "XLA_FLAGS": os.environ.get("XLA_FLAGS", "")}
    return out
