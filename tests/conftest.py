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


PROBLEMS = random_problems()


def has_torch() -> bool:
    return "torch_onednn" in available_backends()


requires_torch = pytest.mark.skipif(not has_torch(), reason="torch (the pinned peer) is not installed")


@pytest.fixture
def tiny_run_args(tmp_path):
    """CLI arguments for a fast sweep on tiny problems."""
    return ["--min-time", "0.005", "--max-time", "0.02", "--min-rounds", "2", "--quiet", "--no-plots"]
