"""``convbench check --against REF``: REF and the working tree measured side by side (see
:mod:`convbench.against`); the report, the verdicts and the exit status."""

from __future__ import annotations

import csv
import json
import math
import sys
import time
from pathlib import Path

from .common import EXIT_FAIL, EXIT_OK, UsageError

#: a slowdown of the head must exceed this ratio (and the run's A/A floor) to fail the gate
AGAINST_FACTOR = 1.2
#: a backend's A/A floor is its largest significant base'/base ratio on the sampled cells times this
AA_MARGIN = 1.05


def _say(msg: str, quiet: bool = False) -> None:
    if not quiet:
        print(msg, file=sys.stderr, flush=True)


def _backends(o: dict, hello: dict) -> list[str]:
    """The backends both trees have: ``--backends all`` means convbench's own (a peer is the
    same code on both sides), otherwise the list given, which both sides must have."""
    base, head = hello["base"]["backends"], hello["head"]["backends"]
    if o["backends"] == "all":
        return [b for b, role in head.items() if role == "own" and b in base]
    want = [b.strip() for b in str(o["backends"]).split(",") if b.strip()]
    missing = [b for b in want if b not in head or b not in base]
    if missing:
        raise UsageError(f"check: --backends {', '.join(missing)}: not available in "
                         f"{'both trees' if all(b not in head for b in missing) else 'the base tree'}; "
                         f"both have: {', '.join(b for b in head if b in base)}")
    return want


def _problems(suite: str) -> list[str]:
    """The problems of a shipped suite by name, or of a file of descriptors."""
    from ..suites import list_suites, load_suite
    try:
        entries = load_suite(suite, is_path=suite not in list_suites() and Path(suite).is_file())
        return [e.problem.label for e in entries]
    except ValueError as e:
        raise UsageError(f"check: --suite {suite!r}: {e}") from None


def _env(o: dict) -> dict:
    import os

    from ..threads import preset_environment
    saved = dict(os.environ)
    try:
        preset_environment(int(o["threads"][0] if isinstance(o["threads"], (list, tuple)) else o["threads"]))
        return dict(os.environ)
    finally:
        os.environ.clear()
        os.environ.update(saved)


def _threads(o: dict) -> int:
    t = o["threads"]
    t = t[0] if isinstance(t, (list, tuple)) else t
    return int(t)


def _rundata(side: dict, machine: dict):
    """Side -> backend -> SideCell as a :class:`~convbench.comparison.RunData`."""
    import numpy as np

    from ..comparison import RunData, Timed
    cells = {}
    for prob, by in side.items():
        for b, c in by.items():
            ok = c.status == "passed" and len(c.times) > 0
            cells[(prob, b)] = Timed(prob, b, float(np.median(c.times)) if ok else float("nan"),
                                     list(c.times) if ok else None, c.status if ok or c.status != "passed" else "failed")
    return RunData("check --against", "convbench", machine, cells, {}, "none")


class _Rows:
    """Every round on disk as it is measured (``rounds.csv``), and every cell's verification
    (``cells.csv``): an interrupted check keeps what it finished."""

    def __init__(self, out: Path):
        self.rounds = open(out / "rounds.csv", "w", newline="")
        self.cells = open(out / "cells.csv", "w", newline="")
        self.rw, self.cw = csv.writer(self.rounds), csv.writer(self.cells)
        self.rw.writerow(["attempt", "side", "problem", "backend", "round", "time_s"])
        self.cw.writerow(["attempt", "side", "problem", "backend", "status", "reason", "rounds", "median_s",
                          "prepare_s", "first_run_s", "max_abs_err"])

    def add(self, attempt: int, prob: str, res: dict) -> None:
        import numpy as np
        for side, by in res.items():
            for b, c in by.items():
                for i, t in enumerate(c.times):
                    self.rw.writerow([attempt, side, prob, b, i, f"{t:.6g}"])
                self.cw.writerow([attempt, side, prob, b, c.status, c.reason, len(c.times),
                                  f"{np.median(c.times):.6g}" if c.times else "", c.info.get("prepare_s", ""),
                                  c.info.get("first_run_s", ""), c.info.get("max_abs_err", "")])
        self.rounds.flush()
        self.cells.flush()

    def close(self) -> None:
        self.rounds.close()
        self.cells.close()


