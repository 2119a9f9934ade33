"""The study's layers: a small fixed set with explicit forward and backward, not a framework.

Convolutions run on convbench's own kernels through the public API: the forward pass is
:func:`convbench.conv2d`, the input gradient the transposed convolution
(:func:`convbench.conv_transpose2d`) and the weight gradient :func:`convbench.conv2d_weight`;
max-pooling is :func:`convbench.max_pool2d` and :func:`convbench.max_pool2d_backward`; dense
and locally connected layers are BLAS GEMMs (``numpy.matmul``). Numpy does only what is
elementwise (ReLU, bias, the loss and the optimiser).

Every layer works on one batch: ``forward(x)`` keeps what ``backward`` needs, and
``backward(dy)`` stores the parameter gradients in ``grads`` and returns the input gradient
(``None`` for the first layer, whose input gradient nobody needs: it is not computed).
``flops(in_shape)`` counts one image's operations per direction, ``out_shape`` propagates
``(c, h, w)`` shapes, ``field`` gives (kernel extent, stride) for receptive fields.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..backends import DEFAULTS

__all__ = ["Engine", "Conv2d", "LocallyConnected2d", "MaxPool2d", "GlobalMaxPool2d", "ReLU", "Flatten", "Dense",
           "conv_geometry"]


def conv_geometry(h: int, k: int, s: int, p: int, d: int) -> int:
    """Output size of a convolution along one axis."""
    return (h + 2 * p - d * (k - 1) - 1) // s + 1


@dataclass
class Engine:
    """Which convbench backends run the study's layers.

    ``conv`` runs every forward convolution (it must support them all: checked up front);
    the transposed convolution (input gradient) and ``conv2d_weight`` (weight gradient) run
    on ``conv`` too where its capabilities allow, otherwise on ``fallback``, and each such
    substitution is recorded once in ``notes`` for the report.
    """

    conv: str = DEFAULTS["conv"]
    pool: str = DEFAULTS["pool"]
    fallback: str = DEFAULTS["conv"]
    notes: dict = field(default_factory=dict)
    _instances: dict = field(default_factory=dict, repr=False)

    def instance(self, name: str):
        """One backend instance per name for this engine (its caches persist across calls)."""
        if name not in self._instances:
            from ..backends import get_backend
            self._instances[name] = get_backend(name)
        return self._instances[name]

    def backend_for(self, problem, layer: str) -> str:
        reason = self.instance(self.conv).supports(problem)
        if reason is None:
            return self.conv
        key = (layer, problem.direction)
        if key not in self.notes:
            self.notes[key] = f"{problem.direction} of {layer} ran on {self.fallback}: {self.conv} {reason}"
        return self.fallback

    def apply(self, name: str, problem, const, *inputs, **prepare):
        """``problem`` on backend ``name``: prepared and run once (a plan per call: the weights
        or the argmax it is prepared from change every step). Unsupported with the reason."""
        b = self.instance(name)
        reason = b.supports(problem)
        if reason is not None:
            from ..backends.base import Unsupported
            raise Unsupported(f"{name}: {reason}")
        return b.run(b.prepare(problem, const, **prepare), *inputs)


class Layer:
    name = "layer"
    params: dict
    grads: dict
    first = False  #: the model's first layer: its input gradient is not computed

    def __init__(self):
        self.params, self.grads = {}, {}
        #: bumped by whoever changes ``params`` (the optimiser): cached plans are keyed on it
        self.version = 0

    def out_shape(self, s):
        return s

    def field(self):
        """(effective kernel extent, stride) for the receptive field, or None (whole input)."""
        return (1, 1)

    def flops(self, s) -> dict:
        """One image's operations: ``fwd``, ``bwd_d``, ``bwd_w``."""
        return dict(fwd=0, bwd_d=0, bwd_w=0)

    def n_params(self) -> int:
        return int(sum(v.size for v in self.params.values()))

    def describe(self) -> str:
        return self.name


def _he(rng, shape, fan_in):
    return (rng.standard_normal(shape) * np.sqrt(2.0 / fan_in)).astype(np.float32)


