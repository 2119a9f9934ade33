"""backend="auto" judged on layers it was never fitted on (issue 26's table).

Measures every own backend on ``benchmarks/data/unseen_layers.txt`` (GoogLeNet, ResNet-18,
SqueezeNet, Inception-v3, a 2-D U-Net and two image filters: networks in no shipped suite,
so in no ``tune --collect`` data), interleaved in one run, then scores each chooser on the
measured times: every selector file given, the built-in rules, and the best single backend
in hindsight. Regret = time(chosen) / time(fastest own backend) per layer.

    python benchmarks/auto_regret.py --selector collect=~/.cache/convbench/selectors/selector-X.json \\
        --selector fuzz100=/tmp/sel100.json [--measured DIR] [--out DIR]

``--measured DIR`` re-scores an earlier measurement instead of measuring again.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
LAYERS = HERE / "data" / "unseen_layers.txt"


def measure(out: Path) -> Path:
    from convbench.cli.run import execute
    from convbench.cli.tune_collect import SETTINGS
    from convbench.select.auto import own_candidates
    import contextlib
    import io
    with contextlib.redirect_stdout(io.StringIO()):  # the sweep's own tables are in its directory
        res = execute(suite_file=[str(LAYERS)], backends=",".join(own_candidates("conv")), threads=[1], out=str(out),
                      quiet=True, no_plots=True, **SETTINGS)
    if res.status != 0:
        sys.exit(f"auto_regret: the measurement ended with status {res.status}")
    return out


def score(measured: Path, selectors: dict) -> str:

    from convbench.select.auto import own_candidates
    from convbench.select.data import load_measurements
    from convbench.select.evaluate import best_single, regret_table, summarise
    from convbench.select.rules import builtin_rule
    from convbench.select.store import entries
    meas = load_measurements([measured])
    cands = [c for c in meas.times.columns if c in own_candidates("conv")]
    pols = {}
    for name, path in selectors.items():
        sel = [s for s in entries(Path(path).expanduser()) if (s.dtype, s.threads, s.direction) ==
               (meas.dtype, meas.threads, meas.direction)][0]

        def pol(p, adm, sel=sel):
            return sel.decide(p, adm, builtin_rule(p))
        pol.wants_admissible = True
        pols[f"{name} ({sel.kind}, {sel.n_problems} problems)"] = pol
    pols["built-in rules"] = builtin_rule
    single = best_single(meas, cands)
    pols[f"best single in hindsight ({single})"] = lambda p: single
    tab = regret_table(meas, pols, cands)
    tab["network"] = tab.problem.str.extract(r'"([^:"]+):')[0]
    lines = [f"{len(meas.times)} layers, {len(cands)} own backends, {meas.dtype}, {meas.threads} thread(s); "
             f"measured in {measured}", "",
             "| chooser | geomean regret | p95 | max | top-1 | rules decided |", "|---|---:|---:|---:|---:|---:|"]
    for _, r in summarise(tab).iterrows():
        lines.append(f"| {r.policy} | {r.regret_geomean:.3f} | {r.regret_p95:.2f} | {r.regret_max:.2f} | "
                     f"{r.top1:.0%} | {r.fallback:.0%} |")
    lines += ["", "| network | " + " | ".join(pols) + " |", "|---|" + "---:|" * len(pols)]
    for net, g in tab.groupby("network"):
        s = summarise(g).set_index("policy")
        lines.append(f"| {net} ({g.problem.nunique()}) | " + " | ".join(f"{s.loc[k].regret_geomean:.3f}"
                                                                           for k in pols) + " |")
    worst = tab.pivot_table(index="problem", columns="policy", values="regret").sort_values(
        list(pols)[0], ascending=False).head(5)
    lines += ["", "Largest regrets of the first chooser:", "", "```",
              worst.to_string(float_format=lambda v: f"{v:.2f}"), "```"]
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--selector", action="append", default=[], metavar="NAME=FILE",
                    help="a selector file to judge (repeatable)")
    ap.add_argument("--measured", metavar="DIR", help="score this earlier measurement instead of measuring")
    ap.add_argument("--out", metavar="DIR", help="where to measure (default results/auto-regret-<timestamp>)")
    a = ap.parse_args(argv)
    selectors = {}
    for s in a.selector:
        name, sep, path = s.partition("=")
        if not sep or not name or not path:
            ap.error(f"--selector {s!r}: expected NAME=FILE")
        selectors[name] = path
    measured = Path(a.measured) if a.measured else measure(
        Path(a.out or f"results/auto-regret-{time.strftime('%Y%m%d-%H%M%S')}"))
    print(score(measured, selectors))
    return 0


if __name__ == "__main__":
    sys.exit(main())
