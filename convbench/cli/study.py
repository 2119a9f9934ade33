"""``convbench study``: the founding texts' experiment, a CNN against a locally connected
and a dense network on scikit-learn's digits, trained on convbench's own kernels.

It writes ``DIR/study/`` (tables, figures, report.md, report.html), next to a benchmark
report when ``--out`` names a result directory. ``DIR/study`` must be new or empty.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from .common import EXIT_OK, UsageError, _text, option, positive_float, threads_arg

NAME = "study"
HELP = "train a CNN, a locally connected network and MLPs on digits with convbench's kernels; report"
DESCRIPTION = ("The CNN-against-dense experiment: scikit-learn's bundled digits on a larger canvas, five models "
               "(cnn, cnn_stride, locally_connected, mlp_params, mlp_flops) trained with the same optimiser on "
               "convbench's conv, transposed-conv, weight-gradient and pooling kernels; accuracy at every test "
               "offset, parameters, FLOPs, timings, measured equivariance and accuracy against training-set size.")
PRELOAD = True

OPTIONS = [
    option("models", _text, metavar="LIST", help="comma-separated subset of cnn, cnn_stride, cnn_gap, "
                                                 "locally_connected, mlp_params, mlp_flops (default all)"),
    option("epochs", int, metavar="N", help="training epochs (default 12, --quick 2; 0: no training)"),
    option("batch", int, metavar="N", default=32, help="minibatch size (32)"),
    option("lr", positive_float, metavar="X", default=0.05, help="SGD learning rate (0.05)"),
    option("seed", int, metavar="S", default=0, help="split, initialisation and batch order (0); the study also "
                                                     "trains at S+1 and reports both"),
    option("canvas", int, metavar="PX", default=24, help="canvas side in pixels, at least 8 (24)"),
    option("jitter", int, metavar="PX",
           help="every model is also trained, at equal epochs, on digits shifted by a random offset of up to PX "
                "pixels per axis (shift augmentation), and both arms are reported side by side (default: "
                "--max-shift, 4; --quick 2; 0: centred training only)"),
    option("max_shift", int, metavar="PX", default=4, help="test offsets 0..PX (4; --quick 2)"),
    option("backend", _text, metavar="NAME", default="auto",
           help="conv backend for every convolution (auto: per model the own backend with the fastest "
                "measured training step)"),
    option("pool_backend", _text, metavar="NAME",
           help="pooling backend (default: convbench's default pooling backend, the compiled loops)"),
    option("threads", threads_arg, metavar="N", default=1, help="threads for every runtime (1)"),
    option("quick", None, action="flag", help="a short study for tests and CI (2 epochs, 120 test images, "
                                              "shifts 0..2, two training-set sizes)"),
    option("out", _text, metavar="DIR", help="result directory; the study goes to DIR/study "
                                             "(default results/<timestamp>)"),
    option("no_plots", None, action="flag", help="tables and report without figures"),
    option("quiet", None, action="flag", help="no progress lines"),
]


def setup(p) -> None:
    for o in OPTIONS:
        o.add_to(p)


def _out_dir(out: str | None) -> Path:
    base = Path(out) if out else Path("results") / time.strftime("%Y%m%d-%H%M%S")
    if base.exists() and not base.is_dir():
        raise UsageError(f"--out {str(base)!r} is a file; expected a directory")
    sdir = base / "study"
    if sdir.exists() and (not sdir.is_dir() or any(sdir.iterdir())):
        raise UsageError(f"--out {str(base)!r} already holds a study ({sdir}); choose another directory, so that "
                         f"nothing there is overwritten")
    try:
        sdir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UsageError(f"--out {str(base)!r} is not writable ({e.strerror})") from None
    return base


def run(*, models=None, epochs=None, batch=32, lr=0.05, seed=0, canvas=24, jitter=None, max_shift=4, backend="auto",
        pool_backend=None, threads=1, quick=False, out=None, no_plots=False, quiet=False) -> int:
    from ..study import MODELS, StudyConfig, run_study, write_study_report
    from ..study.experiment import check_config
    from ..study.models import parse_models
    try:
        names = tuple(parse_models(models)) if models else MODELS
    except ValueError as e:
        raise UsageError(f"--models: {e}") from None
    kw = dict(models=names, batch=batch, lr=lr, seed=seed, canvas=canvas, backend=backend, threads=threads)
    if jitter is None:  # the augmented arm is trained on the offsets it is tested on
        from ..study.digits import max_shift_for
        shown = 2 if quick and max_shift == 4 else max_shift
        jitter = max(0, min(shown, max_shift_for(max(canvas, 8)) if isinstance(canvas, int) else shown))
    kw["jitter"] = jitter
    if pool_backend is not None:
        kw["pool_backend"] = pool_backend
    if epochs is not None:
        kw["epochs"] = epochs
    if max_shift != 4 or not quick:
        kw["max_shift"] = max_shift
    cfg = StudyConfig.quick_config(**kw) if quick else StudyConfig(**kw)
    try:
        check_config(cfg)
    except ValueError as e:
        raise UsageError(str(e)) from None
    base = _out_dir(out)
    log = (lambda m: None) if quiet else (lambda m: print(m, file=sys.stderr, flush=True))
    res = run_study(base, cfg, log=log)
    w = write_study_report(res.out, plots=not no_plots)
    print(f"study: {w['report_md']} and {w['report_html']} ({w['figures']} figures), tables in {res.out} "
          f"({res.seconds:.0f} s)")
    return EXIT_OK
