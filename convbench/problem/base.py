"""What every problem shares: one validated spatial geometry and one descriptor syntax.

A problem is a layer's shape: minibatch and input channels, then per spatial axis the input
size ``i``, output size ``o``, kernel (window) ``k``, stride ``s``, front/top/left padding ``p``
and dilation ``d`` (benchdnn counts gaps: 0 is a dense kernel), plus its ``rank`` (1, 2 or 3
spatial axes), dtype, direction and a free name. :class:`Problem` holds these and everything
derived from them alone (extents, implied back/bottom/right padding, array shapes, the
canonical text); :class:`~convbench.problem.ConvProblem` adds output channels and groups,
:class:`~convbench.problem.PoolProblem` the pooling algorithm. Each says only what is its
own: which output sizes it accepts on an axis, its channels out, its knobs.

The spatial axes are data, :data:`AXES` (``d``, ``h``, ``w``, outermost first): validation,
the printer and the parser loop over them. Every problem has the fields of all three, as
benchdnn's descriptors do: a 2-D problem reports ``id = od = kd = 1``, ``sd = 1``, ``pd =
dd = 0``, a 1-D problem the same on ``h`` too. A 3-D problem's arrays are NCDHW; a 2-D one's
NCHW; a 1-D one's NC1W (the same bytes as NCW: every 2-D code path runs it, and a backend
may take a 1-D path of its own), which the functional API hands back as NCW.

The canonical text form is oneDNN benchdnn's descriptor (``mb1ic64ih56oc64kh3ph1``), read
with benchdnn's own rules (``conv_aux.cpp`` str2desc, ``common.cpp`` sanitize_desc): ``mb``
defaults to 2; per axis a missing output is computed (floor, as PyTorch) and a missing
padding is computed from a given output (``((o-1)*s - i + ext) / 2``, truncated) or is 0. A
``d`` axis makes a 3-D problem, whose ``h`` and ``w`` are either both given or both copies of
``d``; without ``d``, an ``h`` axis makes a 2-D problem whose missing ``w`` is a copy of ``h``
(a partly given ``w`` is completed from defaults, not from ``h``); no ``d`` and no ``h`` is a
1-D problem along ``w``. Printed descriptors always parse back under these rules.
"""

from __future__ import annotations

import dataclasses
import operator
import re
from dataclasses import dataclass
from functools import cached_property
from typing import ClassVar, NamedTuple

__all__ = ["Problem", "InvalidProblem", "Axis", "AXES", "RANKS", "DTYPES", "DIRECTIONS", "as_int", "int_tuple",
           "own_axes"]

#: dtypes a problem may carry, by name. Kept as strings so the module needs no numpy.
DTYPES = ("float32", "float64")
#: passes of a layer: forward, backward data (the transposed convolution), backward weights
DIRECTIONS = ("fwd", "bwd_d", "bwd_w")
#: spatial axes, outermost first; each has the fields i<a> o<a> k<a> s<a> p<a> d<a>
AXES = ("d", "h", "w")
#: the fields of an axis a problem of lower rank does not have (what benchdnn fills in)
TRIVIAL = dict(i=1, o=1, k=1, s=1, p=0, d=0)
#: ranks a problem may have (spatial axes: w; h, w; d, h, w)
RANKS = (1, 2, 3)
#: a descriptor's echo in an error message is cut to this many characters
ECHO_CHARS = 80

_DT_ALIASES = {"f32": "float32", "float32": "float32", "f64": "float64", "float64": "float64"}
_KEYS = ("mb", "ic", "id", "ih", "iw", "oc", "od", "oh", "ow", "kd", "kh", "kw",
         "sd", "sh", "sw", "pd", "ph", "pw", "dd", "dh", "dw", "g")
_TOKEN = re.compile(r"(" + "|".join(_KEYS) + r")(-?\d+)")
_KNOB = re.compile(r"--(\w+)=(\S+)\s+")


def echo(text) -> str:
    """``repr`` of user text for an error message, cut to :data:`ECHO_CHARS` characters."""
    r = repr(text)
    return r if len(r) <= ECHO_CHARS else r[:ECHO_CHARS - 14] + f"...' ({len(str(text))} chars)"


