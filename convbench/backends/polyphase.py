"""Backward data of a strided convolution as ``s*s`` stride-1 forward convolutions, one per
phase of the input gradient (``direct_numba``, layout ``polyphase``).

The transposed convolution is a forward convolution of the output gradient with ``s-1`` zeros
inserted between its values, and the direct way of running it multiplies those zeros: at stride
2, three quarters of the work. Split the result by phase instead: ``dx[s*a + r]`` (per axis)
only receives taps ``k`` with ``(r + p - k*d) % s == 0``, which read ``dy[a + e]`` with
``e = (r + p - k*d) / s``. So each phase is an ordinary stride-1 forward convolution of ``dy``
with the sub-kernel of those taps (flipped, in and out channels swapped; ``e`` spaced by
``d / gcd(s, d)``, its dilation), leading offsets ``e < 0`` as padding, ``e > 0`` as a crop of
``dy``, and its own output size: ``ceil((i - r) / s)``. A phase with no taps (a 1x1 kernel at
stride 2 reaches one phase of four) is zeros. Each sub-problem is prepared as an ordinary
forward problem, so it runs the channel-blocked kernel (:mod:`.blocked`), and the phases are
written into the strided positions of ``dx``, as the run's last step.
"""

from __future__ import annotations

from dataclasses import dataclass
from math import gcd

import numpy as np

from ..problem import ConvProblem

__all__ = ["Phase", "phases", "sub_weights"]


@dataclass(frozen=True)
class Phase:
    """One phase of the input gradient: ``dx[..., r0::s0, r1::s1]`` (layout axes) is the forward
    problem ``q`` (``None``: no taps reach it, zeros) run on ``dy[..., crop0:, crop1:]``, with
    taps ``taps[i]`` of the original kernel along layout axis ``i``, in ``q``'s kernel order."""

    start: tuple
    q: ConvProblem | None
    crop: tuple
    taps: tuple


def _axis(i: int, o: int, k: int, s: int, p: int, d: int, r: int):
    """``(fields, crop, taps)`` of phase ``r`` along one axis, or ``None`` when no tap reaches it
    or the phase is empty."""
    dil = d + 1
    taps = [kk for kk in range(k) if (r + p - kk * dil) % s == 0]
    n_out = len(range(r, i, s))
    if not taps or n_out == 0:
        return None
    taps = taps[::-1]  # ascending offset e: the sub-kernel runs flipped
    e = [(r + p - kk * dil) // s for kk in taps]
    crop = max(0, e[0])
    if o - crop < 1:
        return None
    step = dil // gcd(s, dil)
    fields = dict(i=o - crop, k=len(taps), p=max(0, -e[0]), d=step - 1, o=n_out)
    return fields, crop, tuple(taps)


def phases(p: ConvProblem) -> list[Phase]:
    """The phases of backward-data problem ``p`` (1-D or 2-D): every combination of the strided
    axes' residues."""
    per_axis = []
    for a in p.layout_axes:
        ax = p.axis(a)
        opts = []
        for r in range(ax.s):
            got = _axis(ax.i, ax.o, ax.k, ax.s, ax.p, ax.d, r) if a in p.own_axes else \
                (dict(i=1, k=1, p=0, d=0, o=1), 0, (0,))
            opts.append((r, got))
        per_axis.append(opts)
    out = []
    for combo in np.ndindex(*(len(o) for o in per_axis)):
        picked = [per_axis[n][c] for n, c in enumerate(combo)]
        start = tuple(r for r, _ in picked)
        if any(g is None for _, g in picked):
            out.append(Phase(start, None, (), ()))
            continue
        fields = {}
        for a, (_, (f, _, _)) in zip(p.layout_axes, picked):
            if a in p.own_axes:
                fields.update({key + a: v for key, v in f.items()})
        q = ConvProblem(mb=p.mb, ic=p.oc, oc=p.ic, g=p.g, rank=p.rank, dtype=p.dtype, **fields)
        out.append(Phase(start, q, tuple(g[1] for _, g in picked), tuple(g[2] for _, g in picked)))
    return out


def sub_weights(w: np.ndarray, p: ConvProblem, ph: Phase) -> np.ndarray:
    """The weights of phase ``ph``'s forward problem: ``(ic, oc/g) + sub-kernel`` (channels
    swapped per group, the phase's taps in its order)."""
    nd = len(p.layout_axes)
    wk = w.reshape((p.g, p.ocg, p.icg) + tuple(ax.k for ax in p.axes))
    wk = wk[(slice(None),) * 3 + np.ix_(*ph.taps)]
    wk = wk.transpose((0, 2, 1) + tuple(range(3, 3 + nd)))
    return np.ascontiguousarray(wk.reshape((p.ic, p.ocg) + wk.shape[3:])).reshape(ph.q.weight_shape)
