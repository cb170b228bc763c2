"""Infinite and extreme numbers in profiled rows: counted per column, clipped so the
sketches' arithmetic stays finite, carried through serialisation and merges, and reported
in a drift result that is always strict JSON."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pytest

from mlplug.monitoring.bounds import EXTREME, OutOfRange, clip_out_of_range
from mlplug.monitoring.drift import DriftResult, compare
from mlplug.monitoring.features import MonitoredColumn
from mlplug.monitoring.whylogs_compat import Profile, ProfileBuilder, _why

NOW = datetime(2026, 12, 3, tzinfo=UTC)
COLUMNS = [MonitoredColumn("amount", "numeric", "input"), MonitoredColumn("score", "numeric", "output")]


def traffic(rows: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"amount": rng.lognormal(3, 1, rows), "score": rng.beta(1, 20, rows)})


def with_outliers(frame: pd.DataFrame) -> pd.DataFrame:
    frame = frame.copy()
    frame.loc[:1, "amount"] = 1.7e308  # finite, valid JSON; its sum overflows
    frame.loc[2, "amount"] = -np.inf
    frame.loc[3, "amount"] = np.nan  # missing: not counted here
    frame.loc[4, "score"] = np.inf
    return frame


def result_of(current: Profile) -> DriftResult:
    return compare(task="t", version=1, columns=COLUMNS, reference=Profile.of(traffic(3000, 0)),
                   current=current, profiles=1, window=(NOW, NOW))  # fmt: skip


def test_values_beyond_the_bound_are_counted_per_column_and_clipped() -> None:
    frame = with_outliers(traffic(1000, 1))
    clipped, counts = clip_out_of_range(frame)
    assert counts == {"amount": OutOfRange(non_finite=1, extreme=2), "score": OutOfRange(non_finite=1)}
    assert clipped["amount"].max() == EXTREME and clipped["amount"].min() == -EXTREME
    assert np.isnan(clipped.loc[3, "amount"]) and np.isinf(frame.loc[4, "score"])  # input untouched
    _, none = clip_out_of_range(traffic(10, 2))
    assert none == {}


def test_a_window_with_extreme_values_scores_and_serialises_as_strict_json() -> None:
    result = result_of(Profile.of(with_outliers(traffic(1000, 1))))
    amount = next(c for c in result.columns if c.name == "amount")
    assert (amount.current_extreme, amount.current_non_finite) == (2, 1)
    assert amount.current_mean is not None and np.isfinite(amount.current_mean)
    assert amount.score is not None and amount.category != "UNKNOWN"
    assert [c.name for c in result.out_of_range] == ["amount", "score"]
    assert result.decision.endswith(
        "values out of range (beyond ±1e+100): amount: 2 extreme, 1 infinite; score: 1 infinite"
    )
    text = json.dumps(result.to_dict(), allow_nan=False)
    again = DriftResult.from_dict(json.loads(text))
    assert again.columns[0].current_extreme == 2 and again.decision == result.decision


def test_counts_travel_with_profiles_through_bytes_chunks_and_merges() -> None:
    builder = ProfileBuilder()
    builder.track(with_outliers(traffic(500, 1)))
    builder.track(with_outliers(traffic(500, 2)))
    first = Profile.from_bytes(builder.build(seen_rows=4000).to_bytes())
    assert first.out_of_range()["amount"] == OutOfRange(non_finite=2, extreme=4)
    assert first.seen_rows() == 4000 and first.rows() == 1000
    second = Profile.from_bytes(Profile.of(with_outliers(traffic(300, 3))).to_bytes())
    merged = first.merge(second)
    assert merged.out_of_range()["amount"] == OutOfRange(non_finite=3, extreme=6)
    assert merged.seen_rows() == 4300 and merged.rows() == 1300
    assert first.seen_rows() == 4000  # merging leaves its inputs as they were


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # whylogs overflowing, as it did
def test_profiles_written_before_values_were_clipped_still_score() -> None:
    # A profile as mlplug wrote it before: whylogs' own mean is inf, its quantiles hold inf.
    raw = with_outliers(traffic(1000, 1))
    old = Profile(_why().log(pandas=raw).profile().view())
    assert not np.isfinite(old._view.get_column("amount").get_metric("distribution").mean.value)
    result = result_of(Profile.from_bytes(old.to_bytes()))
    amount = next(c for c in result.columns if c.name == "amount")
    assert amount.current_mean is None and amount.current_non_finite == 1  # whylogs counted the inf
    json.dumps(result.to_dict(), allow_nan=False)


def test_a_non_finite_number_that_reaches_a_result_becomes_null() -> None:
    result = result_of(Profile.of(traffic(1000, 1)))
    result.columns[0].current_mean = float("inf")
    data = json.loads(json.dumps(result.to_dict(), allow_nan=False))
    assert data["columns"][0]["current_mean"] is None
