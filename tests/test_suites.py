"""Shipped suites and suite files: layer counts, multiplicities, benchdnn files as they are."""

from __future__ import annotations

import pytest

from convbench.cli import main
from convbench.suites import list_suites, load_suite, parse_suite_text

EXPECTED = {  # name: (unique conv shapes, conv layers, pooling layers)
    "resnet50": (23, 53, 2), "vgg16": (9, 13, 5), "alexnet": (5, 5, 3), "mobilenet_v2": (30, 52, 0),
    "deepbench_inference": (103, 107, 0), "deepbench_training": (90, 94, 0),
}


@pytest.mark.parametrize("name", sorted(list_suites()))
def test_every_shipped_suite_parses(name):
    entries = load_suite(name)
    assert entries and all(e.multiplicity >= 1 for e in entries)
    labels = [e.problem.label for e in entries]
    assert len(labels) == len(set(labels)), "a shape listed twice should be one line with # xN"


@pytest.mark.parametrize("name, shapes, layers, pools", [(k, *v) for k, v in EXPECTED.items()])
def test_published_layer_counts(name, shapes, layers, pools):
    entries = load_suite(name)
    conv = [e for e in entries if e.problem.kind == "conv"]
    assert len(conv) == shapes
    assert sum(e.multiplicity for e in conv) == layers
    assert sum(e.multiplicity for e in entries if e.problem.kind == "pool") == pools


def test_pool_layers_sit_where_the_network_has_them():
    names = [e.problem.name for e in load_suite("resnet50")]
    assert names[:2] == ["resnet50:conv1", "resnet50:maxpool"] and names[-1] == "resnet50:avgpool"
    e = {x.problem.name: x.problem for x in load_suite("resnet50")}
    assert e["resnet50:maxpool"].label == '--alg=max mb1ic64ih112kh3sh2ph1n"resnet50:maxpool"'
    assert (e["resnet50:avgpool"].alg, e["resnet50:avgpool"].oh) == ("avg_p", 1)
    vgg = [x.problem for x in load_suite("vgg16") if x.problem.kind == "pool"]
    assert [(p.ic, p.ih, p.oh) for p in vgg] == [(64, 224, 112), (128, 112, 56), (256, 56, 28), (512, 28, 14),
                                                 (512, 14, 7)]
    alex = [x.problem for x in load_suite("alexnet") if x.problem.kind == "pool"]
    assert [(p.ih, p.oh, p.kh, p.sh) for p in alex] == [(55, 27, 3, 2), (27, 13, 3, 2), (13, 6, 3, 2)]


def test_deepbench_training_batches():
    mbs = {x.problem.mb for x in load_suite("deepbench_training")}
    assert mbs == {4, 8, 16, 32}


def test_resnet50_details():
    e = {x.problem.name: x for x in load_suite("resnet50")}
    stem = e["resnet50:conv1"].problem
    assert (stem.ic, stem.oc, stem.kh, stem.sh, stem.ph, stem.oh) == (3, 64, 7, 2, 3, 112)
    # v1.5: the stride sits in the 3x3 convolution of the first block of a stage
    assert e["resnet50:layer2.0.conv2"].problem.sh == 2 and e["resnet50:layer2.0.conv2"].problem.kh == 3
    assert e["resnet50:layer3.1-5.conv2"].multiplicity == 5


def test_mobilenet_depthwise_is_groups():
    dws = [x.problem for x in load_suite("mobilenet_v2") if x.problem.g > 1]
    assert dws and all(p.is_depthwise for p in dws)
    assert sum(x.multiplicity for x in load_suite("mobilenet_v2") if x.problem.g > 1) == 17


def test_multiplicity_and_comments():
    text = ('# header\n'
            'mb1ic3ih8oc4kh3n"a#b"  # x3\n'   # '#' inside a quoted name is part of the name
            '\n'
            'mb1ic3ih8oc4kh5  #x2 trailing words\n'
            'mb1ic3ih8oc4kh1  # a comment\n')
    es = parse_suite_text(text)
    assert [(e.problem.name, e.multiplicity) for e in es] == [("a#b", 3), ("", 2), ("", 1)]


def test_benchdnn_shapes_file_loads_as_it_is():
    text = '''# basic shapes
--dt=f32 --dir=FWD_B
g1ic3oc16_iw5ow5kw3pw1_n"1d_conv:1st"
g1ic16oc16_ih5oh8kh3ph3_n"2d_conv:gemm"
g16ic16oc16_ih5oh5kh3ph1_n"2d_conv:depthwise"
g1ic3oc16_id5od5kd3pd1_n"3d_conv:1st"
'''
    es = parse_suite_text(text)
    assert len(es) == 4
    assert [e.problem.rank for e in es] == [1, 2, 2, 3]  # every rank loads, as benchdnn reads it
    assert es[3].problem.input_shape == (2, 3, 5, 5, 5)
    assert es[1].problem.oh == 8 and not es[1].problem.torch_compatible


