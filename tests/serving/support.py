"""Models for the serving tests: fraud versions trained in seconds into a file:// store."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mlplug.registry import ModelVersion, Registry
from mlplug.runtime import open_store
from mlplug.task import TaskType

#: Long enough for the server's minimum key length; never a real secret.
API_KEY = "serving-tests-key-0123456789"
AUTH = {"Authorization": f"Bearer {API_KEY}"}


@dataclass(frozen=True)
class FraudStore:
    url: str
    path: Path
    catboost: ModelVersion  # version 1, the champion
    baseline: ModelVersion  # version 2, registered but not promoted


def register(registry: Registry, task: TaskType, kind: str, rows: int = 3000, seed: int = 0) -> ModelVersion:
    """Fit the task's model (quick parameters) or baseline and register it, as the train flow would."""
    data = task.synthesize(rows, seed=seed)
    cut = int(len(data) * 0.75)
    train, valid = data.subset(slice(0, cut)), data.subset(slice(cut, None))
    model = (
        task.create_model(data.schema, task.quick_params())
        if kind == "model"
        else task.create_baseline(data.schema)
    )
    model.fit(train, valid)
    metrics = task.evaluate(valid, np.asarray(model.predict_proba(valid.X)))
    ref = registry.put_dataset(task.name, data)
    with tempfile.TemporaryDirectory() as tmp:
        model.save(Path(tmp))
        return registry.register_model(
            task.name,
            Path(tmp),
            kind=getattr(model, "kind", kind),
            params=task.quick_params() if kind == "model" else {},
            metrics=metrics,
            dataset_hash=ref.hash,
            schema=data.schema,
        )


def build_fraud_store(path: Path) -> FraudStore:
    from mlplug_fraud import FraudTask

    task = FraudTask()
    url = path.as_uri()
    registry = Registry(open_store(url))
    catboost = register(registry, task, "model", seed=0)
    baseline = register(registry, task, "baseline", seed=1)
    registry.promote(task.name, catboost.version, reason="serving tests")
    return FraudStore(url=url, path=path, catboost=catboost, baseline=baseline)


def server_env(store: FraudStore, home: Path, **extra: str) -> dict[str, str]:
    return {
        "MLPLUG_STORE": store.url,
        "MLPLUG_HOME": str(home),
        "MLPLUG_API_KEYS": API_KEY,
        "MLPLUG_LOAD_PLUGINS": "fraud",
        **extra,
    }


def fraud_records(count: int, seed: int = 5) -> list[dict]:
    """JSON-able request records from the fraud generator."""
    from mlplug_fraud import FraudTask

    from mlplug.serving.schemas import example_record

    data = FraudTask().synthesize(count, seed=seed)
    return [example_record(data.schema, row) for row in data.frame.to_dict(orient="records")]  # type: ignore[misc]


def register_toy(registry: Registry, rate: float, schema=None, name: str = "toy") -> ModelVersion:  # type: ignore[no-untyped-def]
    """A constant-rate toy model version (no ``predict_proba_rows``: served through a DataFrame)."""
    from mlplug.task import Metrics
    from tests.toy_task import ConstantModel, ToyTask

    task = ToyTask(name)
    data = task.synthesize(50)
    ref = registry.put_dataset(name, data)
    with tempfile.TemporaryDirectory() as tmp:
        ConstantModel(rate).save(Path(tmp))
        return registry.register_model(
            name,
            Path(tmp),
            kind="model",
            params={"rate": rate},
            metrics=Metrics({"accuracy": 0.5 + rate / 10}, "accuracy", threshold=0.5),
            dataset_hash=ref.hash,
            schema=schema or data.schema,
        )
