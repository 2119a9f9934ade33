"""What a sweep measures and what it records: the cell, its result, and the row they make.

A :class:`Cell` is one measurement's identity: a problem at one weight density, thread count
and cache state, with the suite it belongs to. It is a value, like PyTorch's ``TaskSpec``:
its label and tags are derived from its fields and never parsed back. A cell's backends each
give one :class:`CellResult` (the state benchdnn would report: passed, skipped, mistrusted or
failed, with the reason), and :meth:`CellResult.row` is the one place a cell and a result
become a ``summary.csv`` row.

:func:`pending` is the one enumeration of what a sweep still has to do: the runner, every
executor and ``--resume`` use it, so the cells of a sweep are listed in one place.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from .flops import problem_counts
from .problem import InvalidProblem, Problem

__all__ = ["Cell", "CellResult", "CellOutcome", "Entry", "Unit", "pending", "variant_tag", "cell_label",
           "CACHES", "PHASES", "STAR"]

#: cache states a cell is timed in: ``hot`` (the same buffers every call) or ``cold`` (buffers
#: rotated across more than the last-level cache between calls)
CACHES = ("hot", "cold")
#: phases a transform algorithm reports (seconds per call each)
PHASES = ("input", "multiply", "output")
#: the backend of a row that stands for a whole cell (an invalid problem, no backend of its kind)
STAR = "*"


def variant_tag(threads=None, cache: str | None = "hot", primary_threads=None, primary_cache: str = "hot") -> str:
    """What distinguishes a cell timed at another thread count or cache state than the run's
    first: ``""`` for the run's own (its first thread count and cache state), else e.g.
    ``"2 threads, cold cache"``. Takes values as a CSV holds them (NaN, text) too."""
    tags = []
    try:
        t = int(float(threads)) if threads is not None and threads == threads and threads != "" else None
        pt = int(float(primary_threads)) if primary_threads is not None else None
    except (TypeError, ValueError):
        t = pt = None
    if t is not None and pt is not None and t != pt:
        tags.append(f"{t} thread{'s' if t != 1 else ''}")
    c = str(cache or "hot") if cache == cache else "hot"
    if c != str(primary_cache or "hot"):
        tags.append(f"{c} cache")
    return ", ".join(tags)


def cell_label(problem: str, weight_density: float, variant: str = "") -> str:
    """Row label of a cell: the problem's label, plus the weight density when pruned, plus the
    variant tag (:func:`variant_tag`) when not the run's own."""
    d = float(weight_density) if weight_density == weight_density else 1.0
    label = problem if d >= 1.0 else f"{problem} @density {d:g}"
    return f"{label} @{variant}" if variant else label


@dataclass(frozen=True)
class Entry:
    """A problem of a sweep and the network it comes from (``suite``), counted
    ``multiplicity`` times in that network's roll-up."""

    problem: Problem | InvalidProblem
    suite: str = ""
    multiplicity: int = 1


@dataclass(frozen=True)
class Cell:
    """One measurement's identity (see the module docstring). ``primary`` is the run's first
    ``(threads, cache)``: a cell in it is the run's own variant and its label carries no tag."""

    problem: Problem | InvalidProblem
    density: float = 1.0
    threads: int = 1
    cache: str = "hot"
    suite: str = field(default="", compare=False)
    multiplicity: int = field(default=1, compare=False)
    primary: tuple = field(default=(1, "hot"), compare=False)

    @property
    def key(self) -> tuple:
        """What a results row records of the cell's identity: ``(problem label, density,
        threads, cache)`` (a row's key adds its backend)."""
        return (self.problem.label, float(self.density), int(self.threads), self.cache)

    @property
    def variant(self) -> str:
        return variant_tag(self.threads, self.cache, *self.primary)

    @property
    def label(self) -> str:
        return cell_label(self.problem.label, self.density, self.variant)

    @property
    def layer(self) -> str:
        """The layer the cell's problem is a pass of: its label without the direction knob, so
        a layer's fwd, bwd_d and bwd_w cells share it (network roll-ups sum them)."""
        p = self.problem
        return p.replace(direction="fwd").label if p.valid else p.label

    def row_fields(self) -> dict:
        """The cell's columns of a results row: the problem's, its counts, the cell's own."""
        p = self.problem
        base = p.row_fields()
        if p.valid:
            base.update(problem_counts(p))
        return dict(base, layer=self.layer, weight_density=self.density, threads=self.threads, cache=self.cache,
                    suite=self.suite, multiplicity=self.multiplicity)


