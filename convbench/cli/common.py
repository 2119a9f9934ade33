"""What every command shares: usage errors, value parsers, the option table, flag groups.

Each option is declared once, as an :class:`Option`: its flag, default, help and a parser.
The parser accepts both the command line's text (``"32,64"``) and the Python values a
notebook passes to :func:`convbench.run` (``[32, 64]``), and is idempotent on its own
output, so argparse and the Python API validate with the same code and the same
messages. Commands add whole groups (:data:`PROBLEM_OPTIONS`, :data:`BACKEND_OPTIONS`,
:data:`TIMING_OPTIONS`, :data:`OUTPUT_OPTIONS`, :data:`GATE_OPTIONS`) with
:func:`add_options`; a command whose policy differs (the gate's shorter ``--max-time``)
says so with :meth:`Option.but`.

Nothing here imports numpy: ``--blas-coretype`` must reach ``OPENBLAS_CORETYPE`` before
OpenBLAS loads.
"""

from __future__ import annotations

import argparse
import contextvars
import dataclasses
import os
from dataclasses import dataclass
from typing import Any, Callable

__all__ = ["UsageError", "EXIT_OK", "EXIT_FAIL", "EXIT_USAGE", "Parser", "Option", "add_options", "normalize",
           "PROBLEM_OPTIONS", "BACKEND_OPTIONS", "TIMING_OPTIONS", "OUTPUT_OPTIONS", "GATE_OPTIONS", "RUN_OPTIONS",
           "GATE_RUN_OPTIONS", "gate_run_kwargs", "options_named", "option", "int_list", "single_int", "extent_list",
           "padding_list", "dtype_list", "positive_float", "fraction", "density_list", "byte_size", "threads_arg",
           "threads_list", "cache_list",
           "inject_arg"]

EXIT_OK, EXIT_FAIL, EXIT_USAGE = 0, 1, 2


class UsageError(ValueError):
    """Bad input from the user: printed as one line, exit status 2 (a ``ValueError`` in the API)."""


class Parser(argparse.ArgumentParser):
    """argparse that reports an error as one :class:`UsageError` line, no usage dump."""

    def error(self, message):
        raise UsageError(f"{self.prog}: error: {message}")


# ---------------------------------------------------------------------------- value parsers
def _items(value, what: str) -> list:
    """Comma-separated text or a Python scalar/iterable, as a list of items."""
    if isinstance(value, str):
        items = [t.strip() for t in value.split(",")]
        if not value.strip() or any(t == "" for t in items):
            raise argparse.ArgumentTypeError(f"{value!r} has an empty value; expected {what}")
        return items
    if isinstance(value, (list, tuple)):
        if not value:
            raise argparse.ArgumentTypeError(f"{value!r} is empty; expected {what}")
        return list(value)
    return [value]


def _int(tok, what: str, minimum: int = 1, maximum: int | None = None) -> int:
    if isinstance(tok, bool):
        raise argparse.ArgumentTypeError(f"{tok!r} is not an integer; expected {what}")
    try:
        v = int(tok)
        if isinstance(tok, float) and v != tok:
            raise ValueError
    except (TypeError, ValueError):
        raise argparse.ArgumentTypeError(f"{tok!r} is not an integer; expected {what}") from None
    if v < minimum or (maximum is not None and v > maximum):
        raise argparse.ArgumentTypeError(f"{v} is out of range; expected {what}")
    return v


def _number(tok, what: str) -> float:
    if isinstance(tok, bool):
        raise argparse.ArgumentTypeError(f"{tok!r} is not a number; expected {what}")
    try:
        return float(tok)
    except (TypeError, ValueError):
        raise argparse.ArgumentTypeError(f"{tok!r} is not a number; expected {what}") from None


def int_list(minimum: int = 1, example: str = "1,2"):
    """Comma-separated integers >= ``minimum``."""
    what = f"comma-separated integers >= {minimum}, e.g. {example}"

    def parse(value):
        return [_int(t, what, minimum) for t in _items(value, what)]
    return parse


