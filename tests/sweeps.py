"""Helpers for tests that run cells and sweeps in this process, on a short timing budget."""

from __future__ import annotations

from convbench.cells import Cell, Entry
from convbench.config import SweepConfig
from convbench.executors import run_sweep
from convbench.results import ResultWriter
from convbench.runner import Context, run_cell

#: a few short rounds per cell: what is tested is the harness, not the timings
FAST = dict(round_time=1e-6, min_rounds=2, min_time=0.0, max_time=0.01)


def config(problems, backends, **kw) -> SweepConfig:
    """A sweep of ``problems`` (or :class:`Entry` s) on ``backends`` with :data:`FAST` timing."""
    entries = tuple(p if isinstance(p, Entry) else Entry(p) for p in problems)
    return SweepConfig(entries=entries, backends=tuple(backends), **{**FAST, **kw})


def sweep(out, problems, backends, **kw) -> dict:
    """Run a sweep into ``out`` locally; returns :func:`run_sweep`'s outcome."""
    w = ResultWriter(out)
    try:
        return run_sweep(config(problems, backends, **kw), w)
    finally:
        w.close()


def cell_rows(p, backends, *, density=1.0, threads=1, cache="hot", limit=None, budget_skips=None, **kw):
    """Run one cell; returns ``(rows, outcome)``. ``limit``: the cell memory limit in bytes."""
    cfg = config([p], backends, threads=(threads,), cache=(cache,), **kw)
    ctx = Context.build(cfg)
    if limit is not None:
        ctx.limit = (limit, "test")
    cell = Cell(p, density, threads, cache, primary=(threads, cache))
    out = run_cell(cell, list(backends), ctx, budget_skips)
    return out.rows(cell), out
