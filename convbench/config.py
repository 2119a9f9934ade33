"""A sweep's configuration, under the names of ``convbench run``'s options.

:class:`SweepConfig` holds the options that define a sweep (what to run, how to time it, with
which algorithm settings) under the same names as the command line (``--cell-budget`` is
``cell_budget``) and :func:`convbench.run` (``cell_budget=``), plus the problems they expanded
to. ``meta.json`` stores it as :meth:`SweepConfig.to_record` gives it and ``--resume`` reads it
back with :meth:`SweepConfig.from_record`: no translation in between. Records of convbench
before schema v5 (``thread_counts``, ``caches``, ``inject``, ``tags``) are read too.

Options about one invocation rather than the sweep (``--out``, ``--resume``, ``--quiet``,
``--no-plots``, ``--dry-run``, the executor's) are not part of it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from .cells import Cell, Entry
from .problem import InvalidProblem, parse_problem

__all__ = ["SweepConfig", "SETTINGS", "entry_records", "entries_of", "primary_variant"]

#: algorithm settings among the options: each backend gets the ones its class declares
SETTINGS = ("fftw_effort", "fftw_wisdom", "winograd_points", "sparse_format")


@dataclass(frozen=True)
class SweepConfig:
    """Everything a sweep needs besides where it writes (see the module docstring).

    The defaults are the command line's. ``sentinel`` and ``phases`` are harness switches of
    in-process callers (the study times single layers without them), not options.
    """

    entries: tuple = ()
    backends: tuple = ()
    # problems (as given; ``entries`` is what they expanded to)
    problem: tuple = ()
    suite: tuple = ()
    suite_file: tuple = ()
    sizes: tuple | None = None
    kernels: tuple | None = None
    rank: int | None = None
    strides: tuple | None = None
    channels: tuple | None = None
    out_channels: tuple | None = None
    batch: tuple | None = None
    padding: tuple | None = None
    pool: tuple | None = None
    dilation: tuple | None = None
    groups: tuple | None = None
    dtype: tuple | None = None
    direction: str | None = None
    weight_density: tuple = (1.0,)
    fuzz: int | None = None
    seed: int = 0
    # backends and fairness
    exclude: str = ""
    threads: tuple = (1,)
    blas_coretype: str = "auto"
    memory_limit: int | None = None
    fftw_effort: str = "measure"
    fftw_wisdom: str = "on"
    sparse_format: str = "auto"
    winograd_points: str = "lavin"
    # timing
    min_time: float = 0.2
    max_time: float = 2.0
    min_rounds: int = 5
    round_time: float = 1e-3
    cell_budget: float = 30.0
    cache: tuple = ("hot",)
    inject_slowdown: dict = field(default_factory=dict)
    # report
    baseline: str | None = None
    # harness switches (not options)
    sentinel: bool = True
    phases: bool = True

    def __post_init__(self):
        for f in ("entries", "backends", "threads", "cache", "weight_density", "problem", "suite", "suite_file"):
            v = getattr(self, f)
            if not isinstance(v, tuple):
                object.__setattr__(self, f, tuple(v) if isinstance(v, (list, tuple)) else (v,))
        if not isinstance(self.inject_slowdown, dict):
            object.__setattr__(self, "inject_slowdown", dict(self.inject_slowdown or ()))

    # ------------------------------------------------------------------ derived
    @property
    def timing(self):
        """The :class:`~convbench.timing.TimingConfig` of every cell."""
        from .timing import TimingConfig
        return TimingConfig(round_time=self.round_time, min_rounds=int(self.min_rounds), min_time=self.min_time,
                            max_time=self.max_time)

    @property
    def settings(self) -> dict:
        """The algorithm settings (:data:`SETTINGS`)."""
        return {k: getattr(self, k) for k in SETTINGS}

    @property
    def variants(self) -> list[tuple[int, str]]:
        """``(threads, cache)`` of every timing of a problem, in run order (the first is the run's own)."""
        return [(t, c) for t in self.threads for c in (self.cache or ("hot",))]

    @property
    def problems(self) -> list:
        return [e.problem for e in self.entries]

    @property
    def kinds(self) -> set:
        return {p.kind for p in self.problems} or {"conv"}

    def cells(self) -> list[Cell]:
        """Every cell of the sweep, in run order: each problem at each weight density (problems
        with weights to prune) and each variant (an invalid problem: one cell)."""
        primary = self.variants[0]
        out = []
        for e in self.entries:
            p = e.problem
            densities = self.weight_density if p.valid and p.uses_weights else (1.0,)
            for d in densities:
                for t, c in (self.variants if p.valid else self.variants[:1]):
                    out.append(Cell(p, d, t, c, e.suite, e.multiplicity, primary))
        return out

    def replace(self, **changes) -> "SweepConfig":
        return dataclasses.replace(self, **changes)

    # ------------------------------------------------------------------ records
    def to_record(self) -> dict:
        """What ``meta.json`` stores: the options as they are, and ``problems``, the entries."""
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "entries"}
        for k, v in d.items():
            if isinstance(v, tuple):
                d[k] = [list(x) if isinstance(x, tuple) else x for x in v]
        d["problems"] = entry_records(self.entries)
        return d

    @classmethod
    def from_record(cls, rec: dict) -> "SweepConfig":
        """The configuration a ``meta.json`` record holds (this schema's, or an older one's).

        Raises
        ------
        ValueError
            A record that is not a mapping or whose problems cannot be read.
        """
        if not isinstance(rec, dict):
            raise ValueError(f"the stored configuration is a {type(rec).__name__}, not a mapping")
        d = dict(rec)
        if "thread_counts" in d or isinstance(d.get("threads"), int):  # before schema v5
            d["threads"] = d.pop("thread_counts", None) or [d.get("threads") or 1]
        if "caches" in d:
            d["cache"] = d.pop("caches")
        if "inject" in d:
            d["inject_slowdown"] = d.pop("inject")
        tags = d.pop("tags", None) or {}
        d["entries"] = entries_of(d.pop("problems", []), tags)
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


