"""``onnxruntime``: a one-node ONNX ``Conv`` (or ``ConvTranspose``) graph on ONNX Runtime's CPU
execution provider (MLAS kernels), as a peer.

The graph is what a deployment exports for one layer: the input ``X`` is a graph input, the
weights are an initializer (so ONNX Runtime may pre-pack them and rewrite the node into its
blocked ``NCHWc`` layout at ``ORT_ENABLE_ALL``, which it does for float32 convolutions on x86),
and ``Y`` is the output. Building the model and the session (graph optimisation, weight
pre-packing) happens in ``prepare``; ``run`` is one ``InferenceSession.run``.

Threads: each session gets ``intra_op_num_threads`` = the run's thread count (read when the
plan is made), ``inter_op_num_threads`` = 1, sequential execution, and intra-op spinning off,
so an idle ONNX Runtime pool does not burn a core that the backends timed next to it need.

ONNX has no weight-gradient operator, and the CPU provider implements ``Conv`` for float32
only: float64 and ``bwd_w`` are refused by capability. ONNX ``pads`` cannot be negative: an
output size that leaves fewer than ``stride`` bottom/right input rows unread is ONNX's floor
rule (its transposed form takes them back as ``output_padding``); more is refused.

Registered only when ``onnxruntime`` and ``onnx`` import (``pip install 'convbench[peers-extra]'``).
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..problem import ConvProblem
from .base import Backend, Capabilities, Plan


def _ort():
    """``onnxruntime``, imported on first use: listing the backends (every CLI start) must
    not pay for importing onnx and onnxruntime (1.7 s measured)."""
    import onnxruntime
    return onnxruntime

#: ONNX Runtime 1.31 reads models up to IR version 13; onnx 1.23 writes 14 by default
IR_VERSION = 8
OPSET = 17


@dataclass
class OrtState:
    session: Any
    input_name: str
    threads: int


def conv_model(p: ConvProblem, w: np.ndarray) -> bytes:
    """The serialised one-node model of problem ``p`` with weights ``w`` as an initializer."""
    from onnx import TensorProto, helper, numpy_helper
    dt = TensorProto.FLOAT if p.dtype == "float32" else TensorProto.DOUBLE
    # an output size that leaves the last input rows unread (ph_r < 0) is ONNX's floor rule with
    # no end padding; its transposed form gets those rows back as output_padding
    attrs = dict(kernel_shape=[p.kh, p.kw], strides=[p.sh, p.sw], dilations=[p.dh + 1, p.dw + 1],
                 pads=[p.ph, p.pw, max(p.ph_r, 0), max(p.pw_r, 0)], group=p.g)
    if p.transposed and (p.ph_r < 0 or p.pw_r < 0):
        attrs["output_padding"] = [max(-p.ph_r, 0), max(-p.pw_r, 0)]
    node = helper.make_node("ConvTranspose" if p.transposed else "Conv", ["X", "W"], ["Y"], **attrs)
    graph = helper.make_graph(
        [node], "convbench", [helper.make_tensor_value_info("X", dt, list(p.src_shape))],
        [helper.make_tensor_value_info("Y", dt, list(p.dst_shape))],
        initializer=[numpy_helper.from_array(np.ascontiguousarray(w, dtype=p.dtype), "W")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], ir_version=IR_VERSION)
    return model.SerializeToString()


def session_options(threads: int):
    ort = _ort()
    so = ort.SessionOptions()
    so.intra_op_num_threads = int(threads)
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    so.log_severity_level = 3  # errors only: no per-session warnings on the terminal
    return so


class OnnxRuntime(Backend):
    name = "onnxruntime"
    baseline_rank = 2
    algorithm = "ONNX Runtime (MLAS)"
    description = "one-node ONNX Conv / ConvTranspose graph on ONNX Runtime's CPU execution provider"
    role = "peer"
    capabilities = Capabilities(dtypes=("float32",), exact=False, rtol={"float32": 1e-5}, transposed=True,
                                threads="onnxruntime")
    direction_reasons = {"bwd_w": "ONNX has no weight-gradient operator (ONNX Runtime's CPU provider runs "
                                  "inference graphs)"}

    @classmethod
    def unavailable_reason(cls) -> str | None:
        if importlib.util.find_spec("onnxruntime") is None or importlib.util.find_spec("onnx") is None:
            return "onnxruntime / onnx are not installed (pip install 'convbench[peers-extra]')"
        return None

    def _supports(self, p: ConvProblem) -> str | None:
        if -p.ph_r >= p.sh or -p.pw_r >= p.sw:
            return (f"negative padding: the output size leaves {-p.ph_r}/{-p.pw_r} bottom/right input rows "
                    f"unread, a stride or more ({p.sh}/{p.sw}); ONNX pads must be >= 0")
        return None

    def prepare(self, p: ConvProblem, w: np.ndarray | None) -> Plan:
        from ..threads import get_threads
        n = get_threads()
        ort = _ort()
        sess = ort.InferenceSession(conv_model(p, w), session_options(n), providers=["CPUExecutionProvider"])
        name = sess.get_inputs()[0].name
        sess.run(None, {name: np.zeros(p.src_shape, dtype=p.dtype)})  # first run: kernels chosen, buffers made
        return self.make_plan(p, OrtState(sess, name, n), note=f"onnxruntime {ort.__version__}, {n} intra-op thread(s)")

    def run(self, plan: Plan[OrtState], *inputs: np.ndarray) -> np.ndarray:
        st = plan.state
        return st.session.run(None, {st.input_name: inputs[0]})[0]
