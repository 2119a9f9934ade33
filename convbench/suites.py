"""Named problem sets: plain files of benchdnn descriptors shipped with the package.

File format (``convbench/suites/NAME.txt``, or any file given to ``--suite-file``)::

    # comment
    mb1ic64ih56oc64kh3ph1n"resnet50:res2.conv2"   # x3

One descriptor per line; blank lines and ``#`` comments are ignored (a ``#`` inside a
quoted name is part of the name), and so are benchdnn knob lines (``--dt=f32 --dir=FWD_B``);
a trailing comment ``# xN`` is the layer's multiplicity in its network (default 1), used
by network roll-ups. Since multiplicity lives in a comment, these files also load in
benchdnn, and benchdnn's ``inputs/conv/shapes_*`` files load here unchanged.
Lines benchdnn accepts but convbench cannot run (3-D problems) are returned as
:class:`~convbench.sweep.InvalidProblem` entries, reported as skipped rows.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from .problem import ConvProblem
from .sweep import InvalidProblem

__all__ = ["SuiteEntry", "list_suites", "load_suite", "parse_suite_text", "suite_path"]

_MULT = re.compile(r"#\s*x(\d+)\b")


@dataclass(frozen=True)
class SuiteEntry:
    problem: object  # ConvProblem or InvalidProblem
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
    for i, raw in enumerate(text.splitlines(), 1):
        mult = 1
        body = raw
        h = _comment_start(raw)
        if h is not None:
            body, comment = raw[:h], raw[h:]
            m = _MULT.match(comment)
            if m:
                mult = int(m.group(1))
        body = body.strip()
        if not body:
            continue
        if all(tok.startswith("--") for tok in body.split()):
            continue  # a benchdnn knob line (--dt=..., --dir=...): settings, not a shape
        if mult < 1:
            raise ValueError(f"{source}:{i}: multiplicity x{mult} must be >= 1")
        try:
            p = ConvProblem.parse(body, dtype=dtype, mb=mb)
        except ValueError as e:
            if "3-D convolutions" in str(e):
                out.append(SuiteEntry(InvalidProblem(body, str(e)), mult, i))
                continue
            raise ValueError(f"{source}:{i}: {e}") from None
        out.append(SuiteEntry(p, mult, i))
    return out


def load_suite(name_or_path: str, *, is_path: bool = False, dtype: str | None = None,
               mb: int | None = None) -> list[SuiteEntry]:
    """Entries of a shipped suite (by name) or of a user's file (``is_path=True``)."""
    if is_path:
        path = Path(name_or_path)
        if not path.is_file():
            raise ValueError(f"--suite-file {name_or_path!r}: no such file")
        try:
            text = path.read_text()
        except (OSError, UnicodeDecodeError) as e:
            raise ValueError(f"--suite-file {name_or_path!r}: cannot read ({e})") from None
        source = str(path)
    else:
        text = suite_path(name_or_path).read_text()
        source = f"suite {name_or_path}"
    entries = parse_suite_text(text, source, dtype=dtype, mb=mb)
    if not entries:
        raise ValueError(f"{source}: holds no problems")
    return entries
