"""Judging a selector by measured regret: ``time(chosen) / time(best measured)`` per problem,
on problems it was not fitted on, against fixed baselines.

A policy maps a problem to a backend. Its choice is taken among the backends measured on
that problem (the runner measured every backend whose capabilities and budgets admitted
it); a fixed rule whose backend was not measured there falls back to im2col_blas, then
direct_numba. ``best`` is the fastest *candidate* (convbench's own backends by default);
a peer's "regret" is its time over that best, so it can be below 1.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..stats import geomean, regret_summary
from .model import fit_selector
from .rules import builtin_rule, nnpack_rule

__all__ = ["regret_table", "summarise", "kfold_labels", "evaluate_protocols", "fit_scipy_two_way",
           "best_single"]

FALLBACKS = ("im2col_blas", "direct_numba")


def _pick_measured(t: pd.Series, name: str) -> str | None:
    if name in t.index and np.isfinite(t[name]):
        return name
    for f in FALLBACKS:
        if f in t.index and np.isfinite(t[f]):
            return f
    return None


def best_single(meas, candidates) -> str:
    """The one backend with the least geometric-mean time ratio to the best over ``meas``
    (im2col_blas standing in where it was not measured)."""
    t = meas.times[candidates]
    best = t.min(axis=1)
    scores = {}
    for b in candidates:
        picks = [t.loc[k, _pick_measured(t.loc[k], b)] / best[k] for k in t.index
                 if _pick_measured(t.loc[k], b) is not None]
        scores[b] = geomean(picks) if picks else np.inf
    return min(scores, key=scores.get)


def fit_scipy_two_way(meas, direct="direct_numba", fft="fft_pyfftw"):
    """scipy's ``choose_conv_method`` idea refitted here: a constant per method on its
    operation count (direct: the dense loop's multiply-adds; FFT: ``N log N`` transforms plus
    the pointwise products), fitted as the median time per operation; returns a policy."""
    from .features import features
    t = meas.times
    def ops(p):
        f = features(p)
        return 2.0 ** f[1], 2.0 ** f[18]  # log_dense_flops, log_fft_flops
    cd, cf = [], []
    for k in t.index:
        od, of = ops(meas.problems[k])
        if direct in t and np.isfinite(t.loc[k, direct]):
            cd.append(t.loc[k, direct] / od)
        if fft in t and np.isfinite(t.loc[k, fft]):
            cf.append(t.loc[k, fft] / of)
    a = float(np.median(cd)) if cd else 1.0
    b = float(np.median(cf)) if cf else 1.0

    def policy(p):
        od, of = ops(p)
        return direct if a * od <= b * of else fft
    return policy


def regret_table(meas, policies: dict, candidates) -> pd.DataFrame:
    """One row per (problem, policy): chosen backend, its time, the best candidate's, regret,
    the standard error of the chosen cell's log2 time (``se``, from its rounds) and, for a
    policy that returns a :class:`~.model.Decision`, whether the rules decided (``fallback``)."""
    rows = []
    t = meas.times
    noise = meas.noise
    for k in t.index:
        tk = t.loc[k]
        own = tk[[c for c in candidates if c in tk.index]]
        own = own[np.isfinite(own)]
        if own.empty:
            continue
        best_b, best_t = own.idxmin(), float(own.min())
        p = meas.problems[k]
        for name, pol in policies.items():
            if pol is None:  # a peer's own policy: it runs everything itself
                if name not in tk.index or not np.isfinite(tk[name]):
                    continue
                pick = name
            else:
                choice = pol(p, list(own.index)) if getattr(pol, "wants_admissible", False) else pol(p)
                fallback = bool(getattr(choice, "fallback", False))
                unsure = len(getattr(choice, "plausible", ())) > 1
                choice = getattr(choice, "choice", choice)
                pick = choice if choice in own.index else _pick_measured(own, choice or "")
                if pick is None:
                    continue
            se = float(noise.loc[k, pick]) if noise is not None and pick in noise.columns else float("nan")
            rows.append(dict(problem=k, suite=meas.suite.get(k, ""), rank=p.rank, policy=name, chosen=pick,
                             time_s=float(tk[pick]), best=best_b, best_s=best_t, regret=float(tk[pick]) / best_t,
                             top1=pick == best_b, se=se, fallback=pol is not None and fallback,
                             unsure=pol is not None and unsure))
    return pd.DataFrame(rows)


def summarise(tab: pd.DataFrame) -> pd.DataFrame:
    """Per policy: problems, top-1 accuracy, regret geomean/p95/max, geomean time, and the
    fraction of problems where the pick was unsure and where the rules decided."""
    out = []
    for name, g in tab.groupby("policy", sort=False):
        r = g.regret.to_numpy(float)
        rs = regret_summary(r)
        out.append(dict(policy=name, problems=len(g), top1=float(g.top1.mean()), regret_geomean=rs["geomean"],
                        regret_p95=rs["p95"], regret_max=rs["max"],
                        time_geomean_s=geomean(g.time_s),
                        unsure=float(g.unsure.mean()) if "unsure" in g else 0.0,
                        fallback=float(g.fallback.mean()) if "fallback" in g else 0.0))
    return pd.DataFrame(out)


def _policies(train, candidates, selector) -> dict:
    """The choosers a selector is judged against; the last, ``None``, is the framework a user
    would otherwise call (the first ranked peer measured: it picks itself)."""
    from ..backends import backend_role, ranked_backends
    single = best_single(train, candidates)

    def sel(p, admissible):
        return selector.decide(p, admissible, builtin_rule(p))
    sel.wants_admissible = True
    pols = {"selector": sel, "always im2col_blas": lambda p: "im2col_blas",
            "best single": lambda p: single, "NNPACK rules": nnpack_rule,
            "built-in rules": builtin_rule, "scipy-style two-way": fit_scipy_two_way(train)}
    peers = [b for b in train.times.columns if backend_role(b) == "peer"]
    pols.update({name: None for name in ranked_backends(peers)[:1]})
    return pols


def kfold_labels(labels, k: int, seed: int = 0):
    idx = np.random.default_rng(seed).permutation(len(labels))
    folds = np.array_split(idx, k)
    return [[labels[i] for i in f] for f in folds]


def evaluate_protocols(meas, candidates, kind: str, *, holdout=None, k: int = 5, seed: int = 0,
                       confidence: bool = True) -> dict:
    """Regret tables of the protocols: ``kfold`` (by problem), ``lono`` (leave one network
    out: every suite held out in turn, fuzzed problems always in training) and, given
    ``holdout`` measurements, ``holdout`` (fit on all of ``meas``). Without ``confidence``
    the selectors never defer to the rules (one fit per fold instead of five)."""
    out = {}
    labels = list(meas.times.index)
    parts = []
    for fold in kfold_labels(labels, k, seed):
        train = meas.subset([x for x in labels if x not in set(fold)])
        sel = fit_selector(train, kind, candidates, confidence=confidence)
        parts.append(regret_table(meas.subset(fold), _policies(train, candidates, sel), candidates))
    out["kfold"] = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()
    suites = sorted({s for s in meas.suite.values() if s and not s.startswith("fuzz-")})
    parts = []
    for s in suites:
        test = [x for x in labels if meas.suite.get(x) == s]
        train = meas.subset([x for x in labels if meas.suite.get(x) != s])
        if not test or len(train.times) < 10:
            continue
        sel = fit_selector(train, kind, candidates, confidence=confidence)
        parts.append(regret_table(meas.subset(test), _policies(train, candidates, sel), candidates)
                     .assign(held_out=s))
    out["lono"] = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()
    if holdout is not None:
        sel = fit_selector(meas, kind, candidates, confidence=confidence)
        out["holdout"] = regret_table(holdout, _policies(meas, candidates, sel), candidates)
    return out
