"""Selector files: one JSON file per machine fingerprint holding a selector per (dtype,
threads, direction), with a revision counter bumped by every ``convbench tune`` that writes
it (the previous revision is kept next to it as ``*.prev.json``)."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

from .model import FORMAT_VERSION, NewerSelectorFile, Selector, SelectorFileError, check_version

__all__ = ["STORE_FORMAT", "entries", "write"]

STORE_FORMAT = "convbench-selectors"


def _read(path: Path) -> dict:
    try:
        d = json.loads(Path(path).read_text())
    except Exception as e:  # noqa: BLE001 - corruption of any kind: one line naming the file
        raise SelectorFileError(f"unreadable ({e.__class__.__name__}: {str(e)[:80]})") from None
    if not isinstance(d, dict) or d.get("format") != STORE_FORMAT:
        raise SelectorFileError("not a convbench selector file")
    check_version(d.get("version"))
    return d


def entries(path: Path) -> list[Selector]:
    """Every selector in the file (SelectorFileError if it is corrupt)."""
    d = _read(path)
    try:
        return [Selector.from_dict(s) for s in d.get("selectors", [])]
    except SelectorFileError:
        raise
    except Exception as e:  # noqa: BLE001
        raise SelectorFileError(f"corrupt selector entry ({e.__class__.__name__})") from None


def write(path: Path, sel: Selector) -> tuple[Path, int]:
    """Add ``sel`` to the file at ``path`` (replacing the entry with its dtype, threads and
    direction); returns (path, revision). A corrupt existing file, or one of an older format, is
    moved aside, not merged; one written by a newer convbench raises :class:`NewerSelectorFile`
    and is left as it is."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    old, revision = [], 0
    if path.is_file():
        try:
            d = _read(path)
            old = [s for s in d.get("selectors", [])
                   if (s.get("dtype"), s.get("threads"), s.get("direction")) != (sel.dtype, sel.threads,
                                                                               sel.direction)]
            revision = int(d.get("revision", 0))
            shutil.copyfile(path, path.with_name(path.stem + ".prev.json"))
        except NewerSelectorFile:
            raise
        except (SelectorFileError, OSError, ValueError):
            path.replace(path.with_name(path.stem + f".old-{time.strftime('%Y%m%d-%H%M%S')}.json"))
    doc = {"format": STORE_FORMAT, "version": FORMAT_VERSION, "revision": revision + 1,
           "fingerprint": sel.fingerprint, "written": time.strftime("%Y-%m-%dT%H:%M:%S"),
           "selectors": old + [sel.to_dict()]}
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(doc))
    tmp.replace(path)
    return path, revision + 1