def run_against(o: dict) -> int:
    """The side-by-side check of ``o`` (the ``check`` options; ``o["against"]`` is the REF)."""
    from ..against import (ACCEPTED_FILE, AgainstError, Worker, WorkerFailed, aa_floor, call_all, load_accepted,
                           measure_problem, prepare_trees)
    from ..comparison import compare_runs
    from ..runner import cell_memory_limit
    quiet = o["quiet"]
    problems = _problems(o["suite"])
    out = Path(o["out"]) if o["out"] else Path("results") / f"check-{time.strftime('%Y%m%d-%H%M%S')}"
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise UsageError(f"check: --out {str(out)!r} exists and is not empty; choose another directory")
    t_start = time.perf_counter()
    try:
        trees_cm = prepare_trees(o["against"], allow_dirty=o["allow_dirty"], allow_deps_drift=o["allow_deps_drift"])
        trees = trees_cm.__enter__()
    except AgainstError as e:
        raise UsageError(f"check: {e}") from None
    workers: dict = {}
    try:
        try:
            accepted = load_accepted(Path(o["accepted"]) if o["accepted"] else trees.repo / ACCEPTED_FILE)
        except AgainstError as e:
            raise UsageError(f"check: --accepted {e}") from None
        out.mkdir(parents=True, exist_ok=True)
        _say(f"check: base {trees.base_label}, head {trees.head_label}; {len(problems)} problems of suite "
             f"{o['suite']!r}; results in {out}", quiet)
        env = _env(o)
        for side, path, label in (("base", trees.base_path, trees.base_label),
                                  ("head", trees.repo, trees.head_label),
                                  ("base'", trees.base_path, trees.base_label + " (A/A process)")):
            workers[side] = Worker(side, path, label, env, out / f"worker-{side.replace(chr(39), '2')}.log")
        hello = dict(zip(workers, call_all(list(workers.values()), "hello")))
        for side, h in hello.items():
            tree = workers[side].tree.resolve()
            if not Path(h["file"]).resolve().is_relative_to(tree):
                raise WorkerFailed(side, workers[side].label, f"imported convbench from {h['file']}, not from {tree}")
        backends = _backends(o, hello)
        limit = cell_memory_limit()[0] // len(workers)
        inject = dict(o["inject_slowdown"])
        bad = [b for b in inject if b not in backends]
        if bad:
            raise UsageError(f"check: --inject-slowdown {', '.join(bad)}: not among the backends checked "
                             f"({', '.join(backends)})")
        cfg = dict(backends=backends, threads=_threads(o), memory_limit=limit, cell_budget=o["cell_budget"],
                   round_time=o["round_time"], settings={})
        for side, w in workers.items():
            w.send("configure", **dict(cfg, inject=inject if side == "head" else {}))
        built = {side: w.receive(600) for side, w in workers.items()}
        t0 = time.perf_counter()
        _say(f"check: warming up both trees (JIT, FFT plans; untimed) on {len(backends)} backends", quiet)
        call_all(list(workers.values()), "warm", problems=problems)
        warm_s = time.perf_counter() - t0
        sample = set(problems[::max(1, round(1 / o["aa_sample"]))]) if o["aa_sample"] > 0 else set()
        rows = _Rows(out)
        sides: dict = {s: {} for s in workers}
        for i, prob in enumerate(problems):
            ws = {s: w for s, w in workers.items() if s != "base'" or prob in sample}
            t1 = time.perf_counter()
            res = measure_problem(ws, prob, backends, rounds=o["rounds"], min_rounds=max(5, o["rounds"] // 3),
                                  max_seconds=o["problem_time"])
            rows.add(0, prob, res)
            for s, by in res.items():
                sides[s][prob] = by
            n = max((len(c.times) for c in res["head"].values()), default=0)
            _say(f"check: [{i + 1}/{len(problems)}] {prob}: {n} rounds x {len(ws)} processes "
                 f"({time.perf_counter() - t1:.1f} s)", quiet)
        machine = {"cpu": None}
        pairs = [(b, sides["base"][p][b].times, c.times) for p, by in sides["base'"].items() for b, c in by.items()
                 if c.status == "passed" and sides["base"][p].get(b) and sides["base"][p][b].status == "passed"]
        aa = aa_floor(pairs, AA_MARGIN, o["alpha"])
        floor_of = aa["floors"]  # a backend never sampled gets the run's largest
        base_rd, head_rd = _rundata(sides["base"], machine), _rundata(sides["head"], machine)
        base_rd.noise = {k: floor_of.get(k[1], aa["floor"]) for k in base_rd.cells}
        factor = o["fail_above"] or AGAINST_FACTOR
        first = compare_runs(base_rd, head_rd, factor=factor, alpha=o["alpha"], normalize="none")
        suspects = {(r.problem, r.backend) for r in first.regressions}
        better = {(r.problem, r.backend) for r in first.rows if r.verdict == "improvement"}
        remeasured = []
        for k in range(o["retries"]):
            if not suspects and not better:
                break
            flagged = suspects | better
            _say(f"check: re-measuring {len(flagged)} flagged cell(s), attempt {k + 1}", quiet)
            again_b, again_h = {}, {}
            for prob in sorted({p for p, _ in flagged}):
                bks = sorted(b for p, b in flagged if p == prob)
                res = measure_problem({s: workers[s] for s in ("base", "head")}, prob, bks, rounds=o["rounds"],
                                      min_rounds=max(5, o["rounds"] // 3), max_seconds=o["problem_time"])
                rows.add(k + 1, prob, res)
                again_b[prob], again_h[prob] = res["base"], res["head"]
            rb, rh = _rundata(again_b, machine), _rundata(again_h, machine)
            rb.noise = {kk: floor_of.get(kk[1], aa["floor"]) for kk in rb.cells}
            again = compare_runs(rb, rh, factor=factor, alpha=o["alpha"], normalize="none")
            still = {(r.problem, r.backend) for r in again.regressions}
            remeasured.append({f"{p}/{b}": next((f"{r.ratio:.3f}" for r in again.rows if (r.problem, r.backend) == (p, b)),
                                                "not timed") for p, b in sorted(flagged)})
            suspects &= still
            better &= {(r.problem, r.backend) for r in again.rows if r.verdict == "improvement"}
        rows.close()
        confirmed = [r for r in first.regressions if (r.problem, r.backend) in suspects]
        acc_rows, failing = [], []
        for r in confirmed:
            rec = next((a for a in accepted if a.covers(r.problem, r.backend, trees.base_commit)), None)
            if rec is not None and r.ratio <= rec.factor:
                acc_rows.append((r, rec))
            else:
                failing.append((r, rec))
        wrong = [(p, b, sides["head"][p][b].status, sides["head"][p][b].reason)
                 for p, by in sides["base"].items() for b, c in by.items()
                 if c.status == "passed" and b in sides["head"][p]
                 and sides["head"][p][b].status in ("failed", "mistrusted")]
        fixed = [(p, b) for p, by in sides["head"].items() for b, c in by.items()
                 if c.status == "passed" and b in sides["base"][p]
                 and sides["base"][p][b].status in ("failed", "mistrusted")]
        wall = time.perf_counter() - t_start
        report = dict(base=dict(ref=trees.base_ref, commit=trees.base_commit, convbench=hello["base"]["version"]),
                      head=dict(commit=trees.head_commit, dirty=trees.dirty, convbench=hello["head"]["version"]),
                      deps_drift=trees.drift, blas=hello["head"].get("blas"), suite=o["suite"], backends=backends,
                      built={s: b for s, b in built.items()}, inject_slowdown=inject, factor=factor, alpha=o["alpha"],
                      aa=dict(aa, sampled_problems=sorted(sample), margin=AA_MARGIN),
                      thresholds={b: max(factor, floor_of.get(b, aa["floor"])) for b in backends
                                  if any(r.backend == b for r in first.rows)},  # backends with compared cells
                      warm_s=warm_s, wall_s=wall, remeasured=remeasured,
                      rows=[dict(problem=r.problem, backend=r.backend, base_s=r.base, head_s=r.new, ratio=r.ratio,
                                 low=r.low, high=r.high, p=r.p, first_verdict=r.verdict) for r in first.rows],
                      confirmed=[f"{r.problem}/{r.backend}" for r, _ in failing],
                      improvements=[f"{p}/{b}" for p, b in sorted(better)],
                      accepted=[dict(cell=f"{r.problem}/{r.backend}", ratio=r.ratio, factor=a.factor, reason=a.reason)
                                for r, a in acc_rows],
                      head_fails_verification=[dict(cell=f"{p}/{b}", status=s, reason=why) for p, b, s, why in wrong],
                      fixed=[f"{p}/{b}" for p, b in fixed])
        for row in report["rows"]:
            row["verdict"] = _final_verdict(row["first_verdict"], f"{row['problem']}/{row['backend']}", report)
        (out / "check.json").write_text(json.dumps(report, indent=2, default=str))
        text = _render(report, first)
        (out / "check.md").write_text(text)
        print(text)
        if failing or wrong:
            return EXIT_FAIL
        return EXIT_OK
    except WorkerFailed as e:
        print(f"check FAILED: {e}", file=sys.stderr)
        return EXIT_FAIL
    finally:
        for w in workers.values():
            w.close()
        trees_cm.__exit__(None, None, None)


def _fmt_ratio(x: float) -> str:
    return "-" if x != x else f"{x:.2f}x"


def _final_verdict(first: str, cell: str, rep: dict) -> str:
    """A cell's verdict after re-measurement: a first-pass regression or improvement stands only
    when every re-measurement confirmed it; a regression a reviewed record covers is accepted."""
    if first == "improvement":
        return "improvement" if cell in rep["improvements"] else "not confirmed (noise)"
    if first == "REGRESSION":
        if cell in rep["confirmed"]:
            return "REGRESSION"
        return "accepted" if any(a["cell"] == cell for a in rep["accepted"]) else "not confirmed (noise)"
    return first


def _render(rep: dict, c) -> str:
    """The check's report in Markdown (also printed)."""
    from ..format import fmt_time
    from ..reporting.document import md_table
    aa = rep["aa"]
    head = rep["head"]
    lines = ["# convbench check --against", "",
             f"- base: `{rep['base']['ref']}` = {rep['base']['commit'][:10]}",
             f"- head: working tree on {head['commit'][:10]}"
             + (f", **with uncommitted changes** (--allow-dirty): {', '.join(head['dirty'][:6])}" if head["dirty"] else ""),
             f"- suite `{rep['suite']}`, {len(rep['backends'])} backends, OpenBLAS kernels "
             f"{', '.join(rep['blas'] or []) or 'unknown'}; both trees from one virtualenv"
             + (f"; **declared dependencies differ** (--allow-deps-drift): {' | '.join(rep['deps_drift'])}"
                if rep["deps_drift"] else ""),
             f"- A/A floor: a second process of the base timed on {len(aa['sampled_problems'])} problems "
             f"({aa['cells']} cells): largest base'/base ratio {aa['largest']:.3f}, largest the U test also "
             f"called different {aa['largest_significant']:.3f}; a cell is flagged above max({rep['factor']:g}, its "
             f"backend's floor) with Mann-Whitney p < {rep['alpha']:g}, and must stay flagged on re-measurement "
             f"(improvements alike). Thresholds: "
             + ", ".join(f"{b} {t:.2f}" + (" (A/A offset)" if t > rep["factor"] else "")
                         for b, t in rep["thresholds"].items()),
             f"- wall time {rep['wall_s']:.0f} s (warm-up: JIT and plans {rep['warm_s']:.0f} s)"]
    if rep["inject_slowdown"]:
        lines.append(f"- **injected slowdown** in the head: "
                     f"{', '.join(f'{b} x{f:g}' for b, f in rep['inject_slowdown'].items())}")
    lines.append("")
    rows = []
    for r in c.rows:
        ci = "" if math.isnan(r.low) else f"[{r.low:.2f}, {r.high:.2f}]"
        verdict = _final_verdict(r.verdict, f"{r.problem}/{r.backend}", rep)
        rows.append([f"{r.problem} / {r.backend}", fmt_time(r.base) or "-", fmt_time(r.new) or "-",
                     _fmt_ratio(r.ratio), ci, "" if math.isnan(r.p) else f"{r.p:.1e}", verdict])
    lines.append(md_table(["cell", "base", "head", "head/base", "95% CI", "p", "verdict"], rows))
    extra = []
    for k, sb, sn in c.not_timed:
        extra.append(f"- not timed on a side: `{k[0]}` / {k[1]} (base {sb}, head {sn})")
    for k in c.missing_in_base:
        extra.append(f"- only in the head: `{k[0]}` / {k[1]}")
    for k in c.missing_in_new:
        extra.append(f"- only in the base: `{k[0]}` / {k[1]}")
    if extra:
        lines += [""] + extra
    if rep["accepted"]:
        lines += ["", "Accepted slowdowns (reviewed records in the accepted-slowdowns file):"]
        lines += [f"- `{a['cell']}`: {a['ratio']:.2f}x, accepted up to {a['factor']:g}x: {a['reason']}"
                  for a in rep["accepted"]]
    n_imp = len(rep["improvements"])
    lines.append("")
    if rep["head_fails_verification"]:
        lines += [f"check FAILED: `{w['cell']}` passes verification in the base but is {w['status']} in the head: "
                  f"{w['reason']}" for w in rep["head_fails_verification"]]
    if rep["confirmed"]:
        lines.append(f"check FAILED: {len(rep['confirmed'])} regression(s) confirmed on every re-measurement: "
                     + ", ".join(f"`{x}`" for x in rep["confirmed"]))
    if not rep["confirmed"] and not rep["head_fails_verification"]:
        top = max(rep["thresholds"].values(), default=rep["factor"])
        lines.append(f"check passed: {len(c.rows)} cells compared, no regression above its threshold "
                     f"(at most {top:.2f}x) persisted; {n_imp} improvement(s) confirmed on re-measurement"
                     + (f", {len(rep['accepted'])} accepted slowdown(s)"
                                                             if rep["accepted"] else "")
                     + (f"; fixed in the head: {', '.join(rep['fixed'])}" if rep["fixed"] else ""))
    return "\n".join(lines) + "\n"
