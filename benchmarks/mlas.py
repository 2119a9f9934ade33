"""Issue 28's floors: own algorithms against the fastest library on this CPU (``make floors``).

One interleaved run (1 thread, mb1, hot) of the ResNet-50, MobileNetV2 and VGG-16 convolution
layers with every own backend, PyTorch/oneDNN and ONNX Runtime/MLAS; optionally (``--training``)
the ResNet-50 layers at mb8 in the bwd_d and bwd_w directions against oneDNN. Prints, and writes
``mlas.md`` next to the run's tables:

* per layer class (1x1, 3x3 stride 1, 3x3 stride 2, depthwise, stems): layers, how many the best
  own backend wins against MLAS and against the fastest peer, the median and worst own/peer speed,
  and the median fraction of this machine's peak reached by the best own backend and by each peer
  (the FMA peak for compute-bound layers, DRAM copy bandwidth for memory-bound ones, as the
  report's "Fraction of this machine's peak" section);
* whole networks, best own per layer against the fastest peer per layer and against oneDNN
  (layers weighted by their multiplicity);
* every floor of the issue with its measured value and whether it holds.

Nothing asserts: speed targets live here and in the closing notes, never in unit tests.

Usage::

    python benchmarks/mlas.py [--out DIR] [--max-time S] [--training]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

SUITES = ("resnet50", "mobilenet_v2", "vgg16")
PEERS = ("torch_onednn", "onnxruntime")
#: whole-network floors: best own per layer over the fastest peer per layer, and over oneDNN
NETWORK_FLOORS = {"resnet50": (1.1, 1.4), "mobilenet_v2": (1.1, 1.6), "vgg16": (1.6, None)}
LAYER_FLOOR, TRAINING_FLOOR = 0.85, 0.9


def layer_class(r) -> str:
    """The issue's layer classes, from a summary row."""
    if r.g > 1 and r.g == r.ic == r.oc:
        return "depthwise"
    if r.ic == 3:
        return "stem"
    if r.kh == 1 and r.kw == 1:
        return "1x1"
    if r.kh == 3 and r.kw == 3:
        return "3x3 stride 1" if r.sh == 1 else "3x3 stride 2"
    return "other"


def _peaks(meta: dict) -> tuple[float, float]:
    pk = meta.get("peaks") or {}
    return float(pk["fma_gflops"]), float((pk.get("stream") or {}).get("copy_dram_gbs") or pk["bandwidth_gbs"])


def per_layer(df, meta: dict, own: list[str]) -> list[dict]:
    """One dict per convolution layer: best own backend and time, each peer's time, and the
    fractions of peak of the best own and each peer."""
    fma, bw = _peaks(meta)
    out = []
    ok = df[(df.status == "passed") & (df.backend != "*") & (df.kind != "pool")]
    for prob, g in ok.groupby("problem", sort=False):
        first = g.iloc[0]
        mine = g[g.backend.isin(own)]
        if mine.empty:
            continue
        best = mine.loc[mine.time_median_s.idxmin()]
        compute = first.flops_direct / first.bytes_io >= fma / bw

        def share(r):
            if not compute:
                return r.bytes_io / r.time_median_s / 1e9 / bw
            done = r.flops_executed if r.flops_executed == r.flops_executed and r.flops_executed > 0 else \
                r.flops_direct
            return done / r.time_median_s / 1e9 / fma
        row = dict(problem=prob, suite=first.suite, mult=int(first.multiplicity), direction=first.direction,
                   cls=layer_class(first), bound="compute" if compute else "memory", own=best.backend,
                   own_s=float(best.time_median_s), own_peak=share(best))
        for p in PEERS:
            pr = g[g.backend == p]
            row[p] = float(pr.time_median_s.iloc[0]) if len(pr) else float("nan")
            row[p + "_peak"] = share(pr.iloc[0]) if len(pr) else float("nan")
        row["fastest_peer_s"] = np.nanmin([row[p] for p in PEERS]) if any(row[p] == row[p] for p in PEERS) \
            else float("nan")
        out.append(row)
    return out


