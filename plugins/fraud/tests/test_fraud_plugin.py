from __future__ import annotations

import inspect
from importlib.metadata import entry_points
from pathlib import Path

import mlplug_fraud
from mlplug_fraud import FraudTask
from mlplug_fraud.loader import FraudLoadOptions

from mlplug.plugins import new_plugins
from mlplug.settings import Settings
from mlplug.task import TaskType
from mlplug.testing.conformance import check_task


def test_registers_the_fraud_task_through_the_hook(tmp_path: Path) -> None:
    plugins = new_plugins(load_entry_points=False, defaults=(), settings=Settings(home=tmp_path))
    assert plugins.add(mlplug_fraud, "fraud") == "fraud"
    assert plugins.skipped == []
    task = plugins.task("fraud")
    assert isinstance(task, FraudTask) and isinstance(task, TaskType)
    assert task.options_model is FraudLoadOptions
    assert plugins.tasks()["fraud"].plugin == "fraud"


def test_fraud_task_implements_the_whole_contract() -> None:
    assert not inspect.isabstract(FraudTask)
    assert FraudTask.name == "fraud" and FraudTask.description


def test_passes_mlplugs_conformance_check(tmp_path: Path) -> None:
    report = check_task(FraudTask(), tmp_path)
    assert report.steps == ["declaration", "synthetic data", "loader", "monitoring", "model", "baseline"]


def test_entry_point_points_at_the_plugin_module() -> None:
    (ep,) = [ep for ep in entry_points(group="mlplug") if ep.name == "fraud"]
    assert ep.value == "mlplug_fraud" and ep.load() is mlplug_fraud
    assert mlplug_fraud.MLPLUG_API_VERSION == "1"
