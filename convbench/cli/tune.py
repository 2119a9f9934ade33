"""``convbench tune DIR...``: fit this machine's selector from measured result directories
and store it where ``backend="auto"`` finds it; ``--evaluate`` judges it by regret."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from .common import EXIT_OK, UsageError, _text, option, threads_arg

NAME = "tune"
HELP = "fit the algorithm selector for this machine from result directories (and evaluate it)"
DESCRIPTION = ("Reads the passed rows of one or more result directories (fuzzed runs and suites), fits one "
               "model of log-time per backend for this machine, dtype, thread count and direction, and stores "
               "it versioned under ~/.cache/convbench/selectors/ (or --out). backend='auto' in a new process "
               "finds it there, but only when it beats the built-in rules' regret on held-out problems by more "
               "than the measurement noise; otherwise the rules stay and tune says why. --collect measures "
               "the data first. --evaluate reports top-1 accuracy and regret (geomean, p95, max) on held-out "
               "problems against fixed baselines.")
PRELOAD = True

def _minutes(v) -> float:
    import argparse
    try:
        m = float(v)
    except (TypeError, ValueError):
        m = float("nan")
    if not 0 < m < 24 * 60:
        raise argparse.ArgumentTypeError(f"{v!r} is not a budget; expected minutes above 0 and below 1440, e.g. 10")
    return m


OPTIONS = [
    option("dtype", _text, metavar="DTYPE", help="fit rows of this dtype (default: the only or most common)"),
    option("threads", threads_arg, metavar="N", help="fit rows of this thread count (default: the only or most "
                                                     "common)"),
    option("direction", _text, default="fwd", metavar="fwd|bwd_d|bwd_w", help="the pass to fit (fwd)"),
    option("model", _text, default="auto", metavar="auto|linear|trees",
           help="model kind; auto cross-validates both and keeps the lower regret (default)"),
    option("candidates", _text, metavar="LIST", help="backends to choose among (default: convbench's own)"),
    option("out", _text, metavar="FILE", help="selector file to write (default: this machine's in "
                                              "~/.cache/convbench/selectors/)"),
    option("evaluate", None, action="flag", help="also judge the selector: k-fold, leave-one-network-out and "
                                                 "--holdout regret, baselines, decision map"),
    option("holdout", _text, action="append", metavar="DIR",
           help="result directory held out of fitting and judged (repeatable)"),
    option("report", _text, metavar="DIR", help="where --evaluate writes (default results/tune-<timestamp>)"),
    option("collect", None, action="flag",
           help="first measure what a trustworthy selector needs on this machine (the shipped network suites, "
                "then the fuzzer at every rank) within --budget, then fit, judge and install"),
    option("budget", _minutes, metavar="MINUTES", help="how long --collect measures (default 10)"),
    option("quiet", None, action="flag", help="no progress lines"),
]


def setup(p) -> None:
    p.add_argument("dirs", nargs="*", metavar="DIR", help="result directories to fit on (optional with --collect)")
    for o in OPTIONS:
        o.add_to(p)


def _overhead() -> dict:
    """Selection overhead of backend='auto' per call, three ways: the cached resolution a
    repeated call pays (the API's auto step alone), the end-to-end difference of
    conv2d(backend='auto') against naming its choice (interleaved rounds, the fastest of each), and the first
    call on a new shape (capability checks and the model's prediction)."""
    import numpy as np

    from .. import api
    from ..fuzz import fuzz_problems
    from ..problem import ConvProblem
    from ..select import auto
    out = {}
    p = ConvProblem(mb=1, ic=16, oc=16, ih=16, iw=16, kh=3, kw=3, ph=1, pw=1)
    api._resolve(p, "auto")
    n = 20000
    t0 = time.perf_counter()
    for _ in range(n):
        api._resolve(p, "auto")
    out["cached resolution"] = (time.perf_counter() - t0) / n
    x = np.random.default_rng(0).standard_normal((1, 16, 16, 16)).astype(np.float32)
    w = np.random.default_rng(1).standard_normal((16, 16, 1, 1)).astype(np.float32)
    name = auto.choose(x, w)
    samples = {"auto": [], "named": []}
    for r in range(31):
        for kind in (("auto", "named") if r % 2 == 0 else ("named", "auto")):
            b = "auto" if kind == "auto" else name
            t0 = time.perf_counter()
            for _ in range(200):
                api.conv2d(x, w, backend=b)
            samples[kind].append((time.perf_counter() - t0) / 200)
    out[f"end to end, conv2d 1x16x16x16 1x1 ({name})"] = float(min(samples["auto"]) - min(samples["named"]))
    probs = fuzz_problems(30, 12345)
    for q in probs[:3]:
        auto.choose_for_problem(q)  # imports, first predictions
    t0 = time.perf_counter()
    for q in probs[3:]:
        auto.choose_for_problem(q)
    out["first call on a new shape"] = (time.perf_counter() - t0) / len(probs[3:])
    return out


def run(*, dirs=(), dtype=None, threads=None, direction="fwd", model="auto", candidates=None, out=None,
        evaluate=False, holdout=(), report=None, quiet=False, collect=False, budget=None) -> int:
    from ..select import auto
    from ..select.data import TuneError, load_measurements
    from ..select.model import KINDS
    log = (lambda m: None) if quiet else (lambda m: print(m, file=sys.stderr, flush=True))
    if direction not in ("fwd", "bwd_d", "bwd_w"):
        raise UsageError(f"tune: --direction {direction!r}: accepted: fwd, bwd_d, bwd_w")
    if model not in ("auto",) + KINDS:
        raise UsageError(f"tune: --model {model!r}: accepted: auto, {', '.join(KINDS)}")
    if dtype is not None and dtype not in ("float32", "float64"):
        raise UsageError(f"tune: --dtype {dtype!r}: accepted: float32, float64")
    if budget is not None and not collect:
        raise UsageError("tune: --budget sets how long --collect measures; accepted only with --collect")
    if not dirs and not collect:
        raise UsageError("tune: no result directories given; accepted: DIR... (measured with `convbench run`), "
                         "or --collect to measure what a selector needs first")
    dirs = list(dirs)
    if collect:
        from .tune_collect import collect as run_collect
        got, status = run_collect(budget_min=DEFAULT_BUDGET_MIN if budget is None else budget, dtype=dtype,
                                  threads=threads, direction=direction, log=log)
        if status != EXIT_OK:
            return status
        dirs += got
    warn = (lambda m: print(m, file=sys.stderr))
    try:
        meas = load_measurements(dirs, dtype=dtype, threads=threads, direction=direction, warn=warn)
        held = load_measurements(holdout, dtype=meas.dtype, threads=meas.threads, direction=direction,
                                 warn=warn) if holdout else None
    except TuneError as e:
        raise UsageError(str(e)) from None
    cands = _candidates(meas, candidates, set(auto.own_candidates("conv")))
    if len(meas.times) < 10:
        raise UsageError(f"tune: only {len(meas.times)} problems with passed rows for {meas.dtype}, "
                         f"{meas.threads} thread(s), {direction}; at least 10 are needed (run `convbench run --fuzz "
                         f"200` first, or `convbench tune --collect`)")
    log(f"tune: {len(meas.times)} problems x {len(cands)} candidate backends ({meas.dtype}, {meas.threads} thread(s), "
        f"{direction}) from {len(dirs)} director{'y' if len(dirs) == 1 else 'ies'}")
    kind, model_cv, tables = _choose_kind(meas, held, cands, KINDS if model == "auto" else (model,), log)
    path, sel, verdicts = _install(meas, cands, kind, model_cv, tables, out, log)
    if evaluate:
        _evaluate(meas, held, cands, sel, kind, model_cv, tables, verdicts, path, report)
    return EXIT_OK


#: how long ``tune --collect`` measures by default, in minutes
DEFAULT_BUDGET_MIN = 10.0


def _candidates(meas, candidates, own) -> list:
    if not candidates:
        return [c for c in meas.times.columns if c in own]
    cands = [c.strip() for c in candidates.split(",") if c.strip()]
    bad = [c for c in cands if c not in meas.times.columns]
    if bad:
        raise UsageError(f"tune: --candidates {bad[0]!r} has no passed rows here; accepted: "
                         f"{', '.join(meas.times.columns)}")
    return cands


def _score(tabs) -> tuple:
    """What ranks model kinds: the selector's regret geomean on held-out networks when any
    were measured (leave-one-network-out), else on held-out problems (k-fold)."""
    from ..select.evaluate import summarise
    key = "lono" if not tabs["lono"].empty else "kfold"
    s = summarise(tabs[key]).set_index("policy").loc["selector"]
    return key, s


def _choose_kind(meas, held, cands, kinds, log):
    """Judge every model kind on held-out problems and keep the lowest regret. With several
    kinds they are compared as bare models (one fit per fold); the kept kind is then judged
    again with its confidence fallback, which is what auto runs."""
    from ..select.evaluate import evaluate_protocols
    model_cv = {}
    for k in kinds:
        tabs = evaluate_protocols(meas, cands, k, k=5, holdout=held, confidence=len(kinds) == 1)
        key, s = _score(tabs)
        model_cv[k] = dict(regret_geomean=float(s.regret_geomean), regret_p95=float(s.regret_p95),
                           top1=float(s.top1), protocol=key, protocols=tabs)
        log(f"tune: {k}: {'leave-one-network-out' if key == 'lono' else '5-fold'} regret geomean "
            f"{s.regret_geomean:.3f}, p95 {s.regret_p95:.3f}, top-1 {s.top1:.1%}")
    kind = min(model_cv, key=lambda k: model_cv[k]["regret_geomean"])
    if len(kinds) > 1:
        tabs = evaluate_protocols(meas, cands, kind, k=5, holdout=held)
        key, s = _score(tabs)
        model_cv[kind + " + rules when unsure"] = dict(regret_geomean=float(s.regret_geomean),
                                                       regret_p95=float(s.regret_p95), top1=float(s.top1),
                                                       protocol=key, protocols=tabs)
        log(f"tune: {kind} deferring to the rules when unsure: regret geomean {s.regret_geomean:.3f}, p95 "
            f"{s.regret_p95:.3f}; the rules decided {s.fallback:.1%} of the held-out problems")
        return kind, model_cv, tabs
    return kind, model_cv, model_cv[kind]["protocols"]


def _install(meas, cands, kind, model_cv, tables, out, log):
    """Fit on everything and write the selector if it beat the rules in every protocol;
    otherwise record that the rules stay. Returns (path, selector or None, verdicts)."""
    from ..select import auto, store
    from ..select.judge import advice, judge
    from ..select.model import NewerSelectorFile, fit_selector, rules_record
    verdicts = judge(tables)
    for v in verdicts:
        log("tune: " + v.line())
    evaluation = {k: {m: v for m, v in d.items() if m != "protocols"} for k, d in model_cv.items()}
    evaluation["chosen"] = kind
    evaluation["judged"] = [v.as_dict() for v in verdicts]
    why = _why_not(verdicts)
    path = Path(out) if out else auto.default_path()
    if why is None:
        sel = fit_selector(meas, kind, cands)
        sel.evaluation = evaluation
    else:
        sel = None
        existing = _fitted_entry(path, meas)
        if existing is not None:
            print(f"tune: kept the installed {existing.kind} selector of {existing.created} at {path}: the new "
                  f"{kind} fit is not installed: {why}; {advice(verdicts, tables, set(meas.suite.values()))}")
            return path, None, verdicts
    entry = sel if sel is not None else rules_record(meas, evaluation)
    try:
        path, rev = store.write(path, entry)
    except NewerSelectorFile as e:
        raise UsageError(f"tune: {str(path)!r} was {e}; it is left as it is (write elsewhere with --out)") from None
    except OSError as e:
        raise UsageError(f"tune: cannot write {str(path)!r} ({e.strerror})") from None
    head = next((v for v in verdicts if v.protocol == "lono"), verdicts[-1] if verdicts else None)
    if sel is not None:
        print(f"tune: installed the {kind} selector for {meas.dtype}, {meas.threads} thread(s), {meas.direction}: "
              f"expected regret {head.selector:.3f} ({head.protocol}) against the built-in rules' {head.rules:.3f}; "
              f"written to {path} (revision {rev})")
    else:
        print(f"tune: kept the built-in rules: the fitted {kind} selector is not installed: {why}; "
              f"{advice(verdicts, tables, set(meas.suite.values()))} (recorded in {path})")
    return path, sel, verdicts


def _why_not(verdicts) -> str | None:
    """Why a fitted selector may not replace the rules (None: it may). It must beat them in
    every protocol, and one protocol must have judged it on real layers (networks held out,
    or --holdout): a fuzz-fitted model that wins on fuzzed problems can still lose on real
    layers, which a user cannot see."""
    if not verdicts:
        return "no protocol judged it"
    lost = next((v for v in verdicts if not v.passed), None)
    if lost is not None:
        return (f"its {lost.protocol} regret {lost.selector:.3f} does not beat the rules' {lost.rules:.3f} by more "
                f"than the noise margin of {100 * (2 ** lost.margin - 1):.1f}%")
    if not any(v.protocol in ("lono", "holdout") for v in verdicts):
        v = verdicts[0]
        return (f"it beat them on fuzzed problems ({v.protocol} {v.selector:.3f} against {v.rules:.3f}), but no "
                f"network layers were measured to judge it on real ones")
    return None


def _fitted_entry(path: Path, meas):
    """The fitted selector already stored at ``path`` for this dtype, thread count and direction."""
    from ..select import store
    from ..select.model import RULES, SelectorFileError
    if not path.is_file():
        return None
    try:
        for s in store.entries(path):
            if (s.dtype, s.threads, s.direction) == (meas.dtype, meas.threads, meas.direction) and s.kind != RULES:
                return s
    except SelectorFileError:
        return None
    return None


def _evaluate(meas, held, cands, sel, kind, model_cv, tables, verdicts, path, report):
    """``--evaluate``: the report of the chosen kind's protocols, selection overhead and measure mode's cost."""
    import os

    from ..select import auto
    from ..select.evaluate import summarise
    from ..select.model import fit_selector
    judged = sel if sel is not None else fit_selector(meas, kind, cands)
    rdir = Path(report) if report else Path("results") / f"tune-{time.strftime('%Y%m%d-%H%M%S')}"
    if rdir.exists() and any(rdir.iterdir()):
        raise UsageError(f"tune: --report {str(rdir)!r} is not empty; expected a new or empty directory")
    auto.reset()
    if sel is not None:
        os.environ["CONVBENCH_SELECTOR"] = str(path)
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the rules' "no selector" warning: tune has just said why
        overhead = _overhead()
    measure = _measure_costs(held if held is not None else meas, judged, cands)

    from ..backends import get_backend
    mapped = {c: get_backend(c) for c in cands}
    for b in mapped.values():  # the map asks about declared capabilities (data), not this machine's
        b._memory_limit = None  # free memory nor the FFT's plan search (67 ms a point)
        b._supports = lambda p: None

    def admissible(p):
        return [c for c, b in mapped.items() if b.supports(p) is None]
    from ..select.report import write_evaluation
    w = write_evaluation(rdir, judged, dict(tables), meas, admissible, overhead=overhead,
                         model_cv=model_cv, measure=measure, verdicts=verdicts, installed=sel is not None)
    for key in ("holdout", "kfold", "lono"):
        if key in tables and not tables[key].empty:
            s = summarise(tables[key])
            print(f"{key}:")
            for _, r in s.iterrows():
                print(f"  {r.policy:28s} n={int(r.problems):4d} top-1 {r.top1:6.1%}  regret geomean "
                      f"{r.regret_geomean:.3f} p95 {r.regret_p95:.3f} max {r.regret_max:.2f}  "
                      f"geomean time {r.time_geomean_s * 1e3:.3f} ms")
    print("selection overhead of backend='auto': " + ", ".join(f"{k} {v * 1e6:.1f} us"
                                                                 for k, v in overhead.items()))
    print(f"evaluation: {w['md']} and {w['html']}")


def _measure_costs(meas, sel, cands):
    """Measure mode's cost on measured problems: the first call times every admissible
    candidate once (prepare + first run, as measured), against the saving per call over the
    selector's pick."""
    import pandas as pd
    if meas.first_call is None:
        return pd.DataFrame()
    rows = []
    for lab in meas.times.index:
        t = meas.times.loc[lab, [c for c in cands if c in meas.times.columns]].dropna()
        if t.empty:
            continue
        fc = meas.first_call.loc[lab, t.index].fillna(0.0)
        win = t.idxmin()
        pick = sel.choose(meas.problems[lab], list(t.index)) or win
        overhead = float(fc.sum() + 2 * t.sum() - t[win])
        saving = float(t[pick] - t[win])
        rows.append(dict(problem=lab, chosen=win, model_choice=pick, overhead_s=overhead, saving_s=saving,
                         calls_to_repay=overhead / saving if saving > 0 else float("inf")))
    df = pd.DataFrame(rows)
    if df.empty:
        return df
    return df.sort_values("saving_s", ascending=False).head(15) if len(df) > 15 else df
