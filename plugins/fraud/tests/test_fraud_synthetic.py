from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pytest
from mlplug_fraud.columns import AMOUNT_COLUMN, ID_COLUMN, TARGET, TIME_COLUMN
from mlplug_fraud.synthetic import fraud_schema, generate_frame, synthesize

from mlplug.schema import Role


def test_same_seed_gives_identical_data_and_another_seed_does_not() -> None:
    pd.testing.assert_frame_equal(generate_frame(3000, 7, 0.3), generate_frame(3000, 7, 0.3))
    assert not generate_frame(3000, seed=7).equals(generate_frame(3000, seed=8))
    first, second = synthesize(2000, seed=5), synthesize(2000, seed=5)
    assert first.content_hash() == second.content_hash()


@pytest.mark.parametrize(("drift", "low", "high"), [(0.0, 0.01, 0.02), (1.0, 0.015, 0.025)])
def test_fraud_rate_is_about_one_to_two_percent(drift: float, low: float, high: float) -> None:
    rate = generate_frame(50_000, seed=3, drift=drift)[TARGET].mean()
    assert low <= rate <= high


def test_columns_types_and_consistency() -> None:
    frame = generate_frame(5000, seed=1)
    schema = fraud_schema()
    assert set(frame.columns) == {*schema.feature_names, TARGET, ID_COLUMN, TIME_COLUMN}
    assert frame[ID_COLUMN].is_unique
    assert frame[TIME_COLUMN].is_monotonic_increasing
    assert (frame[TIME_COLUMN].dt.hour == frame["hour"]).all()
    assert frame["card_present"].dtype == bool and frame["country_mismatch"].dtype == bool
    assert set(frame[TARGET].unique()) == {0, 1}
    amounts = frame[AMOUNT_COLUMN]
    assert (amounts > 0).all()
    assert amounts.max() > 20 * amounts.median()  # heavy tail
    assert frame["merchant_category"].nunique() == 10
    assert schema.extras["amount_column"] == AMOUNT_COLUMN
    assert schema.columns_with(Role.CATEGORICAL) == ["merchant_category"]


def test_synthesize_returns_a_validated_dataset() -> None:
    data = synthesize(1000, seed=2, drift=0.5)
    assert len(data) == 1000
    assert data.schema == fraud_schema()
    assert data.frame["card_present"].dtype == np.float64  # BOOLEAN columns become 0.0/1.0
    assert "seed=2" in data.source and "drift=0.5" in data.source


def test_signal_needs_interactions() -> None:
    # Card-not-present, new device and night each raise the fraud rate a little; together,
    # a lot: that conjunction is what the account-takeover pattern looks like.
    frame = generate_frame(100_000, seed=4)
    cnp = ~frame["card_present"]
    new_device = frame["device_age_days"] < 7
    night = (frame["hour"] < 6) | (frame["hour"] >= 22)
    base = frame[TARGET].mean()
    together = frame.loc[cnp & new_device & night, TARGET].mean()
    for single in (cnp, new_device, night):
        assert frame.loc[single, TARGET].mean() < 0.3 * together
    assert together > 10 * base


def test_drift_shifts_distributions_and_the_fraud_pattern() -> None:
    before, after = generate_frame(60_000, seed=9, drift=0.0), generate_frame(60_000, seed=9, drift=1.0)
    assert after[AMOUNT_COLUMN].median() > 1.25 * before[AMOUNT_COLUMN].median()
    assert after["card_present"].mean() < before["card_present"].mean() - 0.1
    assert after[TIME_COLUMN].min() > before[TIME_COLUMN].max()

    def campaign_share(frame: pd.DataFrame) -> float:
        # The new campaign: large card-not-present online_services/gaming purchases.
        fraud = frame[frame[TARGET] == 1]
        digital = fraud["merchant_category"].isin(["online_services", "gaming"])
        return float((digital & ~fraud["card_present"] & (fraud[AMOUNT_COLUMN] > 80)).mean())

    assert campaign_share(after) > campaign_share(before) + 0.15


def test_100k_rows_generate_well_under_two_seconds() -> None:
    generate_frame(1000)  # first-call overheads are not what is measured
    start = time.perf_counter()
    generate_frame(100_000, seed=0)
    assert time.perf_counter() - start < 2.0


@pytest.mark.parametrize(("rows", "drift"), [(0, 0.0), (100, -0.1), (100, 1.5)])
def test_bad_arguments(rows: int, drift: float) -> None:
    with pytest.raises(ValueError, match=r"^(rows|drift) must be"):
        generate_frame(rows, drift=drift)
