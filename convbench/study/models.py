"""The study's six models (and a dilated CNN for the receptive-field figure).

=====================  ==========================================================================
``cnn``                conv 3x3 (1->C1), ReLU, max-pool 2, conv 3x3 (C1->C2), ReLU, max-pool 2,
                       dense to 10: parameter sharing plus pooling
``cnn_stride``         the same convolutions with stride 2 and no pooling: stride does the reduction
``locally_connected``  the CNN's receptive fields (and pooling) without weight sharing: separates
                       local connectivity from parameter sharing
``cnn_gap``            the CNN's two convolutions (with ReLU), then global max pooling over space and a
                       dense 16->10: no weight sees a position, so the model is invariant to shifts up
                       to the canvas' borders (see below)
``mlp_params``         dense, ReLU, dense: the hidden width that gives about the CNN's parameters
``mlp_flops``          the same with about the CNN's forward FLOPs per image
=====================  ==========================================================================

``cnn_dilated`` (conv2 with dilation 2) is the CNN at the same parameter count with a wider
receptive field; the study reports its layers' fields, it is not trained.

``cnn_gap`` pools globally with the maximum, not the average, and keeps no 2x2 pool between its
convolutions. Measured (seed 0, the study's SGD, 12 centred epochs): with global *average*
pooling the model stayed at chance (final loss 2.27 with the 2x2 pool, 2.30 without): averaging
over 144-576 mostly blank positions shrinks its features and their gradients by that factor;
with global max pooling it reached 0.90 centred. With the 2x2 max-pool kept, an odd shift
regroups the pooled pixels: 0.47 at offsets 1 and 3 against 0.74 at 2 and 4; without it,
0.89 at every offset 0..4.
"""

from __future__ import annotations

import numpy as np

from .layers import Conv2d, Dense, Engine, Flatten, GlobalMaxPool2d, LocallyConnected2d, MaxPool2d, ReLU

MODELS = ("cnn", "cnn_stride", "cnn_gap", "locally_connected", "mlp_params", "mlp_flops")
EXTRA = ("cnn_dilated",)
C1, C2 = 8, 16  #: the CNN's channels
CLASSES = 10

__all__ = ["MODELS", "EXTRA", "Model", "build", "parse_models"]


class Model:
    """A sequence of layers with a softmax cross-entropy head."""

    def __init__(self, name: str, layers: list, in_shape: tuple, note: str = ""):
        self.name, self.layers, self.in_shape, self.note = name, layers, in_shape, note
        for layer in layers:  # nobody needs the input gradient of the first parameterised layer
            layer.first = True
            if layer.params:
                break

    # ----------------------------------------------------------------- compute
    def forward(self, x, train=False):
        """Logits; ``train`` keeps what the backward pass needs."""
        for layer in self.layers:
            x = layer.forward(x, train)
        return x

    def backward(self, dlogits):
        g = dlogits
        for layer in reversed(self.layers):
            g = layer.backward(g)
            if g is None:
                break

    def loss_and_grad(self, x, y):
        """Mean softmax cross-entropy of the batch; fills every layer's ``grads``."""
        logits = self.forward(x, train=True)
        z = logits - logits.max(axis=1, keepdims=True)
        p = np.exp(z)
        p /= p.sum(axis=1, keepdims=True)
        n = len(y)
        loss = float(-np.log(np.maximum(p[np.arange(n), y], 1e-30)).mean())
        d = p
        d[np.arange(n), y] -= 1
        self.backward((d / n).astype(logits.dtype))
        return loss

    def predict(self, x, batch: int = 512):
        return np.concatenate([self.forward(x[i:i + batch]).argmax(axis=1) for i in range(0, len(x), batch)])

    def parameters(self):
        """(layer, name) pairs of every parameter array."""
        return [(layer, k) for layer in self.layers for k in layer.params]

    # --------------------------------------------------------------- accounting
    def n_params(self) -> int:
        return sum(layer.n_params() for layer in self.layers)

    def table(self) -> list[dict]:
        """One row per layer: output shape, parameters, FLOPs per image by direction,
        activation bytes (float32), receptive field (pixels of the input) and jump."""
        rows, s, rf, jump = [], self.in_shape, 1, 1
        for layer in self.layers:
            f = layer.flops(s)
            out = layer.out_shape(s)
            fld = layer.field()
            if fld is None:
                rf = self.in_shape[-1]
            else:
                k, st = fld
                rf, jump = rf + (k - 1) * jump, jump * st
            rows.append(dict(model=self.name, layer=layer.name, what=layer.describe(),
                             out_shape="x".join(map(str, out)), params=layer.n_params(),
                             flops_fwd=f["fwd"], flops_bwd_d=f["bwd_d"], flops_bwd_w=f["bwd_w"],
                             activation_bytes=int(np.prod(out)) * 4, receptive_field=min(rf, self.in_shape[-1]),
                             jump=jump))
            s = out
        return rows

    def flops_fwd(self) -> int:
        return sum(r["flops_fwd"] for r in self.table())

    def flops_step(self) -> int:
        return sum(r["flops_fwd"] + r["flops_bwd_d"] + r["flops_bwd_w"] for r in self.table())

    def activation_bytes(self) -> int:
        return sum(r["activation_bytes"] for r in self.table())

    def conv_layers(self):
        return [layer for layer in self.layers if isinstance(layer, Conv2d)]

    def architecture(self) -> str:
        return " -> ".join(layer.describe() for layer in self.layers if layer.name != "flatten")


