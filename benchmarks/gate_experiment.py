"""How good is the regression gate on this machine? False alarms and detections, measured.

Runs ``convbench check`` (the exact gate of ``make bench-check``) repeatedly against the
committed baseline:

* ``--aa N``: N runs of unchanged code; every failure is a false alarm;
* ``--inject``: one run per (backend, factor) with ``--inject-slowdown BACKEND=FACTOR``;
  each should fail (factor 1.3 is at the gate's threshold, 1.5 and 2 above it).

Prints a Markdown table and writes it to ``OUT/gate.md``. Slow (a check run is ~40 s).

    python benchmarks/gate_experiment.py --aa 6 --inject im2col_blas,winograd_f4x3,sparse_csr \\
        --factors 1.3,1.5,2 --out results/gate-experiment
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path


def check(out: Path, extra: list[str]) -> tuple[int, str, float]:
    t0 = time.time()
    p = subprocess.run([sys.executable, "-m", "convbench", "check", "--baseline", "results/baseline",
                        "--fail-above", "1.3", "--retries", "2", "--quiet", "--out", str(out), *extra],
                       capture_output=True, text=True)
    last = [ln for ln in p.stdout.splitlines() if ln.startswith("check")]
    return p.returncode, (last[-1] if last else p.stderr.strip().splitlines()[-1:]), time.time() - t0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--aa", type=int, default=6)
    ap.add_argument("--inject", default="im2col_blas,winograd_f4x3,sparse_csr")
    ap.add_argument("--factors", default="1.3,1.5,2")
    ap.add_argument("--out", default=f"results/gate-{time.strftime('%Y%m%d-%H%M%S')}")
    a = ap.parse_args(argv)
    out = Path(a.out)
    rows = []
    for i in range(a.aa):
        rc, msg, dt = check(out / f"aa{i + 1}", [])
        rows.append(("A/A", "-", "-", rc, "false alarm" if rc else "clean", msg, dt))
        print(rows[-1], flush=True)
    for backend in [b for b in a.inject.split(",") if b]:
        for f in [float(x) for x in a.factors.split(",") if x]:
            rc, msg, dt = check(out / f"{backend}-{f:g}", ["--inject-slowdown", f"{backend}={f:g}"])
            rows.append(("injected", backend, f"{f:g}x", rc, "detected" if rc else "missed", msg, dt))
            print(rows[-1], flush=True)
    lines = ["| kind | backend | slowdown | exit | result | gate's last line | seconds |",
             "| :--- | :--- | ---: | ---: | :--- | :--- | ---: |"]
    lines += [f"| {k} | {b} | {f} | {rc} | {res} | {str(msg)[:120]} | {dt:.0f} |" for k, b, f, rc, res, msg, dt in rows]
    text = "\n".join(lines)
    out.mkdir(parents=True, exist_ok=True)
    (out / "gate.md").write_text("# Regression gate experiment\n\n" + text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
