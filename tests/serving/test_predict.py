"""Predictions over real HTTP agree with batch scoring; /model, /explain, /readyz, /metrics, /docs."""

from __future__ import annotations

import re

import httpx
import numpy as np
import pandas as pd
import pytest

from mlplug.registry import Registry
from mlplug.runtime import open_store
from mlplug.scoring import load_version
from mlplug.testing.servers import RunningServer
from tests.serving.support import AUTH, FraudStore, fraud_records


def post(server: RunningServer, body: object, path: str = "/predict") -> httpx.Response:
    return httpx.post(server.url + path, json=body, headers=AUTH, timeout=30)


def test_single_and_batch_match_batch_scoring(
    server: RunningServer, fraud_store: FraudStore, tmp_path, monkeypatch
) -> None:
    from mlplug_fraud import FraudTask

    records = fraud_records(40, seed=11)
    monkeypatch.setenv("MLPLUG_HOME", str(tmp_path))
    loaded = load_version(FraudTask(), Registry(open_store(fraud_store.url)), "champion")
    expected = loaded.predict_frame(pd.DataFrame(records), "test")

    batch = post(server, {"records": records})
    assert batch.status_code == 200
    answer = batch.json()
    assert answer["model_version"] == fraud_store.catboost.version
    got = [p["probability"] for p in answer["predictions"]]
    assert np.allclose(got, expected["probability"], atol=1e-9)
    assert [p["prediction"] for p in answer["predictions"]] == expected["prediction"].tolist()

    single = post(server, records[3]).json()
    assert single["model_version"] == fraud_store.catboost.version
    assert single["probability"] == pytest.approx(got[3], abs=1e-9)
    assert single["prediction"] == answer["predictions"][3]["prediction"]


def test_threshold_decides_the_label(server: RunningServer, fraud_store: FraudStore) -> None:
    threshold = fraud_store.catboost.threshold
    answers = post(server, {"records": fraud_records(100, seed=3)}).json()["predictions"]
    for item in answers:
        assert item["prediction"] == ("fraud" if item["probability"] >= threshold else "legit")


def test_the_id_column_is_echoed(server: RunningServer) -> None:
    record = {**fraud_records(1)[0], "transaction_id": "tx-42", "timestamp": "2026-01-01T00:00:00"}
    answer = post(server, record).json()
    assert answer["transaction_id"] == "tx-42"
    answer = post(server, {"records": [record, {**record, "transaction_id": 7}]}).json()
    assert [p["transaction_id"] for p in answer["predictions"]] == ["tx-42", 7]


def test_model_metadata(server: RunningServer, fraud_store: FraudStore) -> None:
    info = httpx.get(server.url + "/model", headers=AUTH).json()
    v = fraud_store.catboost
    assert info["task"] == "fraud" and info["version"] == v.version and info["ref"] == "champion"
    assert info["kind"] == "catboost" and info["dataset_hash"] == v.dataset_hash
    assert info["threshold"] == pytest.approx(v.threshold)
    assert info["primary_metric"] == v.primary_metric
    assert info["metrics"][v.primary_metric] == pytest.approx(v.score)
    assert [f["name"] for f in info["features"]][:2] == ["amount", "merchant_category"]
    assert info["classes"] == ["legit", "fraud"]


def test_explain_is_its_own_endpoint(server: RunningServer) -> None:
    records = fraud_records(3, seed=2)
    answer = post(server, {"records": records}, path="/explain").json()
    assert answer["kind"].startswith("shap")
    assert len(answer["per_row"]) == 3
    assert set(answer["global_importance"]) == set(records[0])


def test_readyz_reports_the_version(server: RunningServer, fraud_store: FraudStore) -> None:
    response = httpx.get(server.url + "/readyz")
    assert response.status_code == 200
    assert response.json() == {"status": "ready", "version": fraud_store.catboost.version}
    assert httpx.get(server.url + "/healthz").json() == {"status": "ok"}


def _metric(text: str, name: str, default: float | None = None, **labels: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            found = dict(re.findall(r'(\w+)="([^"]*)"', line.split(" ")[0]))
            if all(found.get(k) == v for k, v in labels.items()):
                return float(line.rsplit(" ", 1)[1])
    if default is not None:
        return default
    raise AssertionError(f"no {name} {labels} in /metrics")


def test_metrics_count_requests_latency_errors_predictions_and_version(
    server: RunningServer, fraud_store: FraudStore
) -> None:
    before = httpx.get(server.url + "/metrics").text
    ok_before = _metric(before, "mlplug_requests_total", 0.0, route="/predict", status="200")
    post(server, {"records": fraud_records(5)})
    httpx.post(server.url + "/predict", json={}, headers={})
    httpx.get(server.url + "/no-such-path/" + "x" * 20)
    text = httpx.get(server.url + "/metrics").text
    assert _metric(text, "mlplug_requests_total", route="/predict", status="200") >= ok_before + 1
    assert _metric(text, "mlplug_request_errors_total", route="/predict", reason="unauthorized") >= 1
    assert _metric(text, "mlplug_request_errors_total", route="other", reason="not_found") >= 1
    assert _metric(text, "mlplug_request_duration_seconds_bucket", route="/predict", le="+Inf") >= 1
    assert _metric(text, "mlplug_prediction_score_count", task="fraud") >= 5
    assert _metric(text, "mlplug_prediction_score_bucket", task="fraud", le="1.0") >= 5
    version = str(fraud_store.catboost.version)
    assert _metric(text, "mlplug_predictions_total", task="fraud", version=version, label="legit") >= 1
    assert (
        _metric(text, "mlplug_model_info", task="fraud", version=version, kind="catboost", ref="champion")
        == 1
    )
    assert _metric(text, "mlplug_model_version", task="fraud") == fraud_store.catboost.version
    assert _metric(text, "mlplug_ready") == 1
    assert "/no-such-path" not in text  # unknown paths share one label


def test_docs_show_real_feature_names_and_types(server: RunningServer) -> None:
    spec = httpx.get(server.url + "/openapi.json").json()
    record = spec["components"]["schemas"]["Record"]
    props = record["properties"]
    assert props["amount"]["type"] == "number"
    assert props["merchant_category"]["type"] == "string"
    assert props["card_present"]["anyOf"] == [{"type": "boolean"}, {"enum": [0, 1], "type": "integer"}]
    assert {"amount", "hour", "device_age_days"} <= set(record["required"])
    assert "transaction amount" in props["amount"]["description"]
    assert record["additionalProperties"] is False
    assert record["examples"][0].keys() == {c for c in props if c not in ("transaction_id", "timestamp")}
    assert spec["paths"]["/predict"]["post"]["security"] == [{"bearer": []}, {"apiKey": []}]
    assert httpx.get(server.url + "/docs").status_code == 200
