"""Where a sweep's units run: in this process (``local``) or on a Dask cluster (``dask``).

The unit of work is one problem at one weight density with all its backends: the
interleaved timing of a problem's backends stays together in one process, as in a local
run. On Dask each unit is a task that asks for the worker resource ``bench=1``; a worker
started with ``--resources bench=1`` (``--workers N`` starts a local cluster so) runs one
timed unit at a time. Backends (their JIT, FFTW wisdom and plan caches) are built once
per worker process and reused by every unit that process runs.

Rows stream back as units finish and are appended to the one result directory (samples
first, then the summary rows, as in a local run), each stamped with the ``host`` and
``worker`` that measured it; nothing is held only in memory. A worker that dies mid-unit
has the unit rescheduled by Dask up to ``retries`` times, after which its cells are
recorded as ``failed`` with the reason. Ctrl-C cancels the pending units and keeps the
finished ones; a scheduler that goes away ends the sweep the same way. Either way the
caller prints ``--resume``.

One unit per worker is in flight (the next is submitted when one finishes), so no unit
waits on a worker behind another, and the cell-budget evidence (a ladder's rung over
budget skips its larger rungs) still applies to units submitted later.
"""

from __future__ import annotations

import collections
import logging
import os
import socket
import time
from dataclasses import dataclass, replace


__all__ = ["ExecutorError", "Unit", "plan_units", "host_fingerprint", "run_unit", "run_sweep_dask", "connect",
           "probe_scheduler",
           "EXECUTORS", "FAULT_ENV"]

#: the executors ``convbench run --executor`` accepts
EXECUTORS = ("local", "dask")

#: testing hook: a path; the first unit a worker starts while the file does not exist
#: creates it and kills its own process (as an out-of-memory kill would), once per file
FAULT_ENV = "CONVBENCH_FAULT_KILL_ONCE"

#: seconds a ``--scheduler`` address gets to answer before the run gives up
CONNECT_TIMEOUT_S = 5


class ExecutorError(RuntimeError):
    """A cluster that cannot be reached or cannot run timed units (one line, exit 2)."""


@dataclass(frozen=True)
class Unit:
    """One problem at one weight density and the backends still to run on it."""

    index: int
    problem: object
    density: float
    label: str
    todo: tuple
    threads: int = 1
    cache: str = "hot"

    @property
    def variant(self) -> tuple:
        return (self.threads, self.cache)


def plan_units(cfg, done: set) -> tuple[list[Unit], int]:
    """The sweep's units in sweep order, leaving out cells already on disk; returns
    ``(units, problems already complete)``."""
    from .data import uses_weights
    from .runner import cells_to_run
    from .sweep import InvalidProblem
    units, complete = [], 0
    for p in cfg.problems:
        dens = cfg.weight_densities if not isinstance(p, InvalidProblem) and uses_weights(p) else (1.0,)
        for density in dens:
            for threads, cache in (cfg.variants() if not isinstance(p, InvalidProblem) else cfg.variants()[:1]):
                label = cfg.label(p, density, threads, cache)
                todo = tuple(cells_to_run(p, label, cfg.backends, done))
                if todo:
                    units.append(Unit(len(units), p, density, label, todo, threads, cache))
                else:
                    complete += 1
    return units, complete


_FINGERPRINT: dict | None = None


def host_fingerprint() -> dict:
    """What makes this process's timings comparable with another's: the host, CPU, BLAS
    library and kernel set, the FFTW build and the library versions (cached per process)."""
    global _FINGERPRINT
    if _FINGERPRINT is None:
        from .machine import fftw_build, library_versions, machine_info
        m = machine_info()
        blas = m.get("blas", {}) or {}
        fftw = fftw_build() or {}
        _FINGERPRINT = dict(
            host=socket.gethostname(), cpu_model=m.get("cpu_model"), cores=m.get("cores"),
            blas=[f"{lib.get('internal_api')} {lib.get('version')} ({lib.get('architecture')})"
                  for lib in blas.get("libraries", [])],
            fftw=fftw.get("version") if isinstance(fftw, dict) else str(fftw),
            versions=library_versions())
    return _FINGERPRINT


