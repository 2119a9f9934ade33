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
                  dtype=str(rng.choice(["float32", "float64"])), direction=str(rng.choice(["fwd", "fwd", "bwd_d", "bwd_w"])))
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
    ("mb1ic3id5ih5oc1kd3kh3", "a 3-D problem needs both h and w or neither .* the w axis .* is missing"),
    ("mb1ic3id5iw5oc1kd3kw3", "the h axis .* is missing"),
    ("mb1ic3id5ih5iw5oc1kd7kh3kw3", "kernel kd=7 .* larger than the padded input id=5"),
    ("mb1ih5oc1kh3", "ic and oc are required"),
    ("--dir=BWD_X mb1ic3ih5oc1kh3", "--dir=BWD_X is not supported; accepted are FWD_D, FWD_B, FWD_I"),
])
def test_parse_errors(text, match):
    with pytest.raises(ValueError, match=match):
        ConvProblem.parse(text)


def test_torch_args_and_labels():
    p = ConvProblem.from_torch_args((2, 4, 9, 11), (6, 2, 3, 1), stride=(2, 1), padding=1, dilation=(1, 2),
                                    groups=2, dtype="float64")
    assert (p.sh, p.sw, p.ph, p.pw, p.dh, p.dw, p.g) == (2, 1, 1, 1, 0, 1, 2)
    assert p.label.startswith("--dt=f64 ")
    t = p.replace(direction="bwd_d")
    assert t.label.startswith("--dir=BWD_D ") and t.src_shape == p.output_shape
    with pytest.raises(ValueError, match=r"weight.shape\[1\] == 2"):
        ConvProblem.from_torch_args((2, 4, 9, 9), (6, 3, 3, 3), groups=2)


def test_replace_keeps_explicit_output_unless_geometry_changes():
    p = ConvProblem.parse("mb1ic16ih5oc16oh8kh3ph3")
    assert p.replace(mb=4).oh == 8
    assert p.replace(ih=6).oh == (6 + 6 - 3) + 1


# benchdnn's own lines (tests/benchdnn/inputs/conv/harness_conv_regression_general, shapes_1d), with
# the values benchdnn's str2desc/sanitize_desc give them: a missing output is computed; a missing
# padding is computed from a given output, per axis ((o-1)*s - i + ext) / 2 truncated); a whole
# missing w axis is a copy of h; no h at all is a 1-D problem.
@pytest.mark.parametrize("text, expect", [
    # (ph, pw, oh, ow): pw computed from ow=1 (0), never copied from ph=1
    ("mb1ic16ih1iw1oc16oh2ow1kh3kw1dh1ph1n\"regression_dh_equals_ih\"", (1, 0, 2, 1)),
    # every output column reads only padding (pw 14 > iw 12 with sw 13)
    ("mb2ic48ih23iw12oc134oh12ow4kh2kw1sh2sw13ph1pw14", (1, 14, 12, 4)),
    # oh given without ph: ph = ((7-1)*1 - 7 + 5) / 2 = 2
    ("--dir=FWD_D mb2ic16ih7oc16oh7kh5", (2, 2, 7, 7)),
    # output given without padding on both axes, different strides
    ("mb2_ic32oc32_ih41oh16kh10sh2ph0_iw79ow75kw5sw1pw0n\"ds2\"", (0, 0, 16, 75)),
    # a large oh: asymmetric padding, bottom larger than top
    ("mb2_g1ic32oc32_ih7oh11kh3ph2", (2, 2, 11, 11)),
    # no h at all: a 1-D problem along w
    ("mb1_ic16oc16_iw80ow80kw31sw1dw0pw15", (0, 15, 1, 80)),
    ("ic8oc8_iw5ow2kw3sw1dw2pw3n\"conv1d_gemm:1\"", (0, 3, 1, 2)),
    # w absent: the whole h axis is copied (output computed first)
    ("mb1_ic1oc16_ih16kh3oh16ph1", (1, 1, 16, 16)),
    # computed padding from an output that is too large on one axis only
    ("mb2_g1ic1oc2_ih3oh10kh2sh1dh1ph4_iw5ow12kw2sw1dw1pw2", (4, 2, 10, 12)),
])
def test_benchdnn_padding_inference_per_axis(text, expect):
    p = ConvProblem.parse(text)
    assert (p.ph, p.pw, p.oh, p.ow) == expect
    assert ConvProblem.parse(p.descriptor) == p  # and the printed form parses back under the same rules


