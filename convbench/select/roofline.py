"""What each backend declares it does on a problem, turned into a time floor on this machine:
the roofline time ``F / peak + B / bandwidth`` from the backend's own shape-only
:meth:`~convbench.backends.base.Backend.estimate` (executed operations ``F``; bytes moved
``B``: input, weights, output and its workspace) and the machine's measured peaks (the FMA
peak and the STREAM copy bandwidth that ``convbench run`` records in ``meta.json``).

The ``roofline`` selector models ``log2(time) - log2(floor)``, the backend's log
inefficiency, instead of raw time: a 5x5 FFT and a 5x5 GEMM then differ in what they
*execute*, which the backend states, and a model fitted on small problems ranks large ones
by their counts, with the fitted efficiency held at the edge of what it saw.
"""

from __future__ import annotations

import math

import numpy as np

from ..flops import prod

__all__ = ["DEFAULT_PEAKS", "floor_log2", "floors", "peaks_of"]

#: used when the tuning runs recorded no peaks (a conservative laptop core); only the ratio of
#: the two matters to the ranking, and the fitted efficiencies absorb a common scale
DEFAULT_PEAKS = {"fma_gflops": 50.0, "stream_copy_dram_gbs": 10.0}

_instances: dict = {}


def peaks_of(peaks: dict | None) -> tuple[float, float]:
    """(FLOP/s, bytes/s) from a peaks record (:func:`convbench.select.data._peaks` keys)."""
    pk = dict(DEFAULT_PEAKS, **{k: v for k, v in (peaks or {}).items() if v})
    flops = pk.get("fma_gflops") or pk.get("sgemm_gflops")
    bw = pk.get("stream_copy_dram_gbs") or pk.get("bandwidth_gbs")
    return float(flops) * 1e9, float(bw) * 1e9


def _backend(name: str):
    b = _instances.get(name)
    if b is None and name not in _instances:
        from ..backends import get_backend
        try:
            b = get_backend(name)
        except Exception:  # noqa: BLE001 - not installed here: no floor, never chosen by this model
            b = None
        _instances[name] = b
    return b


def floor_log2(p, name: str, peaks: dict | None) -> float:
    """log2 of the roofline time of backend ``name`` on ``p`` (NaN: the backend cannot say)."""
    b = _backend(name)
    if b is None:
        return float("nan")
    try:
        est = b.estimate(p)
    except Exception:  # noqa: BLE001 - an estimate that fails is no floor
        return float("nan")
    f = est.flops_executed
    if not (isinstance(f, (int, float)) and math.isfinite(f) and f > 0):
        return float("nan")
    item = 8 if p.dtype == "float64" else 4
    io = item * (p.mb * p.ic * prod(p.own("i")) + p.mb * p.oc * prod(p.own("o"))
                 + p.oc * p.icg * prod(p.own("k")))
    moved = io + float(est.workspace_bytes or 0)
    fl, bw = peaks_of(peaks)
    return math.log2(f / fl + moved / bw)


def floors(problems, names, peaks: dict | None) -> dict:
    """Backend -> array of :func:`floor_log2` over ``problems``."""
    return {n: np.array([floor_log2(p, n, peaks) for p in problems], float) for n in names}
