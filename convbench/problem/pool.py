"""The pooling problem: max, or average with or without the padding counted, NCHW.

Its descriptor is benchdnn's pool descriptor with its ``--alg=`` knob in front
(``--alg=max mb1ic64ih112kh3sh2ph1``; ``max`` when absent): no ``oc`` (channels are kept),
stride 1 by default as in benchdnn. ``ceil_mode`` is written as the output size it gives
(``oh``), which benchdnn reads as extra bottom/right padding.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from .base import Axis, Problem, as_int, int_tuple, own_axes

__all__ = ["PoolProblem", "POOL_ALGS"]

#: pooling algorithms, as benchdnn's pool driver names them: max, average including the
#: padding in the divisor (PyTorch count_include_pad=True), average excluding it
POOL_ALGS = ("max", "avg_p", "avg_np")

_ALG_ALIASES = {"avg_np": "avg_np", "avg_p": "avg_p", "max": "max", "pooling_max": "max",
                "pooling_avg_include_padding": "avg_p", "pooling_avg_exclude_padding": "avg_np"}


@dataclass(frozen=True, kw_only=True)
class PoolProblem(Problem):
    """A 2-D pooling layer, NCHW: max, or average with or without the padding counted.

    Parameters
    ----------
    mb, ic, ih, iw, kh, kw, sh, sw, ph, pw : int
        Batch, channels, input size, window, stride and top/left padding.
    dh, dw : int, optional
        Dilation (benchdnn gaps: 0 is dense); max pooling only, as in PyTorch.
    alg : {"max", "avg_p", "avg_np"}
    oh, ow : int, optional
        Output size; derived with floor division when omitted. A larger one is PyTorch's
        ``ceil_mode``: the last window may run off the bottom/right edge, provided it starts
        inside the input or the top/left padding.
    direction : {"fwd", "bwd_d"}
        Forward pooling, or its gradient with respect to the input (``bwd_d``: consumes the
        output gradient, produces the input gradient; max routes it through the argmax).

    Raises
    ------
    ValueError
        A window larger than the padded input, padding over half the window (PyTorch's rule),
        dilation with averaging, an unknown algorithm: naming the field and what is accepted.
    """

    alg: str = "max"

    kind: ClassVar[str] = "pool"
    directions: ClassVar[tuple] = ("fwd", "bwd_d")
    _dir_knobs: ClassVar[dict] = {"FWD_D": "fwd", "FWD_I": "fwd", "BWD_D": "bwd_d"}
    _dir_help: ClassVar[str] = "FWD_D, FWD_I and BWD_D"
    _what: ClassVar[str] = "pool descriptor"
    _kernel: ClassVar[str] = "window"

    def _check_own(self) -> None:
        if self.alg not in POOL_ALGS:
            raise ValueError(f"pooling algorithm {self.alg!r}: accepted are {', '.join(POOL_ALGS)}")
        if (self.dh or self.dw) and self.alg != "max":
            raise ValueError(f"dilation dh={self.dh}/dw={self.dw} with {self.alg}: average pooling has no dilation "
                             f"(PyTorch's avg_pool2d); accepted only with alg max")

    def _direction_error(self) -> str:
        return f"direction={self.direction!r}: pooling has fwd and bwd_d"

    def _check_axis(self, a: str, ax: Axis) -> int:
        if ax.p > ax.k // 2:
            raise ValueError(f"padding p{a}={ax.p} with k{a}={ax.k}: must be between 0 and half the window "
                             f"({ax.k // 2}), as PyTorch requires")
        if ax.ext > ax.i + 2 * ax.p:
            raise ValueError(f"window k{a}={ax.k} (extent {ax.ext} with d{a}={ax.d}) is larger than the padded "
                             f"input i{a}={ax.i} + 2*p{a}={2 * ax.p}: window extent must be <= {ax.i + 2 * ax.p}")
        floor = ax.floor_o
        if ax.o is None:
            return floor
        if ax.o < floor:
            raise ValueError(f"o{a}={ax.o!r}: must be at least {floor}, the floor-derived output size")
        if (ax.o - 1) * ax.s >= ax.i + ax.p:
            raise ValueError(f"o{a}={ax.o}: the last window would start beyond the input and its top/left "
                             f"padding (PyTorch's ceil_mode rule); at most {(ax.i + ax.p - 1) // ax.s + 1}")
        return ax.o

    # ------------------------------------------------------------------ derived
    @property
    def out_channels(self) -> int:
        return self.ic

    @property
    def channel_pairs(self) -> int:
        """Images x channels: the 2-D windows a per-plane loop slides (each channel is its own)."""
        return self.mb * self.ic

    @property
    def ceil_mode(self) -> bool:
        """Whether the output size is larger than floor division gives (PyTorch's ceil_mode)."""
        return not all(ax.o == ax.floor_o for ax in self.axes)

    def torch_sizes(self, ceil: bool) -> tuple[int, ...]:
        """The output size PyTorch gives for these fields with or without ``ceil_mode``."""
        def out(ax):
            span = ax.i + 2 * ax.p - ax.ext
            o = (-(-span // ax.s) if ceil else span // ax.s) + 1
            return o - 1 if ceil and (o - 1) * ax.s >= ax.i + ax.p else o
        return tuple(out(ax) for ax in self.axes)

    @property
    def torch_compatible(self) -> bool:
        """Whether PyTorch can express this problem: the output size is its floor one, or its
        ``ceil_mode`` one on every axis (benchdnn may extend one axis alone, or further)."""
        sizes = tuple(ax.o for ax in self.axes)
        return sizes in (self.torch_sizes(False), self.torch_sizes(True))

    @property
    def torch_ceil_mode(self) -> bool:
        """The ``ceil_mode`` PyTorch needs for this output size (see :attr:`torch_compatible`)."""
        return tuple(ax.o for ax in self.axes) != self.torch_sizes(False)

    @property
    def padding_note(self) -> str:
        return "ceil_mode: the last window runs off the far edge" if self.ceil_mode else ""

    @property
    def transposed(self) -> bool:
        return False

    # ------------------------------------------------------------------ text form
    def _knobs(self) -> str:
        return ("--dir=BWD_D " if self.direction == "bwd_d" else "") + f"--alg={self.alg} "

    def row_fields(self) -> dict:
        # a pooling layer keeps its channels: its rows give oc = ic and one group, so tables that
        # read every layer of a network (activation sizes) read pools alike
        return dict(super().row_fields(), oc=self.ic, g=1, alg=self.alg)

    @classmethod
    def parse(cls, text: str, *, dtype: str | None = None, mb: int | None = None) -> "PoolProblem":
        """Parse ``[--dir=FWD_D|BWD_D] [--alg=max|avg_p|avg_np] [--dt=f32|f64] mbXicX_ihX...``.

        The spatial fields follow benchdnn's rules as for convolutions (a missing w axis copies
        h; a missing padding is computed from a given output), ``mb`` defaults to 2 and the
        algorithm to max, as in benchdnn's pool driver.
        """
        knobs, vals, name = cls._read(text)
        for k in knobs:
            if k not in ("alg", "dir", "dt", "cfg"):
                raise cls._error(text, f"--{k}= is not a pooling knob; accepted are --alg=, --dir=, --dt= and --cfg=")
        direction = cls._direction_of(text, knobs)
        if "oc" in vals:
            raise cls._error(text, "a pooling layer keeps its channels; give ic only")
        if vals.get("g", 1) != 1:
            raise cls._error(text, "groups do not apply to pooling")
        if not vals.get("ic"):
            raise cls._error(text, "ic is required and must be >= 1")
        spatial, rank = cls._spatial(text, vals)
        alg = _ALG_ALIASES.get(knobs.get("alg", "max").lower(), knobs.get("alg", "max"))
        dt = dtype or knobs.get("dt") or knobs.get("cfg") or "float32"
        return cls._build(text, dict(mb=mb if mb is not None else vals.get("mb", 2), ic=vals["ic"], alg=alg,
                                     dtype=dt, name=name, direction=direction, rank=rank,
                                     **cls._geometry(spatial)))

    @classmethod
    def from_torch_args(cls, input_shape, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, *,
                        alg: str = "max", dtype: str = "float32", direction: str = "fwd") -> "PoolProblem":
        """Build a problem from ``torch.nn.functional.max_pool1d/2d/3d`` / ``avg_pool1d/2d/3d``
        arguments (the rank is the input's spatial dimensions).

        ``kernel_size``, ``stride`` (``None``: the kernel size), ``padding`` and ``dilation``
        take an int or one per axis (numpy integers too); ``ceil_mode`` gives PyTorch's output
        size ``ceil((i + 2p - d(k-1) - 1) / s) + 1``, less one when the last window would
        start beyond the input and its front padding.
        """
        n = len(input_shape) - 2
        if n not in (1, 2, 3):
            raise ValueError(f"input shape {tuple(input_shape)}: expected 3-D (N, C, L), 4-D (N, C, H, W) or 5-D "
                             f"(N, C, D, H, W)")
        mb, ic, *size = (as_int(v, "input shape") for v in input_shape)
        k = int_tuple(kernel_size, n, "kernel_size")
        s = k if stride is None else int_tuple(stride, n, "stride")
        pad = int_tuple(padding, n, "padding")
        dil = int_tuple(dilation, n, "dilation")
        for what, v in (("kernel_size", kernel_size if min(k) < 1 else None),
                        ("stride", stride if min(s) < 1 else None),
                        ("dilation", dilation if min(dil) < 1 else None)):
            if v is not None:
                raise ValueError(f"{what}={v!r}: must be >= 1")
        if not isinstance(ceil_mode, bool):
            raise ValueError(f"ceil_mode={ceil_mode!r}: expected True or False")
        out = [None] * n
        if ceil_mode and all(i + 2 * p - d * (kk - 1) >= 1 for i, kk, p, d in zip(size, k, pad, dil)):
            def ceil_out(i, kk, st, p, d):
                o = -(-(i + 2 * p - d * (kk - 1) - 1) // st) + 1
                return o - 1 if (o - 1) * st >= i + p else o
            out = [ceil_out(*t) for t in zip(size, k, s, pad, dil)]
        fields = {}
        for a, i_, k_, s_, p_, d_, o_ in zip(own_axes(n), size, k, s, pad, dil, out):
            fields.update({"i" + a: i_, "k" + a: k_, "s" + a: s_, "p" + a: p_, "d" + a: d_ - 1, "o" + a: o_})
        return cls(mb=mb, ic=ic, alg=alg, dtype=dtype, direction=direction, rank=n, **fields)