def test_a_partly_given_w_axis_is_not_filled_from_h():
    # benchdnn: w is present (kw given), so iw is required, not copied from ih
    with pytest.raises(ValueError, match="iw and kw are required"):
        ConvProblem.parse("mb1ic1ih48iw480oc16kh3ph1")
    p = ConvProblem.parse("mb1ic1ih161iw700oc32kh5kw20sh2")  # sw not given: 1, not h's 2
    assert (p.sh, p.sw, p.ow) == (2, 1, 681)
    assert ConvProblem.parse("mb1ic20ih6iw11oc5kh2kw3dh1").dw == 0


def test_printed_descriptors_are_benchdnn_valid():
    # the printer never leaves an axis half-given (benchdnn would reject or reread it)
    p = ConvProblem(mb=1, ic=1, ih=48, iw=480, oc=16, kh=3, kw=3, ph=1, pw=1)
    assert p.descriptor == "mb1ic1ih48iw480oc16kh3kw3ph1pw1"
    q = ConvProblem(mb=1, ic=4, ih=9, iw=9, oc=4, kh=3, kw=3, dh=1, dw=1, ph=2, pw=2)
    assert q.descriptor == "mb1ic4ih9oc4kh3ph2dh1"  # w equals h in every field: left to the copy rule


def test_padding_note_says_what_an_explicit_output_means():
    assert ConvProblem.parse("mb1ic4ih8oc4kh3ph1").padding_note == ""
    assert "asymmetric padding: bottom 2 vs top 3" in ConvProblem.parse("mb1ic16ih5oc16oh8kh3ph3").padding_note
    crop = ConvProblem.parse("mb1ic4ih10oc4oh3kh3ph0").padding_note
    assert "oh crops the input: its last 5 rows are never read" in crop


# ---------------------------------------------------------------------------- ranks 1, 2, 3
@pytest.mark.parametrize("text, rank, shape", [
    ("mb1ic4iw80oc4kw3pw1", 1, (1, 4, 1, 80)),               # no d, no h: 1-D (laid out NC1W)
    ("mb1ic4ih8oc4kh3", 2, (1, 4, 8, 8)),
    ("mb1ic4id6oc4kd3", 3, (1, 4, 6, 6, 6)),                 # d alone: h and w copy it
    ("mb1ic4id6ih8iw10oc4kd3kh3kw5", 3, (1, 4, 6, 8, 10)),
    # benchdnn's own lines (shapes_3d_i3d, shapes_3d_unet, shapes_3d_resnext101, shapes_x3d_dw)
    ("ic3oc64_id64od32kd7sd2dd0pd2_ih224oh112kh7sh2dh0ph2_iw224ow112kw7sw2dw0pw2", 3, (2, 3, 64, 224, 224)),
    ('mb1ic3ih132iw132id116oc32kh3kw3kd3ph0pw0pd0sh1sw1sd1n"3d_unet:conv_1"', 3, (1, 3, 116, 132, 132)),
    ('mb6g16_ic64oc64_id8ih56iw56_od8oh56ow56_kd3kh3kw3_sd1sh1sw1_pd1ph1pw1_n"Resnext:conv_3d:1"', 3,
     (6, 64, 8, 56, 56)),
    ('g24mb1_ic24oc24_id8od8kd5sd1dd0pd2_ih112oh112kh1sh1dh0ph0_iw112ow112kw1sw1dw0pw0n"x3d_dw:conv_1"', 3,
     (1, 24, 8, 112, 112)),
])
def test_every_rank_reads_benchdnns_rules_and_round_trips(text, rank, shape):
    p = ConvProblem.parse(text)
    assert p.rank == rank and p.input_shape == shape
    assert ConvProblem.parse(p.label) == p and ConvProblem.parse(p.descriptor) == p
    if rank < 3:  # the fields of an axis the problem does not have: benchdnn's defaults
        assert (p.id, p.od, p.kd, p.sd, p.pd, p.dd) == (1, 1, 1, 1, 0, 0)
    if rank == 1:
        assert (p.ih, p.oh, p.kh, p.sh, p.ph, p.dh) == (1, 1, 1, 1, 0, 0) and "ih" not in p.descriptor


