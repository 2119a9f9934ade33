"""The command line: ``convbench COMMAND ...``, one module per command in this package.

Each command module defines ``NAME``, ``HELP`` (and optionally ``DESCRIPTION``,
``PRELOAD``), ``setup(parser)`` adding its flags (shared groups come from
:mod:`.common`), and ``run(**kwargs) -> int`` taking the parsed flags as keyword arguments
(nothing else: the command line is recorded for provenance by :func:`.common.invocation`).
Modules are discovered here, so adding a command is adding one module. Commands call
each other's ``run``/``execute`` in Python, never through argv.

Bad input never produces a traceback: one line on stderr says what is wrong and what is
accepted, and the exit status is 2. Nothing here loads numpy before :func:`main` has
applied ``--blas-coretype`` (``OPENBLAS_CORETYPE`` must be set before OpenBLAS loads) and
the thread environment, for commands that declare ``PRELOAD = True``.
"""

from __future__ import annotations

import importlib
import os
import pkgutil
import sys
from types import ModuleType

from .. import __version__
from .common import EXIT_OK, EXIT_USAGE, Parser, UsageError, set_invocation

__all__ = ["main", "build_parser", "commands"]


def commands() -> dict[str, ModuleType]:
    """Command name -> module, for every command module of this package (sorted by name)."""
    out = {}
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda i: i.name):
        if info.name.startswith("_") or info.name == "common":
            continue
        mod = importlib.import_module(f"{__name__}.{info.name}")
        if hasattr(mod, "NAME") and hasattr(mod, "setup") and hasattr(mod, "run"):
            out[mod.NAME] = mod
    return out


def build_parser() -> Parser:
    p = Parser(prog="convbench", description="Benchmark convolution algorithms against each other, honestly.")
    p.add_argument("--version", action="version", version=f"convbench {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    for name, mod in commands().items():
        sp = sub.add_parser(name, help=mod.HELP, description=getattr(mod, "DESCRIPTION", None) or mod.HELP)
        mod.setup(sp)
    return p


def _prescan(argv: list[str], flag: str) -> str | None:
    """The value of ``flag`` in argv (before argparse, and before numpy loads)."""
    for i, a in enumerate(argv):
        if a == flag and i + 1 < len(argv):
            return argv[i + 1]
        if a.startswith(flag + "="):
            return a.split("=", 1)[1]
    return None


def _preload(argv: list[str]) -> None:
    """Apply the OpenBLAS kernel set (recorded by :mod:`convbench.blas` for the run metadata)
    and the thread environment, for a fresh process."""
    from ..blas import apply_coretype
    from ..threads import preset_environment
    apply_coretype(_prescan(argv, "--blas-coretype") or "auto")
    try:  # the largest count of --threads 1,2: runtimes size their pools when they load
        threads = max(1, *(int(t) for t in str(_prescan(argv, "--threads") or 1).split(",")))
    except ValueError:
        threads = 1  # argparse reports the bad value
    preset_environment(threads)


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit status (0 ok, 1 failure found, 2 usage error)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        cmds = commands()
        if argv[:1] and argv[0] in cmds and getattr(cmds[argv[0]], "PRELOAD", False):
            _preload(argv)
        parser = build_parser()
        if not argv or argv[0].startswith("-") and argv[0] not in ("-h", "--help", "--version"):
            known = ", ".join(cmds)
            what = "no command given" if not argv else f"unknown option {argv[0]!r}"
            raise UsageError(f"convbench: error: {what}; expected a command first, one of: {known}")
        args = parser.parse_args(argv)
        if args.command is None:
            raise UsageError(f"convbench: error: no command given; expected one of: {', '.join(cmds)}")
        set_invocation(argv)
        return cmds[args.command].run(**{k: v for k, v in vars(args).items() if k != "command"})
    except (UsageError, ValueError) as e:
        msg = str(e).splitlines()[0] if str(e) else e.__class__.__name__
        if len(msg) > 1000:  # whatever echoed the user's input, one readable line
            msg = msg[:960] + f"... ({len(msg)} characters)"
        print(msg if msg.startswith("convbench") else f"convbench: error: {msg}", file=sys.stderr)
        return EXIT_USAGE
    except SystemExit as e:  # argparse --help / --version
        return int(e.code or 0)
    except KeyboardInterrupt:
        # Ctrl-C while the command starts (imports, machine probes): one line, then leave at once;
        # an interrupted import (torch's, numba's) can leave shutdown to die of the signal instead
        print("convbench: interrupted before any result was written", file=sys.stderr)
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(130)
    except BrokenPipeError:
        return EXIT_OK
