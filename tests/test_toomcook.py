"""The Winograd transform generator: known matrices, exactness, point sets, error growth."""

from __future__ import annotations

from fractions import Fraction as Fr

import numpy as np
import pytest

from convbench.toomcook import POINT_SETS, parse_points, winograd_transform

# Lavin & Gray (2016), F(2,3) and F(4,3)
LAVIN = {
    (2, 3): dict(
        AT=[[1, 1, 1, 0], [0, 1, -1, -1]],
        G=[[1, 0, 0], [Fr(1, 2), Fr(1, 2), Fr(1, 2)], [Fr(1, 2), Fr(-1, 2), Fr(1, 2)], [0, 0, 1]],
        BT=[[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]]),
    (4, 3): dict(
        AT=[[1, 1, 1, 1, 1, 0], [0, 1, -1, 2, -2, 0], [0, 1, 1, 4, 4, 0], [0, 1, -1, 8, -8, 1]],
        G=[[Fr(1, 4), 0, 0], [Fr(-1, 6), Fr(-1, 6), Fr(-1, 6)], [Fr(-1, 6), Fr(1, 6), Fr(-1, 6)],
           [Fr(1, 24), Fr(1, 12), Fr(1, 6)], [Fr(1, 24), Fr(-1, 12), Fr(1, 6)], [0, 0, 1]],
        BT=[[4, 0, -5, 0, 1, 0], [0, -4, -4, 1, 1, 0], [0, 4, -4, -1, 1, 0], [0, -2, -1, 2, 1, 0],
            [0, 2, -1, -2, 1, 0], [0, 4, 0, -5, 0, 1]]),
}


def _row_ratio(a, b):
    """c with a == c*b (rows as sequences of Fractions), or None."""
    c = None
    for x, y in zip(a, b):
        x, y = Fr(x), Fr(y)
        if (x == 0) != (y == 0):
            return None
        if y != 0:
            r = x / y
            if c is None:
                c = r
            elif r != c:
                return None
    return c


@pytest.mark.parametrize("mr", [(2, 3), (4, 3)])
def test_reproduces_published_matrices_up_to_scaling(mr):
    t = winograd_transform(*mr, "lavin")
    k = LAVIN[mr]
    n = t.n
    for j in range(n):
        g = _row_ratio(t.G[j], k["G"][j])
        b = _row_ratio(t.BT[j], k["BT"][j])
        a = _row_ratio([row[j] for row in t.AT], [row[j] for row in k["AT"]])
        assert None not in (g, b, a), f"row {j} is not a scaled copy"
        assert g * b * a == 1, f"row {j}: scalings {g}, {b}, {a} do not cancel"


@pytest.mark.parametrize("m, r", [(2, 3), (4, 3), (6, 3), (2, 5), (4, 5), (3, 2), (1, 4)])
@pytest.mark.parametrize("points", list(POINT_SETS))
def test_exact_in_rational_arithmetic(m, r, points):
    t = winograd_transform(m, r, points)
    rng = np.random.default_rng(m * 10 + r)
    for _ in range(10):
        d = [Fr(int(v)) for v in rng.integers(-9, 10, t.n)]
        g = [Fr(int(v)) for v in rng.integers(-9, 10, r)]
        assert t.correlate_1d(d, g) == [sum(g[k] * d[i + k] for k in range(r)) for i in range(m)]


@pytest.mark.parametrize("m, r", [(2, 3), (4, 3), (6, 3), (2, 5), (4, 5)])
def test_float64_2d_on_integer_data_is_exact_after_rounding(m, r):
    AT, G, BT = winograd_transform(m, r).arrays(np.float64)
    rng = np.random.default_rng(0)
    n = m + r - 1
    d = rng.integers(-4, 5, (n, n)).astype(np.float64)
    g = rng.integers(-4, 5, (r, r)).astype(np.float64)
    y = AT @ ((G @ g @ G.T) * (BT @ d @ BT.T)) @ AT.T
    ref = np.array([[np.sum(g * d[i:i + r, j:j + r]) for j in range(m)] for i in range(m)])
    assert np.abs(y - ref).max() < 1e-9
    assert np.array_equal(np.round(y), ref)


def test_custom_points_and_errors():
    t = winograd_transform(2, 3, "0,1,-1")
    assert t.points == (0, 1, -1)
    with pytest.raises(ValueError, match="must be distinct"):
        parse_points("0,1,1", 3)
    with pytest.raises(ValueError, match="needs 5 finite points"):
        parse_points("0,1,-1", 5)
    with pytest.raises(ValueError, match="expected a set name"):
        parse_points("", 2)
    with pytest.raises(ValueError, match="rationals"):
        parse_points("0,one", 2)


def test_error_grows_with_tile_size_in_float32():
    """Same data, float32 transforms: the larger the tile, the larger the error."""
    rng = np.random.default_rng(5)
    errs = []
    for m in (2, 4, 6):
        AT, G, BT = (a.astype(np.float32) for a in winograd_transform(m, 3).arrays(np.float64))
        n = m + 2
        e = []
        for _ in range(200):
            d = rng.standard_normal((n, n))
            g = rng.standard_normal((3, 3))
            y = AT @ ((G @ g.astype(np.float32) @ G.T) * (BT @ d.astype(np.float32) @ BT.T)) @ AT.T
            ref = np.array([[np.sum(g * d[i:i + 3, j:j + 3]) for j in range(m)] for i in range(m)])
            e.append(np.linalg.norm(y - ref) / np.linalg.norm(ref))
        errs.append(np.median(e))
    assert errs[0] < errs[1] < errs[2], errs
