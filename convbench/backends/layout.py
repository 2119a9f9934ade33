"""Compiled layout reorders between channels-first ``NC[D]HW`` arrays and the channels-last
buffers the transform algorithms work on, with the zero border and the edge crop folded in.

numpy copies a transposed view element by element in the destination's order: channels-last
to channels-first of 3-D U-Net's 64-channel 112x128x128 output took 810 ms (470 MB; a plain
copy of it 41 ms). These loops transpose one ``(W, C)`` row tile at a time, which stays in L1
while it is read across and written along, so both sides stream.

Both work on 5-D views (:func:`~convbench.backends.base.volume`: a depth of 1 in 2-D).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

__all__ = ["to_channels_last", "to_channels_first", "warm"]

_SRC = '''
from numba import njit, prange


@njit(cache=True, nogil=True, parallel={parallel})
def to_last(src, dst, pd, ph, pw):
    # src (N, C, D, H, W) -> dst[n, pd + d, ph + h, pw + w, c]: the read part of the input into
    # a zero-bordered channels-last buffer (its border is never written)
    N, C, D, H, W = src.shape
    for job in prange(N * D):
        n = job // D
        d = job - n * D
        for h in range(H):
            for w in range(W):
                for c in range(C):
                    dst[n, pd + d, ph + h, pw + w, c] = src[n, c, d, h, w]


@njit(cache=True, nogil=True, parallel={parallel})
def to_first(src, dst):
    # src (N, D', H', W', C) channels-last tiles -> dst (N, C, D, H, W), the parts of edge tiles
    # beyond dst dropped
    N, C, D, H, W = dst.shape
    for job in prange(N * D):
        n = job // D
        d = job - n * D
        for h in range(H):
            for c in range(C):
                for w in range(W):
                    dst[n, c, d, h, w] = src[n, d, h, w, c]
'''


@lru_cache(maxsize=None)
def _kernels(parallel: bool) -> tuple:
    from .codegen import load_generated
    ns = load_generated("layout", _SRC.format(parallel=parallel))
    return ns["to_last"], ns["to_first"]


#: below this many bytes numpy's own transposed copy is used: the arrays sit in L2 and a
#: compiled call's dispatch (a few microseconds) is what would show (measured 0.12 against
#: 0.13 ms on a 32-channel 14x14 Winograd layer)
MIN_BYTES = 1 << 20


def to_channels_last(src: np.ndarray, dst: np.ndarray, pads: tuple, parallel: bool = False) -> None:
    """``dst[n, pd + d, ph + h, pw + w, c] = src[n, c, d, h, w]`` over all of 5-D ``src``."""
    if src.nbytes < MIN_BYTES:
        _, _, D, H, W = src.shape
        pd, ph, pw = pads
        dst[:, pd:pd + D, ph:ph + H, pw:pw + W] = src.transpose(0, 2, 3, 4, 1)
        return
    _kernels(parallel)[0](src, dst, *pads)


def to_channels_first(src: np.ndarray, dst: np.ndarray, parallel: bool = False) -> None:
    """``dst[n, c, d, h, w] = src[n, d, h, w, c]`` over all of 5-D ``dst`` (``src`` may be larger)."""
    if dst.nbytes < MIN_BYTES:
        _, _, D, H, W = dst.shape
        np.copyto(dst, src[:, :D, :H, :W].transpose(0, 4, 1, 2, 3))
        return
    _kernels(parallel)[1](src, dst)


@lru_cache(maxsize=None)
def warm(dtype: str, parallel: bool = False) -> None:
    """Compile (or load from numba's cache) both reorders for ``dtype``, for a contiguous and a
    sliced source, so that a plan's first timed run never compiles: call it in ``prepare``."""
    to_last, to_first = _kernels(parallel)
    dt = np.dtype(dtype)
    src = np.zeros((1, 2, 2, 2, 3), dt)
    for s in (src, src[:, :, :1, :1, :2]):
        to_last(s, np.zeros((1, 3, 3, 4, 2), dt), 0, 1, 1)
    to_first(np.zeros((1, 2, 2, 3, 2), dt), np.zeros((1, 2, 1, 2, 2), dt))
