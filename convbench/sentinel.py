"""A fixed workload timed between the cells' rounds, to see how fast the machine is right now.

On a shared machine speed drifts (here about 1.4x, in phases lasting seconds). The
sentinel runs a small, fixed amount of the two kinds of work convolution backends
depend on, a BLAS GEMM and an FFT, once per pass of the interleaved timing loop, so
every problem's rounds come with sentinel samples taken at the same moments.
``convbench compare --normalize sentinel`` divides each cell's median by the median
sentinel time measured during that cell's problem: a machine that is uniformly slower
in one run no longer reads as a regression.

Its samples go to ``samples.csv`` under the backend name :data:`SENTINEL`.
"""

from __future__ import annotations

import time

import numpy as np

__all__ = ["SENTINEL", "Sentinel"]

SENTINEL = "_sentinel"


class Sentinel:
    """GEMM 192x192x192 (float32) plus a 64x64 real FFT; about 0.1 ms a call here."""

    def __init__(self, seed: int = 0):
        rng = np.random.default_rng(seed)
        self.a = rng.standard_normal((192, 192)).astype(np.float32)
        self.b = rng.standard_normal((192, 192)).astype(np.float32)
        self.c = np.empty((192, 192), dtype=np.float32)
        self.img = rng.standard_normal((64, 64)).astype(np.float32)
        try:
            import scipy.fft as sfft
            self._fft = sfft.rfft2
        except ImportError:  # pragma: no cover
            self._fft = np.fft.rfft2
        self.times: list[float] = []
        self.call()  # first call outside any timing

    def call(self) -> None:
        np.matmul(self.a, self.b, out=self.c)
        self._fft(self.img)

    def round(self) -> float:
        """Time one call (best of two back to back: the sentinel measures speed, not luck)."""
        best = float("inf")
        for _ in range(2):
            t0 = time.perf_counter()
            self.call()
            best = min(best, time.perf_counter() - t0)
        self.times.append(best)
        return best

    def take(self) -> list[float]:
        """Samples since the last ``take`` (one problem's worth)."""
        out, self.times = self.times, []
        return out
