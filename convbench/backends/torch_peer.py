"""``torch_onednn``: PyTorch's ``conv1d/2d/3d`` / ``conv_transpose1d/2d/3d`` on the CPU, as a peer.

A 1-D problem (laid out NC1W in convbench) crosses as an ``(N, C, W)`` view and runs
``conv1d``; a 3-D one runs ``conv3d`` (oneDNN's 3-D kernels).

The weight gradient (``bwd_w``) goes through ``torch.nn.grad.conv2d_weight``, which is
``torch.ops.aten.convolution_backward`` with ``output_mask=(False, True, False)``: the call
autograd makes for a convolution's weight, asking for dW alone (no dX, no bias gradient).

For float32 PyTorch dispatches to oneDNN (``_ConvBackend.Mkldnn``); for float64
it falls back to its own im2col path (``Slow2d``). The dispatch PyTorch chose is
recorded in each row's ``note`` so a reader knows what was timed. Inputs and
outputs cross the boundary with ``torch.from_numpy`` / ``.numpy()``, which share
memory, so the timing holds no copies convbench added.

Registered only when ``torch`` imports; install the pinned CPU build with
``pip install torch==2.13.0`` (an unpinned ``torch`` pulls the CUDA build).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from ..problem import ConvProblem
from .base import Backend, Capabilities, Plan

try:
    import torch
except ImportError:  # pragma: no cover - depends on the environment
    torch = None


def native(a: np.ndarray, p) -> "torch.Tensor":
    """``a`` as the tensor torch's functional of ``p``'s rank takes: a 1-D problem's NC1W
    array as an ``(N, C, W)`` view (no copy), anything else as it is."""
    if p.rank == 1:
        a = a.reshape(a.shape[0], a.shape[1], a.shape[-1])
    return torch.from_numpy(a)


def _ops(p, f: str, plus: int = 0) -> tuple:
    """Field ``f`` over the problem's own axes, each plus ``plus`` (torch's per-axis arguments)."""
    return tuple(v + plus for v in p.own(f))


@dataclass
class TorchState:
    """The weight tensor, the functional and its keyword arguments."""

    w: Any
    fn: Callable
    kw: dict


class TorchOneDNN(Backend):
    name = "torch_onednn"
    baseline_rank = 0
    pool_companion = "pool_torch"
    algorithm = "torch (oneDNN)"
    description = "torch.nn.functional.conv1d/2d/3d / conv_transpose1d/2d/3d on CPU (oneDNN for float32)"
    role = "peer"
    # PyTorch pads symmetrically; the transposed form needs oh to match its formula too
    capabilities = Capabilities(exact=False, rtol={"float32": 1e-5, "float64": 1e-12},
                                asymmetric_padding=False, transposed=True, backward_weights=True,
                                threads="torch", ranks=(1, 2, 3))

    @classmethod
    def unavailable_reason(cls) -> str | None:
        if torch is None:
            return "torch is not installed (pip install 'convbench[peers]' installs torch==2.13.0)"
        return None

    def _supports(self, p: ConvProblem) -> str | None:
        if p.transposed:
            op = self._output_padding(p)
            if any(o < 0 or o >= max(s, d + 1) for o, s, d in zip(op, p.own("s"), p.own("d"))):
                return f"output_padding {op} outside PyTorch's range [0, max(stride, dilation))"
        return None

    @staticmethod
    def _output_padding(p: ConvProblem) -> tuple:
        """The ``output_padding`` that gives back the input size, per own axis."""
        return tuple(ax.p - r for a, ax, r in zip(p.layout_axes, p.axes, p.pads_r) if a in p.own_axes)

    def prepare(self, p: ConvProblem, w: np.ndarray | None) -> Plan:
        if p.direction == "bwd_w":
            return self._prepare_wgrad(p)
        wt = native(np.array(w, dtype=p.dtype, order="C", copy=True), p)
        kw = dict(stride=_ops(p, "s"), padding=_ops(p, "p"), dilation=_ops(p, "d", 1), groups=p.g)
        F = torch.nn.functional
        if p.transposed:
            kw["output_padding"] = self._output_padding(p)
            # conv_transposeNd takes (in=oc, out/g=ic/g, *kernel): the forward weight's layout
            fn = (F.conv_transpose1d, F.conv_transpose2d, F.conv_transpose3d)[p.rank - 1]
        else:
            fn = (F.conv1d, F.conv2d, F.conv3d)[p.rank - 1]
        x = native(np.zeros(p.src_shape, dtype=p.dtype), p)
        with torch.no_grad():
            fn(x, wt, **kw)  # first call: oneDNN primitive creation happens here
        try:
            sel = torch._C._select_conv_backend(
                x, wt, None, list(kw["stride"]), list(kw["padding"]), list(kw["dilation"]),
                p.transposed, list(kw.get("output_padding", (0,) * p.rank)), p.g)
            note = f"torch dispatch: {str(sel).split('.')[-1]}"
        except Exception:  # private API: informative only
            note = ""
        return self.make_plan(p, TorchState(w=wt, fn=fn, kw=kw), note=note)

    def _prepare_wgrad(self, p: ConvProblem) -> Plan:
        # torch.nn.grad.convNd_weight's call: a stand-in weight of the right shape (never read)
        wshape = p.weight_shape if p.rank > 1 else p.weight_shape[:2] + (p.kw,)
        wt = torch.empty(1, dtype=getattr(torch, p.dtype)).expand(wshape)
        kw = dict(stride=list(_ops(p, "s")), padding=list(_ops(p, "p")), dilation=list(_ops(p, "d", 1)))

        def fn(x, dy, w, stride, padding, dilation):
            return torch.ops.aten.convolution_backward(dy, x, w, None, stride, padding, dilation, False,
                                                       [0] * p.rank, p.g, (False, True, False))[1]
        with torch.no_grad():  # first call: primitive creation
            fn(native(np.zeros(p.input_shape, p.dtype), p), native(np.zeros(p.output_shape, p.dtype), p), wt, **kw)
        note = "torch.ops.aten.convolution_backward, output_mask=(False, True, False)"
        return self.make_plan(p, TorchState(w=wt, fn=fn, kw=kw), note=note)

    def run(self, plan: Plan[TorchState], *inputs: np.ndarray) -> np.ndarray:
        st, p = plan.state, plan.problem
        with torch.no_grad():
            if p.direction == "bwd_w":
                x, dy = inputs
                return st.fn(native(x, p), native(dy, p), st.w, **st.kw).numpy().reshape(p.weight_shape)
            return st.fn(native(inputs[0], p), st.w, **st.kw).numpy().reshape(p.dst_shape)


class TorchPool(Backend):
    """``pool_torch``: ``torch.nn.functional.max_pool1d/2d/3d`` / ``avg_pool1d/2d/3d`` and their
    backward kernels (ATen's ``max_pool2d/3d_with_indices_backward`` with the indices its forward
    kept, ``avg_pool2d/3d_backward``; a 1-D pool's backward is the 2-D kernel on its NC1W
    layout, as torch's own autograd of ``max_pool1d`` runs it), the peer for pooling."""

    name = "pool_torch"
    baseline_rank = 0
    kind = "pool"
    algorithm = "torch pooling"
    description = "torch max_pool1d/2d/3d / avg_pool1d/2d/3d (ATen CPU kernels); backward with the kept indices"
    role = "peer"
    # PyTorch's output size is floor or ceil_mode on both axes (asymmetric_padding covers the rest)
    capabilities = Capabilities(exact=True, transposed=True, threads="torch", asymmetric_padding=False,
                                ranks=(1, 2, 3))

    @classmethod
    def unavailable_reason(cls) -> str | None:
        return TorchOneDNN.unavailable_reason()

    @staticmethod
    def _kw(p, axes) -> dict:
        """The functional's keywords over ``axes`` (the own axes for the forward functional,
        the layout axes for the backward kernels)."""
        def f(x, plus=0):
            return tuple(getattr(p, x + a) + plus for a in axes)
        kw = dict(kernel_size=f("k"), stride=f("s"), padding=f("p"), ceil_mode=p.torch_ceil_mode)
        if p.alg == "max":
            kw["dilation"] = f("d", 1)
        else:
            kw["count_include_pad"] = p.alg == "avg_p"
        return kw

    @staticmethod
    def _forward_fn(p):
        F = torch.nn.functional
        return ((F.max_pool1d, F.max_pool2d, F.max_pool3d) if p.alg == "max" else
                (F.avg_pool1d, F.avg_pool2d, F.avg_pool3d))[p.rank - 1]

    def argmax(self, p, x: np.ndarray) -> np.ndarray:
        """``max_poolNd(..., return_indices=True)``'s indices (flat offsets into the input plane
        or volume)."""
        with torch.no_grad():
            idx = self._forward_fn(p)(native(x, p), return_indices=True, **self._kw(p, p.own_axes))[1]
        return idx.numpy().reshape(p.output_shape)

    def prepare(self, p, x, indices=None) -> Plan:
        st = {"kw": self._kw(p, p.own_axes), "max": p.alg == "max", "fn": self._forward_fn(p)}
        if p.direction == "bwd_d":  # ATen's backward kernels take the input (avg: for its shape only)
            st["bkw"] = self._kw(p, p.layout_axes)
            xt = torch.from_numpy(np.array(x, copy=True)) if x is not None else \
                torch.zeros(p.input_shape, dtype=getattr(torch, p.dtype))
            st["x"] = xt
            if p.alg == "max":
                idx = indices if indices is not None else self.argmax(p, xt.numpy())
                st["idx"] = torch.from_numpy(np.ascontiguousarray(idx, dtype=np.int64).reshape(p.output_shape))
        return self.make_plan(p, st, workspace_bytes=(st["idx"].numel() * 8 if "idx" in st else 0))

    def run(self, plan: Plan, *inputs: np.ndarray) -> np.ndarray:
        p, st = plan.problem, plan.state
        with torch.no_grad():
            if p.direction == "fwd":
                return st["fn"](native(inputs[0], p), **st["kw"]).numpy().reshape(p.output_shape)
            a = torch.from_numpy(inputs[0])
            kw, ops = st["bkw"], torch.ops.aten
            three = p.rank == 3
            if st["max"]:
                fn = ops.max_pool3d_with_indices_backward if three else ops.max_pool2d_with_indices_backward
                return fn(a, st["x"], kw["kernel_size"], kw["stride"], kw["padding"], kw["dilation"],
                          kw["ceil_mode"], st["idx"]).numpy()
            fn = ops.avg_pool3d_backward if three else ops.avg_pool2d_backward
            return fn(a, st["x"], kw["kernel_size"], kw["stride"], kw["padding"], kw["ceil_mode"],
                      kw["count_include_pad"], None).numpy()
