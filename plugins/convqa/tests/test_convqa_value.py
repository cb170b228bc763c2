from __future__ import annotations

import numpy as np
import pytest
from mlplug_convqa import ConvQATask
from mlplug_convqa.value import UNIT, auto_accept_threshold, review_savings

CLASSES = ("a", "b")


def _proba(conf: list[float], pred: list[int]) -> np.ndarray:
    out = np.zeros((len(conf), 2))
    out[np.arange(len(conf)), pred] = conf
    out[np.arange(len(conf)), 1 - np.asarray(pred)] = 1 - np.asarray(conf)
    return out


def test_threshold_accepts_the_most_at_target_precision() -> None:
    # ranked by confidence: right, right, right, wrong, right, wrong
    conf = [0.99, 0.95, 0.9, 0.85, 0.8, 0.7]
    y = np.array([0, 0, 0, 1, 0, 1])
    proba = _proba(conf, [0, 0, 0, 0, 0, 0])
    assert auto_accept_threshold(y, proba, 1.0).threshold == pytest.approx(0.9)
    accept = auto_accept_threshold(y, proba, 0.8)  # 4 of 5 right at 0.8
    assert (accept.threshold, accept.accepted, accept.correct) == (pytest.approx(0.8), 5, 4)


def test_ties_are_accepted_together() -> None:
    y = np.array([0, 1, 0])
    proba = _proba([0.9, 0.9, 0.6], [0, 0, 0])
    accept = auto_accept_threshold(y, proba, 0.9)
    assert accept.accepted == 0 and accept.threshold is None


def test_reviewer_hours_per_thousand_conversations() -> None:
    y = np.array([0] * 8 + [1] * 2)
    proba = _proba([0.99] * 6 + [0.6] * 4, [0] * 6 + [1] * 4)  # top 6 right, the rest mixed
    value = review_savings(y, proba, CLASSES, minutes_per_review=12, target_precision=0.95)
    assert value.unit == UNIT == "reviewer hours"
    assert value.details["auto_accept_share"] == pytest.approx(0.6)
    assert value.value == pytest.approx(0.6 * 1000 * 12 / 60)  # 120 hours per 1,000
    assert value.details["hours_saved_on_data"] == pytest.approx(6 * 12 / 60)
    assert value.no_model_value == 0.0 and value.gain == value.value
    assert "per 1,000 conversations" in value.summary and "60.0%" in value.summary


def test_no_threshold_reaches_the_target() -> None:
    y = np.array([1, 0, 1, 0])
    value = review_savings(
        y, _proba([0.9, 0.8, 0.7, 0.6], [0, 1, 0, 1]), CLASSES, minutes_per_review=12, target_precision=0.95
    )
    assert value.value == 0.0
    assert "every conversation still needs a reviewer" in value.summary
    assert "confidence_threshold" not in value.details


def test_minutes_per_review_come_from_settings_or_the_constructor(monkeypatch, holdout) -> None:
    proba = np.eye(4)[holdout.y] * 0.9 + 0.025  # confident and right
    metrics = ConvQATask().evaluate(holdout, proba)
    monkeypatch.setenv("MLPLUG_CONVQA_MINUTES_PER_REVIEW", "6")
    from_env = ConvQATask().business_value(holdout, proba, metrics)
    assert from_env.details["minutes_per_review"] == 6.0
    assert from_env.value == pytest.approx(1000 * 6 / 60)
    explicit = ConvQATask(minutes_per_review=30, target_precision=0.99).business_value(
        holdout, proba, metrics
    )
    assert explicit.value == pytest.approx(1000 * 30 / 60)
    assert explicit.details["target_precision"] == 0.99
