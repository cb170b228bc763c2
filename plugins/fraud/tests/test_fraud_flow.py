"""The fraud task through the real train flow: Ray Tune trials, file:// and S3 stores,
bad inputs that must register nothing, batch scoring, and the conformance check."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from mlplug_fraud import FraudTask
from typer.testing import CliRunner

from flows.train import train
from mlplug.cli import app
from mlplug.errors import DataError
from mlplug.plugins import new_plugins, use_plugins
from mlplug.runtime import open_registry
from mlplug.testing import check_task
from tests.reporting.htmlcheck import parse

pytestmark = pytest.mark.slow


@pytest.fixture
def fraud_only(monkeypatch, prefect_api):
    """Only the fraud plugin, whatever else is installed."""
    monkeypatch.setenv("MLPLUG_LOAD_PLUGINS", "fraud")
    with use_plugins(new_plugins()) as plugins:
        yield plugins


def test_conformance(tmp_path: Path) -> None:
    report = check_task(FraudTask(), tmp_path)
    assert report.steps[-1] == "baseline"
    assert 0 < report.metrics["model.pr_auc"] <= 1


def test_train_with_tuning_registers_and_promotes(any_store, fraud_only, tmp_path) -> None:
    summary = train(task="fraud", rows=4000, trials=2, seed=3, cpus=2)
    registry = open_registry()
    assert summary["version"] == 1 and summary["promoted"], summary
    assert registry.alias("fraud").version == 1
    assert summary["trials"] == 2
    trials = json.loads(registry.artifact("fraud", 1, "trials.json"))["trials"]
    assert len(trials) == 2 and all(t["error"] is None and t["score"] > 0 for t in trials)
    mv = registry.model("fraud", 1)
    assert mv.primary_metric == "pr_auc" and 0 < mv.metrics["pr_auc"] <= 1
    assert mv.info["split"] == "time-ordered on 'timestamp'"
    assert mv.threshold is not None
    assert registry.store.url.startswith(("file://", "s3://"))
    assert summary["store"].startswith(registry.store.url)

    # The report stored with the version has every section, with real values and images.
    report = parse(registry.artifact("fraud", 1, "report.html").decode())
    assert report.problems() == []
    for section in ("data", "performance", "experiments", "business", "environment"):
        assert f"section-{section}" in report.ids
        assert report.section_text[section].strip()
    assert report.section_images["data"] >= 3 and report.section_images["performance"] >= 6
    assert "pr_auc" in report.section_text["performance"]
    importance = json.loads(registry.artifact("fraud", 1, "explanation.json"))["global_importance"]
    top = max(importance, key=importance.get)
    assert top in report.section_text["performance"]  # SHAP global importance is shown
    assert "USD" in report.section_text["business"]
    assert len([t for t in trials if t["params"]]) == 2

    # Batch scoring of unlabelled rows keeps ids and gives one probability per row.
    rows = FraudTask().synthesize(50, seed=99).frame.drop(columns=["is_fraud"])
    src = tmp_path / "new.csv"
    rows.to_csv(src, index=False)
    out = tmp_path / "scores.csv"
    result = CliRunner().invoke(app, ["predict", "fraud", "--data", str(src), "--out", str(out)])
    assert result.exit_code == 0, result.output
    scores = pd.read_csv(out)
    assert scores["transaction_id"].tolist() == rows["transaction_id"].tolist()
    assert scores["probability"].between(0, 1).all() and len(scores) == 50
    assert set(scores["prediction"]) <= {"legit", "fraud"}


def _write(frame: pd.DataFrame, path: Path) -> str:
    frame.to_csv(path, index=False)
    return str(path)


@pytest.mark.parametrize(
    "case, message",
    [
        ("missing_target", "is_fraud"),
        ("not_binary", "is_fraud"),
        ("single_class", "is_fraud"),
        ("non_numeric", "amount"),
        ("empty", "empty"),
    ],
)
def test_bad_input_registers_nothing(case, message, mlplug_store, fraud_only, tmp_path) -> None:
    frame = FraudTask().synthesize(400, seed=1).frame.copy()
    frame["is_fraud"] = np.where(frame["is_fraud"] == 1, "yes", "no")
    path = tmp_path / f"{case}.csv"
    if case == "missing_target":
        frame = frame.drop(columns=["is_fraud"])
    elif case == "not_binary":
        frame.loc[:5, "is_fraud"] = "maybe"
    elif case == "single_class":
        frame["is_fraud"] = "no"
    elif case == "non_numeric":
        frame["amount"] = frame["amount"].astype(object)
        frame.loc[7, "amount"] = "twelve"
    if case == "empty":
        path.write_text("")
        url = str(path)
    else:
        url = _write(frame, path)
    with pytest.raises(DataError) as exc:
        train(task="fraud", data=url, trials=0)
    assert message in str(exc.value) and path.name in str(exc.value)
    assert mlplug_store.children("") == []  # no dataset, no model, no alias
