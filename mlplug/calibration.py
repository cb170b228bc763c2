"""Calibrating a binary model's probabilities, chosen on out-of-sample predictions.

Class weights, early stopping and regularisation leave most models' probabilities off the
observed rates, while thresholds, business value and expected-loss flagging all read them.
:func:`choose_calibration` tries Platt scaling (a logistic regression on the logit) and
isotonic regression on predictions the model made for rows it did not learn from (the
out-of-fold predictions of cross-validation, or the validation part), scores each by its
own cross-validation over those predictions, and keeps one only when it lowers the log-loss
(by at least :data:`MIN_GAIN`) without raising the Brier score. The chosen
:class:`Calibrator` is plain numbers (JSON), applied by :class:`CalibratedModel` around the
refitted model.

Isotonic regression maps ranges of scores to one value; ties would change ranking metrics
such as PR-AUC. A one-in-a-million share of the raw score breaks the ties in the raw
order, so a calibrated model ranks rows exactly as the raw one does.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from mlplug.task import Model, accepts_category_dtype

METHODS = ("platt", "isotonic")
#: Folds over the out-of-sample predictions used to score each method.
FOLDS = 5
#: Share of the raw score kept in isotonic output, to keep the raw ranking (see above).
TIE_BREAK = 1e-6
#: Least relative log-loss improvement worth a calibrator: below it, calibration would
#: mostly fit noise, and the served model stays the plain one.
MIN_GAIN = 0.01
#: Fewest rows of the rarer class for calibration to be tried: below it the calibrator
#: would be fitted on a handful of positives.
MIN_RARE_ROWS = 10
_EPS = 1e-6


@dataclass(frozen=True)
class Calibrator:
    """A monotone map from raw to calibrated P(positive class)."""

    method: str
    #: Platt: ``[slope, intercept]`` on the logit; isotonic: interpolation knots ``x``, ``y``.
    params: dict[str, list[float]]

    def apply(self, p: np.ndarray) -> np.ndarray:
        p = np.asarray(p, dtype=np.float64)
        if self.method == "platt":
            slope, intercept = self.params["coef"]
            return _sigmoid(slope * _logit(p) + intercept)
        if self.method == "isotonic":
            mapped = np.interp(p, self.params["x"], self.params["y"])
            return (1.0 - TIE_BREAK) * mapped + TIE_BREAK * p
        raise ValueError(f"unknown calibration method {self.method!r}; known: {METHODS}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Calibrator:
        return cls(str(data["method"]), {k: [float(x) for x in v] for k, v in data["params"].items()})


@dataclass(frozen=True)
class CalibrationChoice:
    """What calibration was tried, on which predictions, and what was kept."""

    #: ``platt``, ``isotonic`` or ``none``.
    method: str
    #: Why, in a sentence.
    reason: str
    #: Out-of-sample log-loss and Brier score per method (``raw`` = uncalibrated).
    scores: dict[str, dict[str, float]] = field(default_factory=dict)
    calibrator: Calibrator | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "reason": self.reason,
            "scores": self.scores,
            "calibrator": self.calibrator.to_dict() if self.calibrator else None,
        }

    @classmethod
    def from_dict(cls, data: Any) -> CalibrationChoice | None:
        if not isinstance(data, dict) or "method" not in data:
            return None
        raw = data.get("calibrator")
        return cls(
            method=str(data["method"]),
            reason=str(data.get("reason", "")),
            scores={k: {m: float(v) for m, v in s.items()} for k, s in (data.get("scores") or {}).items()},
            calibrator=Calibrator.from_dict(raw) if isinstance(raw, dict) else None,
        )


def fit_calibrator(method: str, y: np.ndarray, p: np.ndarray) -> Calibrator:
    """Fit ``method`` to labels ``y`` (0/1) and raw probabilities ``p`` of class 1."""
    if method == "platt":
        from sklearn.linear_model import LogisticRegression

        # Nearly unregularised: two parameters, many rows.
        fitted = LogisticRegression(C=1e4, max_iter=1000).fit(_logit(p).reshape(-1, 1), y)
        return Calibrator("platt", {"coef": [float(fitted.coef_[0, 0]), float(fitted.intercept_[0])]})
    if method == "isotonic":
        from sklearn.isotonic import IsotonicRegression

        iso = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(p, y)
        return Calibrator("isotonic", {"x": iso.X_thresholds_.tolist(), "y": iso.y_thresholds_.tolist()})
    raise ValueError(f"unknown calibration method {method!r}; known: {METHODS}")


def choose_calibration(
    y: np.ndarray, p: np.ndarray, *, where: str, seed: int = 0, classes: int = 2
) -> CalibrationChoice:
    """Choose a calibration for raw probabilities ``p`` (class 1) of labels ``y``, both
    out-of-sample (``where`` says whose predictions they are, for the reason)."""
    if classes != 2:
        return CalibrationChoice("none", "calibration covers binary tasks; this one has more classes")
    y = np.asarray(y, dtype=np.int64)
    p = np.asarray(p, dtype=np.float64)
    rare = int(min(np.sum(y == 1), np.sum(y == 0)))
    if rare < MIN_RARE_ROWS:
        return CalibrationChoice(
            "none",
            f"not calibrated: {where} hold {rare} rows of the rarer class (fewer than {MIN_RARE_ROWS})",
        )
    from sklearn.model_selection import StratifiedKFold

    folds = StratifiedKFold(n_splits=min(FOLDS, rare), shuffle=True, random_state=seed)
    outputs = {"raw": p}
    for method in METHODS:
        out = np.empty_like(p)
        for fit_idx, test_idx in folds.split(p, y):
            out[test_idx] = fit_calibrator(method, y[fit_idx], p[fit_idx]).apply(p[test_idx])
        outputs[method] = out
    scores = {name: {"log_loss": log_loss(y, q), "brier": brier(y, q)} for name, q in outputs.items()}
    raw = scores["raw"]
    best = min(METHODS, key=lambda m: scores[m]["log_loss"])
    chosen = scores[best]
    figures = (
        f"log-loss {raw['log_loss']:.4f} -> {chosen['log_loss']:.4f}, "
        f"Brier {raw['brier']:.4f} -> {chosen['brier']:.4f} on {where}"
    )
    if chosen["log_loss"] < raw["log_loss"] * (1 - MIN_GAIN) and chosen["brier"] <= raw["brier"]:
        return CalibrationChoice(
            best, f"{best} calibration applied: {figures}", scores, fit_calibrator(best, y, p)
        )
    return CalibrationChoice(
        "none", f"not calibrated: the better method ({best}) would not help ({figures})", scores
    )


def log_loss(y: np.ndarray, p: np.ndarray) -> float:
    q = np.clip(p, _EPS, 1 - _EPS)
    return float(-np.mean(y * np.log(q) + (1 - y) * np.log(1 - q)))


def brier(y: np.ndarray, p: np.ndarray) -> float:
    return float(np.mean((p - y) ** 2))


class CalibratedModel:
    """A fitted binary model whose P(class 1) goes through a :class:`Calibrator`.

    Anything else (``shap_values``, ``explanation_kind``...) is the wrapped model's, so
    explanations describe the raw score, which the calibrator only maps monotonically.
    """

    def __init__(self, inner: Model, calibrator: Calibrator) -> None:
        self.inner = inner
        self.calibrator = calibrator

    def fit(self, train: Any, valid: Any = None, progress: Any = None) -> None:
        raise RuntimeError("a calibrated model is fitted before it is calibrated; refit the inner model")

    @property
    def accepts_category_dtype(self) -> bool:
        """The wrapped model's declaration (``mlplug.task.CategoryModel``)."""
        return accepts_category_dtype(self.inner)

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:  # noqa: N803
        return self._calibrate(np.asarray(self.inner.predict_proba(X), dtype=np.float64))

    def raw_proba(self, X: pd.DataFrame) -> np.ndarray:  # noqa: N803
        """The wrapped model's probabilities, before calibration."""
        return np.asarray(self.inner.predict_proba(X), dtype=np.float64)

    def _calibrate(self, proba: np.ndarray) -> np.ndarray:
        positive = self.calibrator.apply(proba[:, 1])
        return np.column_stack([1.0 - positive, positive])

    def save(self, path: Any) -> None:
        raise RuntimeError("save calibrated models with mlplug.stored_model.save_model")

    def __getattr__(self, name: str) -> Any:
        # Only called for names this class lacks: predict_proba_rows, shap_values, ...
        inner = self.__dict__.get("inner")
        if inner is None:
            raise AttributeError(name)
        found = getattr(inner, name)
        if name == "predict_proba_rows":
            return lambda rows: self._calibrate(np.asarray(found(rows), dtype=np.float64))
        return found


def _logit(p: np.ndarray) -> np.ndarray:
    q = np.clip(np.asarray(p, dtype=np.float64), _EPS, 1 - _EPS)
    return np.log(q / (1 - q))


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))  # no overflow for large |x|


def describe(
    scores: dict[str, dict[str, float]], order: Sequence[str] = ("raw", *METHODS)
) -> list[dict[str, Any]]:
    """Rows for a report table: one per method with its log-loss and Brier score."""
    return [
        {"probabilities": name, **{k: v for k, v in scores[name].items() if math.isfinite(v)}}
        for name in order
        if name in scores
    ]