def test_bad_line_names_file_and_line():
    with pytest.raises(ValueError, match=r"my.txt:2: descriptor 'zzz'"):
        parse_suite_text("mb1ic1ih4oc1kh3\nzzz\n", "my.txt")


def test_suite_file_and_batch_override(tmp_path, capsys):
    f = tmp_path / "net.txt"
    f.write_text('mb1ic4ih8oc4kh3ph1n"net:a"  # x2\nmb1ic4ih8oc8kh1n"net:b"\n')
    assert main(["run", "--suite-file", str(f), "--batch", "3", "--dry-run", "--backends", "im2col_blas"]) == 0
    out = capsys.readouterr().out
    assert "2 problems" in out and "mb3ic4ih8oc4kh3ph1" in out
    assert main(["suites"]) == 0
    assert "resnet50" in capsys.readouterr().out


def test_benchdnn_star_multiplicity_and_which_wins():
    from convbench.suites import parse_suite_text
    text = ('mb1ic128ih768oc128oh768kh3ph1n"stable_diffusion:conv1*5"\n'
            'mb1ic8ih16oc8kh3ph1n"x*2"  # x7\n')
    a, b = parse_suite_text(text)
    assert a.multiplicity == 5 and a.problem.name == "stable_diffusion:conv1*5"
    assert b.multiplicity == 7  # the # xN comment wins over *N in the name


@pytest.mark.parametrize("comment", ["# x-2", "# xabc", "# x0", "# x1.5"])
def test_bad_multiplicities_are_errors(comment):
    from convbench.suites import parse_suite_text
    with pytest.raises(ValueError, match=r"<suite>:1: multiplicity 'x.*' is not valid; expected '# xN'"):
        parse_suite_text(f"mb1ic4ih8oc4kh3 {comment}\n")


def test_the_same_shape_twice_counts_every_line(tmp_path):
    from convbench.sweep import expand_problems
    f = tmp_path / "net.txt"
    f.write_text("mb1ic4ih8oc4kh3  # x3\nmb1ic4ih8oc4kh3  # x2\nmb1ic4ih10oc4kh3\n")
    entries = expand_problems(suite_file=[str(f)])
    assert len(entries) == 2
    assert [(e.suite, e.multiplicity) for e in entries] == [("net", 5), ("net", 1)]


def test_bom_directory_and_device(tmp_path):
    from convbench.suites import load_suite
    f = tmp_path / "bom.txt"
    f.write_bytes("\ufeffmb1ic4ih8oc4kh3\n".encode("utf-8"))
    assert load_suite(str(f), is_path=True)[0].problem.ic == 4
    with pytest.raises(ValueError, match="is a directory; expected a file of descriptors"):
        load_suite(str(tmp_path), is_path=True)
    with pytest.raises(ValueError, match="/dev/null: holds no problems"):
        load_suite("/dev/null", is_path=True)
    with pytest.raises(ValueError, match="no such file"):
        load_suite(str(tmp_path / "missing.txt"), is_path=True)


@pytest.mark.parametrize("name, rank, shapes, layers", [
    ("i3d", 3, 55, 63), ("unet3d", 3, 11, 11), ("resnext101_3d", 3, 37, 39), ("x3d_dw", 3, 13, 13),
    ("wavenet", 1, 13, 13), ("textcnn", 1, 6, 6)])
def test_rank_suites_load_with_multiplicities(name, rank, shapes, layers):
    """The 3-D and 1-D networks: benchdnn's shapes with their *N multiplicities, and the pooling
    layers the networks have."""
    entries = load_suite(name)
    assert {e.problem.rank for e in entries} == {rank}
    assert len(entries) == shapes and sum(e.multiplicity for e in entries) == layers
    if name in ("i3d", "unet3d", "textcnn"):
        assert any(e.problem.kind == "pool" for e in entries)


def test_benchdnn_3d_rules_in_a_suite_file(tmp_path):
    f = tmp_path / "mixed.txt"
    f.write_text('mb1ic4ih8oc4kh3n"two"\nic8oc8_id4ih6iw6_kd3kh3kw3_pd1ph1pw1n"three*2"\nmb1ic4iw9oc4kw3n"one"\n'
                 "mb1ic4id8ih8oc4kd3kh3kw3\n")
    with pytest.raises(ValueError, match=r"mixed.txt:4: descriptor .* iw and kw are required"):
        load_suite(str(f), is_path=True)
    f.write_text("\n".join(f.read_text().splitlines()[:3]) + "\n")
    entries = load_suite(str(f), is_path=True)
    assert [e.problem.rank for e in entries] == [2, 3, 1] and [e.multiplicity for e in entries] == [1, 2, 1]
