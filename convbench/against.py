"""``convbench check --against REF``: a commit and the working tree measured side by side.

asv's ``continuous`` answer to a gate that only works on the machine its baseline came from: both
sides are measured on the same machine, in the same job, interleaved, so the machine, its BLAS
kernel set and its neighbours are the same for both.

* :func:`prepare_trees` resolves REF (``merge-base``: the merge base with the main branch), refuses
  a dirty working tree (unless allowed, and then recorded) and a change of the declared
  dependencies (unless allowed), and puts REF in a temporary ``git worktree``.
* :class:`Worker`: one long-lived process per tree (:mod:`convbench.check_worker`), started from
  the same virtualenv with the tree first on the import path. It prepares and verifies each
  backend against the float64 reference as a sweep does, then times one round when asked. A
  worker that dies or stops answering raises :class:`WorkerFailed` naming its tree; the others
  are killed, never waited for.
* :func:`measure_problem`: per problem, every side set up, then rounds alternated between the
  sides (the order rotated each round), so drift and neighbours hit both alike.
* The A/A floor: on a sample of problems a second process of the base tree (``base'``) is timed
  in the same rotation; the largest base'/base ratio (either way) of those cells, times a margin,
  is this run's own noise floor. A cell is a regression when head/base exceeds both
  ``max(factor, floor)`` and the Mann-Whitney U test at ``alpha``
  (:func:`convbench.comparison.compare_runs`); flagged cells are measured again and must stay
  flagged. Improvements are reported the same way.
* :func:`load_accepted`: the committed record of intended slowdowns (cells, factor, reason,
  optionally the base commit it was reviewed against). A matching regression within its factor is
  reported as accepted instead of failing the gate; the gate itself is never switched off.
"""

from __future__ import annotations

import fnmatch
import json
import os
import queue
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import tomllib
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["AgainstError", "WorkerFailed", "Worker", "Accepted", "load_accepted", "prepare_trees", "deps_drift",
           "measure_problem", "aa_floor", "ACCEPTED_FILE", "SIDES"]

#: the committed record of reviewed, intended slowdowns (relative to the repository root)
ACCEPTED_FILE = "benchmarks/accepted-slowdowns.toml"
#: the sides of a check: the base commit, the working tree, and the base's second process (A/A)
SIDES = ("base", "head", "base'")
#: seconds a worker may take to answer: setting up a problem (JIT, FFTW plans) / one round
SETUP_TIMEOUT, ROUND_TIMEOUT = 900.0, 120.0


class AgainstError(ValueError):
    """Bad input to a side-by-side check (a REF that does not exist, a dirty tree, drifted
    dependencies, a malformed accepted-slowdowns record); the CLI's exit 2."""


class WorkerFailed(RuntimeError):
    """A tree's worker died, failed a request or stopped answering."""

    def __init__(self, side: str, tree: str, reason: str):
        super().__init__(f"the {side} tree's worker ({tree}) failed: {reason}")
        self.side, self.tree, self.reason = side, tree, reason


# ---------------------------------------------------------------------------- git
def _git(repo: Path, *args: str, check: bool = True) -> str:
    r = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, timeout=120)
    if check and r.returncode != 0:
        msg = (r.stderr or r.stdout).strip().splitlines()
        raise AgainstError(f"git {' '.join(args)}: {msg[-1] if msg else 'failed'}")
    return r.stdout.strip()


def repo_root(start: Path | None = None) -> Path:
    """The top of the git checkout holding ``start`` (default: the current directory)."""
    r = subprocess.run(["git", "-C", str(start or Path.cwd()), "rev-parse", "--show-toplevel"], capture_output=True,
                       text=True, timeout=60)
    if r.returncode != 0:
        raise AgainstError(f"--against needs a git checkout; {start or Path.cwd()} is not inside one")
    return Path(r.stdout.strip())


def resolve_ref(repo: Path, ref: str) -> str:
    """The commit ``ref`` names; ``merge-base``: the merge base of HEAD with the main branch
    (``main``, ``master`` or ``origin/HEAD``, the first that exists)."""
    if ref == "merge-base":
        for main in ("main", "master", "origin/HEAD", "origin/main", "origin/master"):
            if subprocess.run(["git", "-C", str(repo), "rev-parse", "--verify", "-q", main + "^{commit}"],
                              capture_output=True, timeout=60).returncode == 0:
                return _git(repo, "merge-base", "HEAD", main)
        raise AgainstError("--against merge-base: no main branch (main, master, origin/HEAD) to take the merge base "
                           "with; give a REF such as HEAD~1")
    r = subprocess.run(["git", "-C", str(repo), "rev-parse", "--verify", "-q", ref + "^{commit}"],
                       capture_output=True, text=True, timeout=60)
    if r.returncode != 0 or not r.stdout.strip():
        raise AgainstError(f"--against {ref!r}: no such commit in {repo} (a branch, tag, sha or HEAD~N is accepted; "
                           "a shallow clone lacks older commits)")
    return r.stdout.strip()