@dataclass
class CellResult:
    """What one backend did on one cell. ``notes`` are joined into the row's ``note``; ``times``
    (seconds per call, one per round) go to ``samples.csv``, their summary into the row."""

    backend: str
    status: str = "passed"
    reason: str = ""
    algorithm: str = ""
    role: str = ""
    chosen: str = ""
    notes: list = field(default_factory=list)
    prepare_s: float | None = None
    first_run_s: float | None = None
    flops_executed: float | None = None
    flops_multiply: float | None = None
    workspace_bytes: int | None = None
    check: dict = field(default_factory=dict)
    phases: dict = field(default_factory=dict)
    times: list = field(default_factory=list)
    stats: dict = field(default_factory=dict)
    iterations: int | None = None
    cpu_util: float | None = None

    def fail(self, status: str, reason: str) -> "CellResult":
        """This result ending in ``status`` (skipped, failed, mistrusted) with ``reason``."""
        self.status, self.reason = status, reason
        return self

    def row(self, cell: Cell, host: str = "", worker: str = "") -> dict:
        """The ``summary.csv`` row of this result on ``cell`` (the one place rows are made)."""
        r = dict(cell.row_fields(), backend=self.backend, algorithm=self.algorithm, role=self.role,
                 peer=self.role == "peer" if self.role else None, chosen=self.chosen, status=self.status,
                 reason=self.reason, note="; ".join(n for n in dict.fromkeys(self.notes) if n),
                 prepare_s=self.prepare_s, first_run_s=self.first_run_s, flops_executed=self.flops_executed,
                 flops_multiply=self.flops_multiply, workspace_bytes=self.workspace_bytes,
                 iterations=self.iterations, cpu_util=self.cpu_util, host=host, worker=worker, **self.check)
        if self.phases:
            r.update({f"phase_{k}_s": self.phases.get(k, float("nan")) for k in PHASES})
        if self.stats:
            med = self.stats["median"]
            r.update(time_min_s=self.stats["min"], time_median_s=med, time_mean_s=self.stats["mean"],
                     time_stddev_s=self.stats["stddev"], time_q1_s=self.stats["q1"], time_q3_s=self.stats["q3"],
                     time_iqr_s=self.stats["iqr"], rounds=self.stats["rounds"],
                     gflops_effective=_rate(r.get("flops_direct"), med) / 1e9,
                     gbs_effective=_rate(r.get("bytes_io"), med) / 1e9)
        return r


def _rate(amount, seconds) -> float:
    try:
        return float(amount) / float(seconds) if seconds and not math.isnan(float(amount)) else float("nan")
    except (TypeError, ValueError):
        return float("nan")


@dataclass
class CellOutcome:
    """A cell's results in backend order, the drift sentinel's rounds timed alongside them, and
    where it was measured (``seconds``: the unit's wall time there)."""

    results: list
    drift: list = field(default_factory=list)
    host: str = ""
    worker: str = ""
    seconds: float = float("nan")
    #: what makes the host's times comparable (:func:`convbench.machine.host_fingerprint`)
    fingerprint: dict | None = None

    def rows(self, cell: Cell) -> list[dict]:
        return [r.row(cell, self.host, self.worker) for r in self.results]


@dataclass(frozen=True)
class Unit:
    """A cell and the backends still to run on it, in sweep order (``index``)."""

    index: int
    cell: Cell
    todo: tuple

    @property
    def backends(self) -> list[str]:
        """The real backends of :attr:`todo` (without the whole-cell :data:`STAR`)."""
        return [b for b in self.todo if b != STAR]


def pending(cells, backends: list[str], done=frozenset(), kind_of=None) -> tuple[list[Unit], int]:
    """The units a sweep still has to run, in sweep order, and how many cells are complete.

    A cell's todo is its kind's backends (``kind_of(name)``: conv or pool) without a row in
    ``done`` (keys ``cell.key + (backend,)``); a cell that gets one row of its own (an invalid
    problem, or none of the backends runs its kind) has the todo ``(STAR,)`` until that row
    is on disk.
    """
    if kind_of is None:
        from .backends import backend_kind as kind_of
    units, complete = [], 0
    for cell in cells:
        p = cell.problem
        mine = [b for b in backends if p.valid and kind_of(b) == p.kind] or [STAR]
        todo = tuple(b for b in mine if cell.key + (b,) not in done)
        if todo:
            units.append(Unit(len(units), cell, todo))
        else:
            complete += 1
    return units, complete
