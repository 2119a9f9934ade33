"""``auto``: not an algorithm but a choice among them (:mod:`convbench.select.auto`).

In a sweep (``convbench run --backends auto,...``) it runs every problem on the backend the
fitted selector (or the built-in rules) picks, and the row's ``note`` says which
(``auto chose NAME``). Selection happens in ``prepare`` (timed apart as setup, as every
plan's one-off work is); the timed run is the chosen backend's. Its result is checked
against the chosen backend's own tolerance.
"""

from __future__ import annotations

from .base import Backend, Capabilities, Plan


class Auto(Backend):
    name = "auto"
    algorithm = "auto"
    description = "the backend convbench's selector (or its built-in rules) picks for each problem"
    capabilities = Capabilities(dtypes=("float32", "float64"), dilation=True, groups=True, asymmetric_padding=True,
                                forward=True, transposed=True, backward_weights=True, exact=False,
                                rtol={"float32": 5e-4, "float64": 5e-12}, threads="numba")

    def supports(self, p) -> str | None:
        from ..select.auto import choose_for_problem
        if getattr(p, "kind", "conv") != "conv":
            return "auto runs convolutions in a sweep (the pooling API's backend='auto' uses pool_numba)"
        try:
            choose_for_problem(p)
        except ValueError as e:
            return str(e)
        return None

    def _chosen(self, p):
        from ..select.auto import _instance, choose_for_problem
        name = choose_for_problem(p)
        return name, _instance(name)

    def _estimate(self, p):
        return self._chosen(p)[1].estimate(p)

    def memory_limit(self):
        return None

    def prepare(self, p, w) -> Plan:
        name, inner = self._chosen(p)
        plan = inner.prepare(p, w)
        self.capabilities = inner.capabilities  # the check uses the chosen algorithm's tolerance
        note = f"auto chose {name}" + (f"; {plan.note}" if plan.note else "")
        return Plan(p, (inner, plan), flops_executed=plan.flops_executed, flops_multiply=plan.flops_multiply,
                    workspace_bytes=plan.workspace_bytes, note=note)

    def run(self, plan: Plan, *inputs):
        inner, ip = plan.state
        return inner.run(ip, *inputs)

    def phases(self, plan: Plan, *inputs):
        inner, ip = plan.state
        return inner.phases(ip, *inputs)
