"""``convbench study``: the founding texts' experiment, run and measured.

:func:`run_study` trains the five models of :mod:`.models` on the canvas digits of
:mod:`.digits` with convbench's own kernels, measures what the report states, and writes
the machine-readable tables into ``OUT/study/`` (the report is :mod:`.report`'s job):

``models.csv``        one row per model: params, FLOPs, accuracy at every shift, timings
``layers.csv``        one row per layer: shape, params, FLOPs by direction, receptive field
``equivariance.csv``  relative difference of f(shift(x)) and shift(f(x)) on the interior
``accuracy_vs_size.csv``  test accuracy against the number of training images
``seeds.csv``         every model's accuracy at two seeds, side by side
``inference.csv``     inference time per image, per model and conv backend
``insitu.csv``        a CNN forward pass against the sum of its layers timed alone by the runner
``training.csv``      loss and wall time per epoch
``engine.csv``        the backend chosen per model, the measured training steps, fallbacks
``meta.json``         settings, machine, versions, what was chosen and why
"""

from __future__ import annotations

import csv
import json
import math
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

from .digits import DIGIT, load_split, max_shift_for, place, shift_image
from .layers import Conv2d, Dense, Engine
from .models import C1, C2, CLASSES, MODELS, build
from ..backends import DEFAULTS, QUICK
from ..timing import median_times
from .train import TrainConfig, shift_accuracy, train

__all__ = ["StudyConfig", "run_study", "own_conv_backends", "check_config"]


@dataclass
class StudyConfig:
    """Everything the study's result depends on (stored in ``meta.json``)."""

    models: tuple = MODELS
    epochs: int = 12
    batch: int = 32
    lr: float = 0.05
    momentum: float = 0.9
    seed: int = 0
    canvas: int = 24
    jitter: int = 4  #: the augmented arm's training offsets, per axis (0: no augmented arm)
    max_shift: int = 4
    backend: str = "auto"
    pool_backend: str = DEFAULTS["pool"]
    threads: int = 1
    sizes: tuple = (50, 100, 200, 400, 0)  #: training-set sizes for the prior curves (0: all)
    quick: bool = False
    test_limit: int = 0  #: use only this many test images (0: all); --quick sets it
    infer_batch: int = 128
    timing_rounds: int = 5
    #: conv backends measured for ``auto`` and the inference table (empty: every own backend)
    candidates: tuple = ()

    @classmethod
    def quick_config(cls, **kw) -> "StudyConfig":
        base = dict(epochs=2, max_shift=2, jitter=2, sizes=(50, 0), test_limit=120, infer_batch=32, timing_rounds=2,
                    quick=True, candidates=QUICK)
        base.update(kw)
        return cls(**base)


def own_conv_backends() -> list[str]:
    """convbench's own convolution backends available here (not the peers, the float64
    oracle or ``auto``, which is a choice among them)."""
    from ..backends import backends_with_role
    return backends_with_role("own", "conv")


def _candidates(cfg: StudyConfig) -> list[str]:
    if cfg.candidates:
        from ..backends import unavailable_reason
        return [b for b in cfg.candidates if unavailable_reason(b) is None]
    return own_conv_backends()


def _named_backend(name: str, kind: str, flag: str, extra: str = ""):
    """The backend instance for ``name`` (one of ``kind``), or ValueError listing the accepted
    (imports every backend only on that error path)."""
    from ..backends import available_backends, get_backend, registered_backends, unavailable_reason
    if name not in registered_backends(kind) or unavailable_reason(name) is not None:
        raise ValueError(f"{flag} {name!r}: accepted: {extra}{', '.join(available_backends(kind))}")
    return get_backend(name)


#: the most epochs a study trains: the default 12 take about 3 minutes here, so this bound is
#: hours, not the years a mistyped --epochs 1000000000 would ask for
MAX_EPOCHS = 500
#: images in scikit-learn's digits (what every array of the study is sized by)
N_DIGITS = 1797


