"""The core unwraps calibrated and blended models before a plugin's ``explain`` sees them:
a plugin knows only its own models (the test task reads its model's ``means``)."""

from __future__ import annotations

import numpy as np
import pytest

from mlplug.blend import BlendModel
from mlplug.calibration import CalibratedModel, fit_calibrator
from mlplug.explaining import explain_model
from tests.testing.linear_task import LinearModel, LinearTask


@pytest.fixture()
def fitted() -> tuple[LinearTask, LinearModel, LinearModel, object]:
    task = LinearTask()
    data = task.synthesize(400, seed=3)
    strong, weak = LinearModel(c=10.0), LinearModel(c=0.01)
    strong.fit(data)
    weak.fit(data)
    return task, strong, weak, data


def test_a_calibrated_model_is_explained_by_its_inner_model(fitted) -> None:
    task, strong, _, data = fitted
    p = strong.predict_proba(data.X)[:, 1]
    calibrated = CalibratedModel(strong, fit_calibrator("platt", data.y, p))
    plain = task.explain(strong, data, rows=5)
    got = explain_model(task, calibrated, data, rows=5)
    assert got.per_row == plain.per_row and got.global_importance == plain.global_importance
    assert got.kind == f"{plain.kind}; before calibration"


def test_a_blend_is_explained_by_the_weighted_mean_of_its_members(fitted) -> None:
    task, strong, weak, data = fitted
    blend = BlendModel([strong, weak], [0.75, 0.25], ["model", "baseline"])
    a, b = task.explain(strong, data, rows=4), task.explain(weak, data, rows=4)
    got = explain_model(
        task,
        CalibratedModel(blend, fit_calibrator("platt", data.y, blend.predict_proba(data.X)[:, 1])),
        data,
        rows=4,
    )
    assert len(got.per_row) == 4
    for row, ra, rb in zip(got.per_row, a.per_row, b.per_row, strict=True):
        for name in ("a", "b"):
            assert row[name] == pytest.approx(0.75 * ra[name] + 0.25 * rb[name])
    for name, value in got.global_importance.items():
        assert value == pytest.approx(0.75 * a.global_importance[name] + 0.25 * b.global_importance[name])
    assert got.kind.startswith("blend: 0.75 of the model (") and "0.25 of the baseline (" in got.kind
    assert got.kind.endswith("; before calibration")
    assert np.isfinite(list(got.global_importance.values())).all()
