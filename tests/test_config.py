"""The sweep configuration: named as the options are, stored as it is, read back whatever its age."""

from __future__ import annotations

import dataclasses

import pytest

from convbench.cells import Entry
from convbench.cli.common import BACKEND_OPTIONS, PROBLEM_OPTIONS, RUN_OPTIONS, TIMING_OPTIONS, normalize
from convbench.config import SweepConfig, primary_variant
from convbench.problem import InvalidProblem, parse_problem

#: fields that are not options: what the options expanded to, and two harness switches
NOT_OPTIONS = {"entries", "sentinel", "phases"}


def test_every_sweep_option_is_a_field_of_the_same_name_and_default():
    sweep_options = [o for o in PROBLEM_OPTIONS + BACKEND_OPTIONS + TIMING_OPTIONS if o.name != "dry_run"]
    names = {o.name for o in sweep_options} | {"baseline"}
    fields = {f.name: f for f in dataclasses.fields(SweepConfig)}
    assert set(fields) - NOT_OPTIONS == names
    defaults = normalize(RUN_OPTIONS, {}, "test")
    cfg = SweepConfig()
    for name in names - {"backends", "inject_slowdown"}:  # backends: resolved; inject: a dict
        got, want = getattr(cfg, name), defaults[name]
        assert got == (tuple(want) if isinstance(want, list) else want), name


def test_the_record_is_the_options_and_reads_back():
    entries = (Entry(parse_problem("mb1ic4ih8oc4kh3"), "net", 3), Entry(parse_problem("--alg=max mb1ic4ih8kh2sh2")),
               Entry(InvalidProblem("mb1ic1ih2oc1kh5", "kernel too big")))
    cfg = SweepConfig(entries=entries, backends=("im2col_blas",), threads=(1, 2), cache=("hot", "cold"),
                      inject_slowdown={"im2col_blas": 1.5}, min_time=0.01)
    rec = cfg.to_record()
    assert rec["threads"] == [1, 2] and rec["cache"] == ["hot", "cold"] and rec["min_time"] == 0.01
    assert rec["problems"][0] == {"problem": "mb1ic4ih8oc4kh3", "suite": "net", "multiplicity": 3}
    assert SweepConfig.from_record(rec) == cfg
    assert primary_variant(rec) == (1, "hot")


def test_a_record_from_before_schema_5_reads_as_the_same_config():
    old = {"problems": ["mb1ic4ih8oc4kh3", {"invalid": "x", "reason": "r"}], "backends": ["im2col_blas"],
           "threads": 2, "thread_counts": [2, 1], "caches": ["cold"], "inject": {"im2col_blas": 2.0},
           "tags": {"mb1ic4ih8oc4kh3": ["resnet50", 4]}, "cell_budget": 5.0}
    cfg = SweepConfig.from_record(old)
    assert cfg.threads == (2, 1) and cfg.cache == ("cold",) and cfg.inject_slowdown == {"im2col_blas": 2.0}
    assert cfg.entries[0] == Entry(parse_problem("mb1ic4ih8oc4kh3"), "resnet50", 4)
    assert not cfg.entries[1].problem.valid and cfg.cell_budget == 5.0
    assert primary_variant(old) == (2, "cold")


def test_cells_enumerate_densities_and_variants_once():
    conv, bwd_w = parse_problem("mb1ic4ih8oc4kh3"), parse_problem("--dir=BWD_W mb1ic4ih8oc4kh3")
    bad = InvalidProblem("x", "r")
    cfg = SweepConfig(entries=(Entry(conv), Entry(bwd_w), Entry(bad)), weight_density=(1.0, 0.5), threads=(1, 2))
    cells = cfg.cells()
    assert [(c.problem.label, c.density, c.threads) for c in cells] == [
        (conv.label, 1.0, 1), (conv.label, 1.0, 2), (conv.label, 0.5, 1), (conv.label, 0.5, 2),
        (bwd_w.label, 1.0, 1), (bwd_w.label, 1.0, 2),  # no weights to prune in the weight gradient
        ("x", 1.0, 1)]  # an invalid problem is one cell
    assert len({c.key for c in cells}) == len(cells)


@pytest.mark.parametrize("role", ["own", "peer", "oracle", "meta"])
def test_roles_are_data_on_the_backends(role):
    from convbench.backends import REGISTRY, backend_class, backend_role, backends_with_role, resolve_backends
    names = backends_with_role(role, available=False)
    assert names, role
    assert all(backend_class(n) is None or backend_class(n).role == role for n in names)
    every = resolve_backends("all")
    assert all(backend_role(n) in ("own", "peer") for n in every)
    assert {backend_role(n) for n in REGISTRY} <= {"own", "peer", "oracle", "meta"}
