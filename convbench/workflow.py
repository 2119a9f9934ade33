"""The benchmark workflow as Python calls, for notebooks: ``run``, ``load``, ``report``, ``compare``.

The same operations as the command line, through the same code (``convbench run``'s options
are the keyword arguments of :func:`run`, validated by the same parsers), returning pandas
objects instead of printing::

    import convbench
    df = convbench.run(sizes=[64, 128], kernels=[3, 7], backends="direct_numba,im2col_blas",
                       out="results/nb1", quiet=True)
    df.pivot_table(index="problem", columns="backend", values="time_median_s")
    convbench.report("results/nb1")            # tables.md, report.md/.html, plots/
    convbench.compare("results/base", "results/nb1").frame()
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

__all__ = ["run", "load", "report", "compare"]


def run(**options):
    """Run a sweep; returns its ``summary.csv`` rows as a DataFrame.

    Parameters
    ----------
    **options
        ``convbench run``'s options as keywords (``--sizes 32,64`` is ``sizes=[32, 64]`` or
        ``sizes="32,64"``; flags are booleans, repeatable flags take lists). With ``out=DIR``
        the result directory is kept there (the frame's ``attrs["out"]``); without it the
        sweep runs in a temporary directory that is removed afterwards.

    Raises
    ------
    ValueError
        A bad or unknown option (one line naming it), before anything runs.
    """
    from .cli.run import execute
    from .results import load_meta, load_summary
    keep = options.get("out") or options.get("resume")
    tmp = None if keep else tempfile.mkdtemp(prefix="convbench-")
    try:
        res = execute(**(options if keep else dict(options, out=str(Path(tmp) / "run"))))
        if res.out is None:  # dry run: nothing measured
            import pandas as pd
            return pd.DataFrame()
        df = load_summary(res.out)
        df.attrs["meta"] = load_meta(res.out)
        df.attrs["out"] = str(res.out) if keep else None
        df.attrs["interrupted"] = res.interrupted
        return df
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)


def load(path):
    """A result directory's ``summary.csv`` as a DataFrame; ``attrs["meta"]`` holds ``meta.json``
    and ``attrs["samples"]`` the raw rounds (``samples.csv``)."""
    from .results import load_meta, load_samples, load_summary
    df = load_summary(Path(path))
    df.attrs["meta"] = load_meta(Path(path))
    df.attrs["samples"] = load_samples(Path(path))
    df.attrs["out"] = str(path)
    return df


def report(path, baseline: str | None = None, plots: bool = True) -> dict:
    """(Re)write ``tables.md``, the figures, ``report.md`` and ``report.html``; returns their paths."""
    from .reporting import write_report
    return write_report(Path(path), baseline, plots=plots)


def compare(base, new, *, factor: float = 1.2, alpha: float = 0.01, normalize: str = "peers"):
    """Compare two result directories (or pytest-benchmark JSON files) as ``convbench compare``
    does; returns a :class:`~convbench.comparison.Comparison` (``.frame()`` for a DataFrame,
    ``.regressions`` for the flagged cells)."""
    from .comparison import compare_runs, load_run
    return compare_runs(load_run(base), load_run(new), factor=factor, alpha=alpha, normalize=normalize)
