"""The report's view of a result directory, built once: rows, problems, backends, the
problem x backend pivot, footnotes for cells that did not pass, and network roll-ups.

Sections read this and never recompute what the runner stored (counts live in the rows).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..backends import default_baseline, pool_companion
from ..cells import cell_label
from ..results import load_meta, load_summary

__all__ = ["ReportData", "load_data", "check_baseline", "rollups", "training_layers", "activations", "passes_present",
           "choose_baseline", "SHORT_STATUS", "PASSES"]

#: how a cell that did not pass reads in a pivot table
SHORT_STATUS = {"skipped": "skip", "failed": "FAIL", "mistrusted": "WRONG"}


def choose_baseline(backends: list[str], requested: str | None = None) -> str | None:
    """The backend speed-ups are quoted against: the requested one, else the registry's
    default (:func:`convbench.backends.default_baseline`: the framework peer, else im2col)."""
    if requested and requested in backends:
        return requested
    return default_baseline(backends)


@dataclass
class ReportData:
    """A result directory as the sections see it. ``problem`` is the cell label (a problem
    at one weight density); ``cells[(problem, backend)]`` is that cell's row (a namedtuple,
    the last if a cell was written twice); ``first[problem]`` a row of the problem, for its
    problem-level columns; ``notes`` the numbered reasons of every cell that did not pass.

    Convolution and pooling cells are kept apart: ``real``, ``problems`` and ``backends``
    are the convolution ones (every conv section pivots conv problems x conv backends);
    ``pool``, ``pool_problems`` and ``pool_backends`` the pooling ones, which have no op
    count and are judged by the bytes they move. ``roles`` is each backend's role (own, peer,
    oracle, meta), from the rows.
    """

    df: object
    meta: dict
    baseline: str | None
    real: object = None
    problems: list = field(default_factory=list)
    backends: list = field(default_factory=list)
    pool: object = None
    pool_problems: list = field(default_factory=list)
    pool_backends: list = field(default_factory=list)
    cells: dict = field(default_factory=dict)
    first: dict = field(default_factory=dict)
    notes: list = field(default_factory=list)
    roles: dict = field(default_factory=dict)
    #: backend -> its algorithm family (``direct``, ``fft``, ...)
    family: dict = field(default_factory=dict)

    #: every row, at every thread count and cache state, ``problem`` the descriptor
    #: (:mod:`convbench.reporting.variants`); ``df`` holds the run's own variant only
    variants: object = None

    def __post_init__(self):
        df = self.df
        if "variant" in df.columns:
            self.variants = df
            df = self.df = df[df.variant == ""]
        if "cell" in df.columns:  # a cell is a problem at one density and variant: so is its layer
            df = self.df = df.assign(problem=df["cell"], layer=[
                cell_label(lay, d, v) for lay, d, v in zip(df.layer, df.weight_density, df.variant)])
        if "kind" not in df.columns:
            df = self.df = df.assign(kind="conv")
        rows = df[df.backend != "*"]
        self.roles = dict(zip(rows.backend, rows.role)) if "role" in rows.columns else {}
        self.family = dict(zip(rows.backend, rows.algorithm)) if "algorithm" in rows.columns else {}
        self.real = rows[rows.kind != "pool"]
        self.pool = rows[rows.kind == "pool"]
        self.problems = list(dict.fromkeys(self.real.problem))
        self.backends = list(dict.fromkeys(self.real.backend))
        self.pool_problems = list(dict.fromkeys(self.pool.problem))
        self.pool_backends = list(dict.fromkeys(self.pool.backend))
        self.baseline = choose_baseline(self.backends, self.baseline or (self.meta.get("config") or {}).get("baseline"))
        for r in rows.itertuples(index=False):
            self.cells[(r.problem, r.backend)] = r
            self.first.setdefault(r.problem, r)
        for probs, bks in ((self.problems, self.backends), (self.pool_problems, self.pool_backends)):
            for prob in probs:
                for b in bks:
                    c = self.cells.get((prob, b))
                    if c is not None and c.status != "passed" and c.reason:
                        self.note_ref(c)

    def rank_of(self, prob: str) -> int:
        """The spatial rank of ``prob`` (2 for rows from before ranks)."""
        r = getattr(self.first[prob], "rank", 2)
        return 2 if r is None or r != r else int(r)

    @property
    def ranks(self) -> list:
        """The spatial ranks of the run's problems, ascending."""
        return sorted({self.rank_of(p) for p in self.problems + self.pool_problems})

    @property
    def config(self):
        """The run's :class:`~convbench.config.SweepConfig` (of any schema; problems unread)."""
        from ..config import SweepConfig
        rec = dict(self.meta.get("config", {}) or {})
        rec.pop("problems", None)
        try:
            return SweepConfig.from_record(rec)
        except (ValueError, TypeError):
            return SweepConfig()

    def with_role(self, role: str, backends: list | None = None) -> list:
        """The backends (of ``backends``, default the conv ones) with ``role``, in table order."""
        return [b for b in (self.backends if backends is None else backends) if self.roles.get(b) == role]

    @property
    def algorithms(self) -> list:
        """The conv backends that are algorithms (own, peers, oracles): not a choice among them."""
        return [b for b in self.backends if self.roles.get(b) != "meta"]

    @property
    def stream(self) -> dict:
        """This machine's STREAM-style bandwidths (GB/s) recorded in meta.json, when measured."""
        return (self.meta.get("peaks") or {}).get("stream") or {}

    def note_ref(self, c) -> int:
        """Footnote number of a non-passed cell's reason (deduplicated by text)."""
        text = f"{c.status}: {c.reason}"
        if text not in self.notes:
            self.notes.append(text)
        return self.notes.index(text) + 1

    def passed(self, prob: str, backends: list | None = None) -> list:
        """The problem's passed, timed cells, fastest first."""
        out = [c for b in (backends or self.backends + self.pool_backends)
               if (c := self.cells.get((prob, b))) is not None
               and c.status == "passed" and c.time_median_s == c.time_median_s]
        return sorted(out, key=lambda c: c.time_median_s)

    def pivot(self, value, *, footnotes: bool = False, problems: list | None = None,
              backends: list | None = None) -> list[list]:
        """Rows ``[problem, value(cell) per backend]``; a cell that did not pass shows its
        state (with its footnote number when ``footnotes``), a missing one is empty."""
        rows = []
        for prob in problems or self.problems:
            r = [prob]
            for b in backends or self.backends:
                c = self.cells.get((prob, b))
                if c is None:
                    r.append("")
                elif c.status == "passed":
                    r.append(value(c))
                else:
                    tag = SHORT_STATUS.get(c.status, c.status)
                    r.append(f"{tag} [{self.note_ref(c)}]" if footnotes and c.reason else tag)
            rows.append(r)
        return rows


