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
from .problem import ConvProblem, InvalidProblem, PoolProblem, own_axes

__all__ = ["expand_grid", "expand_pool_grid", "same_padding", "expand_problems", "parse_directions", "grid_rank"]


def same_padding(i: int, k: int, s: int, d: int) -> tuple[int, int]:
    """TensorFlow-style SAME: (top/left padding, output size) for one axis (``d`` = gaps)."""
    ext = (k - 1) * (d + 1) + 1
    o = -(-i // s)
    total = max((o - 1) * s + ext - i, 0)
    return total // 2, o


def grid_rank(sizes, kernels, rank: int | None = None) -> int:
    """The spatial rank of a grid: the number of values of its per-axis ``--sizes``/``--kernels``
    (``DxHxW``: 3, ``HxW``: 2), else ``--rank``, else 2. Values of different ranks, or a rank
    ``--rank`` contradicts, are a ValueError naming both."""
    seen = {}
    for flag, vals in (("--sizes", sizes), ("--kernels", kernels)):
        for t in vals or ():
            if len(t) > 1:
                seen.setdefault(len(t), f"{flag} {'x'.join(map(str, t))}")
    if len(seen) > 1 or (rank is not None and seen and set(seen) != {rank}):
        parts = [f"{v} ({k}-D)" for k, v in sorted(seen.items())] + ([f"--rank {rank}"] if rank else [])
        raise ValueError(f"{' and '.join(parts)} give different ranks; accepted: per-axis values of one rank "
                         f"(DxHxW for 3-D, HxW for 2-D), or single numbers with --rank 1, 2 or 3")
    return rank or (next(iter(seen)) if seen else 2)


def _axes_of(t, rank: int) -> tuple:
    """A grid value for every axis of ``rank``: a single number repeated, per-axis values as given."""
    t = t if isinstance(t, tuple) else (t,)
    return t * rank if len(t) == 1 else t


def _grid_label(kind: str, fields: dict, rank: int) -> str:
    """The would-be descriptor of an invalid grid point (shown in its skipped row)."""
    axes = own_axes(rank)
    head = (f"--alg={fields['alg']} " if kind == "pool" else (f"g{fields['g']}" if fields.get("g", 1) > 1 else ""))
    text = f"{head}mb{fields['mb']}ic{fields['ic']}" + "".join(f"i{a}{fields['i' + a]}" for a in axes)
    if kind == "conv":
        text += f"oc{fields['oc']}"
    for f in "kspd":
        text += "".join(f"{f}{a}{fields[f + a]}" for a in axes if fields.get(f + a) not in (None, 0 if f in "pd" else 1)
                        or f == "k")
    return text


def expand_grid(*, sizes, kernels, strides=(1,), channels=(16,), out_channels=None, batch=(1,),
                padding=(0,), dilation=(1,), groups=(1,), dtypes=("float32",),
                directions=("fwd",), name: str = "", rank: int | None = None) -> list:
    """Every combination of the given values, as problems (or invalid grid points).

    Parameters
    ----------
    sizes, kernels : list of tuple
        Input and kernel sizes: one value (every axis) or one per axis (``(h, w)``, ``(d, h, w)``).
    strides, dilation : list of int
        PyTorch conventions (dilation 1 = dense), every axis.
    channels, batch, groups : list of int
    out_channels : list of int, optional
        Defaults to "same as the input channels" for each grid point.
    padding : list of int or "same" or "valid"
    dtypes : list of str
    directions : list of str
        Passes of each layer: ``fwd``, ``bwd_d``, ``bwd_w``.
    rank : int, optional
        Spatial rank of single-number sizes and kernels (see :func:`grid_rank`).
    """
    rank = grid_rank(sizes, kernels, rank)
    axes = own_axes(rank)
    out = []
    ocs = out_channels if out_channels else (None,)
    for size, kern, st, ic, oc, mb, pad, dil, g, dt, tr in itertools.product(
            sizes, kernels, strides, channels, ocs, batch, padding, dilation, groups, dtypes, directions):
        oc = ic if oc is None else oc
        fields = dict(mb=mb, ic=ic, oc=oc, g=g, dtype=dt, name=name, direction=tr, rank=rank)
        for a, i, k, s_, d in zip(axes, _axes_of(size, rank), _axes_of(kern, rank), _axes_of(st, rank),
                                  _axes_of(dil, rank)):
            fields.update({"i" + a: i, "k" + a: k, "s" + a: s_, "d" + a: d - 1})
            if pad == "same":
                fields["p" + a], fields["o" + a] = same_padding(i, k, s_, d - 1)
            else:
                fields["p" + a] = 0 if pad == "valid" else int(pad)
        try:
            out.append(ConvProblem(**fields))
        except ValueError as e:
            out.append(InvalidProblem(_grid_label("conv", fields, rank), str(e), dtype=dt, direction=tr))
    return out


def expand_pool_grid(*, algs, sizes, kernels, strides=None, channels=(16,), batch=(1,), padding=(0,),
                     dilation=(1,), dtypes=("float32",), directions=("fwd",), name: str = "",
                     rank: int | None = None) -> list:
    """Every combination of the given values, as pooling problems (or invalid grid points).

    ``strides=None`` is each window's own size (PyTorch's default); ``padding`` takes ints
    (``valid`` is 0; ``same`` is not a pooling padding and makes an invalid grid point);
    directions other than fwd and bwd_d are dropped (pooling has no weights); ``rank`` as in
    :func:`expand_grid`.
    """
    rank = grid_rank(sizes, kernels, rank)
    axes = own_axes(rank)
    out = []
    dirs = [d for d in directions if d in ("fwd", "bwd_d")]
    for alg, size, kern, st, ic, mb, pad, dil, dt, tr in itertools.product(
            algs, sizes, kernels, strides or [None], channels, batch, padding, dilation, dtypes, dirs):
        ks = _axes_of(kern, rank)
        fields = dict(mb=mb, ic=ic, alg=alg, dtype=dt, name=name, direction=tr, rank=rank)
        for a, i, k, s_, d in zip(axes, _axes_of(size, rank), ks, ks if st is None else _axes_of(st, rank),
                                  _axes_of(dil, rank)):
            fields.update({"i" + a: i, "k" + a: k, "s" + a: s_, "d" + a: d - 1,
                           "p" + a: 0 if pad in ("valid", "same") else int(pad)})
        if pad == "same":
            out.append(InvalidProblem(_grid_label("pool", fields, rank), "padding 'same' does not apply to pooling; "
                                      "give an int", dtype=dt, direction=tr, kind="pool"))
            continue
        try:
            out.append(PoolProblem(**fields))
        except ValueError as e:
            out.append(InvalidProblem(_grid_label("pool", fields, rank), str(e), dtype=dt, direction=tr,
                                      kind="pool"))
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
                    dtype=None, direction=None, pool=None, fuzz=None, seed=0, rank=None) -> tuple:
    """The entries of a sweep, from descriptors, suites and grid values, in that order.

    Parameters mirror ``convbench run``'s problem flags, already parsed (``sizes`` and
    ``kernels`` as tuples of one value or one per axis, ``rank`` the rank of single values
    (:func:`grid_rank`), the others as lists); ``fuzz`` problems drawn by
    :func:`convbench.fuzz.fuzz_problems` from ``seed`` at ``rank`` (2 when not given), tagged suite ``fuzz-<seed>`` (``fuzz-<seed>-<rank>d``
    in 1-D and 3-D). ``batch``, ``dtype`` and
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
        for p in fuzz_problems(fuzz, seed or 0, rank=rank or 2):
            add_variants(p, f"fuzz-{seed or 0}" + ("" if (rank or 2) == 2 else f"-{rank}d"), 1)
    grid_values = [kernels, strides, channels, out_channels, padding, dilation, groups] + [None if fuzz else rank]
    if sizes and pool:
        if out_channels or (groups and groups != [1]):
            raise ValueError("convbench run: --pool makes pooling layers, which keep their channels and have no "
                             "groups; drop --out-channels/--groups")
        problems += expand_pool_grid(
            algs=pool, sizes=sizes, kernels=kernels or [(2,)], strides=strides, channels=channels or [16],
            batch=batch or [1], padding=padding or [0], dilation=dilation or [1], dtypes=dtype or ["float32"],
            directions=directions, rank=rank)
    elif pool:
        raise ValueError("convbench run: --pool makes the grid pooling layers and needs --sizes, e.g. "
                         "--pool max --sizes 56,112 --kernels 3 --strides 2")
    elif sizes:
        problems += expand_grid(
            sizes=sizes, kernels=kernels or [(3,)], strides=strides or [1], channels=channels or [16],
            out_channels=out_channels, batch=batch or [1], padding=padding or [0], dilation=dilation or [1],
            groups=groups or [1], dtypes=dtype or ["float32"], directions=directions, rank=rank)
    elif any(v is not None for v in grid_values):
        raise ValueError("convbench run: grid flags (--kernels, --strides, ...) need --sizes, e.g. --sizes 32,64 "
                         "(--rank alone goes with --sizes or --fuzz)")
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
