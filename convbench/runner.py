"""One cell, in benchdnn's steps: admit -> prepare and verify -> time -> results.

:func:`run_cell` runs every backend of a cell (a problem at one weight density, thread count
and cache state) and returns a :class:`~convbench.cells.CellOutcome`; where cells run and how
their rows reach the disk is the sweep loop's business (:mod:`convbench.executors`). The
steps, each a function of its own:

1. :func:`admit` (pure, from the shape alone, nothing allocated): the backend's capabilities
   (``supports``, a reason to skip), the time budget's evidence from smaller rungs of a
   ladder, and memory. Each cell's footprint is estimated first: :func:`~convbench.data.harness_bytes`
   for the test data and reference, :func:`cell_bytes` for the backend's workspace, output and
   weights (times the cold-cache copies); a cell above the limit (:func:`cell_memory_limit`)
   is skipped with the bytes in its reason. The backends of a cell are timed interleaved, so
   their plans are alive together: a backend is admitted only while the harness plus every
   admitted plan still fit.
2. The data in benchdnn's style (integers in [-2, 2], seeded from the problem's label, so
   every backend and every rerun sees the same arrays and exact algorithms reproduce the
   float64 reference bit for bit) and the float64 reference, once, only if some backend was
   admitted.
3. :func:`prepare_and_verify`: ``prepare`` timed as ``prepare_s``, one run timed as
   ``first_run_s`` and checked against the reference (``failed`` on an exception or a
   non-finite or ill-shaped output, ``mistrusted`` when finite but beyond the backend's
   tolerance: neither is ever timed), then the budget (``skipped``, over budget, when one run
   exceeds ``cell_budget``).
4. :func:`time_backends`: the passing backends timed interleaved round by round
   (:func:`convbench.timing.interleave`) so their ratios are measured under the same machine
   conditions. What is timed is a call built by :func:`timed_call`: cold-cache rotation
   (:func:`cold_sets`) and injected slowdowns wrap the call, they do not live in the timing.
5. :func:`finish`: the timing's summary into each result.
"""

from __future__ import annotations

import itertools
import math
import time
from dataclasses import dataclass, field

import numpy as np

from . import threads as _threads
from .backends import backend_kind, configured_backend
from .cells import STAR, Cell, CellOutcome, CellResult
from .data import harness_bytes, make_case, output_bound, reference_case, check_output
from .format import fmt_bytes, fmt_time
from .stats import summarize
from .timing import Bench, interleave, median_phases

__all__ = ["Context", "run_cell", "admit", "prepare_and_verify", "timed_call", "cold_sets", "time_backends",
           "finish", "BudgetEvidence", "make_backends", "cell_bytes", "cell_memory_limit", "cold_copies",
           "COLD_FOOTPRINT_LLC", "COLD_MAX_COPIES", "COLD_PREPARE_S"]

#: cold cache: each backend's buffers (inputs, plan with its weights, output) are copied until
#: the copies span this many times the last-level cache, and calls rotate through them
COLD_FOOTPRINT_LLC = 2
#: at most this many copies (a tiny problem would otherwise need thousands of plans)
COLD_MAX_COPIES = 256
#: and no more copies once preparing them took this long (seconds)
COLD_PREPARE_S = 2.0


# ---------------------------------------------------------------------------- what a process shares
def make_backends(config) -> dict:
    """Each backend of the sweep built once with its settings (or the exception that building
    it raised, recorded as that backend's failure in every cell)."""
    out: dict = {}
    for name in config.backends:
        try:
            out[name] = configured_backend(name, config.settings, config.memory_limit)
        except Exception as e:  # noqa: BLE001 - one backend's problem, not the sweep's
            out[name] = e
    return out


