"""Problem sets: ``convbench run``'s problem flags (descriptors, suites, the grid) expanded to problems.

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

__all__ = ["InvalidProblem", "expand_grid", "same_padding", "expand_problems", "config_problems",
           "problem_records", "DIRECTIONS"]


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


#: ``--direction`` values and the transposed flags each selects
DIRECTIONS = {"fwd": (False,), "bwd_d": (True,), "both": (False, True)}


def expand_problems(*, problem=(), suite=(), suite_file=(), sizes=None, kernels=None, strides=None,
                    channels=None, out_channels=None, batch=None, padding=None, dilation=None, groups=None,
                    dtype=None, direction=None) -> tuple[list, dict]:
    """The problems of a sweep, from descriptors, suites and grid values, in that order.

    Parameters mirror ``convbench run``'s problem flags, already parsed (``sizes`` and
    ``kernels`` as ``(h, w)`` pairs, the others as lists). ``batch``, ``dtype`` and
    ``direction`` apply to descriptors and suites too; with no problem source at all the
    ``default`` suite runs. Exact duplicates (same label) are dropped, order kept.

    Returns
    -------
    (problems, tags)
        ``problems``: :class:`~convbench.problem.ConvProblem` or :class:`InvalidProblem`
        (grid points that are not valid convolutions); ``tags``: label -> (suite,
        multiplicity) for network roll-ups.

    Raises
    ------
    ValueError
        A bad descriptor, suite or suite file (naming it), or grid flags without sizes.
    """
    from .suites import load_suite
    if direction is not None and direction not in DIRECTIONS:
        raise ValueError(f"--direction {direction!r}: accepted are {', '.join(DIRECTIONS)}")
    directions = DIRECTIONS[direction or "fwd"]
    problems: list = []
    tags: dict = {}

    def add_variants(p, suite_name: str = "", mult: int = 1):
        for mb in (batch or [None]):
            for dt in (dtype or [None]):
                for tr in (directions if direction else [None]):
                    ch = {k: v for k, v in (("mb", mb), ("dtype", dt), ("transposed", tr)) if v is not None}
                    q = p.replace(**ch) if ch and hasattr(p, "replace") else p
                    problems.append(q)
                    if suite_name:  # the same shape on several lines of a suite: every line counts
                        s0, m0 = tags.get(q.label, (suite_name, 0))
                        tags[q.label] = (s0, m0 + mult) if s0 == suite_name else (s0, m0)

    for d in problem:
        try:
            add_variants(ConvProblem.parse(d))
        except ValueError as e:
            raise ValueError(f"--problem: {e}") from None
    for name in suite:
        try:
            entries = load_suite(name)
        except ValueError as e:
            raise ValueError(f"--suite: {e}") from None
        for e in entries:
            add_variants(e.problem, name, e.multiplicity)
    for path in suite_file:
        from pathlib import Path
        for e in load_suite(path, is_path=True):
            add_variants(e.problem, Path(path).stem, e.multiplicity)
    grid_values = [kernels, strides, channels, out_channels, padding, dilation, groups]
    if sizes:
        problems += expand_grid(
            sizes=sizes, kernels=kernels or [(3, 3)], strides=strides or [1], channels=channels or [16],
            out_channels=out_channels, batch=batch or [1], padding=padding or [0], dilation=dilation or [1],
            groups=groups or [1], dtypes=dtype or ["float32"], transposed=directions)
    elif any(v is not None for v in grid_values):
        raise ValueError("convbench run: grid flags (--kernels, --strides, ...) need --sizes, e.g. --sizes 32,64")
    if not problems:
        for e in load_suite("default"):
            add_variants(e.problem, "default", e.multiplicity)
    seen: set = set()
    uniq = []
    for p in problems:
        if p.label not in seen:
            seen.add(p.label)
            uniq.append(p)
    return uniq, tags


def config_problems(config: dict) -> list:
    """The problems a stored run configuration (``meta.json``'s ``config``) lists."""
    return [ConvProblem.parse(x) if isinstance(x, str) else
            InvalidProblem(x["invalid"], x["reason"], x.get("dtype", "float32"), x.get("transposed", False))
            for x in config["problems"]]


def problem_records(problems: list) -> list:
    """The inverse of :func:`config_problems`: what a run configuration stores."""
    return [p.label if isinstance(p, ConvProblem) else
            {"invalid": p.label, "reason": p.reason, "dtype": p.dtype, "transposed": p.transposed}
            for p in problems]
