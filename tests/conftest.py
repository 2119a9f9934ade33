"""Shared fixtures: the registered backends and a deterministic set of small problems."""

from __future__ import annotations

import os

import numpy as np
import pytest

# backend="auto" in tests follows the built-in rules, never a selector fitted on this machine
# (tests/test_select.py points it at its own temporary files)
os.environ["CONVBENCH_SELECTOR"] = os.path.join(os.path.dirname(__file__), "data", "no-such-selector.json")

from convbench.backends import available_backends, registered_backends, unavailable_reason
from convbench.problem import ConvProblem


def backend_params(kind: str = "conv"):
    """Every registered backend of ``kind`` (``conv`` or ``pool``); unavailable ones skip with
    the registry's reason."""
    out = []
    for name in registered_backends(kind):
        reason = unavailable_reason(name)
        marks = [pytest.mark.skip(reason=f"{name}: {reason}")] if reason else []
        out.append(pytest.param(name, id=name, marks=marks))
    return out


def random_problems(n: int = 24, seed: int = 1234) -> list[ConvProblem]:
    """Small random problems covering stride, padding, dilation, groups, both dtypes and
    asymmetric (benchdnn) output sizes. Fixed seed: the same list every run."""
    rng = np.random.default_rng(seed)
    out = []
    while len(out) < n:
        g = int(rng.choice([1, 1, 1, 2, 3]))
        icg = int(rng.integers(1, 6))
        ocg = int(rng.integers(1, 6))
        if len(out) % 6 == 5:  # depthwise
            g, icg, ocg = int(rng.integers(2, 6)), 1, 1
        kh, kw = int(rng.integers(1, 6)), int(rng.integers(1, 6))
        kwargs = dict(mb=int(rng.integers(1, 3)), ic=g * icg, oc=g * ocg, ih=int(rng.integers(4, 14)),
                      iw=int(rng.integers(4, 14)), kh=kh, kw=kw, sh=int(rng.integers(1, 4)),
                      sw=int(rng.integers(1, 4)), ph=int(rng.integers(0, 3)), pw=int(rng.integers(0, 3)),
                      dh=int(rng.integers(0, 3)) if rng.random() < 0.3 else 0,
                      dw=int(rng.integers(0, 3)) if rng.random() < 0.3 else 0, g=g,
                      dtype="float64" if rng.random() < 0.25 else "float32")
        try:
            p = ConvProblem(**kwargs)
        except ValueError:
            continue
        if len(out) % 7 == 3:  # benchdnn-style explicit output one larger: asymmetric padding
            try:
                p = ConvProblem(**dict(kwargs, oh=p.oh + 1))
            except ValueError:
                pass
        out.append(p)
    # a few fixed shapes that exercise the optimised paths (register blocks, tails)
    out += [ConvProblem.parse(d) for d in (
        "mb1ic16ih9oc8kh3ph1", "mb2ic32ih7oc12kh3sh2ph1", "mb1ic20ih6iw11oc5kh2kw3dh1dw1",
        "g2mb1ic32ih8oc8kh3ph1", "mb1ic1ih40oc1kh7ph3", "--dt=f64 mb1ic24ih5oc7kh3ph1")]
    return out


def random_problems_of_rank(rank: int, n: int, seed: int) -> list[ConvProblem]:
    """Small random 1-D or 3-D problems: strides, padding (some asymmetric), dilation, groups,
    depthwise, both dtypes, odd sizes. Fixed seed."""
    rng = np.random.default_rng(seed)
    axes = "dhw"[3 - rank:]
    hi = 40 if rank == 1 else 8
    out = []
    while len(out) < n:
        g = int(rng.choice([1, 1, 2, 3]))
        icg, ocg = int(rng.integers(1, 5)), int(rng.integers(1, 5))
        if len(out) % 5 == 4:  # depthwise
            g, icg, ocg = int(rng.integers(2, 5)), 1, 1
        kw = dict(mb=int(rng.integers(1, 3)), ic=g * icg, oc=g * ocg, g=g, rank=rank,
                  dtype="float64" if rng.random() < 0.25 else "float32")
        for a in axes:
            kw.update({"i" + a: int(rng.integers(3, hi)), "k" + a: int(rng.integers(1, 4 if rank == 3 else 8)),
                       "s" + a: int(rng.integers(1, 3)), "p" + a: int(rng.integers(0, 2)),
                       "d" + a: int(rng.integers(0, 2)) if rng.random() < 0.25 else 0})
        try:
            p = ConvProblem(**kw)
        except ValueError:
            continue
        if len(out) % 4 == 2:  # benchdnn-style explicit output one larger: asymmetric padding
            try:
                p = ConvProblem(**dict(kw, **{"o" + axes[0]: getattr(p, "o" + axes[0]) + 1}))
            except ValueError:
                pass
        out.append(p)
    return out


PROBLEMS = random_problems()
#: the contract's 1-D and 3-D problems (plus fixed shapes for the optimised paths)
PROBLEMS_1D = random_problems_of_rank(1, 8, 11) + [ConvProblem.parse(d) for d in (
    "mb1ic32iw50oc32kw3pw1", "mb2ic16iw33oc24kw5sw2pw2", "mb1ic8iw40oc8kw3dw3pw3", "mb1ic8iw37oc12kw5pw2")]
PROBLEMS_3D = random_problems_of_rank(3, 10, 33) + [ConvProblem.parse(d) for d in (
    "mb1ic16id6ih7iw8oc16kd3kh3kw3pd1ph1pw1", "mb1ic24id5ih6iw6oc12kd1kh3kw3ph1pw1",
    "g8mb1ic8id7oc8kd3pd1", "mb2ic4id9oc8kd3sd2pd1", "--dt=f64 mb1ic6id5ih6iw7oc5kd2kh3kw2",
    "mb1ic4id7ih6iw9oc6kd5kh5kw5pd2ph2pw2", "g2mb2ic6id5ih9iw7oc4od6kd3kh3kw3pd1pw1")]


def has_torch() -> bool:
    return "torch_onednn" in available_backends()


requires_torch = pytest.mark.skipif(not has_torch(), reason="torch (the pinned peer) is not installed")


@pytest.fixture
def tiny_run_args(tmp_path):
    """CLI arguments for a fast sweep on tiny problems."""
    return ["--min-time", "0.005", "--max-time", "0.02", "--min-rounds", "2", "--quiet", "--no-plots"]
