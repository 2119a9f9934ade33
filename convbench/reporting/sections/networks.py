"""Whole networks and their variants: roll-ups, thread scaling, hot vs cold cache, training steps,
pooling and activation sizes."""

from __future__ import annotations

from ...backends import ranked_backends
from ...format import fmt_bytes, fmt_count, fmt_rate, fmt_ratio, fmt_time
from ..data import ReportData, activations, rollups, training_layers
from ..document import Section, Table
from . import _num, section


@section("rollup")
def rollup(d: ReportData) -> Section | None:
    rs = rollups(d.df)
    if not rs:
        return None
    blocks = []
    for r in rs:
        dirs = " + ".join(r["directions"])
        pools = f", {r['pool_layers']} of them pooling" if r["pool_layers"] else ""
        blocks.append(f"### {r['suite']}, {r['pass_name']} ({dirs}): {r['layers']} layers{pools} "
                      f"({r['problems']} unique shapes), batch {r['batch']}\n")
        if r["uncovered"]:
            blocks.append(f"{r['uncovered']} layer cells were run by no backend; the totals below leave them out.\n")
        share = (lambda v: "" if v != v else f"{v * 100:.1f}%")
        rows = [["**best backend per layer**", fmt_time(r["oracle"]), "1.00x", share(r["oracle_pool_share"]),
                 ", ".join(f"{b} {n}" for b, n in sorted(r["picks"].items(), key=lambda kv: -kv[1]))]]
        for b, t in sorted(r["totals"].items(), key=lambda kv: kv[1]):
            comp = r["companions"].get(b)
            rows.append([b, fmt_time(t), fmt_ratio(t, r["oracle"]), share(r["pool_share"].get(b, float("nan"))),
                         f"pools on {comp}" if comp else ""])
        for b, n in sorted(r["incomplete"].items()):
            rows.append([b, "", "", "", f"cannot run {n} of the {r['cells']} conv layer passes"])
        blocks.append(Table(["backend", "network time", "vs best per layer", "pooling share", "layers chosen / note"],
                            rows, align=["l", "r", "r", "r", "l"]))
    return Section("Network roll-up", intro=(
        "Layers weighted by their multiplicity in the network. Inference is every layer's forward "
        "pass; the training step adds each convolution's bwd_d and bwd_w and each pool's bwd_d. "
        "A convolution backend's pooling layers run on its companion (a peer's own pooling library where it "
        "has one; convbench's own backends: the fastest own pooling backend), and `pooling share` is their "
        "part of its total. The oracle picks the fastest backend cell by cell (layer and "
        "direction), which is what a framework choosing per layer could reach."), blocks=blocks)

def _own_label(b: str, own: bool) -> str:
    return b if own else f"{b} (peer)"

_NET_HEAD = ["network", "threads", "cache", "peer", "conv layers", "best own per layer", "peer", "peer / best own",
             "note"]
_NET_INTRO = ("Whole networks, forward convolution layers weighted by their multiplicity: the best own backend per "
              "layer against each peer on the layers both ran (> 1x: convbench's best is faster).")


def _network_table(d: ReportData, keep) -> list:
    from ..variants import network_ratios
    rows = []
    for r in network_ratios(d.variants):
        if not keep(r):
            continue
        rows.append([r["suite"], str(r["threads"]), r["cache"], r["peer"], f"{r['layers']} ({r['shapes']} shapes)",
                     fmt_time(r["own"]), fmt_time(r["peer_time"]), f"{r['ratio']:.2f}x",
                     f"{r['missing']} shape(s) not run by both" if r["missing"] else ""])
    return rows

@section("scaling")
def scaling_section(d: ReportData) -> Section | None:
    from ..variants import scaling, thread_counts
    if d.variants is None:
        return None
    counts = thread_counts(d.variants)
    if len(counts) < 2:
        return None
    sc = scaling(d.variants)
    rows = []
    for r in sorted(sc, key=lambda r: (r["t"], not r["own"], -r["geomean"])):
        flag = ""
        if r["cpu_util_t"] == r["cpu_util_t"] and r["cpu_util_t"] < 1.15 and r["t"] > 1:
            flag = f"used {r['cpu_util_t']:.2f} cores at {r['t']} threads: ignores the setting or cannot split the work"
        elif r["cpu_util_t0"] == r["cpu_util_t0"] and r["cpu_util_t0"] > r["t0"] + 0.5:
            flag = f"used {r['cpu_util_t0']:.2f} cores at {r['t0']} thread(s): over the setting"
        rows.append([_own_label(r["backend"], r["own"]), f"{r['t0']} -> {r['t']}", str(r["problems"]),
                     f"{r['geomean']:.2f}x", f"{r['min']:.2f}x - {r['max']:.2f}x",
                     f"{r['cpu_util_t0']:.2f} / {r['cpu_util_t']:.2f}", flag])
    blocks = [Table(["backend", "threads", "problems", "speed-up (geomean)", "range", "cores busy (median)", "flag"],
                    rows, align=["l", "l", "r", "r", "r", "r", "l"])]
    from ..variants import primary_cache
    pc = primary_cache(d.variants)
    net = _network_table(d, lambda r: r["cache"] == pc)
    if net:
        blocks += [_NET_INTRO + "\n", Table(_NET_HEAD, net, align=["l", "r", "l", "l", "r", "r", "r", "r", "l"])]
    return Section("Thread scaling", intro=(
        f"Each backend against itself: its time at {counts[0]} thread(s) over its time at the other count, on "
        "the problems it passed at both, in the run's first cache state, from this one run (every library given the same count: "
        "numba, BLAS, FFTW, scipy.fft, torch, ONNX Runtime sessions; XLA's pool pinned to that many cores). "
        "`cores busy` is CPU time over wall time, the evidence that a backend used the threads it was given; "
        "small problems often cannot split their work. When the run uses every core of the machine, a "
        "pool that waits by spinning (OpenBLAS's, OpenMP's) and any other process compete with the next "
        "backend's threads, so multi-thread times vary far more than single-thread ones: read the range "
        "column before the geomean. Figure `thread_scaling` draws the first table."),
        blocks=blocks)