def comparable(fp: dict) -> tuple:
    """The parts of a fingerprint two hosts must share for their times to share a table."""
    return (fp.get("cpu_model"), tuple(fp.get("blas") or ()), fp.get("fftw"),
            tuple(sorted((fp.get("versions") or {}).items())))


# ---------------------------------------------------------------------------- worker side
_STATE: dict = {}


def _worker_name() -> str:
    try:
        from distributed import get_worker
        w = get_worker()
        return str(w.name)
    except (ImportError, ValueError):
        return "local"


def _maybe_fault() -> None:
    path = os.environ.get(FAULT_ENV)
    if not path:
        return
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        return
    os.write(fd, f"{os.getpid()}\n".encode())
    os.close(fd)
    os._exit(137)  # as the kernel's OOM killer would end it: no cleanup, no reply


def run_unit(cfg, unit: Unit, budget_skips: dict) -> dict:
    """Run one unit in this process (a Dask task): rows, timed rounds and the sentinel's
    drift, stamped with this host and worker. Backends and the drift sentinel are built once
    per process for the sweep's settings and kept for its later units."""
    from . import threads as _threads
    from .runner import cell_memory_limit, make_backends, run_problem
    from .sentinel import Sentinel
    _maybe_fault()
    key = (tuple(cfg.backends), repr(sorted(cfg.settings.items())), cfg.memory_limit_bytes)
    st = _STATE.get(key)
    if st is None:
        _threads.set_threads(unit.threads)
        st = _STATE[key] = dict(instances=make_backends(cfg, cfg.backends),
                                sentinel=Sentinel() if cfg.sentinel else None,
                                limit=cell_memory_limit(cfg.memory_limit_bytes))
    sent = st["sentinel"]
    real = [b for b in unit.todo if b != "*"]
    if _threads.get_threads() != unit.threads:
        _threads.set_threads(unit.threads)
    cfg = replace(cfg, threads=unit.threads, cache=unit.cache)
    t0 = time.perf_counter()
    rows, benches = run_problem(unit.problem, cfg, real, None, sent.round if sent is not None else None,
                                weight_density=unit.density, instances=st["instances"],
                                budget_skips=budget_skips, cell_limit=st["limit"])
    drift = sent.take() if sent is not None else []
    fp = host_fingerprint()
    worker = _worker_name()
    for r in rows:
        r["host"], r["worker"] = fp["host"], worker
    return dict(rows=rows, samples=[(n, b.iterations, list(b.times)) for n, b in benches.items()],
                drift=list(drift) if benches else [], host=fp["host"], worker=worker, fingerprint=fp,
                seconds=time.perf_counter() - t0)


# ---------------------------------------------------------------------------- client side
def _failed_rows(cfg, unit: Unit, reason: str) -> list[dict]:
    from .runner import problem_fields
    base = problem_fields(unit.problem)
    base["weight_density"] = unit.density
    base["cache"] = unit.cache
    base["suite"], base["multiplicity"] = cfg.tags.get(unit.problem.label, ("", 1))
    return [dict(base, backend=b, status="failed", reason=reason, threads=unit.threads, host="", worker="")
            for b in unit.todo]


def probe_scheduler(address: str, timeout: float = CONNECT_TIMEOUT_S) -> None:
    """Raise :class:`ExecutorError` unless something accepts TCP connections at ``address``
    (``tcp://HOST:PORT``) within ``timeout`` seconds: a fast answer for a wrong address,
    before Dask itself (or any backend) is imported."""
    host, _, port = address[len("tcp://"):].rpartition(":") if address.startswith("tcp://") else \
        address.rpartition(":")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout).close()
    except OSError as e:
        raise ExecutorError(f"--scheduler {address}: no Dask scheduler answered within {timeout:g} s "
                            f"({e.strerror or e.__class__.__name__}); expected the address of a running "
                            f"`dask scheduler`, e.g. tcp://10.0.0.5:8786") from None


