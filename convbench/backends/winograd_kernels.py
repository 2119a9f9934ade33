"""The generated transform kernels of the Winograd backends (:mod:`.winograd`).

Each F(m^rank, r^rank) and point set gets its own Python source with the transform matrices'
coefficients unrolled (zeros dropped, +-1 as adds, the rest as constants typed once), loaded
through :func:`~convbench.backends.codegen.load_generated` so numba's disk cache keeps the
machine code: fused tile kernels for 1-D and 2-D, three staged one-axis passes for 3-D.
"""

from __future__ import annotations

import itertools
from fractions import Fraction
from functools import lru_cache

from ..toomcook import winograd_transform
from .codegen import load_generated

__all__ = ["generate_source", "generate_staged", "staged_kernels", "transform_kernels"]


def _lin(coefs, names, consts) -> str:
    """Source of sum(coef * name) with zeros dropped, +-1 as add/sub, other coefficients
    as named constants (typed to the kernel's dtype once, outside the loops)."""
    out = []
    for c, v in zip(coefs, names):
        if c == 0:
            continue
        if c == 1:
            term = v
        elif c == -1:
            term = f"-{v}"
        else:
            key = str(c)
            if key not in consts:
                consts[key] = f"K{len(consts)}"
            term = f"{consts[key]} * {v}"
        out.append(term)
    if not out:
        return "zero"
    s = out[0]
    for t in out[1:]:
        s += f" - {t[1:]}" if t.startswith("-") else f" + {t}"
    return s


def _stages(coef, names: dict, n_out: int, axis: int, prefix: str, consts: dict) -> tuple[dict, list]:
    """One 1-D transform along ``axis`` of the tile held in ``names`` (index tuple -> source
    name): ``out[.., x, ..] = sum_a coef[x][a] * in[.., a, ..]``. Returns the new names and
    the lines assigning them."""
    lines, out = [], {}
    for idx in sorted({i[:axis] + (x,) + i[axis + 1:] for i in names for x in range(n_out)}):
        src = [names[idx[:axis] + (a,) + idx[axis + 1:]] for a in range(len(coef[0]))]
        name = prefix + "_".join(map(str, idx))
        out[idx] = name
        lines.append(f"{name} = " + _lin([coef[idx[axis]][a] for a in range(len(src))], src, consts))
    return out, lines


#: per rank of the fused kernels: the tile-origin variable of each spatial axis, outermost first
_ORIGINS = {1: ("c0",), 2: ("r0", "c0")}


