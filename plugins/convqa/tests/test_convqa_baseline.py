from __future__ import annotations

import json

import numpy as np
import pytest
from mlplug_convqa.baseline import PIPELINE_FILE, TfidfBaseline
from mlplug_convqa.saved import MANIFEST, ConvQAModelError


def test_round_trip_gives_identical_probabilities(task, baseline, holdout, tmp_path) -> None:
    baseline.model.save(tmp_path)
    manifest = json.loads((tmp_path / MANIFEST).read_text())
    assert manifest["kind"] == "baseline"
    assert manifest["params"] == {"C": baseline.model.params["C"]}
    assert (tmp_path / PIPELINE_FILE).is_file()
    loaded = task.load_model(tmp_path)
    assert isinstance(loaded, TfidfBaseline)
    np.testing.assert_array_equal(loaded.predict_proba(holdout.X), baseline.model.predict_proba(holdout.X))


def test_row_fast_path_matches_the_frame_path(baseline, holdout) -> None:
    rows = [[text] for text in holdout.frame["transcript"].iloc[:5]]
    np.testing.assert_array_equal(
        baseline.model.predict_proba_rows(rows), baseline.model.predict_proba(holdout.X.iloc[:5])
    )


def test_progress_reports_one_validation_score(baseline) -> None:
    assert len(baseline.progress) == 1
    step, score = baseline.progress[0]
    assert step == 1 and 0.0 <= score <= 1.0


def test_learns_the_lexical_part_of_the_rubric(task, baseline, holdout) -> None:
    proba = baseline.model.predict_proba(holdout.X)
    assert proba.shape == (len(holdout), 4) and proba.dtype == np.float64
    # 240 training conversations: well above the 0.25 of guessing, far from perfect
    assert task.evaluate(holdout, proba).score > 0.4


def test_a_class_missing_from_training_keeps_its_column(train_data, holdout) -> None:
    without = train_data.subset(np.flatnonzero(train_data.y != 0))
    model = TfidfBaseline(train_data.schema, {"C": 1.0})
    model.fit(without)
    proba = model.predict_proba(holdout.X)
    assert proba.shape == (len(holdout), len(holdout.schema.classes))
    assert np.all(proba[:, 0] == 0.0)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)


def test_bad_params_and_unfitted_use(train_data) -> None:
    with pytest.raises(ConvQAModelError, match="C must be > 0"):
        TfidfBaseline(train_data.schema, {"C": 0})
    with pytest.raises(ConvQAModelError, match="unknown baseline parameter"):
        TfidfBaseline(train_data.schema, {"alpha": 1})
    with pytest.raises(RuntimeError, match="not fitted"):
        TfidfBaseline(train_data.schema).predict_proba(train_data.X)