def dirty_paths(repo: Path) -> list[str]:
    """Tracked files changed and untracked files not ignored (``git status --porcelain``)."""
    r = subprocess.run(["git", "-C", str(repo), "status", "--porcelain", "--untracked-files=normal"],
                       capture_output=True, text=True, timeout=120)
    if r.returncode != 0:
        raise AgainstError(f"git status: {r.stderr.strip() or 'failed'}")
    return [line[3:] for line in r.stdout.splitlines() if line.strip()]


def _declared(text: str | None) -> dict:
    if text is None:
        return {"pyproject.toml": "absent"}
    try:
        proj = tomllib.loads(text).get("project", {})
    except tomllib.TOMLDecodeError as e:
        return {"pyproject.toml": f"unreadable ({e})"}
    opt = proj.get("optional-dependencies") or {}
    return {"requires-python": proj.get("requires-python"), "dependencies": sorted(proj.get("dependencies") or []),
            **{f"[{k}]": sorted(v) for k, v in sorted(opt.items())}}


def deps_drift(base_pyproject: str | None, head_pyproject: str | None) -> list[str]:
    """What differs between two ``pyproject.toml`` texts' declared dependencies, one line each."""
    a, b = _declared(base_pyproject), _declared(head_pyproject)
    out = []
    for k in sorted(set(a) | set(b)):
        if a.get(k) != b.get(k):
            if isinstance(a.get(k), list) and isinstance(b.get(k), list):
                gone, new = sorted(set(a[k]) - set(b[k])), sorted(set(b[k]) - set(a[k]))
                out.append(f"{k}: " + "; ".join(([f"base has {', '.join(gone)}"] if gone else [])
                                               + ([f"head has {', '.join(new)}"] if new else [])))
            else:
                out.append(f"{k}: base {a.get(k)!r}, head {b.get(k)!r}")
    return out


@dataclass
class Trees:
    """The two sides of a check and what was allowed to get there."""

    repo: Path
    base_commit: str
    base_ref: str
    base_path: Path
    head_commit: str
    dirty: list = field(default_factory=list)
    drift: list = field(default_factory=list)

    @property
    def base_label(self) -> str:
        return f"{self.base_ref} = {self.base_commit[:10]}"

    @property
    def head_label(self) -> str:
        return f"working tree on {self.head_commit[:10]}" + (" (uncommitted changes)" if self.dirty else "")


@contextmanager
def prepare_trees(ref: str, *, allow_dirty: bool = False, allow_deps_drift: bool = False, repo: Path | None = None):
    """Resolve and check out the base side; yields :class:`Trees`; the worktree is removed after.

    Raises
    ------
    AgainstError
        REF does not exist; the working tree is dirty and ``allow_dirty`` is off; the declared
        dependencies differ and ``allow_deps_drift`` is off.
    """
    repo = repo_root(repo)
    base = resolve_ref(repo, ref)
    head = _git(repo, "rev-parse", "HEAD")
    dirty = dirty_paths(repo)
    if dirty and not allow_dirty:
        shown = ", ".join(dirty[:4]) + (f" and {len(dirty) - 4} more" if len(dirty) > 4 else "")
        raise AgainstError(f"the working tree has uncommitted changes ({shown}); commit them, or pass --allow-dirty "
                           "to measure them as the head side (the report records it)")
    try:
        base_py = _git(repo, "show", f"{base}:pyproject.toml")
    except AgainstError:
        base_py = None
    head_py = (repo / "pyproject.toml").read_text() if (repo / "pyproject.toml").is_file() else None
    drift = deps_drift(base_py, head_py)
    if drift and not allow_deps_drift:
        raise AgainstError(f"the declared dependencies differ between {ref} and the working tree ({' | '.join(drift)}); "
                           "both sides run from this virtualenv, so the base would run against the head's packages: "
                           "pass --allow-deps-drift to measure anyway (the report records it)")
    tmp = Path(tempfile.mkdtemp(prefix="convbench-base-"))
    path = tmp / "tree"
    _git(repo, "worktree", "add", "--detach", "--quiet", str(path), base)
    try:
        yield Trees(repo, base, ref, path, head, dirty, drift)
    finally:
        subprocess.run(["git", "-C", str(repo), "worktree", "remove", "--force", str(path)], capture_output=True,
                       timeout=120)
        shutil.rmtree(tmp, ignore_errors=True)
        subprocess.run(["git", "-C", str(repo), "worktree", "prune"], capture_output=True, timeout=120)