def single_int(minimum: int = 1, example: str = "5", maximum: int | None = None, why: str = ""):
    """One integer >= ``minimum`` (and <= ``maximum``, for the reason ``why``)."""
    what = (f"an integer >= {minimum}" if maximum is None else f"an integer from {minimum} to {maximum}{why}") + \
        f", e.g. {example}"

    def parse(value):
        return _int(value, what, minimum, maximum)
    return parse


#: the most problems ``--fuzz`` draws: 100000 take about 3 s to draw and days to run
MAX_FUZZ = 100_000


def extent_list(example: str):
    """Comma-separated sizes: ``N`` (every axis), ``HxW`` or ``DxHxW`` (text); ints or tuples of
    one, two or three ints (Python). Parsed as tuples of one value or one per axis."""
    what = f"comma-separated positive integers, HxW or DxHxW, e.g. {example}"

    def one(t):
        if isinstance(t, (tuple, list)):
            if not 1 <= len(t) <= 3:
                raise argparse.ArgumentTypeError(f"{t!r} is not N, HxW or DxHxW; expected {what}")
            return tuple(_int(v, what) for v in t)
        if isinstance(t, str):
            parts = t.lower().split("x")
            if len(parts) > 3:
                raise argparse.ArgumentTypeError(f"{t!r} is not N, HxW or DxHxW; expected {what}")
            return tuple(_int(v, what) for v in parts)
        return (_int(t, what),)

    def parse(value):
        if isinstance(value, tuple) and 2 <= len(value) <= 3 and all(isinstance(v, int) for v in value):
            value = [value]
        return [one(t) for t in _items(value, what)]
    return parse


def padding_list(value):
    what = "comma-separated 'valid', 'same' or integers >= 0, e.g. valid,same,1"
    out = []
    for t in _items(value, what):
        if isinstance(t, str) and t.lower() in ("valid", "same"):
            out.append(t.lower())
        else:
            out.append(_int(t, what, 0))
    return out


_DTYPES = {"f32": "float32", "float32": "float32", "f64": "float64", "float64": "float64"}


def pool_list(value):
    from ..problem import POOL_ALGS
    what = f"comma-separated pooling algorithms: {', '.join(POOL_ALGS)}"
    out = []
    for t in _items(value, what):
        if str(t).lower() not in POOL_ALGS:
            raise argparse.ArgumentTypeError(f"unknown pooling algorithm {t!r}; expected {what}")
        out.append(str(t).lower())
    return list(dict.fromkeys(out))


def dtype_list(value):
    what = "comma-separated float32 (f32) and/or float64 (f64)"
    out = []
    for t in _items(value, what):
        name = _DTYPES.get(str(t).lower())
        if name is None:
            raise argparse.ArgumentTypeError(f"unknown dtype {t!r}; expected {what}")
        out.append(name)
    return list(dict.fromkeys(out))


def positive_float(value):
    v = _number(value, "a positive finite number")
    if not v > 0 or v == float("inf"):
        raise argparse.ArgumentTypeError(f"{value!r} must be a positive finite number")
    return v


def fraction(value):
    """A number in (0, 1) (a significance level)."""
    v = _number(value, "a number between 0 and 1, e.g. 0.01")
    if not 0 < v < 1:
        raise argparse.ArgumentTypeError(f"{value!r} is out of range; expected a number between 0 and 1, e.g. 0.01")
    return v


def density_list(value):
    what = "comma-separated fractions in (0, 1], e.g. 1,0.1"
    out = []
    for t in _items(value, what):
        v = _number(t, what)
        if not 0 < v <= 1:
            raise argparse.ArgumentTypeError(f"{t!r} is out of range; expected {what}")
        out.append(v)
    return list(dict.fromkeys(out))


def byte_size(value):
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    from ..machine import parse_bytes
    try:
        return parse_bytes(value, "")
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a size; expected bytes such as 4G, 512M or 1000000") \
            from None


def fftw_effort(value):
    names = ("estimate", "measure", "patient", "exhaustive")
    t = str(value).lower().removeprefix("fftw_")
    if t not in names:
        raise argparse.ArgumentTypeError(f"{value!r} is not a planner effort; expected one of {', '.join(names)}")
    return t