def as_int(v, what: str) -> int:
    """``v`` as a Python int: ints, numpy integers and integral floats; ValueError naming
    ``what`` for anything else (bools included, as PyTorch refuses them)."""
    if isinstance(v, bool):
        raise ValueError(f"{what}={v!r}: expected an integer")
    try:
        return operator.index(v)
    except TypeError:
        pass
    try:
        iv = int(v)
    except (TypeError, ValueError, OverflowError):
        raise ValueError(f"{what}={v!r}: expected an integer") from None
    if iv != v:
        raise ValueError(f"{what}={v!r}: expected an integer")
    return iv


def int_tuple(v, n: int, what: str) -> tuple:
    """An int (numpy integers included) repeated ``n`` times, or a sequence of ``n`` ints, as
    PyTorch's functional API takes ``stride``, ``padding``, ``dilation`` and kernel sizes."""
    bad = ValueError(f"{what}={v!r}: expected an int or " + ("a pair of ints" if n == 2 else f"{n} ints"))
    if isinstance(v, bool) or isinstance(v, str):
        raise bad
    try:
        return (operator.index(v),) * n
    except TypeError:
        pass
    try:
        items = tuple(v)
    except TypeError:
        raise bad from None
    if len(items) != n or any(isinstance(t, bool) for t in items):
        raise bad
    try:
        return tuple(operator.index(t) for t in items)
    except TypeError:
        raise bad from None


def own_axes(rank: int) -> tuple:
    """The spatial axes of a problem of ``rank``: the last ``rank`` of :data:`AXES`."""
    return AXES[len(AXES) - rank:]


def _ext(k: int, d: int) -> int:
    """Extent of a kernel of size ``k`` with benchdnn dilation ``d`` (gaps)."""
    return (k - 1) * (d + 1) + 1


class Axis(NamedTuple):
    """One spatial axis: input, output, kernel, stride, top/left padding, dilation (gaps)."""

    i: int
    o: int
    k: int
    s: int
    p: int
    d: int

    @property
    def ext(self) -> int:
        return _ext(self.k, self.d)

    @property
    def floor_o(self) -> int:
        """The output size PyTorch's floor rule gives (symmetric padding ``p``)."""
        return (self.i + 2 * self.p - self.ext) // self.s + 1

    @property
    def derivable(self) -> bool:
        """Whether the output size is the floor-derived one (so a descriptor need not print it)."""
        return self.i + 2 * self.p >= self.ext and self.o == self.floor_o


@dataclass(frozen=True)
class InvalidProblem:
    """A grid point or suite line that is not a valid problem: its would-be text and why.

    It answers what a problem answers about itself (``kind``, ``valid``, ``label``), so the
    sweep reports it as a skipped row instead of crashing.
    """

    label: str
    reason: str
    dtype: str = "float32"
    direction: str = "fwd"
    kind: str = "conv"
    name: str = ""

    valid: ClassVar[bool] = False
    uses_weights: ClassVar[bool] = False

    @property
    def descriptor(self) -> str:
        return self.label

    def row_fields(self) -> dict:
        return dict(problem=self.label, descriptor=self.label, dtype=self.dtype, direction=self.direction,
                    kind=self.kind)


