"""``convbench suites``: the shipped problem sets, with their rank, shape and layer counts."""

from __future__ import annotations

from .common import EXIT_OK

NAME = "suites"
HELP = "list the shipped problem suites"


def setup(p) -> None:
    pass


def run() -> int:
    from ..suites import list_suites, load_suite
    rows = []
    for name, desc in list_suites().items():
        entries = load_suite(name)
        layers = sum(e.multiplicity for e in entries)
        ranks = ",".join(f"{r}-D" for r in sorted({e.problem.rank for e in entries}))
        rows.append((name, ranks, len(entries), layers, desc))
    wide = max(len(r[1]) for r in rows)
    for name, ranks, shapes, layers, desc in rows:
        print(f"{name:<22} {ranks:<{wide}} {shapes:>3} shapes {layers:>4} layers  {desc}")
    return EXIT_OK
