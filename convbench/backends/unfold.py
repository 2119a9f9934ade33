"""A compiled unfold for strided convolutions (stems and the strided 3x3 layers).

numpy's copy from the strided im2col view has a non-contiguous innermost axis at stride > 1
and runs element by element through its generic loop; this generated numba loop (stride and
dilation as literals, so the index arithmetic folds and LLVM vectorises the interleaved
loads) copies a block of output rows of one image's columns. Measured at 1 thread: on
MobileNetV2's stem (ic3, 3x3/2, 224 px) 108 us against ~450 us for the numpy view copy; on
ResNet-50's stride-2 3x3 layers the whole im2col_blas call went 4302 -> 3558 us (256 channels,
28 px) and 5781 -> 4328 us (512 channels, 14 px), the numpy copy having taken a quarter of it.
"""

from __future__ import annotations

from .codegen import load_generated

__all__ = ["unfold_kernel", "fits"]


def fits(p) -> bool:
    """A forward, strided 1-D or 2-D problem."""
    return p.rank < 3 and not p.transposed and p.direction == "fwd" and (p.sh > 1 or p.sw > 1)


def _source(sh: int, sw: int, dh: int, dw: int) -> str:
    return f'''from numba import njit


@njit(fastmath=True, cache=True, nogil=True)
def unfold(xp, cols, y0, nr, ow, kh, kw):
    # xp: (icg, hp, wp) one image's padded group; cols: (icg*kh*kw, >= nr*ow)
    icg = xp.shape[0]
    for c in range(icg):
        for ky in range(kh):
            for kx in range(kw):
                row = (c * kh + ky) * kw + kx
                for y in range(nr):
                    yy = (y0 + y) * {sh} + ky * {dh}
                    base = y * ow
                    for j in range(ow):
                        cols[row, base + j] = xp[c, yy, j * {sw} + kx * {dw}]
'''


_KERNELS: dict = {}


def unfold_kernel(sh: int, sw: int, dh: int, dw: int):
    """``unfold(xp, cols, y0, nr, ow, kh, kw)`` for these strides and dilations (PyTorch
    convention, 1 = dense), compiled once and cached on disk."""
    key = (sh, sw, dh, dw)
    if key not in _KERNELS:
        _KERNELS[key] = load_generated("unfold", _source(sh, sw, dh, dw))["unfold"]
    return _KERNELS[key]
