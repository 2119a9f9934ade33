"""Problems x backends: supports -> prepare (timed) -> check -> time -> rows on disk.

Per problem:

1. Data in benchdnn's style: integer values in [-2, 2] (weights optionally pruned
   to ``weight_density`` with a fixed seed, identically for every backend), seeded
   from the problem's label, so every backend and every rerun sees the same arrays
   and exact algorithms reproduce the float64 reference bit for bit.
2. The float64 reference output, once.
3. For each backend: ``supports`` (skipped with the reason), ``prepare`` timed as
   ``prepare_s``, one run timed as ``first_run_s`` and checked against the reference
   (``failed`` on an exception or a non-finite/ill-shaped output, ``mistrusted`` when
   finite but beyond the backend's tolerance: neither is ever timed), then a
   budget check (``skipped``, "over budget", if one run exceeds ``cell_budget``).
4. The passing backends of the problem are timed *interleaved* round by round
   (:func:`convbench.timing.interleave`), so their ratios are measured under the
   same machine conditions.
5. Rows and raw samples are appended to disk before the next problem starts.

A failure in one cell never stops the sweep. Ctrl-C (SIGINT) once: the current
problem finishes and the sweep stops with everything saved; twice: stop now.
"""

from __future__ import annotations

import itertools
import math
import signal
import socket
import sys
import time
from dataclasses import dataclass, field, replace
from typing import Callable

import numpy as np

from . import threads as _threads
from .backends import Backend, configured_backend
from .data import (CHECK_BLOCK, REF_CHUNK_BYTES, Case, check_output, harness_bytes, make_case, make_data,
                   output_bound, reference_case, reference_output, uses_weights)
from .format import fmt_bytes, fmt_time, safe_ratio
from .problem import ConvProblem
from .progress import Progress
from .results import PHASES, ResultWriter, cell_label, problem_counts
from .sentinel import SENTINEL, Sentinel
from .stats import summarize
from .sweep import InvalidProblem
from .timing import Bench, TimingConfig, interleave

__all__ = ["RunConfig", "make_data", "make_case", "check_output", "reference_output", "run_sweep", "run_problem",
           "problem_fields", "Progress", "harness_bytes", "cell_bytes", "cell_memory_limit", "Case", "CHECK_BLOCK",
           "REF_CHUNK_BYTES"]


@dataclass
class RunConfig:
    """Everything a sweep needs besides its output directory."""

    problems: list
    backends: list[str]
    #: the thread count of the cells being run (the first of ``thread_counts`` for a whole sweep)
    threads: int = 1
    #: ``--threads 1,2``: every problem is run at each count in turn (empty: ``threads`` alone)
    thread_counts: tuple = ()
    #: ``--cache hot,cold``: every problem is timed in each cache state in turn
    caches: tuple = ("hot",)
    #: the cache state of the cells being run: ``hot`` (the same buffers every call) or ``cold``
    #: (:data:`COLD_FOOTPRINT_LLC` x the last-level cache of rotated copies, see :func:`cold_copies`)
    cache: str = "hot"
    timing: TimingConfig = field(default_factory=TimingConfig)
    cell_budget_s: float = 30.0
    weight_densities: tuple = (1.0,)
    #: workspace limit (bytes) for every backend that declares one (``--memory-limit``)
    memory_limit_bytes: int | None = None
    #: algorithm settings (``fftw_effort``, ``winograd_points``, ...); each backend gets the
    #: ones its class declares in ``options``
    settings: dict = field(default_factory=dict)
    phases: bool = True
    sentinel: bool = True
    #: problem label -> (suite name, multiplicity in its network), for roll-ups
    tags: dict = field(default_factory=dict)
    #: backend -> factor: make that backend's timed calls that many times slower by
    #: busy-waiting after each call (for checking the regression gate; recorded in the rows)
    inject: dict = field(default_factory=dict)

    @property
    def sweep_threads(self) -> tuple:
        return tuple(self.thread_counts) or (self.threads,)

    def variants(self) -> list[tuple[int, str]]:
        """``(threads, cache)`` of every timing of a problem, in run order (the first is the run's own)."""
        return [(t, c) for t in self.sweep_threads for c in (self.caches or ("hot",))]

    def label(self, p, density: float, threads: int | None = None, cache: str | None = None) -> str:
        """The cell label of problem ``p`` at ``density`` in variant ``(threads, cache)``."""
        return cell_label(p.label, density, self.threads if threads is None else threads,
                          self.cache if cache is None else cache, self.sweep_threads[0], (self.caches or ("hot",))[0])


