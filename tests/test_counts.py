"""Parameter sharing and local connectivity figures, against hand counts."""

from __future__ import annotations

import pytest

from convbench.flops import dense_entries, operator_nnz, parameter_table_row
from convbench.problem import ConvProblem


def test_valid_3x3_on_4x4():
    # 2x2 outputs, each sees a full 3x3 window: 4*9 = 36 nonzeros of a 4 x 16 operator
    r = parameter_table_row(ConvProblem.parse("mb1ic1ih4oc1kh3"))
    assert (r["conv_weights"], r["locally_connected_weights"], r["dense_entries"]) == (9, 36, 64)
    assert r["sharing_ratio"] == 4 and r["locality_ratio"] == pytest.approx(64 / 36)


def test_padding_drops_taps_on_padding():
    # 4x4 outputs with pad 1: in-bounds taps per axis 2+3+3+2 = 10 -> 100 per channel pair
    p = ConvProblem.parse("mb1ic2ih4oc3kh3ph1")
    assert operator_nnz(p) == 3 * 2 * 100
    assert dense_entries(p) == (3 * 16) * (2 * 16)
    assert parameter_table_row(p)["sharing_ratio"] == pytest.approx(600 / 54)


def test_groups_count_only_diagonal_blocks():
    p = ConvProblem.parse("g2mb1ic4ih5oc6kh1")
    # per group: (3*25) x (2*25) dense block; 1x1 kernel: one tap per output per channel pair
    assert dense_entries(p) == 2 * (3 * 25) * (2 * 25)
    assert operator_nnz(p) == 6 * 2 * 25
    assert p.params == 6 * 2


def test_resnet_layer_figures():
    r = parameter_table_row(ConvProblem.parse("mb1ic64ih56oc64kh3ph1"))
    assert r["conv_weights"] == 36864
    assert r["dense_entries"] == (64 * 56 * 56) ** 2
    assert r["locally_connected_weights"] == 64 * 64 * (56 * 3 - 2) ** 2
