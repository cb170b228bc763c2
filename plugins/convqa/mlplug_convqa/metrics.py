"""Scores for multi-class QA outcomes: macro-F1 (primary), accuracy, per-class tables."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from mlplug.task import Metrics

PRIMARY = "macro_f1"


def macro_f1(y: np.ndarray, pred: np.ndarray, n_classes: int) -> float:
    from sklearn.metrics import f1_score

    return float(f1_score(y, pred, labels=list(range(n_classes)), average="macro", zero_division=0))


def classification_metrics(y: np.ndarray, proba: np.ndarray, classes: Sequence[str]) -> Metrics:
    """Metrics for class indices ``y`` and probabilities ``proba`` (rows x classes)."""
    from sklearn.metrics import confusion_matrix, log_loss, precision_recall_fscore_support

    y = np.asarray(y, dtype=np.int64)
    proba = np.asarray(proba, dtype=np.float64)
    k = len(classes)
    if proba.ndim != 2 or proba.shape != (len(y), k):
        raise ValueError(f"expected probabilities of shape ({len(y)}, {k}), got {proba.shape}")
    if len(y) == 0:
        raise ValueError("cannot score an empty data set")
    labels = list(range(k))
    pred = proba.argmax(axis=1)
    precision, recall, f1, support = precision_recall_fscore_support(y, pred, labels=labels, zero_division=0)
    clipped = np.clip(proba, 1e-15, 1.0)
    clipped /= clipped.sum(axis=1, keepdims=True)
    values = {
        PRIMARY: float(np.mean(f1)),
        "accuracy": float(np.mean(pred == y)),
        "weighted_f1": float(np.average(f1, weights=support)) if support.sum() else 0.0,
        "macro_precision": float(np.mean(precision)),
        "macro_recall": float(np.mean(recall)),
        "log_loss": float(log_loss(y, clipped, labels=labels)),
    }
    per_class = {
        name: {
            "precision": float(precision[i]),
            "recall": float(recall[i]),
            "f1": float(f1[i]),
            "support": int(support[i]),
        }
        for i, name in enumerate(classes)
    }
    matrix = confusion_matrix(y, pred, labels=labels)
    return Metrics(
        values=values,
        primary=PRIMARY,
        higher_is_better=True,
        details={
            "per_class": per_class,
            # rows are true labels, columns predicted labels, both in ``labels`` order
            "confusion_matrix": {"labels": list(classes), "matrix": matrix.astype(int).tolist()},
        },
    )
