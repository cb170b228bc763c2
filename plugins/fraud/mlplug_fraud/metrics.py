"""Scores of fraud predictions: PR-AUC first, because with 1-2% fraud ROC-AUC flatters.

The decision threshold is the one that saves most money under the cost model (see
:mod:`mlplug_fraud.value`); precision, recall, F1 and the confusion matrix are reported at
it. On rows of a single class the ranking metrics are undefined: they are NaN and
``details["note"]`` says why, rather than an exception in the middle of a flow.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from sklearn.metrics import average_precision_score, precision_recall_curve, roc_auc_score, roc_curve

from mlplug.dataset import Dataset
from mlplug.task import Metrics
from mlplug_fraud.columns import CLASSES
from mlplug_fraud.value import CostModel, choose_threshold, fraud_losses, outcome

PRIMARY = "pr_auc"
#: Curves are thinned to at most this many points so reports and JSON stay small.
MAX_CURVE_POINTS = 200
CALIBRATION_BINS = 10
NAN = float("nan")


def fraud_probabilities(data: Dataset, proba: np.ndarray) -> np.ndarray:
    """Column 1 of ``proba`` after checking its shape against ``data``."""
    proba = np.asarray(proba, dtype=np.float64)
    if proba.ndim != 2 or proba.shape != (len(data), len(CLASSES)):
        raise ValueError(f"proba must have shape ({len(data)}, {len(CLASSES)}), got {proba.shape}")
    return proba[:, 1]


def evaluate(data: Dataset, proba: np.ndarray, costs: CostModel, threshold: float | None = None) -> Metrics:
    """PR-AUC (primary), ROC-AUC, recall at 1% FPR, and threshold metrics; see module doc.

    ``threshold`` given (chosen on validation data) is applied as is; otherwise the
    threshold that saves most money on ``data`` is chosen."""
    y = data.y.astype(np.int64)
    p = fraud_probabilities(data, proba)
    losses, how = fraud_losses(data, costs)
    if threshold is None:
        threshold = choose_threshold(y, p, losses, costs.review_fee)
    at = outcome(y, p, threshold, losses, costs.review_fee)
    tp, fp, fn = at.caught_fraud, at.false_alarms, at.missed_fraud
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else NAN
    f1 = 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0
    values = {
        PRIMARY: NAN,
        "roc_auc": NAN,
        "recall_at_1pct_fpr": NAN,
        "precision": precision,
        "recall": recall,
        "f1": NAN if math.isnan(recall) else f1,
        "brier": float(np.mean((p - y) ** 2)) if len(y) else NAN,
        "fraud_rate": float(y.mean()) if len(y) else NAN,
        "alert_rate": float((p >= threshold).mean()) if len(y) else NAN,
    }
    details: dict[str, Any] = {
        "confusion_matrix": {"tn": len(y) - tp - fp - fn, "fp": fp, "fn": fn, "tp": tp},
        "calibration": calibration_bins(y, p),
        "threshold_rule": (
            "flag when P(fraud) >= threshold; the threshold maximises savings = caught fraud "
            f"losses - {costs.review_fee:g} {costs.currency} x false alarms, where a missed fraud "
            f"costs {how}"
        ),
    }
    if len(np.unique(y)) == 2:
        fpr, tpr, roc_thresholds = roc_curve(y, p)
        precisions, recalls, pr_thresholds = precision_recall_curve(y, p)
        values[PRIMARY] = float(average_precision_score(y, p))
        values["roc_auc"] = float(roc_auc_score(y, p))
        values["recall_at_1pct_fpr"] = float(tpr[fpr <= 0.01].max())
        details["roc_curve"] = _curve(fpr=fpr, tpr=tpr, threshold=roc_thresholds)
        # precision_recall_curve ends with the (recall 0, precision 1) point, no threshold.
        details["pr_curve"] = _curve(
            recall=recalls, precision=precisions, threshold=np.r_[pr_thresholds, np.nan]
        )
    else:
        only = CLASSES[int(y[0])] if len(y) else "no"
        details["note"] = (
            f"{data.source}: all {len(y):,} rows are {only!r}, so PR-AUC, ROC-AUC and recall at "
            "1% FPR are undefined (NaN); evaluate on rows with both fraud and legit transactions"
        )
    return Metrics(values, PRIMARY, higher_is_better=True, threshold=threshold, details=details)


def calibration_bins(y: np.ndarray, p: np.ndarray, bins: int = CALIBRATION_BINS) -> list[dict[str, float]]:
    """Reliability table: per equal-width probability bin, mean prediction vs fraud rate."""
    index = np.clip((p * bins).astype(np.int64), 0, bins - 1)
    rows = []
    for b in range(bins):
        inside = index == b
        count = int(inside.sum())
        if count:
            rows.append(
                {
                    "lower": b / bins,
                    "upper": (b + 1) / bins,
                    "count": count,
                    "mean_predicted": float(p[inside].mean()),
                    "fraud_rate": float(y[inside].mean()),
                }
            )
    return rows


def _curve(**columns: np.ndarray) -> dict[str, list[float | None]]:
    """Thin equal-length arrays to at most MAX_CURVE_POINTS, keeping both ends.

    Infinite or NaN entries (ROC's first threshold, PR's last) become None for JSON.
    """
    n = len(next(iter(columns.values())))
    keep = np.unique(np.linspace(0, n - 1, min(n, MAX_CURVE_POINTS)).round().astype(np.int64))
    return {
        name: [float(v) if math.isfinite(v) else None for v in np.asarray(values, dtype=np.float64)[keep]]
        for name, values in columns.items()
    }
