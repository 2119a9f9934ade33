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

import math
import signal
import sys
import time
import zlib
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from . import threads as _threads
from .backends import get_backend
from .flops import direct_flops
from .problem import ConvProblem
from .reference import conv2d_reference, conv_transpose2d_reference
from .results import PHASES, ResultWriter, cell_label
from .sentinel import SENTINEL, Sentinel
from .stats import summarize
from .sweep import InvalidProblem
from .timing import Bench, TimingConfig, interleave

__all__ = ["RunConfig", "make_data", "check_output", "run_sweep", "problem_fields", "Progress"]


@dataclass
class RunConfig:
    """Everything a sweep needs besides its output directory."""

    problems: list
    backends: list[str]
    threads: int = 1
    timing: TimingConfig = field(default_factory=TimingConfig)
    cell_budget_s: float = 30.0
    weight_densities: tuple = (1.0,)
    memory_limit_bytes: int | None = None
    phases: bool = True
    sentinel: bool = True
    #: problem label -> (suite name, multiplicity in its network), for roll-ups
    tags: dict = field(default_factory=dict)
    #: backend -> factor: make that backend's timed calls that many times slower by
    #: busy-waiting after each call (for checking the regression gate; recorded in the rows)
    inject: dict = field(default_factory=dict)


# ---------------------------------------------------------------------------- data
def _seed(label: str, salt: int = 0) -> int:
    return zlib.crc32(label.encode()) ^ salt