def entry_records(entries) -> list:
    """The stored form of entries: a problem's label, with its suite when it has one; an
    invalid problem as its label, reason and kind."""
    out = []
    for e in entries:
        p = e.problem
        if not p.valid:
            rec = {"invalid": p.label, "reason": p.reason, "dtype": p.dtype, "direction": p.direction,
                   "kind": p.kind}
        elif e.suite:
            rec = {"problem": p.label, "suite": e.suite, "multiplicity": e.multiplicity}
        else:
            rec = p.label
        if e.suite and not p.valid:
            rec.update(suite=e.suite, multiplicity=e.multiplicity)
        out.append(rec)
    return out


def entries_of(records: list, tags: dict | None = None) -> tuple:
    """The inverse of :func:`entry_records`; ``tags`` (label -> (suite, multiplicity)) is how
    records before schema v5 kept suite membership."""
    tags = tags or {}
    out = []
    for x in records:
        if isinstance(x, str):
            p = parse_problem(x)
            suite, mult = tags.get(x, ("", 1))
        elif "invalid" in x:
            p = InvalidProblem(x["invalid"], x["reason"], x.get("dtype", "float32"),
                               x.get("direction", "bwd_d" if x.get("transposed") else "fwd"), x.get("kind", "conv"))
            suite, mult = x.get("suite", ""), x.get("multiplicity", 1)
        else:
            p = parse_problem(x["problem"])
            suite, mult = x.get("suite", ""), x.get("multiplicity", 1)
        out.append(Entry(p, suite, int(mult)))
    return tuple(out)


def primary_variant(rec: dict) -> tuple[int | None, str]:
    """The first ``(threads, cache)`` of a stored configuration, without reading its problems
    (any schema: ``threads`` a list or, before v5, an int with ``thread_counts``; ``cache`` or
    ``caches``); threads None when the record has none."""
    t = rec.get("thread_counts") or rec.get("threads")
    try:
        t = int(t[0] if isinstance(t, (list, tuple)) else t)
    except (ValueError, TypeError, IndexError):
        t = None
    caches = rec.get("cache") or rec.get("caches") or ["hot"]
    return t, str(caches[0]) if isinstance(caches, (list, tuple)) and caches else "hot"
