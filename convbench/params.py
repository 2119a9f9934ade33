"""Parameter sharing and local connectivity, as numbers.

A convolution is multiplication by a huge, mostly-zero matrix whose nonzeros repeat
the same few weights. Three layers map the same input to the same output:

fully connected (dense)
    every output connects to every input of its group:
    ``g * (oc/g * oh*ow) * (ic/g * ih*iw)`` weights (the dense operator's entries).
locally connected (unshared)
    each output connects only to its receptive field, with its own weights per output
    position: one weight per nonzero of the operator, ``oc * ic/g * valid taps``.
convolution (shared)
    the same ``kh*kw`` kernel at every position: ``oc * ic/g * kh * kw`` weights.

``dense / local`` is what local connectivity saves, ``local / conv`` what parameter
sharing saves (each weight is reused that many times on average).
"""

from __future__ import annotations

from .flops import valid_taps
from .problem import ConvProblem

__all__ = ["parameter_table_row", "dense_entries", "operator_nnz"]


def dense_entries(p: ConvProblem) -> int:
    """Entries of the dense operator, counting only the block-diagonal blocks of the groups
    (a fully-connected layer per group)."""
    return p.g * (p.ocg * p.oh * p.ow) * (p.icg * p.ih * p.iw)


def operator_nnz(p: ConvProblem) -> int:
    """Nonzeros of the operator with all weights nonzero: in-bounds taps per channel pair."""
    return p.oc * p.icg * valid_taps(p)


def parameter_table_row(p: ConvProblem) -> dict:
    """Weights of the three layer kinds and the two savings ratios for problem ``p``."""
    conv = p.params
    local = operator_nnz(p)
    dense = dense_entries(p)
    return {"conv_weights": conv, "locally_connected_weights": local, "dense_entries": dense,
            "operator_nnz": local, "sharing_ratio": local / conv, "locality_ratio": dense / local,
            "dense_over_conv": dense / conv, "operator_density": local / dense}
