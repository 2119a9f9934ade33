"""``convbench run``: sweep problems x backends, write rows, tables, figures and the report.

:func:`execute` is the whole command as a Python call (``calibrate``, ``check`` and
:func:`convbench.run` use it); :func:`run` is its exit-status wrapper for the CLI.
"""

from __future__ import annotations

import json
import shlex
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from .common import (BACKEND_OPTIONS, EXECUTOR_OPTIONS, EXIT_OK, OUTPUT_OPTIONS, PROBLEM_OPTIONS, RUN_OPTIONS,
                     TIMING_OPTIONS, UsageError, add_options, normalize)

NAME = "run"
HELP = "run a sweep and write tables"
DESCRIPTION = ("Sweep problems x backends. Problems come from --problem, --suite/--suite-file and the grid "
               "flags (--sizes with --kernels, --strides, ...); with none of them the default suite runs.")
PRELOAD = True

#: run options that are algorithm settings, handed to the backends that declare them
SETTINGS = ("fftw_effort", "fftw_wisdom", "winograd_points", "sparse_format")


def setup(p) -> None:
    add_options(p, PROBLEM_OPTIONS, "problems")
    add_options(p, BACKEND_OPTIONS, "backends and fairness")
    add_options(p, TIMING_OPTIONS, "timing")
    add_options(p, EXECUTOR_OPTIONS, "where units run")
    add_options(p, OUTPUT_OPTIONS, "output")


@dataclass
class RunResult:
    """What :func:`execute` did: exit status, result directory, whether it was interrupted."""

    status: int
    out: Path | None
    interrupted: bool = False
    problems: int = 0


def _log(msg: str) -> None:
    print(msg, file=sys.stderr)


def _check_out_dir(path: Path, resume: bool) -> None:
    """A new run writes into a new or empty directory only; nothing a user has there is
    overwritten (a result directory is finished with --resume)."""
    if path.exists() and not path.is_dir():
        raise UsageError(f"--out {str(path)!r} is a file; expected a directory (new or empty)")
    if not resume and (path / "summary.csv").exists():
        raise UsageError(f"--out {str(path)!r} already holds results; use --resume {path} to finish it "
                         f"or choose another directory")
    if not resume and path.is_dir():
        held = sorted(e.name for e in path.iterdir())
        if held:
            shown = ", ".join(held[:4]) + (f" and {len(held) - 4} more" if len(held) > 4 else "")
            raise UsageError(f"--out {str(path)!r} is not empty (it holds {shown}); expected a new or empty "
                             f"directory, so that nothing there is overwritten")
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / ".convbench-write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as e:
        raise UsageError(f"--out {str(path)!r} is not writable ({e.strerror})") from None


def new_config(o: dict) -> tuple[dict, list]:
    """The stored configuration of a new sweep (what ``--resume`` reads back), and its problems."""
    from ..backends import resolve_backends
    from ..sweep import expand_problems, problem_records
    try:
        problems, tags = expand_problems(**{k: o[k] for k in (
            "problem", "suite", "suite_file", "sizes", "kernels", "strides", "channels", "out_channels", "batch",
            "padding", "dilation", "groups", "dtype", "direction", "pool", "fuzz", "seed")})
        kinds = {p.kind for p in problems if hasattr(p, "kind")} or {"conv"}
        backends = resolve_backends(o["backends"], o["exclude"], kinds=kinds)
    except ValueError as e:
        raise UsageError(str(e)) from None
    inject = dict(o["inject_slowdown"])
    for k in inject:
        if k not in backends:
            raise UsageError(f"--inject-slowdown: {k!r} is not among the backends run ({', '.join(backends)})")
    threads = list(o["threads"]) if isinstance(o["threads"], (list, tuple)) else [int(o["threads"])]
    config = dict(problems=problem_records(problems), backends=backends, threads=threads[0], thread_counts=threads,
                  caches=list(o["cache"]),
                  min_time=o["min_time"], max_time=o["max_time"], min_rounds=o["min_rounds"],
                  round_time=o["round_time"], cell_budget=o["cell_budget"], weight_density=o["weight_density"],
                  memory_limit=o["memory_limit"], baseline=o["baseline"], blas_coretype=o["blas_coretype"],
                  inject=inject, tags={k: list(v) for k, v in tags.items()}, **{k: o[k] for k in SETTINGS})
    return config, problems


