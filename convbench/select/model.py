"""The fitted selector: one model of log2(time) per backend on :mod:`.features`; the choice is
the backend with the least predicted time among those whose capabilities admit the problem.

Two model kinds, chosen by measurement (``convbench tune`` cross-validates both and keeps
the one with the lower geometric-mean regret):

``linear``  ridge regression on the standardised features (a closed form; predicting is one
            dot product per backend, a few microseconds)
``trees``   scikit-learn's ``HistGradientBoostingRegressor`` per backend on log2(time) minus
            log2(the direct op count), i.e. on how slow the backend is per useful operation
            (subtracting a per-problem constant does not change the ranking, and the trees no
            longer spend their splits on the problem's scale; they capture the piecewise
            regimes, cache and overhead cliffs a linear model smooths over)
``hybrid``  the linear model, then trees on its residuals: the linear part extrapolates to
            problems larger than any measured, the trees correct the regimes
``roofline`` trees on log2(time) minus log2(the backend's roofline time) (:mod:`.roofline`:
            the operations and bytes the backend itself declares, over the machine's measured
            peaks), i.e. one efficiency per backend and regime; trees hold the efficiency
            constant beyond what they saw, so a model fitted on small problems ranks large
            ones by their declared counts

Every selector also keeps its own out-of-fold errors (:class:`Confidence`): where the
predicted margin between the model's pick and another candidate is within the error the
model made on the most similar tuning problems, the pick is unsure and the built-in rules
decide among the candidates it cannot separate (:meth:`Selector.decide`).

A selector is stored as versioned JSON with the machine fingerprint, dtype, thread count and
direction it was fitted for, the regrets ``tune`` judged it by, and the peaks its roofline
uses (tree models embedded as base64 pickles).
"""

from __future__ import annotations

import base64
import json
import pickle
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .features import FEATURES, feature_matrix, features

__all__ = ["FORMAT", "FORMAT_VERSION", "Selector", "fit_selector", "SelectorFileError", "KINDS", "RULES", "Decision",
           "Confidence", "rules_record", "check_version",
           "NewerSelectorFile"]

FORMAT = "convbench-selector"
FORMAT_VERSION = 2
KINDS = ("linear", "trees", "hybrid", "roofline")
#: a selector entry that records ``tune``'s verdict "keep the built-in rules" (no models)
RULES = "rules"
#: neighbours whose out-of-fold errors judge a prediction's margin
NEIGHBOURS = 12
_BASE = FEATURES.index("log_flops")


class SelectorFileError(ValueError):
    """A selector file that cannot be used (corrupt, another format or version)."""


class NewerSelectorFile(SelectorFileError):
    """A selector file written by a newer convbench: read by none of this one's code, never modified."""


class _Linear:
    def __init__(self, mean, scale, coef, intercept):
        self.mean, self.scale = np.asarray(mean, float), np.asarray(scale, float)
        self.coef, self.intercept = np.asarray(coef, float), float(intercept)

    @classmethod
    def fit(cls, X, y, alpha: float = 1.0):
        mean, scale = X.mean(axis=0), X.std(axis=0)
        scale[scale == 0] = 1.0
        Z = (X - mean) / scale
        Z = np.hstack([Z, Z ** 2])
        yc = y.mean()
        A = Z.T @ Z + alpha * np.eye(Z.shape[1])
        coef = np.linalg.solve(A, Z.T @ (y - yc))
        return cls(mean, scale, coef, yc)

    def predict(self, X, floor=None):
        Z = (np.atleast_2d(X) - self.mean) / self.scale
        return np.hstack([Z, Z ** 2]) @ self.coef + self.intercept

    def to_dict(self):
        return {"mean": self.mean.tolist(), "scale": self.scale.tolist(), "coef": self.coef.tolist(),
                "intercept": self.intercept}

    def check(self, n: int) -> None:
        """SelectorFileError unless the model fits ``n`` features: shapes, finite values."""
        want = {"mean": n, "scale": n, "coef": 2 * n}
        for name, size in want.items():
            a = getattr(self, name)
            if a.ndim != 1 or a.size != size:
                raise SelectorFileError(f"{name} has {a.size} values where {size} are expected ({n} features)")
            if not np.all(np.isfinite(a)):
                raise SelectorFileError(f"{name} holds non-finite values")
        if not np.all(self.scale > 0) or not np.isfinite(self.intercept):
            raise SelectorFileError("scale must be positive and the intercept finite")


def _check_estimator(est, n: int) -> None:
    """SelectorFileError unless a fitted tree model takes ``n`` features and predicts finitely."""
    if getattr(est, "n_features_in_", None) != n or not hasattr(est, "predict"):
        raise SelectorFileError(f"tree model takes {getattr(est, 'n_features_in_', '?')} features where {n} are "
                                f"expected")
    if not np.all(np.isfinite(est.predict(np.zeros((1, n))))):
        raise SelectorFileError("tree model predicts non-finite times")