def footprint(cfg: StudyConfig) -> dict:
    """The largest arrays the study holds at once, in bytes, from its options alone (nothing is
    built): every digit placed on the canvas (the training set and the test set, float32); per
    model its parameters with their gradients and momentum (3 copies) and the activations,
    column buffers and transposed-convolution outputs of one batch (the locally connected
    model's per-position filter banks are the largest), with the models alive two at a time (a
    trained model and the next one); and the equivariance table's dense layer, which maps the
    canvas to the first conv layer's whole output: ``C1 * n^2`` weights, drawn in float64 and
    kept in float32 (12 bytes each at the peak; 8.2 GB at a 96-pixel canvas, measured 7.6 GB)."""
    n = cfg.canvas * cfg.canvas
    b = max(cfg.batch, cfg.infer_batch)
    f4 = 4
    data = N_DIGITS * n * f4 * 2  # placed once, and a shifted copy for the accuracy sweep
    per_model = {
        # lc1: one (9 x C1) filter bank per pixel; lc2: one (9 C1 x C2) per pixel after a 2x2 pool
        "locally_connected": 3 * f4 * (n * 9 * C1 + (n // 4) * 9 * C1 * C2) + f4 * b * (n * 9 + (n // 4) * 9 * C1),
        # activations of conv1/relu/pool/conv2 and the unfolded columns of conv2 (im2col)
        "cnn": f4 * b * (3 * C1 * n + 2 * C2 * n // 4 + 9 * C1 * n // 4) + 3 * f4 * C2 * n // 16 * CLASSES,
    }
    models = max((per_model["locally_connected" if m == "locally_connected" else "cnn"] for m in cfg.models),
                 default=0)
    dense = 12 * C1 * n * n + 2 * 3 * 200 * C1 * n * f4  # and its outputs on 200 test digits, shifted and not
    return {"data": data, "models": 2 * models, "dense": dense, "total": data + 2 * models + dense}


def check_config(cfg: StudyConfig) -> None:
    """ValueError (one line, naming what is accepted) for a configuration that cannot run."""
    if cfg.canvas < DIGIT:
        raise ValueError(f"--canvas {cfg.canvas}: smaller than the {DIGIT}x{DIGIT} digit; accepted: {DIGIT} or more")
    if cfg.epochs < 0 or cfg.epochs > MAX_EPOCHS:
        raise ValueError(f"--epochs {cfg.epochs}: accepted 0 (no training) to {MAX_EPOCHS} (the default 12 take "
                         f"about 3 minutes on a 2-core machine; {MAX_EPOCHS} take hours)")
    if cfg.batch < 1:
        raise ValueError(f"--batch {cfg.batch}: must be a positive number of images")
    _check_footprint(cfg)
    if cfg.max_shift < 0:
        raise ValueError(f"--max-shift {cfg.max_shift}: must be 0 or more")
    if cfg.jitter < 0 or cfg.jitter > max_shift_for(cfg.canvas):
        raise ValueError(f"--jitter {cfg.jitter}: accepted 0..{max_shift_for(cfg.canvas)} on a {cfg.canvas}-pixel "
                         f"canvas (the digit must stay on it)")
    _named_backend(cfg.pool_backend, "pool", "--pool-backend")
    if cfg.backend != "auto":
        b = _named_backend(cfg.backend, "conv", "--backend", "auto, ")
        for m in cfg.models:
            model = build(m, cfg.canvas, 0, Engine(conv=cfg.backend))
            s = model.in_shape
            for layer in model.layers:
                if isinstance(layer, Conv2d):
                    reason = b.supports(layer.problem((cfg.batch,) + s))
                    if reason is not None:
                        raise ValueError(f"--backend {cfg.backend}: cannot run {m}'s {layer.name} "
                                         f"({layer.describe()}): {reason}")
                s = layer.out_shape(s)


def _check_footprint(cfg: StudyConfig) -> None:
    """ValueError when :func:`footprint` is over the memory limit (the runner's, settable with
    ``CONVBENCH_MEMORY_LIMIT``), naming the bytes and the largest canvas that fits."""
    from ..format import fmt_bytes
    from ..runner import cell_memory_limit
    limit, src = cell_memory_limit()
    need = footprint(cfg)
    if need["total"] <= limit:
        return
    lo, hi = DIGIT, cfg.canvas
    while lo < hi:  # the largest canvas that fits, all else equal
        mid = (lo + hi + 1) // 2
        lo, hi = (mid, hi) if footprint(replace(cfg, canvas=mid))["total"] <= limit else (lo, mid - 1)
    fits = footprint(replace(cfg, canvas=lo))["total"] <= limit
    raise ValueError(f"--canvas {cfg.canvas} --batch {cfg.batch}: the study would hold about "
                     f"{fmt_bytes(need['total'])} (digits on the canvas {fmt_bytes(need['data'])}, models "
                     f"{fmt_bytes(need['models'])}, the equivariance table's dense layer {fmt_bytes(need['dense'])}), "
                     f"over the memory limit of {fmt_bytes(limit)} ({src}); "
                     + (f"accepted here: --canvas {lo} or less" if fits else "choose a smaller --batch"))


# ------------------------------------------------------------------------ helpers
def _write_csv(path: Path, rows: list[dict]) -> None:
    if not rows:
        path.write_text("")
        return
    cols = list(dict.fromkeys(k for r in rows for k in r))
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=cols)
        w.writeheader()
        w.writerows(rows)


def _first_call(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def _usable(model, backend: str, batch: int) -> str | None:
    """Why ``backend`` cannot run ``model``'s forward convolutions (None: it can)."""
    from ..backends import get_backend
    b = get_backend(backend)
    s = model.in_shape
    for layer in model.layers:
        if isinstance(layer, Conv2d):
            reason = b.supports(layer.problem((batch,) + s))
            if reason is not None:
                return f"{layer.name}: {reason}"
        s = layer.out_shape(s)
    return None


# --------------------------------------------------------------------- the parts
def choose_engines(cfg: StudyConfig, split, log) -> tuple[dict, list[dict]]:
    """The conv backend per model: ``cfg.backend``, or (``auto``) the own backend with the
    fastest measured training step on that model (forward and backward, one batch,
    interleaved), among those that run its forward convolutions."""
    engines, rows = {}, []
    x = place(split.train_x[:cfg.batch], cfg.canvas)
    y = split.train_y[:cfg.batch]
    for m in cfg.models:
        probe = build(m, cfg.canvas, cfg.seed)
        if not probe.conv_layers():
            engines[m] = Engine(conv=DEFAULTS["conv"], pool=cfg.pool_backend)
            rows.append(dict(model=m, backend="(none: no convolution)", chosen=True, step_s="", first_call_s="",
                             note="dense/locally connected layers are BLAS GEMMs"))
            continue
        cands = [cfg.backend] if cfg.backend != "auto" else _candidates(cfg)
        fns, first, skipped = {}, {}, {}
        for be in cands:
            why = _usable(probe, be, cfg.batch)
            if why is not None:
                skipped[be] = why
                continue
            model = build(m, cfg.canvas, cfg.seed, Engine(conv=be, pool=cfg.pool_backend))
            fn = (lambda model=model: model.loss_and_grad(x, y))
            first[be] = _first_call(fn)  # JIT compilation, plans: timed apart
            fns[be] = fn
        times = median_times(fns, 3 if cfg.quick else cfg.timing_rounds) if len(fns) > 1 else \
            {be: median_times(fns, 2)[be] for be in fns}
        best = min(times, key=times.get)
        engines[m] = Engine(conv=best, pool=cfg.pool_backend)
        for be in cands:
            rows.append(dict(model=m, backend=be, chosen=be == best, step_s=times.get(be, ""),
                             first_call_s=first.get(be, ""), note=skipped.get(be, "")))
        log(f"study: {m} trains on {best} ({times[best] * 1e3:.2f} ms per step of {cfg.batch} images"
            + (f"; {len(times)} backends measured)" if len(times) > 1 else ")"))
    return engines, rows


def _warm(model, x, y) -> float:
    """One untimed step on a copy (JIT, plans), so that epochs time the work only."""
    return _first_call(lambda: model.loss_and_grad(x, y))


def train_models(cfg: StudyConfig, split, engines: dict, seed: int, log, *, jitter: int = 0,
                 curves: bool = False) -> dict:
    """Train every model at ``seed`` (with shift augmentation of up to ``jitter`` pixels per
    axis when > 0; the same epochs either way); returns name -> (model, TrainResult, warm-up
    seconds). ``curves``: checkpoint the centred test accuracy four times per epoch."""
    out = {}
    tcfg = TrainConfig(epochs=cfg.epochs, batch=cfg.batch, lr=cfg.lr, momentum=cfg.momentum, seed=seed)
    xw = place(split.train_x[:cfg.batch], cfg.canvas)
    test = place(split.test_x, cfg.canvas) if curves else None
    for m in cfg.models:
        warm = _warm(build(m, cfg.canvas, seed, engines[m]), xw, split.train_y[:cfg.batch])
        model = build(m, cfg.canvas, seed, engines[m])
        evaluate = (lambda model=model: float((model.predict(test) == split.test_y).mean())) if curves else None
        res = train(model, split.train_x, split.train_y, tcfg, canvas=cfg.canvas, jitter=jitter, evaluate=evaluate)
        out[m] = (model, res, warm)
        if res.epoch_s:
            log(f"study: {m} seed {seed}{f' jitter {jitter}' if jitter else ''}: {cfg.epochs} epochs, "
                f"{np.median(res.epoch_s):.2f} s per epoch, final loss {res.losses[-1]:.3f}")
    return out


def invariance_rows(cfg: StudyConfig, split, arms: dict, max_shift: int) -> list[dict]:
    """One row per model and training arm (``centred``, ``jitter``): accuracy at every test
    shift, the share of its centred accuracy kept at the largest, parameters, FLOPs, training
    seconds per epoch (measured) and the training images seen until its centred accuracy first
    reached 90% of the best it reached (checkpoints every quarter epoch)."""
    rows = []
    for arm, (jitter, trained) in arms.items():
        for m, (model, res, _) in trained.items():
            acc = shift_accuracy(model, split.test_x, split.test_y, cfg.canvas, max_shift)
            row = dict(model=m, arm=arm, jitter=jitter, params=model.n_params(), flops_fwd=model.flops_fwd(),
                       flops_step=model.flops_step(),
                       train_s_per_epoch=float(np.median(res.epoch_s)) if res.epoch_s else float("nan"),
                       images_to_90=res.images_to(0.9), best_centred=max((a for _, a in res.curve), default=None))
            row.update({f"acc_shift_{d}": a for d, a in enumerate(acc)})
            row["kept_at_max_shift"] = acc[-1] / acc[0] if acc[0] > 0 else float("nan")
            rows.append(row)
    return rows


def size_curves(cfg: StudyConfig, split, engines: dict, log) -> list[dict]:
    """Test accuracy (centred) against the number of training images. Each subset trains for
    the optimiser steps of ``max(1, epochs // 2)`` epochs on the full set (at most 200
    epochs), so small sets are not starved of updates and the curves stay cheap."""
    rows = []
    n_all = len(split.train_y)
    order = np.random.default_rng(cfg.seed + 7).permutation(n_all)
    steps = max(1, cfg.epochs // 2) * math.ceil(n_all / cfg.batch) if cfg.epochs else 0
    test = place(split.test_x, cfg.canvas)
    for n in cfg.sizes:
        n = n_all if n in (0, None) or n > n_all else int(n)
        idx = order[:n]
        epochs = min(200, math.ceil(steps / math.ceil(n / cfg.batch))) if steps else 0
        for m in cfg.models:
            model = build(m, cfg.canvas, cfg.seed, engines[m])
            train(model, split.train_x[idx], split.train_y[idx],
                  TrainConfig(epochs=epochs, batch=cfg.batch, lr=cfg.lr, momentum=cfg.momentum, seed=cfg.seed),
                  canvas=cfg.canvas)
            acc = float((model.predict(test) == split.test_y).mean())
            rows.append(dict(model=m, train_images=n, epochs=epochs, acc_shift_0=acc))
        log(f"study: {n} training images: " + ", ".join(f"{r['model']} {r['acc_shift_0']:.3f}"
                                                         for r in rows[-len(cfg.models):]))
    return rows


def _interior(n: int, s: int, p: int, rf: int, t: int) -> np.ndarray:
    """Output indices ``j`` (stride ``s``, padding ``p``, receptive field ``rf``) whose input
    window lies inside ``[0, n)`` both at ``j`` and at the partner ``j - t``."""
    out = []
    m = (n + 2 * p - rf) // s + 1 if rf <= n + 2 * p else 0
    for j in range(m):
        k = j - t
        inside = 0 <= j * s - p and j * s - p + rf <= n
        partner = 0 <= k < m and 0 <= k * s - p and k * s - p + rf <= n
        if inside and partner:
            out.append(j)
    return np.array(out, int)


def equivariance(cfg: StudyConfig, cnn, test_x, rng, gap=None) -> list[dict]:
    """rel_diff = ||f(shift_d x) - shift_t f(x)|| / ||shift_t f(x)|| over the interior, for a
    horizontal shift ``d`` of real test digits: ``conv`` is the trained CNN's first layer,
    ``conv_pool`` that layer + ReLU + its 2x2 max-pool (an output shift ``t`` of ``d/2``; for
    odd ``d``, the better of ``floor`` and ``ceil``), ``dense`` a He-initialised dense layer
    with the conv layer's input and output size (every output sees the whole canvas; it is
    compared on the conv layer's interior), and, given the trained ``gap`` model, ``global_pool``:
    its whole convolutional body and global max pool, compared with no output shift at all (its
    output has no position): exact while the digit's receptive footprint stays off the zero
    padding of the canvas' border."""
    conv, relu, pool = cnn.layers[0], cnn.layers[1], cnn.layers[2]
    x = place(test_x, cfg.canvas)
    n, _, h, w = x.shape
    cout = conv.params["w"].shape[0]
    dense = Dense(h * w, cout * h * w, rng=rng, name="dense")

    def f_conv(a):
        return conv.forward(a)

    def f_pool(a):
        return pool.forward(relu.forward(conv.forward(a)))

    def f_dense(a):
        return dense.forward(a.reshape(len(a), -1)).reshape(len(a), cout, h, w)

    layers = (("conv", f_conv, 1, 1, 3), ("conv_pool", f_pool, 2, 1, 4), ("dense", f_dense, 1, 1, 3))
    base = {name: f(x) for name, f, *_ in layers}
    body = gap.layers[:gap.layers.index(next(la for la in gap.layers if la.name == "global_pool")) + 1] if gap else []

    def f_gap(a):
        for layer in body:
            a = layer.forward(a, False)
        return a
    g0 = f_gap(x) if gap else None
    rows = []
    for d in range(cfg.max_shift + 1):
        xs = shift_image(x, 0, d)
        if gap is not None:
            den = float(np.linalg.norm(g0))
            rows.append(dict(layer="global_pool", shift=d, out_shift=0, interior_positions=1,
                             rel_diff=float(np.linalg.norm(f_gap(xs) - g0)) / den if den > 0 else float("nan")))
        for name, f, s, p, rf in layers:
            a = f(xs)
            best = None
            for t in sorted({d // s, -(-d // s)}):
                cols = _interior(w, s, p, rf, t)
                rws = _interior(h, s, p, rf, 0)
                if len(cols) == 0 or len(rws) == 0:
                    continue
                b = shift_image(base[name], 0, t)
                sa, sb = a[:, :, rws][:, :, :, cols], b[:, :, rws][:, :, :, cols]
                den = float(np.linalg.norm(sb))
                rel = float(np.linalg.norm(sa - sb)) / den if den > 0 else float("nan")
                if best is None or rel < best[0]:
                    best = (rel, t, len(rws) * len(cols))
            if best is not None:
                rows.append(dict(layer=name, shift=d, rel_diff=best[0], out_shift=best[1], interior_positions=best[2]))
    return rows


def inference_table(cfg: StudyConfig, models: dict, test_x, log) -> list[dict]:
    """Inference seconds per image of each model on each conv backend that runs it (own
    backends and the torch peer), timed interleaved at ``infer_batch`` images; the first
    call (JIT, plans) is timed apart. Models without convolutions are timed once (BLAS)."""
    x = place(test_x[:cfg.infer_batch], cfg.canvas)
    rows = []
    peers = set()
    cands = _candidates(cfg)
    if not cfg.candidates:  # and the framework a user would otherwise call, as the peer
        from ..backends import backends_with_role, ranked_backends
        peers = set(backends_with_role("peer", "conv"))
        cands += ranked_backends(backends_with_role("peer", "conv"))[:1]
    if cfg.backend != "auto" and cfg.backend not in cands:
        cands.append(cfg.backend)
    for m, (trained, _, _) in models.items():
        fns, first = {}, {}
        if not trained.conv_layers():
            fns["blas"] = (lambda model=trained: model.forward(x))
            first["blas"] = _first_call(fns["blas"])
        else:
            for be in cands:
                if _usable(trained, be, len(x)) is not None:
                    continue
                clone = build(m, cfg.canvas, cfg.seed, Engine(conv=be, pool=cfg.pool_backend))
                for (la, k), (lb, _) in zip(clone.parameters(), trained.parameters()):
                    la.params[k] = lb.params[k]
                    la.version += 1
                fns[be] = (lambda model=clone: model.forward(x))
                first[be] = _first_call(fns[be])
        times = median_times(fns, cfg.timing_rounds)
        own = {be: t for be, t in times.items() if be not in peers}
        best = min(own or times, key=(own or times).get)  # the fastest of convbench's own
        for be, t in times.items():
            rows.append(dict(model=m, backend=be, peer=be in peers, batch=len(x),
                             s_per_image=t / len(x), first_call_s=first[be], fastest=be == best))
        peer_best = min((be for be in times if be in peers), key=times.get, default=None)
        log(f"study: {m} inference: fastest own {best} {times[best] / len(x) * 1e6:.1f} us per image"
            + (f" ({peer_best} {times[peer_best] / len(x) * 1e6:.1f} us)" if peer_best else ""))
    return rows


def insitu(cfg: StudyConfig, cnn_model, inference_rows: list[dict], log) -> list[dict]:
    """The CNN's forward pass in situ (from :func:`inference_table`) against the sum of its
    conv and pool layers each timed alone by convbench's runner (the same backend, batch and
    thread count), plus ReLU, flatten and the dense layer timed alone here."""
    from ..cells import Cell
    from ..config import SweepConfig
    from ..problem import PoolProblem
    from ..runner import Context, run_cell
    batch = cfg.infer_batch
    rows = []
    timing = dict(min_time=0.02, max_time=0.2 if not cfg.quick else 0.05, min_rounds=3, round_time=1e-3)
    x = place(np.zeros((batch, DIGIT, DIGIT), np.float32), cfg.canvas)
    shapes, s = [], cnn_model.in_shape
    for layer in cnn_model.layers:
        shapes.append((layer, (batch,) + tuple(s)))
        s = layer.out_shape(s)
    other_fns = {}
    a = x
    for layer, shp in shapes:
        inp = np.random.default_rng(0).standard_normal(shp).astype(np.float32) if len(shp) == 4 else None
        if layer.name in ("relu", "flatten", "fc"):
            val = inp if inp is not None else np.random.default_rng(0).standard_normal(shp).astype(np.float32)
            other_fns[layer.name] = (lambda layer=layer, v=val: layer.forward(v, False))
        a = layer.forward(a, False)
    others = median_times(other_fns, 3)
    other_s = others.get("fc", 0.0) + others.get("flatten", 0.0)
    relu_s = 0.0
    for layer, shp in shapes:  # each ReLU at its own size
        if layer.name == "relu":
            v = np.random.default_rng(0).standard_normal(shp).astype(np.float32)
            relu_s += median_times({"r": lambda v=v, layer=layer: layer.forward(v, False)}, 3)["r"]
    for r in inference_rows:
        if r["model"] != cnn_model.name or r["backend"] == "blas":
            continue
        be = r["backend"]
        total, parts = 0.0, []
        for layer, shp in shapes:
            if isinstance(layer, Conv2d):
                p, backends = layer.problem(shp), [be]
            elif layer.name.startswith("pool"):
                p = PoolProblem.from_torch_args(shp, layer.k, alg="max")
                backends = [cfg.pool_backend]
            else:
                continue
            run_cfg = SweepConfig(backends=backends, threads=(cfg.threads,), cell_budget=5.0, sentinel=False,
                                  phases=False, **timing)
            got = run_cell(Cell(p, threads=cfg.threads, primary=(cfg.threads, "hot")), backends,
                           Context.build(run_cfg)).results
            ok = [g for g in got if g.status == "passed"]
            if not ok:
                parts = None
                break
            t = float(ok[0].stats["median"])
            parts.append(f"{layer.name} {t * 1e6:.0f} us")
            total += t
        if parts is None:
            continue
        iso = total + relu_s + other_s
        insitu_s = r["s_per_image"] * batch
        rows.append(dict(model=cnn_model.name, backend=be, batch=batch, insitu_s=insitu_s, isolated_sum_s=iso,
                         runner_layers_s=total, elementwise_s=relu_s + other_s, ratio=insitu_s / iso,
                         layers="; ".join(parts)))
    if rows:
        log(f"study: in situ / isolated for {cnn_model.name}: " + ", ".join(
            f"{r['backend']} {r['ratio']:.2f}" for r in rows))
    return rows


# ----------------------------------------------------------------------- the whole
@dataclass
class StudyResult:
    out: Path
    config: StudyConfig
    files: dict = field(default_factory=dict)
    seconds: float = 0.0


def run_study(out: Path, cfg: StudyConfig, log=print) -> StudyResult:
    """Run the study into ``out/study/`` (which must not hold files yet) and write its tables."""
    from ..machine import machine_info
    from ..threads import set_threads
    t_start = time.perf_counter()
    check_config(cfg)
    set_threads(cfg.threads)
    sdir = Path(out) / "study"
    sdir.mkdir(parents=True, exist_ok=True)
    split = load_split(cfg.seed)
    if cfg.test_limit:
        split.test_x, split.test_y = split.test_x[:cfg.test_limit], split.test_y[:cfg.test_limit]
    max_shift = min(cfg.max_shift, max_shift_for(cfg.canvas))
    shift_note = "" if max_shift == cfg.max_shift else (
        f"--max-shift {cfg.max_shift} reduced to {max_shift}: a larger offset would move the digit off the "
        f"{cfg.canvas}-pixel canvas")
    cfg.max_shift = max_shift
    if shift_note:
        log("study: " + shift_note)

    engines, engine_rows = choose_engines(cfg, split, log)
    trained = train_models(cfg, split, engines, cfg.seed, log, curves=True)
    other_seed = train_models(cfg, split, engines, cfg.seed + 1, lambda *_: None)
    arms = {"centred": (0, trained)}
    if cfg.jitter > 0:
        arms["jitter"] = (cfg.jitter, train_models(cfg, split, engines, cfg.seed, log, jitter=cfg.jitter, curves=True))

    model_rows, layer_rows, train_rows, seed_rows = [], [], [], []
    for m, (model, res, warm) in trained.items():
        acc = shift_accuracy(model, split.test_x, split.test_y, cfg.canvas, max_shift)
        acc2 = shift_accuracy(other_seed[m][0], split.test_x, split.test_y, cfg.canvas, max_shift)
        row = dict(model=m, params=model.n_params(), flops_fwd=model.flops_fwd(), flops_step=model.flops_step(),
                   activation_bytes=model.activation_bytes())
        row.update({f"acc_shift_{d}": a for d, a in enumerate(acc)})
        row.update(train_s_per_epoch=float(np.median(res.epoch_s)) if res.epoch_s else float("nan"),
                   warmup_s=warm, backend=engines[m].conv if model.conv_layers() else "blas (no convolution)",
                   architecture=model.architecture(), note=model.note)
        model_rows.append(row)
        for d, (a1, a2) in enumerate(zip(acc, acc2)):
            seed_rows.append(dict(model=m, shift=d, **{f"acc_seed_{cfg.seed}": a1, f"acc_seed_{cfg.seed + 1}": a2},
                                  diff=a2 - a1))
        layer_rows += model.table()
        for e, (loss, s) in enumerate(zip(res.losses, res.epoch_s)):
            train_rows.append(dict(model=m, seed=cfg.seed, epoch=e + 1, loss=loss, seconds=s))
    layer_rows += build("cnn_dilated", cfg.canvas, cfg.seed).table()
    log("study: accuracy at shift 0.." + str(max_shift) + ": " + "; ".join(
        f"{r['model']} " + "/".join(f"{r[f'acc_shift_{d}']:.2f}" for d in range(max_shift + 1)) for r in model_rows))

    infer_rows = inference_table(cfg, trained, split.test_x, log)
    fastest = {r["model"]: r for r in infer_rows if r["fastest"]}
    for row in model_rows:
        row["infer_s_per_image"] = fastest[row["model"]]["s_per_image"]
        row["infer_backend"] = fastest[row["model"]]["backend"]
    eq_rows = equivariance(cfg, trained["cnn"][0], split.test_x[:200], np.random.default_rng(cfg.seed + 3),
                           gap=trained["cnn_gap"][0] if "cnn_gap" in trained else None) if "cnn" in trained else []
    inv_rows = invariance_rows(cfg, split, arms, max_shift)
    insitu_rows = insitu(cfg, trained["cnn"][0], infer_rows, log) if "cnn" in trained else []
    size_rows = size_curves(cfg, split, engines, log)

    notes = {}
    for m, e in engines.items():
        for k, v in e.notes.items():
            notes.setdefault(v, []).append(m)
    fallback = [dict(note=k, models=", ".join(sorted(set(v)))) for k, v in notes.items()]

    files = {}
    curve_rows = [dict(model=m, arm=arm, images=n, acc_shift_0=a) for arm, (_, tr) in arms.items()
                  for m, (_, res, _) in tr.items() for n, a in res.curve]
    for name, rows in (("models", model_rows), ("layers", layer_rows), ("equivariance", eq_rows),
                       ("invariance", inv_rows), ("curves", curve_rows),
                       ("accuracy_vs_size", size_rows), ("seeds", seed_rows), ("inference", infer_rows),
                       ("insitu", insitu_rows), ("training", train_rows), ("engine", engine_rows),
                       ("fallbacks", fallback)):
        files[name] = sdir / f"{name}.csv"
        _write_csv(files[name], rows)
    meta = dict(config=asdict(cfg), shift_note=shift_note, train_images=len(split.train_y),
                test_images=len(split.test_y), machine=machine_info(), seconds=time.perf_counter() - t_start,
                chance=0.1)
    filt = {m: trained[m][0].layers[0].params["w"][:, 0] for m in ("cnn", "cnn_stride") if m in trained}
    if filt:
        files["filters"] = sdir / "filters.npz"
        np.savez(files["filters"], **filt)
    files["meta"] = sdir / "meta.json"
    files["meta"].write_text(json.dumps(meta, indent=1, default=str))
    return StudyResult(out=sdir, config=cfg, files=files, seconds=meta["seconds"])