# ---------------------------------------------------------------------------- cold caches
#: cold cache: each backend's buffers (inputs, plan with its weights, output) are copied until
#: the copies span this many times the last-level cache, and calls rotate through them
COLD_FOOTPRINT_LLC = 2
#: at most this many copies (a tiny problem would otherwise need thousands of plans)
COLD_MAX_COPIES = 256
#: and no more copies once preparing them took this long (seconds)
COLD_PREPARE_S = 2.0


def operand_bytes(p) -> int:
    """Bytes of the arrays one call takes (``x``; ``dy``; ``(x, dy)``)."""
    shapes = getattr(p, "operand_shapes", None) or (p.src_shape,)
    return int(sum(int(np.prod(s, dtype=np.int64)) for s in shapes)) * p.itemsize


def cold_copies(p, cb: int, llc: int | None = None) -> int:
    """How many copies of a cell's buffers a cold-cache timing rotates through: enough that
    they span :data:`COLD_FOOTPRINT_LLC` x the last-level cache (XNNPACK's ``1 + ceil(cache /
    buffers)`` rule), 1 when one set already does, at most :data:`COLD_MAX_COPIES`."""
    from .machine import cache_bytes
    llc = llc or cache_bytes(3, default=32 << 20)
    per = max(1, operand_bytes(p) + int(cb))
    need = COLD_FOOTPRINT_LLC * llc
    if per >= need:
        return 1
    return int(min(COLD_MAX_COPIES, 1 + math.ceil(need / per)))


# ---------------------------------------------------------------------------- data
# what a cell computes on, its reference and the check live in convbench.data (imported here
# under their old names too, for callers of the runner)
def cell_bytes(p: ConvProblem, est) -> int:
    """A backend's own share of a cell: its workspace, or what prepare holds at its peak when
    that is more (unknown counts as 0), the output it returns, and its copy of the weights."""
    dst = int(np.prod(p.dst_shape, dtype=np.int64))
    ws = max((v for v in (getattr(est, "workspace_bytes", None), getattr(est, "prepare_bytes", None))
              if v is not None), default=0)
    return int(ws) + dst * p.itemsize + p.params * p.itemsize


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


def problem_fields(p) -> dict:
    """The problem columns of a results row, with every count derived from the shape."""
    if isinstance(p, InvalidProblem):
        return dict(problem=p.label, descriptor=p.label, dtype=p.dtype, direction=p.direction, kind="conv")
    return dict(problem=p.label, descriptor=p.descriptor, name=p.name, kind=p.kind, alg=getattr(p, "alg", ""),
                direction=p.direction, dtype=p.dtype,
                mb=p.mb, ic=p.ic, ih=p.ih, iw=p.iw, oc=p.oc, oh=p.oh, ow=p.ow, kh=p.kh, kw=p.kw,
                sh=p.sh, sw=p.sw, ph=p.ph, pw=p.pw, dh=p.dh, dw=p.dw, g=p.g, **problem_counts(p))


# ---------------------------------------------------------------------------- the sweep
class Terminated(KeyboardInterrupt):
    """SIGTERM: stop now (the current problem's rows are not written; every earlier one is)."""


