"""``auto``: not an algorithm but a choice among them (:mod:`convbench.select.auto`).

In a sweep (``convbench run --backends auto,...``) it runs every problem on the backend the
fitted selector (or the built-in rules) picks; the row's ``chosen`` column says which.
Selection happens in ``prepare`` (timed apart as setup, as every plan's one-off work is);
the timed run is the chosen backend's, and its result is checked against the chosen
backend's own tolerance. It is registered with the other backends (role ``meta``) but lives
here, with the selector it asks.
"""

from __future__ import annotations

from ..backends.base import Backend, Capabilities, Plan
from .auto import choose_for_problem, instance


class Auto(Backend):
    name = "auto"
    algorithm = "auto"
    role = "meta"
    description = "the backend convbench's selector (or its built-in rules) picks for each problem"
    capabilities = Capabilities(dtypes=("float32", "float64"), dilation=True, groups=True, asymmetric_padding=True,
                                forward=True, transposed=True, backward_weights=True, exact=False,
                                rtol={"float32": 5e-4, "float64": 5e-12}, threads="numba", ranks=(1, 2, 3))

    def supports(self, p) -> str | None:
        if p.kind != "conv":
            return "auto runs convolutions in a sweep (the pooling API's backend='auto' uses pool_numba)"
        try:
            choose_for_problem(p)
        except ValueError as e:
            return str(e)
        return None

    def _chosen(self, p):
        name = choose_for_problem(p)
        return name, instance(name)

    def _estimate(self, p):
        return self._chosen(p)[1].estimate(p)

    def tolerance(self, p) -> float:
        """The chosen backend's tolerance: its result is what is checked."""
        return self._chosen(p)[1].tolerance(p)

    def memory_limit(self):
        return None

    def prepare(self, p, w) -> Plan:
        name, inner = self._chosen(p)
        plan = inner.prepare(p, w)
        return Plan(p, (inner, plan), flops_executed=plan.flops_executed, flops_multiply=plan.flops_multiply,
                    workspace_bytes=plan.workspace_bytes, note=plan.note, chosen=name)

    def run(self, plan: Plan, *inputs):
        inner, ip = plan.state
        return inner.run(ip, *inputs)

    def phases(self, plan: Plan, *inputs):
        inner, ip = plan.state
        return inner.phases(ip, *inputs)