def load_data(out_dir: Path, baseline: str | None = None) -> ReportData:
    """:class:`ReportData` of a result directory (``ResultsError`` when unreadable; ``ValueError``
    naming the run's backends when ``baseline`` is not one of them)."""
    meta = load_meta(Path(out_dir))  # first: a foreign directory is named as such
    df = load_summary(Path(out_dir))
    check_baseline(baseline, [b for b in dict.fromkeys(df.backend) if b != "*"])
    return ReportData(df, meta, baseline)


def check_baseline(baseline: str | None, backends: list) -> None:
    """ValueError unless ``baseline`` (when given) is one of ``backends`` (listing them)."""
    if baseline and baseline not in backends:
        raise ValueError(f"--baseline {baseline!r} is not a backend of this run; accepted: {', '.join(backends)}")


#: a network pass and the layer directions it is made of (pooling has no weight gradient)
PASSES = (("inference", ("fwd",)), ("training step", ("fwd", "bwd_d", "bwd_w")))

def _network_rows(df):
    """Timed rows of suite layers at full weight density (fuzzed problems, suite
    ``fuzz-<seed>``, are no network: they get no roll-up). ``layer`` says which rows are
    passes of one layer."""
    if "suite" not in df.columns:
        return df.iloc[0:0]
    real = df[(df.backend != "*") & (df.suite != "") & ~df.suite.astype(str).str.startswith("fuzz-")
              & (df.weight_density >= 1.0)]
    if "kind" not in real.columns:
        real = real.assign(kind="conv")
    if "direction" not in real.columns:
        real = real.assign(direction="fwd")
    return real