def _median(v) -> float:
    v = [x for x in v if x == x]
    return float(np.median(v)) if v else float("nan")


def render(layers: list[dict], training: list[dict]) -> tuple[str, list[str]]:
    """The class table, the network table and the floors, as Markdown; and the floor lines."""
    fwd = [r for r in layers if r["direction"] == "fwd"]
    out = ["| class | layers | own >= MLAS | own >= fastest peer | median own/MLAS | worst own/MLAS "
           "| median own/fastest | worst own/fastest | own % of peak | oneDNN % | MLAS % |",
           "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    floors = []
    for cls in ("1x1", "3x3 stride 1", "3x3 stride 2", "depthwise", "stem", "other"):
        rs = [r for r in fwd if r["cls"] == cls]
        if not rs:
            continue
        vs_mlas = [r["onnxruntime"] / r["own_s"] for r in rs]
        vs_best = [r["fastest_peer_s"] / r["own_s"] for r in rs]
        worst_m = min(range(len(rs)), key=lambda i: vs_mlas[i] if vs_mlas[i] == vs_mlas[i] else 9)
        worst_b = min(range(len(rs)), key=lambda i: vs_best[i] if vs_best[i] == vs_best[i] else 9)
        out.append(f"| {cls} | {len(rs)} | {sum(v >= 1 for v in vs_mlas)} | {sum(v >= 1 for v in vs_best)} | "
                   f"{_median(vs_mlas):.2f} | {vs_mlas[worst_m]:.2f} (`{rs[worst_m]['problem']}`) | "
                   f"{_median(vs_best):.2f} | {vs_best[worst_b]:.2f} (`{rs[worst_b]['problem']}`) | "
                   f"{_median([r['own_peak'] for r in rs]):.0%} | "
                   f"{_median([r['torch_onednn_peak'] for r in rs]):.0%} | "
                   f"{_median([r['onnxruntime_peak'] for r in rs]):.0%} |")
        med = _median(vs_best)
        floors.append(f"{'ok  ' if med >= 1 else 'MISS'} class {cls}: median own/fastest peer {med:.2f} (floor 1.0)")
        if cls == "depthwise":
            bad = [r for r, v in zip(rs, vs_best) if not v >= 1]
            floors.append(f"{'ok  ' if not bad else 'MISS'} every depthwise layer at least as fast as the fastest "
                          f"peer: {len(rs) - len(bad)} of {len(rs)}"
                          + (f" (slowest {min(vs_best):.2f})" if bad else ""))
    low = [(r, r["fastest_peer_s"] / r["own_s"]) for r in fwd if not r["fastest_peer_s"] / r["own_s"] >= LAYER_FLOOR]
    floors.append(f"{'ok  ' if not low else 'MISS'} every layer >= {LAYER_FLOOR}x the fastest peer: "
                  f"{len(fwd) - len(low)} of {len(fwd)}"
                  + (": below, " + ", ".join(f"`{r['problem']}` {v:.2f}" for r, v in sorted(low, key=lambda x: x[1]))
                     if low else ""))
    net = ["", "| network | best own per layer | fastest peer per layer | oneDNN | MLAS | own/fastest | own/oneDNN |",
           "|---|---:|---:|---:|---:|---:|---:|"]
    for suite in SUITES:
        rs = [r for r in fwd if r["suite"] == suite]
        if not rs:
            continue
        tot = {k: sum(r[k] * r["mult"] for r in rs) for k in ("own_s", "fastest_peer_s", "torch_onednn",
                                                               "onnxruntime")}
        vb, vo = tot["fastest_peer_s"] / tot["own_s"], tot["torch_onednn"] / tot["own_s"]
        net.append(f"| {suite} | {tot['own_s'] * 1e3:.2f} ms | {tot['fastest_peer_s'] * 1e3:.2f} ms | "
                   f"{tot['torch_onednn'] * 1e3:.2f} ms | {tot['onnxruntime'] * 1e3:.2f} ms | {vb:.2f}x | {vo:.2f}x |")
        fb, fo = NETWORK_FLOORS[suite]
        floors.append(f"{'ok  ' if vb >= fb else 'MISS'} {suite}: best own per layer vs fastest peer per layer "
                      f"{vb:.2f}x (floor {fb})")
        if fo:
            floors.append(f"{'ok  ' if vo >= fo else 'MISS'} {suite}: vs oneDNN {vo:.2f}x (floor {fo})")
    text = "\n".join(out + net)
    if training:
        tr = ["", "| layer | direction | best own | own | oneDNN | own/oneDNN |", "|---|---|---|---:|---:|---:|"]
        for r in training:
            v = r["torch_onednn"] / r["own_s"]
            tr.append(f"| `{r['problem']}` | {r['direction']} | {r['own']} | {r['own_s'] * 1e3:.2f} ms | "
                      f"{r['torch_onednn'] * 1e3:.2f} ms | {v:.2f} |")
            floors.append(f"{'ok  ' if v >= TRAINING_FLOOR else 'MISS'} training mb8 {r['direction']} "
                          f"`{r['problem']}`: {v:.2f} of oneDNN (floor {TRAINING_FLOOR})")
        text += "\n" + "\n".join(tr)
    return text, floors


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=None)
    ap.add_argument("--max-time", default="0.5")
    ap.add_argument("--min-time", default="0.1")
    ap.add_argument("--training", action="store_true", help="also the ResNet-50 layers at mb8, bwd_d and bwd_w")
    a = ap.parse_args(argv)
    out = Path(a.out or f"results/mlas-{time.strftime('%Y%m%d-%H%M%S')}")
    from convbench.cli import main as cli
    from convbench.backends import available_backends, backends_with_role
    have = set(available_backends())
    missing = [p for p in PEERS if p not in have]
    if missing:
        print(f"mlas: {', '.join(missing)} not installed (make floors installs PEERS=all)", file=sys.stderr)
        return 2
    # the matrix backends (sparse, dense operator) are kept out: the issue compares the algorithm
    # families that compete on network layers, and their operators of VGG-16's layers are gigabytes
    own = [b for b in backends_with_role("own", "conv") if b not in ("sparse_csr", "dense_matrix")]
    common = ["--threads", "1", "--min-time", a.min_time, "--max-time", a.max_time, "--min-rounds", "5",
              "--cell-budget", "2", "--no-plots", "--quiet"]
    argv_run = ["run", "--out", str(out), "--backends", ",".join(own + list(PEERS))] + common
    for s in SUITES:
        argv_run += ["--suite", s]
    status = cli(argv_run)
    if status != 0:
        return status
    from convbench.results import load_meta, load_summary
    df, meta = load_summary(out), load_meta(out)
    layers = per_layer(df, meta, own)
    training = []
    if a.training:
        d = out / "training"
        status = cli(["run", "--out", str(d), "--backends", ",".join(own + ["torch_onednn"]), "--suite", "resnet50",
                      "--batch", "8", "--direction", "bwd_d,bwd_w"] + common)
        if status != 0:
            return status
        training = per_layer(load_summary(d), load_meta(d), own)
    text, floors = render(layers, training)
    blas = ", ".join(sorted({str(lib.get("architecture")) for lib in
                             (meta.get("machine") or {}).get("blas", {}).get("libraries", [])}))
    fma, bw = _peaks(meta)
    head = (f"# Own algorithms against the fastest library (issue 28)\n\nOne interleaved run, 1 thread, mb1, hot; "
            f"OpenBLAS kernels {blas}; measured FMA peak {fma:.0f} GFLOP/s, DRAM copy {bw:.1f} GB/s. "
            f"Own backends: {', '.join(own)}. Speeds are peer time / own time (> 1: own faster).\n\n")
    body = head + text + "\n\n## Floors\n\n" + "\n".join(f"- {f}" for f in floors) + "\n"
    (out / "mlas.md").write_text(body)
    print(body)
    print(f"written to {out}/mlas.md")
    return 0


if __name__ == "__main__":
    from convbench.blas import apply_coretype
    apply_coretype("auto")
    sys.exit(main())
