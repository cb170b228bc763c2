"""The convqa task through the shared machinery with no task-specific core code: the
conformance check, the real train flow (tiny transformer), the stored report, reloading from
the store, and one prediction from `mlplug serve` over HTTP."""

from __future__ import annotations

import httpx
import numpy as np
import pytest
from mlplug_convqa.task import QUICK_PARAMS, ConvQATask

from flows.train import train
from mlplug.plugins import new_plugins, use_plugins
from mlplug.runtime import open_registry
from mlplug.scoring import load_version
from mlplug.testing import check_task
from mlplug.testing.servers import mlplug_server
from tests.reporting.htmlcheck import parse

pytestmark = pytest.mark.slow


@pytest.fixture
def convqa_only(monkeypatch, prefect_api, mlplug_store):
    monkeypatch.setenv("MLPLUG_LOAD_PLUGINS", "convqa")
    with use_plugins(new_plugins()) as plugins:
        yield plugins


def test_conformance(tmp_path) -> None:
    report = check_task(ConvQATask(), tmp_path, rows=400)
    assert report.steps[-1] == "baseline"
    assert 0 <= report.metrics["model.macro_f1"] <= 1


def test_tiny_transformer_trains_registers_reloads_and_serves(convqa_only, mlplug_store, tmp_path) -> None:
    summary = train(task="convqa", rows=600, trials=0, params=dict(QUICK_PARAMS, epochs=3), seed=2)
    registry = open_registry()
    assert summary["version"] == 1 and summary["promoted"], summary
    mv = registry.model("convqa", 1)
    assert mv.primary_metric == "macro_f1"
    assert mv.schema["classes"] == ["compliance_breach", "compliant", "escalate", "needs_coaching"]
    assert any(f.startswith("model/") for f in mv.files)

    # The stored report covers a text task: text EDA, per-class results, token attributions.
    report = parse(registry.artifact("convqa", 1, "report.html").decode())
    assert report.problems() == []
    for section in ("data", "performance", "experiments", "business", "environment"):
        assert report.section_text[section].strip()
    assert "vocabulary" in report.section_text["data"].lower()
    assert "reviewer hours" in report.section_text["business"]

    # Reloaded from the store, the model predicts what it predicted before registering.
    data = ConvQATask().synthesize(20, seed=77)
    loaded = load_version(ConvQATask(), registry, "champion")
    proba = loaded.model.predict_proba(data.X)
    again = load_version(ConvQATask(), registry, 1).model.predict_proba(data.X)
    assert np.allclose(proba, again) and np.allclose(proba.sum(axis=1), 1.0)

    # One prediction over HTTP from the served champion.
    key = "convqa-test-key-0123456789abcdef"
    env = {"MLPLUG_STORE": mlplug_store.url, "MLPLUG_API_KEYS": key, "MLPLUG_LOAD_PLUGINS": "convqa"}
    with mlplug_server("convqa", tmp_path / "serve", env=env, timeout=180) as server:
        text = data.frame["transcript"].iloc[0]
        resp = httpx.post(
            f"{server.url}/predict",
            json={"transcript": text},
            headers={"X-API-Key": key},
            timeout=60,
        )
        assert resp.status_code == 200, resp.text
        body = resp.json()
        assert body["model_version"] == 1
        assert body["prediction"] in mv.schema["classes"]
        assert set(body["probabilities"]) == set(mv.schema["classes"])
        expected = dict(zip(mv.schema["classes"], proba[0], strict=True))
        assert body["probabilities"] == pytest.approx(expected, abs=1e-4)
        # convqa declares adaptive batching: the prediction went through the batcher.
        metrics = httpx.get(f"{server.url}/metrics", timeout=60).text
        assert "mlplug_batch_rows_count 1.0" in metrics
        unauthorised = httpx.post(f"{server.url}/predict", json={"transcript": text}, timeout=60)
        assert unauthorised.status_code == 401