class _Interrupt:
    """First SIGINT: finish the current problem, then stop. Second SIGINT, or SIGTERM: stop now.
    Either way every finished problem's rows are on disk and the caller prints ``--resume``."""

    def __init__(self):
        self.requested = False
        self.signal: str | None = None
        self._old: dict = {}

    def __enter__(self):
        for sig, handler in ((signal.SIGINT, self._sigint), (signal.SIGTERM, self._sigterm)):
            try:
                self._old[sig] = signal.signal(sig, handler)
            except ValueError:  # not the main thread
                pass
        return self

    def _sigint(self, signum, frame):
        self.signal = "SIGINT"
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        sys.stderr.write("\ninterrupt: finishing the current problem, then stopping "
                         "(press Ctrl-C again to stop now)\n")

    def _sigterm(self, signum, frame):
        self.requested = True
        self.signal = "SIGTERM"
        raise Terminated

    def __exit__(self, *exc):
        for sig, old in self._old.items():
            signal.signal(sig, old)
        return False


def _time_phases(backend, plan, inputs, repeats: int = 5) -> dict:
    """Median seconds per phase over a few runs, for backends that report phases."""
    got = []
    for _ in range(repeats):
        ph = backend.phases(plan, *inputs)
        if ph is None:
            return {}
        got.append(ph)
    return {f"phase_{k}_s": float(np.median([g.get(k, float("nan")) for g in got])) for k in PHASES}


def make_backends(cfg: RunConfig, names: list[str]) -> dict[str, Backend | Exception]:
    """Each named backend built once for the sweep with its settings (or the exception
    that building it raised, recorded as that backend's failure in every cell)."""
    out: dict = {}
    for name in names:
        try:
            out[name] = configured_backend(name, cfg.settings, cfg.memory_limit_bytes)
        except Exception as e:  # noqa: BLE001 - one backend's problem, not the sweep's
            out[name] = e
    return out