# ---------------------------------------------------------------------------- workers
class Worker:
    """One tree's measuring process (see :mod:`convbench.check_worker`)."""

    def __init__(self, side: str, tree: Path, label: str, env: dict, log: Path):
        self.side, self.tree, self.label, self.log = side, Path(tree), label, Path(log)
        src = (Path(__file__).with_name("check_worker.py")).read_text()
        env = dict(env, PYTHONPATH=os.pathsep.join([str(self.tree)] + [p for p in [env.get("PYTHONPATH")] if p]))
        self._log = open(self.log, "w")
        self.proc = subprocess.Popen([sys.executable, "-c", src], cwd=str(self.tree), env=env, stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=self._log, text=True, bufsize=1)
        self._q: queue.Queue = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self._q.put(line)
        self._q.put(None)

    def _fail(self, reason: str) -> WorkerFailed:
        return WorkerFailed(self.side, self.label, reason)

    def _last_log(self) -> str:
        try:
            lines = [ln for ln in self.log.read_text(errors="replace").splitlines() if ln.strip()]
        except OSError:
            return ""
        return lines[-1].strip()[:300] if lines else ""

    def send(self, op: str, **req) -> None:
        try:
            self.proc.stdin.write(json.dumps(dict(req, op=op)) + "\n")
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError, ValueError):
            raise self._fail(f"the process exited (code {self.proc.poll()}); {self._last_log()} (log: {self.log})") \
                from None

    def receive(self, timeout: float) -> dict:
        try:
            line = self._q.get(timeout=timeout)
        except queue.Empty:
            raise self._fail(f"no answer within {timeout:.0f} s (log: {self.log})") from None
        if line is None:
            self.proc.wait(timeout=10)
            raise self._fail(f"the process exited (code {self.proc.returncode}); {self._last_log()} (log: {self.log})")
        rep = json.loads(line)
        if "error" in rep:
            raise self._fail(f"{rep['error']} (log: {self.log})")
        return rep

    def call(self, op: str, timeout: float = SETUP_TIMEOUT, **req) -> dict:
        self.send(op, **req)
        return self.receive(timeout)

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                self.send("quit")
                self.proc.wait(timeout=10)
            except (WorkerFailed, subprocess.TimeoutExpired):
                pass
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
        self._log.close()


def call_all(workers: list[Worker], op: str, timeout: float = SETUP_TIMEOUT, **req) -> list[dict]:
    """The same request to several workers at once (they work in parallel); their replies."""
    for w in workers:
        w.send(op, **req)
    return [w.receive(timeout) for w in workers]


# ---------------------------------------------------------------------------- measuring
@dataclass
class SideCell:
    """One backend on one problem on one side: its verification and its rounds."""

    status: str
    reason: str = ""
    times: list = field(default_factory=list)
    info: dict = field(default_factory=dict)


def measure_problem(workers: dict, problem: str, backends: list[str], *, rounds: int, min_rounds: int,
                    max_seconds: float) -> dict:
    """Set ``problem`` up on every side of ``workers`` (side -> :class:`Worker`), then time
    rounds alternating between the sides, rotated each round: ``rounds`` of them, fewer (not
    below ``min_rounds``) once ``max_seconds`` passed. Returns side -> backend -> :class:`SideCell`."""
    out: dict = {}
    for side, w in workers.items():
        res = w.call("setup", problem=problem, backends=backends)["results"]
        out[side] = {b: SideCell(r["status"], r.get("reason") or "", [], r) for b, r in res.items()}
    sides = list(workers)
    t0 = time.perf_counter()
    try:
        for k in range(rounds):
            if k >= min_rounds and time.perf_counter() - t0 > max_seconds:
                break
            j = k % len(sides)
            for side in sides[j:] + sides[:j]:
                rep = workers[side].call("round", timeout=ROUND_TIMEOUT)
                for b, t in rep["times"].items():
                    out[side][b].times.append(t)
                for b, reason in rep["errors"].items():
                    out[side][b].status, out[side][b].reason = "failed", reason
    finally:
        for w in workers.values():
            if w.proc.poll() is None:
                w.send("drop")
                w.receive(ROUND_TIMEOUT)
    return out