def winograd_points(value):
    from ..toomcook import validate_points
    try:
        validate_points(value)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None
    return value


def inject_arg(value):
    if isinstance(value, tuple) and len(value) == 2:
        name, f = value
    else:
        name, sep, val = str(value).partition("=")
        f = val if sep else -1
    try:
        f = float(f)
    except (TypeError, ValueError):
        f = -1
    if not name or f < 1:
        raise argparse.ArgumentTypeError(f"{value!r}: expected BACKEND=FACTOR with FACTOR >= 1, e.g. im2col_blas=1.5")
    return str(name).strip(), f


def threads_arg(value):
    n = _int(value, "a positive integer")
    cores = os.cpu_count() or 1
    if n > cores:
        raise argparse.ArgumentTypeError(f"{n} exceeds the {cores} cores of this machine; expected 1..{cores}")
    return n


def _distinct(value, what: str, one: Callable) -> list:
    """Comma-separated items, each parsed by ``one`` (which raises for a bad item), none twice."""
    out = []
    for t in _items(value, what):
        v = one(t)
        if v in out:
            raise argparse.ArgumentTypeError(f"{value!r} repeats {v}; expected {what}")
        out.append(v)
    return out


def threads_list(value):
    """``--threads 1,2``: distinct thread counts, each within this machine's cores, in run order."""
    cores = os.cpu_count() or 1
    what = f"comma-separated thread counts in 1..{cores}, e.g. 1,2"

    def one(t):
        n = _int(t, what)
        if n > cores:
            raise argparse.ArgumentTypeError(f"{n} exceeds the {cores} cores of this machine; expected {what}")
        return n
    return _distinct(value, what, one)


def cache_list(value):
    """``--cache hot|cold|hot,cold``: the cache states every cell is timed in."""
    from ..cells import CACHES
    what = "hot, cold or hot,cold"

    def one(t):
        t = str(t).strip().lower()
        if t not in CACHES:
            raise argparse.ArgumentTypeError(f"{t!r} is not a cache state; expected {what}")
        return t
    return _distinct(value, what, one)


def _directions(value):
    from ..sweep import parse_directions
    try:
        return parse_directions(value)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e).split(": ", 1)[-1]) from None


def choice(*names):
    def parse(value):
        if value not in names:
            raise argparse.ArgumentTypeError(f"{value!r} is not one of {', '.join(names)}")
        return value
    return parse


def _text(value):
    return str(value)


def _names(value):
    """Backend names: ``"a,b"`` (text) or ``["a", "b"]`` (Python), kept as comma-separated text."""
    if isinstance(value, (list, tuple)):
        return ",".join(str(v) for v in value)
    return str(value)


def _append(parse):
    """A repeatable option's values: one item, a list of items, or (``inject_slowdown``) a dict."""
    def parse_all(values):
        if isinstance(values, str):
            values = [values]
        elif isinstance(values, dict):
            values = list(values.items())
        return [parse(v) for v in values]
    return parse_all


# ---------------------------------------------------------------------------- options
@dataclass(frozen=True)
class Option:
    """One flag: the Python keyword (``name``) and command-line spelling, its parser,
    default and help. ``action``: ``"append"`` (repeatable) or ``"flag"`` (store_true)."""

    name: str
    parse: Callable | None
    default: Any = None
    help: str = ""
    metavar: str | None = None
    action: str | None = None
    choices: tuple | None = None

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    def but(self, **changes) -> "Option":
        """The same option with another default or help (a command's own policy)."""
        return dataclasses.replace(self, **changes)

    def add_to(self, parser, given_only: bool = False) -> None:
        kw: dict = dict(help=self.help, dest=self.name)
        if given_only:  # absent from the parsed namespace unless given (the command fills defaults)
            kw["default"] = argparse.SUPPRESS
        if self.action == "flag":
            parser.add_argument(self.flag, action="store_true", **kw)
            return
        if self.metavar:
            kw["metavar"] = self.metavar
        if self.choices:
            kw["choices"] = self.choices
        elif self.parse is not None:
            kw["type"] = self.parse
        kw.setdefault("default", [] if self.action == "append" else self.default)
        parser.add_argument(self.flag, action="append" if self.action == "append" else "store", **kw)

    def coerce(self, value):
        """Validate a Python value the way the command line validates text."""
        if self.action == "flag":
            return bool(value)
        if value is None:
            return None
        if self.action == "append":
            return _append(self.parse or _text)(value)
        if self.choices:
            return choice(*self.choices)(value)
        return self.parse(value) if self.parse is not None else value


