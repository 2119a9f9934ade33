"""Operation counts against hand-counted cases."""

from __future__ import annotations

from convbench.flops import dense_flops, direct_flops, valid_taps
from convbench.problem import ConvProblem


def test_valid_taps_hand_counted_3x3_pad1_on_4x4():
    # per axis: outputs 0..3, taps 0..2 at rows o-1+k; in-bounds counts 2,3,3,2 = 10
    p = ConvProblem.parse("mb1ic1ih4oc1kh3ph1")
    assert valid_taps(p) == 10 * 10
    assert direct_flops(p) == 2 * 100
    assert dense_flops(p) == 2 * 16 * 9


def test_no_padding_direct_equals_dense():
    p = ConvProblem.parse("mb2ic3ih8oc5kh3sh2")
    assert direct_flops(p) == dense_flops(p) == 2 * 2 * 5 * 3 * 3 * 3 * 9


def test_groups_and_dilation():
    p = ConvProblem.parse("g2mb1ic4ih5oc6kh3dh1ph2")  # extent 5, pad 2: taps hit rows o-2, o, o+2
    per_axis = sum(sum(1 for k in range(3) if 0 <= o - 2 + 2 * k < 5) for o in range(5))
    assert per_axis == 2 + 2 + 3 + 2 + 2
    assert direct_flops(p) == 2 * 1 * 6 * 2 * per_axis ** 2


def test_resnet_layer_matches_benchdnn_count():
    # benchdnn: 2 * mb * oc * ic/g * sum of in-bounds taps; 56x56, 3x3 pad 1: (56*3-2)^2 taps
    p = ConvProblem.parse("mb1ic64ih56oc64kh3ph1")
    assert direct_flops(p) == 2 * 64 * 64 * (56 * 3 - 2) ** 2
