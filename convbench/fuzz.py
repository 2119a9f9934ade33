"""A seeded shape fuzzer: ``convbench run --fuzz N --seed S``.

Draws valid convolution problems log-uniformly over input size (4..256 px, square four
times in five), input and output channels per group (1..256), kernel (1..15, square four
times in five), batch (1..8, 1 in three draws of five); stride 1 (60 %), 2 (30 %) or 3..4;
dilation 1 (85 %) or 2..3; groups 1 (70 %), depthwise (15 %: ``g = ic = oc``, or a channel
multiplier of 2) or 2/4/8 (15 %); padding "same"-like ``d*(k//2)`` or 0, half each.

A draw is kept only when the problem is a valid convolution and its footprint fits the
budgets: input + output + weights at most ``max_bytes`` and at most ``max_flops`` operations
of the dense loop (so that a fuzzed sweep stays a sweep). The same ``seed`` gives the same
problems, in order; each is a benchdnn descriptor recorded in the result rows (suite
``fuzz-S``).
"""

from __future__ import annotations

import math

import numpy as np

from .problem import ConvProblem

__all__ = ["fuzz_problems", "DEFAULT_MAX_FLOPS", "DEFAULT_MAX_BYTES"]

DEFAULT_MAX_FLOPS = 4e8
DEFAULT_MAX_BYTES = 64 << 20


def _log_int(rng, lo: int, hi: int) -> int:
    """An integer in [lo, hi], log-uniform."""
    v = int(math.floor(math.exp(rng.uniform(math.log(lo), math.log(hi + 1)))))
    return min(max(v, lo), hi)


def _draw(rng) -> dict:
    r = rng.random()
    if r < 0.70:
        g, icg, ocg = 1, _log_int(rng, 1, 256), _log_int(rng, 1, 256)
    elif r < 0.85:
        g, icg, ocg = _log_int(rng, 2, 512), 1, (1 if rng.random() < 0.75 else 2)
    else:
        g = int(rng.choice([2, 4, 8]))
        icg, ocg = _log_int(rng, 1, 64), _log_int(rng, 1, 64)
    kh = _log_int(rng, 1, 15)
    kw = kh if rng.random() < 0.8 else _log_int(rng, 1, 15)
    u = rng.random()
    s = 1 if u < 0.6 else 2 if u < 0.9 else int(rng.integers(3, 5))
    d = 1 if rng.random() < 0.85 or max(kh, kw) == 1 else int(rng.integers(2, 4))
    ih = _log_int(rng, 4, 256)
    iw = ih if rng.random() < 0.8 else _log_int(rng, 4, 256)
    same = rng.random() < 0.5
    ph, pw = (d * (kh // 2), d * (kw // 2)) if same else (0, 0)
    mb = 1 if rng.random() < 0.6 else _log_int(rng, 2, 8)
    return dict(mb=mb, ic=g * icg, oc=g * ocg, ih=ih, iw=iw, kh=kh, kw=kw, sh=s, sw=s, ph=ph, pw=pw,
                dh=d - 1, dw=d - 1, g=g)


def fuzz_problems(n: int, seed: int = 0, *, max_flops: float = DEFAULT_MAX_FLOPS,
                  max_bytes: int = DEFAULT_MAX_BYTES, dtype: str = "float32") -> list[ConvProblem]:
    """``n`` distinct valid problems drawn from ``seed`` (see the module docstring).

    Raises
    ------
    ValueError
        ``n`` < 1, or budgets so small that valid draws stop coming.
    """
    if int(n) < 1:
        raise ValueError(f"--fuzz {n}: expected a positive number of problems")
    rng = np.random.default_rng(int(seed))
    out, seen, tries = [], set(), 0
    item = np.dtype(dtype).itemsize
    while len(out) < int(n):
        tries += 1
        if tries > 1000 * int(n) + 10000:
            raise ValueError(f"--fuzz: only {len(out)} of {n} problems fit max_flops={max_flops:g} and "
                             f"max_bytes={max_bytes}; raise the budgets")
        kw = _draw(rng)
        try:
            p = ConvProblem(**kw, dtype=dtype)
        except ValueError:
            continue
        dense = 2 * p.mb * p.oc * p.icg * p.oh * p.ow * p.kh * p.kw
        footprint = item * (p.mb * p.ic * p.ih * p.iw + p.mb * p.oc * p.oh * p.ow + p.oc * p.icg * p.kh * p.kw)
        if dense > max_flops or footprint > max_bytes or p.label in seen:
            continue
        seen.add(p.label)
        out.append(p)
    return out
