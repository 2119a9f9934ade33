"""A seeded shape fuzzer: ``convbench run --fuzz N --seed S [--rank 1|2|3]``.

Draws valid convolution problems log-uniformly over input size, input and output channels
per group (1..256), kernel, batch (1..8, 1 in three draws of five); stride 1 (60 %), 2 (30 %)
or 3..4; dilation 1 (85 %) or 2..3; groups 1 (70 %), depthwise (15 %: ``g = ic = oc``, or a
channel multiplier of 2) or 2/4/8 (15 %); padding "same"-like ``d*(k//2)`` or 0, half each.
Sizes and kernels per rank (one value on every axis four times in five, else per axis):

- 2-D (the default): 4..256 px, kernel 1..15;
- 1-D (audio, text): length 8..4096, kernel 1..31;
- 3-D (video, volumes): 4..64 voxels per axis, kernel 1..7.

The 2-D draws are those of earlier versions, seed for seed.

A draw is kept only when the problem is a valid convolution and its footprint fits the
budgets: input + output + weights at most ``max_bytes`` and at most ``max_flops`` operations
of the dense loop (so that a fuzzed sweep stays a sweep). The same ``seed`` gives the same
problems, in order; each is a benchdnn descriptor recorded in the result rows (suite
``fuzz-S``).
"""

from __future__ import annotations

import math

import numpy as np

from .flops import prod
from .problem import ConvProblem
from .problem.base import own_axes

__all__ = ["fuzz_problems", "DEFAULT_MAX_FLOPS", "DEFAULT_MAX_BYTES"]

DEFAULT_MAX_FLOPS = 4e8
DEFAULT_MAX_BYTES = 64 << 20


def _log_int(rng, lo: int, hi: int) -> int:
    """An integer in [lo, hi], log-uniform."""
    v = int(math.floor(math.exp(rng.uniform(math.log(lo), math.log(hi + 1)))))
    return min(max(v, lo), hi)


#: per rank: (input size range, kernel size range)
_EXTENTS = {1: ((8, 4096), (1, 31)), 2: ((4, 256), (1, 15)), 3: ((4, 64), (1, 7))}


def _draw(rng, rank: int = 2) -> dict:
    r = rng.random()
    if r < 0.70:
        g, icg, ocg = 1, _log_int(rng, 1, 256), _log_int(rng, 1, 256)
    elif r < 0.85:
        g, icg, ocg = _log_int(rng, 2, 512), 1, (1 if rng.random() < 0.75 else 2)
    else:
        g = int(rng.choice([2, 4, 8]))
        icg, ocg = _log_int(rng, 1, 64), _log_int(rng, 1, 64)
    (ilo, ihi), (klo, khi) = _EXTENTS[rank]
    n = rank if rank > 1 else 1
    ks = [_log_int(rng, klo, khi)]
    square = rng.random() < 0.8
    ks += [ks[0] if square else _log_int(rng, klo, khi) for _ in range(n - 1)]
    u = rng.random()
    s = 1 if u < 0.6 else 2 if u < 0.9 else int(rng.integers(3, 5))
    d = 1 if rng.random() < 0.85 or max(ks) == 1 else int(rng.integers(2, 4))
    ins = [_log_int(rng, ilo, ihi)]
    cube = rng.random() < 0.8
    ins += [ins[0] if cube else _log_int(rng, ilo, ihi) for _ in range(n - 1)]
    same = rng.random() < 0.5
    mb = 1 if rng.random() < 0.6 else _log_int(rng, 2, 8)
    out = dict(mb=mb, ic=g * icg, oc=g * ocg, g=g, rank=rank)
    for a, i, k in zip(own_axes(rank), ins, ks):
        out.update({"i" + a: i, "k" + a: k, "s" + a: s, "p" + a: d * (k // 2) if same else 0, "d" + a: d - 1})
    return out


def fuzz_problems(n: int, seed: int = 0, *, max_flops: float = DEFAULT_MAX_FLOPS,
                  max_bytes: int = DEFAULT_MAX_BYTES, dtype: str = "float32", rank: int = 2) -> list[ConvProblem]:
    """``n`` distinct valid problems of spatial ``rank`` drawn from ``seed`` (see the module
    docstring).

    Raises
    ------
    ValueError
        ``n`` < 1, a rank other than 1, 2 or 3, or budgets so small that valid draws stop coming.
    """
    if int(n) < 1:
        raise ValueError(f"--fuzz {n}: expected a positive number of problems")
    if rank not in _EXTENTS:
        raise ValueError(f"--fuzz: rank {rank!r}; accepted: 1, 2 or 3")
    rng = np.random.default_rng(int(seed))
    out, seen, tries = [], set(), 0
    item = np.dtype(dtype).itemsize
    while len(out) < int(n):
        tries += 1
        if tries > 1000 * int(n) + 10000:
            raise ValueError(f"--fuzz: only {len(out)} of {n} problems fit max_flops={max_flops:g} and "
                             f"max_bytes={max_bytes}; raise the budgets")
        kw = _draw(rng, rank)
        try:
            p = ConvProblem(**kw, dtype=dtype)
        except ValueError:
            continue
        ksz, osz = prod(p.own("k")), prod(p.own("o"))
        dense = 2 * p.mb * p.oc * p.icg * osz * ksz
        footprint = item * (p.mb * p.ic * prod(p.own("i")) + p.mb * p.oc * osz + p.oc * p.icg * ksz)
        if dense > max_flops or footprint > max_bytes or p.label in seen:
            continue
        seen.add(p.label)
        out.append(p)
    return out
