"""The convolution problem: a forward, backward-data or backward-weights 2-D conv layer.

benchdnn conventions kept here on purpose (they differ from PyTorch):

* ``mb`` defaults to 2 when a descriptor omits it (benchdnn's default);
* dilation ``dh``/``dw`` counts the *gaps*: ``dh0`` is a dense kernel, ``dh1`` is
  PyTorch's ``dilation=2``. :attr:`ConvProblem.dil_h` gives the PyTorch value;
* padding ``ph``/``pw`` is the top/left padding. The bottom/right padding is implied by
  the output size: ``ph_r = (oh-1)*sh - ih + ext_h - ph``. When a descriptor gives no
  ``oh``, ``oh`` is derived with floor division exactly as PyTorch does, and ``ph_r <= ph``.
  A descriptor may give an ``oh`` larger than that (benchdnn's "gemm" shapes do); the
  problem is then *asymmetric*, which :attr:`ConvProblem.torch_compatible` reports.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from .base import DIRECTIONS, Axis, Problem, int_tuple, own_axes

__all__ = ["ConvProblem"]

_BENCHDNN_DIRS = {"FWD_D": "fwd", "FWD_B": "fwd", "FWD_I": "fwd", "BWD_D": "bwd_d", "BWD_W": "bwd_w",
                  "BWD_WB": "bwd_w"}


@dataclass(frozen=True, kw_only=True)
class ConvProblem(Problem):
    """A 2-D convolution, NCHW input and OIHW weights (grouped: ``(oc, ic/g, kh, kw)``).

    Parameters
    ----------
    mb, ic, ih, iw : int
        Batch, input channels, input height and width.
    oc : int
        Output channels.
    kh, kw : int
        Kernel height and width.
    sh, sw : int, optional
        Strides (default 1).
    ph, pw : int, optional
        Top and left zero padding (default 0).
    dh, dw : int, optional
        Dilation in benchdnn's convention: number of gaps between taps (default 0).
    g : int, optional
        Groups (default 1); ``ic`` and ``oc`` must be divisible by ``g``.
    oh, ow : int, optional
        Output size. Derived (floor, as PyTorch) when omitted; giving a larger one
        implies extra bottom/right padding.
    dtype : {"float32", "float64"}, optional
        Data type of inputs, weights and output (default ``"float32"``).
    name : str, optional
        Free-form layer name, printed as benchdnn's ``n"..."`` suffix.
    direction : {"fwd", "bwd_d", "bwd_w"}, optional
        Which pass of this layer (benchdnn's ``--dir``): the forward convolution (``fwd``,
        the default); the backward-data pass, which is the transposed convolution
        (``bwd_d``, PyTorch ``conv_transpose2d``: consumes :attr:`output_shape`, produces
        :attr:`input_shape`); or the backward-weights pass (``bwd_w``,
        ``torch.nn.grad.conv2d_weight``: consumes the input and the output gradient, produces
        :attr:`weight_shape`).

    Raises
    ------
    ValueError
        Naming the field, the bad value and what is accepted.

    Examples
    --------
    >>> p = ConvProblem.parse("mb1ic64ih56oc64kh3ph1")
    >>> p.oh, p.ow, p.descriptor
    (56, 56, 'mb1ic64ih56oc64kh3ph1')
    """

    oc: int
    g: int = 1

    kind: ClassVar[str] = "conv"
    directions: ClassVar[tuple] = DIRECTIONS
    _own_ints: ClassVar[tuple] = ("oc", "g")
    _dir_knobs: ClassVar[dict] = _BENCHDNN_DIRS
    _dir_help: ClassVar[str] = ("FWD_D, FWD_B, FWD_I (forward), BWD_D (backward data: the transposed convolution) "
                                "and BWD_W, BWD_WB (backward weights; no bias in convbench)")

    def _check_own(self) -> None:
        if self.ic % self.g:
            raise ValueError(f"ic={self.ic} is not divisible by groups g={self.g}: ic and oc must be multiples of g")
        if self.oc % self.g:
            raise ValueError(f"oc={self.oc} is not divisible by groups g={self.g}: ic and oc must be multiples of g")

    def _check_axis(self, a: str, ax: Axis) -> int:
        ext = ax.ext
        if ax.o is None:
            if ext > ax.i + 2 * ax.p:
                raise ValueError(
                    f"kernel k{a}={ax.k} (extent {ext} with d{a}={ax.d}) is larger than the padded input "
                    f"i{a}={ax.i} + 2*p{a}={2 * ax.p}: kernel extent must be <= {ax.i + 2 * ax.p}")
            return (ax.i + 2 * ax.p - ext) // ax.s + 1
        if ax.o < 1:
            raise ValueError(f"o{a}={ax.o!r}: must be a positive integer")
        if (ax.o - 1) * ax.s + ext - ax.i - ax.p <= -ax.i:
            raise ValueError(
                f"o{a}={ax.o} is too small for i{a}={ax.i}, k{a}={ax.k}, s{a}={ax.s}, p{a}={ax.p}: the "
                f"windows would read no input row/column; accepted is a bottom/right padding > {-ax.i}")
        return ax.o

    # ------------------------------------------------------------------ derived
    @property
    def icg(self) -> int:
        """Input channels per group."""
        return self.ic // self.g

    @property
    def ocg(self) -> int:
        """Output channels per group."""
        return self.oc // self.g

    @property
    def out_channels(self) -> int:
        return self.oc

    @property
    def torch_compatible(self) -> bool:
        """True when symmetric padding ``(ph, pw)`` with floor division gives ``(oh, ow)``."""
        return all(ax.derivable for ax in self.axes)

    @property
    def padding_note(self) -> str:
        """For a problem whose given output size is not PyTorch's (benchdnn's "gemm" and
        regression shapes): what that output size implies, in words; "" otherwise."""
        if self.torch_compatible:
            return ""
        words = {"d": ("planes", "back", "front"), "h": ("rows", "bottom", "top"), "w": ("columns", "right", "left")}
        parts = []
        for a, ax, end in zip(self.layout_axes, self.axes, self.pads_r):
            what, far, near = words[a]
            if end < 0:
                parts.append(f"o{a} crops the input: its last {-end} {what} are never read")
            elif end != ax.p:
                parts.append(f"o{a} implies asymmetric padding: {far} {end} vs {near} {ax.p}")
        return "; ".join(parts) or "output size given explicitly (not PyTorch's floor rule)"

    @property
    def transposed(self) -> bool:
        """The backward-data pass: the transposed convolution."""
        return self.direction == "bwd_d"

    @property
    def weight_shape(self) -> tuple:
        return (self.oc, self.icg) + self.kernel

    @property
    def dst_shape(self) -> tuple:
        """Shape of the array the operation produces: the output, the input gradient (``bwd_d``)
        or the weight gradient (``bwd_w``)."""
        return self.weight_shape if self.direction == "bwd_w" else super().dst_shape

    @property
    def params(self) -> int:
        """Number of weights: ``oc * ic/g * kd * kh * kw`` (no bias)."""
        return self.oc * self.icg * self.kd * self.kh * self.kw

    @property
    def channel_pairs(self) -> int:
        """Images x (output, input) channel pairs: the 2-D correlations a per-plane loop makes."""
        return self.mb * self.oc * self.icg

    @property
    def is_pointwise(self) -> bool:
        return self.kd == 1 and self.kh == 1 and self.kw == 1

    @property
    def is_depthwise(self) -> bool:
        return self.g > 1 and self.g == self.ic == self.oc

    @property
    def uses_weights(self) -> bool:
        return self.direction != "bwd_w"

    # ------------------------------------------------------------------ text form
    def _head(self) -> str:
        return f"g{self.g}" if self.g != 1 else ""

    def _channels_out(self) -> str:
        return f"oc{self.oc}"

    def _knobs(self) -> str:
        return {"fwd": "", "bwd_d": "--dir=BWD_D ", "bwd_w": "--dir=BWD_W "}[self.direction]

    def row_fields(self) -> dict:
        return dict(super().row_fields(), oc=self.oc, g=self.g, alg="")

    @classmethod
    def parse(cls, text: str, *, dtype: str | None = None, mb: int | None = None) -> "ConvProblem":
        """Parse a benchdnn conv descriptor.

        Accepts everything benchdnn's ``str2desc`` does for 1-D and 2-D problems, with its
        rules exactly (see :mod:`convbench.problem.base`), a trailing name ``n"..."`` or
        ``nNAME``, and optional leading ``--dt=f32|f64`` / ``--dir=`` knobs.

        Parameters
        ----------
        text : str
            The descriptor.
        dtype : str, optional
            Overrides the dtype (else ``--dt=`` in the text, else float32).
        mb : int, optional
            Overrides the minibatch, as benchdnn's ``--mb``.

        Raises
        ------
        ValueError
            If the text is not a descriptor or describes an invalid problem.
        """
        knobs, vals, name = cls._read(text)
        for k in knobs:
            if k not in ("dt", "cfg", "dir"):
                raise cls._error(text, f"--{k}= is not a convolution knob; accepted are --dir=, --dt= and --cfg=")
        direction = cls._direction_of(text, knobs)
        if not vals.get("ic") or not vals.get("oc"):
            raise cls._error(text, "ic and oc are required and must be >= 1")
        spatial, rank = cls._spatial(text, vals)
        g = vals.get("g", 1)
        if g < 1:
            raise cls._error(text, f"g={g} must be >= 1")
        dt = dtype or knobs.get("dt") or knobs.get("cfg") or "float32"
        return cls._build(text, dict(mb=mb if mb is not None else vals.get("mb", 2), ic=vals["ic"], oc=vals["oc"],
                                     g=g, dtype=dt, name=name, direction=direction, rank=rank,
                                     **cls._geometry(spatial)))

    @classmethod
    def from_torch_args(cls, input_shape, weight_shape, *, stride=1, padding=0, dilation=1, groups=1,
                        dtype="float32") -> "ConvProblem":
        """Build a problem from ``torch.nn.functional.conv1d/2d/3d`` arguments (NC[D][H]W input,
        OI[D][H]W weight: the rank is the input's spatial dimensions).

        ``stride``, ``padding`` and ``dilation`` take an int or one per spatial axis (numpy
        integers too), as in PyTorch; ``padding`` also takes ``'valid'`` (no padding) and
        ``'same'`` (stride 1 only; an odd total padding puts the extra element at the end, as
        PyTorch pads).
        """
        n = len(input_shape) - 2
        if n not in (1, 2, 3):
            raise ValueError(f"input shape {tuple(input_shape)}: expected 3-D (N, C, L), 4-D (N, C, H, W) or 5-D "
                             f"(N, C, D, H, W)")
        if len(weight_shape) != 2 + n:
            raise ValueError(f"weight shape {tuple(weight_shape)}: expected {2 + n}-D (oc, ic/groups"
                             f"{', kd, kh, kw' if n == 3 else ', kh, kw' if n == 2 else ', kw'}) for a {n}-D input")
        mb, ic, *size = (int(v) for v in input_shape)
        oc, icg, *k = (int(v) for v in weight_shape)
        try:
            groups = int_tuple(groups, 1, "groups")[0]
        except ValueError:
            raise ValueError(f"groups={groups!r}: expected a positive int") from None
        if groups < 1:
            raise ValueError(f"groups={groups!r}: expected a positive int")
        if icg * groups != ic:
            raise ValueError(f"weight shape {tuple(weight_shape)} has ic/groups={icg} but input has ic={ic} "
                             f"with groups={groups}: expected weight.shape[1] == "
                             f"{ic // groups if ic % groups == 0 else 'ic/groups'}")
        s = int_tuple(stride, n, "stride")
        dil = int_tuple(dilation, n, "dilation")
        if min(dil) < 1:
            raise ValueError(f"dilation={dilation!r}: must be >= 1 (PyTorch convention)")
        out = [None] * n
        if isinstance(padding, str):
            mode = padding.lower()
            if mode == "valid":
                pad = (0,) * n
            elif mode == "same":
                # PyTorch: stride 1 only; the total padding dilation*(k-1) is split with the
                # extra element of an odd total at the end; the output keeps the input size
                if max(s) != 1:
                    raise ValueError(f"padding='same' is not supported for strided convolutions (stride={stride!r}), "
                                     f"as in PyTorch; give an explicit padding")
                pad = tuple(d * (kk - 1) // 2 for d, kk in zip(dil, k))
                out = list(size)
            else:
                raise ValueError(f"padding={padding!r}: expected an int, " + ("a pair of ints" if n == 2 else f"{n} ints")
                                 + ", 'valid' or 'same'")
        else:
            pad = int_tuple(padding, n, "padding")
        axes = own_axes(n)
        fields = {}
        for a, i_, k_, s_, p_, d_, o_ in zip(axes, size, k, s, pad, dil, out):
            fields.update({"i" + a: i_, "k" + a: k_, "s" + a: s_, "p" + a: p_, "d" + a: d_ - 1, "o" + a: o_})
        return cls(mb=mb, ic=ic, oc=oc, g=groups, dtype=dtype, rank=n, **fields)
