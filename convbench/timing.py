"""Clock, calibration, warm-up and interleaved rounds. Produces raw samples only.

The scheme follows pytest-benchmark and asv: a *round* runs the function
``iterations`` times back to back and records the mean time per call; the number
of iterations is calibrated so that one round lasts at least ``round_time``
(default 1 ms, i.e. a thousand times the ~1 us resolution of Python's timer
plus call overhead), and rounds repeat until ``min_rounds`` and ``min_time`` are
both reached or ``max_time`` is spent.

What this module adds for a shared, noisy two-core machine: several functions are
timed *interleaved*, one round of each in turn (the starting function rotates every
pass), so a slow phase of the machine lands on all of them alike and their ratio
stays honest. The garbage collector is off during rounds, as ``timeit`` does.

Each round also records process CPU time, so the caller can see how many cores a
function really kept busy (``cpu_util``) and catch a library ignoring the thread
setting.

Nothing here computes statistics (see :mod:`convbench.stats`).
"""

from __future__ import annotations

import gc
import math
import statistics
import time
from dataclasses import dataclass, field
from typing import Callable

__all__ = ["clock", "timer_resolution", "Bench", "interleave", "TimingConfig", "best_times", "median_times",
           "median_phases"]

clock = time.perf_counter
cpu_clock = time.process_time


def timer_resolution(n: int = 200) -> float:
    """Smallest observable step of :data:`clock`, including the cost of reading it."""
    best = math.inf
    for _ in range(n):
        t0 = clock()
        t1 = clock()
        while t1 == t0:
            t1 = clock()
        best = min(best, t1 - t0)
    return best


@dataclass(frozen=True)
class TimingConfig:
    """How long and how often to time one function.

    Attributes
    ----------
    round_time : float
        Target duration of one round, seconds (iterations are calibrated to reach it).
    min_rounds : int
        Rounds wanted at least (unless ``max_time`` is spent first).
    min_time : float
        Timed seconds wanted at least, summed over rounds.
    max_time : float
        Timed seconds after which no further round is started.
    warmup_time : float
        Seconds of untimed calls before the first round (at least one call).
    round_warmup_below : float
        Calls shorter than this (seconds) get one untimed call at the start of every
        round, so interleaving does not time them with caches left cold by the previous
        function: what is measured is the steady state, as when a function is timed on
        its own (pytest-benchmark, asv). Longer calls are dominated by their own work.
    """

    round_time: float = 1e-3
    min_rounds: int = 5
    min_time: float = 0.2
    max_time: float = 2.0
    warmup_time: float = 0.02
    round_warmup_below: float = 0.05

    def __post_init__(self):
        if self.min_rounds < 1:
            raise ValueError(f"min_rounds={self.min_rounds}: must be >= 1")
        for f in ("round_time", "min_time", "max_time", "warmup_time"):
            if getattr(self, f) < 0:
                raise ValueError(f"{f}={getattr(self, f)}: must be >= 0")
        if self.max_time < self.min_time:
            raise ValueError(f"max_time={self.max_time} is below min_time={self.min_time}")


@dataclass
class Bench:
    """A function under test and its samples.

    ``times`` holds one entry per round: seconds per call (round time / iterations).
    """

    fn: Callable[[], object]
    config: TimingConfig = field(default_factory=TimingConfig)
    iterations: int = 0
    times: list = field(default_factory=list)
    timed_s: float = 0.0
    cpu_s: float = 0.0
    warmup_calls: int = 0
    single_call: float = 0.0

    def warmup(self) -> float:
        """Untimed calls for ``warmup_time`` (at least one); returns the fastest call seen."""
        fastest = math.inf
        t_end = clock() + self.config.warmup_time
        while True:
            t0 = clock()
            self.fn()
            dt = clock() - t0
            fastest = min(fastest, dt)
            self.warmup_calls += 1
            if clock() >= t_end:
                return fastest

    def calibrate(self, single_call: float) -> int:
        """Choose iterations per round from the duration of one call."""
        if single_call <= 0:
            single_call = 1e-9
        self.single_call = single_call
        self.iterations = max(1, min(1_000_000, math.ceil(self.config.round_time / single_call)))
        return self.iterations

    def prime(self, first_call: float | None = None) -> int:
        """Warm up and calibrate (before the first round). ``first_call``: seconds of a call
        just made (a verification run); one at least ``warmup_time`` long was its own warm-up
        and calibrates alone, a shorter one is kept if faster than the warm-up's calls."""
        if first_call is not None and first_call >= self.config.warmup_time:
            return self.calibrate(first_call)
        fastest = self.warmup()
        return self.calibrate(fastest if first_call is None else min(fastest, first_call))

    def round(self) -> float:
        """Time one round; records and returns the seconds per call."""
        fn = self.fn
        n = self.iterations or 1
        if self.single_call < self.config.round_warmup_below:
            fn()  # untimed: bring this function's data back into cache after the others ran
        gc_was = gc.isenabled()
        gc.disable()
        try:
            c0 = cpu_clock()
            t0 = clock()
            for _ in range(n):
                fn()
            t1 = clock()
            c1 = cpu_clock()
        finally:
            if gc_was:
                gc.enable()
        dt = t1 - t0
        self.times.append(dt / n)
        self.timed_s += dt
        self.cpu_s += c1 - c0
        return dt / n

    @property
    def rounds(self) -> int:
        return len(self.times)

    @property
    def cpu_util(self) -> float:
        """CPU seconds per wall second over the timed rounds (1.0 = one busy core)."""
        return self.cpu_s / self.timed_s if self.timed_s > 0 else float("nan")

    def done(self) -> bool:
        c = self.config
        if self.timed_s >= c.max_time and self.rounds >= 1:
            return True
        return self.rounds >= c.min_rounds and self.timed_s >= c.min_time


