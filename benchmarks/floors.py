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
    # issue 13: the numba max-pool against F.max_pool2d (ResNet-50 stem, VGG-16's 2x2/2 at 224 and 112)
    (13, "--alg=max mb1ic64ih112kh3sh2ph1", "pool_numba", "pool_torch", 1.0, "at least as fast as F.max_pool2d"),
    (13, "--alg=max mb1ic64ih224kh2sh2", "pool_numba", "pool_torch", 1.0, "at least as fast as F.max_pool2d"),
    (13, "--alg=max mb1ic128ih112kh2sh2", "pool_numba", "pool_torch", 1.0, "at least as fast as F.max_pool2d"),
] + [
    # issue 13: the best own weight gradient against torch's, ResNet-50 3x3 stride-1 and 1x1 layers at mb8
    (13, f"--dir=BWD_W {d}", "own", "torch_onednn", 1.0, "best own bwd_w at least as fast as torch")
    for d in ("mb8ic64ih56oc64kh3ph1", "mb8ic128ih28oc128kh3ph1", "mb8ic256ih14oc256kh3ph1", "mb8ic512ih7oc512kh3ph1",
              "mb8ic64ih56oc256kh1", "mb8ic1024ih14oc256kh1", "mb8ic512ih7oc2048kh1")
]

#: the backends a floor's ``own`` pattern stands for (convbench's own, not the peers)
OWN_BWD_W = ("im2col_blas", "direct_numba", "fft_pyfftw", "fft_scipy", "winograd_f2x3", "winograd_f4x3",
             "winograd_f6x3")


def backends_needed() -> list[str]:
    names = set()
    for _, _, b, peer, _, _ in FLOORS:
        names.add(peer)
        names.update(OWN_BWD_W if b == "own" else (b,))
    return sorted(names)


def evaluate(df, floors=FLOORS, label: str = "") -> list[dict]:
    """Ratio and verdict for every floor, from a summary DataFrame."""
    out = []
    for issue, prob, pattern, peer, floor, wording in floors:
        # a forward conv is named by its descriptor; other directions and pools by their label
        sub = df[((df.problem == prob) | ((df.descriptor == prob) & (df.direction == "fwd")))
                 & (df.status == "passed")]
        peer_t = sub[sub.backend == peer].time_median_s
        mine = sub[[b in OWN_BWD_W if pattern == "own" else fnmatch.fnmatch(b, pattern) for b in sub.backend]]
        row = dict(issue=issue, problem=prob, backend=pattern + label, peer=peer, floor=floor, wording=wording)
        if peer_t.empty or mine.empty:
            row.update(ratio=float("nan"), verdict="not measured", who="")
        else:
            best = mine.sort_values("time_median_s").iloc[0]
            ratio = float(peer_t.iloc[0] / best.time_median_s)
            row.update(ratio=ratio, who=best.backend + label, verdict="meets" if ratio >= floor else "BELOW")
        out.append(row)
    return out


def render(rows: list[dict]) -> str:
    lines = ["| issue | problem | backend | vs | ratio (speed) | floor | verdict |",
             "| ---: | :--- | :--- | :--- | ---: | :--- | :--- |"]
    for r in rows:
        who = r["who"] if r["who"] and r["who"] != r["backend"] else r["backend"]
        ratio = "" if r["ratio"] != r["ratio"] else f"{r['ratio']:.2f}x"
        lines.append(f"| {r['issue']} | `{r['problem']}` | {who} | {r['peer']} | {ratio} | "
                     f"{r['wording']} | {r['verdict']} |")
    return "\n".join(lines)


def matrix_floors(out: Path, a) -> list[dict]:
    """Issue 4: sparse vs dense on every default-suite problem both run, and sparse at
    weight density 0.1 vs 1.0 on the same problems, all from one run per storage setting.

    The density floor is about what zero weights save in sparse storage, so it is judged
    with CSR on both sides (``--sparse-format csr``); the automatic format choice is shown
    too: at density 1.0 it may pick BSR, whose channel blocks store zeros, which by itself
    halves the density-1.0 time and so caps what pruning can add."""
    from convbench.cli import main as cli
    from convbench.results import load_summary
    rows = []
    frames = {}
    for fmt in ("auto", "csr"):
        d = out / f"matrix-{fmt}"
        status = cli(["run", "--suite", "default", "--backends", "sparse_csr,dense_matrix", "--weight-density",
                      "1,0.1", "--sparse-format", fmt, "--out", str(d), "--threads", a.threads, "--min-time",
                      a.min_time, "--max-time", a.max_time, "--quiet", "--no-plots"])
        if status != 0:
            raise SystemExit(status)
        frames[fmt] = load_summary(d)
    for prob in dict.fromkeys(frames["auto"].problem):
        t = {}
        for fmt, df in frames.items():
            ok = df[(df.status == "passed") & (df.problem == prob)]
            t.update({(fmt, r.backend, r.weight_density): r.time_median_s for r in ok.itertuples()})
        dn1 = t.get(("auto", "dense_matrix", 1.0))
        sp1 = t.get(("auto", "sparse_csr", 1.0))
        if sp1 and dn1:
            r = dn1 / sp1
            rows.append(dict(issue=4, problem=prob, backend="sparse_csr", peer="dense_matrix", floor=10.0,
                             wording=">= 10x dense", ratio=r, who="", verdict="meets" if r >= 10 else "BELOW"))
        for fmt in ("csr", "auto"):
            s1, s01 = t.get((fmt, "sparse_csr", 1.0)), t.get((fmt, "sparse_csr", 0.1))
            if not (s1 and s01):
                continue
            r = s1 / s01
            judged = bool(dn1) and fmt == "csr"  # the floor's problems: those dense runs too
            rows.append(dict(issue=4, problem=prob, backend=f"sparse_csr [{fmt}] @density 0.1",
                             peer="itself @1.0", floor=5.0,
                             wording=f">= 5x its density-1.0 time ({s1 * 1e6:.0f} us there)"
                             + ("" if dn1 else "; dense refused here"),
                             ratio=r, who="", verdict=("meets" if r >= 5 else "BELOW") if judged else
                             ("info: above" if r >= 5 else "info: below")))
    return rows


