"""Offline comparison of two runs: which cells got slower, by how much, and how sure.

Inputs are convbench result directories or pytest-benchmark JSON files (from
``--benchmark-autosave``/``--benchmark-save``; raw rounds are used when saved with
``--benchmark-save-data``). Cells are matched by (problem, backend).

For every cell present on both sides:

* ratio of medians ``new / base`` and a bootstrap 95% confidence interval,
* a two-sided Mann-Whitney U test on the raw rounds (as asv does),
* a verdict: **regression** only when the ratio exceeds the threshold *and* the test
  agrees (``p < alpha``); improvements symmetrically; everything else is noise.

The threshold is ``max(factor, noise floor of the cell)``, the floor coming from
``noise.json`` next to the baseline (written by ``convbench calibrate``: the largest
A/A ratio this machine produced for that cell, with a margin).

Drift: with ``normalize="sentinel"`` each side's rounds are divided by the median time
of the fixed sentinel workload measured in the same problem's interleaved rounds (see
:mod:`convbench.sentinel`), so a machine that is uniformly slower in one run does not
read as a regression. With ``normalize="peers"`` the new rounds are divided instead by
the drift of the problem as the *other* backends saw it (the median of their
new/base ratios): the backends were timed interleaved, so any drift hits them alike,
and one backend slowing down stands out against the rest. A slowdown of everything at once
(a slower BLAS, say) cancels out under both normalisations; ``none`` compares raw times.
On six A/A runs of the CI suite here, the largest A/A ratio of our own backends was
1.42 raw, 1.41 sentinel-normalised and 1.30 peer-normalised (geometric-mean peers; the
median estimator replaced it because one noisy peer moved every cell of its problem). Cells missing on either side are listed, never crashed on;
differences in machine, BLAS kernel set, threads or library versions are warned about.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .config import primary_variant
from .format import fmt_time
from .results import ResultsError, load_meta, load_samples, load_summary
from .sentinel import SENTINEL
from .stats import mann_whitney, ratio_ci

__all__ = ["RunData", "load_run", "compare_runs", "Comparison", "render_text", "render_markdown",
           "NORMALIZE"]

NORMALIZE = ("none", "sentinel", "peers")


@dataclass
class Timed:
    """One cell of a run being compared: its median, rounds and state (a
    :class:`~convbench.cells.Cell`'s label stands for it here)."""

    problem: str
    backend: str
    median: float
    samples: list | None
    status: str = "passed"
    drift: float | None = None  # median sentinel time during this cell's problem


@dataclass
class RunData:
    source: str
    kind: str
    machine: dict
    cells: dict  # (problem, backend) -> Timed
    noise: dict = field(default_factory=dict)  # (problem, backend) -> floor
    noise_normalize: str | None = None  # the normalisation the floors were measured under


def _machine_from_meta(meta: dict) -> dict:
    m = meta.get("machine", {})
    blas = m.get("blas", {})
    return {"cpu": m.get("cpu_model"), "cores": m.get("cores"),
            "blas kernels": ",".join(sorted({str(lib.get("architecture")) for lib in blas.get("libraries", [])})),
            "threads": primary_variant(meta.get("config") or {})[0],
            "convbench": meta.get("convbench_version"),
            **{f"{k}": v for k, v in (m.get("libraries") or {}).items()
               if k in ("numpy", "scipy", "numba", "pyfftw", "torch")}}


def _load_dir(path: Path) -> RunData:
    meta = load_meta(path)
    df = load_summary(path)
    try:
        smp = load_samples(path)
    except ResultsError:
        smp = None
    groups = {}
    if smp is not None and len(smp):
        for (cell, backend), g in smp.groupby(["cell", "backend"], sort=False):
            groups[(cell, backend)] = [float(v) for v in g.time_s]
    cells = {}
    for r in df[df.backend != "*"].itertuples():
        key = (r.cell, r.backend)
        drift = groups.get((r.cell, SENTINEL))
        cells[key] = Timed(r.cell, r.backend, float(r.time_median_s) if r.status == "passed" else float("nan"),
                          groups.get(key), r.status,
                          float(np.median(drift)) if drift else None)
    noise = {}
    noise_norm = None
    npath = path / "noise.json"
    if npath.is_file():
        try:
            data = json.loads(npath.read_text())
            noise_norm = data.get("normalize")
            for k, v in data.get("cells", {}).items():
                prob, _, backend = k.rpartition("|")
                noise[(prob, backend)] = float(v)
        except (ValueError, AttributeError, TypeError) as e:
            raise ResultsError(f"{npath}: malformed noise file ({e})") from None
    return RunData(str(path), "convbench", _machine_from_meta(meta), cells, noise, noise_norm)


def _load_pytest_benchmark(path: Path) -> RunData:
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise ResultsError(f"{path}: not a readable JSON file ({e})") from None
    if not isinstance(data, dict) or not isinstance(data.get("benchmarks"), list):
        raise ResultsError(f"{path}: not a pytest-benchmark file (no 'benchmarks' list)")
    cells = {}
    for b in data["benchmarks"]:
        try:
            stats = b["stats"]
            extra = b.get("extra_info") or {}
            prob = extra.get("problem") or b.get("group") or ""
            backend = extra.get("backend") or b["name"]
            samples = stats.get("data")
            cells[(prob, backend)] = Timed(prob, backend, float(stats["median"]),
                                          [float(v) for v in samples] if samples else None)
        except (KeyError, TypeError, ValueError) as e:
            raise ResultsError(f"{path}: malformed benchmark entry ({e})") from None
    mi = data.get("machine_info", {})
    machine = {"cpu": (mi.get("cpu") or {}).get("brand_raw"), "cores": (mi.get("cpu") or {}).get("count"),
               "python": mi.get("python_version")}
    return RunData(str(path), "pytest-benchmark", machine, cells)


def load_run(path) -> RunData:
    """A convbench result directory or a pytest-benchmark JSON file.

    Raises
    ------
    ResultsError
        Missing, malformed or foreign input (the CLI turns it into exit status 2).
    """
    p = Path(path)
    if p.is_dir():
        return _load_dir(p)
    if p.is_file():
        return _load_pytest_benchmark(p)
    raise ResultsError(f"{path}: no such result directory or pytest-benchmark JSON file")


@dataclass
class Row:
    problem: str
    backend: str
    base: float
    new: float
    ratio: float
    low: float
    high: float
    p: float
    threshold: float
    verdict: str


@dataclass
class Comparison:
    rows: list
    warnings: list
    missing_in_new: list
    missing_in_base: list
    not_timed: list
    normalize: str

    @property
    def regressions(self) -> list:
        return [r for r in self.rows if r.verdict == "REGRESSION"]

    def frame(self):
        """The compared cells as a DataFrame (one row per cell, the columns of :class:`Row`)."""
        import dataclasses

        import pandas as pd
        return pd.DataFrame([dataclasses.asdict(r) for r in self.rows],
                            columns=[f.name for f in dataclasses.fields(Row)])


def compare_runs(base: RunData, new: RunData, *, factor: float = 1.2, alpha: float = 0.01,
                 normalize: str = "peers", noise_margin: float = 1.0) -> Comparison:
    """Match cells and judge each; see the module docstring."""
    if normalize not in NORMALIZE:
        raise ValueError(f"normalize={normalize!r}: accepted are {', '.join(NORMALIZE)}")
    warnings = []
    for k in sorted(set(base.machine) | set(new.machine)):
        a, b = base.machine.get(k), new.machine.get(k)
        if a != b and not (a is None or b is None):
            warnings.append(f"{k} differs: {a} (base) vs {b} (new)")
    if base.kind != new.kind:
        warnings.append(f"comparing a {base.kind} run with a {new.kind} run")
    if base.noise and base.noise_normalize and base.noise_normalize != normalize:
        warnings.append(f"the baseline's noise floors were measured with --normalize {base.noise_normalize}, "
                        f"this comparison uses {normalize}")
    rows, not_timed = [], []
    missing_in_new = sorted(k for k in base.cells if k not in new.cells)
    missing_in_base = sorted(k for k in new.cells if k not in base.cells)
    used_drift = 0
    peer_scale = _peer_scales(base, new) if normalize == "peers" else {}
    for key in [k for k in base.cells if k in new.cells]:
        b, n = base.cells[key], new.cells[key]
        if b.status != "passed" or n.status != "passed" or not (b.median > 0 and n.median > 0):
            if b.status == "passed" or n.status == "passed":  # skipped on both sides: nothing to say
                not_timed.append((key, b.status, n.status))
            continue
        sb = b.samples or [b.median]
        sn = n.samples or [n.median]
        if normalize == "sentinel" and b.drift and n.drift:
            sb = [v / b.drift for v in sb]
            sn = [v / n.drift for v in sn]
            used_drift += 1
        elif normalize == "peers" and key in peer_scale:
            gb, gn = peer_scale[key]
            sb = [v / gb for v in sb]
            sn = [v / gn for v in sn]
            used_drift += 1
        ratio, low, high = ratio_ci(sb, sn) if len(sb) > 1 and len(sn) > 1 else \
            (float(np.median(sn) / np.median(sb)), float("nan"), float("nan"))
        _, pval = mann_whitney(sn, sb) if len(sb) > 1 and len(sn) > 1 else (None, float("nan"))
        thr = max(factor, base.noise.get(key, 1.0) * noise_margin)
        sure = pval == pval and pval < alpha
        if ratio > thr and sure:
            verdict = "REGRESSION"
        elif ratio < 1 / thr and sure:
            verdict = "improvement"
        elif pval != pval:
            verdict = "no samples"
        else:
            verdict = "ok"
        rows.append(Row(key[0], key[1], b.median, n.median, ratio, low, high, pval, thr, verdict))
    if normalize != "none" and used_drift < len(rows):
        warnings.append(f"{normalize} normalisation applied to {used_drift} of {len(rows)} cells "
                        f"(the others lack {'sentinel samples' if normalize == 'sentinel' else 'peers'} "
                        f"on one side and are compared raw)")
    rows.sort(key=lambda r: -r.ratio)
    return Comparison(rows, warnings, missing_in_new, missing_in_base, not_timed, normalize)


def _median(c: Timed) -> float:
    return float(np.median(c.samples)) if c.samples else c.median


def _peer_scales(base: RunData, new: RunData) -> dict:
    """Per cell, the drift of its problem between the two runs, estimated without it: the
    median of the other backends' ``new / base`` ratios (those that passed on both sides).

    Returned as ``(1, drift)`` scales for the base and new rounds. The median rather than a
    mean: one noisy or regressed peer (a memory-bound dense operator, say) must not move
    everybody else's normalisation.
    """
    ratios: dict = {}
    for key in base.cells:
        if key in new.cells and base.cells[key].status == "passed" and new.cells[key].status == "passed" \
                and base.cells[key].median > 0 and new.cells[key].median > 0:
            ratios.setdefault(key[0], {})[key[1]] = _median(new.cells[key]) / _median(base.cells[key])
    out = {}
    for prob, rb in ratios.items():
        if len(rb) < 3:
            continue
        for b in rb:
            others = [v for o, v in rb.items() if o != b]
            out[(prob, b)] = (1.0, float(np.median(others)))
    return out


def _fmt_t(s: float) -> str:
    return fmt_time(s) or "-"


def _table_rows(c: Comparison):
    out = []
    for r in c.rows:
        ci = "" if math.isnan(r.low) else f"[{r.low:.2f}, {r.high:.2f}]"
        p = "" if math.isnan(r.p) else f"{r.p:.1e}"
        out.append([f"{r.problem} / {r.backend}", _fmt_t(r.base), _fmt_t(r.new), f"{r.ratio:.2f}x", ci, p,
                    f"{r.threshold:.2f}", r.verdict])
    return out


HEADERS = ["cell", "base", "new", "ratio", "95% CI", "p", "threshold", "verdict"]


def _summary_line(c: Comparison) -> str:
    n_reg = len(c.regressions)
    n_imp = sum(1 for r in c.rows if r.verdict == "improvement")
    how = {"sentinel": "normalised by the drift sentinel", "peers": "normalised by the same problem's other "
           "backends", "none": "raw times"}[c.normalize]
    return (f"{len(c.rows)} cells compared ({how}): "
            f"{n_reg} regression{'s' if n_reg != 1 else ''}, {n_imp} improvement{'s' if n_imp != 1 else ''}; "
            f"{len(c.missing_in_new)} only in base, {len(c.missing_in_base)} only in new, "
            f"{len(c.not_timed)} not timed on a side")


def render_text(c: Comparison) -> str:
    lines = [f"warning: {w}" for w in c.warnings]
    rows = _table_rows(c)
    widths = [max(len(str(x)) for x in col) for col in zip(HEADERS, *rows)] if rows else [len(h) for h in HEADERS]
    fmt = "  ".join(f"{{:<{w}}}" if i == 0 or i == len(widths) - 1 else f"{{:>{w}}}" for i, w in enumerate(widths))
    lines.append(fmt.format(*HEADERS))
    lines += [fmt.format(*r) for r in rows]
    for key in c.missing_in_new:
        lines.append(f"only in base: {key[0]} / {key[1]}")
    for key in c.missing_in_base:
        lines.append(f"only in new:  {key[0]} / {key[1]}")
    for key, sb, sn in c.not_timed:
        lines.append(f"not timed:    {key[0]} / {key[1]} (base {sb}, new {sn})")
    lines.append(_summary_line(c))
    return "\n".join(lines)


def render_markdown(c: Comparison) -> str:
    from .reporting.document import md_table
    lines = ["# convbench compare", ""]
    lines += [f"> **warning:** {w}" for w in c.warnings]
    if c.warnings:
        lines.append("")
    lines.append(_summary_line(c))
    lines.append("")
    lines.append(md_table(HEADERS, _table_rows(c)))
    extra = ([f"- only in base: `{k[0]}` / {k[1]}" for k in c.missing_in_new]
             + [f"- only in new: `{k[0]}` / {k[1]}" for k in c.missing_in_base]
             + [f"- not timed: `{k[0]}` / {k[1]} (base {sb}, new {sn})" for k, sb, sn in c.not_timed])
    if extra:
        lines += ["", *extra]
    return "\n".join(lines) + "\n"
