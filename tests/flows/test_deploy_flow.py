"""The deploy flow against a real Prefect server with a toy task: without a cluster it records
the manifests in the store and an artifact and says where; with one it applies them."""

from __future__ import annotations

import asyncio
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

import mlplug
from flows.deploy import deploy
from mlplug import k8s
from mlplug.runtime import open_registry
from tests.serving.support import register_toy
from tests.test_k8s import FakeDynamicClient
from tests.toy_task import ToyTask


class Toys:
    @mlplug.hookimpl
    def register_tasks(self, register):  # type: ignore[no-untyped-def]
        register(ToyTask("toy"))


@pytest.fixture
def champion(register_plugin, prefect_api, mlplug_store, monkeypatch: pytest.MonkeyPatch, tmp_path: Path):  # type: ignore[no-untyped-def]
    register_plugin(Toys(), "toys")
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "no-kubeconfig"))
    registry = open_registry()
    version = register_toy(registry, rate=0.3)
    registry.promote("toy", version.version)
    return registry


def _artifact(key: str) -> str:
    from prefect.client.orchestration import get_client

    async def read() -> str:
        async with get_client() as client:
            artifact = await client.read_latest_artifacts()
            return next(a.data for a in artifact if a.key == key)

    return asyncio.run(read())


def test_without_a_cluster_the_manifests_go_to_the_store_and_an_artifact(champion) -> None:
    summary = deploy(
        task="toy", version="champion", image="registry.local/mlplug:1", serve_store="s3://models/prod"
    )
    assert summary["version"] == 1 and summary["applied"] == []
    key = "toy/deployments/1/manifests.yaml"
    assert summary["manifests"] == champion.store.uri(key)
    assert "no cluster configured" in summary["message"] and summary["manifests"] in summary["message"]
    documents = [d for d in yaml.safe_load_all(champion.store.get(key)) if d]
    for doc in documents:
        kubernetes_validate.validate(doc, "1.37.0", strict=True)
    assert documents[0]["data"] == {
        **documents[0]["data"],
        "MLPLUG_MODEL": "champion",
        "MLPLUG_STORE": "s3://models/prod",
    }
    markdown = _artifact("deploy-toy")
    assert summary["manifests"] in markdown and "kind: Deployment" in markdown


def test_with_a_cluster_the_manifests_are_applied(champion, monkeypatch: pytest.MonkeyPatch) -> None:
    client = FakeDynamicClient()
    monkeypatch.setattr(k8s, "cluster_configured", lambda: True)
    monkeypatch.setattr(k8s, "dynamic_client", lambda: client)
    summary = deploy(task="toy", version="1", namespace="ml")
    assert len(summary["applied"]) == 6 and summary["applied"][1] == "Deployment/mlplug-serve-toy in ml"
    assert client.calls[0]["name"] == "mlplug-serve-toy-config"
    assert "applied to namespace 'ml'" in summary["message"]
    assert champion.store.exists("toy/deployments/1/manifests.yaml")
