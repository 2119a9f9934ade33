"""Command line: every flag parsed and validated here, in one place.

``convbench run | list | info | report | suites`` (and ``compare``/``calibrate``).

Bad input never produces a traceback: one line on stderr says what is wrong and
what is accepted, and the exit status is 2. This module imports nothing that
loads numpy at module level, because ``--blas-coretype`` must set
``OPENBLAS_CORETYPE`` before OpenBLAS is loaded; :func:`main` applies it first.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import time
from pathlib import Path

from . import __version__
from .blas import CORETYPES, apply_coretype

__all__ = ["main", "build_parser"]

EXIT_OK, EXIT_FAIL, EXIT_USAGE = 0, 1, 2


class UsageError(Exception):
    """Bad input from the user: printed as one line, exit status 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, no usage dump
        raise UsageError(f"{self.prog}: error: {message}")


# ---------------------------------------------------------------------------- value parsers
def _split(text: str, flag: str, what: str) -> list[str]:
    items = [t.strip() for t in str(text).split(",")]
    if not text or any(t == "" for t in items):
        raise argparse.ArgumentTypeError(f"{text!r} has an empty value; expected {what}")
    return items


def _pos_int(tok: str, flag: str, what: str, minimum: int = 1) -> int:
    try:
        v = int(tok)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{tok!r} is not an integer; expected {what}") from None
    if v < minimum:
        raise argparse.ArgumentTypeError(f"{v} is out of range; expected {what}")
    return v


def int_list(flag: str, minimum: int = 1):
    what = f"comma-separated integers >= {minimum}, e.g. 1,2"

    def parse(text):
        return [_pos_int(t, flag, what, minimum) for t in _split(text, flag, what)]
    return parse


def pair_list(flag: str, example: str):
    what = f"comma-separated positive integers or HxW pairs, e.g. {example}"

    def parse(text):
        out = []
        for t in _split(text, flag, what):
            parts = t.lower().split("x")
            if len(parts) == 1:
                v = _pos_int(parts[0], flag, what)
                out.append((v, v))
            elif len(parts) == 2:
                out.append((_pos_int(parts[0], flag, what), _pos_int(parts[1], flag, what)))
            else:
                raise argparse.ArgumentTypeError(f"{t!r} is not N or HxW; expected {what}")
        return out
    return parse


def padding_list(text):
    what = "comma-separated 'valid', 'same' or integers >= 0, e.g. valid,same,1"
    out = []
    for t in _split(text, "--padding", what):
        if t.lower() in ("valid", "same"):
            out.append(t.lower())
        else:
            out.append(_pos_int(t, "--padding", what, 0))
    return out


def dtype_list(text):
    what = "comma-separated float32 (f32) and/or float64 (f64)"
    names = {"f32": "float32", "float32": "float32", "f64": "float64", "float64": "float64"}
    out = []
    for t in _split(text, "--dtype", what):
        if t.lower() not in names:
            raise argparse.ArgumentTypeError(f"unknown dtype {t!r}; expected {what}")
        out.append(names[t.lower()])
    return list(dict.fromkeys(out))


def positive_float(text):
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not v > 0 or v != v or v == float("inf"):
        raise argparse.ArgumentTypeError(f"{text!r} must be a positive finite number")
    return v


def density_list(text):
    what = "comma-separated fractions in (0, 1], e.g. 1,0.1"
    out = []
    for t in _split(text, "--weight-density", what):
        try:
            v = float(t)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{t!r} is not a number; expected {what}") from None
        if not 0 < v <= 1:
            raise argparse.ArgumentTypeError(f"{t!r} is out of range; expected {what}")
        out.append(v)
    return list(dict.fromkeys(out))


def byte_size(text):
    units = {"": 1, "b": 1, "k": 1 << 10, "kb": 1 << 10, "kib": 1 << 10, "m": 1 << 20, "mb": 1 << 20,
             "mib": 1 << 20, "g": 1 << 30, "gb": 1 << 30, "gib": 1 << 30}
    t = str(text).strip().lower()
    num = t.rstrip("kmgib")
    unit = t[len(num):]
    try:
        v = float(num)
    except ValueError:
        v = -1
    if v <= 0 or unit not in units:
        raise argparse.ArgumentTypeError(f"{text!r} is not a size; expected bytes such as 4G, 512M or 1000000")
    return int(v * units[unit])


def fftw_effort(text):
    names = ("estimate", "measure", "patient", "exhaustive")
    t = str(text).lower().removeprefix("fftw_")
    if t not in names:
        raise argparse.ArgumentTypeError(f"{text!r} is not a planner effort; expected one of {', '.join(names)}")
    return t


