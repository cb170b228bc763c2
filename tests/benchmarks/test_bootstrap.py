"""The public-tables benchmark's paired bootstrap scores what scikit-learn scores."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import average_precision_score

from benchmarks.bootstrap import paired_intervals, resample_counts, weighted_average_precision


def test_weighted_average_precision_matches_scikit_learn_with_ties_and_resamples() -> None:
    rng = np.random.default_rng(3)
    y = (rng.random(300) < 0.1).astype(int)
    score = np.round(rng.random(300) + y * 0.3, 1)  # coarse: many tied scores
    counts = resample_counts(len(y), 50, seed=1)
    ours = weighted_average_precision(y, score, counts)
    theirs = [average_precision_score(y, score, sample_weight=w) if (w * y).sum() else np.nan for w in counts]
    np.testing.assert_allclose(ours, theirs, rtol=1e-12)


def test_a_resample_without_positives_is_nan_and_left_out_of_the_interval() -> None:
    y = np.array([0, 0, 0, 1])
    weights = np.array([[1.0, 1.0, 2.0, 0.0], [1.0, 1.0, 1.0, 1.0]])
    assert np.isnan(weighted_average_precision(y, np.array([0.1, 0.2, 0.3, 0.9]), weights)[0])

    intervals, draws = paired_intervals(y, {"perfect": np.array([0.1, 0.2, 0.3, 0.9])}, resamples=200)
    assert intervals["perfect"].estimate == 1.0
    assert intervals["perfect"].low == intervals["perfect"].high == 1.0
    assert np.isnan(draws["perfect"]).any()  # some resamples drew no positive row