def aa_floor(pairs: list[tuple[str, list, list]], margin: float, alpha: float) -> dict:
    """The run's A/A floors from (backend, base rounds, base' rounds) of the same cells.

    Two processes of the same code can differ systematically (memory placement and page
    alignment of a large operator, code layout): such an offset is what the U test alone would
    call a regression, so it sets the floor. A backend's floor is the largest ratio of medians,
    either way, among its pairs the U test also finds different at ``alpha``, times ``margin``
    (1.0 when none differs): offsets are a property of a backend's memory behaviour (measured
    here: the dense operator 1.34x between two processes, the compute-bound backends within
    1.1x), so one backend's offset does not blunt the gate for the others. A cell whose medians
    differ only within its own scatter is the U test's business, not the floor's.

    Returns ``floors`` (backend -> floor), ``floor`` (the largest), ``largest_significant``,
    ``largest`` (any pair) and ``cells``.
    """
    import numpy as np

    from .stats import mann_whitney
    worst, n, sig = 1.0, 0, {}
    for backend, a, b in pairs:
        if len(a) > 1 and len(b) > 1:
            n += 1
            r = float(np.median(b) / np.median(a))
            r = max(r, 1 / r)
            worst = max(worst, r)
            sig.setdefault(backend, 1.0)
            if mann_whitney(b, a)[1] < alpha:
                sig[backend] = max(sig[backend], r)
    floors = {k: (v * margin if v > 1 else 1.0) for k, v in sig.items()}
    return {"floors": floors, "floor": max(floors.values(), default=1.0),
            "largest_significant": max(sig.values(), default=1.0), "largest": worst, "cells": n}


# ---------------------------------------------------------------------------- accepted slowdowns
@dataclass(frozen=True)
class Accepted:
    """A reviewed, intended slowdown: ``cells`` (``problem/backend`` patterns, ``*`` as a
    wildcard), ``factor`` (the largest ratio accepted), ``reason``, and optionally ``base``
    (the commit it was measured against; then it applies only to checks against that commit)."""

    cells: tuple
    factor: float
    reason: str
    base: str | None = None

    def covers(self, problem: str, backend: str, base_commit: str) -> bool:
        if self.base and not base_commit.startswith(self.base):
            return False
        return any(fnmatch.fnmatchcase(f"{problem}/{backend}", pat) for pat in self.cells)


def load_accepted(path: Path) -> list[Accepted]:
    """The records of ``path`` (TOML, ``[[slowdown]]`` tables); none when the file is absent.

    Raises
    ------
    AgainstError
        Unreadable TOML, or a record without cells, a factor above 1 or a reason.
    """
    path = Path(path)
    if not path.is_file():
        return []
    try:
        data = tomllib.loads(path.read_text())
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as e:
        raise AgainstError(f"{path}: not a readable TOML file ({e})") from None
    out = []
    for i, rec in enumerate(data.get("slowdown") or [], 1):
        where = f"{path}: [[slowdown]] #{i}"
        if not isinstance(rec, dict):
            raise AgainstError(f"{where}: expected a table with cells, factor and reason")
        unknown = sorted(set(rec) - {"cells", "factor", "reason", "base"})
        if unknown:
            raise AgainstError(f"{where}: unknown key(s) {', '.join(unknown)}; accepted: cells, factor, reason, base")
        cells = rec.get("cells")
        if isinstance(cells, str):
            cells = [cells]
        if not isinstance(cells, list) or not cells or not all(isinstance(c, str) and "/" in c for c in cells):
            raise AgainstError(f"{where}: cells must be a list of 'problem/backend' patterns")
        factor = rec.get("factor")
        if not isinstance(factor, (int, float)) or isinstance(factor, bool) or not factor > 1:
            raise AgainstError(f"{where}: factor must be a number above 1 (the largest slowdown accepted)")
        reason = rec.get("reason")
        if not isinstance(reason, str) or not reason.strip():
            raise AgainstError(f"{where}: a reason is required (why the slowdown is intended)")
        base = rec.get("base")
        if base is not None and not (isinstance(base, str) and len(base) >= 7):
            raise AgainstError(f"{where}: base must be a commit sha (7 characters or more)")
        out.append(Accepted(tuple(cells), float(factor), reason.strip(), base))
    return out