def option(*args, **kwargs) -> Option:
    return Option(*args, **kwargs)


def add_options(parser, options: list[Option], title: str | None = None, given_only: bool = False) -> None:
    """Add ``options`` to ``parser`` (in an argument group when ``title`` is given). With
    ``given_only`` an option the user did not give is absent from the parsed namespace, so the
    command receives exactly the options given, as a Python caller passes them, and fills the
    defaults itself with :func:`normalize`."""
    target = parser.add_argument_group(title) if title else parser
    for o in options:
        o.add_to(target, given_only)


#: the command line of this invocation (``convbench run ...``), recorded in meta.json; set by
#: :func:`convbench.cli.main`, ``["(python)"]`` for a call from Python
_INVOCATION: contextvars.ContextVar = contextvars.ContextVar("convbench_invocation", default=None)


def set_invocation(argv: list[str]) -> None:
    _INVOCATION.set(["convbench"] + list(argv))


def invocation() -> list[str]:
    """The command line of this invocation, for provenance (never parsed again)."""
    return list(_INVOCATION.get() or ["(python)"])


def normalize(options: list[Option], kwargs: dict, where: str) -> dict:
    """Every option's value from ``kwargs`` (the default when absent), validated.

    Raises
    ------
    UsageError
        An unknown keyword (listing the accepted ones) or a bad value (naming the keyword).
    """
    by_name = {o.name: o for o in options}
    unknown = sorted(set(kwargs) - set(by_name))
    if unknown:
        raise UsageError(f"{where}: unknown option(s) {', '.join(unknown)}; accepted: {', '.join(by_name)}")
    out = {}
    for name, o in by_name.items():
        if name not in kwargs:
            out[name] = [] if o.action == "append" else (False if o.action == "flag" else o.default)
            continue
        try:
            out[name] = o.coerce(kwargs[name])
        except (argparse.ArgumentTypeError, ValueError, TypeError) as e:
            raise UsageError(f"{where}: {name}: {e}") from None
    return out


# ---------------------------------------------------------------------------- flag groups
PROBLEM_OPTIONS = [
    option("problem", _text, action="append", metavar="DESC",
           help="a benchdnn descriptor, e.g. mb1ic64ih56oc64kh3ph1 (repeatable)"),
    option("suite", _text, action="append", metavar="NAME", help="a shipped suite (see `convbench suites`)"),
    option("suite_file", _text, action="append", metavar="PATH", help="a file of descriptors"),
    option("sizes", extent_list("32,64 or 32x48 or 16x56x56"),
           help="input sizes: N (every axis), HxW, or DxHxW for volumes"),
    option("kernels", extent_list("3,5 or 3x1 or 3x3x3"), help="kernel sizes (default 3 on every axis)"),
    option("rank", single_int(1, "3", 3), metavar="1|2|3",
           help="spatial rank of grid problems given by single numbers and of --fuzz draws: 1 (audio, "
                "text: --sizes is the length), 2 (default), 3 (volumes); HxW or DxHxW values set it"),
    option("strides", int_list(), help="strides (default 1)"),
    option("channels", int_list(), help="input channels (default 16)"),
    option("out_channels", int_list(), help="output channels (default: = input)"),
    option("batch", int_list(), help="minibatch sizes (overrides descriptors' mb too)"),
    option("padding", padding_list, help="valid, same or N (default valid)"),
    option("pool", pool_list, metavar="ALG[,ALG]",
           help="make the grid pooling layers instead of convolutions: max, avg_p (average, padding counted), "
                "avg_np (padding not counted); --kernels are the windows, --strides default to them"),
    option("dilation", int_list(), help="dilation, PyTorch convention (default 1)"),
    option("groups", int_list(), help="groups (default 1)"),
    option("dtype", dtype_list, help="float32 (default) and/or float64"),
    option("direction", lambda v: ",".join(_directions(v)), metavar="fwd|bwd_d|bwd_w|both|all",
           help="passes of each layer, comma-separated: fwd (forward, default), bwd_d (backward data: the "
                "transposed convolution), bwd_w (backward weights); both = fwd,bwd_d; all = the three"),
    option("weight_density", density_list, default=[1.0], metavar="D[,D]",
           help="fractions of non-zero weights (pruned kernels, same zeros for every backend); "
                "several values run each problem at each density"),
    option("fuzz", single_int(1, "200", MAX_FUZZ, " (each is a problem for every backend: 100000 take days to run; "
                                                  "split a larger sweep across --seed values)"), metavar="N",
           help="N seeded random problems (log-uniform size, channels, kernel 1..15, stride, dilation, groups "
                "incl. depthwise, batch; at most 4e8 dense FLOPs and 64 MiB of tensors each); with --seed"),
    option("seed", single_int(0, "0"), default=0, metavar="S", help="the fuzzer's seed (0): same seed, same problems"),
    option("dry_run", None, action="flag", help="list the problems and backends, run nothing"),
]