def refusal_floor() -> dict:
    """Issue 4: the dense refusal of a VGG layer, timed and measured in a fresh process."""
    import json
    import subprocess
    code = ("import resource, time, json\n"
            "from convbench.cells import Cell\n"
            "from convbench.config import SweepConfig\n"
            "from convbench.problem import ConvProblem\n"
            "from convbench.runner import Context, run_cell\n"
            "import convbench.backends.matrix\n"
            "p = ConvProblem.parse('mb1ic64ih224oc64kh3ph1')\n"
            "ctx = Context.build(SweepConfig(backends=('dense_matrix',), sentinel=False))\n"
            "r0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
            "t0 = time.perf_counter()\n"
            "(r,) = run_cell(Cell(p), ['dense_matrix'], ctx).results\n"
            "dt = time.perf_counter() - t0\n"
            "r1 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
            "print(json.dumps(dict(s=dt, mb=(r1 - r0) / 1024, reason=r.reason)))\n")
    res = json.loads(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                    check=True).stdout.strip().splitlines()[-1])
    ok = res["s"] < 1 and res["mb"] < 100
    return dict(issue=4, problem="mb1ic64ih224oc64kh3ph1", backend="dense_matrix refusal", peer="-",
                floor=1.0, wording=f"< 1 s, < 100 MB: {res['s'] * 1e3:.2f} ms, +{res['mb']:.1f} MB peak RSS",
                ratio=float("nan"), who="", verdict="meets" if ok else "BELOW", reason=res["reason"])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=None)
    ap.add_argument("--threads", default="1")
    ap.add_argument("--max-time", default="3")
    ap.add_argument("--min-time", default="1")
    ap.add_argument("--skip-patient", action="store_true",
                    help="leave out the FFT-vs-torch floors measured again with FFTW's patient planner")
    ap.add_argument("--skip-matrix", action="store_true", help="leave out the issue-4 (matrix backend) floors")
    ap.add_argument("--only", default=None, help="comma-separated issue numbers: only their floors")
    a = ap.parse_args(argv)
    out = Path(a.out or f"results/floors-{time.strftime('%Y%m%d-%H%M%S')}")
    from convbench.cli import main as cli  # applies the BLAS kernel set before numpy loads
    global FLOORS
    if a.only:
        keep = {int(x) for x in a.only.split(",")}
        FLOORS = [f for f in FLOORS if f[0] in keep]
        a.skip_patient = a.skip_patient or 3 not in keep
        a.skip_matrix = a.skip_matrix or 4 not in keep
    problems = list(dict.fromkeys(p for _, p, *_ in FLOORS))
    from convbench.backends import available_backends  # noqa: E402  (after the CLI's import order)
    wanted = backends_needed()
    avail = set(available_backends()) | set(available_backends("pool"))
    names = sorted({n for n in avail for w in wanted if fnmatch.fnmatch(n, w)})
    # wisdom off: FFTW plans come from this run's effort alone, not from whatever earlier
    # (possibly patient) runs left in the wisdom file
    common = ["--threads", a.threads, "--min-time", a.min_time, "--max-time", a.max_time, "--min-rounds", "15",
              "--fftw-wisdom", "off"]
    argv_run = ["run", "--out", str(out), "--backends", ",".join(names)] + common
    for p in problems:
        argv_run.append(f"--problem={p}")  # '=': a label may start with a --knob
    status = cli(argv_run)
    if status != 0:
        return status
    from convbench.results import load_summary
    rows = evaluate(load_summary(out), FLOORS)
    # the FFT-vs-torch floors again with FFTW's patient planner (planning time is in prepare_s)
    fft_floors = [f for f in FLOORS if f[2] == "fft_pyfftw" and f[3] == "torch_onednn"]
    if fft_floors and not a.skip_patient:
        d = out / "fft-patient"
        argv_p = ["run", "--out", str(d), "--backends", "fft_pyfftw,torch_onednn", "--fftw-effort", "patient",
                  "--no-plots", "--quiet"] + common
        for f in fft_floors:
            argv_p += ["--problem", f[1]]
        status = cli(argv_p)
        if status != 0:
            return status
        rows += evaluate(load_summary(d), fft_floors, " [patient]")
    if not a.skip_matrix:
        rows += matrix_floors(out, a)
        rows.append(refusal_floor())
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