def parse_models(value) -> list[str]:
    """A comma-separated subset of :data:`MODELS`; ValueError naming the accepted ones."""
    names = [v.strip() for v in (value.split(",") if isinstance(value, str) else value) if v.strip()]
    bad = [n for n in names if n not in MODELS]
    if bad or not names:
        raise ValueError(f"unknown model {bad[0] if bad else value!r}; accepted: {', '.join(MODELS)}")
    return list(dict.fromkeys(names))


def _cnn(canvas, rng, engine, *, stride=False, dilation=1, name="cnn"):
    s = 2 if stride else 1
    c1 = Conv2d(1, C1, 3, s, 1, rng=rng, engine=engine, name="conv1")
    h = c1.out_shape((1, canvas, canvas))
    layers = [c1, ReLU()]
    if not stride:
        layers.append(MaxPool2d(2, engine=engine, name="pool1"))
    h = layers[-1].out_shape(h) if not stride else h
    c2 = Conv2d(C1, C2, 3, s, dilation, dilation, rng=rng, engine=engine, name="conv2")
    h = c2.out_shape(h)
    layers += [c2, ReLU()]
    if not stride:
        layers.append(MaxPool2d(2, engine=engine, name="pool2"))
        h = layers[-1].out_shape(h)
    layers += [Flatten(), Dense(int(np.prod(h)), CLASSES, rng=rng, name="fc")]
    return Model(name, layers, (1, canvas, canvas))


def _cnn_gap(canvas, rng, engine):
    c1 = Conv2d(1, C1, 3, 1, 1, rng=rng, engine=engine, name="conv1")
    c2 = Conv2d(C1, C2, 3, 1, 1, rng=rng, engine=engine, name="conv2")
    return Model("cnn_gap", [c1, ReLU(), c2, ReLU(), GlobalMaxPool2d(engine=engine, name="global_pool"), Flatten(),
                             Dense(C2, CLASSES, rng=rng, name="fc")], (1, canvas, canvas))


def _lc(canvas, rng, engine):
    l1 = LocallyConnected2d(1, C1, (canvas, canvas), 3, 1, 1, rng=rng, name="lc1")
    p1 = MaxPool2d(2, engine=engine, name="pool1")
    h = p1.out_shape(l1.out_shape((1, canvas, canvas)))
    l2 = LocallyConnected2d(C1, C2, h[1:], 3, 1, 1, rng=rng, name="lc2")
    p2 = MaxPool2d(2, engine=engine, name="pool2")
    h = p2.out_shape(l2.out_shape(h))
    return Model("locally_connected", [l1, ReLU(), p1, l2, ReLU(), p2, Flatten(),
                                       Dense(int(np.prod(h)), CLASSES, rng=rng, name="fc")], (1, canvas, canvas))


def _mlp(canvas, rng, hidden, name, note):
    n = canvas * canvas
    return Model(name, [Flatten(), Dense(n, hidden, rng=rng, name="fc1"), ReLU(),
                        Dense(hidden, CLASSES, rng=rng, name="fc2")], (1, canvas, canvas), note)


def _mlp_width(canvas, target: float, per_unit: float, fixed: float) -> int:
    return max(1, int(round((target - fixed) / per_unit)))


def build(name: str, canvas: int, seed: int, engine: Engine | None = None) -> Model:
    """A freshly initialised model (weights from ``seed``)."""
    engine = engine or Engine()
    rng = np.random.default_rng(seed)
    if name == "cnn":
        return _cnn(canvas, rng, engine)
    if name == "cnn_stride":
        return _cnn(canvas, rng, engine, stride=True, name="cnn_stride")
    if name == "cnn_gap":
        return _cnn_gap(canvas, rng, engine)
    if name == "cnn_dilated":
        return _cnn(canvas, rng, engine, dilation=2, name="cnn_dilated")
    if name == "locally_connected":
        return _lc(canvas, rng, engine)
    if name in ("mlp_params", "mlp_flops"):
        ref = _cnn(canvas, np.random.default_rng(0), engine)
        n = canvas * canvas
        if name == "mlp_params":  # params = n*h + h + h*10 + 10
            h = _mlp_width(canvas, ref.n_params(), n + 1 + CLASSES, CLASSES)
            note = f"hidden width {h}: {ref.n_params()} parameters targeted (the CNN's)"
        else:  # forward flops = 2nh + h (bias) + h (relu) + 2*10h + 10
            h = _mlp_width(canvas, ref.flops_fwd(), 2 * n + 2 + 2 * CLASSES, CLASSES)
            note = f"hidden width {h}: {ref.flops_fwd()} forward FLOPs per image targeted (the CNN's)"
        return _mlp(canvas, rng, h, name, note)
    raise ValueError(f"unknown model {name!r}; accepted: {', '.join(MODELS + EXTRA)}")
