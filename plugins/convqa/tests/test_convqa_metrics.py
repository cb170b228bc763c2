from __future__ import annotations

import numpy as np
import pytest
from mlplug_convqa.metrics import classification_metrics

CLASSES = ("a", "b", "c")


def _one_hot(pred: list[int], k: int = 3) -> np.ndarray:
    proba = np.full((len(pred), k), 0.1)
    proba[np.arange(len(pred)), pred] = 0.8
    return proba


def test_perfect_predictions() -> None:
    y = np.array([0, 1, 2, 2])
    m = classification_metrics(y, _one_hot([0, 1, 2, 2]), CLASSES)
    assert m.primary == "macro_f1" and m.higher_is_better
    assert m.score == 1.0 and m.values["accuracy"] == 1.0
    assert m.details["confusion_matrix"] == {
        "labels": list(CLASSES),
        "matrix": [[1, 0, 0], [0, 1, 0], [0, 0, 2]],
    }


def test_known_mistakes_give_known_scores() -> None:
    y = np.array([0, 0, 1, 1, 2, 2])
    m = classification_metrics(y, _one_hot([0, 1, 1, 1, 2, 0]), CLASSES)
    per = m.details["per_class"]
    assert per["a"] == pytest.approx({"precision": 0.5, "recall": 0.5, "f1": 0.5, "support": 2})
    assert per["b"]["precision"] == pytest.approx(2 / 3) and per["b"]["recall"] == 1.0
    assert per["c"]["precision"] == 1.0 and per["c"]["recall"] == 0.5
    assert m.values["accuracy"] == pytest.approx(4 / 6)
    assert m.score == pytest.approx(np.mean([0.5, 0.8, 2 / 3]))
    assert m.details["confusion_matrix"]["matrix"] == [[1, 1, 0], [0, 2, 0], [1, 0, 1]]
    assert m.values["log_loss"] > 0


def test_a_class_never_predicted_scores_zero_not_an_error() -> None:
    m = classification_metrics(np.array([0, 1, 2]), _one_hot([0, 1, 1]), CLASSES)
    assert m.details["per_class"]["c"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1}


def test_shape_mismatch_is_rejected() -> None:
    with pytest.raises(ValueError, match="shape"):
        classification_metrics(np.array([0, 1]), np.ones((2, 2)) / 2, CLASSES)


def test_task_evaluate_uses_the_schema_classes(task, holdout) -> None:
    rng = np.random.default_rng(0)
    proba = rng.dirichlet(np.ones(4), size=len(holdout))
    m = task.evaluate(holdout, proba)
    assert m.details["confusion_matrix"]["labels"] == list(holdout.schema.classes)
    assert set(m.details["per_class"]) == set(holdout.schema.classes)
    assert 0.0 <= m.score <= 1.0