def _hgb(X, y, seed, iters=100, rate=0.1):
    """Gradient-boosted trees sized for a few hundred tuning problems (63 bins: 0.13 s a fit
    here, against 0.44 s at 300 iterations and 255 bins, for the same held-out regret)."""
    from sklearn.ensemble import HistGradientBoostingRegressor
    return HistGradientBoostingRegressor(max_iter=iters, learning_rate=rate, max_leaf_nodes=15, min_samples_leaf=4,
                                         max_bins=63, l2_regularization=0.1, random_state=seed).fit(X, y)


class _Trees:
    def __init__(self, est):
        self.est = est

    @classmethod
    def fit(cls, X, y, seed: int = 0):
        return cls(_hgb(X, y - X[:, _BASE], seed))

    def predict(self, X, floor=None):
        X = np.atleast_2d(X)
        return self.est.predict(X) + X[:, _BASE]

    def to_dict(self):
        return {"pickle": base64.b64encode(pickle.dumps(self.est)).decode()}

    def check(self, n: int) -> None:
        _check_estimator(self.est, n)


class _Hybrid:
    def __init__(self, lin: _Linear, est):
        self.lin, self.est = lin, est

    @classmethod
    def fit(cls, X, y, seed: int = 0):
        lin = _Linear.fit(X, y)
        return cls(lin, _hgb(X, y - lin.predict(X), seed))

    def predict(self, X, floor=None):
        X = np.atleast_2d(X)
        return self.lin.predict(X) + self.est.predict(X)

    def to_dict(self):
        return {"linear": self.lin.to_dict(), "pickle": base64.b64encode(pickle.dumps(self.est)).decode()}

    def check(self, n: int) -> None:
        self.lin.check(n)
        _check_estimator(self.est, n)


class _Roofline:
    """Trees on log2(time / the backend's roofline time): its log inefficiency by regime."""

    uses_floor = True

    def __init__(self, est):
        self.est = est

    @classmethod
    def fit(cls, X, y, floor, seed: int = 0):
        return cls(_hgb(X, y - floor, seed))

    def predict(self, X, floor=None):
        return self.est.predict(np.atleast_2d(X)) + np.asarray(floor, float)

    def to_dict(self):
        return {"pickle": base64.b64encode(pickle.dumps(self.est)).decode()}

    def check(self, n: int) -> None:
        _check_estimator(self.est, n)


def _model_from(kind: str, d: dict):
    if kind == "linear":
        return _Linear(d["mean"], d["scale"], d["coef"], d["intercept"])
    est = pickle.loads(base64.b64decode(d["pickle"]))
    if kind == "hybrid":
        lin = d["linear"]
        return _Hybrid(_Linear(lin["mean"], lin["scale"], lin["coef"], lin["intercept"]), est)
    return _Roofline(est) if kind == "roofline" else _Trees(est)


_FITS = {"linear": _Linear.fit, "trees": _Trees.fit, "hybrid": _Hybrid.fit, "roofline": _Roofline.fit}


@dataclass
class Confidence:
    """The model's own out-of-fold errors on its tuning problems, to judge a new prediction.

    ``Z``: the tuning problems' standardised features (``mean``, ``scale``); ``resid``:
    backend -> out-of-fold ``log2(measured) - log2(predicted)`` per tuning problem (NaN where
    not measured). The error of a predicted margin between backends a and b is the RMS of
    ``resid[a] - resid[b]`` over the :data:`NEIGHBOURS` nearest tuning problems that measured
    both."""

    mean: np.ndarray
    scale: np.ndarray
    Z: np.ndarray
    resid: dict

    def _near(self, x: np.ndarray, ok=None) -> np.ndarray:
        z = (x - self.mean) / self.scale
        Z = self.Z if ok is None else self.Z[ok]
        return np.argsort(np.sum((Z - z) ** 2, axis=1))[:NEIGHBOURS]

    def margin_error(self, x: np.ndarray, a: str, b: str) -> float:
        """log2 error of the predicted margin between ``a`` and ``b`` near feature row ``x``
        (inf: too few similar problems measured both)."""
        ra, rb = self.resid.get(a), self.resid.get(b)
        if ra is None or rb is None:
            return float("inf")
        d = ra - rb
        ok = np.isfinite(d)
        if ok.sum() < 3:
            return float("inf")
        near = self._near(x, ok)
        return float(np.sqrt(np.mean(d[ok][near] ** 2)))

    def to_dict(self) -> dict:
        return {"mean": self.mean.tolist(), "scale": self.scale.tolist(),
                "Z": np.round(self.Z, 3).tolist(),
                "resid": {b: [None if not np.isfinite(v) else round(float(v), 4) for v in r]
                          for b, r in self.resid.items()}}

    @classmethod
    def from_dict(cls, d: dict, n_features: int) -> "Confidence":
        mean, scale = np.asarray(d["mean"], float), np.asarray(d["scale"], float)
        Z = np.asarray(d["Z"], float).reshape(-1, n_features)
        resid = {b: np.array([np.nan if v is None else v for v in r], float) for b, r in d["resid"].items()}
        if mean.size != n_features or scale.size != n_features or not np.all(scale > 0):
            raise SelectorFileError("confidence data does not match the feature set")
        if any(r.size != len(Z) for r in resid.values()) or not np.all(np.isfinite(Z)):
            raise SelectorFileError("confidence data is inconsistent (rows or values)")
        return cls(mean, scale, Z, resid)