def connect(scheduler: str | None, workers: int | None, retries: int, threads: int):
    """A Dask client: on a new loopback ``LocalCluster`` of ``workers`` single-threaded
    processes offering ``bench=1`` each, or on the scheduler at ``scheduler``. Raises
    :class:`ExecutorError` (one line) when the scheduler does not answer within
    :data:`CONNECT_TIMEOUT_S` or has no worker offering the ``bench`` resource."""
    try:
        import dask
        from distributed import Client, LocalCluster
    except ImportError:
        raise ExecutorError("--executor dask needs dask[distributed]: pip install 'dask[distributed]' "
                            "(make test installs it)") from None
    # distributed logs a lost connection as a traceback; convbench reports it in one line itself
    for name in ["distributed"] + [n for n in logging.root.manager.loggerDict if n.startswith("distributed.")]:
        logging.getLogger(name).setLevel(logging.CRITICAL)
    # a unit whose worker dies is rescheduled this many times before it is reported failed
    dask.config.set({"distributed.scheduler.allowed-failures": retries,
                     "distributed.comm.timeouts.connect": f"{CONNECT_TIMEOUT_S}s",
                     # the worker's statistical profiler samples every thread's stack every 10 ms
                     # under the GIL, inside the timed calls; local workers get it off (passed on
                     # by their nannies), remote ones are started with it off (README)
                     "distributed.worker.profile.enabled": False,
                     # Dask's nannies set MALLOC_TRIM_THRESHOLD_=65536 in workers, so glibc hands
                     # every large temporary back to the OS and faults it in again on the next
                     # call; workers get this process's allocator settings instead (measured on the
                     # default sweep, median cell time on a worker vs locally: 1.18x with it)
                     "distributed.nanny.pre-spawn-environ": {
                         k: str(threads) for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")}})
    if workers:
        cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, host="127.0.0.1",
                               dashboard_address=None, resources={"bench": 1}, silence_logs=logging.ERROR)
        return Client(cluster), cluster
    try:
        client = Client(scheduler, timeout=f"{CONNECT_TIMEOUT_S}s")
    except (OSError, TimeoutError) as e:
        raise ExecutorError(f"--scheduler {scheduler}: no Dask scheduler answered within {CONNECT_TIMEOUT_S} s "
                            f"({e.__class__.__name__}); expected the address of a running `dask scheduler`, "
                            f"e.g. tcp://10.0.0.5:8786") from None
    except Exception as e:  # noqa: BLE001 - something else listens there (seen: a reply read as a 3 EiB frame)
        raise ExecutorError(f"--scheduler {scheduler}: what answered there is not a Dask scheduler "
                            f"({e.__class__.__name__}); expected the address of a running `dask scheduler`, "
                            f"e.g. tcp://10.0.0.5:8786") from None
    info = client.scheduler_info()
    bench = [w for w in info.get("workers", {}).values() if (w.get("resources") or {}).get("bench")]
    if not bench:
        client.close()
        raise ExecutorError(f"--scheduler {scheduler}: no worker offers the 'bench' resource; start one per "
                            f"machine with `dask worker {scheduler} --nworkers 1 --nthreads 1 --resources "
                            f"bench=1`")
    return client, None


def run_sweep_dask(cfg, writer, *, done: set | None = None, progress=None, scheduler: str | None = None,
                   workers: int | None = None, retries: int = 2, log=None, connection=None) -> dict:
    """Run the sweep's units on a Dask cluster, appending rows through ``writer`` as each
    finishes. ``connection``: ``(client, cluster)`` from :func:`connect` (made here from
    ``scheduler``/``workers`` when not given); both are closed at the end. Returns
    ``interrupted``, ``rows``, ``problems``, ``hosts`` (host -> fingerprint), ``units``
    (host, worker, seconds of work and from submission to result, per finished unit) and,
    when the scheduler went away, ``lost``."""
    from distributed import as_completed
    from distributed.client import FutureCancelledError
    from distributed.scheduler import KilledWorker

    from .runner import BudgetEvidence
    from .sentinel import SENTINEL
    units, complete = plan_units(cfg, done or set())
    if progress is not None and complete:
        progress.skip(complete)
    client, cluster = connection or connect(scheduler, workers, retries, max(cfg.sweep_threads))
    small = replace(cfg, problems=[])  # a unit carries its own problem
    budget = BudgetEvidence(cfg.cell_budget_s)
    pending = collections.deque(units)
    running: dict = {}
    hosts: dict = {}
    finished: list = []
    written = 0
    out = dict(interrupted=False, rows=0, problems=complete, hosts=hosts, units=finished)
    try:
        ac = as_completed()

        def submit():
            # one unit in flight per worker: a unit queued on a worker behind another would be
            # charged a failure if that worker died, and would wait there while another idles
            window = max(1, len(client.scheduler_info().get("workers", {})))
            while pending and len(running) < window:
                u = pending.popleft()
                real = [b for b in u.todo if b != "*"]
                skips = budget.skips(u.problem, real, u.density, u.variant) if real else {}
                fut = client.submit(run_unit, small, u, skips, resources={"bench": 1}, pure=False,
                                    key=f"convbench-unit-{u.index}-{os.getpid()}-{time.time_ns()}")
                running[fut.key] = (u, time.perf_counter(), fut)
                ac.add(fut)
        submit()
        for fut in ac:
            u, t_sub, _ = running.pop(fut.key)
            try:
                res = fut.result()
            except KilledWorker as e:
                res = dict(rows=_failed_rows(cfg, u, f"the worker running this unit died {retries + 1} time(s) "
                                                     f"(killed or out of memory; Dask: {e.__class__.__name__})"),
                           samples=[], drift=[], host="", worker="", fingerprint=None, seconds=float("nan"))
            except FutureCancelledError:
                out.update(interrupted=True, lost=True)
                break
            except Exception as e:  # noqa: BLE001 - the unit's own failure is its cells' reason
                if client.status not in ("running", "connecting"):
                    out.update(interrupted=True, lost=True)
                    break
                res = dict(rows=_failed_rows(cfg, u, f"unit raised {e.__class__.__name__}: {e}"), samples=[],
                           drift=[], host="", worker="", fingerprint=None, seconds=float("nan"))
            for name, iterations, times in res["samples"]:  # rounds first, as in a local run
                writer.samples(u.problem.label, u.density, name, iterations, times, u.threads, u.cache)
            if res["drift"]:
                writer.samples(u.problem.label, u.density, SENTINEL, 1, res["drift"], u.threads, u.cache)
            for r in res["rows"]:
                writer.summary(r)
                written += 1
            if res.get("fingerprint"):
                hosts.setdefault(res["host"], res["fingerprint"])
            finished.append(dict(host=res["host"], worker=res["worker"], seconds=res["seconds"],
                                 wall=time.perf_counter() - t_sub))
            budget.record(u.problem, res["rows"], u.density, u.variant)
            out["problems"] += 1
            submit()
            if progress is not None:
                busy = ", ".join(sorted({str(w) for w in _busy_workers(client)})) or "-"
                progress.finished(u.label, res["rows"], extra=f"on {res['worker'] or '?'}; running "
                                  f"{len(running)} (workers busy: {busy}); pending {len(pending)}")
    except KeyboardInterrupt:
        out["interrupted"] = True
        out["signal"] = "SIGINT"
    except OSError:  # the connection to the scheduler broke (the caller says so, in one line)
        out.update(interrupted=True, lost=True)
    finally:
        out["rows"] = written
        if running:  # Ctrl-C or a lost scheduler: pending units are cancelled, never written
            try:
                client.cancel([f for _, _, f in running.values()], force=True)
            except Exception:  # noqa: BLE001 - cancelling is best effort
                pass
        try:
            client.close(timeout=5)
        except Exception:  # noqa: BLE001
            pass
        if cluster is not None:
            try:
                cluster.close(timeout=10)
            except Exception:  # noqa: BLE001
                pass
    return out


def _busy_workers(client) -> list:
    try:
        proc = client.processing()
        names = {a: w.get("name", a) for a, w in client.scheduler_info().get("workers", {}).items()}
        return [names.get(a, a) for a, keys in proc.items() if keys]
    except Exception:  # noqa: BLE001 - progress only
        return []