@section("cache")
def cache_section(d: ReportData) -> Section | None:
    from ..variants import cache_effect, layer_ratios
    if d.variants is None:
        return None
    eff = cache_effect(d.variants)
    if not eff:
        return None
    rows = [[_own_label(r["backend"], r["own"]), str(r["threads"]), str(r["problems"]), f"{r['geomean']:.2f}x",
             f"{r['min']:.2f}x - {r['max']:.2f}x"]
            for r in sorted(eff, key=lambda r: (r["threads"], not r["own"], r["geomean"]))]
    blocks = ["Each backend against itself: cold time over hot time (> 1: slower when its buffers are not in cache).\n",
              Table(["backend", "threads", "problems", "cold / hot (geomean)", "range"], rows,
                    align=["l", "r", "r", "r", "r"])]
    peers = [b for b in dict.fromkeys(d.variants.backend) if d.roles.get(b) == "peer"]
    peer = next(iter(ranked_backends(peers)), None)
    if peer:
        lr = layer_ratios(d.variants, peer)
        by = {}
        for r in lr:
            by.setdefault((r["problem"], r["density"], r["threads"]), {})[r["cache"]] = r
        prow = []
        for (prob, dens, t), v in by.items():
            h, c = v.get("hot"), v.get("cold")
            if h is None or c is None:
                continue
            prow.append([prob + (f" @density {dens:g}" if dens < 1 else ""), str(t),
                         f"{fmt_time(h['own'])} ({h['own_backend']})", f"{fmt_time(c['own'])} ({c['own_backend']})",
                         fmt_time(h["peer"]), fmt_time(c["peer"]), f"{h['ratio']:.2f}x", f"{c['ratio']:.2f}x"])
        if prow:
            blocks += [f"Per problem, the best own backend and `{peer}`, hot and cold side by side "
                       f"(`{peer}` / best own: > 1x, convbench's best is faster).\n",
                       Table(["problem", "threads", "best own, hot", "best own, cold", f"{peer}, hot",
                              f"{peer}, cold", "ratio hot", "ratio cold"], prow,
                             align=["l", "r", "r", "r", "r", "r", "r", "r"])]
    net = _network_table(d, lambda r: True)
    if net:
        blocks += [_NET_INTRO + "\n", Table(_NET_HEAD, net, align=["l", "r", "l", "l", "r", "r", "r", "r", "l"])]
    return Section("Hot vs cold cache", intro=(
        "Hot: the same input, weights and output every call (the benchmark loop). Cold: each backend's buffers "
        "(inputs, plan with its weights and workspace, output) are copied until the copies span twice the "
        "last-level cache, at most 256 copies or 2 s of preparing them, and every call takes the next set, as a "
        "layer inside a network finds its data (XNNPACK's buffer rotation, benchdnn's --cold-cache). Each row's "
        "note says how many sets were rotated."), blocks=blocks)