def _valid_taps(h, k, s, p, d, oh):
    """Sum over output positions of the taps that land inside the input (benchdnn's count)."""
    n = 0
    for o in range(oh):
        for t in range(k):
            i = o * s - p + t * d
            n += 0 <= i < h
    return n


class Conv2d(Layer):
    """A convolution with bias, on convbench's kernels (see :class:`Engine`)."""

    def __init__(self, cin, cout, k=3, stride=1, padding=1, dilation=1, *, rng, engine: Engine, name="conv"):
        super().__init__()
        self.cin, self.cout, self.k, self.s, self.p, self.d = cin, cout, k, stride, padding, dilation
        self.engine, self.name = engine, name
        self.params = {"w": _he(rng, (cout, cin, k, k), cin * k * k), "b": np.zeros(cout, np.float32)}

    def out_shape(self, s):
        c, h, w = s
        return (self.cout, conv_geometry(h, self.k, self.s, self.p, self.d),
                conv_geometry(w, self.k, self.s, self.p, self.d))

    def field(self):
        return (self.d * (self.k - 1) + 1, self.s)

    def describe(self):
        dil = f", dilation {self.d}" if self.d > 1 else ""
        return f"conv {self.k}x{self.k} {self.cin}->{self.cout}, stride {self.s}, padding {self.p}{dil}"

    def problem(self, x_shape, direction="fwd"):
        from ..problem import ConvProblem
        p = ConvProblem.from_torch_args(x_shape, self.params["w"].shape, stride=self.s, padding=self.p,
                                        dilation=self.d, dtype=str(self.params["w"].dtype))
        return p if direction == "fwd" else p.replace(direction=direction)

    def flops(self, s):
        c, h, w = s
        _, oh, ow = self.out_shape(s)
        taps = _valid_taps(h, self.k, self.s, self.p, self.d, oh) * _valid_taps(w, self.k, self.s, self.p, self.d,
                                                                                 ow)
        mac = 2 * self.cout * self.cin * taps
        return dict(fwd=mac + self.cout * oh * ow, bwd_d=0 if self.first else mac,
                    bwd_w=mac + self.cout * oh * ow)

    def forward(self, x, train=True):
        """The backend's plan (weight transforms, FFT plans) is prepared once per weight
        version and input shape and reused: inference pays it once, training once per step."""
        self.x = x = np.ascontiguousarray(x, dtype=self.params["w"].dtype)
        key = (x.shape, self.version, self.engine.conv)
        cache = getattr(self, "_plan", None)
        if cache is None or cache[0] != key:
            b = self.engine.instance(self.engine.conv)
            p = self.problem(x.shape)
            reason = b.supports(p)
            if reason is not None:
                from ..backends.base import Unsupported
                raise Unsupported(f"{self.engine.conv}: {self.name}: {reason}")
            cache = self._plan = (key, b, b.prepare(p, self.params["w"]))
        y = cache[1].run(cache[2], x)
        y += self.params["b"][None, :, None, None]
        return y

    def backward(self, dy):
        """The weight gradient (bwd_w) and the input gradient (bwd_d: the transposed
        convolution, whose problem is the forward one's, so no output padding is guessed)."""
        x, w = self.x, self.params["w"]
        dy = np.ascontiguousarray(dy, dtype=w.dtype)
        self.grads["b"] = dy.sum(axis=(0, 2, 3))
        pw = self.problem(x.shape, "bwd_w")
        self.grads["w"] = self.engine.apply(self.engine.backend_for(pw, self.name), pw, None, x, dy)
        if self.first:
            return None
        pd = self.problem(x.shape, "bwd_d")
        return self.engine.apply(self.engine.backend_for(pd, self.name), pd, w, dy)


def _unfold(x, k, s, p):
    """(n, c, h, w) -> (oh*ow, n, c*k*k) patches (a copy), the locally connected layer's GEMM operand."""
    n, c, h, w = x.shape
    xp = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)))
    win = np.lib.stride_tricks.sliding_window_view(xp, (k, k), axis=(2, 3))[:, :, ::s, ::s]  # n c oh ow k k
    oh, ow = win.shape[2:4]
    return np.ascontiguousarray(win.transpose(2, 3, 0, 1, 4, 5)).reshape(oh * ow, n, c * k * k), oh, ow


