"""The one sweep loop, and where its units run: in this process, or on a Dask cluster.

:func:`run_sweep` is the loop every executor shares. It asks :func:`convbench.cells.pending`
for the units still to run (a cell and its backends: the interleaved timing of a cell's
backends stays together in one process), feeds them to an executor, and for every outcome
that comes back, whatever the executor:

* appends the rounds to ``samples.csv`` first, then the rows to ``summary.csv`` (so a summary
  row on disk implies its rounds are there too), each stamped with the host and worker that
  measured it;
* keeps the time budget's evidence (:class:`~convbench.runner.BudgetEvidence`): a unit's
  skips are computed when the executor takes it, from every outcome recorded before;
* handles interruption: a first Ctrl-C (SIGINT) finishes what is running and stops; a second
  one, or SIGTERM, stops at once. Either way every finished row is on disk and the caller
  prints ``--resume``.

An executor is anything with ``map(config, jobs)`` (an iterator of ``(unit, outcome)`` that
pulls ``(unit, budget_skips)`` from ``jobs`` when it has room), ``status(outcome)`` (a few
words for the progress line), ``report()`` (what ``meta.json`` records of where units ran)
and ``close()``: :class:`LocalExecutor` here, :class:`~convbench.executors.dask.DaskExecutor`
on a cluster, the way ``concurrent.futures`` executors and Dask's ``Client.map`` share a shape.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time

__all__ = ["run_sweep", "LocalExecutor", "ExecutorError", "ExecutorLost", "Terminated", "run_unit", "EXECUTORS",
           "FAULT_ENV"]

#: the executors ``convbench run --executor`` accepts
EXECUTORS = ("local", "dask")

#: testing hook: a path; the first unit a worker starts while the file does not exist
#: creates it and kills its own process (as an out-of-memory kill would), once per file
FAULT_ENV = "CONVBENCH_FAULT_KILL_ONCE"


class ExecutorError(RuntimeError):
    """A cluster that cannot be reached or cannot run timed units (one line, exit 2)."""


class ExecutorLost(RuntimeError):
    """The executor went away mid-sweep (a Dask scheduler that stopped answering)."""


class Terminated(KeyboardInterrupt):
    """SIGTERM: stop now (what is running is abandoned; every finished row is on disk)."""


#: shared by nested :class:`Interrupt` contexts: once a run is stopping, further signals are
#: only noted, so that the run can release its lock and say where its rows are (``timeout``, a
#: supervisor or a terminal signals the whole process group, often more than once)
_STOPPING = {"signal": None}


def _in_finalizer(frame) -> bool:
    """True when ``frame`` (where a signal arrived) runs inside a ``__del__``."""
    while frame is not None:
        if frame.f_code.co_name == "__del__":
            return True
        frame = frame.f_back
    return False


class Interrupt:
    """SIGINT and SIGTERM while a run is in progress.

    ``finish_first`` (the sweep loop): a first SIGINT asks to finish what is running, then stop
    (:attr:`requested`); a second one raises ``KeyboardInterrupt``. Otherwise (start-up, the
    report) SIGINT raises at once. SIGTERM always raises :class:`Terminated`. After either has
    raised, every further signal is only noted until the outermost context ends, which
    restores the handlers it found.
    """

    def __init__(self, finish_first: bool = False):
        self.finish_first = finish_first
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

    @staticmethod
    def stopping() -> str | None:
        """The signal that is stopping this process's run, if one is."""
        return _STOPPING["signal"]

    def _stop(self, name: str, exc, signum, frame):
        if _in_finalizer(frame):
            # an exception raised inside a __del__ is printed ("Exception ignored in ...") and
            # swallowed (it happened with llvmlite's objects, collected while numba compiled a
            # kernel): deliver the signal again a moment later, outside the finalizer
            t = threading.Timer(0.01, os.kill, (os.getpid(), signum))
            t.daemon = True
            t.start()
            return
        self.signal = self.signal or name
        _STOPPING["signal"] = name
        raise exc

    def _sigint(self, signum, frame):
        if _STOPPING["signal"]:
            return
        if self.finish_first and not self.requested:
            self.requested, self.signal = True, "SIGINT"
            sys.stderr.write("\ninterrupt: finishing what is running, then stopping "
                             "(press Ctrl-C again to stop now)\n")
            return
        self._stop("SIGINT", KeyboardInterrupt, signum, frame)

    def _sigterm(self, signum, frame):
        if _STOPPING["signal"]:
            return
        self.requested = True
        self._stop("SIGTERM", Terminated, signum, frame)

    def __exit__(self, *exc):
        outermost = not any(isinstance(getattr(old, "__self__", None), Interrupt) for old in self._old.values())
        if self.requested and self.signal and not outermost:
            # a stop was asked for and honoured (the loop finished what was running): the run is
            # stopping now, so a further Ctrl-C while it writes its rows' wrap-up is only noted
            _STOPPING["signal"] = _STOPPING["signal"] or self.signal
        if _STOPPING["signal"] and not outermost:
            return False  # keep noting signals until the outermost context has cleaned up
        for sig, old in self._old.items():
            signal.signal(sig, old)
        if outermost:
            _STOPPING["signal"] = None
        return False


