"""The study's report: ``study/report.md`` and ``study/report.html`` with figures in
``study/plots/``, built from the CSV tables :mod:`.experiment` wrote (render only: nothing
here measures). Sentences quote the measured numbers, whatever they are."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from ..reporting.document import Figure, Section, Table, to_html, to_markdown

__all__ = ["write_study_report"]

LABELS = {"cnn": "CNN (sharing + pooling)", "cnn_stride": "CNN, stride 2 (no pooling)",
          "cnn_gap": "CNN, global max-pool head",
          "locally_connected": "locally connected (no sharing)", "mlp_params": "MLP, CNN's parameters",
          "mlp_flops": "MLP, CNN's FLOPs", "cnn_dilated": "CNN, conv2 dilated 2"}
COLORS = {"cnn": "C0", "cnn_stride": "C1", "locally_connected": "C2", "mlp_params": "C3", "mlp_flops": "C4",
          "cnn_dilated": "C5", "cnn_gap": "C6"}
ARMS = {"centred": "trained centred", "jitter": "trained with shift augmentation"}


def _f(v, nd=3):
    return "" if v is None or (isinstance(v, float) and np.isnan(v)) else f"{v:.{nd}f}"


def _si(v):
    v = float(v)
    for unit, k in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(v) >= k:
            return f"{v / k:.3g}{unit}"
    return f"{v:.3g}"


def _us(s):
    return f"{float(s) * 1e6:.1f}"


def _read(sdir: Path, name: str) -> pd.DataFrame:
    p = sdir / f"{name}.csv"
    if not p.is_file() or p.stat().st_size == 0:
        return pd.DataFrame()
    return pd.read_csv(p)


# ------------------------------------------------------------------------ figures
def _save(fig, plots: Path, stem: str) -> tuple[str, str]:
    plots.mkdir(exist_ok=True)
    for ext in ("png", "svg"):
        fig.savefig(plots / f"{stem}.{ext}", dpi=110 if ext == "png" else None, bbox_inches="tight")
    return f"plots/{stem}.png", f"plots/{stem}.svg"


def _figures(sdir: Path, t: dict, meta: dict, filters: dict) -> list[Figure]:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    plots, figs = sdir / "plots", []
    models, D = t["models"], meta["config"]["max_shift"]
    shifts = list(range(D + 1))

    def add(stem, title, what, fig):
        png, svg = _save(fig, plots, stem)
        plt.close(fig)
        figs.append(Figure(title, what, png, svg))

    # accuracy against parameters
    fig, ax = plt.subplots(figsize=(6, 4))
    for _, r in models.iterrows():
        ax.scatter(r.params, r.acc_shift_0, color=COLORS.get(r.model), s=50, label=f"{LABELS.get(r.model)} (centre)")
        mean = np.mean([r[f"acc_shift_{d}"] for d in shifts])
        ax.scatter(r.params, mean, color=COLORS.get(r.model), marker="x", s=50)
    ax.set_xscale("log")
    ax.set_xlabel("parameters (log)")
    ax.set_ylabel("test accuracy")
    ax.set_title("accuracy against parameter count (o centre, x mean over shifts)")
    ax.legend(fontsize=7)
    ax.grid(alpha=.3)
    add("accuracy_vs_params", "Accuracy against parameter count",
        "Test accuracy at the centre (o) and averaged over every offset (x) against each model's parameters.", fig)

    # accuracy against shift, trained centred and trained with shift augmentation side by side
    inv = t["invariance"]
    arms = list(dict.fromkeys(inv.arm)) if not inv.empty else ["centred"]
    fig, axes = plt.subplots(1, len(arms), figsize=(6 * len(arms), 4.2), sharey=True, squeeze=False)
    for ax, arm in zip(axes[0], arms):
        rows = inv[inv.arm == arm] if not inv.empty else models
        for _, r in rows.iterrows():
            ax.plot(shifts, [r[f"acc_shift_{d}"] for d in shifts], "o-", color=COLORS.get(r.model),
                    label=LABELS.get(r.model), lw=2.5 if r.model == "cnn_gap" else 1.5)
        ax.axhline(0.1, color="grey", ls=":", lw=1, label="chance")
        jit = int(rows.jitter.iloc[0]) if "jitter" in rows and len(rows) else 0
        ax.set_title(ARMS.get(arm, arm) + (f" (offsets up to {jit} px per axis)" if jit else ""), fontsize=10)
        ax.set_xlabel("test offset d (pixels, every position at Chebyshev distance d)")
        ax.set_xticks(shifts)
        ax.grid(alpha=.3)
    axes[0][0].set_ylabel("test accuracy")
    axes[0][-1].legend(fontsize=7)
    add("accuracy_vs_shift", "Accuracy against shift: built in, learned, or neither",
        "Test accuracy of every model at each offset from the centre. Left: trained on centred digits; right "
        "(when run): the same models, the same epochs, trained on digits shifted at random (`--jitter`).", fig)

    # equivariance
    eq = t["equivariance"]
    if not eq.empty:
        fig, ax = plt.subplots(figsize=(6, 4))
        names = {"conv": "conv layer", "conv_pool": "conv + ReLU + max-pool", "dense": "dense layer (same in/out)",
                 "global_pool": "cnn_gap: convolutions + global max pool (no output shift)"}
        for layer, g in eq.groupby("layer", sort=False):
            ax.plot(g["shift"], g.rel_diff, "o-", label=names.get(layer, layer))
        ax.set_xlabel("horizontal input shift d (pixels)")
        ax.set_ylabel("||f(shift x) - shift f(x)|| / ||shift f(x)||")
        ax.set_xticks(sorted(eq["shift"].unique()))
        ax.legend(fontsize=8)
        ax.grid(alpha=.3)
        add("equivariance", "Translation equivariance, measured",
            "Relative difference between f(shift(x)) and shift(f(x)) on the interior, on real test digits "
            "(conv+pool: output shift d/2, the better of floor and ceil for odd d).", fig)

    # first-layer filters
    if filters:
        n = max(len(v) for v in filters.values())
        fig, axes = plt.subplots(len(filters), n, figsize=(1.1 * n, 1.3 * len(filters)), squeeze=False)
        for i, (m, ws) in enumerate(filters.items()):
            for j in range(n):
                ax = axes[i][j]
                ax.axis("off")
                if j < len(ws):
                    lim = float(np.abs(ws[j]).max()) or 1.0
                    ax.imshow(ws[j], cmap="RdBu_r", vmin=-lim, vmax=lim)
                if j == 0:
                    ax.set_title(LABELS.get(m, m), fontsize=7, loc="left")
        add("filters", "Learned first-layer filters", "The 3x3 filters of the first convolution after training "
            "(red positive, blue negative).", fig)

    # computation per layer and receptive fields
    lay = t["layers"]
    if not lay.empty:
        fig, (a1, a2) = plt.subplots(1, 2, figsize=(12, 4.5))
        ms = list(models.model)
        for i, m in enumerate(ms):
            g = lay[(lay.model == m) & (lay.flops_fwd > 0)]
            bottom = 0
            for _, r in g.iterrows():
                a1.bar(i, r.flops_fwd, bottom=bottom, color=COLORS.get(m), edgecolor="white", alpha=.85)
                if r.flops_fwd > 0.04 * g.flops_fwd.sum():
                    a1.text(i, bottom + r.flops_fwd / 2, f"{r.layer}\nRF {r.receptive_field}", ha="center",
                            va="center", fontsize=6)
                bottom += r.flops_fwd
        a1.set_xticks(range(len(ms)))
        a1.set_xticklabels([m.replace("_", "\n") for m in ms], fontsize=7)
        a1.set_ylabel("forward FLOPs per image")
        a1.set_title("what each layer spends (RF: receptive field, px)")
        for m in ("cnn", "cnn_stride", "cnn_dilated"):
            g = lay[(lay.model == m) & lay.layer.str.match(r"^(conv|pool)")]
            if not g.empty:
                a2.plot(range(len(g)), g.receptive_field, "o-", color=COLORS.get(m), label=LABELS.get(m))
                for k, (_, r) in enumerate(g.iterrows()):
                    a2.annotate(r.layer, (k, r.receptive_field), fontsize=6, xytext=(2, 3),
                                textcoords="offset points")
        a2.set_xlabel("layer (conv and pool, in order)")
        a2.set_ylabel("receptive field (pixels)")
        a2.set_title("receptive field: stride, pooling and dilation (same parameters)")
        a2.legend(fontsize=7)
        a2.grid(alpha=.3)
        add("computation", "Computation per layer and receptive fields",
            "Left: forward FLOPs per image of each layer, stacked per model. Right: the receptive field after "
            "each conv/pool layer for the CNN, the stride-2 CNN and a CNN whose conv2 is dilated by 2 "
            "(the same parameters).", fig)

    # the prior: accuracy against training-set size
    sz = t["accuracy_vs_size"]
    if not sz.empty:
        fig, ax = plt.subplots(figsize=(6, 4))
        for m, g in sz.groupby("model", sort=False):
            ax.plot(g.train_images, g.acc_shift_0, "o-", color=COLORS.get(m), label=LABELS.get(m))
        ax.set_xscale("log")
        ax.set_xlabel("training images (log)")
        ax.set_ylabel("test accuracy (centred)")
        ax.legend(fontsize=7)
        ax.grid(alpha=.3)
        add("accuracy_vs_size", "The prior, measured: accuracy against training-set size",
            "Centred test accuracy of each model trained on subsets of the training set.", fig)
    return figs


# ----------------------------------------------------------------------- findings
def _findings(t: dict, meta: dict) -> list[str]:
    m = t["models"].set_index("model")
    D = meta["config"]["max_shift"]
    out = []
    cfg = meta["config"]
    if cfg["epochs"] == 0:
        out.append(f"No training ran (`--epochs 0`): every accuracy is of the initial weights, against a chance "
                   f"level of {meta['chance']:.2f}.")
    acc0 = ", ".join(f"{LABELS.get(k, k)} {v:.3f}" for k, v in m.acc_shift_0.items())
    out.append(f"Centred test accuracy: {acc0}.")
    if D > 0:
        accD = ", ".join(f"{k} {v:.3f}" for k, v in m[f"acc_shift_{D}"].items())
        out.append(f"At offset {D} (every position at distance {D}): {accD}.")
        keep = {k: m.loc[k, f"acc_shift_{min(1, D)}"] / m.loc[k, "acc_shift_0"] for k in m.index
                if m.loc[k, "acc_shift_0"] > 0}
        if keep:
            best = max(keep, key=keep.get)
            worst = min(keep, key=keep.get)
            out.append(f"A one-pixel offset keeps {keep[best]:.0%} of the centred accuracy for {best} and "
                       f"{keep[worst]:.0%} for {worst}.")
    if "locally_connected" in m.index and "cnn" in m.index:
        r = m.loc["locally_connected", "params"] / m.loc["cnn", "params"]
        out.append(f"Parameter sharing: the locally connected network has the CNN's receptive fields and "
                   f"{r:.1f}x its parameters ({int(m.loc['locally_connected', 'params'])} vs "
                   f"{int(m.loc['cnn', 'params'])}); centred accuracy {m.loc['locally_connected', 'acc_shift_0']:.3f} "
                   f"vs {m.loc['cnn', 'acc_shift_0']:.3f}.")
    if "cnn_stride" in m.index and "cnn" in m.index:
        r = m.loc["cnn", "flops_fwd"] / m.loc["cnn_stride", "flops_fwd"]
        out.append(f"Stride instead of pooling: the stride-2 CNN needs {r:.1f}x fewer forward FLOPs "
                   f"({_si(m.loc['cnn_stride', 'flops_fwd'])} vs {_si(m.loc['cnn', 'flops_fwd'])} per image) and "
                   f"{m.loc['cnn', 'activation_bytes'] / m.loc['cnn_stride', 'activation_bytes']:.1f}x fewer "
                   f"activation bytes, at centred accuracy {m.loc['cnn_stride', 'acc_shift_0']:.3f} vs "
                   f"{m.loc['cnn', 'acc_shift_0']:.3f}.")
    eq = t["equivariance"]
    if not eq.empty and (eq["shift"] > 0).any():
        e = eq[eq["shift"] > 0]
        parts = []
        for layer, g in e.groupby("layer", sort=False):
            if layer == "conv_pool":
                ev, od = g[g["shift"] % 2 == 0].rel_diff, g[g["shift"] % 2 == 1].rel_diff
                parts.append(f"conv + pool {'exactly 0' if ev.max() == 0 else f'at most {ev.max():.3g}'} at even "
                             f"shifts (a whole pooled pixel) and "
                             f"{od.min():.3g}..{od.max():.3g} at odd ones" if len(ev) else
                             f"conv + pool {od.min():.3g}..{od.max():.3g} at odd shifts")
            elif layer == "global_pool":
                parts.append("the global-pool model's features, compared with no output shift at all, "
                             + ("exactly 0 at every shift" if g.rel_diff.max() == 0 else
                                f"{g.rel_diff.min():.3g}..{g.rel_diff.max():.3g}")
                             + " (exactly invariant while the digit, widened by the two convolutions' 5-pixel "
                               "receptive field, stays off the canvas' zero padding; a border effect is all that "
                               "can differ)")
            elif g.rel_diff.max() == 0:
                parts.append(f"{layer} exactly 0 at every shift")
            else:
                parts.append(f"{layer} {g.rel_diff.min():.3g}..{g.rel_diff.max():.3g}")
        out.append("Equivariance, relative difference of f(shift(x)) and shift(f(x)) on the interior over shifts "
                   f"1..{int(eq['shift'].max())}: " + "; ".join(parts) + ".")
    out += _invariance_findings(t, D)
    sz = t["accuracy_vs_size"]
    if not sz.empty:
        n0 = int(sz.train_images.min())
        g = sz[sz.train_images == n0].set_index("model").acc_shift_0
        out.append(f"With {n0} training images: " + ", ".join(f"{k} {v:.3f}" for k, v in g.items()) + ".")
    sd = t["seeds"]
    if not sd.empty:
        s0 = sd[sd["shift"] == 0]
        big = s0.loc[s0["diff"].abs().idxmax()]
        out.append(f"Seeds {cfg['seed']} and {cfg['seed'] + 1} differ by up to {abs(big['diff']):.3f} in centred "
                   f"accuracy ({big.model}); the mean absolute difference is {s0['diff'].abs().mean():.3f}.")
    inf = t["inference"]
    if not inf.empty:
        fast = inf[inf.fastest.astype(str) == "True"].set_index("model")
        peer = inf[inf.peer.astype(str) == "True"]
        out.append("Fastest inference per image on convbench's own backends: " + ", ".join(
            f"{k} {_us(r.s_per_image)} us ({r.backend})" for k, r in fast.iterrows()) + "." + "".join(
            f" The peer {r.backend} takes {_us(r.s_per_image)} us on {r.model}: the fastest own backend is "
            + (f"{fast.loc[r.model, 's_per_image'] / r.s_per_image:.2f}x slower."
               if fast.loc[r.model, "s_per_image"] > r.s_per_image else
               f"{r.s_per_image / fast.loc[r.model, 's_per_image']:.2f}x faster.") for _, r in peer.iterrows()))
    ins = t["insitu"]
    if not ins.empty:
        out.append("In situ against isolated (the CNN's forward pass / the sum of its layers timed alone): " +
                   ", ".join(f"{r.backend} {r.ratio:.2f}" for _, r in ins.iterrows()) + ".")
    return out


def _invariance_findings(t: dict, D: int) -> list[str]:
    """Sentences from ``invariance.csv``: which models keep their accuracy under shift in each
    training arm, and what that cost them in parameters, FLOPs and training time."""
    inv = t["invariance"]
    if inv.empty or D == 0:
        return []
    out = []
    for arm, g in inv.groupby("arm", sort=False):
        g = g.set_index("model")
        # holding accuracy: 80% of its centred accuracy kept, and that accuracy at least 5x chance (0.5)
        hold = [m for m in g.index if g.loc[m, "kept_at_max_shift"] >= 0.8 and g.loc[m, f"acc_shift_{D}"] >= 0.5]
        low = [m for m in g.index if g.loc[m, "acc_shift_0"] < 0.5]
        kept = ", ".join(f"{m} {g.loc[m, f'acc_shift_{D}']:.3f} ({g.loc[m, 'kept_at_max_shift']:.0%})" for m in g.index)
        out.append(f"{ARMS.get(arm, arm).capitalize()}"
                   + (f" (offsets up to {int(g.jitter.iloc[0])} px)" if arm != "centred" else "")
                   + f", accuracy at offset {D} (share of the centred accuracy kept): {kept}. "
                   + (f"Holding 80% or more of it, at 0.5 or above: {', '.join(hold)}." if hold else
                      "No model holds 80% of it at 0.5 or above.")
                   + (f" Not learned in {int(t['training'].epoch.max()) if not t['training'].empty else '?'} "
                      f"epochs (centred accuracy under 0.5, so a share kept means nothing): {', '.join(low)}."
                      if low else ""))
    c = inv[inv.arm == "centred"].set_index("model")
    if "cnn_gap" in c.index and "cnn" in c.index:
        a, b = c.loc["cnn_gap"], c.loc["cnn"]
        out.append(f"Built in: the global-pool CNN has {int(a.params)} parameters against the CNN's {int(b.params)} "
                   f"and {_si(a.flops_fwd)} forward FLOPs per image against {_si(b.flops_fwd)}; trained centred it "
                   f"scores {a.acc_shift_0:.3f} at the centre (the CNN {b.acc_shift_0:.3f}) and "
                   f"{a[f'acc_shift_{D}']:.3f} at offset {D} (the CNN {b[f'acc_shift_{D}']:.3f}): built-in invariance "
                   f"cost {b.acc_shift_0 - a.acc_shift_0:.3f} of centred accuracy and {a.flops_fwd / b.flops_fwd:.1f}x "
                   f"the FLOPs (its second convolution runs on the unpooled plane), and saved "
                   f"{b.params - a.params:.0f} parameters (pooling over space replaces the position-bound dense "
                   f"head).")
    j = inv[inv.arm == "jitter"].set_index("model")
    if not j.empty:
        parts = []
        for m in j.index:
            if m in c.index:
                t_c, t_j = c.loc[m, "train_s_per_epoch"], j.loc[m, "train_s_per_epoch"]
                n_c, n_j = c.loc[m, "images_to_90"], j.loc[m, "images_to_90"]
                parts.append(f"{m} {c.loc[m, f'acc_shift_{D}']:.3f} -> {j.loc[m, f'acc_shift_{D}']:.3f} at offset {D}, "
                             f"centred {c.loc[m, 'acc_shift_0']:.3f} -> {j.loc[m, 'acc_shift_0']:.3f}, "
                             f"{_f(t_c, 2)} -> {_f(t_j, 2)} s per epoch, "
                             f"{_n(n_c)} -> {_n(n_j)} training images to 90% of its best centred accuracy")
        out.append("Learned instead (centred -> shift-augmented training, equal epochs): " + "; ".join(parts) + ".")
    return out


def _n(v) -> str:
    return "never" if v is None or (isinstance(v, float) and np.isnan(v)) else f"{int(v)}"


def write_study_report(sdir: Path, filters: dict | None = None, plots: bool = True) -> dict:
    """Write ``report.md`` and ``report.html`` (and the figures) for a study directory."""
    sdir = Path(sdir)
    meta = json.loads((sdir / "meta.json").read_text())
    t = {n: _read(sdir, n) for n in ("models", "layers", "equivariance", "accuracy_vs_size", "seeds", "inference",
                                     "insitu", "training", "engine", "fallbacks", "invariance", "curves")}
    cfg = meta["config"]
    D = cfg["max_shift"]
    secs = [Section("convbench study: convolution against a dense network on an image task", level=1, key="header",
                    intro=(f"scikit-learn's bundled digits ({meta['train_images']} training and "
                           f"{meta['test_images']} held-out test images, seed {cfg['seed']}), each 8x8 digit on a "
                           f"{cfg['canvas']}x{cfg['canvas']} canvas. Training images sit at the centre"
                           + (f"; every model is also trained, at the same epochs, on digits shifted at random by up "
                              f"to {cfg['jitter']} px per axis (shift augmentation)" if cfg['jitter'] else "") +
                           f"; test images at the centre and at every offset up to {D} px. All models: SGD with "
                           f"momentum {cfg['momentum']}, learning rate {cfg['lr']}, batch {cfg['batch']}, "
                           f"{cfg['epochs']} epochs, {cfg['threads']} thread(s), float32. Convolutions and pooling "
                           f"run on convbench's own kernels (forward, transposed convolution for the input "
                           f"gradient, conv2d_weight for the weight gradient; pooling on {cfg['pool_backend']}); "
                           f"dense and locally connected layers are BLAS GEMMs."
                           + (" Quick mode (`--quick`): fewer epochs, test images and shifts." if cfg["quick"] else "")
                           + (f" {meta['shift_note']}." if meta.get("shift_note") else "")))]
    secs.append(Section("What was measured", blocks=["\n".join(f"- {s}" for s in _findings(t, meta))]))
    m = t["models"]
    heads = ["model", "params", "FLOPs fwd / image", "FLOPs train step / image", "activation bytes"] + \
        [f"acc d={d}" for d in range(D + 1)] + ["train s/epoch", "infer us/image (backend)", "trained on"]
    rows = [[r.model, int(r.params), _si(r.flops_fwd), _si(r.flops_step), _si(r.activation_bytes)] +
            [_f(r[f"acc_shift_{d}"]) for d in range(D + 1)] +
            [_f(r.train_s_per_epoch), f"{_us(r.infer_s_per_image)} ({r.infer_backend})", r.backend]
            for _, r in m.iterrows()]
    secs.append(Section("Models", intro="One row per model (`models.csv`). FLOPs are counted per image "
                        "(multiply-adds x 2 over the taps inside the input, plus bias, ReLU and pooling "
                        "operations); a training step adds the weight gradient and every input gradient but "
                        "the first layer's (not computed). Activation bytes: float32 outputs of every layer, "
                        "one image.", blocks=[Table(heads, rows)]))
    inv = t["invariance"]
    if not inv.empty:
        heads = ["model", "training", "params", "FLOPs fwd / image", "train s/epoch", "images to 90%"] + \
            [f"acc d={d}" for d in range(D + 1)] + [f"kept at d={D}"]
        rows = [[r.model, ARMS.get(r.arm, r.arm), int(r.params), _si(r.flops_fwd), _f(r.train_s_per_epoch, 2),
                 _n(r.images_to_90)] + [_f(r[f"acc_shift_{d}"]) for d in range(D + 1)] +
                [f"{r.kept_at_max_shift:.0%}" if r.kept_at_max_shift == r.kept_at_max_shift else ""]
                for _, r in inv.iterrows()]
        secs.append(Section("Where translation invariance comes from", intro=(
            "`invariance.csv`: every model trained centred and, at equal epochs, with shift augmentation. "
            "`images to 90%`: training images seen (steps x batch) until the model's centred test accuracy first "
            "reached 90% of the best it reached in that run (checked four times per epoch; 0: the initial "
            "weights already did). `kept`: accuracy at the largest offset over the centred accuracy. Training "
            "seconds per epoch are measured (the checkpoints' evaluation is not counted)."),
            blocks=[Table(heads, rows)]))
    arch = [f"- **{r.model}**: {r.architecture}" + (f" ({r.note})" if isinstance(r.note, str) and r.note else "")
            for _, r in m.iterrows()]
    secs.append(Section("Architectures", blocks=["\n".join(arch)]))
    lay = t["layers"]
    if not lay.empty:
        secs.append(Section("Layers", intro="Per layer (`layers.csv`): output shape (channels x h x w), "
                            "parameters, forward FLOPs per image and the receptive field in input pixels. "
                            "`cnn_dilated` (conv2 dilated by 2, same parameters) is not trained; it shows how "
                            "dilation widens the field.",
                            blocks=[Table(["model", "layer", "output", "params", "FLOPs fwd", "receptive field"],
                                          [[r.model, r.layer, r.out_shape, int(r.params), _si(r.flops_fwd),
                                            int(r.receptive_field)] for _, r in lay.iterrows()])]))
    inf = t["inference"]
    if not inf.empty:
        backends = list(dict.fromkeys(inf.backend))
        piv = inf.pivot_table(index="backend", columns="model", values="s_per_image", aggfunc="first")
        peers = set(inf[inf.peer.astype(str) == "True"].backend)
        rows = [[be + (" (peer)" if be in peers else "")] +
                [(_us(piv.loc[be, mm]) if mm in piv.columns and not np.isnan(piv.loc[be, mm]) else "")
                 for mm in piv.columns] for be in backends]
        secs.append(Section("Inference time per image, per backend",
                            intro=f"Microseconds per image, batches of {int(inf.batch.iloc[0])} centred test images, "
                                  "medians of interleaved rounds after an untimed first call (`inference.csv` has "
                                  "the first-call times). `blas`: the model has no convolution.",
                            blocks=[Table(["backend"] + list(piv.columns), rows)]))
    ins = t["insitu"]
    if not ins.empty:
        secs.append(Section("In situ against isolated", intro="The CNN's whole forward pass per backend against "
                            "the sum of its conv and pool layers each timed alone by convbench's runner (same batch, "
                            "backend and threads), plus ReLU, flatten and the dense layer timed alone.",
                            blocks=[Table(["backend", "in situ ms", "isolated sum ms", "ratio", "runner layers"],
                                          [[r.backend, _f(r.insitu_s * 1e3), _f(r.isolated_sum_s * 1e3),
                                            _f(r.ratio, 2), r.layers] for _, r in ins.iterrows()])]))
    eng = t["engine"]
    if not eng.empty:
        rows = [[r.model, r.backend, "yes" if str(r.chosen) == "True" else "",
                 _f(r.step_s * 1e3 if isinstance(r.step_s, float) else np.nan, 2),
                 _f(r.first_call_s if isinstance(r.first_call_s, float) else np.nan, 3),
                 r.note if isinstance(r.note, str) else ""] for _, r in eng.iterrows()]
        blocks = [Table(["model", "backend", "chosen", "train step ms", "first call s", "note"], rows)]
        fb = t["fallbacks"]
        if not fb.empty:
            blocks.append("Fallbacks (a backend without that direction):\n\n" + "\n".join(
                f"- {r.note} (models: {r.models})" for _, r in fb.iterrows()))
        secs.append(Section("Engine", intro=("`--backend auto`: per model, the own backend with the fastest "
                                             "measured training step (one batch, forward and backward, "
                                             "interleaved rounds). " if cfg["backend"] == "auto" else
                                             f"`--backend {cfg['backend']}`. ")
                            + "First calls (JIT compilation, plans) are timed apart.", blocks=blocks))
    sd = t["seeds"]
    if not sd.empty:
        cols = [c for c in sd.columns if c.startswith("acc_seed_")]
        secs.append(Section("Two seeds", intro="Every model trained again at the next seed (weights and batch "
                            "order); the split stays. Differences are reported, not hidden.",
                            blocks=[Table(["model", "shift"] + cols + ["difference"],
                                          [[r.model, int(r["shift"])] + [_f(r[c]) for c in cols] + [_f(r["diff"])]
                                           for _, r in sd.iterrows()])]))
    eq = t["equivariance"]
    if not eq.empty:
        secs.append(Section("Equivariance", intro="`equivariance.csv`: rel_diff on the interior (the output region "
                            "whose inputs stay inside the canvas for x and shift(x)).",
                            blocks=[Table(["layer", "shift", "rel_diff", "output shift", "interior positions"],
                                          [[r.layer, int(r["shift"]), f"{r.rel_diff:.3g}", int(r.out_shift),
                                            int(r.interior_positions)] for _, r in eq.iterrows()])]))
    sz = t["accuracy_vs_size"]
    if not sz.empty:
        piv = sz.pivot_table(index="train_images", columns="model", values="acc_shift_0", aggfunc="first")
        ep = sz.groupby("train_images").epochs.first()
        secs.append(Section("Training-set size", intro="Each subset trains for the optimiser steps of half the "
                            "main run's epochs on the full set (capped at 200 epochs), centred test accuracy.",
                            blocks=[Table(["images", "epochs"] + list(piv.columns),
                                          [[int(n), int(ep[n])] + [_f(piv.loc[n, c]) for c in piv.columns]
                                           for n in piv.index])]))
    if filters is None and (sdir / "filters.npz").is_file():
        with np.load(sdir / "filters.npz") as z:
            filters = {k: z[k] for k in z.files}
    figs = _figures(sdir, t, meta, filters or {}) if plots else []
    if figs:
        secs.insert(2, Section("Figures", blocks=figs, key="figures"))
    (sdir / "report.md").write_text(to_markdown(secs))
    (sdir / "report.html").write_text(to_html(secs, sdir, title="convbench study"))
    return {"report_md": sdir / "report.md", "report_html": sdir / "report.html", "figures": len(figs)}
