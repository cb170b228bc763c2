"""Drift scores on real whylogs profiles: what drifts, what does not, and the decision."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pytest

from mlplug.monitoring.drift import (
    DRIFT,
    NO_DRIFT,
    POSSIBLE_DRIFT,
    UNKNOWN,
    DriftResult,
    DriftThresholds,
    compare,
    hellinger,
    sampling_noise,
)
from mlplug.monitoring.features import MonitoredColumn
from mlplug.monitoring.whylogs_compat import Profile

NOW = datetime(2026, 11, 29, tzinfo=UTC)
COLUMNS = [
    MonitoredColumn("amount", "numeric", "input"),
    MonitoredColumn("country", "categorical", "input"),
    MonitoredColumn("age", "numeric", "input"),
    MonitoredColumn("score", "numeric", "output"),
]


def frame(rows: int, seed: int, *, shift: float = 0.0, new_country: float = 0.0, missing_age: float = 0.0):
    rng = np.random.default_rng(seed)
    countries = rng.choice(["us", "de", "fr"], size=rows, p=[0.6, 0.3, 0.1]).astype(object)
    countries[rng.random(rows) < new_country] = "br"
    age = rng.normal(40, 10, rows)
    age[rng.random(rows) < missing_age] = np.nan
    return pd.DataFrame(
        {
            "amount": rng.lognormal(3 + shift, 1, rows),
            "country": countries,
            "age": age,
            "score": rng.beta(1, 20, rows),
        }
    )


def run(current: pd.DataFrame, reference: pd.DataFrame | None = None, **thresholds) -> DriftResult:
    ref = Profile.of(reference if reference is not None else frame(5000, 0))
    return compare(
        task="t",
        version=3,
        columns=COLUMNS,
        reference=ref,
        current=Profile.of(current),
        profiles=1,
        window=(NOW, NOW),
        thresholds=DriftThresholds(**thresholds),
    )


def test_hellinger_bounds() -> None:
    assert hellinger(np.array([0.5, 0.5]), np.array([0.5, 0.5])) == 0
    assert hellinger(np.array([1.0, 0.0]), np.array([0.0, 1.0])) == pytest.approx(1)
    assert 0 < hellinger(np.array([0.6, 0.4]), np.array([0.4, 0.6])) < 0.2


def test_same_distribution_does_not_drift() -> None:
    result = run(frame(2000, 1))
    assert not result.drifted
    assert all(c.category == NO_DRIFT for c in result.columns), [(c.name, c.score) for c in result.columns]
    assert result.decision == "no drift: 0 of 3 input columns drifted, share 0.00 < 0.25"
    assert result.reference_rows == 5000 and result.current_rows == 2000


def test_shifted_amounts_and_a_new_country_drift() -> None:
    result = run(frame(2000, 1, shift=0.7, new_country=0.3))
    by_name = {c.name: c for c in result.columns}
    assert by_name["amount"].category == DRIFT and by_name["country"].category == DRIFT
    assert by_name["age"].category == NO_DRIFT
    assert result.drifted and result.share == pytest.approx(2 / 3)
    assert "br" in by_name["country"].distribution.labels  # a value only the traffic has
    amount = by_name["amount"]
    assert amount.current_mean > amount.reference_mean
    assert amount.distribution.edges[0] == -np.inf and amount.distribution.edges[-1] == np.inf
    assert len(amount.distribution.labels) == len(amount.distribution.edges) - 1
    assert result.decision.startswith("drift: 2 of 3 input columns drifted (")


def test_a_column_arriving_empty_drifts_through_its_missing_bin() -> None:
    result = run(frame(2000, 1, missing_age=0.5))
    age = next(c for c in result.columns if c.name == "age")
    assert age.current_missing == pytest.approx(0.5, abs=0.05) and age.reference_missing == 0
    assert age.distribution.labels[-1] == "(missing)"
    assert age.category == DRIFT


def test_small_windows_need_a_bigger_distance() -> None:
    assert sampling_noise(10, 5000, 100) > 2 * sampling_noise(10, 5000, 1000)
    thresholds = DriftThresholds()
    assert thresholds.category(0.12, noise=0.02) == DRIFT
    assert thresholds.category(0.12, noise=0.06) == POSSIBLE_DRIFT  # 2.5 x noise = 0.15
    assert thresholds.category(None) == UNKNOWN


def test_too_little_traffic_gives_no_decision() -> None:
    result = run(frame(100, 1, shift=2.0))
    assert not result.drifted
    assert result.decision.startswith("no decision: 100 rows of traffic in the window, fewer than the 500")


def test_output_drift_alone_is_drift() -> None:
    current = frame(2000, 1)
    current["score"] = np.random.default_rng(2).beta(5, 5, 2000)
    result = run(current)
    assert result.drifted and result.share == 0
    assert result.decision.startswith("drift: the model's outputs drifted (score (")


def test_a_column_missing_from_the_traffic_is_unknown_not_drift() -> None:
    result = run(frame(2000, 1).drop(columns=["age"]))
    age = next(c for c in result.columns if c.name == "age")
    assert age.category == UNKNOWN and age.note == "no current data"
    assert not result.drifted


def test_result_round_trips_through_json() -> None:
    import json

    result = run(frame(2000, 1, shift=0.7))
    text = json.dumps(result.to_dict(), allow_nan=False)  # strict JSON: no Infinity
    again = DriftResult.from_dict(json.loads(text))
    assert again.decision == result.decision and again.share == result.share
    assert [c.score for c in again.columns] == [c.score for c in result.columns]
    assert again.columns[0].distribution == result.columns[0].distribution


@pytest.mark.parametrize("bad", [{"possible": 0.3, "drift": 0.2}, {"share": 0}, {"drift": 1.5}])
def test_thresholds_are_validated(bad) -> None:
    with pytest.raises(ValueError):
        DriftThresholds(**bad)
