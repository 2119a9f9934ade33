"""Training and evaluation: minibatch SGD with momentum, the same for every model."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from .digits import place, ring

__all__ = ["TrainConfig", "TrainResult", "train", "shift_accuracy", "jitter_offsets"]


@dataclass(frozen=True)
class TrainConfig:
    """The optimiser settings every model shares."""

    epochs: int = 12
    batch: int = 32
    lr: float = 0.05
    momentum: float = 0.9
    seed: int = 0


@dataclass
class TrainResult:
    losses: list = field(default_factory=list)  #: mean training loss per epoch
    epoch_s: list = field(default_factory=list)  #: wall time per epoch (forward, backward and update)


def jitter_offsets(n: int, jitter: int, rng) -> np.ndarray:
    """Per-image training offsets, uniform in ``[-jitter, jitter]`` on each axis."""
    if jitter <= 0:
        return np.zeros((n, 2), int)
    return rng.integers(-jitter, jitter + 1, size=(n, 2))


def train(model, x: np.ndarray, y: np.ndarray, cfg: TrainConfig, *, canvas: int, jitter: int = 0) -> TrainResult:
    """Train ``model`` in place on 8x8 digits ``x`` pasted on the canvas (re-jittered every
    epoch when ``jitter`` > 0). ``cfg.epochs == 0`` leaves the initial weights."""
    rng = np.random.default_rng(cfg.seed + 1000)
    velocity = {(id(layer), k): np.zeros_like(layer.params[k]) for layer, k in model.parameters()}
    out = TrainResult()
    fixed = place(x, canvas) if jitter <= 0 else None
    for _ in range(cfg.epochs):
        t0 = time.perf_counter()
        imgs = fixed if fixed is not None else place(x, canvas, jitter_offsets(len(x), jitter, rng))
        order = rng.permutation(len(x))
        total, seen = 0.0, 0
        for i in range(0, len(x), cfg.batch):
            idx = order[i:i + cfg.batch]
            total += model.loss_and_grad(imgs[idx], y[idx]) * len(idx)
            seen += len(idx)
            for layer, k in model.parameters():
                v = velocity[(id(layer), k)]
                v *= cfg.momentum
                v -= cfg.lr * layer.grads[k]
                layer.params[k] += v
                layer.version += 1
        out.epoch_s.append(time.perf_counter() - t0)
        out.losses.append(total / max(seen, 1))
    return out


def shift_accuracy(model, x: np.ndarray, y: np.ndarray, canvas: int, max_shift: int) -> list[float]:
    """Test accuracy at Chebyshev offset ``d = 0 .. max_shift`` (every offset of the ring)."""
    acc = []
    for d in range(max_shift + 1):
        offs = ring(d)
        correct = 0
        for off in offs:
            pred = model.predict(place(x, canvas, np.tile(off, (len(x), 1))))
            correct += int((pred == y).sum())
        acc.append(correct / (len(offs) * len(y)))
    return acc
