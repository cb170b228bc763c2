"""A version that mlplug wrapped (calibration around a blend of model and baseline) is served
as one model over real HTTP: calibrated probabilities on the row fast path and in batches,
explanations still available (issue 11)."""

from __future__ import annotations

import tempfile
from pathlib import Path

import httpx
import numpy as np
import pandas as pd

from mlplug.blend import BlendModel
from mlplug.calibration import CalibratedModel, Calibrator
from mlplug.registry import Registry
from mlplug.runtime import open_store
from mlplug.stored_model import save_model
from mlplug.testing.servers import mlplug_server
from tests.serving.support import AUTH, FraudStore, fraud_records, server_env


def test_a_calibrated_blend_is_served_calibrated_and_explained(private_store: FraudStore, tmp_path) -> None:
    from mlplug_fraud import FraudTask

    task = FraudTask()
    data = task.synthesize(3000, seed=4)
    train, valid = data.subset(slice(0, 2200)), data.subset(slice(2200, None))
    model = task.create_model(data.schema, task.quick_params())
    model.fit(train, valid)
    baseline = task.create_baseline(data.schema, {"C": 0.1, "class_weight": "balanced"})
    baseline.fit(train)
    served = CalibratedModel(
        BlendModel([model, baseline], [0.5, 0.5], ["model", "baseline"]),
        Calibrator("platt", {"coef": [1.1, -2.5]}),
    )
    registry = Registry(open_store(private_store.url))
    with tempfile.TemporaryDirectory() as tmp:
        save_model(served, Path(tmp))
        version = registry.register_model(
            "fraud",
            Path(tmp),
            kind="blend",
            params={},
            metrics=task.evaluate(valid, served.predict_proba(valid.X)),
            dataset_hash=registry.put_dataset("fraud", data).hash,
            schema=data.schema,
        )
    registry.promote("fraud", version.version, reason="calibrated blend")
    records = fraud_records(30, seed=8)
    features = data.schema.validate(pd.DataFrame(records), "t", require_target=False)
    expected = served.predict_proba(features[data.schema.feature_names])
    raw = served.raw_proba(features[data.schema.feature_names])
    assert not np.allclose(expected, raw, atol=1e-3)  # the calibration changes the numbers

    env = server_env(private_store, tmp_path / "home", MLPLUG_RELOAD_INTERVAL="0")
    with mlplug_server("fraud", tmp_path, env=env) as server:
        batch = httpx.post(
            server.url + "/predict", json={"records": records}, headers=AUTH, timeout=30
        ).json()
        assert batch["model_version"] == version.version
        got = [p["probability"] for p in batch["predictions"]]
        assert np.allclose(got, expected[:, 1], atol=1e-9)
        one = httpx.post(server.url + "/predict", json=records[2], headers=AUTH, timeout=30).json()
        assert abs(one["probability"] - expected[2, 1]) < 1e-9
        explained = httpx.post(server.url + "/explain", json=records[2], headers=AUTH, timeout=60)
        assert explained.status_code == 200, explained.text
        assert explained.text.count("amount") >= 1