def winograd_points(text):
    from .toomcook import validate_points
    try:
        validate_points(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None
    return text


def inject_arg(text):
    name, sep, val = str(text).partition("=")
    try:
        f = float(val)
    except ValueError:
        f = -1
    if not sep or not name or f < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: expected BACKEND=FACTOR with FACTOR >= 1, e.g. im2col_blas=1.5")
    return name.strip(), f


def threads_arg(text):
    n = _pos_int(text, "--threads", "a positive integer")
    cores = os.cpu_count() or 1
    if n > cores:
        raise argparse.ArgumentTypeError(f"{n} exceeds the {cores} cores of this machine; expected 1..{cores}")
    return n


# ---------------------------------------------------------------------------- parser
def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="convbench", description="Benchmark convolution algorithms against each other, honestly.")
    p.add_argument("--version", action="version", version=f"convbench {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True

    coretype_help = ("OpenBLAS kernel set, applied before numpy loads: auto (best this CPU supports; "
                     "default), native (OpenBLAS's own detection) or one of " + ", ".join(CORETYPES))

    r = sub.add_parser("run", help="run a sweep and write tables", description=(
        "Sweep problems x backends. Problems come from --problem, --suite/--suite-file and the grid "
        "flags (--sizes with --kernels, --strides, ...); with none of them the default suite runs."))
    g = r.add_argument_group("problems")
    g.add_argument("--problem", action="append", default=[], metavar="DESC",
                   help="a benchdnn descriptor, e.g. mb1ic64ih56oc64kh3ph1 (repeatable)")
    g.add_argument("--suite", action="append", default=[], metavar="NAME", help="a shipped suite (see `convbench suites`)")
    g.add_argument("--suite-file", action="append", default=[], metavar="PATH", help="a file of descriptors")
    g.add_argument("--sizes", type=pair_list("--sizes", "32,64 or 32x48"), help="input sizes (ih=iw, or HxW)")
    g.add_argument("--kernels", type=pair_list("--kernels", "3,5 or 3x1"), help="kernel sizes (default 3)")
    g.add_argument("--strides", type=int_list("--strides"), help="strides (default 1)")
    g.add_argument("--channels", type=int_list("--channels"), help="input channels (default 16)")
    g.add_argument("--out-channels", type=int_list("--out-channels"), help="output channels (default: = input)")
    g.add_argument("--batch", type=int_list("--batch"), help="minibatch sizes (overrides descriptors' mb too)")
    g.add_argument("--padding", type=padding_list, help="valid, same or N (default valid)")
    g.add_argument("--dilation", type=int_list("--dilation"), help="dilation, PyTorch convention (default 1)")
    g.add_argument("--groups", type=int_list("--groups"), help="groups (default 1)")
    g.add_argument("--dtype", type=dtype_list, help="float32 (default) and/or float64")
    g.add_argument("--direction", choices=("fwd", "bwd_d", "both"), default=None,
                   help="forward convolution (fwd, default), transposed (bwd_d) or both")
    g.add_argument("--weight-density", type=density_list, default=[1.0], metavar="D[,D]",
                   help="fractions of non-zero weights (pruned kernels, same zeros for every backend); "
                        "several values run each problem at each density")
    g.add_argument("--dry-run", action="store_true", help="list the problems and backends, run nothing")
    b = r.add_argument_group("backends and fairness")
    b.add_argument("--backends", default="all", metavar="all|a,b",
                   help="backends to run (default: every available one except the reference oracle)")
    b.add_argument("--exclude", default="", metavar="a,b", help="backends to leave out")
    b.add_argument("--threads", type=threads_arg, default=1, help="threads for every library (default 1)")
    b.add_argument("--blas-coretype", default="auto", metavar="KIND", help=coretype_help)
    b.add_argument("--memory-limit", type=byte_size, default=None, metavar="BYTES",
                   help="workspace limit for backends that declare one (default: a fraction of free RAM)")
    b.add_argument("--fftw-effort", type=fftw_effort, default="measure", metavar="EFFORT",
                   help="FFTW planner effort for fft_pyfftw: estimate, measure (default), patient, exhaustive")
    b.add_argument("--fftw-wisdom", choices=("on", "off"), default="on",
                   help="on (default): reuse the FFTW wisdom file, so plans of earlier (possibly higher-effort) "
                        "runs are reused; off: plan from scratch at --fftw-effort alone")
    b.add_argument("--sparse-format", choices=("auto", "csr", "csc", "bsr"), default="auto",
                   help="storage of sparse_csr: auto (fastest of CSR/CSC/BSR, timed in prepare) or one format")
    b.add_argument("--winograd-points", type=winograd_points, default="lavin", metavar="SET",
                   help="Winograd interpolation points: lavin (default), balanced, barabasz, or a "
                        "comma-separated list of rationals such as 0,1,-1,1/2,-1/2,2,-2")
    t = r.add_argument_group("timing")
    t.add_argument("--min-time", type=positive_float, default=0.2, metavar="S", help="timed seconds per cell at least (0.2)")
    t.add_argument("--max-time", type=positive_float, default=2.0, metavar="S", help="timed seconds per cell at most (2)")
    t.add_argument("--min-rounds", type=int_list("--min-rounds"), default=[5], metavar="N", help="rounds per cell at least (5)")
    t.add_argument("--round-time", type=positive_float, default=1e-3, metavar="S", help="target seconds per round (0.001)")
    t.add_argument("--cell-budget", type=positive_float, default=30.0, metavar="S",
                   help="skip timing a cell whose single run exceeds this (30)")
    t.add_argument("--inject-slowdown", action="append", type=inject_arg, default=[], metavar="BACKEND=FACTOR",
                   help="make a backend's timed calls FACTOR times slower (busy wait): for checking "
                        "that the regression gate catches a slowdown; recorded in the rows")
    o = r.add_argument_group("output")
    o.add_argument("--out", default=None, metavar="DIR", help="result directory (default results/<timestamp>)")
    o.add_argument("--resume", default=None, metavar="DIR", help="finish an interrupted run in DIR with its stored settings")
    o.add_argument("--baseline", default=None, metavar="NAME", help="backend for the speed-up table (default torch_onednn)")
    o.add_argument("--quiet", action="store_true", help="no progress display")
    o.add_argument("--no-plots", action="store_true", help="write tables only (no matplotlib figures)")

    lst = sub.add_parser("list", help="backends, their algorithm and capabilities")
    lst.add_argument("--json", action="store_true", help="machine-readable output")

    inf = sub.add_parser("info", help="machine, BLAS kernel set and measured peak GFLOP/s")
    inf.add_argument("--blas-coretype", default="auto", metavar="KIND", help=coretype_help)
    inf.add_argument("--threads", type=threads_arg, default=1, help="threads for the peak measurement (1)")
    inf.add_argument("--json", action="store_true", help="machine-readable output")

    rep = sub.add_parser("report", help="(re)write tables.md, plots, report.md and report.html for a result directory")
    rep.add_argument("dir", metavar="DIR")
    rep.add_argument("--baseline", default=None, metavar="NAME")
    rep.add_argument("--no-plots", action="store_true", help="tables only")

    sub.add_parser("suites", help="list the shipped problem suites")

    cmp_ = sub.add_parser("compare", help="compare two runs offline: ratio, CI, Mann-Whitney, verdict",
                          description="BASE and NEW are convbench result directories or pytest-benchmark "
                                      "JSON files. Exit status: 0 clean, 1 regression (with --fail-above), "
                                      "2 usage error.")
    cmp_.add_argument("base", metavar="BASE")
    cmp_.add_argument("new", metavar="NEW")
    _gate_args(cmp_)
    cmp_.add_argument("--markdown", metavar="FILE", help="also write the table as Markdown (CI summary)")

    cal = sub.add_parser("calibrate", help="A/A runs of a suite: per-cell noise floors and a baseline",
                         description="Runs the suite several times, measures how far each cell's normalised "
                                     "median moves between identical runs, and writes DIR as a baseline "
                                     "(all runs' rounds pooled) with noise.json and calibration.md.")
    cal.add_argument("--suite", default="ci")
    cal.add_argument("--runs", type=int_list("--runs", 2), default=[5], metavar="N")
    cal.add_argument("--out", default="results/baseline", metavar="DIR")
    cal.add_argument("--margin", type=positive_float, default=1.1, help="floor = largest A/A ratio x margin (1.1)")
    cal.add_argument("--keep-runs", action="store_true", help="keep the individual A/A runs in DIR/aa/")
    cal.add_argument("--reuse-runs", metavar="AA_DIR", default=None,
                     help="compute the floors from existing A/A runs (AA_DIR/run1, run2, ...) instead of running")
    cal.add_argument("--normalize", choices=("none", "sentinel", "peers"), default="peers",
                     help="normalisation the floors are measured under (use the gate's)")
    _run_passthrough(cal)

    chk = sub.add_parser("check", help="CI gate: run a suite, compare with a baseline, re-measure suspects",
                         description="Runs the suite, compares it with the baseline and re-runs every cell "
                                     "flagged as a regression; only a regression seen in every attempt fails "
                                     "the check (exit 1).")
    chk.add_argument("--baseline", default="results/baseline", metavar="DIR")
    chk.add_argument("--suite", default="ci")
    chk.add_argument("--retries", type=int_list("--retries", 0), default=[2], metavar="N")
    chk.add_argument("--out", default=None, metavar="DIR")
    _gate_args(chk)
    _run_passthrough(chk)
    return p


def _gate_args(ap) -> None:
    ap.add_argument("--factor", type=positive_float, default=1.2, help="ratio a regression must exceed (1.2)")
    ap.add_argument("--fail-above", type=positive_float, default=None, metavar="FACTOR",
                    help="exit 1 if a cell regresses by more than FACTOR (sets the factor)")
    ap.add_argument("--alpha", type=positive_float, default=0.01, help="significance level of the U test (0.01)")
    ap.add_argument("--normalize", choices=("none", "sentinel", "peers"), default="peers",
                    help="divide times by the geometric mean of the same problem's other backends "
                         "(peers, default), by the drift sentinel timed with them (sentinel), or not (none)")


def _run_passthrough(ap) -> None:
    ap.add_argument("--threads", type=threads_arg, default=1)
    ap.add_argument("--backends", default="all", metavar="all|a,b")
    ap.add_argument("--min-time", type=positive_float, default=0.2, metavar="S")
    ap.add_argument("--max-time", type=positive_float, default=1.0, metavar="S")
    ap.add_argument("--inject-slowdown", action="append", type=inject_arg, default=[], metavar="BACKEND=FACTOR")
    ap.add_argument("--blas-coretype", default="auto", metavar="KIND")
    ap.add_argument("--quiet", action="store_true")


# ---------------------------------------------------------------------------- helpers
def _prescan_coretype(argv: list[str]) -> str | None:
    """Value of --blas-coretype in argv (for use before argparse and numpy)."""
    for i, a in enumerate(argv):
        if a == "--blas-coretype" and i + 1 < len(argv):
            return argv[i + 1]
        if a.startswith("--blas-coretype="):
            return a.split("=", 1)[1]
    return None


def _expand_problems(a) -> list:
    from .problem import ConvProblem
    from .suites import load_suite
    from .sweep import expand_grid

    directions = {"fwd": [False], "bwd_d": [True], "both": [False, True], None: [False]}[a.direction]
    dtypes = a.dtype or ["float32"]
    problems: list = []
    tags: dict = {}

    def add_variants(p, suite: str = "", mult: int = 1):
        for mb in (a.batch or [None]):
            for dt in (a.dtype or [None]):
                for tr in (directions if a.direction else [None]):
                    ch = {}
                    if mb is not None:
                        ch["mb"] = mb
                    if dt is not None:
                        ch["dtype"] = dt
                    if tr is not None:
                        ch["transposed"] = tr
                    q = p.replace(**ch) if ch and hasattr(p, "replace") else p
                    problems.append(q)
                    if suite:
                        tags.setdefault(q.label, (suite, mult))

    for d in a.problem:
        try:
            add_variants(ConvProblem.parse(d))
        except ValueError as e:
            raise UsageError(f"--problem: {e}") from None
    for name in a.suite:
        try:
            entries = load_suite(name)
        except ValueError as e:
            raise UsageError(f"--suite: {e}") from None
        for e in entries:
            add_variants(e.problem, name, e.multiplicity)
    for path in a.suite_file:
        try:
            entries = load_suite(path, is_path=True)
        except ValueError as e:
            raise UsageError(str(e)) from None
        for e in entries:
            add_variants(e.problem, Path(path).stem, e.multiplicity)
    grid_flags = [a.kernels, a.strides, a.channels, a.out_channels, a.padding, a.dilation, a.groups]
    if a.sizes:
        problems += expand_grid(
            sizes=a.sizes, kernels=a.kernels or [(3, 3)], strides=a.strides or [1],
            channels=a.channels or [16], out_channels=a.out_channels, batch=a.batch or [1],
            padding=a.padding or [0], dilation=a.dilation or [1], groups=a.groups or [1],
            dtypes=dtypes, transposed=directions)
    elif any(v is not None for v in grid_flags):
        raise UsageError("convbench run: grid flags (--kernels, --strides, ...) need --sizes, e.g. --sizes 32,64")
    if not problems:
        for e in load_suite("default"):
            add_variants(e.problem, "default", e.multiplicity)
    # drop exact duplicates, keep order
    seen = set()
    uniq = []
    for p in problems:
        if p.label not in seen:
            seen.add(p.label)
            uniq.append(p)
    return uniq, tags


def _resolve_backends(spec: str, exclude: str) -> list[str]:
    from .backends import available_backends, registered_backends, unavailable_reason
    avail = available_backends()
    if spec.strip().lower() == "all":
        names = [n for n in avail if n != "reference"]
    else:
        names = []
        for n in spec.split(","):
            n = n.strip()
            if not n:
                raise UsageError(f"--backends {spec!r}: empty name; expected all or names from: {', '.join(avail)}")
            if n not in registered_backends():
                raise UsageError(f"--backends: unknown backend {n!r}; available: {', '.join(avail)}")
            if n not in avail:
                raise UsageError(f"--backends: {n!r} is not available here ({unavailable_reason(n)}); "
                                 f"available: {', '.join(avail)}")
            names.append(n)
    for n in [e.strip() for e in exclude.split(",") if e.strip()]:
        if n not in registered_backends():
            raise UsageError(f"--exclude: unknown backend {n!r}; registered: {', '.join(registered_backends())}")
        names = [m for m in names if m != n]
    if not names:
        raise UsageError("no backends left to run")
    return list(dict.fromkeys(names))


def _apply_algorithm_settings(config: dict) -> None:
    """Module-level knobs of some backends, from the run configuration (recorded in meta.json)."""
    from .backends import unavailable_reason
    if unavailable_reason("fft_pyfftw") is None:
        from .backends.fft import set_planner_effort, set_wisdom
        set_planner_effort(config.get("fftw_effort", "measure"))
        set_wisdom(config.get("fftw_wisdom", "on") == "on")
    if unavailable_reason("winograd_f4x3") is None:
        from .backends.winograd import set_points
        set_points(config.get("winograd_points", "lavin"))
    if unavailable_reason("sparse_csr") is None:
        from .backends.matrix import set_sparse_format
        set_sparse_format(config.get("sparse_format", "auto"))


def _check_out_dir(path: Path, resume: bool) -> None:
    if path.exists() and not path.is_dir():
        raise UsageError(f"--out {str(path)!r} is a file; expected a directory (new or empty)")
    if not resume and (path / "summary.csv").exists():
        raise UsageError(f"--out {str(path)!r} already holds results; use --resume {path} to finish it "
                         f"or choose another directory")
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / ".convbench-write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as e:
        raise UsageError(f"--out {str(path)!r} is not writable ({e.strerror})") from None


# ---------------------------------------------------------------------------- commands
def cmd_run(a, argv: list[str], coretype: dict) -> int:
    from .problem import ConvProblem
    from .sweep import InvalidProblem

    stored = None
    if a.resume:
        rdir = Path(a.resume)
        if not (rdir / "meta.json").is_file():
            raise UsageError(f"--resume {a.resume!r}: no meta.json there; expected a convbench result directory")
        try:
            stored = json.loads((rdir / "meta.json").read_text())["config"]
        except (ValueError, KeyError, OSError) as e:
            raise UsageError(f"--resume {a.resume!r}: unreadable meta.json ({e})") from None
        out = rdir
    else:
        out = Path(a.out) if a.out else Path("results") / time.strftime("%Y%m%d-%H%M%S")
    if a.out and a.resume and Path(a.out) != Path(a.resume):
        raise UsageError("--out and --resume name different directories; give only --resume DIR")

    if stored is None:
        problems, tags = _expand_problems(a)
        backends = _resolve_backends(a.backends, a.exclude)
        config = dict(problems=[p.label if isinstance(p, ConvProblem) else
                                {"invalid": p.label, "reason": p.reason, "dtype": p.dtype,
                                 "transposed": p.transposed} for p in problems],
                      backends=backends, threads=a.threads, min_time=a.min_time, max_time=max(a.max_time, a.min_time),
                      min_rounds=a.min_rounds[0], round_time=a.round_time, cell_budget=a.cell_budget,
                      weight_density=a.weight_density, memory_limit=a.memory_limit,
                      baseline=a.baseline, blas_coretype=a.blas_coretype, fftw_effort=a.fftw_effort,
                      fftw_wisdom=a.fftw_wisdom, winograd_points=a.winograd_points, sparse_format=a.sparse_format,
                      inject={k: v for k, v in a.inject_slowdown},
                      tags={k: list(v) for k, v in tags.items()})
        for k in config["inject"]:
            if k not in backends:
                raise UsageError(f"--inject-slowdown: {k!r} is not among the backends run ({', '.join(backends)})")
    else:
        config = stored
        problems = [ConvProblem.parse(x) if isinstance(x, str) else
                    InvalidProblem(x["invalid"], x["reason"], x.get("dtype", "float32"), x.get("transposed", False))
                    for x in config["problems"]]
        backends = _resolve_backends(",".join(config["backends"]), "")

    if a.dry_run:
        print(f"{len(problems)} problems x {len(backends)} backends: {', '.join(backends)}")
        for p in problems:
            print(f"  {p.label}" + (f"   (invalid: {p.reason})" if isinstance(p, InvalidProblem) else ""))
        return EXIT_OK

    _check_out_dir(out, resume=bool(a.resume))

    from . import threads
    from .backends import unavailable_reason
    from .blas import autodetected_coretype
    from .machine import git_commit, machine_info
    from .report import write_report, write_tables
    from .results import SCHEMA_VERSION, ResultWriter, load_summary, write_meta
    from .runner import Progress, RunConfig, run_sweep
    from .timing import TimingConfig

    threads.set_threads(config["threads"])
    _apply_algorithm_settings(config)
    cfg = RunConfig(problems=problems, backends=backends, threads=config["threads"],
                    timing=TimingConfig(round_time=config["round_time"], min_rounds=config["min_rounds"],
                                        min_time=config["min_time"], max_time=config["max_time"]),
                    cell_budget_s=config["cell_budget"], weight_densities=tuple(config["weight_density"]),
                    memory_limit_bytes=config["memory_limit"], inject=config.get("inject", {}),
                    tags={k: tuple(v) for k, v in config.get("tags", {}).items()})
    done = set()
    meta_path = out / "meta.json"
    if a.resume:
        meta = json.loads(meta_path.read_text())
        try:
            df = load_summary(out)
            done = set(zip(df.cell, df.backend))
        except Exception:
            done = set()
        meta.setdefault("resumed", []).append({"at": time.strftime("%Y-%m-%dT%H:%M:%S"), "argv": argv})
    else:
        meta = {"tool": "convbench", "schema_version": SCHEMA_VERSION, "convbench_version": __version__,
                "started": time.strftime("%Y-%m-%dT%H:%M:%S"), "argv": ["convbench"] + argv,
                "config": config, "machine": machine_info(), "git": git_commit(),
                "blas_coretype": coretype, "blas_autodetected": autodetected_coretype()}
    meta["threads"] = threads.thread_report()
    if unavailable_reason("fft_pyfftw") is None:
        from .backends.fft import fftw_build, wisdom_state
        meta["fftw_wisdom"] = wisdom_state()  # plans can come from an earlier run's wisdom
        meta["fftw_build"] = fftw_build()     # which SIMD codelets the transforms run
    if "peaks" not in meta:
        from .machine import roofline_peaks
        meta["peaks"] = roofline_peaks()
    write_meta(out, meta)
    warn = meta.get("machine", {}).get("blas", {}).get("warning")
    if warn:
        print(f"warning: {warn}", file=sys.stderr)

    writer = ResultWriter(out)
    progress = Progress(len(problems) * len(config["weight_density"]), enabled=not a.quiet)
    n_cells = len(problems) * len(backends) * len(config["weight_density"])
    print(f"convbench: {len(problems)} problems x {len(backends)} backends ({n_cells} cells), "
          f"{config['threads']} thread(s), results in {out}", file=sys.stderr)
    try:
        res = run_sweep(cfg, writer, done=done, progress=progress)
    finally:
        writer.close()
        meta["threads"] = threads.thread_report()
    meta["finished"] = None if res["interrupted"] else time.strftime("%Y-%m-%dT%H:%M:%S")
    write_meta(out, meta)
    try:
        written = write_report(out, a.baseline or config.get("baseline"), plots=not a.no_plots)
    except Exception as e:  # the rows are on disk; a reporting failure must not hide them
        print(f"warning: report generation failed ({e.__class__.__name__}: {e}); rows are in "
              f"{out}/summary.csv, retry with `convbench report {out}`", file=sys.stderr)
        written = {"tables": write_tables(out, a.baseline or config.get("baseline"))}
    tables = written["tables"]
    if res["interrupted"]:
        print(f"interrupted: {res['problems']} of {len(problems)} problems finished, every finished row "
              f"is in {out}/summary.csv. Resume with:\n  convbench run --resume {shlex.quote(str(out))}",
              file=sys.stderr)
        return 130
    _print_summary(out, tables)
    if written.get("report_md"):
        print(f"report: {written['report_md']} and {written['report_html']} "
              f"({len(written.get('plots', {}))} figures in {out}/plots)")
    return EXIT_OK


def _print_summary(out: Path, tables: Path) -> None:
    from .results import load_summary
    df = load_summary(out)
    counts = df.status.value_counts().to_dict()
    print(f"\nwrote {out}/summary.csv ({len(df)} rows: "
          + ", ".join(f"{counts.get(s, 0)} {s}" for s in ("passed", "skipped", "mistrusted", "failed")) + ")")
    print(f"      {out}/samples.csv, {out}/meta.json")
    print(f"tables: {tables}")
    text = tables.read_text()
    start = text.find("## Fastest backend per problem")
    end = text.find("\n## ", start + 5)
    if start >= 0:
        print("\n" + text[start:end].strip())


def cmd_list(a) -> int:
    from .backends import get_backend, registered_backends, unavailable_reason
    rows = []
    for name in registered_backends():
        reason = unavailable_reason(name)
        if reason is None:
            d = get_backend(name).describe()
            d["available"] = True
        else:
            d = {"name": name, "available": False, "reason": reason}
        rows.append(d)
    if a.json:
        print(json.dumps(rows, indent=2, default=str))
        return EXIT_OK
    for d in rows:
        if not d["available"]:
            print(f"{d['name']:<16} not available: {d['reason']}")
            continue
        caps = []
        caps.append("dtypes " + "/".join(x.replace("float", "f") for x in d["dtypes"]))
        if d["kernel_sizes"]:
            caps.append("kernels " + ",".join(f"{a}x{b}" for a, b in d["kernel_sizes"]))
        if d["max_kernel"]:
            caps.append(f"kernel <= {d['max_kernel']}")
        caps.append("strides " + (",".join(map(str, d["strides"])) if d["strides"] else "any"))
        caps.append("dilation" if d["dilation"] else "no dilation")
        caps.append("groups" if d["groups"] else "no groups")
        if d["transposed"]:
            caps.append("transposed")
        caps.append("exact" if d["exact"] else f"tol {d['rtol']['float32']:g} (f32)")
        if d["memory_limit_bytes"]:
            caps.append(f"workspace <= {d['memory_limit_bytes'] / 2**30:.1f} GiB")
        if d["max_channel_pairs"]:
            caps.append(f"<= {d['max_channel_pairs']} channel pairs")
        caps.append(f"threads: {d['threads']}")
        kind = "peer" if d["peer"] else "own"
        print(f"{d['name']:<16} {d['algorithm']:<26} [{kind}] {d['description']}")
        print(f"{'':<16} {'; '.join(caps)}")
    return EXIT_OK


def cmd_info(a, coretype: dict) -> int:
    from . import threads
    from .backends import unavailable_reason
    from .blas import autodetected_coretype
    from .machine import git_commit, machine_info, peak_gflops, roofline_peaks
    threads.set_threads(a.threads)
    info = machine_info()
    info["blas_coretype"] = coretype
    info["blas_autodetected"] = autodetected_coretype()
    info["peak"] = dict(peak_gflops(1.0, a.threads), **{k: v for k, v in roofline_peaks(0.6).items()
                                                        if k in ("fma_gflops", "bandwidth_gbs")})
    info["git"] = git_commit()
    if unavailable_reason("fft_pyfftw") is None:
        from .backends.fft import fftw_build
        info["fftw_build"] = fftw_build()
    if a.json:
        print(json.dumps(info, indent=2, default=str))
        return EXIT_OK
    blas = info["blas"]
    print(f"convbench {info['convbench']} on {info['cpu_model']} ({info['cores']} cores, "
          f"{(info['memory_bytes'] or 0) / 2**30:.1f} GiB), Python {info['python']}")
    print(f"CPU flags: {' '.join(info['cpu_flags'])}")
    print(f"OpenBLAS kernel set: best for this CPU {blas['cpu_best']}; environment had "
          f"OPENBLAS_CORETYPE={coretype.get('env_before')}; OpenBLAS alone picks "
          f"{info['blas_autodetected']}; this process runs "
          f"{', '.join(str(lib['architecture']) for lib in blas['libraries']) or '?'} "
          f"(OPENBLAS_CORETYPE={blas['env']}, --blas-coretype {coretype['requested']})")
    from .blas import coretype_rank
    env_before = coretype.get("env_before")
    for origin, kind in (("the environment's OPENBLAS_CORETYPE", env_before),
                         ("OpenBLAS's own detection", info["blas_autodetected"])):
        if kind and coretype_rank(kind) < coretype_rank(blas["cpu_best"]):
            print(f"  note: {origin} selects {kind}, below what this CPU supports ({blas['cpu_best']}); "
                  f"`--blas-coretype auto` (the default) runs {blas['cpu_best']}, `native` would run {kind}.")
    if blas.get("warning"):
        print(f"  WARNING: {blas['warning']}")
    for lib in blas["libraries"]:
        print(f"  {lib['internal_api']} {lib['version']} [{lib['architecture']}] {lib['filepath']}")
    fma = info["peak"].get("fma_gflops")
    print(f"peak, {a.threads} thread(s): sgemm {info['peak']['sgemm_gflops']:.1f} GFLOP/s, "
          f"dgemm {info['peak']['dgemm_gflops']:.1f} GFLOP/s (best 1024^3 GEMM); one core's FMA peak "
          f"{'%.1f GFLOP/s' % fma if fma else 'unknown'}; copy bandwidth {info['peak']['bandwidth_gbs']:.1f} GB/s")
    fftw = info.get("fftw_build")
    if fftw:
        lacks = (f"; this CPU also has {', '.join(fftw['simd_missing'])}, which this build has no codelets for"
                 if fftw["simd_missing"] else "")
        print(f"FFTW (fft_pyfftw): {fftw['version']} {fftw['path']}{lacks}")
    libs = info["libraries"]
    print("libraries: " + ", ".join(f"{k} {v}" for k, v in libs.items() if v))
    missing = [k for k, v in libs.items() if not v]
    if missing:
        print("not installed: " + ", ".join(missing))
    return EXIT_OK


def cmd_report(a) -> int:
    from .report import write_report
    from .results import ResultsError
    d = Path(a.dir)
    if not d.is_dir():
        raise UsageError(f"report: {a.dir!r} is not a directory; expected a convbench result directory")
    try:
        w = write_report(d, a.baseline, plots=not a.no_plots)
    except ResultsError as e:
        raise UsageError(f"report: {e}") from None
    print(f"tables: {w['tables']}")
    print(f"report: {w['report_md']} and {w['report_html']} ({len(w['plots'])} figures in {d}/plots)")
    return EXIT_OK


def cmd_suites(a) -> int:
    from .suites import list_suites, load_suite
    for name, desc in list_suites().items():
        entries = load_suite(name)
        layers = sum(e.multiplicity for e in entries)
        print(f"{name:<22} {len(entries):>3} shapes {layers:>4} layers  {desc}")
    return EXIT_OK


def cmd_compare(a) -> int:
    from .compare import compare_runs, load_run, render_markdown, render_text
    from .results import ResultsError
    try:
        base, new = load_run(a.base), load_run(a.new)
    except ResultsError as e:
        raise UsageError(f"compare: {e}") from None
    factor = a.fail_above or a.factor
    c = compare_runs(base, new, factor=factor, alpha=a.alpha, normalize=a.normalize)
    print(render_text(c))
    if a.markdown:
        Path(a.markdown).write_text(render_markdown(c))
    return EXIT_FAIL if (a.fail_above and c.regressions) else EXIT_OK


def _run_argv(a, out: Path, problems: list[str] | None = None, backends: str | None = None) -> list[str]:
    argv = ["run", "--out", str(out), "--threads", str(a.threads), "--min-time", str(a.min_time),
            "--max-time", str(a.max_time), "--backends", backends or a.backends, "--blas-coretype", a.blas_coretype]
    if problems:
        for pr in problems:
            argv += ["--problem", pr]
    else:
        argv += ["--suite", a.suite]
    for k, v in a.inject_slowdown:
        argv += ["--inject-slowdown", f"{k}={v}"]
    if a.quiet:
        argv.append("--quiet")
    return argv + ["--no-plots"]


class _RunFailed(Exception):
    """A nested ``convbench run`` of calibrate/check returned a non-zero status."""

    def __init__(self, status: int):
        super().__init__(status)
        self.status = status


def _nested_run(argv: list[str], coretype: dict) -> Path:
    status = cmd_run(build_parser().parse_args(argv), argv, coretype)
    if status != 0:
        raise _RunFailed(status)
    return Path(argv[argv.index("--out") + 1])


def cmd_calibrate(a, coretype: dict) -> int:
    """A/A runs -> per-cell noise floors; DIR becomes a baseline with all runs' rounds pooled."""
    import shutil
    from .gate import aa_run_dirs, write_baseline
    out = Path(a.out)
    if a.reuse_runs:
        dirs = aa_run_dirs(Path(a.reuse_runs))
        if len(dirs) < 2:
            raise UsageError(f"calibrate: --reuse-runs {a.reuse_runs!r} holds {len(dirs)} runs; need 2 or more")
    else:
        if out.exists() and any(out.iterdir()):
            raise UsageError(f"calibrate: --out {str(out)!r} is not empty; remove it or choose another directory")
        dirs = []
        for i in range(a.runs[0]):
            d = out / "aa" / f"run{i + 1}"
            print(f"calibrate: A/A run {i + 1} of {a.runs[0]} -> {d}", file=sys.stderr)
            try:
                dirs.append(_nested_run(_run_argv(a, d), coretype))
            except _RunFailed as e:
                return e.status
    ws = write_baseline(dirs, out, normalize=a.normalize, margin=a.margin, suite=a.suite)
    if not a.keep_runs and not a.reuse_runs:
        shutil.rmtree(out / "aa")
    print(f"baseline with noise floors in {out} (largest A/A ratio {ws[0][1]:.3f} at {ws[0][0]})"
          if ws else f"baseline in {out}")
    return EXIT_OK


def cmd_check(a, coretype: dict) -> int:
    """Run the suite, compare with the baseline, re-measure flagged cells; fail on persistent ones."""
    from .compare import compare_runs, load_run, render_markdown, render_text
    from .gate import persistent_regressions
    from .results import ResultsError
    try:
        base = load_run(a.baseline)
    except ResultsError as e:
        raise UsageError(f"check: baseline {e}") from None
    out = Path(a.out) if a.out else Path("results") / f"check-{time.strftime('%Y%m%d-%H%M%S')}"
    factor = a.fail_above or a.factor
    try:
        c = compare_runs(base, load_run(_nested_run(_run_argv(a, out / "run"), coretype)),
                         factor=factor, alpha=a.alpha, normalize=a.normalize)
    except _RunFailed as e:
        return e.status
    print(render_text(c))
    (out / "compare.md").write_text(render_markdown(c))
    foreign = [w for w in c.warnings if w.split(" differs")[0] in ("cpu", "cores", "blas kernels", "threads")]
    if foreign:
        print("\ncheck: the baseline was recorded on a different machine or configuration "
              f"({'; '.join(foreign)}); the comparison above is informational and does not gate. "
              "Record a baseline on this machine kind with `make baseline`.")
        return EXIT_OK

    def remeasure(attempt: int, problems: list[str], backends: str):
        return load_run(_nested_run(_run_argv(a, out / f"retry{attempt}", problems, backends), coretype))

    try:
        confirmed = persistent_regressions(base, c, remeasure, retries=a.retries[0], factor=factor,
                                           alpha=a.alpha, normalize=a.normalize,
                                           log=lambda s: print(s, file=sys.stderr))
    except _RunFailed as e:
        return e.status
    if confirmed:
        print(f"\ncheck FAILED: {len(confirmed)} regression(s) confirmed on every re-measurement:")
        for r in confirmed:
            print(f"  {r.problem} / {r.backend}: {r.ratio:.2f}x (threshold {r.threshold:.2f}, p={r.p:.1e})")
        return EXIT_FAIL if a.fail_above else EXIT_OK
    print(f"\ncheck passed: no regression above {factor:g}x (or the cell's noise floor) persisted")
    return EXIT_OK


# ---------------------------------------------------------------------------- entry
def _prescan_threads(argv: list[str]) -> int:
    for i, a in enumerate(argv):
        val = argv[i + 1] if a == "--threads" and i + 1 < len(argv) else \
            a.split("=", 1)[1] if a.startswith("--threads=") else None
        if val is not None:
            try:
                return max(1, int(val))
            except ValueError:
                return 1  # argparse reports the bad value
    return 1


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit status (0 ok, 1 failure found, 2 usage error)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        coretype = {"requested": None}
        if argv[:1] in (["run"], ["info"], ["calibrate"], ["check"]):
            # both must happen before numpy/OpenMP runtimes load
            coretype = apply_coretype(_prescan_coretype(argv) or "auto")
            from . import threads
            threads.preset_environment(_prescan_threads(argv))
        a = build_parser().parse_args(argv)
        if a.command == "run":
            return cmd_run(a, argv, coretype)
        if a.command == "list":
            return cmd_list(a)
        if a.command == "info":
            return cmd_info(a, coretype)
        if a.command == "report":
            return cmd_report(a)
        if a.command == "compare":
            return cmd_compare(a)
        if a.command == "calibrate":
            return cmd_calibrate(a, coretype)
        if a.command == "check":
            return cmd_check(a, coretype)
        return cmd_suites(a)
    except (UsageError, ValueError) as e:
        msg = str(e)
        print(msg if msg.startswith("convbench") else f"convbench: error: {msg}", file=sys.stderr)
        return EXIT_USAGE
    except SystemExit as e:  # argparse --help / --version
        return int(e.code or 0)
    except BrokenPipeError:
        return EXIT_OK


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