def run_problem(p, cfg: RunConfig, backends: list[str], progress: Progress | None = None,
                sentinel: Callable[[], None] | None = None,
                weight_density: float = 1.0, instances: dict | None = None,
                budget_skips: dict | None = None, cell_limit: tuple | None = None) -> tuple[list[dict], dict]:
    """Run every backend on one problem; returns (summary rows, {backend: Bench}).

    Capabilities are checked for every backend first; the data and the float64 reference
    are made only if some backend will run, so a sweep of refusals (a dense operator of
    terabytes, say) costs neither time nor memory. ``instances`` are the sweep's backends
    (:func:`make_backends`; built here when not given). ``budget_skips``: backend -> reason
    for backends already known to run over ``cell_budget`` here (see :class:`BudgetEvidence`);
    they are recorded as skipped without being prepared.

    Memory: before anything is allocated, each cell's footprint is estimated from the shape
    (:func:`harness_bytes` for the test data and reference, :func:`cell_bytes` for the
    backend's workspace, output and weights) and a cell above ``cell_limit`` (bytes, source;
    :func:`cell_memory_limit` when not given) is skipped with the bytes in its reason. The
    backends of a problem are timed interleaved, so their plans are alive together: a backend
    is admitted only while the harness plus every admitted plan still fit the limit.
    """
    base = problem_fields(p)
    base["weight_density"] = weight_density
    base["suite"], base["multiplicity"] = cfg.tags.get(p.label, ("", 1))
    base["threads"], base["cache"] = cfg.threads, cfg.cache
    label = cfg.label(p, weight_density)
    rows: list[dict] = []
    if isinstance(p, InvalidProblem):
        rows.append(dict(base, backend="*", status="skipped", reason=f"invalid problem: {p.reason}",
                         threads=cfg.threads))
        return rows, {}
    admitted = []
    instances = instances if instances is not None else make_backends(cfg, backends)
    kind = p.kind
    backends = [n for n in backends if getattr(instances[n], "kind", "conv") == kind]
    if not backends:
        rows.append(dict(base, backend="*", status="skipped", threads=cfg.threads,
                         reason=f"no {'pooling' if kind == 'pool' else 'convolution'} backend among those selected "
                                f"(--backends)"))
        return rows, {}
    limit, limit_src = cell_limit or cell_memory_limit(cfg.memory_limit_bytes)
    hb = harness_bytes(p)
    committed = hb  # bytes held once every admitted backend has its plan (they are timed together)
    copies: dict = {}  # backend -> buffer sets a cold-cache timing rotates through
    pnote = p.padding_note
    for name in backends:
        b = instances[name]
        if isinstance(b, Exception):
            rows.append(dict(base, backend=name, threads=cfg.threads, status="failed",
                             reason=f"cannot build the backend: {b.__class__.__name__}: {b}"[:300]))
            continue
        row = dict(base, backend=name, algorithm=b.algorithm, peer=b.peer, threads=cfg.threads)
        try:
            reason = b.supports(p)
        except Exception as e:  # a broken supports() is that backend's failure only
            row.update(status="failed", reason=f"supports() raised {e.__class__.__name__}: {e}")
            rows.append(row)
            continue
        est = _safe(lambda: b.estimate(p))
        if est is not None:
            row.update(workspace_bytes=est.workspace_bytes, flops_executed=est.flops_executed,
                       flops_multiply=est.flops_multiply)
        if reason is None and budget_skips and name in budget_skips:
            reason = budget_skips[name]
        if reason is None:
            cb = cell_bytes(p, est)
            k = cold_copies(p, cb) if cfg.cache == "cold" else 1
            if k > 1:  # every copy is a plan (weights, workspace), an output and the inputs
                cb = k * cb + (k - 1) * operand_bytes(p)
            copies[name] = k
            if hb > limit:
                reason = (f"the test data and float64 reference need {hb} bytes ({fmt_bytes(hb)}), over the "
                          f"cell memory limit of {limit} bytes ({fmt_bytes(limit)}; {limit_src})")
            elif hb + cb > limit:
                reason = (f"needs {hb + cb} bytes ({fmt_bytes(hb + cb)}) in all: test data and reference "
                          f"{fmt_bytes(hb)}, workspace, output and weights {fmt_bytes(cb)}"
                          f"{f' ({k} cold-cache copies)' if k > 1 else ''}; over the cell memory "
                          f"limit of {limit} bytes ({fmt_bytes(limit)}; {limit_src})")
            elif committed + cb > limit:  # interleaved timing keeps every admitted plan alive at once
                reason = (f"needs {cb} bytes ({fmt_bytes(cb)}) for workspace, output and weights; next to the test "
                          f"data and the plans of the backends timed with it ({fmt_bytes(committed)} in all), over "
                          f"the memory limit of {limit} bytes ({fmt_bytes(limit)}; {limit_src})")
            else:
                committed += cb
        if pnote:
            row["note"] = pnote
        if reason is not None:
            rows.append(dict(row, status="skipped", reason=reason))
            continue
        admitted.append((name, b, row))
    if not admitted:
        return rows, {}
    case = make_case(p, weight_density)
    ref = reference_case(p, case)
    bound = output_bound(p, case)
    inputs = case.inputs
    benches: dict[str, Bench] = {}
    pending: dict[str, dict] = {}
    live = []  # keep plans and outputs alive until timing is over
    def stage(name: str, text: str) -> None:
        if progress:
            progress.status(label, name, text)

    def settled(row: dict, text: str | None = None) -> None:
        """A backend of this problem is done with verification (shown on the progress bar)."""
        if progress:
            progress.backend_done(row["backend"], text or row["status"])

    for name, b, row in admitted:
        try:
            stage(name, "prepare")
            t0 = time.perf_counter()
            plan = b.prepare(p, case.constant)
            row["prepare_s"] = time.perf_counter() - t0
            stage(name, "verify")
            t0 = time.perf_counter()
            y = b.run(plan, *inputs)
            row["first_run_s"] = time.perf_counter() - t0
            row.update(note="; ".join(t for t in (pnote, plan.note) if t), flops_executed=plan.flops_executed,
                       flops_multiply=plan.flops_multiply, workspace_bytes=plan.workspace_bytes)
        except MemoryError as e:
            rows.append(dict(row, status="failed", reason=f"out of memory: {e}"))
            settled(rows[-1])
            continue
        except Exception as e:
            msg = str(e).splitlines()[0] if str(e) else ""
            rows.append(dict(row, status="failed", reason=f"{e.__class__.__name__}: {msg}"[:300]))
            settled(rows[-1])
            continue
        chk = check_output(y, ref, p, b.capabilities.tolerance(p.dtype, p), bound=bound)
        row.update(chk)
        del y
        if chk["status"] != "passed":
            rows.append(row)
            settled(row)
            continue
        settled(row, f"ok({fmt_time(row['first_run_s'], compact=True)})")
        if row["first_run_s"] > cfg.cell_budget_s:
            rows.append(dict(row, status="skipped",
                             reason=f"over budget: one run took {row['first_run_s']:.2f} s > "
                                    f"--cell-budget {cfg.cell_budget_s:g} s"))
            continue
        if cfg.phases:
            row.update(_time_phases(b, plan, inputs))
        run = b.run
        sets = [(plan, inputs)]
        if copies.get(name, 1) > 1:
            try:
                stage(name, "cold copies")
                sets = _cold_sets(b, p, case, plan, copies[name])
            except Exception as e:  # noqa: BLE001 - a copy that cannot be made fails this cell only
                rows.append(dict(row, status="failed", reason=f"making cold-cache copies: {e.__class__.__name__}: "
                                                              f"{e}"[:300]))
                continue
        if cfg.cache == "cold":
            span = len(sets) * (operand_bytes(p) + cell_bytes(p, plan))
            row["note"] = "; ".join(t for t in (row.get("note"), f"cold cache: {len(sets)} buffer set(s) rotated, "
                                                f"{fmt_bytes(span)}") if t)
        factor = cfg.inject.get(name)
        if factor:
            row["note"] = (row.get("note") or "") + f"; injected slowdown x{factor:g}"
        bench = Bench(_caller(run, sets, factor), cfg.timing)
        try:
            stage(name, "warm-up")
            # the verification run just called it: a call that long was its own warm-up
            slow = row["first_run_s"] >= cfg.timing.warmup_time
            bench.calibrate(row["first_run_s"] if slow else min(bench.warmup(), row["first_run_s"]))
        except Exception as e:
            rows.append(dict(row, status="failed", reason=f"{e.__class__.__name__}: {e}"[:300]))
            continue
        benches[name] = bench
        pending[name] = row
        live.append(sets)
    if benches:
        _threads.set_threads(cfg.threads)  # re-assert after backends imported new runtimes
        errors: dict = {}
        interleave(benches, errors=errors, extra=sentinel,
                   on_round=(lambda n, r: progress.status(label, n, f"round {r}")) if progress else None)
        for name, bench in benches.items():
            row = pending[name]
            if name in errors:
                e = errors[name]
                row.update(status="failed", reason=f"during timing: {e.__class__.__name__}: {e}"[:300])
                rows.append(row)
                continue
            s = summarize(bench.times)
            med = s["median"]
            row.update(time_min_s=s["min"], time_median_s=med, time_mean_s=s["mean"],
                       time_stddev_s=s["stddev"], time_q1_s=s["q1"], time_q3_s=s["q3"],
                       time_iqr_s=s["iqr"], rounds=s["rounds"], iterations=bench.iterations,
                       cpu_util=bench.cpu_util,
                       gflops_effective=safe_ratio(row["flops_direct"], med) / 1e9,
                       gbs_effective=safe_ratio(row["bytes_io"], med) / 1e9)
            if bench.cpu_util > cfg.threads + 0.5:
                row["note"] = (row.get("note", "") + "; " if row.get("note") else "") + \
                    f"used {bench.cpu_util:.1f} cores with --threads {cfg.threads}"
            rows.append(row)
    order = {n: i for i, n in enumerate(backends)}
    rows.sort(key=lambda r: order.get(r["backend"], -1))
    return rows, benches


