"""Problem sets: ``convbench run``'s problem flags (descriptors, suites, the grid) expanded to
the sweep's entries (:class:`~convbench.cells.Entry`: a problem and the suite it belongs to).

A grid point that is not a valid convolution (kernel larger than the padded input,
channels not divisible by groups, ...) becomes an :class:`~convbench.problem.InvalidProblem`
carrying the reason, so the runner reports it as a skipped row instead of crashing.

Padding ``same`` follows TensorFlow's rule (output ``ceil(i / s)``, the extra pixel
of an odd total on the bottom/right); ``valid`` is 0; an integer is symmetric.
"""

from __future__ import annotations

import itertools

from .cells import Entry
from .problem import ConvProblem, InvalidProblem, PoolProblem

__all__ = ["expand_grid", "expand_pool_grid", "same_padding", "expand_problems", "parse_directions"]


def same_padding(i: int, k: int, s: int, d: int) -> tuple[int, int]:
    """TensorFlow-style SAME: (top/left padding, output size) for one axis (``d`` = gaps)."""
    ext = (k - 1) * (d + 1) + 1
    o = -(-i // s)
    total = max((o - 1) * s + ext - i, 0)
    return total // 2, o


def expand_grid(*, sizes, kernels, strides=(1,), channels=(16,), out_channels=None, batch=(1,),
                padding=(0,), dilation=(1,), groups=(1,), dtypes=("float32",),
                directions=("fwd",), name: str = "") -> list:
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
    directions : list of str
        Passes of each layer: ``fwd``, ``bwd_d``, ``bwd_w``.
    """
    out = []
    ocs = out_channels if out_channels else (None,)
    for (ih, iw), (kh, kw), st, ic, oc, mb, pad, dil, g, dt, tr in itertools.product(
            sizes, kernels, strides, channels, ocs, batch, padding, dilation, groups, dtypes, directions):
        sh, sw = st if isinstance(st, tuple) else (st, st)
        dh, dw = dil if isinstance(dil, tuple) else (dil, dil)
        oc = ic if oc is None else oc
        kwargs = dict(mb=mb, ic=ic, ih=ih, iw=iw, oc=oc, kh=kh, kw=kw, sh=sh, sw=sw, dh=dh - 1, dw=dw - 1,
                      g=g, dtype=dt, name=name, direction=tr)
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
            out.append(InvalidProblem(label, str(e), dtype=dt, direction=tr))
    return out


def expand_pool_grid(*, algs, sizes, kernels, strides=None, channels=(16,), batch=(1,), padding=(0,),
                     dilation=(1,), dtypes=("float32",), directions=("fwd",), name: str = "") -> list:
    """Every combination of the given values, as pooling problems (or invalid grid points).

    ``strides=None`` is each window's own size (PyTorch's default); ``padding`` takes ints
    (``valid`` is 0; ``same`` is not a pooling padding and makes an invalid grid point);
    directions other than fwd and bwd_d are dropped (pooling has no weights).
    """
    out = []
    dirs = [d for d in directions if d in ("fwd", "bwd_d")]
    for alg, (ih, iw), (kh, kw), st, ic, mb, pad, dil, dt, tr in itertools.product(
            algs, sizes, kernels, strides or [None], channels, batch, padding, dilation, dtypes, dirs):
        sh, sw = (kh, kw) if st is None else (st if isinstance(st, tuple) else (st, st))
        dh, dw = dil if isinstance(dil, tuple) else (dil, dil)
        label = (f"--alg={alg} mb{mb}ic{ic}ih{ih}{'iw%d' % iw if iw != ih else ''}kh{kh}"
                 f"{'kw%d' % kw if kw != kh else ''}sh{sh}{'sw%d' % sw if sw != sh else ''}ph{pad}"
                 f"{'dh%d' % (dh - 1) if dh > 1 else ''}")
        if pad == "same":
            out.append(InvalidProblem(label, "padding 'same' does not apply to pooling; give an int",
                                      dtype=dt, direction=tr, kind="pool"))
            continue
        p = 0 if pad == "valid" else int(pad)
        try:
            out.append(PoolProblem(mb=mb, ic=ic, ih=ih, iw=iw, kh=kh, kw=kw, sh=sh, sw=sw, ph=p, pw=p, dh=dh - 1,
                                   dw=dw - 1, alg=alg, dtype=dt, name=name, direction=tr))
        except ValueError as e:
            out.append(InvalidProblem(label, str(e), dtype=dt, direction=tr, kind="pool"))
    return out


def parse_directions(value) -> tuple[str, ...]:
    """``--direction``: a comma-separated list of ``fwd``, ``bwd_d``, ``bwd_w``, or ``both``
    (fwd and bwd_d, its meaning before the weight gradient existed) or ``all`` (the three)."""
    out: list[str] = []
    for tok in (value.split(",") if isinstance(value, str) else list(value)):
        t = str(tok).strip().lower()
        if t == "both":
            out += ["fwd", "bwd_d"]
        elif t == "all":
            out += ["fwd", "bwd_d", "bwd_w"]
        elif t in ("fwd", "bwd_d", "bwd_w"):
            out.append(t)
        else:
            raise ValueError(f"--direction {value!r}: {tok!r} is not one of fwd, bwd_d, bwd_w, both, all")
    if not out:
        raise ValueError(f"--direction {value!r}: empty; expected fwd, bwd_d, bwd_w, both or all")
    return tuple(dict.fromkeys(out))


def expand_problems(*, problem=(), suite=(), suite_file=(), sizes=None, kernels=None, strides=None,
                    channels=None, out_channels=None, batch=None, padding=None, dilation=None, groups=None,
                    dtype=None, direction=None, pool=None, fuzz=None, seed=0) -> tuple:
    """The entries of a sweep, from descriptors, suites and grid values, in that order.

    Parameters mirror ``convbench run``'s problem flags, already parsed (``sizes`` and
    ``kernels`` as ``(h, w)`` pairs, the others as lists); ``fuzz`` problems drawn by
    :func:`convbench.fuzz.fuzz_problems` from ``seed``, tagged suite ``fuzz-<seed>``. ``batch``, ``dtype`` and
    ``direction`` apply to descriptors and suites too; with no problem source at all the
    ``default`` suite runs. Exact duplicates (same label) are dropped, order kept; a shape on
    several lines of one suite counts every line in its multiplicity, and a problem takes the
    suite of the first suite that lists it.

    Returns
    -------
    tuple of :class:`~convbench.cells.Entry`
        Problems (or :class:`~convbench.problem.InvalidProblem` grid points) with the suite
        and multiplicity their network roll-up counts them with.

    Raises
    ------
    ValueError
        A bad descriptor, suite or suite file (naming it), or grid flags without sizes.
    """
    from .suites import load_suite
    directions = parse_directions(direction) if direction else ("fwd",)
    problems: list = []
    tags: dict = {}

    def add_variants(p, suite_name: str = "", mult: int = 1):
        for mb in (batch or [None]):
            for dt in (dtype or [None]):
                for tr in (directions if direction else [None]):
                    if tr == "bwd_w" and p.kind == "pool":
                        continue  # pooling has no weights: its passes are fwd and bwd_d
                    ch = {k: v for k, v in (("mb", mb), ("dtype", dt), ("direction", tr)) if v is not None}
                    q = p.replace(**ch) if ch and p.valid else p
                    problems.append(q)
                    if suite_name:  # the same shape on several lines of a suite: every line counts
                        s0, m0 = tags.get(q.label, (suite_name, 0))
                        tags[q.label] = (s0, m0 + mult) if s0 == suite_name else (s0, m0)

    from .problem import parse_problem
    for d in problem:
        try:
            add_variants(parse_problem(d))
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
    if fuzz:
        from .fuzz import fuzz_problems
        for p in fuzz_problems(fuzz, seed or 0):
            add_variants(p, f"fuzz-{seed or 0}", 1)
    grid_values = [kernels, strides, channels, out_channels, padding, dilation, groups]
    if sizes and pool:
        if out_channels or (groups and groups != [1]):
            raise ValueError("convbench run: --pool makes pooling layers, which keep their channels and have no "
                             "groups; drop --out-channels/--groups")
        problems += expand_pool_grid(
            algs=pool, sizes=sizes, kernels=kernels or [(2, 2)], strides=strides, channels=channels or [16],
            batch=batch or [1], padding=padding or [0], dilation=dilation or [1], dtypes=dtype or ["float32"],
            directions=directions)
    elif pool:
        raise ValueError("convbench run: --pool makes the grid pooling layers and needs --sizes, e.g. "
                         "--pool max --sizes 56,112 --kernels 3 --strides 2")
    elif sizes:
        problems += expand_grid(
            sizes=sizes, kernels=kernels or [(3, 3)], strides=strides or [1], channels=channels or [16],
            out_channels=out_channels, batch=batch or [1], padding=padding or [0], dilation=dilation or [1],
            groups=groups or [1], dtypes=dtype or ["float32"], directions=directions)
    elif any(v is not None for v in grid_values):
        raise ValueError("convbench run: grid flags (--kernels, --strides, ...) need --sizes, e.g. --sizes 32,64")
    if not problems:
        # the default sweep is ladders and sample layers, not a network: no roll-up of its own
        for e in load_suite("default"):
            add_variants(e.problem, "", e.multiplicity)
    seen: set = set()
    out = []
    for p in problems:
        if p.label not in seen:
            seen.add(p.label)
            out.append(Entry(p, *tags.get(p.label, ("", 1))))
    return tuple(out)
