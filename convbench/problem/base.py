"""What every problem shares: one validated spatial geometry and one descriptor syntax.

A problem is a layer's shape: minibatch and input channels, then per spatial axis the input
size ``i``, output size ``o``, kernel (window) ``k``, stride ``s``, top/left padding ``p`` and
dilation ``d`` (benchdnn counts gaps: 0 is a dense kernel), plus dtype, direction and a free
name. :class:`Problem` holds these and everything derived from them alone (extents, implied
bottom/right padding, array shapes, the canonical text); :class:`~convbench.problem.ConvProblem`
adds output channels and groups, :class:`~convbench.problem.PoolProblem` the pooling algorithm.
Each says only what is its own: which output sizes it accepts on an axis, its channels out,
its knobs.

The spatial axes are data, :data:`AXES`, outermost first: validation, the printer and the
parser loop over them, so a new axis is an entry there and its fields, not a new code path.

The canonical text form is oneDNN benchdnn's descriptor (``mb1ic64ih56oc64kh3ph1``), read
with benchdnn's own rules (``conv_aux.cpp`` str2desc, ``common.cpp`` sanitize_desc): ``mb``
defaults to 2; per axis a missing output is computed (floor, as PyTorch) and a missing
padding is computed from a given output (``((o-1)*s - i + ext) / 2``, truncated) or is 0; a
whole missing w axis is a copy of the h axis, but a partly given one is completed from
defaults, not from h; no h at all is a 1-D problem (run as 2-D with ``ih = kh = 1``).
Printed descriptors always parse back under these rules.
"""

from __future__ import annotations

import dataclasses
import operator
import re
from dataclasses import dataclass
from typing import ClassVar, NamedTuple

__all__ = ["Problem", "InvalidProblem", "Axis", "AXES", "DTYPES", "DIRECTIONS", "as_int", "int_tuple"]

#: dtypes a problem may carry, by name. Kept as strings so the module needs no numpy.
DTYPES = ("float32", "float64")
#: passes of a layer: forward, backward data (the transposed convolution), backward weights
DIRECTIONS = ("fwd", "bwd_d", "bwd_w")
#: spatial axes, outermost first; each has the fields i<a> o<a> k<a> s<a> p<a> d<a>
AXES = ("h", "w")
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
    oh: int | None = None
    ow: int | None = None
    dtype: str = "float32"
    name: str = ""
    direction: str = "fwd"

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
    def axes(self) -> tuple[Axis, ...]:
        """The spatial axes, in :data:`AXES` order."""
        return tuple(self.axis(a) for a in AXES)

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

    @property
    def input_shape(self) -> tuple:
        return (self.mb, self.ic, self.ih, self.iw)

    @property
    def output_shape(self) -> tuple:
        return (self.mb, self.out_channels, self.oh, self.ow)

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

    @property
    def descriptor(self) -> str:
        """Canonical benchdnn descriptor (dtype and direction are in :attr:`label`).

        It parses back to this problem under benchdnn's own rules: an axis is left out only
        when it equals the one before it in every field (benchdnn then copies it), and is
        otherwise printed whole (benchdnn completes a partly given axis from defaults); an
        output size is printed, with its padding, when it is not the derived one.
        """
        axes = [a for n, a in enumerate(AXES) if n == 0 or self.axis(a) != self.axis(AXES[n - 1])]
        shown = {a: self.axis(a) for a in axes}
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
                 direction=self.direction, dtype=self.dtype, mb=self.mb, ic=self.ic)
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
        if any(vals.get(k) for k in ("id", "kd", "od", "dd")) or vals.get("sd", 1) != 1 or vals.get("pd", 0) > 0:
            noun = "convolutions" if cls.kind == "conv" else "pooling layers"
            raise cls._error(text, f"3-D {noun} (id/kd/od/sd/pd/dd) are not supported; convbench runs 1-D and "
                                   f"2-D problems")
        for k, v in vals.items():
            if v < 0:
                raise cls._error(text, f"{k}={v} must be non-negative")
        return knobs, vals, name

    @classmethod
    def _error(cls, text, msg: str) -> ValueError:
        return ValueError(f"{cls._what} {echo(text)}: {msg}")

    @classmethod
    def _spatial(cls, text, vals: dict) -> dict:
        """Per axis ``{i, o, k, s, p, d}`` under benchdnn's rules (see the module docstring)."""
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
        missing = {a for a, ax in raw.items() if absent(ax)}
        if missing == set(AXES):
            raise cls._error(text, "needs an input size and a kernel size (ih..kh.. or iw..kw..)")
        out: dict = {}
        for n, a in enumerate(AXES):
            if a not in missing:
                out[a] = complete(a, raw[a])
            elif n == 0:  # no h: a 1-D problem along the later axes (h takes the defaults)
                out[a] = dict(i=1, o=1, k=1, s=1, p=0, d=0)
            else:  # a whole missing axis is a copy of the one before
                out[a] = dict(out[AXES[n - 1]])
        return out

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
