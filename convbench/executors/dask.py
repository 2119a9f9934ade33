"""Units on a Dask cluster (``convbench run --executor dask``).

Each unit is a task that asks for the worker resource ``bench=1``; a worker started with
``--resources bench=1`` (``--workers N`` starts a local cluster so) runs one timed unit at a
time. Backends (their JIT, FFTW wisdom and plan caches) are built once per worker process and
reused by every unit that process runs (:func:`convbench.executors.run_unit`).

Outcomes stream back as units finish; the sweep loop writes them. A worker that dies mid-unit
has the unit rescheduled by Dask up to ``retries`` times, after which its cells are recorded as
``failed`` with the reason (the same results and rows as any other failure). A scheduler that
goes away raises :class:`~convbench.executors.ExecutorLost`, which the loop reports; closing
cancels what is still running and closes the cluster it started.

One unit per worker is in flight (the next is taken when one finishes), so no unit waits on a
worker behind another, and the time budget's evidence still applies to units taken later.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
import time

from . import FAULT_ENV, ExecutorError, ExecutorLost, run_unit

__all__ = ["DaskExecutor", "connect", "probe_scheduler", "CONNECT_TIMEOUT_S"]

#: seconds a ``--scheduler`` address gets to answer before the run gives up
CONNECT_TIMEOUT_S = 5


def _main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


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


#: per worker process: the sweep's context, built by its first unit and kept for the others
#: (backends, their JIT, FFTW wisdom and plan caches stay warm)
_CONTEXTS: dict = {}


def _task(config, unit, budget_skips: dict):
    """What a Dask worker runs: one unit (and the fault hook of the tests)."""
    from ..runner import Context
    _maybe_fault()
    key = (tuple(config.backends), repr(sorted(config.settings.items())), config.memory_limit, config.sentinel)
    ctx = _CONTEXTS.get(key)
    if ctx is None:
        ctx = _CONTEXTS[key] = Context.build(config)
    ctx.config = config
    return run_unit(ctx, unit, budget_skips)


def probe_scheduler(address: str, timeout: float = CONNECT_TIMEOUT_S) -> None:
    """Raise :class:`ExecutorError` unless a Dask scheduler answers at ``address``
    (``tcp://HOST:PORT``) within ``timeout`` seconds: before Dask itself (or any backend) is
    imported, and before anything is written.

    A Dask comm greets every connection first: one message (its length and frame count as
    8-byte little-endian integers, then a msgpack map naming ``python`` and
    ``pickle-protocol``). Something that accepts and says nothing (an HTTP server waiting for
    its request, a bare listener) or says something else is refused in one line; without this
    check the client waited for the greeting forever.
    """
    host, _, port = address[len("tcp://"):].rpartition(":") if address.startswith("tcp://") else \
        address.rpartition(":")
    expected = "expected the address of a running `dask scheduler`, e.g. tcp://10.0.0.5:8786"
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout) as s:
            greeting = _read_greeting(s, time.monotonic() + timeout)
    except OSError as e:
        raise ExecutorError(f"--scheduler {address}: no Dask scheduler answered within {timeout:g} s "
                            f"({e.strerror or e.__class__.__name__}); {expected}") from None
    if greeting is None:
        raise ExecutorError(f"--scheduler {address}: something accepted the connection but sent no Dask greeting "
                            f"within {timeout:g} s; {expected}")
    if not greeting:
        raise ExecutorError(f"--scheduler {address}: what answered there does not speak Dask's protocol; {expected}")


def _read_greeting(s, deadline: float):
    """The first message on a fresh connection: its bytes when they look like a Dask comm's
    greeting, ``b""`` when something else arrived, None when nothing did before ``deadline``."""
    import struct
    buf = b""
    while len(buf) < 16 or len(buf) < 8 + struct.unpack("<Q", buf[:8])[0]:
        left = deadline - time.monotonic()
        if left <= 0:
            return None if not buf else b""
        s.settimeout(left)
        try:
            chunk = s.recv(4096)
        except socket.timeout:
            return None if not buf else b""
        if not chunk:
            return b""
        buf += chunk
        if len(buf) >= 16:
            total, frames = struct.unpack("<QQ", buf[:16])
            if not (16 <= total <= 1 << 16 and 1 <= frames <= 16):
                return b""
    return buf if b"python" in buf and b"pickle-protocol" in buf else b""


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
        # the workers ignore SIGINT (inherited across the spawn): a terminal's Ctrl-C reaches the
        # whole process group, and the run, not each worker, decides what to finish; a worker
        # that died of it left its unit pending forever
        old = signal.signal(signal.SIGINT, signal.SIG_IGN) if _main_thread() else None
        try:
            cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, host="127.0.0.1",
                                   dashboard_address=None, resources={"bench": 1}, silence_logs=logging.ERROR)
        finally:
            if old is not None:
                signal.signal(signal.SIGINT, old)
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


class DaskExecutor:
    """Units as Dask tasks, one in flight per worker (see the module docstring).

    Parameters
    ----------
    connection : (client, cluster)
        From :func:`connect`; both are closed by :meth:`close` (cluster None: a remote one).
    retries : int
        Times Dask reruns a unit whose worker died (named in the failure reason).
    """

    def __init__(self, connection, retries: int = 2):
        self.client, self.cluster = connection
        self.retries = retries
        self.running: dict = {}
        self.hosts: dict = {}
        self.units: list = []

    def map(self, config, jobs):
        from distributed import as_completed
        from distributed.client import FutureCancelledError
        from distributed.scheduler import KilledWorker
        small = config.replace(entries=())  # a unit carries its own cell
        ac = as_completed()
        jobs = iter(jobs)

        def take():
            window = max(1, len(self.client.scheduler_info().get("workers", {})))
            while len(self.running) < window:
                job = next(jobs, None)
                if job is None:
                    return
                unit, skips = job
                fut = self.client.submit(_task, small, unit, skips, resources={"bench": 1}, pure=False,
                                         key=f"convbench-unit-{unit.index}-{os.getpid()}-{time.time_ns()}")
                self.running[fut.key] = (unit, time.perf_counter(), fut)
                ac.add(fut)
        try:
            take()
            for fut in ac:
                unit, t_sub, _ = self.running.pop(fut.key)
                try:
                    outcome = fut.result()
                except KilledWorker as e:
                    outcome = failed_outcome(unit, f"the worker running this unit died {self.retries + 1} time(s) "
                                                   f"(killed or out of memory; Dask: {e.__class__.__name__})")
                except FutureCancelledError:
                    raise ExecutorLost("the scheduler cancelled the running units") from None
                except Exception as e:  # noqa: BLE001 - the unit's own failure is its cells' reason
                    if self.client.status not in ("running", "connecting"):
                        raise ExecutorLost(f"the scheduler went away ({e.__class__.__name__})") from None
                    outcome = failed_outcome(unit, f"unit raised {e.__class__.__name__}: {e}")
                if outcome.fingerprint:
                    self.hosts.setdefault(outcome.host, outcome.fingerprint)
                self.units.append(dict(host=outcome.host, worker=outcome.worker, seconds=outcome.seconds,
                                       wall=time.perf_counter() - t_sub))
                yield unit, outcome
                take()
        except OSError as e:  # the connection to the scheduler broke
            raise ExecutorLost(f"the connection to the scheduler broke ({e.__class__.__name__})") from None

    def status(self, outcome) -> str:
        busy = ", ".join(sorted({str(w) for w in _busy_workers(self.client)})) or "-"
        return f"on {outcome.worker or '?'}; running {len(self.running)} (workers busy: {busy})"

    def report(self) -> dict:
        return {"hosts": dict(self.hosts), "units": list(self.units)}

    def close(self) -> None:
        """Cancel what is still running (never written), close the client and the cluster."""
        if self.running:
            try:
                self.client.cancel([f for _, _, f in self.running.values()], force=True)
            except Exception:  # noqa: BLE001 - cancelling is best effort
                pass
            self.running.clear()
        try:
            self.client.close(timeout=5)
        except Exception:  # noqa: BLE001
            pass
        if self.cluster is not None:
            try:
                self.cluster.close(timeout=10)
            except Exception:  # noqa: BLE001
                pass


def failed_outcome(unit, reason: str):
    """The outcome of a unit that never came back: each of its backends failed with ``reason``."""
    from ..backends import backend_role
    from ..cells import CellOutcome, CellResult
    return CellOutcome([CellResult(b, "failed", reason, role=backend_role(b) if b != "*" else "")
                        for b in unit.todo])


def _busy_workers(client) -> list:
    try:
        proc = client.processing()
        names = {a: w.get("name", a) for a, w in client.scheduler_info().get("workers", {}).items()}
        return [names.get(a, a) for a, keys in proc.items() if keys]
    except Exception:  # noqa: BLE001 - progress only
        return []