def passes_present(directions) -> list[tuple[str, tuple]]:
    """The network passes a set of measured directions can total: inference when forward
    was run, the training step when all three were; a lone backward direction otherwise."""
    have = set(directions)
    out = [(name, dirs) for name, dirs in PASSES if set(dirs) <= have]
    if not any(n == "training step" for n, _ in out):
        out += [(d, (d,)) for d in ("bwd_d", "bwd_w") if d in have]
    return out


def rollups(df) -> list[dict]:
    """Per suite and network pass (density 1 only): network time of each convolution
    backend, layers weighted by their multiplicity, pooling layers included, and the
    best-backend-per-layer oracle.

    A pass sums its directions per layer: inference is every layer's forward pass; the
    training step is fwd + bwd_d + bwd_w of each convolution and fwd + bwd_d of each pool.
    A convolution backend's pooling layers run on its companion
    (:func:`convbench.backends.pool_companion`, else the fastest own pooling backend of that
    cell); ``pool_share[b]`` is the
    pooling part of its total. A backend that cannot run every convolution cell of the
    pass gets no total (``incomplete`` says how many of the pass's ``cells`` convolution
    layer-directions, counted with multiplicity, it lacks); the oracle
    takes, cell by cell, the fastest backend that ran.
    """
    out = []
    real = _network_rows(df)
    if real.empty:
        return out
    for suite, sub in real.groupby("suite", sort=False):
        layers = list(dict.fromkeys(sub.layer))
        mult = sub.drop_duplicates("layer").set_index("layer").multiplicity.to_dict()
        kind = sub.drop_duplicates("layer").set_index("layer").kind.to_dict()
        ok = sub[(sub.status == "passed") & sub.time_median_s.notna()]
        times = {(r.layer, r.direction, r.backend): float(r.time_median_s) for r in ok.itertuples()}
        own = set(sub[sub.role == "own"].backend)
        conv_b = list(dict.fromkeys(sub[sub.kind != "pool"].backend))
        pool_b = list(dict.fromkeys(sub[sub.kind == "pool"].backend))
        for pname, dirs in passes_present(sub[sub.kind != "pool"].direction):
            cells = [(lay, d) for lay in layers for d in dirs
                     if kind[lay] != "pool" or d != "bwd_w"]
            cells = [(lay, d) for lay, d in cells if ((sub.layer == lay) & (sub.direction == d)).any()]
            totals, incomplete, pool_share, companions = {}, {}, {}, {}
            for b in conv_b:
                conv_t = pool_t = 0.0
                missing = 0
                used = set()
                for lay, d in cells:
                    if kind[lay] == "pool":
                        want = pool_companion(b)
                        cand = [want] if want in pool_b and (lay, d, want) in times else \
                            [pb for pb in pool_b if pb in own and (lay, d, pb) in times]
                        if cand:
                            pb = min(cand, key=lambda x: times[(lay, d, x)])
                            pool_t += mult[lay] * times[(lay, d, pb)]
                            used.add(pb)
                    elif (lay, d, b) in times:
                        conv_t += mult[lay] * times[(lay, d, b)]
                    else:
                        missing += int(mult[lay])
                if missing:
                    incomplete[b] = missing
                else:
                    totals[b] = conv_t + pool_t
                    pool_share[b] = pool_t / totals[b] if totals[b] > 0 else float("nan")
                    companions[b] = ", ".join(sorted(used))
            oracle = oracle_pool = 0.0
            uncovered = 0
            picks: dict = {}
            for lay, d in cells:
                cand = [(t, b) for (la, dd, b), t in times.items() if la == lay and dd == d]
                if not cand:
                    uncovered += int(mult[lay])
                    continue
                t, b = min(cand)
                oracle += mult[lay] * t
                if kind[lay] == "pool":
                    oracle_pool += mult[lay] * t
                picks[b] = picks.get(b, 0) + int(mult[lay])
            out.append(dict(
                suite=suite, pass_name=pname, directions=dirs, problems=len(layers),
                layers=int(sum(mult.values())), pool_layers=int(sum(m for lay, m in mult.items() if kind[lay] == "pool")),
                batch=",".join(str(int(v)) for v in sorted(sub.mb.dropna().unique())), totals=totals,
                incomplete=incomplete, pool_share=pool_share, companions=companions, oracle=oracle,
                oracle_pool_share=oracle_pool / oracle if oracle > 0 else float("nan"),
                uncovered=uncovered, picks=picks,
                cells=int(sum(mult[lay] for lay, _ in cells if kind[lay] != "pool"))))
    return out


