"""Drift monitoring of conversations: the style columns the plugin adds catch a move to voice
transcripts that lengths alone barely show."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pytest
from mlplug_convqa import ConvQATask
from mlplug_convqa.monitoring import style_features

from mlplug.monitoring.drift import compare
from mlplug.monitoring.features import monitored_columns, monitoring_frame
from mlplug.monitoring.whylogs_compat import Profile


def test_style_features_per_text_column() -> None:
    X = pd.DataFrame({"t": ["Hello, Jo. How can I help?", "um so like it's broken uh", None], "n": [1, 2, 3]})  # noqa: N806
    out = style_features(X)
    assert list(out.columns) == ["t.punctuation_per_word", "t.fillers_per_word", "t.capital_share"]
    assert out.loc[0, "t.punctuation_per_word"] == pytest.approx(3 / 6)
    assert out.loc[1, "t.fillers_per_word"] == pytest.approx(3 / 6)
    assert out.loc[1, "t.capital_share"] == 0 and out.loc[0, "t.capital_share"] > 0.1
    assert out.loc[2].tolist() == [0.0, 0.0, 0.0]


def _profile(task: ConvQATask, rows: int, seed: int, drift: float) -> Profile:
    data = task.synthesize(rows, seed=seed, drift=drift)
    proba = np.full((rows, len(data.schema.classes)), 1 / len(data.schema.classes))
    return Profile.of(monitoring_frame(task, data.schema, data.X, proba))


def test_voice_transcripts_drift_and_same_channel_does_not() -> None:
    task = ConvQATask()
    schema = task.synthesize(10, seed=0).schema
    columns = monitored_columns(task, schema)
    assert "transcript.punctuation_per_word" in [c.name for c in columns]
    reference = _profile(task, 1500, 1, 0.0)
    now = datetime.now(UTC)

    def check(drift: float, seed: int):
        return compare(
            task="convqa", version=1, columns=columns, reference=reference,
            current=_profile(task, 1000, seed, drift), profiles=1, window=(now, now),
        )  # fmt: skip

    assert not check(0.0, 2).drifted
    drifted = check(1.0, 3)
    assert drifted.drifted
    assert {"transcript.punctuation_per_word", "transcript.capital_share"} <= {
        c.name for c in drifted.drifted_inputs
    }
