"""Whether a fitted selector may replace the built-in rules: it must beat the rules' measured
regret on the same held-out problems by more than the measurement noise, in every protocol
``tune`` ran (k-fold, leave-one-network-out, ``--holdout``).

Per protocol, on the problems both policies were judged on:

* ``gain``: log2(rules' regret geomean / selector's), the mean of the per-problem
  differences ``d_i = log2 regret_rules_i - log2 regret_selector_i``;
* ``margin``: twice the standard error that the cells' own repeated rounds put on that mean
  (each problem whose two picks differ adds the variance of both picks' log2 medians), and at
  least :data:`MIN_MARGIN` (medians drift between runs by more than their rounds' spread);
* ``p``: a paired bootstrap over problems, the fraction of resamples whose mean ``d`` is not
  positive: reported, so a reader sees how much of the win rests on a few problems.

The selector passes a protocol when ``gain > margin``; it is installed only when it passes
every protocol. MIOpen's TunaNet lesson: judge the model by the slowdown
of its picks, against the heuristics it would replace, not by its top-1 accuracy.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from ..stats import regret_summary

__all__ = ["MIN_MARGIN", "Verdict", "judge_protocol", "judge", "advice"]

#: the least noise margin, log2 (1%)
MIN_MARGIN = 0.01436
SELECTOR, RULES, SINGLE = "selector", "built-in rules", "best single"


@dataclass
class Verdict:
    """One protocol's judgement (log2 figures; regrets as ratios)."""

    protocol: str
    problems: int
    selector: float          #: regret geomean
    selector_p95: float
    rules: float
    rules_p95: float
    best_single: float
    gain: float              #: log2(rules / selector)
    margin: float            #: 2 x the measurement standard error of ``gain``
    p: float                 #: bootstrap P(gain <= 0)
    unsure: float            #: fraction of problems whose pick was unsure
    fallback: float          #: fraction where the rules decided
    passed: bool

    def line(self) -> str:
        return (f"{self.protocol}: selector {self.selector:.3f} (p95 {self.selector_p95:.2f}) vs rules "
                f"{self.rules:.3f} (p95 {self.rules_p95:.2f}) on {self.problems} problems; gain "
                f"{100 * (2 ** self.gain - 1):+.1f}% against a noise margin of {100 * (2 ** self.margin - 1):.1f}%, "
                f"bootstrap p {self.p:.3f}")

    def as_dict(self) -> dict:
        return {k: (round(v, 5) if isinstance(v, float) else v) for k, v in asdict(self).items()}


def judge_protocol(name: str, tab: pd.DataFrame, *, seed: int = 0) -> Verdict | None:
    """The verdict of one protocol's regret table (:func:`.evaluate.regret_table` rows); None
    when it judged no problem."""
    if tab is None or tab.empty:
        return None
    sel = tab[tab.policy == SELECTOR].set_index("problem")
    rul = tab[tab.policy == RULES].set_index("problem")
    single = tab[tab.policy.str.startswith(SINGLE)]
    both = sel.index.intersection(rul.index)
    if len(both) == 0:
        return None
    sel, rul = sel.loc[both], rul.loc[both]
    d = np.log2(rul.regret.to_numpy(float)) - np.log2(sel.regret.to_numpy(float))
    differ = (sel.chosen.to_numpy() != rul.chosen.to_numpy())
    var = np.where(differ, np.nan_to_num(sel.se.to_numpy(float)) ** 2 + np.nan_to_num(rul.se.to_numpy(float)) ** 2,
                   0.0) if "se" in sel else np.zeros(len(d))
    n = len(d)
    margin = max(MIN_MARGIN, 2.0 * float(np.sqrt(var.sum())) / n)
    rng = np.random.default_rng(seed)
    boots = d[rng.integers(0, n, size=(2000, n))].mean(axis=1)
    p = float((boots <= 0).mean())
    gain = float(d.mean())
    rs, rr = regret_summary(sel.regret), regret_summary(rul.regret)
    bs = regret_summary(single.regret) if not single.empty else {"geomean": float("nan")}
    return Verdict(name, n, rs["geomean"], rs["p95"], rr["geomean"], rr["p95"], bs["geomean"], gain, margin, p,
                   float(sel.unsure.mean()) if "unsure" in sel else 0.0,
                   float(sel.fallback.mean()) if "fallback" in sel else 0.0,
                   bool(gain > margin))


def judge(tables: dict) -> list[Verdict]:
    """The verdict of every protocol that judged problems (``kfold``, ``lono``, ``holdout``)."""
    out = []
    for name in ("kfold", "lono", "holdout"):
        v = judge_protocol(name, tables.get(name))
        if v is not None:
            out.append(v)
    return out


def advice(verdicts: list, tables: dict, suites: set) -> str:
    """What data would help, from where the selector lost."""
    tips = []
    if not {s for s in suites if s and not s.startswith("fuzz-")}:
        tips.append("no network suite was measured, so nothing judged the selector on real layers: "
                    "`convbench tune --collect` measures the shipped networks and the fuzzer together")
    worst = []
    for v in verdicts:
        tab = tables.get(v.protocol)
        if tab is None or tab.empty:
            continue
        for key in ("suite", "rank"):
            for g, grp in tab.groupby(key):
                s = grp[grp.policy == SELECTOR].regret
                r = grp[grp.policy == RULES].regret
                if len(s) >= 3 and len(r) == len(s):
                    loss = float(np.mean(np.log2(s.to_numpy(float))) - np.mean(np.log2(r.to_numpy(float))))
                    if loss > 0:
                        worst.append((loss, f"{key} {g}" if key == "rank" else (g or "unnamed problems")))
    if worst:
        worst.sort(reverse=True)
        names = ", ".join(dict.fromkeys(w for _, w in worst[:3]))
        tips.append(f"it lost most on {names}: measure more problems like those")
    if any(v.problems < 150 for v in verdicts):
        tips.append("more measured problems narrow the noise (the fuzzer: `convbench run --fuzz 300`)")
    return "; ".join(tips) or "more measured problems of the kinds you run"
