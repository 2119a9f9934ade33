"""``backend="auto"`` at run time: which backend a problem goes to, fast.

Resolution order: a fitted selector for this machine, dtype, thread count and direction
(``convbench tune`` writes it to :func:`default_path`; ``CONVBENCH_SELECTOR`` names another
file), else the built-in rules of :mod:`.rules` with one warning per process. Candidates
default to convbench's own backends (peers and the float64 reference excluded);
``candidates=`` widens or narrows them; a backend whose capabilities exclude the problem
is never chosen. Choices are cached per (problem, candidates): a repeated call costs one
dict lookup.

``measure`` mode (:func:`set_mode`), the ``torch.backends.cudnn.benchmark`` analogue: the
first call of each problem times every admissible candidate (prepare and two runs each,
on that call's data) and caches the fastest; :func:`measure_log` reports each first
call's overhead and how many calls repay it against the model's (or rules') choice.
"""

from __future__ import annotations

import os
import time
import warnings
from pathlib import Path

from ..timing import best_times

__all__ = ["choose", "choose_for_problem", "chooser", "default_path", "set_mode", "get_mode", "measure_log", "reset",
           "own_candidates", "current_selector", "instance"]

_MODES = ("model", "measure")
_state = {"mode": "model", "selectors": {}, "warned": False, "cache": {}, "instances": {}, "measured": [],
          "own": {}}


def default_dir() -> Path:
    from ..backends.fft.plans import cache_dir
    return Path(cache_dir()) / "selectors"


def default_path(fp: dict | None = None) -> Path:
    """Where ``convbench tune`` stores this machine's selectors (one file per fingerprint)."""
    from .data import fingerprint, fingerprint_id
    return default_dir() / f"selector-{fingerprint_id(fp or fingerprint())}.json"


def set_mode(mode: str) -> None:
    """``model`` (the fitted selector or the rules; default) or ``measure`` (time the
    candidates on a problem's first call and keep the fastest)."""
    if mode not in _MODES:
        raise ValueError(f"auto mode {mode!r}: accepted: {', '.join(_MODES)}")
    _state["mode"] = mode
    _state["cache"].clear()


def get_mode() -> str:
    return _state["mode"]


def reset() -> None:
    """Forget loaded selectors, cached choices, measurements and the rules warning."""
    _state.update(selectors={}, warned=False, cache={}, measured=[])


def measure_log() -> list[dict]:
    """One dict per problem decided in measure mode: ``problem``, ``chosen``, ``model_choice``,
    ``overhead_s`` (the first call's time beyond one run of the winner), ``saving_s`` (per
    call, against the model's choice) and ``calls_to_repay`` (inf: never)."""
    return list(_state["measured"])


def instance(name: str):
    """One instance of backend ``name`` per process, shared by every ``auto`` decision."""
    inst = _state["instances"].get(name)
    if inst is None:
        from ..backends import get_backend
        inst = _state["instances"][name] = get_backend(name)
    return inst


def own_candidates(kind: str = "conv") -> tuple:
    """convbench's own available backends of ``kind`` (peers and reference oracles excluded)."""
    got = _state["own"].get(kind)
    if got is None:
        from ..backends import backends_with_role
        got = _state["own"][kind] = tuple(backends_with_role("own", kind))
    return got


def _selector_file() -> Path:
    env = os.environ.get("CONVBENCH_SELECTOR")
    return Path(env) if env else default_path()


def current_selector(dtype: str, direction: str):
    """The fitted selector for this machine, ``dtype``, the thread count in force and
    ``direction``, or None (a corrupt file: one warning naming it)."""
    from ..threads import get_threads
    key = (dtype, get_threads(), direction)
    if key in _state["selectors"]:
        return _state["selectors"][key]
    sel = None
    path = _selector_file()
    if path.is_file():
        from .model import SelectorFileError
        from .store import entries
        try:
            for s in entries(path):
                if (s.dtype, s.threads, s.direction) == key:
                    sel = s
        except SelectorFileError as e:
            if not _state["warned"]:
                warnings.warn(f"convbench: selector file {path}: {e}; using the built-in rules", stacklevel=4)
            _state["warned"] = True  # one warning per process
            sel = None
    _state["selectors"][key] = sel
    return sel


def chooser(dtype: str = "float32", direction: str = "fwd") -> dict:
    """Which chooser ``backend="auto"`` uses here for ``dtype``, the thread count in force and
    ``direction``, and the regret it was judged by: ``chooser`` ("selector" or "rules"),
    ``file``, ``kind``, ``created``, ``judged`` (tune's verdicts) and ``note``."""
    from ..threads import get_threads
    from .model import RULES, SelectorFileError
    from .store import entries
    path = _selector_file()
    out = {"chooser": "rules", "file": str(path), "threads": get_threads(), "dtype": dtype, "direction": direction,
           "judged": [], "note": "no selector file for this machine"}
    if not path.is_file():
        return out
    try:
        found = [s for s in entries(path) if (s.dtype, s.threads, s.direction) == (dtype, get_threads(), direction)]
    except SelectorFileError as e:
        return dict(out, note=f"selector file unusable: {e}")
    if not found:
        return dict(out, note=f"no selector for {dtype}, {get_threads()} thread(s), {direction} in the file")
    s = found[-1]
    judged = (s.evaluation or {}).get("judged", [])
    return dict(out, chooser="rules" if s.kind == RULES else "selector", kind=s.kind, created=s.created,
                judged=judged, note="tune kept the built-in rules" if s.kind == RULES else "fitted by convbench tune")