@dataclass(frozen=True, kw_only=True)
class Problem:
    """The shared part of every problem (see the module docstring); never built itself."""

    mb: int
    ic: int
    iw: int
    kw: int
    id: int = 1
    ih: int = 1
    kd: int = 1
    kh: int = 1
    sd: int = 1
    sh: int = 1
    sw: int = 1
    pd: int = 0
    ph: int = 0
    pw: int = 0
    dd: int = 0
    dh: int = 0
    dw: int = 0
    od: int | None = None
    oh: int | None = None
    ow: int | None = None
    dtype: str = "float32"
    name: str = ""
    direction: str = "fwd"
    #: spatial axes: 1 (w), 2 (h, w) or 3 (d, h, w)
    rank: int = 2

    #: "conv" or "pool": which backends run it
    kind: ClassVar[str] = ""
    valid: ClassVar[bool] = True
    #: the directions this kind of problem has
    directions: ClassVar[tuple] = DIRECTIONS
    #: integer fields of the subclass besides the shared ones, and which must be >= 1
    _own_ints: ClassVar[tuple] = ()
    #: benchdnn --dir= values this kind reads, and how they map to directions
    _dir_knobs: ClassVar[dict] = {}
    _dir_help: ClassVar[str] = ""
    #: what an error calls this kind's text, and its kernel
    _what: ClassVar[str] = "descriptor"
    _kernel: ClassVar[str] = "kernel"

    # ------------------------------------------------------------------ validation
    def __post_init__(self) -> None:
        ints = ("mb", "ic") + tuple(f + a for a in AXES for f in "iksdp") + tuple(self._own_ints)
        for f in ints:
            v = getattr(self, f)
            if isinstance(v, bool) or not isinstance(v, int):
                object.__setattr__(self, f, as_int(v, f))
        for f in ("mb", "ic") + tuple("i" + a for a in AXES) + tuple("k" + a for a in AXES) + tuple(self._own_ints):
            if getattr(self, f) < 1:
                raise ValueError(f"{f}={getattr(self, f)}: must be a positive integer (>= 1)")
        for a in AXES:
            if getattr(self, "s" + a) < 1:
                raise ValueError(f"stride s{a}={getattr(self, 's' + a)}: must be >= 1")
        for a in AXES:
            if getattr(self, "p" + a) < 0:
                raise ValueError(f"padding p{a}={getattr(self, 'p' + a)}: must be >= 0")
        for a in AXES:
            if getattr(self, "d" + a) < 0:
                raise ValueError(f"dilation d{a}={getattr(self, 'd' + a)}: must be >= 0 (benchdnn counts gaps: "
                                 f"0 = dense kernel)")
        if self.rank not in RANKS:
            raise ValueError(f"rank={self.rank!r}: accepted are 1, 2 and 3 spatial axes")
        for a in AXES[:len(AXES) - self.rank]:  # the axes below the rank hold benchdnn's defaults
            given = {f: getattr(self, f + a) for f in "iksdp"}
            if any(v != TRIVIAL[f] for f, v in given.items()) or getattr(self, "o" + a) not in (None, 1):
                raise ValueError(f"a {self.rank}-D problem has no {a} axis, but i{a}/k{a}/s{a}/p{a}/d{a}/o{a} are "
                                 f"{given['i']}/{given['k']}/{given['s']}/{given['p']}/{given['d']}/"
                                 f"{getattr(self, 'o' + a)}; accepted: leave them out (or give rank={len(AXES)})")
        self._check_own()
        dt = _DT_ALIASES.get(str(self.dtype))
        if dt is None:
            raise ValueError(f"dtype={self.dtype!r}: accepted are float32 (f32) and float64 (f64)")
        object.__setattr__(self, "dtype", dt)
        if self.direction not in self.directions:
            raise ValueError(self._direction_error())
        for a in AXES:
            o = getattr(self, "o" + a)
            if o is not None and (isinstance(o, bool) or not isinstance(o, int)):
                try:
                    o = as_int(o, "o" + a)
                except ValueError:
                    raise ValueError(f"o{a}={o!r}: must be a positive integer") from None
            ax = Axis(getattr(self, "i" + a), o, getattr(self, "k" + a), getattr(self, "s" + a),
                      getattr(self, "p" + a), getattr(self, "d" + a))
            object.__setattr__(self, "o" + a, self._check_axis(a, ax))
        if not isinstance(self.name, str) or '"' in self.name:
            raise ValueError(f"name={self.name!r}: must be a string without double quotes")

    def _check_own(self) -> None:
        """Checks of the subclass's own fields (groups, algorithm), before the axes."""

    def _direction_error(self) -> str:
        return f"direction={self.direction!r}: accepted are {', '.join(self.directions)}"

    def _check_axis(self, a: str, ax: Axis) -> int:
        """The output size of axis ``a`` (``ax.o`` is None when not given), or ValueError."""
        raise NotImplementedError

    # ------------------------------------------------------------------ geometry
    def axis(self, a: str) -> Axis:
        return Axis(*(getattr(self, f + a) for f in "iokspd"))

    @property
    def own_axes(self) -> tuple[str, ...]:
        """The problem's spatial axes: ``w``; ``h, w``; ``d, h, w``."""
        return own_axes(self.rank)

    @property
    def layout_axes(self) -> tuple[str, ...]:
        """The spatial axes of its arrays: ``d, h, w`` in 3-D, else ``h, w`` (a 1-D problem is
        laid out NC1W)."""
        return AXES if self.rank == 3 else AXES[1:]

    def own(self, f: str) -> tuple:
        """Field ``f`` (``"i"``, ``"o"``, ``"k"``, ``"s"``, ``"p"``, ``"d"``) over the problem's own
        axes: ``p.own("k")`` is ``(kw,)``, ``(kh, kw)`` or ``(kd, kh, kw)``."""
        return tuple(getattr(self, f + a) for a in self.own_axes)

    @property
    def axes(self) -> tuple[Axis, ...]:
        """The arrays' spatial axes (:attr:`layout_axes`), outermost first."""
        return tuple(self.axis(a) for a in self.layout_axes)

    @property
    def spatial(self) -> tuple:
        """Input sizes of the arrays' spatial axes."""
        return tuple(ax.i for ax in self.axes)

    @property
    def out_spatial(self) -> tuple:
        """Output sizes of the arrays' spatial axes."""
        return tuple(ax.o for ax in self.axes)

    @property
    def kernel(self) -> tuple:
        """Kernel (window) sizes of the arrays' spatial axes."""
        return tuple(ax.k for ax in self.axes)

    @property
    def padded(self) -> tuple:
        """Per array axis, the span of the padded input the windows read: ``(o-1)*s + ext``."""
        return tuple((ax.o - 1) * ax.s + ax.ext for ax in self.axes)

    @property
    def read(self) -> tuple:
        """Per array axis, the input elements the windows read (all unless ``o`` crops the end)."""
        return tuple(min(ax.i, (ax.o - 1) * ax.s + ax.ext - ax.p) for ax in self.axes)

    @property
    def pads_r(self) -> tuple:
        """Per array axis, the back/bottom/right padding ``o`` implies (negative: cropped)."""
        return tuple((ax.o - 1) * ax.s + ax.ext - ax.i - ax.p for ax in self.axes)

    @property
    def ext_d(self) -> int:
        """Depth extent of the (dilated) kernel."""
        return _ext(self.kd, self.dd)

    @property
    def pd_r(self) -> int:
        """Back padding implied by ``od`` (negative: back input planes are never read)."""
        return (self.od - 1) * self.sd + self.ext_d - self.id - self.pd

    @property
    def dp(self) -> int:
        """Planes of the padded input that the windows read: ``(od-1)*sd + ext_d``."""
        return (self.od - 1) * self.sd + self.ext_d

    @property
    def read_d(self) -> int:
        """Input planes the windows read."""
        return min(self.id, self.dp - self.pd)

    @property
    def dil_d(self) -> int:
        """Depth dilation in PyTorch's convention (1 = dense)."""
        return self.dd + 1

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

    @property
    def read_h(self) -> int:
        """Input rows the windows read (all of them unless ``oh`` crops the bottom)."""
        return min(self.ih, self.hp - self.ph)

    @property
    def read_w(self) -> int:
        """Input columns the windows read."""
        return min(self.iw, self.wp - self.pw)

    @property
    def dil_h(self) -> int:
        """Vertical dilation in PyTorch's convention (1 = dense)."""
        return self.dh + 1

    @property
    def dil_w(self) -> int:
        """Horizontal dilation in PyTorch's convention (1 = dense)."""
        return self.dw + 1

    @property
    def itemsize(self) -> int:
        """Bytes per element of :attr:`dtype`."""
        return 4 if self.dtype == "float32" else 8

    # ------------------------------------------------------------------ arrays
    @property
    def out_channels(self) -> int:
        """Channels of the output (pooling keeps its input's)."""
        raise NotImplementedError

    # the two shapes every run asks for, computed once per (frozen) problem: ~5 us each through
    # the axis properties, as much as a whole 7x7 depthwise layer's kernel spends on a channel block
    @cached_property
    def input_shape(self) -> tuple:
        return (self.mb, self.ic) + self.spatial

    @cached_property
    def output_shape(self) -> tuple:
        return (self.mb, self.out_channels) + self.out_spatial

    @property
    def src_shape(self) -> tuple:
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
        """Shape of the array the operation produces."""
        return self.input_shape if self.direction == "bwd_d" else self.output_shape

    @property
    def operand_bytes(self) -> int:
        """Bytes of the arrays one call takes."""
        n = 0
        for s in self.operand_shapes:
            k = 1
            for v in s:
                k *= v
            n += k
        return n * self.itemsize

    @property
    def uses_weights(self) -> bool:
        """Whether the problem has weights a density can prune (a forward or backward-data
        convolution)."""
        return False

    @property
    def ladder_key(self) -> tuple:
        """Everything but the input size, padding and output size: the problems that are rungs
        of one size ladder share it (a rung over the time budget rules out the larger ones)."""
        sizes = {f + a for a in AXES for f in "iop"}
        return (type(self).__name__,) + tuple(
            getattr(self, f.name) for f in dataclasses.fields(self) if f.name not in sizes | {"name"})

    # ------------------------------------------------------------------ text form
    def _head(self) -> str:
        """What the descriptor prints before ``mb`` (groups)."""
        return ""

    def _channels_out(self) -> str:
        """What the descriptor prints after the input sizes (``oc``)."""
        return ""

    def _knobs(self) -> str:
        """benchdnn knobs the label prints before the descriptor."""
        raise NotImplementedError

    def _shown_axes(self) -> tuple:
        """The axes the descriptor prints (benchdnn copies the rest, see the module docstring):
        3-D: d, and h and w unless both equal d in every field; 2-D: h, and w unless it equals
        h; 1-D: w."""
        if self.rank == 3:
            d = self.axis("d")
            return ("d",) if self.axis("h") == d and self.axis("w") == d else AXES
        if self.rank == 2:
            return ("h",) if self.axis("w") == self.axis("h") else ("h", "w")
        return ("w",)

    @property
    def descriptor(self) -> str:
        """Canonical benchdnn descriptor (dtype and direction are in :attr:`label`).

        It parses back to this problem under benchdnn's own rules: an axis is left out only
        where benchdnn copies it whole, and is otherwise printed whole (benchdnn completes a
        partly given axis from defaults); an output size is printed, with its padding, when it
        is not the derived one.
        """
        shown = {a: self.axis(a) for a in self._shown_axes()}
        out_needed = {a: not ax.derivable for a, ax in shown.items()}
        s = [self._head(), f"mb{self.mb}ic{self.ic}"]
        s += [f"i{a}{ax.i}" for a, ax in shown.items()]
        s.append(self._channels_out())
        s += [f"o{a}{ax.o}" for a, ax in shown.items() if out_needed[a]]
        s += [f"k{a}{ax.k}" for a, ax in shown.items()]
        s += [f"s{a}{ax.s}" for a, ax in shown.items() if ax.s != 1]
        s += [f"p{a}{ax.p}" for a, ax in shown.items() if ax.p != 0 or out_needed[a]]
        s += [f"d{a}{ax.d}" for a, ax in shown.items() if ax.d != 0]
        if self.name:
            s.append(f'n"{self.name}"')
        return "".join(s)

    @property
    def label(self) -> str:
        """Descriptor with benchdnn's knobs (``--dir=``, ``--alg=``, ``--dt=f64``) where they
        apply: unique per problem and accepted by :meth:`parse`."""
        return self._knobs() + ("--dt=f64 " if self.dtype == "float64" else "") + self.descriptor

    def __str__(self) -> str:
        return self.label

    def replace(self, **changes) -> "Problem":
        """A copy with some fields changed (revalidated). Output sizes are re-derived when a
        geometry field changes (unless given), and kept otherwise (``mb``, ``dtype``, ...)."""
        geometry = {f + a for a in AXES for f in "iksdp"}
        if changes.keys() & geometry:
            for a in AXES:
                changes.setdefault("o" + a, None)
        return dataclasses.replace(self, **changes)

    def row_fields(self) -> dict:
        """The problem's columns of a results row (counts come from :mod:`convbench.flops`)."""
        d = dict(problem=self.label, descriptor=self.descriptor, name=self.name, kind=self.kind,
                 direction=self.direction, dtype=self.dtype, mb=self.mb, ic=self.ic, rank=self.rank)
        for a in AXES:
            for f in "iokspd":
                d[f + a] = getattr(self, f + a)
        return d

    # ------------------------------------------------------------------ parsing
    @classmethod
    def _read(cls, text) -> tuple[dict, dict, str]:
        """``(knobs, fields, name)`` of a descriptor: leading ``--key=value`` knobs, benchdnn
        fields with ``_`` separators, and a trailing name ``n"..."`` or ``nNAME``."""
        if not isinstance(text, str):
            raise ValueError(f"{cls._what} {echo(text)}: expected a string such as 'mb1ic64ih56oc64kh3ph1'")
        s = text.strip()
        knobs: dict = {}
        while (m := _KNOB.match(s)) is not None:
            knobs[m.group(1)] = m.group(2)
            s = s[m.end():]
        vals: dict = {}
        name = ""
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
                raise cls._error(text, f"cannot read {s[pos:pos + 12]!r} at position {pos}; expected benchdnn "
                                       f"fields like mb1ic64ih56oc64kh3sh1ph1dh0 (g mb ic ih iw oc oh ow kh kw sh sw "
                                       f"ph pw dh dw)")
            vals[m.group(1)] = int(m.group(2))
            pos = m.end()
        for k, v in vals.items():
            if v < 0:
                raise cls._error(text, f"{k}={v} must be non-negative")
        return knobs, vals, name

    @classmethod
    def _error(cls, text, msg: str) -> ValueError:
        return ValueError(f"{cls._what} {echo(text)}: {msg}")

    @classmethod
    def _spatial(cls, text, vals: dict) -> tuple[dict, int]:
        """``(axes, rank)``: per axis ``{i, o, k, s, p, d}`` under benchdnn's rules (see the
        module docstring), and the problem's rank."""
        def given(a):
            return dict(i=vals.get("i" + a, 0), o=vals.get("o" + a, 0), k=vals.get("k" + a, 0),
                        s=vals.get("s" + a, 1), p=vals.get("p" + a, -1), d=vals.get("d" + a, 0))

        def absent(ax):
            return not (ax["i"] or ax["k"] or ax["o"] or ax["d"]) and ax["s"] == 1 and ax["p"] < 1

        def complete(a, ax):
            # a missing output is computed (the problem does it and checks the extent); a
            # missing padding is 0 then, else computed from the given output (compute_pad:
            # C integer division, which truncates toward zero)
            if not ax["i"] or not ax["k"]:
                raise cls._error(text, f"i{a} and k{a} are required and must be >= 1")
            ax = dict(ax)
            if not ax["o"]:
                ax["o"] = None
                ax["p"] = max(ax["p"], 0)
            elif ax["p"] < 0:
                ax["p"] = int(((ax["o"] - 1) * ax["s"] - ax["i"] + _ext(ax["k"], ax["d"])) / 2)
            return ax

        raw = {a: given(a) for a in AXES}
        there = [a for a in AXES if not absent(raw[a])]
        if not there:
            raise cls._error(text, "needs an input size and a kernel size (id..kd.., ih..kh.. or iw..kw..)")
        rank = len(AXES) - AXES.index(there[0])  # the outermost axis given sets the rank
        if rank == 3 and len(there) == 2:
            (gone,) = set(AXES[1:]) - set(there)
            raise cls._error(text, f"a 3-D problem needs both h and w or neither (they are copies of d then); "
                                   f"the {gone} axis (i{gone}, k{gone}, ...) is missing")
        out = {a: complete(a, raw[a]) for a in there}
        first = AXES[len(AXES) - rank]
        for a in own_axes(rank):  # a whole missing axis copies the outermost one (3-D: d; 2-D: h)
            out.setdefault(a, dict(out[first]))
        for a in AXES[:len(AXES) - rank]:
            out[a] = dict(TRIVIAL)
        return out, rank

    @classmethod
    def _direction_of(cls, text, knobs: dict) -> str:
        if "dir" not in knobs:
            return "fwd"
        d = knobs["dir"].upper()
        if d not in cls._dir_knobs:
            raise cls._error(text, f"--dir={knobs['dir']} is not supported; accepted are {cls._dir_help}")
        return cls._dir_knobs[d]

    @classmethod
    def _build(cls, text, fields: dict):
        try:
            return cls(**fields)
        except ValueError as e:
            raise cls._error(text, str(e)) from None

    @classmethod
    def _geometry(cls, spatial: dict) -> dict:
        return {f + a: spatial[a][f] for a in AXES for f in "iokspd"}
