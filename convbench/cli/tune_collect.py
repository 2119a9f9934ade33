"""``convbench tune --collect``: measure, within a time budget, what makes a selector
trustworthy on this machine, as ``convbench run`` sweeps into one new directory.

What is measured, in order, each part only while the budget lasts:

1. the shipped network suites of every rank a short run can afford (:data:`SUITES`: the
   real layers leave-one-network-out judges the selector on);
2. the fuzzer, in batches (:data:`FUZZ_BATCH` problems, a new seed each), at the ranks of
   :data:`FUZZ_MIX` in turn, until the budget is spent. Each batch is sized from the
   seconds per problem measured so far, so the last one ends near the budget.

Every part is a result directory of its own under ``results/collect-<timestamp>/`` (never an
existing one); an interrupted part keeps its finished rows and the collection stops there.
"""

from __future__ import annotations

import contextlib
import io
import time
from pathlib import Path

from .common import EXIT_OK

__all__ = ["SUITES", "FUZZ_MIX", "SETTINGS", "collect"]

#: network suites measured first (about 110 s together on the project's 2-vCPU machine):
#: 2-D classification networks of three kinds and 1-D text and audio
SUITES = ("resnet50", "mobilenet_v2", "vgg16", "alexnet", "textcnn", "wavenet")
#: (rank, batches in a cycle): 2-D fuzzed problems twice as often as sequences and volumes
FUZZ_MIX = ((2, 2), (1, 1), (2, 2), (3, 1))
FUZZ_BATCH = 60
#: per-cell budget of the collection's sweeps: at least 3 rounds and 10 ms, at most 0.1 s of
#: timed rounds; a backend whose single run takes over 0.5 s skips larger problems of its
#: ladder; cells whose backends need over 256 MiB are refused from their shapes
SETTINGS = dict(min_time=0.01, max_time=0.1, min_rounds=3, cell_budget=0.5, memory_limit="256M")
#: seconds per problem assumed before anything was measured
_FIRST_RATE = 0.6


def _root() -> Path:
    base = Path("results") / f"collect-{time.strftime('%Y%m%d-%H%M%S')}"
    root, i = base, 1
    while root.exists():
        i += 1
        root = base.with_name(f"{base.name}-{i}")
    return root


def _stopped(root: Path, status: int, log) -> int:
    log(f"tune --collect: stopped (status {status}); every finished row is in {root}; fit on what was measured "
        f"with `convbench tune {root}/*`")
    return status


def collect(*, budget_min: float, dtype=None, threads=None, direction="fwd", log=print) -> tuple[list, int]:
    """Run the collection; returns (result directories written, exit status: 0, or 130/143
    when interrupted)."""
    from ..select.auto import own_candidates
    from ..suites import load_suite
    from .run import execute
    root = _root()
    root.mkdir(parents=True)
    deadline = time.monotonic() + 60.0 * budget_min
    common = dict(SETTINGS, backends=",".join(own_candidates("conv")), threads=[threads or 1],
                  dtype=[dtype or "float32"], direction=direction, quiet=True, no_plots=True)
    dirs, spent, problems = [], 0.0, 0

    def rate() -> float:
        return spent / problems if problems else _FIRST_RATE

    def part(name: str, n_expected: int, **opts) -> int:
        nonlocal spent, problems
        out = root / name
        t0 = time.monotonic()
        with contextlib.redirect_stdout(io.StringIO()):  # each sweep's tables are in its directory
            res = execute(out=str(out), **common, **opts)
        took = time.monotonic() - t0
        spent, problems = spent + took, problems + max(res.problems, 1)
        dirs.append(str(out))
        left = max(0.0, deadline - time.monotonic())
        log(f"tune --collect: {name}: {res.problems} problems in {took:.0f} s ({left / 60:.1f} min of the budget left)")
        return 130 if res.interrupted else res.status
    log(f"tune --collect: measuring for about {budget_min:g} min into {root} (own backends, "
        f"{threads or 1} thread(s), {dtype or 'float32'}, {direction})")
    for s in SUITES:
        n = len(load_suite(s))
        if time.monotonic() + n * rate() > deadline:
            log(f"tune --collect: {s} ({n} problems) does not fit the budget left; skipped")
            continue
        st = part(f"suite-{s}", n, suite=[s])
        if st != EXIT_OK:
            return dirs, _stopped(root, st, log)
    cycle = [r for r, k in FUZZ_MIX for _ in range(k)]
    i = 0
    while True:
        left = deadline - time.monotonic()
        n = min(FUZZ_BATCH, int(left / rate()))
        if n < 10:
            break
        r = cycle[i % len(cycle)]
        seed = 1000 + i
        st = part(f"fuzz-r{r}-s{seed}", n, fuzz=n, seed=seed, rank=r)
        if st != EXIT_OK:
            return dirs, _stopped(root, st, log)
        i += 1
    log(f"tune --collect: {problems} problems measured in {spent / 60:.1f} min; fit on them later with "
        f"`convbench tune {root}/*`")
    return dirs, EXIT_OK
