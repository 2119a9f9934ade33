"""``torch_onednn``: PyTorch's ``conv2d`` / ``conv_transpose2d`` on the CPU, as a peer.

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


@dataclass
class TorchState:
    """The weight tensor, the functional and its keyword arguments."""

    w: Any
    fn: Callable
    kw: dict


class TorchOneDNN(Backend):
    name = "torch_onednn"
    algorithm = "torch (oneDNN)"
    description = "torch.nn.functional.conv2d / conv_transpose2d on CPU (oneDNN for float32)"
    peer = True
    # PyTorch pads symmetrically; the transposed form needs oh to match its formula too
    capabilities = Capabilities(exact=False, rtol={"float32": 1e-5, "float64": 1e-12},
                                asymmetric_padding=False, transposed=True, threads="torch")

    @classmethod
    def unavailable_reason(cls) -> str | None:
        if torch is None:
            return "torch is not installed (pip install 'convbench[peers]' installs torch==2.13.0)"
        return None

    def _supports(self, p: ConvProblem) -> str | None:
        if p.transposed:
            op = p.ph - p.ph_r, p.pw - p.pw_r  # output_padding that gives back ih, iw
            if op[0] < 0 or op[1] < 0 or op[0] >= max(p.sh, p.dh + 1) or op[1] >= max(p.sw, p.dw + 1):
                return f"output_padding {op} outside PyTorch's range [0, max(stride, dilation))"
        return None

    def prepare(self, p: ConvProblem, w: np.ndarray) -> Plan:
        wt = torch.from_numpy(np.array(w, dtype=p.dtype, order="C", copy=True))
        kw = dict(stride=(p.sh, p.sw), padding=(p.ph, p.pw), dilation=(p.dh + 1, p.dw + 1), groups=p.g)
        if p.transposed:
            kw["output_padding"] = (p.ph - p.ph_r, p.pw - p.pw_r)
            # conv_transpose2d takes (in=oc, out/g=ic/g, kh, kw): the forward weight's layout
            fn = torch.nn.functional.conv_transpose2d
        else:
            fn = torch.nn.functional.conv2d
        x = torch.zeros(p.src_shape, dtype=wt.dtype)
        with torch.no_grad():
            fn(x, wt, **kw)  # first call: oneDNN primitive creation happens here
        try:
            sel = torch._C._select_conv_backend(
                x, wt, None, list(kw["stride"]), list(kw["padding"]), list(kw["dilation"]),
                p.transposed, list(kw.get("output_padding", (0, 0))), p.g)
            note = f"torch dispatch: {str(sel).split('.')[-1]}"
        except Exception:  # private API: informative only
            note = ""
        return self.make_plan(p, TorchState(w=wt, fn=fn, kw=kw), note=note)

    def run(self, plan: Plan[TorchState], x: np.ndarray) -> np.ndarray:
        st = plan.state
        with torch.no_grad():
            return st.fn(torch.from_numpy(x), st.w, **st.kw).numpy()
