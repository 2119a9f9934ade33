"""The same cells at other thread counts and cache states (``--threads 1,2``, ``--cache hot,cold``).

Every other section reads the run's own variant (its first thread count, hot cache). These
functions read all of them from the ``variant`` column :func:`convbench.results.load_summary`
adds, and compare each cell with itself: a backend's speed-up from ``t0`` to ``t`` threads
is its own time at ``t0`` over its time at ``t`` on the same problem, and a cold/hot ratio
its cold time over its hot time, each from the same run.

"Own" backends are convbench's algorithms (the rows' ``role``): not peers, not the float64
oracles, not ``auto``.
"""

from __future__ import annotations

from ..cells import variant_tag
from ..stats import geomean

__all__ = ["thread_counts", "scaling", "cache_effect", "network_ratios", "layer_ratios"]


def _passed(df):
    return df[(df.backend != "*") & (df.status == "passed") & df.time_median_s.notna()]


def thread_counts(df) -> list[int]:
    """The thread counts of the run, its own first."""
    if "threads" not in df.columns or df.threads.dropna().empty:
        return []
    prim = df[df.variant == ""].threads.dropna()
    first = int(prim.iloc[0]) if not prim.empty else None
    counts = sorted({int(t) for t in df.threads.dropna()})
    return ([first] if first is not None else []) + [t for t in counts if t != first]


def primary_cache(df) -> str:
    prim = df[df.variant == ""] if "variant" in df.columns else df
    return str(prim.cache.iloc[0]) if "cache" in prim.columns and not prim.empty else "hot"


def _times(df, threads: int, cache: str) -> dict:
    sub = _passed(df)
    sub = sub[(sub.threads.astype(float) == threads) & (sub.cache == cache)]
    return {(r.problem, float(r.weight_density), r.backend): r for r in sub.itertuples(index=False)}


def scaling(df) -> list[dict]:
    """Per backend and further thread count ``t``: speed-ups ``time(t0) / time(t)`` over the
    problems it passed at both (in the run's first cache state), and the median ``cpu_util`` at
    each count."""
    counts = thread_counts(df)
    if len(counts) < 2:
        return []
    t0, cache = counts[0], primary_cache(df)
    base = _times(df, t0, cache)
    out = []
    for t in counts[1:]:
        other = _times(df, t, cache)
        per: dict = {}
        for key, r in other.items():
            b0 = base.get(key)
            if b0 is not None:
                per.setdefault(key[2], []).append((float(b0.time_median_s) / float(r.time_median_s),
                                                   float(b0.cpu_util), float(r.cpu_util), r.role))
        for b, vals in per.items():
            sp = [v[0] for v in vals]
            u0 = sorted(v[1] for v in vals if v[1] == v[1])
            u1 = sorted(v[2] for v in vals if v[2] == v[2])
            med = (lambda xs: xs[len(xs) // 2] if xs else float("nan"))
            out.append(dict(backend=b, t0=t0, t=t, problems=len(vals), geomean=geomean(sp), min=min(sp),
                            max=max(sp), cpu_util_t0=med(u0), cpu_util_t=med(u1), own=vals[0][3] == "own"))
    return out


def cache_effect(df) -> list[dict]:
    """Per backend and thread count: ``time(cold) / time(hot)`` over the problems it passed in both."""
    out = []
    if "cache" not in df.columns or not (df.cache == "cold").any():
        return out
    for t in thread_counts(df) or [1]:
        hot, cold = _times(df, t, "hot"), _times(df, t, "cold")
        per: dict = {}
        for key, r in cold.items():
            h = hot.get(key)
            if h is not None:
                per.setdefault(key[2], []).append((float(r.time_median_s) / float(h.time_median_s), r.role))
        for b, vals in per.items():
            xs = [v[0] for v in vals]
            out.append(dict(backend=b, threads=t, problems=len(xs), geomean=geomean(xs), min=min(xs), max=max(xs),
                            own=vals[0][1] == "own"))
    return out


def _variants_present(df) -> list[tuple[int, str]]:
    counts = thread_counts(df) or [1]
    caches = [c for c in ("hot", "cold") if (df.cache == c).any()] if "cache" in df.columns else ["hot"]
    return [(t, c) for t in counts for c in caches]


def layer_ratios(df, peer: str) -> list[dict]:
    """Per problem and variant: the best own backend's time and ``peer``'s, and their ratio
    (``time(peer) / time(best own)``, > 1: convbench's best is faster)."""
    out = []
    counts = thread_counts(df) or [1]
    for t, c in _variants_present(df):
        cells = _times(df, t, c)
        probs = dict.fromkeys((k[0], k[1]) for k in cells)
        for prob, dens in probs:
            own = [(float(r.time_median_s), b) for (p, d, b), r in cells.items()
                   if (p, d) == (prob, dens) and r.role == "own"]
            pr = cells.get((prob, dens, peer))
            if not own or pr is None:
                continue
            best, who = min(own)
            out.append(dict(problem=prob, density=dens, threads=t, cache=c,
                            variant=variant_tag(t, c, counts[0], primary_cache(df)), own=best, own_backend=who,
                            peer=float(pr.time_median_s), ratio=float(pr.time_median_s) / best))
    return out


def network_ratios(df) -> list[dict]:
    """Per suite (a network's layers, weighted by multiplicity), variant and peer: the forward
    pass of its convolution layers on the best own backend per layer against the peer, over the
    layers both ran (``missing``: the layers one of them lacks)."""
    if "suite" not in df.columns:
        return []
    real = df[(df.backend != "*") & (df.suite != "") & ~df.suite.astype(str).str.startswith("fuzz-")
              & (df.weight_density >= 1.0) & (df.kind != "pool") & (df.direction == "fwd")]
    out = []
    peers = list(dict.fromkeys(real[real.role == "peer"].backend))
    for suite, sub in real.groupby("suite", sort=False):
        mult = sub.drop_duplicates("problem").set_index("problem").multiplicity.to_dict()
        for t, c in _variants_present(sub):
            cells = _times(sub, t, c)
            if not cells:
                continue
            probs = list(dict.fromkeys(k[0] for k in cells))
            own = {}
            for prob in probs:
                cand = [float(r.time_median_s) for (p, _, b), r in cells.items() if p == prob and r.role == "own"]
                if cand:
                    own[prob] = min(cand)
            for peer in peers:
                both = [p for p in probs if p in own and (p, 1.0, peer) in cells]
                if not both:
                    continue
                o = sum(mult[p] * own[p] for p in both)
                q = sum(mult[p] * float(cells[(p, 1.0, peer)].time_median_s) for p in both)
                out.append(dict(suite=suite, threads=t, cache=c, peer=peer, layers=int(sum(mult[p] for p in both)),
                                shapes=len(both), missing=len(set(mult) - set(both)), own=o, peer_time=q,
                                ratio=q / o if o > 0 else float("nan")))
    return out
