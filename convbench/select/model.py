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

A selector is stored as versioned JSON with the machine fingerprint, dtype, thread count and
direction it was fitted for (tree models embedded as base64 pickles).
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

__all__ = ["FORMAT", "FORMAT_VERSION", "Selector", "fit_selector", "SelectorFileError", "KINDS"]

FORMAT = "convbench-selector"
FORMAT_VERSION = 1
KINDS = ("linear", "trees", "hybrid")
_BASE = FEATURES.index("log_flops")


class SelectorFileError(ValueError):
    """A selector file that cannot be used (corrupt, another format or version)."""


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

    def predict(self, X):
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


def _hgb(X, y, seed, iters=300, rate=0.08):
    from sklearn.ensemble import HistGradientBoostingRegressor
    return HistGradientBoostingRegressor(max_iter=iters, learning_rate=rate, max_leaf_nodes=15, min_samples_leaf=4,
                                         l2_regularization=0.1, random_state=seed).fit(X, y)


class _Trees:
    def __init__(self, est):
        self.est = est

    @classmethod
    def fit(cls, X, y, seed: int = 0):
        return cls(_hgb(X, y - X[:, _BASE], seed))

    def predict(self, X):
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
        return cls(lin, _hgb(X, y - lin.predict(X), seed, iters=200, rate=0.05))

    def predict(self, X):
        X = np.atleast_2d(X)
        return self.lin.predict(X) + self.est.predict(X)

    def to_dict(self):
        return {"linear": self.lin.to_dict(), "pickle": base64.b64encode(pickle.dumps(self.est)).decode()}

    def check(self, n: int) -> None:
        self.lin.check(n)
        _check_estimator(self.est, n)


def _model_from(kind: str, d: dict):
    if kind == "linear":
        return _Linear(d["mean"], d["scale"], d["coef"], d["intercept"])
    est = pickle.loads(base64.b64decode(d["pickle"]))
    if kind == "hybrid":
        lin = d["linear"]
        return _Hybrid(_Linear(lin["mean"], lin["scale"], lin["coef"], lin["intercept"]), est)
    return _Trees(est)


@dataclass
class Selector:
    """Per-backend time models for one machine, dtype, thread count and direction."""

    kind: str
    models: dict
    fingerprint: dict
    dtype: str = "float32"
    threads: int = 1
    direction: str = "fwd"
    n_problems: int = 0
    created: str = ""
    evaluation: dict = field(default_factory=dict)

    @property
    def candidates(self) -> list[str]:
        return list(self.models)

    def predict_log2(self, X: np.ndarray) -> dict:
        """Backend -> predicted log2 seconds for each feature row."""
        return {b: m.predict(X) for b, m in self.models.items()}

    def choose(self, p, admissible) -> str | None:
        """The admissible backend (names, already capability-checked) of least predicted time."""
        names = [b for b in admissible if b in self.models]
        if not names:
            return None
        x = features(p)[None, :]
        return min(names, key=lambda b: float(self.models[b].predict(x)[0]))

    # --------------------------------------------------------------------- storage
    def to_dict(self) -> dict:
        return {"format": FORMAT, "version": FORMAT_VERSION, "kind": self.kind, "features": list(FEATURES),
                "fingerprint": self.fingerprint, "dtype": self.dtype, "threads": self.threads,
                "direction": self.direction, "n_problems": self.n_problems, "created": self.created,
                "evaluation": self.evaluation, "models": {b: m.to_dict() for b, m in self.models.items()}}

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
        if d.get("version") != FORMAT_VERSION:
            raise SelectorFileError(f"selector format version {d.get('version')}, this convbench reads "
                                    f"{FORMAT_VERSION}")
        if list(d.get("features", [])) != list(FEATURES):
            raise SelectorFileError("fitted on another feature set; re-run convbench tune")
        kind = d["kind"]
        if kind not in KINDS:
            raise SelectorFileError(f"unknown model kind {kind!r}")
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
                   evaluation=d.get("evaluation", {}))

    @classmethod
    def load(cls, path: Path) -> "Selector":
        try:
            return cls.from_dict(json.loads(Path(path).read_text()))
        except SelectorFileError:
            raise
        except Exception as e:  # noqa: BLE001 - any corruption is one line naming the file
            raise SelectorFileError(f"unreadable ({e.__class__.__name__})") from None


def fit_selector(meas, kind: str = "linear", candidates=None, min_rows: int = 8, seed: int = 0) -> Selector:
    """Fit one model per candidate backend with at least ``min_rows`` measured problems."""
    from .data import fingerprint
    labels = list(meas.times.index)
    X = feature_matrix([meas.problems[k] for k in labels])
    models = {}
    for b in meas.times.columns:
        if candidates is not None and b not in candidates:
            continue
        t = meas.times[b].to_numpy(float)
        ok = np.isfinite(t) & (t > 0)
        if ok.sum() < min_rows:
            continue
        y = np.log2(t[ok])
        models[b] = {"linear": _Linear.fit, "trees": _Trees.fit, "hybrid": _Hybrid.fit}[kind](
            X[ok], y, **({} if kind == "linear" else {"seed": seed}))
    return Selector(kind=kind, models=models, fingerprint=fingerprint(), dtype=meas.dtype, threads=meas.threads,
                    direction=meas.direction, n_problems=len(labels), created=time.strftime("%Y-%m-%dT%H:%M:%S"))