def make_data(p: ConvProblem, weight_density: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Input and weights for ``p``: integers in [-2, 2], deterministic per problem label.

    Sums of products of such values stay far below 2**24, so float32 represents every
    partial sum exactly and exact algorithms match the float64 reference bit for bit
    (benchdnn's filling strategy). With ``weight_density < 1`` a fixed-seed random
    subset of weights is zeroed (pruned kernels), the same for every backend.
    """
    rng = np.random.default_rng(_seed(p.label))
    x = rng.integers(-2, 3, size=p.src_shape).astype(p.dtype)
    w = rng.integers(-2, 3, size=p.weight_shape).astype(p.dtype)
    w[w == 0] = 1  # density is then controlled by the pruning below alone
    if weight_density < 1.0:
        keep = np.random.default_rng(_seed(p.label, 0x5EED)).random(p.weight_shape) < weight_density
        w *= keep
    return x, w


def reference_output(p: ConvProblem, x: np.ndarray, w: np.ndarray) -> np.ndarray:
    return (conv_transpose2d_reference if p.transposed else conv2d_reference)(x, w, p)


def check_output(y, ref: np.ndarray, p: ConvProblem, tol: float) -> dict:
    """Compare ``y`` with the float64 reference.

    Returns
    -------
    dict with ``status`` (passed/mistrusted/failed), ``reason``, ``max_abs_err`` and
    ``rel_err`` (``||y - ref||_2 / ||ref||_2``). A cell passes when ``rel_err <= tol``
    and no single element is off by more than ``10 * tol * max|ref|`` (so a few wrong
    edge pixels cannot hide in the norm).
    """
    if not isinstance(y, np.ndarray):
        return dict(status="failed", reason=f"returned {type(y).__name__}, not an ndarray")
    if y.shape != ref.shape:
        return dict(status="failed", reason=f"output shape {y.shape}, expected {ref.shape}")
    if y.dtype != np.dtype(p.dtype):
        return dict(status="failed", reason=f"output dtype {y.dtype}, expected {p.dtype}")
    if not np.all(np.isfinite(y)):
        return dict(status="failed", reason="output contains NaN or Inf")
    diff = y.astype(np.float64) - ref
    max_abs = float(np.max(np.abs(diff))) if diff.size else 0.0
    nref = float(np.linalg.norm(ref))
    rel = float(np.linalg.norm(diff) / nref) if nref > 0 else (0.0 if max_abs == 0 else math.inf)
    scale = float(np.max(np.abs(ref))) if ref.size else 0.0
    out = dict(max_abs_err=max_abs, rel_err=rel, tolerance=tol)
    if rel > tol:
        out.update(status="mistrusted", reason=f"relative error {rel:.3g} > tolerance {tol:.3g}")
    elif scale > 0 and max_abs > 10 * tol * scale:
        out.update(status="mistrusted",
                   reason=f"max abs error {max_abs:.3g} > 10*tol*max|ref| = {10 * tol * scale:.3g}")
    else:
        out.update(status="passed", reason="")
    return out


def problem_fields(p) -> dict:
    """The problem columns of a results row."""
    if isinstance(p, InvalidProblem):
        return dict(problem=p.label, descriptor=p.label, dtype=p.dtype,
                    direction="bwd_d" if p.transposed else "fwd")
    return dict(problem=p.label, descriptor=p.descriptor, name=p.name,
                direction="bwd_d" if p.transposed else "fwd", dtype=p.dtype,
                mb=p.mb, ic=p.ic, ih=p.ih, iw=p.iw, oc=p.oc, oh=p.oh, ow=p.ow, kh=p.kh, kw=p.kw,
                sh=p.sh, sw=p.sw, ph=p.ph, pw=p.pw, dh=p.dh, dw=p.dw, g=p.g,
                flops_direct=direct_flops(p), params=p.params)


# ---------------------------------------------------------------------------- progress
class Progress:
    """One updating status line on a terminal, plain log lines otherwise."""

    def __init__(self, total: int, stream=None, enabled: bool = True):
        self.total = total
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = enabled
        self.tty = enabled and hasattr(self.stream, "isatty") and self.stream.isatty()
        self.t0 = time.perf_counter()
        self.done = 0

    def eta(self) -> str:
        if self.done == 0:
            return "?"
        left = (time.perf_counter() - self.t0) / self.done * (self.total - self.done)
        return f"{int(left // 60)}m{int(left % 60):02d}s"

    def status(self, problem: str, backend: str, stage: str) -> None:
        if not self.tty:
            return
        line = f"[{self.done + 1}/{self.total}] {problem} | {backend} | {stage} | ETA {self.eta()}"
        self.stream.write("\r\033[K" + line[:200])
        self.stream.flush()

    def finished(self, problem: str, rows: list[dict]) -> None:
        self.done += 1
        if not self.enabled:
            return
        parts = []
        for r in rows:
            if r["status"] == "passed" and r.get("time_median_s") == r.get("time_median_s"):
                parts.append(f"{r['backend']}={_fmt_time(r['time_median_s'])}")
            else:
                parts.append(f"{r['backend']}:{r['status']}")
        msg = f"[{self.done}/{self.total}] {problem}: {' '.join(parts)} (ETA {self.eta()})"
        if self.tty:
            self.stream.write("\r\033[K")
        self.stream.write(msg + "\n")
        self.stream.flush()


def _fmt_time(s: float) -> str:
    if s is None or s != s:
        return "-"
    if s < 1e-3:
        return f"{s * 1e6:.1f}us"
    if s < 1:
        return f"{s * 1e3:.2f}ms"
    return f"{s:.2f}s"


# ---------------------------------------------------------------------------- the sweep
class _Interrupt:
    """First SIGINT: finish the current problem, then stop. Second: stop now."""

    def __init__(self):
        self.requested = False
        self._old = None

    def __enter__(self):
        try:
            self._old = signal.signal(signal.SIGINT, self._handler)
        except ValueError:  # not the main thread
            self._old = None
        return self

    def _handler(self, signum, frame):
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        sys.stderr.write("\ninterrupt: finishing the current problem, then stopping "
                         "(press Ctrl-C again to stop now)\n")

    def __exit__(self, *exc):
        if self._old is not None:
            signal.signal(signal.SIGINT, self._old)
        return False


def _time_phases(backend, plan, x, repeats: int = 5) -> dict:
    """Median seconds per phase over a few runs, for backends that report phases."""
    got = []
    for _ in range(repeats):
        ph = backend.phases(plan, x)
        if ph is None:
            return {}
        got.append(ph)
    return {f"phase_{k}_s": float(np.median([g.get(k, float("nan")) for g in got])) for k in PHASES}


def run_problem(p, cfg: RunConfig, backends: list[str], progress: Progress | None = None,
                sentinel: Callable[[], None] | None = None,
                weight_density: float = 1.0) -> tuple[list[dict], dict]:
    """Run every backend on one problem; returns (summary rows, {backend: Bench}).

    Capabilities are checked for every backend first; the data and the float64 reference
    are made only if some backend will run, so a sweep of refusals (a dense operator of
    terabytes, say) costs neither time nor memory.
    """
    base = problem_fields(p)
    base["weight_density"] = weight_density
    base["suite"], base["multiplicity"] = cfg.tags.get(p.label, ("", 1))
    label = cell_label(p.label, weight_density)
    rows: list[dict] = []
    if isinstance(p, InvalidProblem):
        rows.append(dict(base, backend="*", status="skipped", reason=f"invalid problem: {p.reason}",
                         threads=cfg.threads))
        return rows, {}
    admitted = []
    for name in backends:
        b = get_backend(name)
        if cfg.memory_limit_bytes is not None and b.capabilities.memory_limit_bytes is not None:
            b.set_memory_limit(cfg.memory_limit_bytes)
        row = dict(base, backend=name, algorithm=b.algorithm, peer=b.peer, threads=cfg.threads)
        try:
            reason = b.supports(p)
        except Exception as e:  # a broken supports() is that backend's failure only
            row.update(status="failed", reason=f"supports() raised {e.__class__.__name__}: {e}")
            rows.append(row)
            continue
        row["workspace_bytes"] = _safe(lambda: b.workspace_bytes(p))
        row["flops_executed"] = _safe(lambda: b.flops(p))
        row["flops_multiply"] = _safe(lambda: b.multiply_flops(p))
        if reason is not None:
            rows.append(dict(row, status="skipped", reason=reason))
            continue
        admitted.append((name, b, row))
    if not admitted:
        return rows, {}
    x, w = make_data(p, weight_density)
    ref = reference_output(p, x, w)
    benches: dict[str, Bench] = {}
    pending: dict[str, dict] = {}
    live = []  # keep plans and outputs alive until timing is over
    for name, b, row in admitted:
        stage = lambda s: progress.status(label, name, s) if progress else None  # noqa: E731
        try:
            stage("prepare")
            t0 = time.perf_counter()
            plan = b.prepare(p, w)
            row["prepare_s"] = time.perf_counter() - t0
            stage("verify")
            t0 = time.perf_counter()
            y = b.run(plan, x)
            row["first_run_s"] = time.perf_counter() - t0
            row["note"] = b.note(plan)
            row["flops_executed"] = _safe(lambda: b.executed_flops(plan))
            row["flops_multiply"] = _safe(lambda: b.plan_multiply_flops(plan))
            row["workspace_bytes"] = _safe(lambda: b.plan_workspace_bytes(plan))
        except MemoryError as e:
            rows.append(dict(row, status="failed", reason=f"out of memory: {e}"))
            continue
        except Exception as e:
            msg = str(e).splitlines()[0] if str(e) else ""
            rows.append(dict(row, status="failed", reason=f"{e.__class__.__name__}: {msg}"[:300]))
            continue
        chk = check_output(y, ref, p, b.capabilities.tolerance(p.dtype))
        row.update(chk)
        del y
        if chk["status"] != "passed":
            rows.append(row)
            continue
        if row["first_run_s"] > cfg.cell_budget_s:
            rows.append(dict(row, status="skipped",
                             reason=f"over budget: one run took {row['first_run_s']:.2f} s > "
                                    f"--cell-budget {cfg.cell_budget_s:g} s"))
            continue
        if cfg.phases:
            row.update(_time_phases(b, plan, x))
        run = b.run
        factor = cfg.inject.get(name)
        if factor:
            row["note"] = (row.get("note") or "") + f"; injected slowdown x{factor:g}"
            bench = Bench(lambda run=run, plan=plan, f=factor: _slowed(run, plan, x, f), cfg.timing)
        else:
            bench = Bench(lambda run=run, plan=plan: run(plan, x), cfg.timing)
        try:
            stage("warm-up")
            bench.calibrate(min(bench.warmup(), row["first_run_s"]))
        except Exception as e:
            rows.append(dict(row, status="failed", reason=f"{e.__class__.__name__}: {e}"[:300]))
            continue
        benches[name] = bench
        pending[name] = row
        live.append(plan)
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
                       gflops_effective=row["flops_direct"] / med / 1e9 if med > 0 else float("nan"))
            if bench.cpu_util > cfg.threads + 0.5:
                row["note"] = (row.get("note", "") + "; " if row.get("note") else "") + \
                    f"used {bench.cpu_util:.1f} cores with --threads {cfg.threads}"
            rows.append(row)
    order = {n: i for i, n in enumerate(backends)}
    rows.sort(key=lambda r: order.get(r["backend"], -1))
    return rows, benches


def _slowed(run, plan, x, factor: float):
    """``run(plan, x)`` made ``factor`` times slower by spinning after it (an injected regression)."""
    t0 = time.perf_counter()
    y = run(plan, x)
    end = t0 + (time.perf_counter() - t0) * factor
    while time.perf_counter() < end:
        pass
    return y


def _safe(fn):
    try:
        return fn()
    except Exception:
        return None


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
    _threads.set_threads(cfg.threads)
    sent = Sentinel() if cfg.sentinel else None
    if sent is not None and sentinel is None:
        sentinel = sent.round
    written = 0
    completed = 0
    with _Interrupt() as intr:
        for p in cfg.problems:
            for density in (cfg.weight_densities if not isinstance(p, InvalidProblem) else (1.0,)):
                label = cell_label(p.label, density)
                todo = [b for b in cfg.backends if (label, b) not in done]
                if isinstance(p, InvalidProblem):
                    todo = [] if (label, "*") in done else ["*"]
                if not todo:
                    if progress:
                        progress.done += 1
                    completed += 1
                    continue
                try:
                    rows, benches = run_problem(p, cfg, [b for b in todo if b != "*"], progress, sentinel,
                                                weight_density=density)
                except KeyboardInterrupt:
                    return dict(interrupted=True, rows=written, problems=completed)
                for r in rows:
                    writer.summary(r)
                    written += 1
                for name, bench in benches.items():
                    writer.samples(p.label, density, name, bench.iterations, bench.times)
                if sent is not None:
                    drift = sent.take()
                    if benches and drift:
                        writer.samples(p.label, density, SENTINEL, 1, drift)
                completed += 1
                if progress:
                    progress.finished(label, rows)
                if intr.requested:
                    return dict(interrupted=True, rows=written, problems=completed)
    return dict(interrupted=False, rows=written, problems=completed)