_CORETYPE_HELP = ("OpenBLAS kernel set, applied before numpy loads: auto (best this CPU supports; "
                  "default), native (OpenBLAS's own detection) or an OpenBLAS core type such as SkylakeX")

BACKEND_OPTIONS = [
    option("backends", _names, default="all", metavar="all|a,b",
           help="backends to run (default: every available one except the reference oracle)"),
    option("exclude", _names, default="", metavar="a,b", help="backends to leave out"),
    option("threads", threads_list, default=[1], metavar="N[,N]",
           help="threads for every library (default 1); several counts (1,2) run every problem at each, "
                "and the report adds a scaling table"),
    option("blas_coretype", _text, default="auto", metavar="KIND", help=_CORETYPE_HELP),
    option("memory_limit", byte_size, metavar="BYTES",
           help="bytes one cell may hold (test data, float64 reference, workspace, output), estimated from the "
                "shape before anything is allocated; also the workspace limit of the backends that declare one, "
                "which is otherwise a fraction of free memory (default: available memory less max(1 GiB, 10%%))"),
    option("fftw_effort", fftw_effort, default="measure", metavar="EFFORT",
           help="FFTW planner effort for fft_pyfftw: estimate, measure (default), patient, exhaustive"),
    option("fftw_wisdom", None, default="on", choices=("on", "off"),
           help="on (default): reuse the FFTW wisdom file, so plans of earlier (possibly higher-effort) "
                "runs are reused; off: plan from scratch at --fftw-effort alone"),
    option("sparse_format", None, default="auto", choices=("auto", "csr", "csc", "bsr"),
           help="storage of sparse_csr: auto (fastest of CSR/CSC/BSR, timed in prepare) or one format"),
    option("winograd_points", winograd_points, default="lavin", metavar="SET",
           help="Winograd interpolation points: lavin (default), balanced, barabasz, or a "
                "comma-separated list of rationals such as 0,1,-1,1/2,-1/2,2,-2"),
]

TIMING_OPTIONS = [
    option("min_time", positive_float, default=0.2, metavar="S", help="timed seconds per cell at least (0.2)"),
    option("max_time", positive_float, default=2.0, metavar="S", help="timed seconds per cell at most (2)"),
    option("min_rounds", single_int(1), default=5, metavar="N", help="rounds per cell at least (5)"),
    option("round_time", positive_float, default=1e-3, metavar="S", help="target seconds per round (0.001)"),
    option("cell_budget", positive_float, default=30.0, metavar="S",
           help="skip timing a cell whose single run exceeds this (30)"),
    option("cache", cache_list, default=["hot"], metavar="hot|cold|hot,cold",
           help="hot (default): the same buffers every call; cold: each backend's inputs, weights (plan) "
                "and outputs copied across 2x the last-level cache and rotated between calls, as in a "
                "network; hot,cold times both and the report sets them side by side"),
    option("inject_slowdown", inject_arg, action="append", metavar="BACKEND=FACTOR",
           help="make a backend's timed calls FACTOR times slower (busy wait): for checking "
                "that the regression gate catches a slowdown; recorded in the rows"),
]

