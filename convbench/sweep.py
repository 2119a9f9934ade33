"""Problem sets: the cartesian grid of ``convbench run`` flags, expanded to problems.

A grid point that is not a valid convolution (kernel larger than the padded input,
channels not divisible by groups, ...) becomes an :class:`InvalidProblem` carrying
the reason, so the runner reports it as a skipped row instead of crashing.

Padding ``same`` follows TensorFlow's rule (output ``ceil(i / s)``, the extra pixel
of an odd total on the bottom/right); ``valid`` is 0; an integer is symmetric.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

from .problem import ConvProblem

__all__ = ["InvalidProblem", "expand_grid", "same_padding"]


@dataclass(frozen=True)
class InvalidProblem:
    """A grid point that is not a valid problem: its would-be descriptor and why."""

    label: str
    reason: str
    dtype: str = "float32"
    transposed: bool = False


def same_padding(i: int, k: int, s: int, d: int) -> tuple[int, int]:
    """TensorFlow-style SAME: (top/left padding, output size) for one axis (``d`` = gaps)."""
    ext = (k - 1) * (d + 1) + 1
    o = -(-i // s)
    total = max((o - 1) * s + ext - i, 0)
    return total // 2, o


def expand_grid(*, sizes, kernels, strides=(1,), channels=(16,), out_channels=None, batch=(1,),
                padding=(0,), dilation=(1,), groups=(1,), dtypes=("float32",),
                transposed=(False,), name: str = "") -> list:
    """Every combination of the given values, as problems (or invalid grid points).

    Parameters
    ----------
    sizes, kernels : list of (int, int)
        Input sizes ``(ih, iw)`` and kernel sizes ``(kh, kw)``.
    strides, dilation : list of (int, int)
        PyTorch conventions (dilation 1 = dense).
    channels, batch, groups : list of int
    out_channels : list of int, optional
        Defaults to "same as the input channels" for each grid point.
    padding : list of int or "same" or "valid"
    dtypes : list of str
    transposed : list of bool
    """
    out = []
    ocs = out_channels if out_channels else (None,)
    for (ih, iw), (kh, kw), st, ic, oc, mb, pad, dil, g, dt, tr in itertools.product(
            sizes, kernels, strides, channels, ocs, batch, padding, dilation, groups, dtypes, transposed):
        sh, sw = st if isinstance(st, tuple) else (st, st)
        dh, dw = dil if isinstance(dil, tuple) else (dil, dil)
        oc = ic if oc is None else oc
        kwargs = dict(mb=mb, ic=ic, ih=ih, iw=iw, oc=oc, kh=kh, kw=kw, sh=sh, sw=sw, dh=dh - 1, dw=dw - 1,
                      g=g, dtype=dt, name=name, transposed=tr)
        if pad == "same":
            ph, oh = same_padding(ih, kh, sh, dh - 1)
            pw, ow = same_padding(iw, kw, sw, dw - 1)
            kwargs.update(ph=ph, pw=pw, oh=oh, ow=ow)
        else:
            p = 0 if pad == "valid" else int(pad)
            kwargs.update(ph=p, pw=p)
        try:
            out.append(ConvProblem(**kwargs))
        except ValueError as e:
            label = (f"{'g%d' % g if g > 1 else ''}mb{mb}ic{ic}ih{ih}{'iw%d' % iw if iw != ih else ''}"
                     f"oc{oc}kh{kh}{'kw%d' % kw if kw != kh else ''}"
                     f"{'sh%d' % sh if sh > 1 else ''}{'sw%d' % sw if sw != sh else ''}"
                     f"{'ph%d' % kwargs['ph'] if kwargs['ph'] else ''}"
                     f"{'dh%d' % (dh - 1) if dh > 1 else ''}")
            out.append(InvalidProblem(label, str(e), dtype=dt, transposed=tr))
    return out
