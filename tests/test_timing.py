"""Calibration, round bookkeeping and interleaving, on fake functions (no timing asserts)."""

from __future__ import annotations

import pytest

from convbench.timing import Bench, TimingConfig, interleave, timer_resolution


def test_calibration_fills_a_round():
    b = Bench(lambda: None, TimingConfig(round_time=1e-3))
    assert b.calibrate(1e-5) == 100
    assert b.calibrate(5e-3) == 1
    assert b.calibrate(0.0) >= 1


def test_rounds_until_min_rounds_and_min_time():
    cfg = TimingConfig(round_time=0, min_rounds=7, min_time=0.0, max_time=10)
    b = Bench(lambda: None, cfg)
    b.calibrate(1.0)
    interleave({"a": b})
    assert b.rounds == 7 and len(b.times) == 7
    assert all(t >= 0 for t in b.times)


def test_max_time_stops_a_slow_function():
    cfg = TimingConfig(round_time=0, min_rounds=1000, min_time=0.0, max_time=0.0)
    b = Bench(lambda: None, cfg)
    b.calibrate(1.0)
    interleave({"a": b})
    assert b.rounds == 1  # max_time spent after the first round


def test_interleave_rotates_and_isolates_errors():
    calls = []
    cfg = TimingConfig(round_time=0, min_rounds=3, min_time=0.0, max_time=10)
    benches = {n: Bench(lambda n=n: calls.append(n), cfg) for n in "abc"}

    def boom():
        raise RuntimeError("broken backend")
    benches["bad"] = Bench(boom, cfg)
    for b in benches.values():
        b.calibrate(1.0)
    errors = {}
    interleave(benches, errors=errors)
    assert isinstance(errors["bad"], RuntimeError)
    assert [benches[n].rounds for n in "abc"] == [3, 3, 3]
    # rotated start: the first call of each pass differs
    assert calls[0] == "a" and calls[3] != "a"


def test_interleave_without_errors_dict_propagates():
    b = Bench(lambda: 1 / 0, TimingConfig(round_time=0))
    b.calibrate(1.0)
    with pytest.raises(ZeroDivisionError, match="division by zero"):
        interleave({"x": b})


def test_config_validation():
    with pytest.raises(ValueError, match="max_time=0.1 is below min_time=1"):
        TimingConfig(min_time=1, max_time=0.1)
    with pytest.raises(ValueError, match="min_rounds=0"):
        TimingConfig(min_rounds=0)


def test_timer_resolution_positive():
    assert 0 < timer_resolution(10) < 1e-3