def _stored_config(rdir: Path) -> dict:
    if not (rdir / "meta.json").is_file():
        raise UsageError(f"--resume {str(rdir)!r}: no meta.json there; expected a convbench result directory")
    try:
        return json.loads((rdir / "meta.json").read_text())["config"]
    except (ValueError, KeyError, OSError, TypeError) as e:
        raise UsageError(f"--resume {str(rdir)!r}: unreadable meta.json ({e})") from None


def sweep_config(config: dict, problems: list):
    """The runner's :class:`~convbench.runner.RunConfig` for a stored configuration."""
    from ..runner import RunConfig
    from ..timing import TimingConfig
    return RunConfig(problems=problems, backends=config["backends"], threads=config["threads"],
                     thread_counts=tuple(config.get("thread_counts") or [config["threads"]]),
                     caches=tuple(config.get("caches") or ["hot"]),
                     timing=TimingConfig(round_time=config["round_time"], min_rounds=int(config["min_rounds"]),
                                         min_time=config["min_time"], max_time=config["max_time"]),
                     cell_budget_s=config["cell_budget"], weight_densities=tuple(config["weight_density"]),
                     memory_limit_bytes=config["memory_limit"], inject=config.get("inject", {}),
                     settings={k: config[k] for k in SETTINGS if k in config},
                     tags={k: tuple(v) for k, v in config.get("tags", {}).items()})


#: options that may accompany --resume (they change the display or the report, not the sweep)
RESUME_COMPATIBLE = ("resume", "quiet", "no_plots", "baseline", "out", "blas_coretype", "executor", "workers",
                     "scheduler", "retries")


def _given(options: dict, argv: list[str] | None) -> set[str]:
    """The options the user gave: flags present in argv (CLI), else the keywords passed (API)."""
    if argv is None:
        return set(options)
    flags = {a.split("=", 1)[0] for a in argv if a.startswith("--")}
    return {o.name for o in RUN_OPTIONS if o.flag in flags}


def execute(*, argv: list[str] | None = None, coretype: dict | None = None, log=_log, **options) -> RunResult:
    """Run a sweep with ``convbench run``'s options (keyword names as in ``--help``, e.g.
    ``sizes=[32, 64]``, ``backends="im2col_blas,direct_numba"``, ``out="results/x"``).

    Raises
    ------
    UsageError
        A bad option value (one line naming it); nothing was run or written.
    """
    given = _given(options, argv)
    o = normalize(RUN_OPTIONS, options, "convbench run")
    argv = list(argv) if argv is not None else ["(python)"]
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
    if o["scheduler"] and not o["dry_run"]:  # answer within seconds, before anything heavy is imported
        from ..executor import ExecutorError, probe_scheduler
        try:
            probe_scheduler(o["scheduler"])
        except ExecutorError as e:
            raise UsageError(str(e)) from None
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
    coretype = coretype or {"requested": o["blas_coretype"], "applied": False,
                            "note": "called from Python: the kernel set is whatever numpy loaded"}
    if o["out"] and o["resume"] and Path(o["out"]) != Path(o["resume"]):
        raise UsageError("--out and --resume name different directories; give only --resume DIR")
    from ..results import ResultsError, RunLock
    if o["resume"]:
        out = Path(o["resume"])
        if not (out / "meta.json").is_file():
            if (out / ".convbench.lock").is_file():  # a run that is still starting (no meta yet)?
                try:
                    with RunLock(out):
                        pass
                except ResultsError as e:
                    raise UsageError(str(e)) from None
            raise UsageError(f"--resume {str(out)!r}: no meta.json there; expected a convbench result directory")
        try:
            with RunLock(out):  # first: another run may be writing this directory right now
                config, problems = _resumed_config(out)
                if o["dry_run"]:
                    return _dry_run(config, problems)
                return _sweep(o, out, config, problems, argv, coretype, log)
        except ResultsError as e:
            raise UsageError(str(e)) from None
    out = Path(o["out"]) if o["out"] else Path("results") / time.strftime("%Y%m%d-%H%M%S")
    config, problems = new_config(o)
    if o["dry_run"]:
        return _dry_run(config, problems)
    _check_out_dir(out, resume=False)
    try:
        with RunLock(out):
            return _sweep(o, out, config, problems, argv, coretype, log)
    except ResultsError as e:
        raise UsageError(str(e)) from None


