"""Text formatting of times, bytes, counts, rates and ratios."""

from __future__ import annotations

import math

import pytest

from convbench.format import fmt_bytes, fmt_count, fmt_rate, fmt_ratio, fmt_time, safe_ratio, short_label


@pytest.mark.parametrize("s, text", [(12.34e-6, "12.3 us"), (4.567e-3, "4.57 ms"), (1.234, "1.23 s"),
                                     (None, ""), (float("nan"), ""), ("abc", "")])
def test_fmt_time(s, text):
    assert fmt_time(s) == text


def test_compact_time_for_progress_lines():
    assert fmt_time(2.5e-3, compact=True) == "2.5ms"


@pytest.mark.parametrize("n, text", [(512, "512 B"), (1536, "1.5 KiB"), (3 << 30, "3.0 GiB"), (5 << 40, "5.0 TiB"),
                                     (float("nan"), "")])
def test_fmt_bytes(n, text):
    assert fmt_bytes(n) == text


def test_counts_rates_ratios():
    assert fmt_count(950) == "950" and fmt_count(1.23e6) == "1.23M" and fmt_count(4.5e12) == "4.5T"
    assert fmt_rate(94.34, "") == "94.3" and fmt_rate(12, "GB/s") == "12.0 GB/s" and fmt_rate(None) == ""
    assert fmt_ratio(3, 2) == "1.50x" and fmt_ratio(1, 0) == "" and fmt_ratio(None, 2) == ""
    assert math.isnan(safe_ratio(5, 0)) and safe_ratio(6, 3) == 2


def test_short_label_prefers_the_layer_name():
    assert short_label('mb1ic64ih56oc64kh3ph1n"resnet:x"', "resnet:x") == "resnet:x"
    assert short_label("x" * 40, width=10) == "xxxxxxx..." and short_label("short") == "short"
