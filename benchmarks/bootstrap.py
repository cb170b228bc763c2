"""Paired bootstrap of average precision (PR-AUC) on one holdout.

Every method is scored on the same resamples of the holdout rows, so the interval of a
difference between two methods is as narrow as the pairing allows. A resample is a vector
of counts (how often each row was drawn); average precision with those counts as sample
weights is the average precision of the resampled rows, and is computed for all resamples
at once.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def resample_counts(n: int, resamples: int, seed: int) -> np.ndarray:
    """``(resamples, n)`` draw counts; each row sums to ``n``."""
    rng = np.random.default_rng(seed)
    return rng.multinomial(n, np.full(n, 1.0 / n), size=resamples).astype(np.float64)


def weighted_average_precision(y: np.ndarray, score: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Average precision per row of ``weights`` (shape ``(k, n)``), as scikit-learn's
    ``average_precision_score(y, score, sample_weight=w)`` computes it: tied scores form one
    threshold. A weight row without positives gives NaN."""
    y = np.asarray(y, dtype=np.float64)
    order = np.argsort(-np.asarray(score, dtype=np.float64), kind="stable")
    s = np.asarray(score, dtype=np.float64)[order]
    w = np.atleast_2d(weights)[:, order]
    last_of_tie = np.append(s[1:] != s[:-1], True)
    tp = np.cumsum(w * y[order], axis=1)[:, last_of_tie]
    seen = np.cumsum(w, axis=1)[:, last_of_tie]
    positives = tp[:, -1:]
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = np.where(seen > 0, tp / seen, 0.0)
        recall = tp / positives
    step = np.diff(recall, axis=1, prepend=0.0)
    return np.where(positives[:, 0] > 0, (step * precision).sum(axis=1), np.nan)


@dataclass(frozen=True)
class Interval:
    estimate: float
    low: float
    high: float

    def as_dict(self) -> dict[str, float]:
        return {"estimate": round(self.estimate, 4), "low": round(self.low, 4), "high": round(self.high, 4)}

    def __str__(self) -> str:
        return f"{self.estimate:.3f} [{self.low:.3f}, {self.high:.3f}]"


def interval(estimate: float, draws: np.ndarray, level: float = 0.95) -> Interval:
    """Percentile interval of ``draws`` (resamples without positives are dropped)."""
    tail = (1 - level) / 2 * 100
    low, high = np.nanpercentile(draws, [tail, 100 - tail])
    return Interval(float(estimate), float(low), float(high))


def paired_intervals(
    y: np.ndarray, scores: dict[str, np.ndarray], resamples: int = 2000, seed: int = 0
) -> tuple[dict[str, Interval], dict[str, np.ndarray]]:
    """Each method's PR-AUC with its interval, and its per-resample draws (for differences)."""
    counts = resample_counts(len(y), resamples, seed)
    ones = np.ones((1, len(y)))
    draws = {name: weighted_average_precision(y, s, counts) for name, s in scores.items()}
    out = {
        name: interval(float(weighted_average_precision(y, s, ones)[0]), draws[name])
        for name, s in scores.items()
    }
    return out, draws