def generate_source(m: int, r: int, points: str, dtype: str, parallel: bool, rank: int = 2) -> str:
    """Python source of the fused input/output transform kernels for one F(m^rank, r^rank)
    (rank 1 or 2) and point set.

    The 2-D transform is the 1-D one nested (``B^T`` along each axis in turn), each tile's
    emitted as straight-line code: the exact coefficients are folded in, zeros are skipped
    and +-1 become additions. The innermost loop runs over channels (contiguous in the
    channels-last buffers), so LLVM vectorises the whole tile computation across channels.
    Jobs are images (1-D) or (image, tile row) pairs, each looping over the tiles of its row.
    A fused 3-D tile is too much straight-line code (F(4x4x4,3x3x3): 1,400 lines, 22 s to
    compile); 3-D runs the staged kernels of :func:`generate_staged` instead.
    """
    tr = winograd_transform(m, r, points)
    n = m + r - 1
    BT, AT = tr.BT, tr.AT
    consts: dict[str, str] = {}
    np_t = {"float32": "np.float32", "float64": "np.float64"}[dtype]
    org = _ORIGINS[rank]
    grid = list(itertools.product(range(n), repeat=rank))
    flat = {idx: sum(v * n ** (rank - 1 - k) for k, v in enumerate(idx)) for idx in grid}
    names = {idx: "d" + "_".join(map(str, idx)) for idx in grid}
    body_in = [f"{names[idx]} = xn[b_, " + ", ".join(f"{o} + {v}" for o, v in zip(org, idx)) + ", c]"
               for idx in grid]
    for ax in range(rank):
        names, lines = _stages(BT, names, n, ax, f"t{ax}_", consts)
        body_in += lines
    # the last stage's values are the transformed tile: store them instead of naming them
    last = {v: k for k, v in names.items()}
    body_in = [f"V[{flat[last[ln.split(' = ')[0]]]}, gi, t, ci] = {ln.split(' = ', 1)[1]}"
               if ln.split(" = ")[0] in last else ln for ln in body_in]
    names = {idx: "q" + "_".join(map(str, idx)) for idx in grid}
    body_out = [f"{names[idx]} = M[{flat[idx]}, gi, t, o]" for idx in grid]
    for ax in range(rank):
        names, lines = _stages(AT, names, m, ax, f"z{ax}_", consts)
        body_out += lines
    last = {v: k for k, v in names.items()}
    body_out = ["Y[b_, " + ", ".join(f"{o} + {v}" for o, v in zip(org, last[ln.split(' = ')[0]]))
                + f", o0 + o] = {ln.split(' = ', 1)[1]}" if ln.split(" = ")[0] in last else ln for ln in body_out]
    const_lines = [f"    {name} = {np_t}({float(Fraction(k))!r})" for k, name in consts.items()]
    ind = " " * 20
    # the job: (image, outer tile indices); its loop runs along the innermost tile axis
    job = ["        b_ = job"] if rank == 1 else ["        b_ = job // th", "        r0 = (job - b_ * th) * m"]
    head = {1: "m, tw", 2: "m, th, tw"}[rank]
    jobs = {1: "mb", 2: "mb * th"}[rank]
    src = [f"# generated by convbench.backends.winograd for F({m},{r}) rank {rank} points={points!r} {dtype}",
           "import numpy as np",
           "from numba import njit, prange",
           "",
           f"@njit(fastmath=True, nogil=True, cache=True, parallel={parallel})",
           f"def kin(xn, V, {head}, icg):",
           "    # xn: (mb, padded spatial..., ic) zero-padded channels-last -> V: (n^rank, g, T, icg)",
           *const_lines,
           f"    zero = {np_t}(0)",
           "    mb = xn.shape[0]",
           "    g = V.shape[1]",
           f"    for job in prange({jobs}):",
           *job,
           "        for tj in range(tw):",
           "            t = job * tw + tj",
           "            c0 = tj * m",
           "            for gi in range(g):",
           "                for ci in range(icg):",
           "                    c = gi * icg + ci",
           *[ind + line for line in body_in],
           "",
           f"@njit(fastmath=True, nogil=True, cache=True, parallel={parallel})",
           f"def kout(M, Y, {head}, ocg):",
           "    # M: (n^rank, g, T, ocg) -> Y: (mb, tiles*m..., oc) channels-last tiles",
           *const_lines,
           f"    zero = {np_t}(0)",
           "    mb = Y.shape[0]",
           "    g = M.shape[1]",
           f"    for job in prange({jobs}):",
           *job,
           "        for tj in range(tw):",
           "            t = job * tw + tj",
           "            c0 = tj * m",
           "            for gi in range(g):",
           "                o0 = gi * ocg",
           "                for o in range(ocg):",
           *[ind + line for line in body_out],
           ""]
    return "\n".join(src)


