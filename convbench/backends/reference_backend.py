"""``reference``: the float64 oracle exposed through the backend contract.

It computes in float64 whatever the problem's dtype and casts the result, so
``conv2d(..., backend="reference")`` is the ground truth the others are judged by.
The runner leaves it out of ``--backends all`` (an oracle timed against itself
says nothing); name it explicitly to see its row.
"""

from __future__ import annotations

import numpy as np

from ..flops import dense_flops, prod
from ..problem import ConvProblem
from ..reference import conv_reference, conv_transpose_reference, conv_weight_reference
from .base import Backend, Capabilities, Estimate, Plan


class Reference(Backend):
    name = "reference"
    role = "oracle"
    algorithm = "reference"
    description = "float64 tap-by-tap loop with a channel tensordot: the oracle"
    capabilities = Capabilities(exact=True, transposed=True, backward_weights=True, threads="blas", ranks=(1, 2, 3))

    def prepare(self, p: ConvProblem, w: np.ndarray | None) -> Plan:
        # the state: float64 weights (none for the weight gradient)
        return self.make_plan(p, None if w is None else np.array(w, dtype=np.float64))

    def run(self, plan: Plan, *inputs: np.ndarray) -> np.ndarray:
        p = plan.problem
        if p.direction == "bwd_w":
            return conv_weight_reference(*inputs, p).astype(p.dtype)
        fn = conv_transpose_reference if p.transposed else conv_reference
        return fn(inputs[0], plan.state, p).astype(p.dtype)

    def _estimate(self, p: ConvProblem) -> Estimate:
        # float64 padded input (or padded output when transposed) plus float64 result
        flops = float(dense_flops(p))
        return Estimate(flops, flops, 8 * p.mb * (p.ic * prod(p.padded) + p.oc * prod(p.out_spatial)))