def _caller(run, sets: list, factor: float | None):
    """The timed call: ``run(plan, *inputs)``, rotating through ``sets`` of (plan, inputs) when
    there are several (a cold cache), slowed ``factor`` times when an injected regression."""
    if len(sets) == 1:
        plan, inputs = sets[0]
        if factor:
            return lambda: _slowed(run, plan, inputs, factor)
        return lambda: run(plan, *inputs)
    nxt = itertools.cycle(sets).__next__
    if factor:
        def call():
            plan, inputs = nxt()
            return _slowed(run, plan, inputs, factor)
        return call

    def call():
        plan, inputs = nxt()
        return run(plan, *inputs)
    return call


def _cold_sets(b, p, case, plan, k: int) -> list:
    """``k`` (plan, inputs) sets for a cold-cache timing: the verified plan and ``k - 1`` more,
    each prepared from its own copy of the constant (weights) and given its own copy of the
    inputs; fewer when preparing them took :data:`COLD_PREPARE_S`."""
    sets = [(plan, case.inputs)]
    t0 = time.perf_counter()
    while len(sets) < k and time.perf_counter() - t0 < COLD_PREPARE_S:
        const = None if case.constant is None else np.array(case.constant, copy=True)
        sets.append((b.prepare(p, const), tuple(np.array(a, copy=True) for a in case.inputs)))
    return sets