def interleave(benches: dict[str, Bench], *, on_round: Callable[[str, int], None] | None = None,
               extra: Callable[[], None] | None = None, errors: dict | None = None) -> None:
    """Time several primed benches in interleaved rounds until each is done.

    Parameters
    ----------
    benches : dict of name -> Bench
        Already primed (warmed up and calibrated).
    on_round : callable, optional
        Called with (name, round index) after each round (progress display).
    extra : callable, optional
        Called once per pass over the benches (e.g. a drift sentinel's round).
    errors : dict, optional
        If given, an exception raised by a bench is stored here under its name and
        that bench is dropped while the others go on; otherwise it propagates.
    """
    names = list(benches)
    k = 0
    while True:
        pending = [n for n in names if not benches[n].done() and (errors is None or n not in errors)]
        if not pending:
            return
        # rotate the order each pass so no function always follows the same one
        start = k % len(pending)
        for name in pending[start:] + pending[:start]:
            try:
                benches[name].round()
            except Exception as e:
                if errors is None:
                    raise
                errors[name] = e
                continue
            if on_round is not None:
                on_round(name, benches[name].rounds)
        if extra is not None:
            extra()
        k += 1


def best_times(fns: list, *, passes: int = 3, min_calls: int = 2, min_seconds: float = 0.001,
               prune: float | None = None) -> list[float]:
    """Fastest call of each function, timed round-robin over ``passes`` passes (each pass at
    least ``min_calls`` calls and ``min_seconds`` per function): the measurement ``prepare``
    uses to choose between implementations. Timing each candidate once, back to back, let
    a slow phase of the machine land on one candidate and flip the choice between runs.

    ``prune``: after the first pass, a candidate slower than ``prune`` times the fastest is
    out of the race (its first-pass time is what it reports); the remaining passes time only
    the contenders. FFT tile choices on large images spend most of their prepare time timing
    candidates that lose by 2x or more (measured: 12 candidates of ~20 ms, 1.4 s of timing).
    """
    best = [float("inf")] * len(fns)
    live = list(range(len(fns)))
    for k in range(passes):
        if k == 1 and prune is not None:
            fastest = min(best)
            live = [i for i in live if best[i] <= prune * fastest]
        for i in live:
            fn = fns[i]
            n = 0
            t_end = clock() + min_seconds
            while n < min_calls or clock() < t_end:
                t0 = clock()
                fn()
                best[i] = min(best[i], clock() - t0)
                n += 1
    return best


def median_times(fns: dict, rounds: int, round_time: float = 0.02) -> dict:
    """Median seconds per call of each function over exactly ``rounds`` interleaved rounds of
    about ``round_time`` seconds each (one untimed call first calibrates the round)."""
    cfg = TimingConfig(round_time=round_time, min_rounds=max(1, rounds), min_time=0.0, max_time=math.inf,
                       warmup_time=0.0)
    benches = {n: Bench(fn, cfg) for n, fn in fns.items()}
    for b in benches.values():
        b.prime()
    interleave(benches)
    return {n: float(statistics.median(b.times)) for n, b in benches.items()}


def median_phases(fn: Callable[[], dict | None], repeats: int = 5) -> dict:
    """Median of each key over ``repeats`` calls of ``fn``, which returns seconds per phase of
    one call (``{}`` when ``fn`` returns None: the backend reports no phases)."""
    got = []
    for _ in range(repeats):
        ph = fn()
        if ph is None:
            return {}
        got.append(ph)
    return {k: float(statistics.median(g.get(k, float("nan")) for g in got))
            for k in dict.fromkeys(k for g in got for k in g)}