def _fold(cols, x_shape, k, s, p, oh, ow):
    """The adjoint of :func:`_unfold`: patches summed back into an (n, c, h, w) gradient."""
    n, c, h, w = x_shape
    g = cols.reshape(oh, ow, n, c, k, k)
    out = np.zeros((n, c, h + 2 * p, w + 2 * p), cols.dtype)
    for i in range(k):
        for j in range(k):
            out[:, :, i:i + s * (oh - 1) + 1:s, j:j + s * (ow - 1) + 1:s] += g[:, :, :, :, i, j].transpose(2, 3, 0, 1)
    return out[:, :, p:p + h, p:p + w]


class LocallyConnected2d(Layer):
    """The convolution's receptive fields without weight sharing: every output position has
    its own ``(cout, cin*k*k)`` filter bank. One batched GEMM per position (``numpy.matmul``
    over the stack of positions)."""

    def __init__(self, cin, cout, in_hw, k=3, stride=1, padding=1, *, rng, name="lc"):
        super().__init__()
        self.cin, self.cout, self.k, self.s, self.p, self.name = cin, cout, k, stride, padding, name
        self.oh = conv_geometry(in_hw[0], k, stride, padding, 1)
        self.ow = conv_geometry(in_hw[1], k, stride, padding, 1)
        kk = cin * k * k
        self.params = {"w": _he(rng, (self.oh * self.ow, kk, cout), kk),
                       "b": np.zeros((self.oh * self.ow, cout), np.float32)}

    def out_shape(self, s):
        return (self.cout, self.oh, self.ow)

    def field(self):
        return (self.k, self.s)

    def describe(self):
        return (f"locally connected {self.k}x{self.k} {self.cin}->{self.cout}, stride {self.s}, padding {self.p} "
                f"({self.oh}x{self.ow} unshared filter banks)")

    def flops(self, s):
        c, h, w = s
        taps = _valid_taps(h, self.k, self.s, self.p, 1, self.oh) * _valid_taps(w, self.k, self.s, self.p, 1, self.ow)
        mac = 2 * self.cout * self.cin * taps
        return dict(fwd=mac + self.cout * self.oh * self.ow, bwd_d=0 if self.first else mac,
                    bwd_w=mac + self.cout * self.oh * self.ow)

    def forward(self, x, train=True):
        self.x_shape = x.shape
        self.cols, _, _ = _unfold(x, self.k, self.s, self.p)                   # P n K
        y = np.matmul(self.cols, self.params["w"]) + self.params["b"][:, None, :]  # P n C
        return np.ascontiguousarray(y.reshape(self.oh, self.ow, -1, self.cout).transpose(2, 3, 0, 1))

    def backward(self, dy):
        g = np.ascontiguousarray(dy.transpose(2, 3, 0, 1)).reshape(self.oh * self.ow, -1, self.cout)  # P n C
        self.grads["b"] = g.sum(axis=1)
        self.grads["w"] = np.matmul(self.cols.transpose(0, 2, 1), g)
        if self.first:
            return None
        dcols = np.matmul(g, self.params["w"].transpose(0, 2, 1))
        return _fold(dcols, self.x_shape, self.k, self.s, self.p, self.oh, self.ow)


