"""The convolution problem: one validated, immutable description of a 2-D conv layer.

Every other module takes a :class:`ConvProblem`; nothing downstream re-validates
shapes. The canonical text form is oneDNN benchdnn's conv descriptor
(``mb1ic64ih56oc64kh3ph1``), so benchdnn ``inputs/conv/shapes_*`` lines load
unchanged and every table row can be pasted back into ``convbench run --problem``
or into benchdnn itself.

benchdnn conventions kept here on purpose (they differ from PyTorch):

* ``mb`` defaults to 2 when a descriptor omits it (benchdnn's default);
* dilation ``dh``/``dw`` counts the *gaps*: ``dh0`` is a dense kernel, ``dh1`` is
  PyTorch's ``dilation=2``. :attr:`ConvProblem.dil_h` gives the PyTorch value;
* padding ``ph``/``pw`` is the top/left padding. The bottom/right padding is
  implied by the output size: ``ph_r = (oh-1)*sh - ih + ext_h - ph``. When a
  descriptor gives no ``oh``, ``oh`` is derived with floor division exactly as
  PyTorch does, and ``ph_r <= ph``. A descriptor may give an ``oh`` larger than
  that (benchdnn's "gemm" shapes do); the problem is then *asymmetric*, which
  :attr:`ConvProblem.torch_compatible` reports.

1-D descriptors (only ``iw``/``kw``...) are read as 2-D problems with ``ih = kh = 1``.
3-D descriptors (``id``/``kd``/``od``...) are rejected with a clear error.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass

__all__ = ["ConvProblem", "PoolProblem", "parse_problem", "DTYPES", "DIRECTIONS", "POOL_ALGS"]

#: dtypes a problem may carry, by name. Kept as strings so the module needs no numpy.
DTYPES = ("float32", "float64")
#: passes of a layer: forward, backward data (the transposed convolution), backward weights
DIRECTIONS = ("fwd", "bwd_d", "bwd_w")
_BENCHDNN_DIRS = {"FWD_D": "fwd", "FWD_B": "fwd", "FWD_I": "fwd", "BWD_D": "bwd_d", "BWD_W": "bwd_w",
                  "BWD_WB": "bwd_w"}

_DT_ALIASES = {"f32": "float32", "float32": "float32", "f64": "float64", "float64": "float64"}

# Keys benchdnn accepts, longest first is not needed: all are two letters except g.
_KEYS = ("mb", "ic", "id", "ih", "iw", "oc", "od", "oh", "ow", "kd", "kh", "kw",
         "sd", "sh", "sw", "pd", "ph", "pw", "dd", "dh", "dw", "g")
_TOKEN = re.compile(r"(" + "|".join(_KEYS) + r")(-?\d+)")


def _ext(k: int, d: int) -> int:
    """Extent of a kernel of size ``k`` with benchdnn dilation ``d`` (gaps)."""
    return (k - 1) * (d + 1) + 1


class _Window:
    """Window geometry shared by convolution and pooling problems (fields ``ih, iw, oh, ow,
    kh, kw, sh, sw, ph, pw, dh, dw``, dilation as benchdnn's gap)."""

    @property
    def ext_h(self) -> int:
        """Vertical extent of the (dilated) kernel."""
        return _ext(self.kh, self.dh)

    @property
    def ext_w(self) -> int:
        """Horizontal extent of the (dilated) kernel."""
        return _ext(self.kw, self.dw)

    @property
    def ph_r(self) -> int:
        """Bottom padding implied by ``oh`` (negative: bottom input rows are never read)."""
        return (self.oh - 1) * self.sh + self.ext_h - self.ih - self.ph

    @property
    def pw_r(self) -> int:
        """Right padding implied by ``ow`` (negative: right input columns are never read)."""
        return (self.ow - 1) * self.sw + self.ext_w - self.iw - self.pw

    @property
    def hp(self) -> int:
        """Rows of the padded input that the windows read: ``(oh-1)*sh + ext_h``."""
        return (self.oh - 1) * self.sh + self.ext_h

    @property
    def wp(self) -> int:
        """Columns of the padded input that the windows read: ``(ow-1)*sw + ext_w``."""
        return (self.ow - 1) * self.sw + self.ext_w


@dataclass(frozen=True)
class ConvProblem(_Window):
    """A forward 2-D convolution, NCHW input and OIHW weights (grouped: ``(oc, ic/g, kh, kw)``).

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

    mb: int
    ic: int
    ih: int
    iw: int
    oc: int
    kh: int
    kw: int
    sh: int = 1
    sw: int = 1
    ph: int = 0
    pw: int = 0
    dh: int = 0
    dw: int = 0
    g: int = 1
    oh: int | None = None
    ow: int | None = None
    dtype: str = "float32"
    name: str = ""
    direction: str = "fwd"

    kind = "conv"

    def __post_init__(self) -> None:
        for f in ("mb", "ic", "ih", "iw", "oc", "kh", "kw", "sh", "sw", "ph", "pw", "dh", "dw", "g"):
            v = getattr(self, f)
            if isinstance(v, bool) or not isinstance(v, int):
                try:
                    iv = int(v)
                except (TypeError, ValueError):
                    raise ValueError(f"{f}={v!r}: expected an integer") from None
                if iv != v:
                    raise ValueError(f"{f}={v!r}: expected an integer")
                object.__setattr__(self, f, iv)
        for f in ("mb", "ic", "ih", "iw", "oc", "kh", "kw", "g"):
            if getattr(self, f) < 1:
                raise ValueError(f"{f}={getattr(self, f)}: must be a positive integer (>= 1)")
        for f in ("sh", "sw"):
            if getattr(self, f) < 1:
                raise ValueError(f"stride {f}={getattr(self, f)}: must be >= 1")
        for f in ("ph", "pw"):
            if getattr(self, f) < 0:
                raise ValueError(f"padding {f}={getattr(self, f)}: must be >= 0")
        for f in ("dh", "dw"):
            if getattr(self, f) < 0:
                raise ValueError(
                    f"dilation {f}={getattr(self, f)}: must be >= 0 (benchdnn counts gaps: 0 = dense kernel)")
        if self.ic % self.g:
            raise ValueError(f"ic={self.ic} is not divisible by groups g={self.g}: ic and oc must be multiples of g")
        if self.oc % self.g:
            raise ValueError(f"oc={self.oc} is not divisible by groups g={self.g}: ic and oc must be multiples of g")
        dt = _DT_ALIASES.get(str(self.dtype))
        if dt is None:
            raise ValueError(f"dtype={self.dtype!r}: accepted are float32 (f32) and float64 (f64)")
        object.__setattr__(self, "dtype", dt)
        for dim, i, k, s, p, d, o in (("h", self.ih, self.kh, self.sh, self.ph, self.dh, self.oh),
                                      ("w", self.iw, self.kw, self.sw, self.pw, self.dw, self.ow)):
            ext = _ext(k, d)
            if o is None:
                if ext > i + 2 * p:
                    raise ValueError(
                        f"kernel k{dim}={k} (extent {ext} with d{dim}={d}) is larger than the padded input "
                        f"i{dim}={i} + 2*p{dim}={2 * p}: kernel extent must be <= {i + 2 * p}")
                object.__setattr__(self, "o" + dim, (i + 2 * p - ext) // s + 1)
            else:
                if isinstance(o, bool) or not isinstance(o, int) or o < 1:
                    raise ValueError(f"o{dim}={o!r}: must be a positive integer")
                pr = (o - 1) * s + ext - i - p
                if pr <= -i:
                    raise ValueError(
                        f"o{dim}={o} is too small for i{dim}={i}, k{dim}={k}, s{dim}={s}, p{dim}={p}: the "
                        f"windows would read no input row/column; accepted is a bottom/right padding > {-i}")
        if self.direction not in DIRECTIONS:
            raise ValueError(f"direction={self.direction!r}: accepted are {', '.join(DIRECTIONS)}")
        if not isinstance(self.name, str) or '"' in self.name:
            raise ValueError(f"name={self.name!r}: must be a string without double quotes")

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
    def dil_h(self) -> int:
        """Vertical dilation in PyTorch's convention (1 = dense)."""
        return self.dh + 1

    @property
    def dil_w(self) -> int:
        """Horizontal dilation in PyTorch's convention (1 = dense)."""
        return self.dw + 1

    @property
    def read_h(self) -> int:
        """Input rows the convolution reads (all of them unless ``oh`` crops the bottom)."""
        return min(self.ih, self.hp - self.ph)

    @property
    def read_w(self) -> int:
        """Input columns the convolution reads."""
        return min(self.iw, self.wp - self.pw)

    @property
    def torch_compatible(self) -> bool:
        """True when symmetric padding ``(ph, pw)`` with floor division gives ``(oh, ow)``."""
        return (self.oh == (self.ih + 2 * self.ph - self.ext_h) // self.sh + 1
                and self.ow == (self.iw + 2 * self.pw - self.ext_w) // self.sw + 1
                and self.ih + 2 * self.ph >= self.ext_h and self.iw + 2 * self.pw >= self.ext_w)

    @property
    def padding_note(self) -> str:
        """For a problem whose given output size is not PyTorch's (benchdnn's "gemm" and
        regression shapes): what that output size implies, in words; "" otherwise."""
        if self.torch_compatible:
            return ""
        parts = []
        for d, top, bottom in (("h", self.ph, self.ph_r), ("w", self.pw, self.pw_r)):
            if bottom < 0:
                parts.append(f"o{d} crops the input: its last {-bottom} {'rows' if d == 'h' else 'columns'} "
                             f"are never read")
            elif bottom != top:
                parts.append(f"o{d} implies asymmetric padding: {'bottom' if d == 'h' else 'right'} {bottom} "
                             f"vs {'top' if d == 'h' else 'left'} {top}")
        return "; ".join(parts) or "output size given explicitly (not PyTorch's floor rule)"

    @property
    def itemsize(self) -> int:
        """Bytes per element of :attr:`dtype`."""
        return 4 if self.dtype == "float32" else 8

    @property
    def transposed(self) -> bool:
        """The backward-data pass: the transposed convolution."""
        return self.direction == "bwd_d"

    @property
    def input_shape(self) -> tuple[int, int, int, int]:
        return (self.mb, self.ic, self.ih, self.iw)

    @property
    def weight_shape(self) -> tuple[int, int, int, int]:
        return (self.oc, self.icg, self.kh, self.kw)

    @property
    def output_shape(self) -> tuple[int, int, int, int]:
        return (self.mb, self.oc, self.oh, self.ow)

    @property
    def src_shape(self) -> tuple[int, int, int, int]:
        """Shape of the (first) array the operation consumes: the input, or the output
        gradient for ``bwd_d``."""
        return self.output_shape if self.direction == "bwd_d" else self.input_shape

    @property
    def operand_shapes(self) -> tuple:
        """Shapes of every array ``run`` takes: ``(x,)``, ``(dy,)`` for ``bwd_d``, ``(x, dy)``
        for ``bwd_w``."""
        return (self.input_shape, self.output_shape) if self.direction == "bwd_w" else (self.src_shape,)

    @property
    def dst_shape(self) -> tuple:
        """Shape of the array the operation produces: the output, the input gradient (``bwd_d``)
        or the weight gradient (``bwd_w``)."""
        return {"fwd": self.output_shape, "bwd_d": self.input_shape, "bwd_w": self.weight_shape}[self.direction]

    @property
    def params(self) -> int:
        """Number of weights: ``oc * ic/g * kh * kw`` (no bias)."""
        return self.oc * self.icg * self.kh * self.kw

    @property
    def is_pointwise(self) -> bool:
        return self.kh == 1 and self.kw == 1

    @property
    def is_depthwise(self) -> bool:
        return self.g > 1 and self.g == self.ic == self.oc

    # ------------------------------------------------------------------ text form
    def _derivable(self, axis: str) -> bool:
        """Whether an axis's output size is the floor-derived one (so it need not be printed)."""
        i, k, st, p, o = ((self.ih, self.ext_h, self.sh, self.ph, self.oh) if axis == "h" else
                          (self.iw, self.ext_w, self.sw, self.pw, self.ow))
        return i + 2 * p >= k and o == (i + 2 * p - k) // st + 1

    @property
    def descriptor(self) -> str:
        """Canonical benchdnn descriptor (dtype is not part of it; see :attr:`label`).

        It parses back to this problem under benchdnn's own rules: the w axis is left out
        only when it equals the h axis in every field (benchdnn then copies h), and is
        otherwise printed whole (benchdnn completes a partly given axis from defaults, not
        from h); an output size is printed, with its padding, when it is not the derived one.
        """
        hx = (self.ih, self.oh, self.kh, self.sh, self.ph, self.dh)
        wx = (self.iw, self.ow, self.kw, self.sw, self.pw, self.dw)
        w_own = hx != wx
        oh_needed, ow_needed = not self._derivable("h"), w_own and not self._derivable("w")
        s = []
        if self.g != 1:
            s.append(f"g{self.g}")
        s.append(f"mb{self.mb}ic{self.ic}ih{self.ih}")
        if w_own:
            s.append(f"iw{self.iw}")
        s.append(f"oc{self.oc}")
        if oh_needed:
            s.append(f"oh{self.oh}")
        if ow_needed:
            s.append(f"ow{self.ow}")
        s.append(f"kh{self.kh}")
        if w_own:
            s.append(f"kw{self.kw}")
        if self.sh != 1:
            s.append(f"sh{self.sh}")
        if w_own and self.sw != 1:
            s.append(f"sw{self.sw}")
        if self.ph != 0 or oh_needed:
            s.append(f"ph{self.ph}")
        if w_own and (self.pw != 0 or ow_needed):
            s.append(f"pw{self.pw}")
        if self.dh != 0:
            s.append(f"dh{self.dh}")
        if w_own and self.dw != 0:
            s.append(f"dw{self.dw}")
        if self.name:
            s.append(f'n"{self.name}"')
        return "".join(s)

    @property
    def label(self) -> str:
        """Descriptor with benchdnn's ``--dir=BWD_D|BWD_W`` / ``--dt=f64`` knobs when they apply.

        Unique per problem and accepted by :meth:`parse`."""
        knobs = ({"fwd": "", "bwd_d": "--dir=BWD_D ", "bwd_w": "--dir=BWD_W "}[self.direction]
                 + ("--dt=f64 " if self.dtype == "float64" else ""))
        return knobs + self.descriptor

    def __str__(self) -> str:
        return self.label

    def replace(self, **changes) -> "ConvProblem":
        """A copy with some fields changed (revalidated).

        ``oh``/``ow`` are re-derived when a geometry field changes (unless given),
        and kept otherwise (e.g. when only ``mb`` or ``dtype`` change)."""
        if changes.keys() & {"ih", "iw", "kh", "kw", "sh", "sw", "ph", "pw", "dh", "dw"}:
            changes.setdefault("oh", None)
            changes.setdefault("ow", None)
        return dataclasses.replace(self, **changes)

    @classmethod
    def parse(cls, text: str, *, dtype: str | None = None, mb: int | None = None) -> "ConvProblem":
        """Parse a benchdnn conv descriptor.

        Accepts everything benchdnn's ``str2desc`` does for 1-D and 2-D problems, with its
        rules exactly: ``_`` separators; omitted defaults (``mb2``, stride 1); per axis, a
        missing output is computed and a missing padding is computed from a given output
        (``compute_pad``) or is 0; a whole missing w axis is a copy of the h axis, and no h
        at all means a 1-D problem; a trailing name ``n"..."`` or ``nNAME``; and optional
        leading ``--dt=f32|f64`` / ``--dir=`` knobs.

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
        if not isinstance(text, str):
            raise ValueError(f"descriptor {text!r}: expected a string such as 'mb1ic64ih56oc64kh3ph1'")
        orig = text
        s = text.strip()
        dt_text = None
        direction = "fwd"
        # benchdnn knobs that `label` prints: --dir=FWD_*|BWD_D|BWD_W and --dt=/--cfg=
        while True:
            m = re.match(r"--(dt|cfg|dir)=(\S+)\s+", s)
            if not m:
                break
            if m.group(1) == "dir":
                d = m.group(2).upper()
                if d not in _BENCHDNN_DIRS:
                    raise ValueError(f"descriptor {orig!r}: --dir={m.group(2)} is not supported; accepted are "
                                     f"FWD_D, FWD_B, FWD_I (forward), BWD_D (backward data: the transposed "
                                     f"convolution) and BWD_W, BWD_WB (backward weights; no bias in convbench)")
                direction = _BENCHDNN_DIRS[d]
            else:
                dt_text = m.group(2)
            s = s[m.end():]
        name = ""
        # name: everything after the first 'n' that is not part of a key
        vals: dict[str, int] = {}
        pos = 0
        while pos < len(s):
            c = s[pos]
            if c == "_":
                pos += 1
                continue
            if c == "n":
                name = s[pos + 1:].strip()
                if len(name) >= 2 and name[0] == name[-1] == '"':
                    name = name[1:-1]
                break
            m = _TOKEN.match(s, pos)
            if not m:
                raise ValueError(
                    f"descriptor {orig!r}: cannot read {s[pos:pos + 12]!r} at position {pos}; expected "
                    f"benchdnn fields like mb1ic64ih56oc64kh3sh1ph1dh0 (g mb ic ih iw oc oh ow kh kw sh sw ph pw dh dw)")
            vals[m.group(1)] = int(m.group(2))
            pos = m.end()
        if any(vals.get(k) for k in ("id", "kd", "od", "dd")) or vals.get("sd", 1) != 1 or vals.get("pd", 0) > 0:
            raise ValueError(f"descriptor {orig!r}: 3-D convolutions (id/kd/od/sd/pd/dd) are not supported; "
                             f"convbench runs 1-D and 2-D problems")
        for k, v in vals.items():
            if v < 0:
                raise ValueError(f"descriptor {orig!r}: {k}={v} must be non-negative")
        if not vals.get("ic") or not vals.get("oc"):
            raise ValueError(f"descriptor {orig!r}: ic and oc are required and must be >= 1")

        def axis(d: str) -> dict:
            i, o, k = vals.get("i" + d, 0), vals.get("o" + d, 0), vals.get("k" + d, 0)
            st, p, dl = vals.get("s" + d, 1), vals.get("p" + d, -1), vals.get("d" + d, 0)
            return dict(i=i, o=o, k=k, s=st, p=p, d=dl)

        def complete(d: str, ax: dict) -> dict:
            """benchdnn's str2desc for one given axis: a missing output is computed (floor, as
            compute_out; ConvProblem does it and checks the extent), and a missing padding is 0
            when the output is computed, else computed from the given output (compute_pad:
            ((o-1)*s - i + ext) / 2 in C integer division, which truncates toward zero)."""
            if not ax["i"] or not ax["k"]:
                raise ValueError(f"descriptor {orig!r}: i{d} and k{d} are required and must be >= 1")
            ax = dict(ax)
            if not ax["o"]:
                ax["o"] = None
                if ax["p"] < 0:
                    ax["p"] = 0
            elif ax["p"] < 0:
                ax["p"] = int(((ax["o"] - 1) * ax["s"] - ax["i"] + _ext(ax["k"], ax["d"])) / 2)
            return ax

        h, w = axis("h"), axis("w")
        # benchdnn: an axis is absent when none of i, k, o, d is given, its stride is 1 and its
        # padding is not positive; then (sanitize_desc) a missing w is a copy of the whole h
        # axis, and a missing h makes a 1-D problem (h takes the defaults)
        no_h = not (h["i"] or h["k"] or h["o"] or h["d"]) and h["s"] == 1 and h["p"] < 1
        no_w = not (w["i"] or w["k"] or w["o"] or w["d"]) and w["s"] == 1 and w["p"] < 1
        if no_h and no_w:
            raise ValueError(f"descriptor {orig!r}: needs an input size and a kernel size (ih..kh.. or iw..kw..)")
        if no_h:  # 1-D problem along w
            h, w = dict(i=1, o=1, k=1, s=1, p=0, d=0), complete("w", w)
        elif no_w:
            h = complete("h", h)
            w = dict(h)
        else:  # each axis on its own (a missing pw is computed from ow, never copied from ph)
            h, w = complete("h", h), complete("w", w)
        g = vals.get("g", 1)
        if g < 1:
            raise ValueError(f"descriptor {orig!r}: g={g} must be >= 1")
        if dtype is None and dt_text is not None:
            dtype = dt_text
        try:
            return cls(mb=mb if mb is not None else vals.get("mb", 2), ic=vals["ic"], ih=h["i"], iw=w["i"],
                       oc=vals["oc"], kh=h["k"], kw=w["k"], sh=h["s"], sw=w["s"], ph=h["p"], pw=w["p"],
                       dh=h["d"], dw=w["d"], g=g, oh=h["o"], ow=w["o"], dtype=dtype or "float32", name=name,
                       direction=direction)
        except ValueError as e:
            raise ValueError(f"descriptor {orig!r}: {e}") from None

    @classmethod
    def from_torch_args(cls, input_shape, weight_shape, *, stride=1, padding=0, dilation=1, groups=1,
                        dtype="float32") -> "ConvProblem":
        """Build a problem from ``torch.nn.functional.conv2d`` arguments (NCHW, OIHW).

        ``stride``, ``padding`` and ``dilation`` take an int or a pair, as in PyTorch;
        ``padding`` also takes ``'valid'`` (no padding) and ``'same'`` (stride 1 only; for an
        even kernel the extra pixel goes to the bottom/right, as PyTorch pads).
        """
        def pair(v, what):
            if isinstance(v, bool):
                raise ValueError(f"{what}={v!r}: expected an int or a pair of ints")
            if isinstance(v, int):
                return v, v
            try:
                a, b = v
                return int(a), int(b)
            except (TypeError, ValueError):
                raise ValueError(f"{what}={v!r}: expected an int or a pair of ints") from None

        if len(input_shape) != 4:
            raise ValueError(f"input shape {tuple(input_shape)}: expected 4-D NCHW (mb, ic, ih, iw)")
        if len(weight_shape) != 4:
            raise ValueError(f"weight shape {tuple(weight_shape)}: expected 4-D (oc, ic/groups, kh, kw)")
        mb, ic, ih, iw = (int(v) for v in input_shape)
        oc, icg, kh, kw = (int(v) for v in weight_shape)
        if isinstance(groups, bool) or not isinstance(groups, int) or groups < 1:
            raise ValueError(f"groups={groups!r}: expected a positive int")
        if icg * groups != ic:
            raise ValueError(f"weight shape {tuple(weight_shape)} has ic/groups={icg} but input has ic={ic} "
                             f"with groups={groups}: expected weight.shape[1] == {ic // groups if ic % groups == 0 else 'ic/groups'}")
        sh, sw = pair(stride, "stride")
        dh, dw = pair(dilation, "dilation")
        if dh < 1 or dw < 1:
            raise ValueError(f"dilation={dilation!r}: must be >= 1 (PyTorch convention)")
        oh = ow = None
        if isinstance(padding, str):
            mode = padding.lower()
            if mode == "valid":
                ph = pw = 0
            elif mode == "same":
                # PyTorch: stride 1 only; the total padding dilation*(k-1) is split with the
                # extra pixel of an odd total on the bottom/right; the output keeps the input size
                if (sh, sw) != (1, 1):
                    raise ValueError(f"padding='same' is not supported for strided convolutions (stride={stride!r}), "
                                     f"as in PyTorch; give an explicit padding")
                ph, pw = dh * (kh - 1) // 2, dw * (kw - 1) // 2
                oh, ow = ih, iw
            else:
                raise ValueError(f"padding={padding!r}: expected an int, a pair of ints, 'valid' or 'same'")
        else:
            ph, pw = pair(padding, "padding")
        return cls(mb=mb, ic=ic, ih=ih, iw=iw, oc=oc, kh=kh, kw=kw, sh=sh, sw=sw, ph=ph, pw=pw,
                   dh=dh - 1, dw=dw - 1, g=groups, oh=oh, ow=ow, dtype=dtype)


#: pooling algorithms, as benchdnn's pool driver names them: max, average including the
#: padding in the divisor (PyTorch count_include_pad=True), average excluding it
POOL_ALGS = ("max", "avg_p", "avg_np")


@dataclass(frozen=True)
class PoolProblem(_Window):
    """A 2-D pooling layer, NCHW: max, or average with or without the padding counted.

    The descriptor is benchdnn's pool descriptor with its ``--alg=`` knob in front
    (``--alg=max mb1ic64ih112kh3sh2ph1``; ``max`` when absent): no ``oc`` (channels are kept),
    stride 1 by default as in benchdnn. ``ceil_mode`` is written as the output size it
    gives (``oh``), which benchdnn reads as extra bottom/right padding.

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

    mb: int
    ic: int
    ih: int
    iw: int
    kh: int
    kw: int
    sh: int = 1
    sw: int = 1
    ph: int = 0
    pw: int = 0
    dh: int = 0
    dw: int = 0
    alg: str = "max"
    oh: int | None = None
    ow: int | None = None
    dtype: str = "float32"
    name: str = ""
    direction: str = "fwd"

    kind = "pool"

    def __post_init__(self) -> None:
        for f in ("mb", "ic", "ih", "iw", "kh", "kw", "sh", "sw", "ph", "pw", "dh", "dw"):
            v = getattr(self, f)
            if isinstance(v, bool) or not isinstance(v, int):
                raise ValueError(f"{f}={v!r}: expected an integer")
        for f in ("mb", "ic", "ih", "iw", "kh", "kw", "sh", "sw"):
            if getattr(self, f) < 1:
                raise ValueError(f"{f}={getattr(self, f)}: must be a positive integer (>= 1)")
        if self.alg not in POOL_ALGS:
            raise ValueError(f"pooling algorithm {self.alg!r}: accepted are {', '.join(POOL_ALGS)}")
        if self.direction not in ("fwd", "bwd_d"):
            raise ValueError(f"direction={self.direction!r}: pooling has fwd and bwd_d")
        if (self.dh or self.dw) and self.alg != "max":
            raise ValueError(f"dilation dh={self.dh}/dw={self.dw} with {self.alg}: average pooling has no dilation "
                             f"(PyTorch's avg_pool2d); accepted only with alg max")
        dt = _DT_ALIASES.get(str(self.dtype))
        if dt is None:
            raise ValueError(f"dtype={self.dtype!r}: accepted are float32 (f32) and float64 (f64)")
        object.__setattr__(self, "dtype", dt)
        for d, i, k, s, p, dl, o in (("h", self.ih, self.kh, self.sh, self.ph, self.dh, self.oh),
                                     ("w", self.iw, self.kw, self.sw, self.pw, self.dw, self.ow)):
            if p < 0 or p > k // 2:
                raise ValueError(f"padding p{d}={p} with k{d}={k}: must be between 0 and half the window "
                                 f"({k // 2}), as PyTorch requires")
            ext = _ext(k, dl)
            if ext > i + 2 * p:
                raise ValueError(f"window k{d}={k} (extent {ext} with d{d}={dl}) is larger than the padded input "
                                 f"i{d}={i} + 2*p{d}={2 * p}: window extent must be <= {i + 2 * p}")
            floor = (i + 2 * p - ext) // s + 1
            if o is None:
                object.__setattr__(self, "o" + d, floor)
            elif isinstance(o, bool) or not isinstance(o, int) or o < floor:
                raise ValueError(f"o{d}={o!r}: must be at least {floor}, the floor-derived output size")
            elif (o - 1) * s >= i + p:
                raise ValueError(f"o{d}={o}: the last window would start beyond the input and its top/left "
                                 f"padding (PyTorch's ceil_mode rule); at most {(i + p - 1) // s + 1}")
        if not isinstance(self.name, str) or '"' in self.name:
            raise ValueError(f"name={self.name!r}: must be a string without double quotes")

    @classmethod
    def from_torch_args(cls, input_shape, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, *,
                        alg: str = "max", dtype: str = "float32", direction: str = "fwd") -> "PoolProblem":
        """Build a problem from ``torch.nn.functional.max_pool2d`` / ``avg_pool2d`` arguments.

        ``kernel_size``, ``stride`` (``None``: the kernel size), ``padding`` and ``dilation``
        take an int or a pair; ``ceil_mode`` gives PyTorch's output size
        ``ceil((i + 2p - d(k-1) - 1) / s) + 1``, less one when the last window would start
        beyond the input and its top/left padding.
        """
        def pair(v, what):
            if isinstance(v, bool):
                raise ValueError(f"{what}={v!r}: expected an int or a pair of ints")
            if isinstance(v, int) or type(v).__name__.startswith("int"):
                return int(v), int(v)
            try:
                a, b = v
                if isinstance(a, bool) or isinstance(b, bool):
                    raise TypeError
                return int(a), int(b)
            except (TypeError, ValueError):
                raise ValueError(f"{what}={v!r}: expected an int or a pair of ints") from None

        if len(input_shape) != 4:
            raise ValueError(f"input shape {tuple(input_shape)}: expected 4-D NCHW (mb, ic, ih, iw)")
        mb, ic, ih, iw = (int(v) for v in input_shape)
        kh, kw = pair(kernel_size, "kernel_size")
        sh, sw = (kh, kw) if stride is None else pair(stride, "stride")
        ph, pw = pair(padding, "padding")
        dlh, dlw = pair(dilation, "dilation")
        for what, v in (("kernel_size", kernel_size if min(kh, kw) < 1 else None),
                        ("stride", stride if min(sh, sw) < 1 else None),
                        ("dilation", dilation if min(dlh, dlw) < 1 else None)):
            if v is not None:
                raise ValueError(f"{what}={v!r}: must be >= 1")
        if not isinstance(ceil_mode, bool):
            raise ValueError(f"ceil_mode={ceil_mode!r}: expected True or False")
        oh = ow = None
        if ceil_mode:
            def ceil_out(i, k, s, p, d):
                o = -(-(i + 2 * p - d * (k - 1) - 1) // s) + 1
                return o - 1 if (o - 1) * s >= i + p else o
            if min(ih + 2 * ph - dlh * (kh - 1), iw + 2 * pw - dlw * (kw - 1)) >= 1:
                oh, ow = ceil_out(ih, kh, sh, ph, dlh), ceil_out(iw, kw, sw, pw, dlw)
        return cls(mb=mb, ic=ic, ih=ih, iw=iw, kh=kh, kw=kw, sh=sh, sw=sw, ph=ph, pw=pw, dh=dlh - 1, dw=dlw - 1,
                   alg=alg, oh=oh, ow=ow, dtype=dtype, direction=direction)

    # ------------------------------------------------------------------ derived
    @property
    def oc(self) -> int:
        return self.ic

    @property
    def g(self) -> int:
        return 1

    @property
    def icg(self) -> int:
        return 1

    @property
    def params(self) -> int:
        return 0

    @property
    def itemsize(self) -> int:
        return 4 if self.dtype == "float32" else 8

    @property
    def ceil_mode(self) -> bool:
        """Whether the output size is larger than floor division gives (PyTorch's ceil_mode)."""
        return (self.oh != (self.ih + 2 * self.ph - self.ext_h) // self.sh + 1
                or self.ow != (self.iw + 2 * self.pw - self.ext_w) // self.sw + 1)

    @property
    def transposed(self) -> bool:
        return False

    def _torch_sizes(self, ceil: bool) -> tuple[int, int]:
        """The output size PyTorch gives for these fields with or without ``ceil_mode``."""
        def out(i, k, s, p):
            span = i + 2 * p - k
            o = (-(-span // s) if ceil else span // s) + 1
            return o - 1 if ceil and (o - 1) * s >= i + p else o
        return out(self.ih, self.ext_h, self.sh, self.ph), out(self.iw, self.ext_w, self.sw, self.pw)

    @property
    def torch_compatible(self) -> bool:
        """Whether PyTorch can express this problem: the output size is its floor one, or its
        ``ceil_mode`` one on both axes (benchdnn may extend one axis alone, or further)."""
        return (self.oh, self.ow) in (self._torch_sizes(False), self._torch_sizes(True))

    @property
    def torch_ceil_mode(self) -> bool:
        """The ``ceil_mode`` PyTorch needs for this output size (see :attr:`torch_compatible`)."""
        return (self.oh, self.ow) != self._torch_sizes(False)

    @property
    def padding_note(self) -> str:
        return "ceil_mode: the last window runs off the bottom/right edge" if self.ceil_mode else ""

    @property
    def input_shape(self) -> tuple:
        return (self.mb, self.ic, self.ih, self.iw)

    @property
    def output_shape(self) -> tuple:
        return (self.mb, self.ic, self.oh, self.ow)

    @property
    def weight_shape(self) -> tuple:
        return (0,)

    @property
    def src_shape(self) -> tuple:
        return self.output_shape if self.direction == "bwd_d" else self.input_shape

    @property
    def operand_shapes(self) -> tuple:
        return (self.src_shape,)

    @property
    def dst_shape(self) -> tuple:
        return self.input_shape if self.direction == "bwd_d" else self.output_shape

    # ------------------------------------------------------------------ text form
    @property
    def descriptor(self) -> str:
        """benchdnn's pool descriptor (the ``--alg`` knob is in :attr:`label`)."""
        hx = (self.ih, self.oh, self.kh, self.sh, self.ph, self.dh)
        wx = (self.iw, self.ow, self.kw, self.sw, self.pw, self.dw)
        w_own = hx != wx
        floor_h = self.oh == (self.ih + 2 * self.ph - self.ext_h) // self.sh + 1
        floor_w = self.ow == (self.iw + 2 * self.pw - self.ext_w) // self.sw + 1
        s = [f"mb{self.mb}ic{self.ic}ih{self.ih}"]
        if w_own:
            s.append(f"iw{self.iw}")
        if not floor_h:
            s.append(f"oh{self.oh}")
        if w_own and not floor_w:
            s.append(f"ow{self.ow}")
        s.append(f"kh{self.kh}")
        if w_own:
            s.append(f"kw{self.kw}")
        if self.sh != 1:
            s.append(f"sh{self.sh}")
        if w_own and self.sw != 1:
            s.append(f"sw{self.sw}")
        if self.ph or not floor_h:
            s.append(f"ph{self.ph}")
        if w_own and (self.pw or not floor_w):
            s.append(f"pw{self.pw}")
        if self.dh:
            s.append(f"dh{self.dh}")
        if w_own and self.dw:
            s.append(f"dw{self.dw}")
        if self.name:
            s.append(f'n"{self.name}"')
        return "".join(s)

    @property
    def label(self) -> str:
        knobs = ("--dir=BWD_D " if self.direction == "bwd_d" else "") + f"--alg={self.alg} " + \
            ("--dt=f64 " if self.dtype == "float64" else "")
        return knobs + self.descriptor

    def __str__(self) -> str:
        return self.label

    def replace(self, **changes) -> "PoolProblem":
        if changes.keys() & {"ih", "iw", "kh", "kw", "sh", "sw", "ph", "pw", "dh", "dw"}:
            changes.setdefault("oh", None)
            changes.setdefault("ow", None)
        return dataclasses.replace(self, **changes)

    @classmethod
    def parse(cls, text: str, *, dtype: str | None = None, mb: int | None = None) -> "PoolProblem":
        """Parse ``[--dir=FWD_D|BWD_D] [--alg=max|avg_p|avg_np] [--dt=f32|f64] mbXicX_ihX...``.

        The spatial fields follow benchdnn's rules as for convolutions (a missing w axis copies
        h; a missing padding is computed from a given output), ``mb`` defaults to 2 and the
        algorithm to max, as in benchdnn's pool driver.
        """
        s = text.strip()
        alg, direction, dt_text = "max", "fwd", None
        while True:
            m = re.match(r"--(alg|dir|dt|cfg)=(\S+)\s+", s)
            if not m:
                break
            key, val = m.group(1), m.group(2)
            if key == "alg":
                alg = {"avg_np": "avg_np", "avg_p": "avg_p", "max": "max", "pooling_max": "max",
                       "pooling_avg_include_padding": "avg_p",
                       "pooling_avg_exclude_padding": "avg_np"}.get(val.lower(), val)
            elif key == "dir":
                if val.upper() not in ("FWD_D", "FWD_I", "BWD_D"):
                    raise ValueError(f"pool descriptor {text!r}: --dir={val} is not supported; accepted are FWD_D, "
                                     f"FWD_I and BWD_D")
                direction = "bwd_d" if val.upper() == "BWD_D" else "fwd"
            else:
                dt_text = val
            s = s[m.end():]
        if "oc" in re.sub(r'n".*', "", s):
            raise ValueError(f"pool descriptor {text!r}: a pooling layer keeps its channels; give ic only")
        try:  # the spatial fields parse as a convolution's that keeps its channels
            c = ConvProblem.parse(re.sub(r'^((?:g\d+)?(?:mb\d+)?_?ic(\d+))', lambda m: m.group(1) + f"oc{m.group(2)}",
                                         s, count=1), mb=mb)
        except ValueError as e:
            msg = str(e).split("': ", 1)[-1].replace("kernel", "window")
            raise ValueError(f"pool descriptor {text!r}: {msg}") from None
        if c.g != 1:
            raise ValueError(f"pool descriptor {text!r}: groups do not apply to pooling")
        try:
            return cls(mb=c.mb, ic=c.ic, ih=c.ih, iw=c.iw, kh=c.kh, kw=c.kw, sh=c.sh, sw=c.sw, ph=c.ph, pw=c.pw,
                       dh=c.dh, dw=c.dw, alg=alg, oh=c.oh, ow=c.ow, dtype=dtype or dt_text or "float32",
                       name=c.name, direction=direction)
        except ValueError as e:
            raise ValueError(f"pool descriptor {text!r}: {e}") from None


def parse_problem(text: str, *, dtype: str | None = None, mb: int | None = None):
    """A convolution or a pooling descriptor: a line with ``--alg=`` or without ``oc`` is a pool."""
    body = re.sub(r'n".*', "", text)
    if "--alg=" in text:
        return PoolProblem.parse(text, dtype=dtype, mb=mb)
    if re.search(r"oc\d", body) or not re.search(r"ic\d+.*k[hw]\d", body):
        return ConvProblem.parse(text, dtype=dtype, mb=mb)  # a convolution, or not a descriptor at all
    return PoolProblem.parse(text, dtype=dtype, mb=mb)
