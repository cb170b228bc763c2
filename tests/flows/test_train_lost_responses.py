"""The train flow on moto's S3 server behind a proxy that loses responses: the server does
the write, the client never hears back and retries (botocore's retry, then the step's
Prefect retry). The run must report what happened: one version, and a promotion reported as
a promotion with its history entry. Real Prefect server, toy task (no Ray)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

import mlplug
from flows.train import train
from mlplug.runtime import open_registry
from mlplug.testing.faults import Fault, FaultProxy
from mlplug.testing.servers import S3Server
from tests.toy_task import ToyTask

pytestmark = pytest.mark.slow


class Toys:
    @mlplug.hookimpl
    def register_tasks(self, register):
        register(ToyTask("toy"))


@pytest.fixture
def proxy(
    register_plugin, prefect_api, s3_server: S3Server, monkeypatch: pytest.MonkeyPatch, tmp_path
) -> Iterator[FaultProxy]:
    register_plugin(Toys(), "toys")
    for key, value in s3_server.env.items():
        monkeypatch.setenv(key, value)
    with FaultProxy(s3_server.endpoint_url) as running:
        bucket = s3_server.create_bucket(f"lost-{uuid.uuid4().hex[:10]}")
        monkeypatch.setenv("MLPLUG_HOME", str(tmp_path / "home"))
        monkeypatch.setenv("MLPLUG_STORE", f"s3://{bucket}/store")
        monkeypatch.setenv("MLPLUG_S3_ENDPOINT_URL", running.url)
        # Two tries per call: a fault that hits both makes the step fail and Prefect retry it.
        monkeypatch.setenv("MLPLUG_S3_MAX_ATTEMPTS", "2")
        yield running


def test_a_lost_answer_to_the_champion_write_is_reported_as_a_promotion(proxy: FaultProxy) -> None:
    fault = proxy.inject(Fault("lose_response", method="PUT", path_contains="/aliases/champion.json"))
    summary = train(task="toy", trials=0, rows=300, seed=1)
    assert fault.hits == 1
    assert summary["promoted"] and summary["reason"] == "first model of this task"
    assert "champion changed" not in summary["reason"]
    registry = open_registry()
    assert registry.alias("toy").version == summary["version"] == 1
    assert [h["version"] for h in registry.alias_history("toy")] == [1]


def test_every_answer_to_the_champion_write_lost_the_step_retry_still_tells_the_truth(
    proxy: FaultProxy,
) -> None:
    lose = Fault("lose_response", method="PUT", path_contains="/aliases/champion.json", times=2)
    fault = proxy.inject(lose)
    summary = train(task="toy", trials=0, rows=300, seed=1)
    assert fault.hits == 2  # both of the client's tries: the promote step failed once
    assert summary["promoted"] and summary["reason"] == "first model of this task"
    registry = open_registry()
    assert registry.alias("toy").version == 1
    assert [h["version"] for h in registry.alias_history("toy")] == [1]


@pytest.mark.parametrize("times", [1, 2], ids=["client retry", "client gave up, Prefect task retry"])
def test_a_lost_answer_to_the_metadata_commit_registers_one_version(proxy: FaultProxy, times: int) -> None:
    fault = proxy.inject(
        Fault("lose_response", method="PUT", path_contains="/models/1/metadata.json", times=times)
    )
    summary = train(task="toy", trials=0, rows=300, seed=1)
    assert fault.hits == times
    assert summary["version"] == 1 and summary["promoted"]
    registry = open_registry()
    assert [v.version for v in registry.versions("toy")] == [1]
    assert registry.alias("toy").version == 1