def _slowed(run, plan, inputs, factor: float):
    """``run(plan, *inputs)`` made ``factor`` times slower by spinning after it (an injected regression)."""
    t0 = time.perf_counter()
    y = run(plan, *inputs)
    end = t0 + (time.perf_counter() - t0) * factor
    while time.perf_counter() < end:
        pass
    return y


def _safe(fn):
    try:
        return fn()
    except Exception:
        return None


class BudgetEvidence:
    """Which backends ran over ``cell_budget`` on which problems, to skip larger problems of
    the same family without running them.

    A family is every problem that differs only in input size, padding and output size (the
    rungs of a size ladder). When a backend's single run took longer than the budget on one
    rung, a later rung of the same family that does at least as many operations
    (``flops_direct``) would too; it is recorded as skipped, over budget, with the evidence
    in its reason, instead of costing a prepare and a verification run that are known to be
    over budget (measured: torch's 1024^2 31x31 single-channel cell cost 14 s to refuse).
    """

    def __init__(self, budget_s: float):
        self.budget_s = budget_s
        self.slow: dict = {}

    @staticmethod
    def family(p) -> tuple:
        return (p.mb, p.ic, p.oc, p.kh, p.kw, p.sh, p.sw, p.dh, p.dw, p.g, p.dtype, p.transposed)

    def skips(self, p, backends: list[str], density: float, variant: tuple = ()) -> dict:
        out = {}
        if isinstance(p, InvalidProblem):
            return out
        flops = problem_counts(p)["flops_direct"]
        for b in backends:
            ev = self.slow.get((b, self.family(p), density, tuple(variant)))
            if ev is not None and flops >= ev[2]:
                label, seconds, fl = ev
                out[b] = (f"over budget: one run took {seconds:.2f} s on {label}, which does "
                          f"{fl / flops if flops else 1:.2g}x this problem's operations (--cell-budget "
                          f"{self.budget_s:g} s); not run")
        return out

    def record(self, p, rows: list[dict], density: float, variant: tuple = ()) -> None:
        for r in rows:
            t = r.get("first_run_s")
            if r.get("status") == "skipped" and t is not None and t > self.budget_s:
                key = (r["backend"], self.family(p), density, tuple(variant))
                if key not in self.slow or r["flops_direct"] < self.slow[key][2]:
                    self.slow[key] = (p.label, t, r["flops_direct"])


