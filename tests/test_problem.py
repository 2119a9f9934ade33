"""ConvProblem: validation messages, derived sizes, benchdnn descriptor round trip."""

from __future__ import annotations

import numpy as np
import pytest

from convbench.problem import ConvProblem


def test_resnet_descriptor():
    p = ConvProblem.parse("mb1ic64ih56oc64kh3ph1")
    assert (p.mb, p.ic, p.ih, p.iw, p.oc, p.kh, p.kw, p.ph, p.pw, p.sh) == (1, 64, 56, 56, 64, 3, 3, 1, 1, 1)
    assert (p.oh, p.ow) == (56, 56)
    assert p.descriptor == "mb1ic64ih56oc64kh3ph1"
    assert p.params == 64 * 64 * 9


def test_benchdnn_defaults_and_name():
    p = ConvProblem.parse('ic3ih224oc64kh7sh2ph3n"rn50:conv1"')
    assert p.mb == 2  # benchdnn's default minibatch
    assert p.name == "rn50:conv1" and p.oh == 112 and p.sw == 2
    assert ConvProblem.parse(p.descriptor) == p


@pytest.mark.parametrize("text", [
    "g1ic16oc16_ih5oh5kh3ph1_n\"2d_conv:3x3\"",
    "g1ic17oc17_ih8oh4kh3ph1sh2_n\"2d_conv:3x3_stride_tail\"",
    "g1ic16oc16_ih5oh8kh3ph3_n\"2d_conv:gemm\"",  # asymmetric: bottom pad 2, top 3
    "g16ic16oc16_ih5oh5kh3ph1_n\"2d_conv:depthwise\"",
    "g1ic3oc17_iw8ow4kw3pw1sw2_n\"1d_conv:1st_stride_tail\"",  # 1-D
    "mb1ic16oc16_ih10kh5_kh5ph7sh1",  # key given twice: the last wins, as in benchdnn
    "mb1_ic128ih1_oc16oh1_kh3_ph1",
    "mb2ic32ih35iw27oc48oh17ow13kh3kw5sh2sw2ph0pw0dh0dw0",
])
def test_benchdnn_shapes_lines_load_and_round_trip(text):
    p = ConvProblem.parse(text)
    assert ConvProblem.parse(p.label) == p
    assert ConvProblem.parse(p.descriptor) == p


def test_asymmetric_padding_from_output_size():
    p = ConvProblem.parse("mb1ic16ih5oc16oh8kh3ph3")
    assert (p.ph, p.ph_r) == (3, 2) and not p.torch_compatible
    assert "oh8" in p.descriptor


def test_oh_computes_padding_when_absent():
    p = ConvProblem.parse("mb1ic1ih10oc1oh10kh3")  # benchdnn: pad from the output size
    assert p.ph == 1 and p.oh == 10 and p.torch_compatible


def test_round_trip_random():
    rng = np.random.default_rng(7)
    n = 0
    while n < 300:
        kw = dict(mb=int(rng.integers(1, 5)), g=int(rng.integers(1, 4)), ih=int(rng.integers(1, 40)),
                  iw=int(rng.integers(1, 40)), kh=int(rng.integers(1, 7)), kw=int(rng.integers(1, 7)),
                  sh=int(rng.integers(1, 4)), sw=int(rng.integers(1, 4)), ph=int(rng.integers(0, 4)),
                  pw=int(rng.integers(0, 4)), dh=int(rng.integers(0, 3)), dw=int(rng.integers(0, 3)),
                  dtype=str(rng.choice(["float32", "float64"])), transposed=bool(rng.random() < 0.2))
        kw["ic"] = kw["g"] * int(rng.integers(1, 5))
        kw["oc"] = kw["g"] * int(rng.integers(1, 5))
        try:
            p = ConvProblem(**kw)
        except ValueError:
            continue
        if rng.random() < 0.3:
            try:
                p = p.replace(oh=p.oh + int(rng.integers(0, 2)), ow=p.ow + int(rng.integers(0, 2)))
            except ValueError:
                continue
        assert ConvProblem.parse(p.label) == p, p.label
        n += 1


@pytest.mark.parametrize("kwargs, match", [
    (dict(mb=1, ic=3, ih=5, iw=5, oc=4, kh=7, kw=3), r"kernel kh=7 .* larger than the padded input"),
    (dict(mb=1, ic=3, ih=5, iw=5, oc=4, kh=3, kw=3, g=2), r"ic=3 is not divisible by groups g=2"),
    (dict(mb=1, ic=4, ih=5, iw=5, oc=3, kh=3, kw=3, g=2), r"oc=3 is not divisible by groups g=2"),
    (dict(mb=1, ic=3, ih=5, iw=5, oc=4, kh=3, kw=3, sh=0), r"stride sh=0: must be >= 1"),
    (dict(mb=0, ic=3, ih=5, iw=5, oc=4, kh=3, kw=3), r"mb=0: must be a positive integer"),
    (dict(mb=1, ic=3, ih=5, iw=5, oc=4, kh=3, kw=3, ph=-1), r"padding ph=-1: must be >= 0"),
    (dict(mb=1, ic=3, ih=5, iw=5, oc=4, kh=3, kw=3, dtype="f16"), r"dtype='f16': accepted are float32"),
    (dict(mb=1, ic=3, ih=5, iw=5, oc=4, kh=3, kw=3, dh=-1), r"dilation dh=-1"),
    (dict(mb=1.5, ic=3, ih=5, iw=5, oc=4, kh=3, kw=3), r"mb=1.5: expected an integer"),
])
def test_validation_names_field_value_and_accepted(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ConvProblem(**kwargs)


@pytest.mark.parametrize("text, match", [
    ("xyz", "cannot read 'xyz'"),
    ("mb1ic3ih5oc4", "ih and kh are required"),
    ("mb1ic3id5ih5oc1kd3kh3", "3-D convolutions"),
    ("mb1ih5oc1kh3", "ic and oc are required"),
    ("--dir=BWD_W mb1ic3ih5oc1kh3", "--dir=BWD_W is not supported"),
])
def test_parse_errors(text, match):
    with pytest.raises(ValueError, match=match):
        ConvProblem.parse(text)


def test_torch_args_and_labels():
    p = ConvProblem.from_torch_args((2, 4, 9, 11), (6, 2, 3, 1), stride=(2, 1), padding=1, dilation=(1, 2),
                                    groups=2, dtype="float64")
    assert (p.sh, p.sw, p.ph, p.pw, p.dh, p.dw, p.g) == (2, 1, 1, 1, 0, 1, 2)
    assert p.label.startswith("--dt=f64 ")
    t = p.replace(transposed=True)
    assert t.label.startswith("--dir=BWD_D ") and t.src_shape == p.output_shape
    with pytest.raises(ValueError, match=r"weight.shape\[1\] == 2"):
        ConvProblem.from_torch_args((2, 4, 9, 9), (6, 3, 3, 3), groups=2)


def test_replace_keeps_explicit_output_unless_geometry_changes():
    p = ConvProblem.parse("mb1ic16ih5oc16oh8kh3ph3")
    assert p.replace(mb=4).oh == 8
    assert p.replace(ih=6).oh == (6 + 6 - 3) + 1
