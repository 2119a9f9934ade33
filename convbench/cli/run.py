"""``convbench run``: sweep problems x backends, write rows, tables, figures and the report.

:func:`execute` is the whole command as a Python call (``calibrate``, ``check`` and
:func:`convbench.run` use it); :func:`run` is its exit-status wrapper for the CLI. Both take
the options as keywords, exactly those given: the command line adds only the flags it saw
(its options default to "absent"), so "what did the user ask for" has one answer for the
command line and the API.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import sys
import time
from dataclasses import dataclass, fields
from pathlib import Path

from .common import (BACKEND_OPTIONS, EXECUTOR_OPTIONS, EXIT_OK, OUTPUT_OPTIONS, PROBLEM_OPTIONS, RUN_OPTIONS,
                     TIMING_OPTIONS, UsageError, add_options, invocation, normalize)

NAME = "run"
HELP = "run a sweep and write tables"
DESCRIPTION = ("Sweep problems x backends. Problems come from --problem, --suite/--suite-file and the grid "
               "flags (--sizes with --kernels, --strides, ...); with none of them the default suite runs.")
PRELOAD = True

#: options that may accompany --resume (they change the display or the report, not the sweep)
RESUME_COMPATIBLE = ("resume", "quiet", "no_plots", "baseline", "out", "blas_coretype", "executor", "workers",
                     "scheduler", "retries", "oversubscribe")


def setup(p) -> None:
    for group, title in ((PROBLEM_OPTIONS, "problems"), (BACKEND_OPTIONS, "backends and fairness"),
                         (TIMING_OPTIONS, "timing"), (EXECUTOR_OPTIONS, "where units run"), (OUTPUT_OPTIONS, "output")):
        add_options(p, group, title, given_only=True)


@dataclass
class RunResult:
    """What :func:`execute` did: exit status, result directory, whether it was interrupted."""

    status: int
    out: Path | None
    interrupted: bool = False
    problems: int = 0


def _log(msg: str) -> None:
    print(msg, file=sys.stderr)


def _check_out_dir(path: Path, create: bool = True) -> None:
    """A new run writes into a new or empty directory only; nothing a user has there is
    overwritten (a result directory is finished with --resume). A lock left by a run that
    never started (no data beside it) does not count. ``create``: make the directory and check
    that it takes a file; else only check what is there."""
    from ..results import LOCK_NAME, check_unlocked
    if path.exists() and not path.is_dir():
        raise UsageError(f"--out {str(path)!r} is a file; expected a directory (new or empty)")
    if (path / "summary.csv").exists():
        raise UsageError(f"--out {str(path)!r} already holds results; use --resume {path} to finish it "
                         f"or choose another directory")
    if path.is_dir():
        check_unlocked(path)
        held = sorted(e.name for e in path.iterdir() if e.name != LOCK_NAME)
        if held:
            shown = ", ".join(held[:4]) + (f" and {len(held) - 4} more" if len(held) > 4 else "")
            raise UsageError(f"--out {str(path)!r} is not empty (it holds {shown}); expected a new or empty "
                             f"directory, so that nothing there is overwritten")
    if not create:
        return
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / ".convbench-write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as e:
        raise UsageError(f"--out {str(path)!r} is not writable ({e.strerror})") from None


def new_config(o: dict):
    """The :class:`~convbench.config.SweepConfig` of a new sweep from its normalised options."""
    from ..backends import resolve_backends
    from ..config import SweepConfig
    from ..sweep import expand_problems
    names = {f.name for f in fields(SweepConfig)}
    try:
        entries = expand_problems(**{k: o[k] for k in (
            "problem", "suite", "suite_file", "sizes", "kernels", "strides", "channels", "out_channels", "batch",
            "padding", "dilation", "groups", "dtype", "direction", "pool", "fuzz", "seed", "rank")})
        kinds = {e.problem.kind for e in entries} or {"conv"}
        backends = resolve_backends(o["backends"], o["exclude"], kinds=kinds)
    except ValueError as e:
        raise UsageError(str(e)) from None
    if o["baseline"] and o["baseline"] not in backends:
        raise UsageError(f"--baseline {o['baseline']!r} is not among the backends run; accepted: {', '.join(backends)}")
    inject = dict(o["inject_slowdown"])
    for k in inject:
        if k not in backends:
            raise UsageError(f"--inject-slowdown: {k!r} is not among the backends run ({', '.join(backends)})")
    given = {k: v for k, v in o.items() if k in names and k not in ("backends", "inject_slowdown")}
    return SweepConfig(entries=entries, backends=backends, inject_slowdown=inject, **given)


def _check_options(o: dict, given: set) -> None:
    """Combinations of options that cannot run (one line each), before anything is touched."""
    try:
        from ..machine import memory_limit_env
        memory_limit_env()
    except ValueError as e:
        raise UsageError(str(e)) from None
    if o["executor"] == "dask" and bool(o["workers"]) == bool(o["scheduler"]):
        raise UsageError("--executor dask needs exactly one of --workers N (start a local cluster) and "
                         "--scheduler tcp://HOST:PORT (join a running one)")
    if o["executor"] == "local" and (o["workers"] or o["scheduler"]):
        raise UsageError("--workers and --scheduler go with --executor dask")
    cores = os.cpu_count() or 1
    if o["workers"] and o["workers"] * max(o["threads"]) > cores and not o["oversubscribe"]:
        raise UsageError(f"--workers {o['workers']} x --threads {max(o['threads'])}: this machine has {cores} "
                         f"core(s), and each worker times its unit on cores of its own; accepted are up to "
                         f"{max(1, cores // max(o['threads']))} workers here (give --oversubscribe to run more "
                         f"anyway: their times then include each other's contention)")
    if o["max_time"] < o["min_time"]:
        raise UsageError(f"--max-time {o['max_time']:g} is below --min-time {o['min_time']:g}; expected "
                         f"max-time >= min-time" + ("" if "max_time" in given else f" (--max-time defaults to "
                                                                                   f"{o['max_time']:g})"))
    if o["resume"]:
        extra = sorted(given - set(RESUME_COMPATIBLE))
        if extra:
            flags = ", ".join("--" + n.replace("_", "-") for n in extra)
            raise UsageError(f"--resume finishes exactly the stored sweep; {flags} would change it (and would be "
                             f"ignored): give --resume DIR alone (with --quiet, --no-plots or --baseline), or start "
                             f"a new run")
        if o["out"] and Path(o["out"]) != Path(o["resume"]):
            raise UsageError("--out and --resume name different directories; give only --resume DIR")
    if o["scheduler"] and not o["dry_run"]:  # answer within seconds, before anything heavy is imported
        from ..executors import ExecutorError
        from ..executors.dask import probe_scheduler
        try:
            probe_scheduler(o["scheduler"])
        except ExecutorError as e:
            raise UsageError(str(e)) from None


def execute(**options) -> RunResult:
    """Run a sweep with ``convbench run``'s options (keyword names as in ``--help``, e.g.
    ``sizes=[32, 64]``, ``backends="im2col_blas,direct_numba"``, ``out="results/x"``).

    Raises
    ------
    UsageError
        A bad option value (one line naming it); nothing was run or written.
    """
    from ..executors import Interrupt
    given = set(options)
    o = normalize(RUN_OPTIONS, options, "convbench run")
    _check_options(o, given)
    with Interrupt():  # SIGTERM from here on ends in a message, however many arrive
        return _execute(o)


def _execute(o: dict) -> RunResult:
    from ..results import ResultsError, RunLock
    try:
        if o["resume"]:
            out = Path(o["resume"])
            meta, config = _stored(out)  # nothing is touched before the whole directory reads
            if o["baseline"] and o["baseline"] not in config.backends:
                raise UsageError(f"--baseline {o['baseline']!r} is not among the backends of {out}; accepted: "
                                 f"{', '.join(config.backends)}")
            if o["dry_run"]:
                return _dry_run(config)
            with _executor(o, config) as executor, RunLock(out):  # another run may be writing it now
                meta, config = _stored(out)
                return _sweep(o, out, config, meta, executor)
        config = new_config(o)
        if o["dry_run"]:
            return _dry_run(config)
        out = Path(o["out"]) if o["out"] else Path("results") / time.strftime("%Y%m%d-%H%M%S")
        _check_out_dir(out, create=False)
        with _executor(o, config) as executor:  # a cluster that cannot be reached leaves no directory behind
            _check_out_dir(out)
            with RunLock(out):
                return _sweep(o, out, config, None, executor)
    except ResultsError as e:
        raise UsageError(str(e)) from None


def _stored(out: Path):
    """``(meta, config)`` of a directory to resume, read without touching anything; refused
    (one line) unless this convbench reads and writes it whole: its schema, its stored
    configuration and the headers of its files."""
    from ..backends import resolve_backends
    from ..config import SweepConfig
    from ..results import SCHEMA_VERSION, check_appendable, check_unlocked, load_meta
    if not (out / "meta.json").is_file():
        if (out / ".convbench.lock").is_file():  # a run that is still starting (no meta yet)?
            check_unlocked(out)
        raise UsageError(f"--resume {str(out)!r}: no meta.json there; expected a convbench result directory")
    meta = load_meta(out)
    if meta.get("schema_version") != SCHEMA_VERSION:
        raise UsageError(f"--resume {str(out)!r}: written by convbench {meta.get('convbench_version', '?')} "
                         f"(schema v{meta.get('schema_version')}); this convbench appends schema v{SCHEMA_VERSION} "
                         f"rows only. Report it with `convbench report`, or start a new run")
    try:
        config = SweepConfig.from_record(meta["config"])
        config = config.replace(backends=resolve_backends(",".join(config.backends), ""))
    except (ValueError, KeyError, TypeError) as e:
        raise UsageError(f"--resume {str(out)!r}: the stored configuration cannot be read ({e})") from None
    check_appendable(out)
    return meta, config


def _dry_run(config) -> RunResult:
    backends = config.backends
    print(f"{len(config.entries)} problems x {len(backends)} backends: {', '.join(backends)}")
    for p in config.problems:
        print(f"  {p.label}" + (f"   (invalid: {p.reason})" if not p.valid else ""))
    return RunResult(EXIT_OK, None)


@contextlib.contextmanager
def _executor(o: dict, config):
    """The executor of ``--executor``, connected before anything is written (an unreachable
    cluster costs seconds and leaves no trace), and closed however the run ends."""
    from ..executors import ExecutorError, LocalExecutor
    if o["executor"] != "dask":
        executor = LocalExecutor()
    else:
        from ..executors.dask import DaskExecutor, connect
        try:
            executor = DaskExecutor(connect(o["scheduler"], o["workers"], o["retries"], max(config.threads)),
                                    o["retries"])
        except ExecutorError as e:
            raise UsageError(str(e)) from None
    try:
        yield executor
    finally:
        executor.close()


def _sweep(o: dict, out: Path, config, meta: dict | None, executor) -> RunResult:
    """The sweep proper, with the result directory locked (``meta``: a resumed run's)."""
    from .. import threads
    from ..blas import applied_coretype
    from ..executors import Terminated, run_sweep
    from ..progress import Progress
    from ..results import ResultsWriteError, ResultWriter, new_meta, repair_for_resume, write_meta

    resume_cmd = f"convbench run --resume {shlex.quote(str(out))}"
    cells = config.cells()
    writer = progress = None
    meta_written, resumed = False, meta is not None
    try:
        threads.set_threads(config.threads[0])
        progress = executor.progress = Progress(len(cells), enabled=not o["quiet"])
        done: set = set()
        if meta is not None:
            expected = {c.key + (b,) for c in cells for b in list(config.backends) + ["*"]}
            done, msgs = repair_for_resume(out, expected)
            for m in msgs:
                _log(f"warning: {m}")
            meta.setdefault("resumed", []).append({"at": time.strftime("%Y-%m-%dT%H:%M:%S"), "argv": invocation()})
        else:
            meta = new_meta(argv=invocation(), config=config, coretype=applied_coretype(o["blas_coretype"]))
        write_meta(out, meta)
        meta_written = True
        warn = meta.get("machine", {}).get("blas", {}).get("warning")
        if warn:
            _log(f"warning: {warn}")
        writer = ResultWriter(out)
        variants = ",".join(config.cache)
        _log(f"convbench: {len(config.entries)} problems x {len(config.backends)} backends "
             f"({len(cells) * len(config.backends)} cells), {','.join(map(str, config.threads))} thread(s)"
             f"{f', {variants} cache' if variants != 'hot' else ''}, results in {out}")
        res = run_sweep(config, writer, executor, done=done, progress=progress)
    except KeyboardInterrupt as e:  # before the sweep's own handler was in place (start-up)
        if progress is not None:
            progress.close()
        how = "terminated (SIGTERM)" if isinstance(e, Terminated) else "interrupted"
        _log(f"convbench: {how} during start-up; nothing was measured"
             + (f". Resume with:\n  {resume_cmd}" if meta_written else ""))
        return RunResult(143 if isinstance(e, Terminated) else 130, out, True, 0)
    except ResultsWriteError as e:
        if progress is not None:
            progress.close()
        if writer is not None:
            writer.close()
            writer = None
        if not resumed and _remove_unstarted(out):
            _log(f"convbench: {e.strerror}; nothing was measured and {out} is empty again. Free space, then run the "
                 f"same command again")
        else:
            _log(f"convbench: {e.strerror}; every row written before is intact. Free space, then resume with:\n"
                 f"  {resume_cmd}")
        return RunResult(1, out, True, 0)
    finally:
        if writer is not None:
            writer.close()
    progress.close()
    return _finish(o, out, config, meta, res, resume_cmd)


def _remove_unstarted(out: Path) -> bool:
    """Remove what a new run wrote into ``out`` when it wrote no row (a full disk during
    start-up), so the directory is as the user gave it; False when a row is there to resume."""
    from ..results import SAMPLE_COLUMNS, SUMMARY_COLUMNS
    for name, columns in (("summary.csv", SUMMARY_COLUMNS), ("samples.csv", SAMPLE_COLUMNS)):
        f = out / name
        if f.is_file() and f.stat().st_size > len(",".join(columns)) + 1:
            return False
    for name in ("meta.json", "summary.csv", "samples.csv"):
        try:
            (out / name).unlink()
        except FileNotFoundError:
            pass
    return True


def _finish(o: dict, out: Path, config, meta: dict, res: dict, resume_cmd: str) -> RunResult:
    """After the sweep: meta.json completed, the report written, the outcome said."""
    from .. import threads
    from ..results import write_meta
    meta.setdefault("hosts", {}).update(res.get("hosts", {}))
    if o["executor"] == "dask":
        meta["executor"] = {"kind": "dask", "scheduler": o["scheduler"], "workers": o["workers"],
                            "retries": o["retries"]}
        meta.setdefault("units", []).extend(res.get("units", []))
    meta["threads"] = threads.thread_report()
    meta["finished"] = None if res["interrupted"] else time.strftime("%Y-%m-%dT%H:%M:%S")
    try:
        write_meta(out, meta)
    except OSError as e:
        _log(f"convbench: cannot write {out}/meta.json ({e.strerror}); the rows are intact. Resume with:\n"
             f"  {resume_cmd}")
        return RunResult(1, out, True, res["problems"])
    n = len(config.cells())
    if res.get("lost"):
        _log(f"convbench: the Dask scheduler went away; {res['problems']} of {n} problems finished, every "
             f"finished row is in {out}/summary.csv. Resume with:\n  {resume_cmd}")
        return RunResult(1, out, True, res["problems"])
    written = _report(o, out, config, res)
    if written is None:
        from ..executors import Interrupt
        return RunResult(143 if Interrupt.stopping() == "SIGTERM" else 130, out, True, res["problems"])
    if res["interrupted"]:
        how = "terminated (SIGTERM)" if res.get("signal") == "SIGTERM" else "interrupted"
        _log(f"{how}: {res['problems']} of {n} problems finished, every finished row is in {out}/summary.csv. "
             f"Resume with:\n  {resume_cmd}")
        return RunResult(143 if res.get("signal") == "SIGTERM" else 130, out, True, res["problems"])
    _summary(out, o["baseline"] or config.baseline, written)
    return RunResult(EXIT_OK, out, False, res["problems"])


def _report(o: dict, out: Path, config, res: dict) -> dict | None:
    """Write the tables and the report (tables only after SIGTERM: a supervisor may kill us
    soon); None when interrupted while writing."""
    from ..reporting import write_report, write_tables
    baseline = o["baseline"] or config.baseline
    try:
        return write_report(out, baseline, plots=not (o["no_plots"] or res.get("signal") == "SIGTERM"), warn=_log)
    except KeyboardInterrupt as e:
        from ..executors import Terminated
        how = "terminated (SIGTERM)" if isinstance(e, Terminated) else "interrupted"
        _log(f"{how} while writing the report; every row is in {out}/summary.csv. Write the report "
             f"with:\n  convbench report {shlex.quote(str(out))}")
        return None
    except Exception as e:  # noqa: BLE001 - the rows are on disk; a reporting failure must not hide them
        _log(f"warning: report generation failed ({e.__class__.__name__}: {e}); rows are in "
             f"{out}/summary.csv, retry with `convbench report {out}`")
        try:
            return {"tables": write_tables(out, baseline, warn=_log)}
        except Exception:  # noqa: BLE001
            return {"tables": out / "tables.md"}


def _summary(out: Path, baseline: str | None, written: dict) -> None:
    from ..reporting import summary_table
    from ..results import load_summary
    df = load_summary(out)
    counts = df.status.value_counts().to_dict()
    print(f"\nwrote {out}/summary.csv ({len(df)} rows: "
          + ", ".join(f"{counts.get(s, 0)} {s}" for s in ("passed", "skipped", "mistrusted", "failed")) + ")")
    print(f"      {out}/samples.csv, {out}/meta.json")
    print(f"tables: {written['tables']}")
    print("\n" + summary_table(out, baseline).strip())
    if written.get("report_md"):
        print(f"report: {written['report_md']} and {written['report_html']} "
              f"({len(written.get('plots', {}))} figures in {out}/plots)")


def run(**options) -> int:
    return execute(**options).status
