"""Deliberately broken backends, registered by tests to exercise the runner's cell states."""

from __future__ import annotations

import numpy as np

from convbench.backends.base import Backend, Capabilities, Plan
from convbench.reference import conv2d_reference


class _Base(Backend):
    algorithm = "test"
    capabilities = Capabilities()

    def prepare(self, p, w):
        return Plan(p, {"w": w})


class WrongBackend(_Base):
    """Finite but wrong: the reference plus one."""
    name = "fake_wrong"

    def run(self, plan, x):
        return (conv2d_reference(x, plan.state["w"], plan.problem) + 1).astype(plan.problem.dtype)


class CrashBackend(_Base):
    """Raises in run."""
    name = "fake_crash"

    def run(self, plan, x):
        raise RuntimeError("kaboom in run")


class NanBackend(_Base):
    name = "fake_nan"

    def run(self, plan, x):
        return np.full(plan.problem.output_shape, np.nan, dtype=plan.problem.dtype)


class NarrowBackend(_Base):
    """Declares float64 only: every float32 cell is skipped with the reason."""
    name = "fake_f64only"
    capabilities = Capabilities(dtypes=("float64",))

    def run(self, plan, x):
        return conv2d_reference(x, plan.state["w"], plan.problem).astype(plan.problem.dtype)
