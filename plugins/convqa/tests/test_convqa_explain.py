from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest
from mlplug_convqa.explain import explain_model, word_key

from mlplug.task import Explanation


def _words(data, rows: int) -> list[set[str]]:
    return [{word_key(w) for w in text.split()} for text in data.frame["transcript"].iloc[:rows]]


def _check(explanation: Explanation, data, rows: int) -> None:
    assert len(explanation.per_row) == rows
    for scores, words in zip(explanation.per_row, _words(data, rows), strict=True):
        assert scores, "every explained row has attributions"
        assert set(scores) <= words, set(scores) - words  # tokens come from the transcript
        assert all(np.isfinite(v) for v in scores.values())
    classes = set(data.schema.classes)
    assert explanation.global_importance
    for key, value in explanation.global_importance.items():
        cls, _, word = key.partition(":")
        assert cls in classes and word and value > 0


def test_transformer_word_occlusion(task, tiny, holdout) -> None:
    explanation = task.explain(tiny.model, holdout, rows=3)
    assert explanation.kind == "word_occlusion"
    _check(explanation, holdout, 3)
    # a score is the drop in the predicted class's probability when the word is removed
    proba = tiny.model.predict_proba(holdout.X.iloc[:1])[0]
    word, score = next(iter(explanation.per_row[0].items()))
    text = holdout.frame["transcript"].iloc[0]
    pieces = re.split(r"(\s+)", text)  # words at even positions
    without = "".join(p for j, p in enumerate(pieces) if j % 2 or word_key(p) != word)
    again = tiny.model.predict_proba(pd.DataFrame({"transcript": [without]}))[0]
    assert score == pytest.approx(proba.max() - again[proba.argmax()], abs=1e-6)


def test_baseline_coefficient_x_tfidf(task, baseline, holdout) -> None:
    explanation = task.explain(baseline.model, holdout, rows=20)
    assert explanation.kind == "tfidf_coefficient_x_value"
    _check(explanation, holdout, 20)
    # per class keys look like "escalate:lawyer"
    assert all(re.match(r"^[a-z_]+:\S+$", k) for k in explanation.global_importance)


def test_baseline_contributions_add_up_to_the_logit_push(baseline, holdout) -> None:
    """Sharing n-gram pushes over words loses nothing: the words sum to the n-gram total."""
    from mlplug_convqa.explain import _tfidf_contributions

    pipeline = baseline.model.pipeline
    texts = holdout.frame["transcript"].iloc[:3].tolist()
    pred = baseline.model.predict_proba(holdout.X.iloc[:3]).argmax(axis=1)
    coef = pipeline.named_steps["logreg"].coef_
    centred = coef - coef.mean(axis=0, keepdims=True)
    features = pipeline.named_steps["tfidf"].transform(texts)
    for i, scores in enumerate(_tfidf_contributions(baseline.model, texts, pred)):
        expected = features[i].toarray()[0] @ centred[pred[i]]
        assert sum(scores.values()) == pytest.approx(expected, abs=1e-9)


class _OpaqueModel:
    """A model explain() knows nothing about: falls back to occlusion."""

    def __init__(self, inner) -> None:
        self.inner = inner

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:  # noqa: N803
        return self.inner.predict_proba(X)


def test_any_other_model_gets_word_occlusion(task, baseline, holdout) -> None:
    explanation = task.explain(_OpaqueModel(baseline.model), holdout, rows=3)
    assert explanation.kind == "word_occlusion"
    _check(explanation, holdout, 3)


def test_rows_are_bounded_by_the_data_and_the_time_budget(tiny, baseline, holdout) -> None:
    assert len(explain_model(baseline.model, holdout.subset(slice(0, 2)), rows=50).per_row) == 2
    # an exhausted budget still explains the first row
    assert len(explain_model(tiny.model, holdout, rows=40, time_budget_s=0.0).per_row) == 1
    assert explain_model(baseline.model, holdout, rows=0).per_row == []