def cell_memory_limit(explicit: int | None = None) -> tuple[int, str]:
    """Bytes one cell may hold, and where the figure comes from: ``--memory-limit`` (or
    ``CONVBENCH_MEMORY_LIMIT``) when given, else the memory available now less a margin of
    max(1 GiB, 10%) for the interpreter, libraries and the rest of the machine."""
    from .machine import memory_bytes, memory_limit_env
    if explicit is not None:
        return int(explicit), "--memory-limit"
    env = memory_limit_env()
    if env is not None:
        return env, "CONVBENCH_MEMORY_LIMIT"
    avail = memory_bytes("MemAvailable") or (8 << 30)
    return int(avail - max(1 << 30, avail // 10)), "available memory less a margin of max(1 GiB, 10%)"


@dataclass
class Context:
    """What the cells of one sweep share in one process: the configuration, the backends
    (built once: their JIT, plans and wisdom stay warm), the memory limit, the drift sentinel
    timed alongside every cell and the progress display."""

    config: object
    instances: dict = field(default_factory=dict)
    limit: tuple = (0, "")
    sentinel: object = None
    progress: object = None

    @classmethod
    def build(cls, config, progress=None) -> "Context":
        from .sentinel import Sentinel
        _threads.set_threads(config.threads[0])
        return cls(config, make_backends(config), cell_memory_limit(config.memory_limit),
                   Sentinel() if config.sentinel else None, progress)

    def stage(self, cell: Cell, backend: str, text: str) -> None:
        if self.progress is not None:
            self.progress.status(cell.label, backend, text)

    def settled(self, result: CellResult, text: str | None = None) -> None:
        """A backend of the cell is done with verification (shown on the progress bar)."""
        if self.progress is not None:
            self.progress.backend_done(result.backend, text or result.status)


# ---------------------------------------------------------------------------- 1. admit
def cell_bytes(p, est) -> int:
    """A backend's own share of a cell: its workspace, or what prepare holds at its peak when
    that is more (unknown counts as 0), the output it returns, and its copy of the weights."""
    dst = int(np.prod(p.dst_shape, dtype=np.int64))
    ws = max((v for v in (getattr(est, "workspace_bytes", None), getattr(est, "prepare_bytes", None))
              if v is not None), default=0)
    weights = p.params if p.kind == "conv" else 0
    return int(ws) + (dst + weights) * p.itemsize


def cold_copies(p, cb: int, llc: int | None = None) -> int:
    """How many copies of a cell's buffers a cold-cache timing rotates through: enough that
    they span :data:`COLD_FOOTPRINT_LLC` x the last-level cache (XNNPACK's ``1 + ceil(cache /
    buffers)`` rule), 1 when one set already does, at most :data:`COLD_MAX_COPIES`."""
    from .machine import cache_bytes
    llc = llc or cache_bytes(3, default=32 << 20)
    per = max(1, p.operand_bytes + int(cb))
    need = COLD_FOOTPRINT_LLC * llc
    if per >= need:
        return 1
    return int(min(COLD_MAX_COPIES, 1 + math.ceil(need / per)))


@dataclass
class Admitted:
    """A backend admitted to a cell: its result so far and the buffer sets it will rotate."""

    backend: object
    result: CellResult
    copies: int = 1


def _memory_reason(hb: int, cb: int, committed: int, limit: tuple, copies: int) -> str | None:
    """Why a backend's footprint ``cb`` does not fit next to the harness ``hb`` and the plans
    already admitted (``committed``, which includes ``hb``), or None."""
    lim, src = limit
    over = f"over the cell memory limit of {lim} bytes ({fmt_bytes(lim)}; {src})"
    if hb > lim:
        return f"the test data and float64 reference need {hb} bytes ({fmt_bytes(hb)}), {over}"
    if hb + cb > lim:
        return (f"needs {hb + cb} bytes ({fmt_bytes(hb + cb)}) in all: test data and reference {fmt_bytes(hb)}, "
                f"workspace, output and weights {fmt_bytes(cb)}{f' ({copies} cold-cache copies)' if copies > 1 else ''}; "
                f"{over}")
    if committed + cb > lim:  # interleaved timing keeps every admitted plan alive at once
        return (f"needs {cb} bytes ({fmt_bytes(cb)}) for workspace, output and weights; next to the test data and "
                f"the plans of the backends timed with it ({fmt_bytes(committed)} in all), over the memory limit "
                f"of {lim} bytes ({fmt_bytes(lim)}; {src})")
    return None


def admit(cell: Cell, names: list[str], instances: dict, limit: tuple,
          budget_skips: dict | None = None) -> tuple[list[Admitted], list[CellResult]]:
    """Which backends run ``cell``, decided from the shape alone: ``(admitted, refused)``.

    A backend that cannot be built, whose ``supports`` raises, refuses the problem, is known
    to run over the time budget here (``budget_skips``: name -> reason) or does not fit in
    memory (see the module docstring) is refused with its reason; nothing is allocated.
    """
    p = cell.problem
    hb = harness_bytes(p)
    committed, admitted, refused = hb, [], []
    for name in names:
        b = instances[name]
        if isinstance(b, Exception):
            refused.append(CellResult(name, "failed", f"cannot build the backend: {b.__class__.__name__}: {b}"[:300]))
            continue
        res = CellResult(name, algorithm=b.algorithm, role=b.role, notes=[p.padding_note])
        try:
            reason = b.supports(p)
        except Exception as e:  # a broken supports() is that backend's failure only
            refused.append(res.fail("failed", f"supports() raised {e.__class__.__name__}: {e}"))
            continue
        est = _safe(lambda: b.estimate(p))
        if est is not None:
            res.flops_executed, res.flops_multiply = est.flops_executed, est.flops_multiply
            res.workspace_bytes = est.workspace_bytes
        reason = reason or (budget_skips or {}).get(name)
        copies = 1
        if reason is None:
            cb = cell_bytes(p, est)
            copies = cold_copies(p, cb) if cell.cache == "cold" else 1
            if copies > 1:  # every copy is a plan (weights, workspace), an output and the inputs
                cb = copies * cb + (copies - 1) * p.operand_bytes
            reason = _memory_reason(hb, cb, committed, limit, copies)
            if reason is None:
                committed += cb
        if reason is not None:
            refused.append(res.fail("skipped", reason))
        else:
            admitted.append(Admitted(b, res, copies))
    return admitted, refused


def _safe(fn):
    try:
        return fn()
    except Exception:  # noqa: BLE001 - an estimate that cannot be made is unknown, not fatal
        return None


# ---------------------------------------------------------------------------- 2. prepare and verify
def prepare_and_verify(cell: Cell, adm: Admitted, case, ref, bound, ctx: Context):
    """Prepare (timed as setup) and one run checked against the float64 reference; returns
    the plan, or None when the result did not pass (its state and reason are in
    ``adm.result``: failed, mistrusted, or skipped over the time budget)."""
    b, res, p = adm.backend, adm.result, cell.problem
    try:
        ctx.stage(cell, res.backend, "prepare")
        t0 = time.perf_counter()
        plan = b.prepare(p, case.constant)
        res.prepare_s = time.perf_counter() - t0
        ctx.stage(cell, res.backend, "verify")
        t0 = time.perf_counter()
        y = b.run(plan, *case.inputs)
        res.first_run_s = time.perf_counter() - t0
    except MemoryError as e:
        res.fail("failed", f"out of memory: {e}")
        ctx.settled(res)
        return None
    except Exception as e:  # noqa: BLE001 - a crash is this cell's failure only
        msg = str(e).splitlines()[0] if str(e) else ""
        res.fail("failed", f"{e.__class__.__name__}: {msg}"[:300])
        ctx.settled(res)
        return None
    res.notes.append(plan.note)
    res.chosen = plan.chosen
    res.flops_executed, res.flops_multiply = plan.flops_executed, plan.flops_multiply
    res.workspace_bytes = plan.workspace_bytes
    res.check = check_output(y, ref, p, b.tolerance(p), bound=bound)
    del y
    res.status, res.reason = res.check.pop("status"), res.check.pop("reason", "")
    if res.status != "passed":
        ctx.settled(res)
        return None
    ctx.settled(res, f"ok({fmt_time(res.first_run_s, compact=True)})")
    budget = ctx.config.cell_budget
    if res.first_run_s > budget:
        res.fail("skipped", f"over budget: one run took {res.first_run_s:.2f} s > --cell-budget {budget:g} s")
        return None
    return plan


# ---------------------------------------------------------------------------- 3. what is timed
def cold_sets(b, p, case, plan, k: int) -> list:
    """``k`` (plan, inputs) sets for a cold-cache timing: the verified plan and ``k - 1`` more,
    each prepared from its own copy of the constant (weights) and given its own copy of the
    inputs; fewer when preparing them took :data:`COLD_PREPARE_S`."""
    sets = [(plan, case.inputs)]
    t0 = time.perf_counter()
    while len(sets) < k and time.perf_counter() - t0 < COLD_PREPARE_S:
        const = None if case.constant is None else np.array(case.constant, copy=True)
        sets.append((b.prepare(p, const), tuple(np.array(a, copy=True) for a in case.inputs)))
    return sets


def timed_call(run, sets: list, factor: float | None = None):
    """The timed call: ``run(plan, *inputs)``, rotating through ``sets`` of (plan, inputs) when
    there are several (a cold cache), slowed ``factor`` times when an injected regression."""
    if len(sets) == 1:
        plan, inputs = sets[0]
        call = (lambda: run(plan, *inputs))
    else:
        nxt = itertools.cycle(sets).__next__

        def call():
            plan, inputs = nxt()
            return run(plan, *inputs)
    if not factor:
        return call

    def slowed():
        t0 = time.perf_counter()
        y = call()
        end = t0 + (time.perf_counter() - t0) * factor
        while time.perf_counter() < end:
            pass
        return y
    return slowed


def _timed(cell: Cell, adm: Admitted, plan, case, ctx: Context):
    """The call :func:`time_backends` times for an admitted, verified backend (its cold-cache
    copies made and its injected slowdown applied), noting both in its result."""
    b, res, p = adm.backend, adm.result, cell.problem
    sets = [(plan, case.inputs)]
    if adm.copies > 1:
        ctx.stage(cell, res.backend, "cold copies")
        sets = cold_sets(b, p, case, plan, adm.copies)
    if cell.cache == "cold":
        span = len(sets) * (p.operand_bytes + cell_bytes(p, plan))
        res.notes.append(f"cold cache: {len(sets)} buffer set(s) rotated, {fmt_bytes(span)}")
    factor = ctx.config.inject_slowdown.get(res.backend)
    if factor:
        res.notes.append(f"injected slowdown x{factor:g}")
    return timed_call(b.run, sets, factor), sets


# ---------------------------------------------------------------------------- 4. time
def time_backends(calls: dict, first_runs: dict, timing, *, sentinel=None, on_round=None) -> tuple[dict, dict]:
    """Time ``calls`` (name -> callable) interleaved, round by round; returns ``(benches,
    errors)`` (name -> the reason of a call that raised in warm-up or timing). ``first_runs``:
    the seconds of each call's verification run, which calibrates it (a call that long was its
    own warm-up)."""
    benches, errors = {}, {}
    for name, fn in calls.items():
        bench = Bench(fn, timing)
        try:
            bench.prime(first_runs[name])
        except Exception as e:  # noqa: BLE001 - this backend's failure only
            errors[name] = f"during warm-up: {e.__class__.__name__}: {e}"[:300]
            continue
        benches[name] = bench
    raised: dict = {}
    if benches:
        interleave(benches, errors=raised, extra=sentinel, on_round=on_round)
    errors.update({n: f"during timing: {e.__class__.__name__}: {e}"[:300] for n, e in raised.items()})
    return {n: b for n, b in benches.items() if n not in errors}, errors


# ---------------------------------------------------------------------------- 5. results
def finish(res: CellResult, bench: Bench, threads: int) -> CellResult:
    """A timed result: its rounds, their summary, the cores it kept busy."""
    res.times, res.stats = list(bench.times), summarize(bench.times)
    res.iterations, res.cpu_util = bench.iterations, bench.cpu_util
    if bench.cpu_util > threads + 0.5:
        res.notes.append(f"used {bench.cpu_util:.1f} cores with --threads {threads}")
    return res


def run_cell(cell: Cell, names: list[str], ctx: Context, budget_skips: dict | None = None) -> CellOutcome:
    """Every backend of ``names`` on ``cell``: one result each, in that order (see the module
    docstring); a cell with nothing to run (an invalid problem, or no backend of its kind)
    has one result of its own, backend :data:`~convbench.cells.STAR`."""
    p = cell.problem
    if not p.valid:
        return CellOutcome([CellResult(STAR, "skipped", f"invalid problem: {p.reason}")])
    names = [n for n in names if n != STAR and backend_kind(n) == p.kind]
    if not names:
        what = "pooling" if p.kind == "pool" else "convolution"
        return CellOutcome([CellResult(STAR, "skipped", f"no {what} backend among those selected (--backends)")])
    admitted, done = admit(cell, names, ctx.instances, ctx.limit, budget_skips)
    calls, first, live = {}, {}, []
    if admitted:
        case = make_case(p, cell.density)
        ref, bound = reference_case(p, case), output_bound(p, case)
        for adm in admitted:
            plan = prepare_and_verify(cell, adm, case, ref, bound, ctx)
            if plan is None:
                continue
            if ctx.config.phases:
                adm.result.phases = median_phases(lambda b=adm.backend, plan=plan: b.phases(plan, *case.inputs))
            try:
                calls[adm.result.backend], sets = _timed(cell, adm, plan, case, ctx)
            except Exception as e:  # noqa: BLE001 - a copy that cannot be made fails this cell only
                adm.result.fail("failed", f"making cold-cache copies: {e.__class__.__name__}: {e}"[:300])
                continue
            first[adm.result.backend] = adm.result.first_run_s
            live.append(sets)  # plans and outputs stay alive until timing is over
    results = {a.result.backend: a.result for a in admitted}
    _threads.set_threads(cell.threads)  # re-assert after backends imported new runtimes
    on_round = (lambda n, r: ctx.progress.status(cell.label, n, f"round {r}")) if ctx.progress else None
    benches, errors = time_backends(calls, first, ctx.config.timing, on_round=on_round,
                                    sentinel=ctx.sentinel.round if ctx.sentinel is not None else None)
    for name, reason in errors.items():
        results[name].fail("failed", reason)
    for name, bench in benches.items():
        finish(results[name], bench, cell.threads)
    drift = ctx.sentinel.take() if ctx.sentinel is not None else []
    order = {n: i for i, n in enumerate(names)}
    out = sorted(done + list(results.values()), key=lambda r: order.get(r.backend, -1))
    return CellOutcome(out, drift=list(drift) if benches else [])


# ---------------------------------------------------------------------------- the time budget
class BudgetEvidence:
    """Which backends ran over ``cell_budget`` on which problems, to skip larger problems of
    the same ladder without running them.

    A ladder is every problem that differs only in input size, padding and output size
    (:attr:`~convbench.problem.Problem.ladder_key`). When a backend's single run took longer
    than the budget on one rung, a later rung of the same ladder that does at least as many
    operations (``flops_direct``) would too; it is recorded as skipped, over budget, with the
    evidence in its reason, instead of costing a prepare and a verification run that are known
    to be over budget (measured: torch's 1024^2 31x31 single-channel cell cost 14 s to refuse).
    """

    def __init__(self, budget_s: float):
        self.budget_s = budget_s
        self.slow: dict = {}

    @staticmethod
    def _key(cell: Cell, backend: str) -> tuple:
        return (backend, cell.problem.ladder_key, cell.density, cell.threads, cell.cache)

    @staticmethod
    def _flops(cell: Cell) -> float:
        from .flops import problem_counts
        return problem_counts(cell.problem)["flops_direct"]

    def skips(self, cell: Cell, backends: list[str]) -> dict:
        """Backend -> reason, for the backends known to run over the budget on ``cell``."""
        if not cell.problem.valid:
            return {}
        flops = self._flops(cell)
        out = {}
        for b in backends:
            ev = self.slow.get(self._key(cell, b))
            if ev is not None and flops >= ev[2]:
                label, seconds, fl = ev
                out[b] = (f"over budget: one run took {seconds:.2f} s on {label}, which does "
                          f"{fl / flops if flops else 1:.2g}x this problem's operations (--cell-budget "
                          f"{self.budget_s:g} s); not run")
        return out

    def record(self, cell: Cell, results: list[CellResult]) -> None:
        """Remember the backends of ``cell`` whose single run was over the budget."""
        if not cell.problem.valid:
            return
        flops = None
        for r in results:
            t = r.first_run_s
            if r.status == "skipped" and t is not None and t > self.budget_s:
                flops = self._flops(cell) if flops is None else flops
                key = self._key(cell, r.backend)
                if key not in self.slow or flops < self.slow[key][2]:
                    self.slow[key] = (cell.problem.label, t, flops)
