"""``convbench suites``: the shipped problem sets, with their shape and layer counts."""

from __future__ import annotations

from .common import EXIT_OK

NAME = "suites"
HELP = "list the shipped problem suites"


def setup(p) -> None:
    pass


def run() -> int:
    from ..suites import list_suites, load_suite
    for name, desc in list_suites().items():
        entries = load_suite(name)
        layers = sum(e.multiplicity for e in entries)
        print(f"{name:<22} {len(entries):>3} shapes {layers:>4} layers  {desc}")
    return EXIT_OK
