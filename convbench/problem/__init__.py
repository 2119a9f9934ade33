"""Problems: one validated, immutable description of a layer, convolution or pooling.

Every other module takes a problem; nothing downstream re-validates shapes. The canonical
text form is oneDNN benchdnn's descriptor (``mb1ic64ih56oc64kh3ph1``), so benchdnn
``inputs/conv/shapes_*`` lines load unchanged and every table row can be pasted back into
``convbench run --problem`` or into benchdnn itself.

``base`` holds what convolution and pooling share (the spatial geometry, per axis, and the
descriptor's syntax); ``conv`` and ``pool`` add only what is their own.
"""

from __future__ import annotations

import re

from .base import AXES, DIRECTIONS, DTYPES, RANKS, Axis, InvalidProblem, Problem, as_int, int_tuple, own_axes
from .conv import ConvProblem
from .pool import POOL_ALGS, PoolProblem

__all__ = ["Problem", "ConvProblem", "PoolProblem", "InvalidProblem", "parse_problem", "Axis", "AXES", "RANKS",
           "DTYPES", "DIRECTIONS", "POOL_ALGS", "as_int", "int_tuple", "own_axes"]


def parse_problem(text: str, *, dtype: str | None = None, mb: int | None = None) -> Problem:
    """A convolution or a pooling descriptor: a line with ``--alg=`` or without ``oc`` is a pool."""
    if not isinstance(text, str):
        return ConvProblem.parse(text)  # the one error message for a non-string
    body = re.sub(r'n".*', "", text)
    if "--alg=" in text:
        return PoolProblem.parse(text, dtype=dtype, mb=mb)
    if re.search(r"oc\d", body) or not re.search(r"ic\d+.*k[dhw]\d", body):
        return ConvProblem.parse(text, dtype=dtype, mb=mb)  # a convolution, or not a descriptor at all
    return PoolProblem.parse(text, dtype=dtype, mb=mb)
