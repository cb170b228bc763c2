"""Damaged profiles and profiles of another schema are skipped by key, never merged."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from mlplug.monitoring.features import MonitoredColumn
from mlplug.monitoring.profiles import merge_valid, schema_problem
from mlplug.monitoring.whylogs_compat import Profile
from mlplug.storage import Store

COLUMNS = [
    MonitoredColumn("amount", "numeric", "input"),
    MonitoredColumn("country", "categorical", "input"),
    MonitoredColumn("score", "numeric", "output"),
]


def frame(rows: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "amount": rng.lognormal(3, 1, rows),
            "country": rng.choice(["us", "de"], rows).astype(object),
            "score": rng.beta(1, 20, rows),
        }
    )


def test_a_profile_must_hold_the_versions_columns_with_their_kinds() -> None:
    assert schema_problem(Profile.of(frame(50, 1)), COLUMNS) is None
    assert schema_problem(Profile.of(frame(50, 1).drop(columns=["score"])), COLUMNS) == (
        "another schema: missing columns score"
    )
    wider = frame(50, 1).assign(age=40.0)
    assert (
        schema_problem(Profile.of(wider), COLUMNS) == "another schema: columns the version does not have: age"
    )
    retyped = frame(50, 1).assign(score=["high"] * 50, country=1.5)
    assert schema_problem(Profile.of(retyped), COLUMNS) == (
        "another schema: columns of another type: country (fractional, expected categorical), "
        "score (string, expected numeric)"
    )
    empty_column = frame(50, 1).assign(amount=np.nan)  # all missing: no type to disagree
    assert schema_problem(Profile.of(empty_column), COLUMNS) is None


def test_bad_profiles_are_skipped_by_key_and_the_good_ones_merged(mlplug_store: Store, caplog) -> None:
    good = Profile.of(frame(300, 1)).to_bytes()
    files = {
        "t/profiles/1/a-good.profile": good,
        "t/profiles/1/b-empty.profile": b"",
        "t/profiles/1/c-garbage.profile": b"this is not a profile" * 10,
        "t/profiles/1/d-truncated.profile": good[: len(good) // 2],
        "t/profiles/1/e-cut-short.profile": good[:-5],
        "t/profiles/1/f-other-schema.profile": Profile.of(frame(300, 2).assign(score=["x"] * 300)).to_bytes(),
        "t/profiles/1/g-good.profile": Profile.of(frame(200, 3)).to_bytes(),
    }
    for key, data in files.items():
        mlplug_store.put(key, data)
    with caplog.at_level(logging.WARNING, logger="mlplug.monitoring.profiles"):
        merged = merge_valid(mlplug_store, list(files), COLUMNS)
    assert merged.merged == ["t/profiles/1/a-good.profile", "t/profiles/1/g-good.profile"]
    assert merged.profile is not None and merged.profile.rows() == 500
    reasons = {s.key.split("/")[-1]: s.reason for s in merged.skipped}
    names = ("b-empty", "c-garbage", "d-truncated", "e-cut-short", "f-other-schema")
    assert list(reasons) == [f"{name}.profile" for name in names]
    assert reasons["b-empty.profile"] == "empty file (0 bytes)"
    assert reasons["c-garbage.profile"].startswith("not a readable whylogs profile (210 bytes)")
    assert reasons["d-truncated.profile"].startswith("not a readable whylogs profile")
    assert reasons["e-cut-short.profile"].startswith("not a readable whylogs profile")
    assert reasons["f-other-schema.profile"] == (
        "another schema: columns of another type: score (string, expected numeric)"
    )
    for name in reasons:
        assert f"skipped traffic profile {mlplug_store.uri('t/profiles/1/' + name)}" in caplog.text


def test_only_bad_profiles_merge_into_nothing(mlplug_store: Store) -> None:
    mlplug_store.put("t/profiles/1/a.profile", b"")
    merged = merge_valid(mlplug_store, ["t/profiles/1/a.profile"], COLUMNS)
    assert merged.profile is None and merged.merged == [] and len(merged.skipped) == 1