@dataclass
class Decision:
    """What :meth:`Selector.decide` chose and why: ``model`` is the model's own pick,
    ``plausible`` the candidates it cannot separate from it, ``fallback`` whether the rules
    decided (the pick was unsure and the rules' backend among the plausible)."""

    choice: str | None
    model: str | None = None
    plausible: tuple = ()
    fallback: bool = False


@dataclass
class Selector:
    """Per-backend time models for one machine, dtype, thread count and direction (kind
    ``rules``: no models, the record of a ``tune`` that kept the built-in rules)."""

    kind: str
    models: dict
    fingerprint: dict
    dtype: str = "float32"
    threads: int = 1
    direction: str = "fwd"
    n_problems: int = 0
    created: str = ""
    evaluation: dict = field(default_factory=dict)
    peaks: dict | None = None
    confidence: Confidence | None = None

    @property
    def candidates(self) -> list[str]:
        return list(self.models)

    def _predict(self, p, x, names) -> dict:
        fl = None
        if self.kind == "roofline":
            from .roofline import floor_log2
            fl = {b: floor_log2(p, b, self.peaks) for b in names}
        out = {}
        for b in names:
            v = float(self.models[b].predict(x, None if fl is None else [fl[b]])[0])
            if np.isfinite(v):
                out[b] = v
        return out

    def decide(self, p, admissible, rule: str | None = None) -> Decision:
        """The model's pick among ``admissible`` (names, already capability-checked), unless it
        is unsure, and then ``rule`` (the built-in rules' backend, when admissible).

        Unsure: the predicted margin between the model's top two candidates is within the
        error the model made on that pair over the most similar tuning problems (its own
        out-of-fold residuals, :class:`Confidence`), or the rules' backend is one the model
        has too few measurements of to predict at all."""
        names = [b for b in admissible if b in self.models]
        x = features(p)[None, :]
        pred = self._predict(p, x, names) if names else {}
        if rule is not None and rule not in admissible:
            rule = None
        if not pred:
            return Decision(rule, None, (), rule is not None)
        order = sorted(pred, key=pred.get)
        top = order[0]
        unknown = rule is not None and rule not in pred
        close = (self.confidence is not None and len(order) > 1
                 and pred[order[1]] - pred[top] < self.confidence.margin_error(x[0], top, order[1]))
        plausible = tuple(order[:2]) if close else (top,)
        if rule is not None and rule != top and ((close and rule == order[1]) or unknown):
            return Decision(rule, top, plausible + ((rule,) if unknown else ()), True)
        return Decision(top, top, plausible)

    def choose(self, p, admissible) -> str | None:
        """The admissible backend :meth:`decide` picks, the built-in rules deciding unsure
        picks (``None``: no model for any admissible backend)."""
        from .rules import builtin_rule
        return self.decide(p, admissible, builtin_rule(p)).choice

    # --------------------------------------------------------------------- storage
    def to_dict(self) -> dict:
        return {"format": FORMAT, "version": FORMAT_VERSION, "kind": self.kind, "features": list(FEATURES),
                "fingerprint": self.fingerprint, "dtype": self.dtype, "threads": self.threads,
                "direction": self.direction, "n_problems": self.n_problems, "created": self.created,
                "evaluation": self.evaluation, "peaks": self.peaks,
                "confidence": self.confidence.to_dict() if self.confidence is not None else None,
                "models": {b: m.to_dict() for b, m in self.models.items()}}

    def save(self, path: Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_text(json.dumps(self.to_dict()))
        tmp.replace(path)
        return path

    @classmethod
    def from_dict(cls, d: dict) -> "Selector":
        if not isinstance(d, dict) or d.get("format") != FORMAT:
            raise SelectorFileError("not a convbench selector")
        check_version(d.get("version"))
        if list(d.get("features", [])) != list(FEATURES):
            raise SelectorFileError("fitted on another feature set; re-run convbench tune")
        kind = d["kind"]
        if kind not in KINDS + (RULES,):
            raise SelectorFileError(f"unknown model kind {kind!r}")
        if kind == RULES and d["models"]:
            raise SelectorFileError("a rules entry holds models")
        conf = d.get("confidence")
        conf = Confidence.from_dict(conf, len(FEATURES)) if conf else None
        models = {}
        for b, m in d["models"].items():
            model = _model_from(kind, m)
            try:
                model.check(len(FEATURES))
            except SelectorFileError as e:
                raise SelectorFileError(f"the model of {b}: {e}") from None
            models[b] = model
        return cls(kind=kind, models=models,
                   fingerprint=d["fingerprint"], dtype=d["dtype"], threads=int(d["threads"]),
                   direction=d["direction"], n_problems=int(d.get("n_problems", 0)), created=d.get("created", ""),
                   evaluation=d.get("evaluation", {}), peaks=d.get("peaks"), confidence=conf)

    @classmethod
    def load(cls, path: Path) -> "Selector":
        try:
            return cls.from_dict(json.loads(Path(path).read_text()))
        except SelectorFileError:
            raise
        except Exception as e:  # noqa: BLE001 - any corruption is one line naming the file
            raise SelectorFileError(f"unreadable ({e.__class__.__name__})") from None


def check_version(v) -> None:
    """SelectorFileError unless this convbench reads selector format version ``v``."""
    if v == FORMAT_VERSION:
        return
    if isinstance(v, int) and v > FORMAT_VERSION:
        raise NewerSelectorFile(f"written by a newer convbench (format version {v}; this one reads {FORMAT_VERSION})")
    raise SelectorFileError(f"format version {v} from an older convbench, never judged against the built-in rules; "
                            f"re-run convbench tune")


def _fit_models(X, logt: dict, kind: str, floor: dict | None, min_rows: int, seed: int) -> dict:
    models = {}
    for b, y in logt.items():
        ok = np.isfinite(y) & (np.isfinite(floor[b]) if floor is not None else True)
        if ok.sum() < min_rows:
            continue
        args = (X[ok], y[ok]) + ((floor[b][ok],) if floor is not None else ())
        models[b] = _FITS[kind](*args, **({} if kind == "linear" else {"seed": seed}))
    return models


def fit_selector(meas, kind: str = "linear", candidates=None, min_rows: int = 8, seed: int = 0,
                 confidence: bool = True, folds: int = 4) -> Selector:
    """Fit one model per candidate backend with at least ``min_rows`` measured problems; with
    ``confidence``, also its out-of-fold errors (``folds`` refits on the rest of the problems)."""
    from .data import fingerprint
    labels = list(meas.times.index)
    probs = [meas.problems[k] for k in labels]
    X = feature_matrix(probs)
    names = [b for b in meas.times.columns if candidates is None or b in candidates]
    logt = {}
    for b in names:
        t = meas.times[b].to_numpy(float)
        logt[b] = np.where(np.isfinite(t) & (t > 0), np.log2(np.where(t > 0, t, 1.0)), np.nan)
    floor = None
    if kind == "roofline":
        from .roofline import floors
        floor = floors(probs, names, meas.peaks)
    models = _fit_models(X, logt, kind, floor, min_rows, seed)
    conf = None
    if confidence and len(labels) >= 2 * folds:
        resid = {b: np.full(len(labels), np.nan) for b in models}
        idx = np.random.default_rng(seed + 1).permutation(len(labels))
        for part in np.array_split(idx, folds):
            train = np.setdiff1d(np.arange(len(labels)), part)
            sub = _fit_models(X[train], {b: logt[b][train] for b in models}, kind,
                              None if floor is None else {b: floor[b][train] for b in models}, min_rows, seed)
            for b, m in sub.items():
                pred = m.predict(X[part], None if floor is None else floor[b][part])
                resid[b][part] = logt[b][part] - pred
        mean, scale = X.mean(axis=0), X.std(axis=0)
        scale[scale == 0] = 1.0
        conf = Confidence(mean, scale, (X - mean) / scale, resid)
    return Selector(kind=kind, models=models, fingerprint=fingerprint(), dtype=meas.dtype, threads=meas.threads,
                    direction=meas.direction, n_problems=len(labels), created=time.strftime("%Y-%m-%dT%H:%M:%S"),
                    peaks=meas.peaks, confidence=conf)


def rules_record(meas, evaluation: dict) -> Selector:
    """The selector entry that records "keep the built-in rules" with the regrets behind it."""
    from .data import fingerprint
    return Selector(kind=RULES, models={}, fingerprint=fingerprint(), dtype=meas.dtype, threads=meas.threads,
                    direction=meas.direction, n_problems=len(meas.times),
                    created=time.strftime("%Y-%m-%dT%H:%M:%S"), evaluation=evaluation, peaks=meas.peaks)
