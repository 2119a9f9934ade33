"""The measuring side of ``convbench check --against``: one long-lived process per source tree.

The controller (:mod:`convbench.against`) starts this file's text as ``python -c`` with a source
tree as the working directory and on ``PYTHONPATH``, so ``import convbench`` is *that tree's*
package (the hello reply names the file it came from, and the controller refuses a worker that
imported another tree). It speaks JSON lines on stdin/stdout; anything a library prints goes to
stderr, which the controller keeps as the tree's log.

It uses only the long-standing internals a sweep is made of (``parse_problem``, ``SweepConfig``,
``runner.admit``/``prepare_and_verify``/``timed_call``, ``data.make_case``/``reference_case``,
``timing.Bench``), so it can drive an older commit: every backend is prepared and verified against
the float64 reference exactly as that tree's own sweep does, then timed one round at a time when
the controller says so.

Requests (``op``) and replies:

``hello``      -> ``{"file", "version", "backends": {name: role}}``
``configure``  ``{"backends", "settings", "memory_limit", "cell_budget", "round_time", "threads",
               "inject"}`` -> ``{"built": [...], "failed": {name: reason}}``
``warm``       ``{"problems"}`` -> ``{"seconds"}`` (prepare and verify each once: JIT, plans)
``setup``      ``{"problem", "backends"}`` -> ``{"results": {name: {"status", "reason", ...}}}``
``round``      -> ``{"times": {name: seconds per call}, "errors": {name: reason}}``
``drop``       -> ``{}``; ``quit`` -> ``{}`` and exit.
"""

import json
import os
import sys
import time
import traceback

STATE: dict = {}


def _hello(req):
    import convbench
    from convbench.backends import available_backends, backend_role
    from threadpoolctl import threadpool_info
    names = available_backends(None)
    blas = sorted({f"{i.get('internal_api')} {i.get('version')} ({i.get('architecture')})" for i in threadpool_info()
                   if i.get("user_api") == "blas"})
    return {"blas": blas, "file": os.path.abspath(convbench.__file__), "version": getattr(convbench, "__version__", "?"),
            "backends": {n: backend_role(n) for n in names}}


def _configure(req):
    from convbench import threads
    from convbench.config import SweepConfig
    from convbench.runner import Context
    cfg = SweepConfig(backends=tuple(req["backends"]), threads=(int(req["threads"]),),
                      memory_limit=req.get("memory_limit"), cell_budget=float(req["cell_budget"]),
                      round_time=float(req["round_time"]), inject_slowdown=dict(req.get("inject") or {}),
                      sentinel=False, phases=False, **dict(req.get("settings") or {}))
    ctx = Context.build(cfg)
    STATE["ctx"] = ctx
    threads.set_threads(int(req["threads"]))
    return {"built": [n for n, b in ctx.instances.items() if not isinstance(b, Exception)],
            "failed": {n: f"{b.__class__.__name__}: {b}"[:300] for n, b in ctx.instances.items()
                       if isinstance(b, Exception)}}


def _setup(req):
    from convbench.cells import Cell
    from convbench.data import make_case, output_bound, reference_case
    from convbench.problem import parse_problem
    from convbench.runner import admit, prepare_and_verify, timed_call
    from convbench.timing import Bench
    _drop(None)
    ctx = STATE["ctx"]
    p = parse_problem(req["problem"])
    cell = Cell(p, threads=ctx.config.threads[0])
    names = [n for n in req.get("backends") or ctx.config.backends if n in ctx.instances]
    out = {}
    for n, inst in ctx.instances.items():
        if n in names and isinstance(inst, Exception):
            out[n] = {"status": "failed", "reason": f"building the backend: {inst.__class__.__name__}: {inst}"[:300]}
    names = [n for n in names if n not in out]
    admitted, refused = admit(cell, names, ctx.instances, ctx.limit, None)
    for r in refused:
        out[r.backend] = {"status": r.status, "reason": r.reason}
    benches, keep = {}, []
    if admitted:
        case = make_case(p, 1.0)
        ref, bound = reference_case(p, case), output_bound(p, case)
        keep.append(case)
        for adm in admitted:
            plan = prepare_and_verify(cell, adm, case, ref, bound, ctx)
            res = adm.result
            row = {"status": res.status, "reason": res.reason, "prepare_s": res.prepare_s,
                   "first_run_s": res.first_run_s, "flops": res.flops_executed,
                   "max_abs_err": (res.check or {}).get("max_abs_err")}
            out[res.backend] = row
            if plan is None:
                continue
            fn = timed_call(adm.backend.run, [(plan, case.inputs)], ctx.config.inject_slowdown.get(res.backend))
            bench = Bench(fn, ctx.config.timing)
            try:
                row["iterations"] = bench.prime(res.first_run_s)
            except Exception as e:  # noqa: BLE001 - this backend's failure only
                row.update(status="failed", reason=f"during warm-up: {e.__class__.__name__}: {e}"[:300])
                continue
            benches[res.backend] = bench
            keep.append(plan)
    STATE.update(benches=benches, keep=keep, turn=0)
    return {"results": out}


def _round(req):
    from convbench import threads
    threads.set_threads(STATE["ctx"].config.threads[0])
    benches = STATE.get("benches") or {}
    names = [n for n in benches if n not in STATE.setdefault("dead", set())]
    k = STATE["turn"] % len(names) if names else 0
    STATE["turn"] += 1
    times, errors = {}, {}
    for n in names[k:] + names[:k]:  # rotated, as a sweep's interleaving does
        try:
            times[n] = benches[n].round()
        except Exception as e:  # noqa: BLE001
            errors[n] = f"during timing: {e.__class__.__name__}: {e}"[:300]
            STATE["dead"].add(n)
    return {"times": times, "errors": errors}


def _drop(req):
    STATE.pop("benches", None)
    STATE.pop("keep", None)
    STATE["dead"] = set()
    return {}


def _warm(req):
    t0 = time.perf_counter()
    for label in req["problems"]:
        _setup({"problem": label})
        _drop(None)
    return {"seconds": time.perf_counter() - t0}


OPS = {"hello": _hello, "configure": _configure, "setup": _setup, "round": _round, "drop": _drop, "warm": _warm,
       "quit": lambda req: {}}


def main() -> None:
    proto = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)  # a library's print must not corrupt the protocol
    sys.stdout = sys.stderr
    for line in sys.stdin:
        req = json.loads(line)
        try:
            rep = OPS[req["op"]](req)
        except BaseException as e:  # noqa: BLE001 - reported to the controller with the tree's name
            traceback.print_exc()
            rep = {"error": f"{e.__class__.__name__}: {e}"[:500]}
        proto.write(json.dumps(rep) + "\n")
        if req["op"] == "quit":
            break


if __name__ == "__main__":
    main()
