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
    #: (training images seen, centred test accuracy) at every checkpoint, when an evaluation was given
    curve: list = field(default_factory=list)

    def images_to(self, fraction: float) -> int | None:
        """Training images seen when the checkpointed accuracy first reached ``fraction`` of the
        best it reached in this run (None without checkpoints)."""
        if not self.curve:
            return None
        best = max(a for _, a in self.curve)
        return next(n for n, a in self.curve if a >= fraction * best)


def jitter_offsets(n: int, jitter: int, rng) -> np.ndarray:
    """Per-image training offsets, uniform in ``[-jitter, jitter]`` on each axis."""
    if jitter <= 0:
        return np.zeros((n, 2), int)
    return rng.integers(-jitter, jitter + 1, size=(n, 2))


def train(model, x: np.ndarray, y: np.ndarray, cfg: TrainConfig, *, canvas: int, jitter: int = 0,
          evaluate=None, checkpoints: int = 4) -> TrainResult:
    """Train ``model`` in place on 8x8 digits ``x`` pasted on the canvas (re-jittered every
    epoch when ``jitter`` > 0). ``cfg.epochs == 0`` leaves the initial weights.

    ``evaluate()``, when given, returns the model's centred test accuracy; it is called
    ``checkpoints`` times per epoch (and before the first step) into ``curve``, and its time is
    not part of ``epoch_s``."""
    rng = np.random.default_rng(cfg.seed + 1000)
    velocity = {(id(layer), k): np.zeros_like(layer.params[k]) for layer, k in model.parameters()}
    out = TrainResult()
    fixed = place(x, canvas) if jitter <= 0 else None
    steps = -(-len(x) // cfg.batch)
    marks = {steps * (j + 1) // checkpoints for j in range(checkpoints)} if evaluate is not None else set()
    seen_all = 0
    if evaluate is not None and cfg.epochs:
        out.curve.append((0, float(evaluate())))
    for _ in range(cfg.epochs):
        t0 = time.perf_counter()
        paused = 0.0
        imgs = fixed if fixed is not None else place(x, canvas, jitter_offsets(len(x), jitter, rng))
        order = rng.permutation(len(x))
        total, seen = 0.0, 0
        for step, i in enumerate(range(0, len(x), cfg.batch), 1):
            idx = order[i:i + cfg.batch]
            total += model.loss_and_grad(imgs[idx], y[idx]) * len(idx)
            seen += len(idx)
            for layer, k in model.parameters():
                v = velocity[(id(layer), k)]
                v *= cfg.momentum
                v -= cfg.lr * layer.grads[k]
                layer.params[k] += v
                layer.version += 1
            if step in marks:
                t1 = time.perf_counter()
                out.curve.append((seen_all + seen, float(evaluate())))
                paused += time.perf_counter() - t1
        seen_all += seen
        out.epoch_s.append(time.perf_counter() - t0 - paused)
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