def test_round_trip_random_3d():
    rng = np.random.default_rng(11)
    n = 0
    while n < 200:
        kw = dict(mb=int(rng.integers(1, 3)), g=int(rng.integers(1, 3)), rank=3, dtype="float32",
                  direction=str(rng.choice(["fwd", "bwd_d", "bwd_w"])))
        for a in "dhw":
            kw.update({"i" + a: int(rng.integers(1, 12)), "k" + a: int(rng.integers(1, 4)),
                       "s" + a: int(rng.integers(1, 3)), "p" + a: int(rng.integers(0, 2)),
                       "d" + a: int(rng.integers(0, 2))})
        kw["ic"], kw["oc"] = kw["g"] * int(rng.integers(1, 4)), kw["g"] * int(rng.integers(1, 4))
        try:
            p = ConvProblem(**kw)
        except ValueError:
            continue
        assert ConvProblem.parse(p.label) == p, p.label
        n += 1


def test_a_problem_has_no_fields_beyond_its_rank():
    with pytest.raises(ValueError, match="a 2-D problem has no d axis, but id/kd"):
        ConvProblem(mb=1, ic=1, ih=8, iw=8, oc=1, kh=3, kw=3, kd=3)
    with pytest.raises(ValueError, match="a 1-D problem has no h axis"):
        ConvProblem(mb=1, ic=1, ih=8, iw=8, oc=1, kw=3, rank=1)
    with pytest.raises(ValueError, match="rank=4: accepted are 1, 2 and 3"):
        ConvProblem(mb=1, ic=1, iw=8, oc=1, kw=3, rank=4)


@pytest.mark.parametrize("x, w, kw, label", [
    ((2, 3, 17), (4, 3, 5), dict(padding="same"), "mb2ic3iw17oc4kw5pw2"),
    ((2, 3, 17), (4, 3, 4), dict(padding="same"), "mb2ic3iw17oc4ow17kw4pw1"),  # the extra element at the end
    ((1, 6, 8, 9, 10), (6, 2, 3, 3, 3), dict(groups=3, stride=(1, 2, 2), padding=(1, 0, 1)),
     "g3mb1ic6id8ih9iw10oc6kd3kh3kw3sh2sw2pd1pw1"),
    ((1, 2, 5, 5, 5), (2, 2, 3, 3, 3), dict(dilation=np.int64(2)), "mb1ic2id5oc2kd3dd1"),
])
def test_torch_arguments_at_every_rank(x, w, kw, label):
    p = ConvProblem.from_torch_args(x, w, **kw)
    assert p.rank == len(x) - 2 and p.label == label


def test_torch_arguments_are_checked_against_the_rank():
    with pytest.raises(ValueError, match=r"weight shape \(4, 3, 3, 3\): expected 3-D \(oc, ic/groups, kw\)"):
        ConvProblem.from_torch_args((2, 3, 17), (4, 3, 3, 3))
    with pytest.raises(ValueError, match="expected an int or 3 ints"):
        ConvProblem.from_torch_args((1, 2, 5, 5, 5), (2, 2, 3, 3, 3), stride=(1, 2))