def generate_staged(m: int, r: int, points: str, dtype: str, parallel: bool) -> str:
    """Python source of the staged 3-D transforms: the nested F(m^3, r^3) transform run as
    three passes of an unrolled 1-D transform, one spatial axis each (Budden et al. 2017).

    ``tin(src, dst, m)``: ``src (A, L, C) -> dst (A, tiles, n, C)``, the n-point ``B^T``
    along the middle axis of overlapping windows (stride m); ``tin_last(src, V, m, tw, icg)``:
    the last axis's pass, writing the transformed tiles into the multiply stage's
    ``V (n^3, g, T, icg)`` slabs; ``tout_first(M, Z, m, tw, ocg)`` and ``tout(src, dst)`` the
    output transform's ``A^T`` passes in the reverse order. Every pass vectorises over its
    contiguous inner axis (channels, or whole rows of channels); each compiles in about a
    second where the fused 3-D tile took 22 s.
    """
    tr = winograd_transform(m, r, points)
    n = m + r - 1
    BT, AT = tr.BT, tr.AT
    consts: dict[str, str] = {}
    np_t = {"float32": "np.float32", "float64": "np.float64"}[dtype]
    line_in = [_lin(BT[x], [f"d{k}" for k in range(n)], consts) for x in range(n)]
    line_out = [_lin(AT[j], [f"q{k}" for k in range(n)], consts) for j in range(m)]
    const_lines = [f"    {name} = {np_t}({float(Fraction(k))!r})" for k, name in consts.items()]
    deco = f"@njit(fastmath=True, nogil=True, cache=True, parallel={parallel})"
    pre = [*const_lines, f"    zero = {np_t}(0)"]
    ind = " " * 12
    # the last axis's passes: one job per (block, n1 position, tile row, n2 position), looping
    # over the tiles of the row; ``xi`` the first of the n slabs the pass reads or writes
    tiles = ["    for job in prange(B * n1 * th * n2):",
             "        b = job // (n1 * th * n2)", "        rest = job - b * (n1 * th * n2)",
             "        x1 = rest // (th * n2)", "        rest -= x1 * (th * n2)",
             "        ty = rest // n2", "        x2 = rest - ty * n2",
             f"        xi = (x1 * n2 + x2) * {n}",
             "        for tx in range(tw):",
             "            t = (b * th + ty) * tw + tx", "            c0 = tx * m"]
    src = [f"# generated by convbench.backends.winograd: staged F({m}^3,{r}^3) points={points!r} {dtype}",
           "import numpy as np", "from numba import njit, prange", "", deco,
           "def tin(src, dst, m):",
           "    # src (A, L, C) -> dst (A, T, n, C): B^T along the middle axis, windows at stride m",
           *pre,
           "    A = src.shape[0]", "    C = src.shape[2]", "    T = dst.shape[1]",
           "    for job in prange(A * T):",
           "        a = job // T", "        t = job - a * T", "        r0 = t * m",
           "        for c in range(C):",
           *[f"{ind}d{k} = src[a, r0 + {k}, c]" for k in range(n)],
           *[f"{ind}dst[a, t, {x}, c] = {e}" for x, e in enumerate(line_in)],
           "", deco,
           "def tin_last(src, V, m, tw, icg):",
           "    # src (B, n1, th, n2, Wp, ic) -> V[(x1*n2 + x2)*n + x, g, (b*th + ty)*tw + tx, icg]",
           *pre,
           "    B, n1, th, n2 = src.shape[0], src.shape[1], src.shape[2], src.shape[3]",
           "    g = V.shape[1]",
           *tiles,
           "            for gi in range(g):", "                for ci in range(icg):",
           "                    c = gi * icg + ci",
           *[f"{ind}        d{k} = src[b, x1, ty, x2, c0 + {k}, c]" for k in range(n)],
           *[f"{ind}        V[xi + {x}, gi, t, ci] = {e}" for x, e in enumerate(line_in)],
           "", deco,
           "def tout_first(M, Z, m, tw, ocg):",
           "    # M[(x1*n2 + x2)*n + x, g, (b*th + ty)*tw + tx, ocg] -> Z (B, n1, th, n2, tw*m, oc)",
           *pre,
           "    B, n1, th, n2 = Z.shape[0], Z.shape[1], Z.shape[2], Z.shape[3]",
           "    g = M.shape[1]",
           *tiles,
           "            for gi in range(g):", "                o0 = gi * ocg",
           "                for o in range(ocg):",
           *[f"{ind}        q{k} = M[xi + {k}, gi, t, o]" for k in range(n)],
           *[f"{ind}        Z[b, x1, ty, x2, c0 + {j}, o0 + o] = {e}" for j, e in enumerate(line_out)],
           "", deco,
           "def tout(src, dst):",
           "    # src (A, n, C) -> dst (A, m, C): A^T along the middle axis",
           *pre,
           "    A = src.shape[0]", "    C = src.shape[2]",
           "    for a in prange(A):",
           "        for c in range(C):",
           *[f"{ind}q{k} = src[a, {k}, c]" for k in range(n)],
           *[f"{ind}dst[a, {j}, c] = {e}" for j, e in enumerate(line_out)],
           ""]
    return "\n".join(src)


@lru_cache(maxsize=None)
def staged_kernels(m: int, r: int, points: str, dtype: str, parallel: bool) -> dict:
    """``{"tin", "tin_last", "tout_first", "tout"}`` compiled (lazily, by numba) for this
    F(m^3, r^3), point set, dtype and threading; see :func:`generate_staged`."""
    ns = load_generated("wino3", generate_staged(m, r, points, dtype, parallel))
    return {k: ns[k] for k in ("tin", "tin_last", "tout_first", "tout")}


@lru_cache(maxsize=None)
def transform_kernels(m: int, r: int, points: str, dtype: str, parallel: bool, rank: int = 2):
    """``(kin, kout)`` compiled for this F(m, r), rank, point set, dtype and threading.

    The generated source is loaded with :func:`~convbench.backends.codegen.load_generated` (named by a
    hash of its text) and imported, so numba's on-disk cache applies across runs.
    """
    ns = load_generated("wino", generate_source(m, r, points, dtype, parallel, rank))
    return ns["kin"], ns["kout"]
