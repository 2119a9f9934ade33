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


def _native(shape: tuple, p: ConvProblem) -> tuple:
    """``shape`` with the problem's own axes only (a 1-D problem's NC1W as NCW)."""
    return shape[:2] + shape[len(shape) - p.rank:]


def _own_ends(p: ConvProblem) -> list:
    """The end padding each own axis's output size implies (negative: input left unread)."""
    return list(p.pads_r[len(p.pads_r) - p.rank:])


def conv_model(p: ConvProblem, w: np.ndarray) -> bytes:
    """The serialised one-node model of problem ``p`` with weights ``w`` as an initializer."""
    from onnx import TensorProto, helper, numpy_helper
    dt = TensorProto.FLOAT if p.dtype == "float32" else TensorProto.DOUBLE
    # an output size that leaves the last input rows unread (ph_r < 0) is ONNX's floor rule with
    # no end padding; its transposed form gets those rows back as output_padding
    # ONNX's Conv is N-D: the problem's own axes (a 1-D problem as (N, C, W) tensors)
    ends = _own_ends(p)
    attrs = dict(kernel_shape=list(p.own("k")), strides=list(p.own("s")), dilations=[d + 1 for d in p.own("d")],
                 pads=list(p.own("p")) + [max(e, 0) for e in ends], group=p.g)
    if p.transposed and any(e < 0 for e in ends):
        attrs["output_padding"] = [max(-e, 0) for e in ends]
    node = helper.make_node("ConvTranspose" if p.transposed else "Conv", ["X", "W"], ["Y"], **attrs)
    graph = helper.make_graph(
        [node], "convbench", [helper.make_tensor_value_info("X", dt, list(_native(p.src_shape, p)))],
        [helper.make_tensor_value_info("Y", dt, list(_native(p.dst_shape, p)))],
        initializer=[numpy_helper.from_array(np.ascontiguousarray(w, dtype=p.dtype).reshape(
            _native(p.weight_shape, p)), "W")])
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
                                threads="onnxruntime", ranks=(1, 2, 3))
    direction_reasons = {"bwd_w": "ONNX has no weight-gradient operator (ONNX Runtime's CPU provider runs "
                                  "inference graphs)"}

    @classmethod
    def unavailable_reason(cls) -> str | None:
        if importlib.util.find_spec("onnxruntime") is None or importlib.util.find_spec("onnx") is None:
            return "onnxruntime / onnx are not installed (pip install 'convbench[peers-extra]')"
        return None

    def _supports(self, p: ConvProblem) -> str | None:
        ends, strides = _own_ends(p), p.own("s")
        if any(-e >= s for e, s in zip(ends, strides)):
            return (f"negative padding: the output size leaves {'/'.join(str(-e) for e in ends)} end input "
                    f"elements unread, a stride or more ({'/'.join(map(str, strides))}); ONNX pads must be >= 0")
        return None

    def prepare(self, p: ConvProblem, w: np.ndarray | None) -> Plan:
        from ..threads import get_threads
        n = get_threads()
        ort = _ort()
        sess = ort.InferenceSession(conv_model(p, w), session_options(n), providers=["CPUExecutionProvider"])
        name = sess.get_inputs()[0].name
        sess.run(None, {name: np.zeros(_native(p.src_shape, p), dtype=p.dtype)})  # first run: kernels, buffers
        return self.make_plan(p, OrtState(sess, name, n), note=f"onnxruntime {ort.__version__}, {n} intra-op thread(s)")

    def run(self, plan: Plan[OrtState], *inputs: np.ndarray) -> np.ndarray:
        st, p = plan.state, plan.problem
        x = inputs[0]
        return st.session.run(None, {st.input_name: x.reshape(_native(x.shape, p))})[0].reshape(p.dst_shape)