OUTPUT_OPTIONS = [
    option("out", _text, metavar="DIR", help="result directory (default results/<timestamp>)"),
    option("resume", _text, metavar="DIR", help="finish an interrupted run in DIR with its stored settings"),
    option("baseline", _text, metavar="NAME", help="backend for the speed-up table (default torch_onednn)"),
    option("quiet", None, action="flag", help="no progress display"),
    option("no_plots", None, action="flag", help="write tables only (no matplotlib figures)"),
]

def scheduler_address(value):
    """A Dask scheduler address: ``tcp://HOST:PORT`` (or ``HOST:PORT``)."""
    v = str(value).strip()
    body = v[len("tcp://"):] if v.startswith("tcp://") else v
    host, _, port = body.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise argparse.ArgumentTypeError(f"{value!r} is not a scheduler address; expected tcp://HOST:PORT, "
                                         f"e.g. tcp://10.0.0.5:8786")
    return "tcp://" + body


EXECUTOR_OPTIONS = [
    option("executor", None, default="local", choices=("local", "dask"),
           help="where the units (a problem with all its backends) run: local (this process, default) or "
                "dask (a Dask cluster: --workers N starts one here, --scheduler joins one)"),
    option("workers", single_int(1, "2"), metavar="N",
           help="--executor dask: start a local cluster of N single-threaded worker processes (loopback)"),
    option("scheduler", scheduler_address, metavar="tcp://HOST:PORT",
           help="--executor dask: the scheduler of a running cluster (workers need --resources bench=1)"),
    option("retries", single_int(0, "2"), default=2, metavar="N",
           help="--executor dask: times a unit whose worker died is run again before its cells are "
                "recorded as failed (2)"),
    option("oversubscribe", None, action="flag",
           help="--workers: allow more worker threads in all (workers x --threads) than this machine has cores "
                "(their timings then include each other's contention)"),
]

RUN_OPTIONS = PROBLEM_OPTIONS + BACKEND_OPTIONS + TIMING_OPTIONS + EXECUTOR_OPTIONS + OUTPUT_OPTIONS

GATE_OPTIONS = [
    option("factor", positive_float, default=1.2, help="ratio a regression must exceed (1.2)"),
    option("fail_above", positive_float, metavar="FACTOR",
           help="exit 1 if a cell regresses by more than FACTOR (sets the factor)"),
    option("alpha", fraction, default=0.01, help="significance level of the U test, in (0, 1) (0.01)"),
    option("normalize", None, default="peers", choices=("none", "sentinel", "peers"),
           help="divide times by the median of the same problem's other backends' drift "
                "(peers, default), by the drift sentinel timed with them (sentinel), or not (none)"),
]


def options_named(names: str) -> list[Option]:
    """Options of :data:`RUN_OPTIONS` by name (space-separated), in that order."""
    by = {o.name: o for o in RUN_OPTIONS}
    return [by[n] for n in names.split()]


#: the ``run`` options ``calibrate`` and ``check`` pass through to their runs; the gate's
#: own policy is a shorter ``--max-time`` (1 s: the committed baseline was recorded so)
GATE_RUN_OPTIONS = [o.but(default=1.0, help="timed seconds per cell at most (1)") if o.name == "max_time" else o
                    for o in options_named("threads backends min_time max_time inject_slowdown blas_coretype quiet")]


def gate_run_kwargs(o: dict, **extra) -> dict:
    """Keyword arguments of a gate's nested ``run.execute``: the pass-through options, no
    figures, and ``extra`` (``out=``, ``suite=`` or ``problem=``, ``backends=``)."""
    kw = {opt.name: o[opt.name] for opt in GATE_RUN_OPTIONS}
    kw["no_plots"] = True
    kw.update(extra)
    return kw
