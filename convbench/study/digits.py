"""The study's image task: scikit-learn's bundled 8x8 handwritten digits on a larger canvas.

``load_digits`` ships with scikit-learn (1,797 images, 10 classes), so nothing is
downloaded. Each 8x8 digit (values 0..16, scaled to 0..1) is pasted on a zero canvas of
``canvas x canvas`` pixels: training images at the centre (optionally jittered by up to
``jitter`` pixels in each axis, seeded), test images at the centre and at every offset
``(dy, dx)`` with ``max(|dy|, |dx|) = d`` for ``d = 0 .. max_shift`` (the ring at
Chebyshev distance ``d``: 1, 8, 16, 24, ... positions), so translation is measured. The
split is a seeded permutation; the test images are never used in training.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

DIGIT = 8  #: side of a scikit-learn digit

__all__ = ["DIGIT", "Split", "load_split", "place", "ring", "shift_image", "max_shift_for"]


@dataclass
class Split:
    """8x8 digits (float32, 0..1) and labels of the training and held-out test sets."""

    train_x: np.ndarray
    train_y: np.ndarray
    test_x: np.ndarray
    test_y: np.ndarray
    seed: int


def load_split(seed: int, test_fraction: float = 0.3) -> Split:
    """A seeded, deterministic train/test split of the bundled digits."""
    from sklearn.datasets import load_digits
    d = load_digits()
    imgs = (d.images / 16.0).astype(np.float32)
    y = d.target.astype(np.int64)
    order = np.random.default_rng(seed).permutation(len(y))
    n_test = int(round(test_fraction * len(y)))
    te, tr = order[:n_test], order[n_test:]
    return Split(imgs[tr], y[tr], imgs[te], y[te], seed)


def max_shift_for(canvas: int) -> int:
    """The largest offset at which a centred digit stays wholly on the canvas."""
    return (canvas - DIGIT) // 2


def place(digits: np.ndarray, canvas: int, offsets=None) -> np.ndarray:
    """Digits pasted on a zero canvas, NCHW ``(n, 1, canvas, canvas)``; ``offsets``: one
    ``(dy, dx)`` per digit from the centre position (default: all centred)."""
    n = len(digits)
    out = np.zeros((n, 1, canvas, canvas), np.float32)
    c = (canvas - DIGIT) // 2
    offs = np.zeros((n, 2), int) if offsets is None else np.asarray(offsets, int).reshape(n, 2)
    for i in range(n):
        r, q = c + offs[i, 0], c + offs[i, 1]
        out[i, 0, r:r + DIGIT, q:q + DIGIT] = digits[i]
    return out


def ring(d: int) -> list[tuple[int, int]]:
    """Every offset ``(dy, dx)`` at Chebyshev distance exactly ``d`` from the centre."""
    if d == 0:
        return [(0, 0)]
    return [(dy, dx) for dy in range(-d, d + 1) for dx in range(-d, d + 1) if max(abs(dy), abs(dx)) == d]


def shift_image(x: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """``x`` (..., H, W) translated by ``(dy, dx)`` pixels, zeros shifted in (not rolled)."""
    out = np.zeros_like(x)
    h, w = x.shape[-2:]
    ys, yd = (slice(0, h - dy), slice(dy, h)) if dy >= 0 else (slice(-dy, h), slice(0, h + dy))
    xs, xd = (slice(0, w - dx), slice(dx, w)) if dx >= 0 else (slice(-dx, w), slice(0, w + dx))
    out[..., yd, xd] = x[..., ys, xs]
    return out
