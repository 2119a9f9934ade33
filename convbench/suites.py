"""Named problem sets: plain files of benchdnn descriptors shipped with the package.

File format (``convbench/suites/NAME.txt``, or any file given to ``--suite-file``)::

    # comment
    mb1ic64ih56oc64kh3ph1n"resnet50:res2.conv2"   # x3

One descriptor per line, convolutions and pooling layers mixed (a line with ``--alg=`` or
without ``oc`` is a pooling layer, :class:`~convbench.problem.PoolProblem`; suites list layers
in network order, which the activation-size table and figure follow); blank lines and ``#``
comments are ignored (a ``#`` inside a quoted name is part of the name), and so are benchdnn knob lines (``--dt=f32 --dir=FWD_B``).
A layer's multiplicity in its network (default 1, used by network roll-ups) is written

* as benchdnn's shape files write it, ``*N`` at the end of the name
  (``n"stable_diffusion:conv1*5"``), or
* as a trailing comment ``# xN`` (a comment whose first word starts with ``x`` is read
  as a multiplicity, and anything but a positive integer after the ``x`` is an error).

When a line has both, the ``# xN`` comment wins (it is convbench's own annotation, written
on purpose for this file). The same shape on several lines of one suite counts every
line: ``# x3`` and ``# x2`` make 5 layers. Since multiplicity lives in a name or a comment,
these files also load in benchdnn, and benchdnn's ``inputs/conv/shapes_*`` files load
here unchanged (a UTF-8 byte-order mark included), 1-D and 3-D lines as well: a suite may
mix ranks. A line that is not a descriptor is refused naming the file and line.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from .problem import parse_problem

__all__ = ["SuiteEntry", "list_suites", "load_suite", "parse_suite_text", "suite_path"]

_MULT = re.compile(r"#\s*(x\S*)")
_NAME_MULT = re.compile(r'n"?[^"]*\*(\d+)"?\s*$')


@dataclass(frozen=True)
class SuiteEntry:
    problem: object  # ConvProblem or PoolProblem
    multiplicity: int = 1
    line: int = 0


def _comment_start(line: str) -> int | None:
    """Index of the first ``#`` outside double quotes (a layer name may contain ``#``)."""
    quoted = False
    for i, ch in enumerate(line):
        if ch == '"':
            quoted = not quoted
        elif ch == "#" and not quoted:
            return i
    return None


def _suite_dir():
    return resources.files("convbench") / "suites"


def list_suites() -> dict[str, str]:
    """Shipped suite names and the first comment line of each (its description)."""
    out = {}
    for entry in sorted(_suite_dir().iterdir(), key=lambda e: e.name):
        if entry.name.endswith(".txt"):
            first = next((ln.lstrip("# ").strip() for ln in entry.read_text().splitlines()
                          if ln.startswith("#")), "")
            out[entry.name[:-4]] = first
    return out


def suite_path(name: str):
    path = _suite_dir() / f"{name}.txt"
    if not path.is_file():
        raise ValueError(f"unknown suite {name!r}; available: {', '.join(list_suites())}")
    return path


def parse_suite_text(text: str, source: str = "<suite>", *, dtype: str | None = None,
                     mb: int | None = None) -> list[SuiteEntry]:
    """Parse suite text; a line that is not a descriptor raises ``ValueError`` naming it."""
    out = []
    for i, raw in enumerate(text.lstrip("\ufeff").splitlines(), 1):
        mult = None
        body = raw
        h = _comment_start(raw)
        if h is not None:
            body, comment = raw[:h], raw[h:]
            m = _MULT.match(comment)
            if m:
                spec = m.group(1)
                if not re.fullmatch(r"x\d+", spec) or int(spec[1:]) < 1:
                    raise ValueError(f"{source}:{i}: multiplicity {spec!r} is not valid; expected '# xN' with "
                                     f"N a positive integer (a comment starting with x is a multiplicity)")
                mult = int(spec[1:])
        body = body.strip()
        if not body:
            continue
        if all(tok.startswith("--") for tok in body.split()):
            continue  # a benchdnn knob line (--dt=..., --dir=...): settings, not a shape
        if mult is None:  # benchdnn's own spelling: *N at the end of the name
            m = _NAME_MULT.search(body)
            mult = int(m.group(1)) if m else 1
            if mult < 1:
                raise ValueError(f"{source}:{i}: multiplicity *{mult} in the name must be >= 1")
        try:
            p = parse_problem(body, dtype=dtype, mb=mb)
        except ValueError as e:
            raise ValueError(f"{source}:{i}: {e}") from None
        out.append(SuiteEntry(p, mult, i))
    return out


def load_suite(name_or_path: str, *, is_path: bool = False, dtype: str | None = None,
               mb: int | None = None) -> list[SuiteEntry]:
    """Entries of a shipped suite (by name) or of a user's file (``is_path=True``)."""
    if is_path:
        path = Path(name_or_path)
        if not path.exists():
            raise ValueError(f"--suite-file {name_or_path!r}: no such file")
        if path.is_dir():
            raise ValueError(f"--suite-file {name_or_path!r} is a directory; expected a file of descriptors")
        try:
            text = path.read_text(encoding="utf-8-sig")
        except (OSError, UnicodeDecodeError) as e:
            raise ValueError(f"--suite-file {name_or_path!r}: cannot read ({e})") from None
        source = str(path)
    else:
        text = suite_path(name_or_path).read_text(encoding="utf-8-sig")
        source = f"suite {name_or_path}"
    entries = parse_suite_text(text, source, dtype=dtype, mb=mb)
    if not entries:
        raise ValueError(f"{source}: holds no problems")
    return entries