def cells_to_run(p, label: str, backends: list[str], done: set) -> list[str]:
    """The backends still to run on problem ``p`` (cell ``label``): those of its kind (conv
    or pool) without a row on disk; ``["*"]`` for a problem that gets one row of its own (an
    invalid grid point, or no selected backend of its kind) unless that row is on disk."""
    from .backends import backend_kind
    if isinstance(p, InvalidProblem):
        return [] if (label, "*") in done else ["*"]
    mine = [b for b in backends if backend_kind(b) == p.kind]
    if not mine:
        return [] if (label, "*") in done else list(backends)  # run_problem writes the "*" row
    return [b for b in mine if (label, b) not in done]


def run_sweep(cfg: RunConfig, writer: ResultWriter, *, done: set | None = None,
              progress: Progress | None = None, sentinel: Callable[[], None] | None = None) -> dict:
    """Run every problem of ``cfg``, appending rows through ``writer``.

    Parameters
    ----------
    done : set of (cell label, backend), optional
        Cells already on disk (``--resume``); they are not run again. The cell label is the
        problem's label with the weight density when pruned (:func:`cell_label`).

    Returns
    -------
    dict
        ``interrupted`` (bool), ``rows`` written, ``problems`` completed.
    """
    done = done or set()
    written = 0
    completed = 0
    host = socket.gethostname()
    with _Interrupt() as intr:
        try:
            _threads.set_threads(cfg.threads)
            instances = make_backends(cfg, cfg.backends)
            budget = BudgetEvidence(cfg.cell_budget_s)
            limit = cell_memory_limit(cfg.memory_limit_bytes)
            sent = Sentinel() if cfg.sentinel else None
            if sent is not None and sentinel is None:
                sentinel = sent.round
            for p in cfg.problems:
                for density in (cfg.weight_densities if not isinstance(p, InvalidProblem) and uses_weights(p)
                                else (1.0,)):
                    for threads, cache in (cfg.variants() if not isinstance(p, InvalidProblem) else
                                           cfg.variants()[:1]):
                        vcfg = replace(cfg, threads=threads, cache=cache)
                        label = vcfg.label(p, density)
                        todo = cells_to_run(p, label, cfg.backends, done)
                        if not todo:
                            if progress:
                                progress.skip()
                            completed += 1
                            continue
                        if threads != _threads.get_threads():
                            _threads.set_threads(threads)
                        real = [b for b in todo if b != "*"]
                        rows, benches = run_problem(p, vcfg, real, progress, sentinel, weight_density=density,
                                                    instances=instances,
                                                    budget_skips=budget.skips(p, real, density, (threads, cache)),
                                                    cell_limit=limit)
                        budget.record(p, rows, density, (threads, cache))
                        # rounds first: a summary row on disk implies its rounds are there too
                        for name, bench in benches.items():
                            writer.samples(p.label, density, name, bench.iterations, bench.times, threads, cache)
                        if sent is not None:
                            drift = sent.take()
                            if benches and drift:
                                writer.samples(p.label, density, SENTINEL, 1, drift, threads, cache)
                        for r in rows:
                            writer.summary(dict(r, host=host, worker="local"))
                            written += 1
                        completed += 1
                        if progress:
                            progress.finished(label, rows)
                        if intr.requested:
                            return dict(interrupted=True, rows=written, problems=completed, signal=intr.signal)
        except KeyboardInterrupt:  # second Ctrl-C or SIGTERM: stop now; what was written stays
            return dict(interrupted=True, rows=written, problems=completed, signal=intr.signal or "SIGINT")
    return dict(interrupted=False, rows=written, problems=completed)
