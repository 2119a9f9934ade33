"""``convbench tune --evaluate``'s report: regret tables per protocol and the decision map."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ..problem import ConvProblem
from ..reporting.document import Figure, Section, Table, to_html, to_markdown
from .evaluate import summarise

__all__ = ["write_evaluation", "decision_map"]

PROTOCOLS = {"holdout": "Held-out problems (fitted on the tuning directories, judged on --holdout ones)",
             "kfold": "k-fold by problem (5 folds over the tuning directories)",
             "lono": "Leave one network out (each suite held out in turn; fuzzed problems always in training)"}


def _summary_table(tab: pd.DataFrame) -> Table:
    s = summarise(tab)
    sel = s[s.policy == "selector"]
    sel_t = float(sel.time_geomean_s.iloc[0]) if len(sel) else float("nan")
    rows = [[r.policy, int(r.problems), f"{r.top1:.1%}", f"{r.regret_geomean:.3f}", f"{r.regret_p95:.3f}",
             f"{r.regret_max:.2f}", f"{r.time_geomean_s / sel_t:.3f}",
             f"{r.fallback:.1%}" if r.policy == "selector" else ""] for _, r in s.iterrows()]
    return Table(["policy", "problems", "top-1", "regret geomean", "regret p95", "regret max",
                  "geomean time / selector's", "rules decided"], rows)


_REGIMES = (("1 channel", 1, 1, 1), ("32 channels", 32, 32, 1), ("depthwise 32", 32, 32, 32))


def decision_map(selector, meas, path_stem: Path, admissible_fn) -> tuple[str, str] | None:
    """Predicted best backend over input size x kernel size, per stride and channel regime,
    with the measured winners of matching problems overlaid."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    sizes = np.unique(np.round(np.geomspace(8, 512, 22)).astype(int))
    kernels = np.arange(1, 16)
    names = sorted(selector.models)
    cmap = matplotlib.colormaps["tab20"]
    color = {n: cmap(i % 20) for i, n in enumerate(names)}
    fig, axes = plt.subplots(2, 3, figsize=(15, 8), squeeze=False)
    used = set()
    for r, stride in enumerate((1, 2)):
        for c, (title, ic, oc, g) in enumerate(_REGIMES):
            ax = axes[r][c]
            grid = np.full((len(kernels), len(sizes)), -1)
            for i, k in enumerate(kernels):
                for j, s in enumerate(sizes):
                    if k > s:
                        continue
                    p = ConvProblem(mb=1, ic=ic, oc=oc, ih=int(s), iw=int(s), kh=int(k), kw=int(k), sh=stride,
                                    sw=stride, ph=int(k) // 2, pw=int(k) // 2, g=g)
                    pick = selector.choose(p, admissible_fn(p))
                    if pick is not None:
                        grid[i, j] = names.index(pick)
                        used.add(pick)
            img = np.zeros(grid.shape + (4,))
            for n in names:
                img[grid == names.index(n)] = color[n]
            ax.imshow(img, origin="lower", aspect="auto",
                      extent=(-0.5, len(sizes) - 0.5, kernels[0] - 0.5, kernels[-1] + 0.5))
            # measured winners of matching problems
            for lab, p in meas.problems.items():
                row = meas.times.loc[lab, [b for b in names if b in meas.times.columns]].dropna()
                if row.empty or p.sh != stride or p.kh != p.kw:
                    continue
                dw = p.g > 1 and p.icg == 1
                regime = 2 if dw else (0 if p.icg == 1 and p.oc == 1 else 1 if p.icg >= 8 else None)
                if regime != c:
                    continue
                j = float(np.interp(np.log(p.ih), np.log(sizes), np.arange(len(sizes))))
                ax.scatter(j, p.kh, s=40, color=color[row.idxmin()], edgecolors="black", linewidths=1.2)
            ax.set_xticks(range(0, len(sizes), 3))
            ax.set_xticklabels([str(v) for v in sizes[::3]], fontsize=7)
            ax.set_title(f"{title}, stride {stride}", fontsize=9)
            ax.set_xlabel("input size (px)", fontsize=8)
            ax.set_ylabel("kernel size", fontsize=8)
    handles = [plt.Line2D([], [], marker="s", ls="", color=color[n], markersize=9, label=n) for n in names if n in used]
    fig.legend(handles=handles, loc="lower center", ncol=min(6, len(handles)), fontsize=8)
    fig.suptitle("predicted best backend (background) and measured winners of similar problems (dots)")
    fig.tight_layout(rect=(0, 0.06, 1, 0.97))
    out = []
    for ext in ("png", "svg"):
        f = path_stem.with_suffix("." + ext)
        fig.savefig(f, dpi=100 if ext == "png" else None)
        out.append(f.name)
    plt.close(fig)
    return out[0], out[1]


def write_evaluation(out_dir: Path, selector, tables: dict, meas, admissible_fn, *, overhead: dict | None = None,
                     model_cv: dict | None = None, measure: pd.DataFrame | None = None, verdicts=(),
                     installed: bool = True) -> dict:
    """``evaluation.md``/``.html``, ``regret.csv`` and the decision map in ``out_dir``."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    secs = [Section("convbench tune: the selector judged by measured regret", level=1, intro=(
        f"Selector: {selector.kind} models of log2(time) for {len(selector.models)} backends "
        f"({', '.join(selector.models)}), fitted on {selector.n_problems} problems, {selector.dtype}, "
        f"{selector.threads} thread(s), direction {selector.direction}. Regret = time(chosen) / time(fastest "
        f"measured own backend) on each problem; a policy chooses among the backends measured there. "
        f"The last policy, when there is one, is the framework peer measured here: what a framework user gets "
        f"(its ratio can be below 1)."))]
    if verdicts:
        secs.append(Section("Verdict: the selector against the built-in rules", intro=(
            ("The selector was installed: " if installed else "The built-in rules were kept: ") +
            "a fitted selector is installed only when, in every protocol, it beats the rules' regret geomean on "
            "the same held-out problems by more than twice the standard error its cells' repeated rounds put on "
            "the difference (noise margin, at least 1%), and one protocol judged it on real layers (networks held out "
            "or --holdout). The bootstrap p is the share of paired resamples of the "
            "problems in which the selector does not win: how much of the win rests on a few problems. Unsure: the model's top two were within its own error on similar tuning problems, or "
            "the rules' backend was one it could not predict; rules decided: then the rules' backend ran."),
            blocks=[Table(["protocol", "problems", "selector", "p95", "built-in rules", "p95", "best single",
                           "gain", "noise margin", "bootstrap p", "unsure", "rules decided", "passed"],
                          [[v.protocol, v.problems, f"{v.selector:.3f}", f"{v.selector_p95:.2f}", f"{v.rules:.3f}",
                            f"{v.rules_p95:.2f}", f"{v.best_single:.3f}", f"{100 * (2 ** v.gain - 1):+.1f}%",
                            f"{100 * (2 ** v.margin - 1):.1f}%", f"{v.p:.3f}", f"{v.unsure:.1%}",
                            f"{v.fallback:.1%}", "yes" if v.passed else "no"] for v in verdicts])]))
    if model_cv:
        secs.append(Section("Model choice", intro="Every model kind judged on held-out problems (leave one network "
                            "out when suites were measured, else 5-fold by problem); the lower geometric-mean regret "
                            "is kept.", blocks=[Table(
                                ["model", "protocol", "regret geomean", "regret p95", "top-1"],
                                [[k, v.get("protocol", "kfold"), f"{v['regret_geomean']:.3f}",
                                  f"{v['regret_p95']:.3f}", f"{v['top1']:.1%}"] for k, v in model_cv.items()])]))
    allrows = []
    for key, title in PROTOCOLS.items():
        tab = tables.get(key)
        if tab is None or tab.empty:
            continue
        allrows.append(tab.assign(protocol=key))
        blocks = [_summary_table(tab)]
        if "rank" in tab.columns and tab["rank"].nunique() > 1:  # the selector judged at each rank apart
            for rank, g in tab.groupby("rank"):
                blocks.append(f"**{rank}-D problems**")
                blocks.append(_summary_table(g))
        if key in ("holdout", "lono"):
            by = "held_out" if key == "lono" else "suite"
            for grp, g in tab.groupby(by, sort=False):
                name = grp or "(no suite)"
                blocks.append(f"**{name}**")
                blocks.append(_summary_table(g))
        secs.append(Section(title, blocks=blocks))
    if overhead:
        secs.append(Section("Selection overhead of backend='auto'", intro=(
            "The cached resolution is what every repeated call of a problem pays (the choice is cached per "
            "problem and candidate set); end to end is conv2d(backend='auto') minus the same call naming the "
            "chosen backend (interleaved rounds, fastest of each; within the noise of a ~100 us call); the first call on a new shape runs the "
            "capability checks and the model once: " +
            ", ".join(f"{k} {v * 1e6:.1f} us" for k, v in overhead.items()) + ".")))
    if measure is not None and not measure.empty:
        rows = [[r.problem, r.chosen, r.model_choice, f"{r.overhead_s:.3f}", f"{r.saving_s * 1e6:.1f}",
                 "never" if not np.isfinite(r.calls_to_repay) else f"{r.calls_to_repay:.0f}"]
                for _, r in measure.iterrows()]
        secs.append(Section("Measure mode (the cudnn.benchmark analogue)", intro=(
            "First-call cost of timing every admissible candidate (prepare, a warm run and two timed runs each, "
            "from the measured prepare + first-run times) against the saving per call over the selector's pick; "
            "calls to repay = overhead / saving."), blocks=[Table(
                ["problem", "measured winner", "selector's pick", "first-call overhead s", "saving per call us",
                 "calls to repay"], rows)]))
    figs = []
    dm = decision_map(selector, meas, out_dir / "decision_map", admissible_fn)
    if dm:
        figs.append(Figure("Decision map", "The selector's predicted best backend over input size and kernel "
                           "size (mb1, padding k//2), per stride and channel regime; dots: the measured winner of "
                           "tuning problems in that regime.", dm[0], dm[1]))
        secs.insert(1, Section("Figures", blocks=figs))
    if allrows:
        pd.concat(allrows, ignore_index=True).to_csv(out_dir / "regret.csv", index=False)
    (out_dir / "evaluation.md").write_text(to_markdown(secs))
    (out_dir / "evaluation.html").write_text(to_html(secs, out_dir, title="convbench tune evaluation"))
    return {"md": out_dir / "evaluation.md", "html": out_dir / "evaluation.html"}