class MaxPool2d(Layer):
    """Max-pooling on convbench's pooling backends (forward with the argmax, backward from it)."""

    def __init__(self, k=2, *, engine: Engine, name="pool"):
        super().__init__()
        self.k, self.engine, self.name = k, engine, name

    def out_shape(self, s):
        c, h, w = s
        return (c, h // self.k, w // self.k)

    def field(self):
        return (self.k, self.k)

    def describe(self):
        return f"max-pool {self.k}x{self.k}, stride {self.k}"

    def flops(self, s):
        c, oh, ow = self.out_shape(s)
        return dict(fwd=c * oh * ow * (self.k * self.k - 1), bwd_d=0 if self.first else c * oh * ow, bwd_w=0)

    def problem(self, x_shape, dtype, direction="fwd"):
        from ..problem import PoolProblem
        return PoolProblem.from_torch_args(x_shape, self.k, alg="max", dtype=str(dtype), direction=direction)

    def forward(self, x, train=True):
        """Training keeps the argmax for the backward pass (the backend's ``argmax``);
        inference runs the backend's cached plan alone."""
        self.x = x = np.ascontiguousarray(x)
        cache = getattr(self, "_plan", None)
        if cache is None or cache[0] != (x.shape, x.dtype, self.engine.pool):
            b = self.engine.instance(self.engine.pool)
            p = self.problem(x.shape, x.dtype)
            reason = b.supports(p)
            if reason is not None or (train and not hasattr(b, "argmax")):
                from ..backends.base import Unsupported
                raise Unsupported(f"{self.engine.pool}: {self.name}: "
                                  f"{reason or 'does not compute the argmax the backward pass needs'}")
            cache = self._plan = ((x.shape, x.dtype, self.engine.pool), b, p, b.prepare(p, None))
        _, b, p, plan = cache
        if train:
            self.idx = b.argmax(p, x)
        return b.run(plan, x)

    def backward(self, dy):
        if self.first:
            return None
        p = self.problem(self.x.shape, self.x.dtype, "bwd_d")
        return self.engine.apply(self.engine.pool, p, self.x, np.ascontiguousarray(dy, dtype=self.x.dtype),
                                 indices=self.idx)


class GlobalMaxPool2d(MaxPool2d):
    """Global max pooling: one maximum per channel over the whole plane, on convbench's pooling
    backends (a max pool whose window is the plane; backward through its argmax). The classifier
    after it sees no position: the model is invariant to shifts up to its borders."""

    def __init__(self, *, engine: Engine, name="global_pool"):
        super().__init__(1, engine=engine, name=name)

    def out_shape(self, s):
        return (s[0], 1, 1)

    def field(self):
        return None  # every output sees the whole input

    def describe(self):
        return "global max pool"

    def flops(self, s):
        c, h, w = s
        return dict(fwd=c * (h * w - 1), bwd_d=0 if self.first else c, bwd_w=0)

    def problem(self, x_shape, dtype, direction="fwd"):
        from ..problem import PoolProblem
        return PoolProblem.from_torch_args(x_shape, tuple(x_shape[2:]), alg="max", dtype=str(dtype),
                                           direction=direction)


class ReLU(Layer):
    name = "relu"

    def flops(self, s):
        n = int(np.prod(s))
        return dict(fwd=n, bwd_d=n, bwd_w=0)

    def forward(self, x, train=True):
        if not train:
            return np.maximum(x, 0, out=x) if x.flags.writeable else np.maximum(x, 0)
        self.mask = x > 0
        return x * self.mask

    def backward(self, dy):
        return dy * self.mask


class Flatten(Layer):
    name = "flatten"

    def out_shape(self, s):
        return (int(np.prod(s)),)

    def forward(self, x, train=True):
        self.shape = x.shape
        return x.reshape(len(x), -1)

    def backward(self, dy):
        return dy.reshape(self.shape)


class Dense(Layer):
    """``y = x W^T + b``: one BLAS GEMM each way."""

    def __init__(self, nin, nout, *, rng, name="dense"):
        super().__init__()
        self.nin, self.nout, self.name = nin, nout, name
        self.params = {"w": _he(rng, (nout, nin), nin), "b": np.zeros(nout, np.float32)}

    def out_shape(self, s):
        return (self.nout,)

    def field(self):
        return None

    def describe(self):
        return f"dense {self.nin}->{self.nout}"

    def flops(self, s):
        mac = 2 * self.nin * self.nout
        return dict(fwd=mac + self.nout, bwd_d=0 if self.first else mac, bwd_w=mac + self.nout)

    def forward(self, x, train=True):
        self.x = x
        return x @ self.params["w"].T + self.params["b"]

    def backward(self, dy):
        self.grads["w"] = dy.T @ self.x
        self.grads["b"] = dy.sum(axis=0)
        return None if self.first else dy @ self.params["w"]