@section("training")
def training(d: ReportData) -> Section | None:
    groups = training_layers(d.df)
    if not groups:
        return None
    blocks = []
    for g in groups:
        title = g["suite"] or "problems outside a suite"
        blocks.append(f"### {title}: per layer, the fastest backend of each direction\n")
        rows = []
        tot = {"fwd": 0.0, "bwd_d": 0.0, "bwd_w": 0.0, "step": 0.0}
        for it in g["layers"]:
            m = it["multiplicity"]
            r = [it["name"] or it["layer"], f"x{m}"]
            for dname in ("fwd", "bwd_d", "bwd_w"):
                b = it["best"].get(dname)
                r.append("" if b is None else f"{fmt_time(b[0])} {b[1]}")
                if b is not None:
                    tot[dname] += m * b[0]
            r.append(fmt_time(it["step"]) if it["step"] is not None else "")
            tot["step"] += m * (it["step"] or 0.0)
            rows.append(r)
        rows.append(["**network (x multiplicity)**", ""] + [f"**{fmt_time(tot[k])}**" for k in
                                                             ("fwd", "bwd_d", "bwd_w", "step")])
        blocks.append(Table(["layer", "mult", "fwd", "bwd_d", "bwd_w", "training step (best per direction)"], rows,
                            align=["l", "r", "r", "r", "r", "r"]))
        bks = g["backends"]
        blocks.append(f"\n{title}: training step (fwd + bwd_d + bwd_w; pools fwd + bwd_d) of each layer per backend\n")
        rows = []
        for it in g["layers"]:
            best = min(it["per_backend"].values()) if it["per_backend"] else float("nan")
            rows.append([it["name"] or it["layer"]] + [
                ("" if b not in it["per_backend"] else
                 (f"**{fmt_time(it['per_backend'][b])}**" if it["per_backend"][b] == best
                  else fmt_time(it["per_backend"][b]))) for b in bks])
        blocks.append(Table(["layer"] + bks, rows))
    return Section("Training step per layer (fwd, bwd_d, bwd_w)", intro=(
        "The three passes a training step runs per layer, as DeepBench and convnet-benchmarks time "
        "them: forward, backward-data (the gradient w.r.t. the input, a transposed convolution) and "
        "backward-weights (dW = correlate(x, dY), benchdnn's op count = forward's). The first table "
        "takes the fastest backend per direction; the second is each backend on its own (bold: the "
        "layer's fastest single backend; empty: it lacks a direction)."), blocks=blocks)

@section("pooling")
def pooling(d: ReportData) -> Section | None:
    if not d.pool_problems:
        return None
    st = d.stream
    dram, l2 = st.get("copy_dram_gbs"), st.get("copy_l2_gbs")
    rows = []
    for prob in d.pool_problems:
        ok = d.passed(prob, d.pool_backends)
        c0 = d.first[prob]
        if not ok:
            rows.append([prob, fmt_bytes(_num(c0.bytes_io)), "(none passed)", "", "", "", ""])
            continue
        b = ok[0]
        g = _num(b.gbs_effective)
        rows.append([prob, fmt_bytes(_num(c0.bytes_io)), f"**{b.backend}**", fmt_time(b.time_median_s),
                     fmt_rate(g, ""), f"{g / dram * 100:.0f}%" if dram else "",
                     f"{g / l2 * 100:.0f}%" if l2 else ""])
    roof = (f"Measured on this machine (meta.json `peaks.stream`): STREAM copy {dram:.1f} GB/s from DRAM, "
            f"{l2:.1f} GB/s within L2; triad {st.get('triad_dram_gbs', float('nan')):.1f} / "
            f"{st.get('triad_l2_gbs', float('nan')):.1f} GB/s. " if dram and l2 else
            "This run recorded no STREAM bandwidth (meta.json `peaks.stream`), so no % of bandwidth. ")
    pivot = d.pivot(lambda c: f"{fmt_time(c.time_median_s)} ({fmt_rate(c.gbs_effective, '')} GB/s)",
                    footnotes=True, problems=d.pool_problems, backends=d.pool_backends)
    err = d.pivot(lambda c: "exact" if _num(c.max_abs_err) == 0 else f"{_num(c.rel_err):.1e}",
                  problems=d.pool_problems, backends=d.pool_backends)
    return Section("Pooling: bytes moved and bandwidth", intro=(
        "Pooling does no multiply-adds worth counting; it is judged by the bytes it must move (input "
        "and output once each, plus the int32 argmax a max pool's backward reads) per second. " + roof
        + "A layer whose bytes fit in L2 can beat the DRAM figure."),
        blocks=[Table(["problem", "bytes moved", "fastest", "median", "GB/s", "% of DRAM copy", "% of L2 copy"],
                      rows), "\nEvery pooling backend, median time (GB/s):\n",
                Table(["problem"] + d.pool_backends, pivot),
                "\nError against the float64 reference (integer data: max and avg_p are exact):\n",
                Table(["problem"] + d.pool_backends, err)])

@section("activations")
def activations_section(d: ReportData) -> Section | None:
    nets = activations(d.df)
    if not nets:
        return None
    blocks = []
    for n in nets:
        rows = []
        for it in n["layers"]:
            shrink = fmt_ratio(it["in_elems"], it["out_elems"]) if it["in_elems"] != it["out_elems"] else "1.00x"
            rows.append([it["name"] or it["layer"], it["kind"], f"x{it['multiplicity']}", it["out_shape"],
                         fmt_count(it["out_elems"]), fmt_bytes(it["out_elems"] * it["itemsize"]), shrink,
                         fmt_count(it["flops"])])
        blocks += [f"### {n['suite']}\n", Table(["layer", "kind", "mult", "output (C x H x W)", "activation elements",
                                                  "bytes per image", "input / output", "direct ops per image"],
                                                 rows, align=["l", "l", "r", "l", "r", "r", "r", "r"])]
    return Section("Activation size through the network", intro=(
        "Each layer's output per image, in network order: stride and pooling shrink the activation "
        "(input / output > 1), and with it the input, and so the op count, of every later layer. "
        "Figure `activations` draws the same columns."), blocks=blocks)
