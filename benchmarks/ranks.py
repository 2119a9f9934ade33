"""The 1-D and 3-D floors and the crossover table (``make floors-ranks``), ratios from one run.

Issue 25's floors, measured with the runner (every cell checked against the float64
reference, backends of one problem timed interleaved), 1 thread, mb1, forward:

- every 3x3x3 stride-1 layer of I3D, 3-D U-Net and ResNeXt-101-3D: the best own backend
  against PyTorch/oneDNN, floor 1.3x;
- the whole networks, layers times their multiplicity, the best own backend per layer
  against oneDNN on the same layers (pooling layers with the pooling backends), floor 1.5x;
- every WaveNet and text-CNN layer (1-D): best own against oneDNN, floor 1.0x;
- X3D's depthwise 3-D layers, measured and shown (no floor);
- where each algorithm family wins in 3-D as the volume and the kernel grow, against the
  same ladders in 2-D, with the crossover points.

Nothing asserts: the script writes ``ranks.md`` (and prints it); the exit status is 0
unless a run itself failed.

Usage::

    python benchmarks/ranks.py [--out DIR] [--skip-networks] [--skip-crossover] [--tables-only]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

OWN = ("direct_numba", "im2col_blas", "fft_pyfftw", "winograd_f2x3", "winograd_f4x3", "winograd_f6x3",
       "winograd_f2x5", "winograd_f4x5")
OWN_POOL = ("pool_numba", "pool_numpy")
PEER, PEER_POOL = "torch_onednn", "pool_torch"
NETS_3D = ("i3d", "unet3d", "resnext101_3d")
NETS_1D = ("wavenet", "textcnn")
#: measured and shown, no floor: X3D's depthwise 3-D layers
NETS_INFO = ("x3d_dw",)
#: the crossover ladders: 16 -> 16 channels, 'same' padding, sides per rank
LADDERS = {3: (8, 12, 16, 24, 32, 48), 2: (16, 32, 64, 128, 256, 512)}
KERNELS = (3, 5, 7)


def _run(cli, out: Path, args: list, a) -> "object":
    from convbench.results import load_summary
    if a.tables_only:
        return load_summary(out)
    argv = ["run", "--out", str(out), "--threads", "1", "--min-time", a.min_time, "--max-time", a.max_time,
            "--min-rounds", "3", "--cell-budget", a.cell_budget, "--fftw-wisdom", "off", "--no-plots"] + args
    status = cli(argv)
    if status != 0:
        raise SystemExit(status)
    return load_summary(out)


def _best(df, prob, names):
    ok = df[(df.problem == prob) & df.backend.isin(names) & (df.status == "passed")]
    if ok.empty:
        return None, float("nan")
    r = ok.sort_values("time_median_s").iloc[0]
    return r.backend, float(r.time_median_s)


def _verdict(ratio, floor) -> str:
    return "not measured" if ratio != ratio else ("meets" if ratio >= floor else "BELOW")


def network_tables(df) -> list[str]:
    """Per-layer floors (3x3x3 stride 1 in 3-D, every layer in 1-D) and whole-network roll-ups."""
    lines = ["## Layers (best own vs oneDNN, 1 thread, mb1, fwd)", "",
             "| suite | layer | x | best own | own | oneDNN | speed-up | floor | verdict |",
             "| :--- | :--- | ---: | :--- | ---: | ---: | ---: | ---: | :--- |"]
    rolls = ["", "## Whole networks (layers x multiplicity, best own per layer)", "",
             "| suite | layers | own | oneDNN | speed-up | floor | verdict | layers left out |",
             "| :--- | ---: | ---: | ---: | ---: | ---: | :--- | :--- |"]
    for suite in NETS_3D + NETS_INFO + NETS_1D:
        sub = df[(df.suite == suite) & (df.backend != "*")]
        own_t = peer_t = 0.0
        n = 0
        missing = []
        for prob in dict.fromkeys(sub.problem):
            r0 = sub[sub.problem == prob].iloc[0]
            pool = r0.kind == "pool"
            who, mine = _best(sub, prob, OWN_POOL if pool else OWN)
            _, peer = _best(sub, prob, (PEER_POOL,) if pool else (PEER,))
            mult = int(r0.multiplicity)
            if mine == mine and peer == peer:
                own_t += mult * mine
                peer_t += mult * peer
                n += 1
            else:
                missing.append(str(r0["name"] or prob))
            judged = not pool and (suite in NETS_1D + NETS_INFO or (
                (int(r0.kd), int(r0.kh), int(r0.kw)) == (3, 3, 3) and max(r0.sd, r0.sh, r0.sw) == 1))
            if judged:
                floor = 1.0 if suite in NETS_1D else 1.3
                ratio = peer / mine if mine == mine and peer == peer else float("nan")
                verdict, shown = (_verdict(ratio, floor), f"{floor}x") if suite not in NETS_INFO else ("info", "-")
                lines.append(f"| {suite} | `{r0['name'] or prob}` `{r0.descriptor}` | {mult} | {who or '-'} | "
                             f"{mine * 1e3:.2f} ms | {peer * 1e3:.2f} ms | {ratio:.2f}x | {shown} | {verdict} |")
        if suite in NETS_3D + NETS_INFO and n:
            ratio = peer_t / own_t
            info = suite in NETS_INFO
            rolls.append(f"| {suite} | {n} | {own_t * 1e3:.1f} ms | {peer_t * 1e3:.1f} ms | {ratio:.2f}x | "
                         f"{'-' if info else '1.5x'} | {'info' if info else _verdict(ratio, 1.5)} | "
                         f"{', '.join(missing) or '-'} |")
    return lines + rolls


def crossover_table(df) -> list[str]:
    """The winning family per (rank, kernel, side), its margin over the next family, and the
    side from which FFT and Winograd win."""
    df = df[(df.status == "passed") & df.backend.isin(OWN)]
    lines = ["", "## Where each family wins, 3-D against 2-D (16 -> 16 channels, 'same' padding)", "",
             "Cell: the fastest family and its margin over the fastest other family. A family is its best "
             "backend (Winograd's best tile, FFT's pyFFTW).", ""]
    for rank, sides in LADDERS.items():
        lines += [f"| {rank}-D kernel | " + " | ".join(f"{s}^{rank}" for s in sides) + " | FFT wins from | "
                  "Winograd wins from |", "| :--- |" + " ---: |" * (len(sides) + 2)]
        for k in KERNELS:
            cells, first = [], {"fft": None, "winograd": None}
            for s in sides:
                sub = df[(df["rank"] == rank) & (df.kw == k) & (df.iw == s)]
                fam = sub.groupby("algorithm").time_median_s.min().sort_values()
                if fam.empty:
                    cells.append("-")
                    continue
                win = fam.index[0]
                margin = fam.iloc[1] / fam.iloc[0] if len(fam) > 1 else float("nan")
                cells.append(f"{win} {margin:.2f}x" if margin == margin else win)
                if win in first and first[win] is None:
                    first[win] = s
            lines.append(f"| {'x'.join([str(k)] * rank)} | " + " | ".join(cells) + " | " +
                         " | ".join("-" if first[f] is None else f"{first[f]}^{rank} ({first[f] ** rank} elements)"
                                    for f in ("fft", "winograd")) + " |")
        lines.append("")
    return lines


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=None)
    ap.add_argument("--min-time", default="0.05")
    ap.add_argument("--max-time", default="0.6")
    ap.add_argument("--cell-budget", default="6", help="seconds one run of a cell may take before it is skipped")
    ap.add_argument("--skip-networks", action="store_true")
    ap.add_argument("--skip-crossover", action="store_true")
    ap.add_argument("--tables-only", action="store_true", help="write the tables from the runs already in --out")
    a = ap.parse_args(argv)
    out = Path(a.out or f"results/ranks-{time.strftime('%Y%m%d-%H%M%S')}")
    from convbench.cli import main as cli  # applies the BLAS kernel set before numpy loads
    from convbench.blas import blas_status
    kernels = ", ".join(sorted({lib.get("architecture") or "?" for lib in blas_status()["libraries"]})) or "unknown"
    text = ["# 1-D and 3-D floors (ratios from one run, interleaved)", "",
            f"1 thread, mb1, float32; OpenBLAS kernels: {kernels}.", ""]
    if not a.skip_networks:
        args = ["--batch", "1", "--backends", ",".join(OWN + OWN_POOL + (PEER, PEER_POOL))]
        for s in NETS_3D + NETS_INFO + NETS_1D:
            args += ["--suite", s]
        text += network_tables(_run(cli, out / "networks", args, a))
    if not a.skip_crossover:
        import pandas as pd
        frames = []
        for rank, sides in LADDERS.items():
            args = ["--sizes", ",".join(map(str, sides)), "--kernels", ",".join(map(str, KERNELS)), "--rank",
                    str(rank), "--channels", "16", "--padding", "same", "--backends", ",".join(OWN)]
            frames.append(_run(cli, out / f"crossover-{rank}d", args, a))
        text += crossover_table(pd.concat(frames, ignore_index=True))
    body = "\n".join(text) + "\n"
    out.mkdir(parents=True, exist_ok=True)
    (out / "ranks.md").write_text(body)
    print(body)
    print(f"written to {out}/ranks.md")
    return 0


if __name__ == "__main__":
    from convbench.blas import apply_coretype
    apply_coretype("auto")
    sys.exit(main())
