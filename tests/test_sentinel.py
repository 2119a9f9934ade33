"""The drift sentinel: a fixed workload timed between rounds."""

from __future__ import annotations

from convbench.sentinel import SENTINEL, Sentinel


def test_rounds_are_recorded_and_taken_per_problem():
    s = Sentinel()
    assert s.times == []  # the warm-up call in the constructor is not a sample
    t1, t2 = s.round(), s.round()
    assert t1 > 0 and t2 > 0 and s.times == [t1, t2]
    assert s.take() == [t1, t2] and s.take() == []
    assert SENTINEL.startswith("_")  # cannot collide with a backend name


def test_fixed_seed_fixed_work():
    a, b = Sentinel(seed=3), Sentinel(seed=3)
    assert (a.a == b.a).all() and (a.img == b.img).all()