def _resumed_config(out: Path) -> tuple[dict, list]:
    from ..backends import resolve_backends
    from ..sweep import config_problems
    config = _stored_config(out)
    problems = config_problems(config)
    try:
        config["backends"] = resolve_backends(",".join(config["backends"]), "")
    except ValueError as e:
        raise UsageError(f"--resume: {e}") from None
    return config, problems


def _dry_run(config: dict, problems: list) -> RunResult:
    from ..sweep import InvalidProblem
    backends = config["backends"]
    print(f"{len(problems)} problems x {len(backends)} backends: {', '.join(backends)}")
    for p in problems:
        print(f"  {p.label}" + (f"   (invalid: {p.reason})" if isinstance(p, InvalidProblem) else ""))
    return RunResult(EXIT_OK, None)


def _sweep(o: dict, out: Path, config: dict, problems: list, argv: list[str], coretype: dict, log) -> RunResult:
    """The sweep proper, with the result directory locked."""
    from .. import threads
    from ..progress import Progress
    from ..reporting import summary_table, write_report, write_tables
    from ..results import ResultsWriteError, ResultWriter, load_summary, new_meta, repair_for_resume, write_meta
    from ..runner import run_sweep

    backends = config["backends"]
    resume_cmd = f"convbench run --resume {shlex.quote(str(out))}"
    meta_written = False
    writer = progress = None
    try:
        threads.set_threads(config["threads"])
        connection = None
        if o["executor"] == "dask":  # first: an unreachable cluster costs seconds and leaves no trace
            from ..executor import ExecutorError, connect
            try:
                connection = connect(o["scheduler"], o["workers"], o["retries"],
                                     max(config.get("thread_counts") or [config["threads"]]))
            except ExecutorError as e:
                raise UsageError(str(e)) from None
        cfg = sweep_config(config, problems)
        done: set = set()
        if o["resume"]:
            meta = json.loads((out / "meta.json").read_text())
            done, msgs = repair_for_resume(out, {(c, b) for c in _config_cells(config) for b in backends + ["*"]})
            for m in msgs:
                log(f"warning: {m}")
            meta.setdefault("resumed", []).append({"at": time.strftime("%Y-%m-%dT%H:%M:%S"), "argv": argv})
        else:
            meta = new_meta(argv=argv, config=config, coretype=coretype)
        write_meta(out, meta)
        meta_written = True
        warn = meta.get("machine", {}).get("blas", {}).get("warning")
        if warn:
            log(f"warning: {warn}")
        writer = ResultWriter(out)
        n_var = len(cfg.variants())
        progress = Progress(len(problems) * len(config["weight_density"]) * n_var, enabled=not o["quiet"])
        n_cells = len(problems) * len(backends) * len(config["weight_density"]) * n_var
        tcounts = ",".join(map(str, cfg.sweep_threads))
        caches = ",".join(cfg.caches)
        log(f"convbench: {len(problems)} problems x {len(backends)} backends ({n_cells} cells), "
            f"{tcounts} thread(s){f', {caches} cache' if caches != 'hot' else ''}, results in {out}")
        if o["executor"] == "dask":
            from ..executor import run_sweep_dask
            res = run_sweep_dask(cfg, writer, done=done, progress=progress, connection=connection,
                                 retries=o["retries"], log=log)
            meta["executor"] = {"kind": "dask", "scheduler": o["scheduler"], "workers": o["workers"],
                                "retries": o["retries"]}
            hosts = meta.setdefault("hosts", {})
            hosts.update(res.get("hosts", {}))
            if res.get("units"):
                meta.setdefault("units", []).extend(res["units"])
            if res.get("lost"):
                progress.close()
                writer.close()
                writer = None
                meta["finished"] = None
                write_meta(out, meta)
                log(f"convbench: the Dask scheduler went away; {res['problems']} of {len(problems)} problems "
                    f"finished, every finished row is in {out}/summary.csv. Resume with:\n  {resume_cmd}")
                return RunResult(1, out, True, res["problems"])
        else:
            from ..executor import host_fingerprint
            res = run_sweep(cfg, writer, done=done, progress=progress)
            fp = host_fingerprint()
            meta.setdefault("hosts", {}).setdefault(fp["host"], fp)
    except KeyboardInterrupt:  # before the sweep's own handler was in place (start-up)
        if progress is not None:
            progress.close()
        log("convbench: interrupted during start-up; nothing was measured"
            + (f". Resume with:\n  {resume_cmd}" if meta_written else ""))
        return RunResult(130, out, True, 0)
    except ResultsWriteError as e:
        if progress is not None:
            progress.close()
        log(f"convbench: {e.strerror}; every row written before is intact. Free space, then resume with:\n"
            f"  {resume_cmd}")
        return RunResult(1, out, True, 0)
    finally:
        if writer is not None:
            writer.close()
    progress.close()
    meta["threads"] = threads.thread_report()
    meta["finished"] = None if res["interrupted"] else time.strftime("%Y-%m-%dT%H:%M:%S")
    try:
        write_meta(out, meta)
    except OSError as e:
        log(f"convbench: cannot write {out}/meta.json ({e.strerror}); the rows are intact. Resume with:\n"
            f"  {resume_cmd}")
        return RunResult(1, out, True, res["problems"])
    baseline = o["baseline"] or config.get("baseline")
    terminated = res.get("signal") == "SIGTERM"  # a supervisor may kill us soon: tables only, fast
    try:
        written = write_report(out, baseline, plots=not (o["no_plots"] or terminated), warn=log)
    except KeyboardInterrupt:
        log(f"interrupted while writing the report; every row is in {out}/summary.csv. Write the report "
            f"with:\n  convbench report {shlex.quote(str(out))}")
        return RunResult(130, out, True, res["problems"])
    except Exception as e:  # noqa: BLE001 - the rows are on disk; a reporting failure must not hide them
        log(f"warning: report generation failed ({e.__class__.__name__}: {e}); rows are in "
            f"{out}/summary.csv, retry with `convbench report {out}`")
        try:
            written = {"tables": write_tables(out, baseline, warn=log)}
        except Exception:  # noqa: BLE001
            written = {"tables": out / "tables.md"}
    if res["interrupted"]:
        how = "terminated (SIGTERM)" if res.get("signal") == "SIGTERM" else "interrupted"
        log(f"{how}: {res['problems']} of {len(problems)} problems finished, every finished row "
            f"is in {out}/summary.csv. Resume with:\n  {resume_cmd}")
        return RunResult(143 if res.get("signal") == "SIGTERM" else 130, out, True, res["problems"])
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
    return RunResult(EXIT_OK, out, False, res["problems"])


def _config_cells(config: dict) -> list[str]:
    """Every cell label a stored configuration's sweep makes (problem x weight density x
    thread count x cache state)."""
    from ..sweep import config_problems
    problems = config_problems(config)
    cfg = sweep_config(config, problems)
    out = []
    for p in problems:
        for d in (config["weight_density"] if hasattr(p, "replace") else [1.0]):
            for t, c in (cfg.variants() if hasattr(p, "replace") else cfg.variants()[:1]):
                out.append(cfg.label(p, d, t, c))
    return out


def run(*, argv: list[str] | None = None, coretype: dict | None = None, **options) -> int:
    return execute(argv=argv, coretype=coretype, **options).status