def training_layers(df) -> list[dict]:
    """Per group (suite, or the problems outside a suite) the layers measured in all three
    directions (pools: fwd and bwd_d): per layer and direction the fastest backend and its
    time, and per backend its training-step time of the layer (``None`` where it lacks a
    direction). What convnet-benchmarks tabulates per library, with the per-direction oracle."""
    if "kind" not in df.columns:
        df = df.assign(kind="conv")
    if "direction" not in df.columns:
        df = df.assign(direction="fwd")
    rows = df[(df.backend != "*") & (df.weight_density >= 1.0)]
    if "suite" not in rows.columns:
        rows = rows.assign(suite="")
    ok = rows[(rows.status == "passed") & rows.time_median_s.notna()]
    out = []
    for suite, sub in rows.groupby("suite", sort=False):
        dirs_of = sub.groupby("layer", sort=False).direction.agg(lambda s: set(s)).to_dict()
        kind = sub.drop_duplicates("layer").set_index("layer").kind.to_dict()
        need = {lay: ({"fwd", "bwd_d"} if kind[lay] == "pool" else {"fwd", "bwd_d", "bwd_w"})
                for lay in dirs_of}
        layers = [lay for lay in dict.fromkeys(sub.layer) if need[lay] <= dirs_of[lay]]
        if not any(kind[lay] != "pool" for lay in layers):
            continue
        first = sub.drop_duplicates("layer").set_index("layer")
        okg = ok[ok.suite == suite]
        t = {(r.layer, r.direction, r.backend): float(r.time_median_s) for r in okg.itertuples()}
        backends = list(dict.fromkeys(sub.backend))
        items = []
        for lay in layers:
            best = {}
            for d in sorted(need[lay]):
                cand = [(v, b) for (la, dd, b), v in t.items() if la == lay and dd == d]
                best[d] = min(cand) if cand else None
            per_b = {}
            for b in backends:
                vals = [t.get((lay, d, b)) for d in need[lay]]
                if all(v is not None for v in vals):
                    per_b[b] = sum(vals)
            step = sum(v[0] for v in best.values()) if all(v is not None for v in best.values()) else None
            items.append(dict(layer=lay, name=first.loc[lay, "name"] if "name" in first else "",
                              kind=kind[lay], multiplicity=int(first.loc[lay, "multiplicity"])
                              if "multiplicity" in first else 1, best=best, step=step, per_backend=per_b))
        out.append(dict(suite=suite, layers=items, backends=[b for b in backends
                                                             if any(b in it["per_backend"] for it in items)]))
    return out


def activations(df) -> list[dict]:
    """Per suite, its layers in network order (first appearance) with the activation each
    one produces per image (elements, and bytes at the row's dtype), what it reads, and the
    layer's direct op count: how stride and pooling shrink what every later layer touches."""
    real = _network_rows(df)
    out = []
    if real.empty:
        return out
    for suite, sub in real.groupby("suite", sort=False):
        first = sub.drop_duplicates("layer")
        items = []
        for r in first.itertuples(index=False):
            oc = r.ic if r.kind == "pool" else r.oc
            isz = 8 if r.dtype == "float64" else 4
            items.append(dict(layer=r.layer, name=r.name, kind=r.kind, multiplicity=int(r.multiplicity),
                              in_elems=int(r.ic * r.ih * r.iw), out_elems=int(oc * r.oh * r.ow),
                              out_shape=f"{int(oc)}x{int(r.oh)}x{int(r.ow)}", itemsize=isz,
                              flops=float(r.flops_direct) / max(int(r.mb), 1)
                              if r.kind != "pool" and r.flops_direct == r.flops_direct else float("nan")))
        out.append(dict(suite=suite, layers=items))
    return out