def _warn_rules(path: Path) -> None:
    if not _state["warned"]:
        _state["warned"] = True
        warnings.warn(f"convbench: no fitted selector for this machine ({path}); backend='auto' uses the built-in "
                      f"rules (convbench.select.rules). Fit one with `convbench tune RESULT_DIR...`", stacklevel=4)


def choose_for_problem(p, candidates=None) -> str:
    """The backend ``auto`` runs ``p`` on (see the module docstring). ValueError when no
    candidate admits ``p`` (naming each candidate's reason)."""
    kind = p.kind
    cands = own_candidates(kind) if candidates is None else tuple(candidates)
    key = (p, cands, _state["mode"])
    hit = _state["cache"].get(key)
    if hit is not None:
        return hit
    reasons, admissible = {}, []
    for n in cands:
        r = instance(n).supports(p)
        if r is None:
            admissible.append(n)
        else:
            reasons[n] = r
    if not admissible:
        raise ValueError("backend='auto': no candidate runs this problem (" +
                         "; ".join(f"{n}: {r}" for n, r in reasons.items()) + ")")
    choice = None
    sel = current_selector(p.dtype, p.direction) if kind == "conv" else None
    if sel is not None:
        choice = sel.choose(p, admissible)
    if choice is None:
        if kind == "conv" and sel is None:
            _warn_rules(_selector_file())
        from .rules import FALLBACK_ORDER, builtin_rule
        rule = builtin_rule(p)
        choice = rule if rule in admissible else next((f for f in FALLBACK_ORDER if f in admissible), admissible[0])
    _state["cache"][key] = choice
    return choice


def measure_choice(p, candidates, inputs, const) -> str:
    """Measure mode's first call: time each admissible candidate on this call's data."""
    cands = own_candidates(p.kind) if candidates is None else tuple(candidates)
    key = (p, cands, "measure")
    hit = _state["cache"].get(key)
    if hit is not None:
        return hit
    model_choice = choose_for_problem(p, cands) if _state["mode"] == "measure" else None
    t0 = time.perf_counter()
    runs = {}
    for n in cands:
        b = instance(n)
        if b.supports(p) is not None:
            continue
        try:
            plan = b.prepare(p, const)
            b.run(plan, *inputs)  # first run: JIT compilation, lazy plans
            runs[n] = best_times([lambda b=b, plan=plan: b.run(plan, *inputs)], passes=1, min_calls=2,
                                 min_seconds=0)[0]
        except Exception:  # noqa: BLE001 - a candidate that fails is not chosen
            continue
    total = time.perf_counter() - t0
    chosen = min(runs, key=runs.get)
    saving = runs.get(model_choice, runs[chosen]) - runs[chosen]
    overhead = total - runs[chosen]
    _state["measured"].append(dict(problem=p.label, chosen=chosen, model_choice=model_choice, overhead_s=overhead,
                                   saving_s=saving, calls_to_repay=(overhead / saving) if saving > 0 else float("inf"),
                                   times=runs))
    _state["cache"][key] = chosen
    return chosen


def choose(x, w=None, *, stride=1, padding=0, dilation=1, groups=1, direction="fwd", candidates=None,
           dtype=None) -> str:
    """The backend name ``backend="auto"`` would use, as scipy's ``choose_conv_method`` does.

    Parameters
    ----------
    x, w : ndarray or shape tuple
        Input ``(mb, ic, ih, iw)`` and weight ``(oc, ic/groups, kh, kw)`` (arrays or shapes).
        For ``direction="bwd_d"`` they are still the *forward* convolution's input and weight.
    stride, padding, dilation, groups
        As in :func:`convbench.conv2d`.
    direction : {"fwd", "bwd_d", "bwd_w"}
    candidates : list of str, optional
        Backends to choose from (default: convbench's own).
    dtype : str, optional
        For shapes (default float32; arrays give theirs).
    """
    from ..problem import ConvProblem
    xs = tuple(getattr(x, "shape", x))
    ws = tuple(getattr(w, "shape", w))
    dt = str(getattr(x, "dtype", dtype or "float32"))
    if direction not in ("fwd", "bwd_d", "bwd_w"):
        raise ValueError(f"direction={direction!r}: accepted: fwd, bwd_d, bwd_w")
    p = ConvProblem.from_torch_args(xs, ws, stride=stride, padding=padding, dilation=dilation, groups=groups,
                                    dtype=dt)
    if direction != "fwd":
        p = p.replace(direction=direction)
    return choose_for_problem(p, candidates)




#: the public name (``convbench.choose_backend``)
choose_backend = choose
