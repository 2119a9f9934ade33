"""Speed floors from the issues, measured as ratios in one run (``make floors``).

Each floor names a problem, a backend (or a glob of backends, best one counts), a
peer it is compared with and the minimum speed ratio ``time(peer) / time(backend)``.
All cells of one problem are timed interleaved by the runner, so a ratio is taken
under the same machine conditions for both sides. Nothing here asserts: the script
prints a table (and writes ``floors.md`` next to the run's tables) with each ratio
and whether it meets its floor; the exit status is 0 either way unless the run
itself failed. Speed targets live here, never in unit tests.

Usage::

    python benchmarks/floors.py [--out DIR] [--threads N] [--max-time S]
"""

from __future__ import annotations

import argparse
import fnmatch
import sys
import time
from pathlib import Path

# (issue, problem, backend or glob, peer, minimum ratio, wording)
FLOORS = [
    (2, "mb1ic64ih56oc64kh3ph1", "direct_numba", "torch_onednn", 0.3, ">= 0.3x torch"),
    (2, "mb1ic1ih1024oc1kh7ph3", "direct_numba", "scipy_ndimage", 1.0, "faster than ndimage.correlate"),
    (2, "mb1ic64ih56oc64kh3ph1", "im2col_blas", "torch_onednn", 0.7, ">= 0.7x torch"),
    (2, "mb1ic128ih28oc128kh3ph1", "im2col_blas", "torch_onednn", 0.7, ">= 0.7x torch"),
    (2, "mb1ic256ih14oc256kh3ph1", "im2col_blas", "torch_onednn", 0.7, ">= 0.7x torch"),
    (2, "mb1ic512ih7oc512kh3ph1", "im2col_blas", "torch_onednn", 0.7, ">= 0.7x torch"),
    (3, "mb1ic1ih256oc1kh15ph7", "fft_pyfftw", "scipy_fftconv", 1.3, ">= 1.3x fftconvolve"),
    (3, "mb1ic1ih256oc1kh31ph15", "fft_pyfftw", "scipy_fftconv", 1.3, ">= 1.3x fftconvolve"),
    (3, "mb1ic1ih1024oc1kh15ph7", "fft_pyfftw", "scipy_fftconv", 1.3, ">= 1.3x fftconvolve"),
    (3, "mb1ic1ih1024oc1kh31ph15", "fft_pyfftw", "scipy_fftconv", 1.3, ">= 1.3x fftconvolve"),
    (3, "mb1ic1ih256oc1kh15ph7", "fft_pyfftw", "torch_onednn", 10.0, ">= 10x torch"),
    (3, "mb1ic1ih256oc1kh31ph15", "fft_pyfftw", "torch_onednn", 10.0, ">= 10x torch"),
    (3, "mb1ic1ih1024oc1kh15ph7", "fft_pyfftw", "torch_onednn", 10.0, ">= 10x torch"),
    (3, "mb1ic1ih1024oc1kh31ph15", "fft_pyfftw", "torch_onednn", 10.0, ">= 10x torch"),
    (3, "mb1ic64ih56oc64kh3ph1", "winograd_*", "torch_onednn", 1 / 1.5, "within 1.5x of torch (aim: faster)"),
    (3, "mb1ic128ih28oc128kh3ph1", "winograd_*", "torch_onednn", 1.0, "faster than torch"),
    (3, "mb1ic256ih14oc256kh3ph1", "winograd_*", "torch_onednn", 1.0, "faster than torch"),
    (3, "mb1ic512ih7oc512kh3ph1", "winograd_*", "torch_onednn", 1 / 1.5, "within 1.5x of torch (aim: faster)"),
]


def backends_needed() -> list[str]:
    names = set()
    for _, _, b, peer, _, _ in FLOORS:
        names.add(peer)
        names.add(b)
    return sorted(names)


def evaluate(df) -> list[dict]:
    """Ratio and verdict for every floor, from a summary DataFrame."""
    out = []
    for issue, prob, pattern, peer, floor, wording in FLOORS:
        sub = df[(df.descriptor == prob) & (df.status == "passed")]
        peer_t = sub[sub.backend == peer].time_median_s
        mine = sub[[fnmatch.fnmatch(b, pattern) for b in sub.backend]]
        row = dict(issue=issue, problem=prob, backend=pattern, peer=peer, floor=floor, wording=wording)
        if peer_t.empty or mine.empty:
            row.update(ratio=float("nan"), verdict="not measured", who="")
        else:
            best = mine.sort_values("time_median_s").iloc[0]
            ratio = float(peer_t.iloc[0] / best.time_median_s)
            row.update(ratio=ratio, who=best.backend, verdict="meets" if ratio >= floor else "BELOW")
        out.append(row)
    return out


def render(rows: list[dict]) -> str:
    lines = ["| issue | problem | backend | vs | ratio (speed) | floor | verdict |",
             "| ---: | :--- | :--- | :--- | ---: | :--- | :--- |"]
    for r in rows:
        who = r["who"] if r["who"] and r["who"] != r["backend"] else r["backend"]
        lines.append(f"| {r['issue']} | `{r['problem']}` | {who} | {r['peer']} | {r['ratio']:.2f}x | "
                     f"{r['wording']} | {r['verdict']} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=None)
    ap.add_argument("--threads", default="1")
    ap.add_argument("--max-time", default="3")
    ap.add_argument("--min-time", default="1")
    a = ap.parse_args(argv)
    out = Path(a.out or f"results/floors-{time.strftime('%Y%m%d-%H%M%S')}")
    from convbench.cli import main as cli  # applies the BLAS kernel set before numpy loads
    problems = list(dict.fromkeys(p for _, p, *_ in FLOORS))
    from convbench.backends import available_backends  # noqa: E402  (after the CLI's import order)
    wanted = backends_needed()
    avail = set(available_backends())
    names = sorted({n for n in avail for w in wanted if fnmatch.fnmatch(n, w)})
    argv_run = ["run", "--out", str(out), "--threads", a.threads, "--min-time", a.min_time,
                "--max-time", a.max_time, "--min-rounds", "15", "--backends", ",".join(names)]
    for p in problems:
        argv_run += ["--problem", p]
    status = cli(argv_run)
    if status != 0:
        return status
    from convbench.results import load_summary
    rows = evaluate(load_summary(out))
    text = render(rows)
    (out / "floors.md").write_text("# Speed floors (ratios from one run)\n\n" + text + "\n")
    print("\n## Speed floors (ratios from one run, interleaved)\n")
    print(text)
    print(f"\nwritten to {out}/floors.md")
    return 0


if __name__ == "__main__":
    # the BLAS kernel set must be chosen before numpy is imported: do it first
    from convbench.blas import apply_coretype
    apply_coretype("auto")
    sys.exit(main())