def _record(writer, unit, outcome) -> list[dict]:
    """Write a unit's outcome: rounds first, then the drift sentinel's, then the rows."""
    from ..sentinel import SENTINEL
    cell = unit.cell
    for r in outcome.results:
        if r.times:
            writer.samples(cell.key, r.backend, r.iterations, r.times)
    if outcome.drift:
        writer.samples(cell.key, SENTINEL, 1, outcome.drift)
    rows = outcome.rows(cell)
    for row in rows:
        writer.summary(row)
    return rows


def run_sweep(config, writer, executor=None, *, done=frozenset(), progress=None) -> dict:
    """Run every cell of ``config`` not in ``done`` on ``executor`` (local by default),
    appending rows through ``writer`` (see the module docstring).

    Parameters
    ----------
    done : set of row keys, optional
        Rows already on disk (``--resume``, :func:`convbench.results.row_key`): not run again.

    Returns
    -------
    dict
        ``interrupted`` (bool), ``signal`` (SIGINT/SIGTERM when one stopped it), ``lost`` (the
        executor went away), ``rows`` written, ``problems`` (cells) complete, and what the
        executor reports (``hosts``, ``units``).
    """
    from ..cells import pending
    from ..runner import BudgetEvidence
    executor = executor or LocalExecutor()
    units, complete = pending(config.cells(), list(config.backends), done)
    if progress is not None and complete:
        progress.skip(complete)
    budget = BudgetEvidence(config.cell_budget)
    out = dict(interrupted=False, rows=0, problems=complete)

    def jobs():
        for u in units:
            yield u, budget.skips(u.cell, u.backends)
    with Interrupt(finish_first=True) as intr:
        try:
            for unit, outcome in executor.map(config, jobs()):
                rows = _record(writer, unit, outcome)
                out["rows"] += len(rows)
                out["problems"] += 1
                budget.record(unit.cell, outcome.results)
                if progress is not None:
                    progress.finished(unit.cell.label, rows, extra=executor.status(outcome))
                if intr.requested:
                    out.update(interrupted=True, signal=intr.signal)
                    break
        except KeyboardInterrupt:
            out.update(interrupted=True, signal=intr.signal or "SIGINT")
        except ExecutorLost:
            out.update(interrupted=True, lost=True)
        finally:
            executor.close()
    out.update(executor.report())
    return out


# ---------------------------------------------------------------------------- in this process
def run_unit(ctx, unit, budget_skips: dict):
    """Run one unit in this process (locally, or as a Dask task) with the sweep's
    :class:`~convbench.runner.Context`: its outcome, stamped with this host and worker and the
    host's fingerprint."""
    from .. import threads as _threads
    from ..machine import host_fingerprint
    from ..runner import run_cell
    if _threads.get_threads() != unit.cell.threads:
        _threads.set_threads(unit.cell.threads)
    t0 = time.perf_counter()
    outcome = run_cell(unit.cell, list(unit.todo), ctx, budget_skips)
    fp = host_fingerprint()
    outcome.host, outcome.worker, outcome.fingerprint = fp["host"], _worker_name(), fp
    outcome.seconds = time.perf_counter() - t0
    return outcome


def _worker_name() -> str:
    if "distributed" not in sys.modules:
        return "local"
    try:
        from distributed import get_worker
        return str(get_worker().name)
    except (ImportError, ValueError):
        return "local"


class LocalExecutor:
    """Units run one after another in this process (``--executor local``, the default)."""

    def __init__(self, progress=None):
        self.progress = progress
        self.hosts: dict = {}

    def map(self, config, jobs):
        from ..runner import Context
        ctx = Context.build(config, self.progress)  # the sweep's backends, built once for its units
        for unit, skips in jobs:
            outcome = run_unit(ctx, unit, skips)
            self.hosts.setdefault(outcome.host, outcome.fingerprint)
            yield unit, outcome

    def status(self, outcome) -> str:
        return ""

    def report(self) -> dict:
        return {"hosts": dict(self.hosts)}

    def close(self) -> None:
        pass
