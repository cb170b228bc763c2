"""Lost responses on the real network path: moto's S3 server behind a fault-injecting proxy
that lets the server do a write and then drops the connection before the answer. The client
retries a write that landed; the registry must recognise its own write and tell the truth:
one version per registration, a promotion reported as a promotion, one history entry."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from mlplug import hookimpl
from mlplug.errors import StoreUnavailableError
from mlplug.registry import ModelVersion, Registry
from mlplug.settings import Settings
from mlplug.storage.base import Store
from mlplug.storage.s3 import open_s3
from mlplug.task import Metrics
from mlplug.testing.faults import Fault, FaultProxy
from mlplug.testing.servers import S3Server
from tests.toy_task import ConstantModel, ToyTask

TASK = ToyTask("toy")


@pytest.fixture
def proxy(s3_fault_proxy: FaultProxy) -> FaultProxy:
    return s3_fault_proxy


def registry_through(proxy: FaultProxy, s3_server: S3Server, attempts: int = 3) -> Registry:
    bucket = s3_server.create_bucket(f"lost-{uuid.uuid4().hex[:10]}")
    settings = Settings(s3_endpoint_url=proxy.url, s3_max_attempts=attempts, s3_retry_seconds=30)
    return Registry(open_s3(f"s3://{bucket}/store", settings))


def register(registry: Registry, tmp_path: Path, rate: float, registration: str = ""):  # type: ignore[no-untyped-def]
    data = TASK.synthesize(40)
    ref = registry.put_dataset("toy", data)
    folder = tmp_path / f"model-{rate}"
    folder.mkdir(exist_ok=True)
    ConstantModel(rate).save(folder)
    return registry.register_model(
        "toy", folder, kind="model", params={"rate": rate}, metrics=Metrics({"accuracy": rate}, "accuracy"),
        dataset_hash=ref.hash, schema=data.schema, artifacts={"notes.json": b"{}"}, registration=registration,
    )  # fmt: skip


# Every create-only write of a registration, by the part of its key the proxy matches.
WRITES = {
    "claim": "/models/1/.claim",
    "model file": "/models/1/model/rate.txt",
    "artifact": "/models/1/notes.json",
    "metadata.json (the commit)": "/models/1/metadata.json",
    "data set": "/datasets/",
}


@pytest.mark.parametrize("write", WRITES)
def test_a_lost_response_during_registration_still_gives_one_version(
    proxy: FaultProxy, s3_server: S3Server, tmp_path: Path, write: str
) -> None:
    registry = registry_through(proxy, s3_server)
    fault = proxy.inject(Fault("lose_response", method="PUT", path_contains=WRITES[write]))
    mv = register(registry, tmp_path, 0.3)
    assert fault.hits == 1  # the write landed, its answer was lost, the client retried
    assert mv.version == 1
    assert [v.version for v in registry.versions("toy")] == [1]
    assert registry.model("toy", 1) == mv


def test_a_registration_retried_after_the_store_gave_up_returns_the_version_it_committed(
    proxy: FaultProxy, s3_server: S3Server, tmp_path: Path
) -> None:
    """The flow's register step is retried by Prefect when the store stays unreachable (every
    attempt of the metadata.json commit lost its answer); the retry must not make v2."""
    registry = registry_through(proxy, s3_server, attempts=2)
    proxy.inject(Fault("lose_response", method="PUT", path_contains="/models/1/metadata.json", times=2))
    with pytest.raises(StoreUnavailableError):
        register(registry, tmp_path, 0.3, registration="flow-run-x-register")
    again = register(registry, tmp_path, 0.3, registration="flow-run-x-register")
    assert again.version == 1
    assert [v.version for v in registry.versions("toy")] == [1]


@pytest.mark.parametrize("first", [True, False], ids=["create (If-None-Match)", "move (If-Match)"])
def test_a_lost_response_to_the_alias_write_is_reported_as_the_promotion_it_was(
    proxy: FaultProxy, s3_server: S3Server, tmp_path: Path, first: bool
) -> None:
    from mlplug.training import promote_if_unchanged

    registry = registry_through(proxy, s3_server)
    register(registry, tmp_path, 0.3)
    target = register(registry, tmp_path, 0.6).version
    expected = None if first else registry.set_alias("toy", 1, expected=None, reason="first")
    fault = proxy.inject(Fault("lose_response", method="PUT", path_contains="/aliases/champion.json"))
    promoted, reason = promote_if_unchanged(registry, "toy", target, expected, "beats the champion")
    assert fault.hits == 1
    assert (promoted, reason) == (True, "beats the champion")
    assert registry.alias("toy").version == target
    history = registry.alias_history("toy")
    assert [h["version"] for h in history] == ([target] if first else [1, target])


def test_a_promotion_retried_after_the_store_gave_up_recognises_its_move(
    proxy: FaultProxy, s3_server: S3Server, tmp_path: Path
) -> None:
    """Every attempt of the alias write lost its answer, so the promote step failed as
    'unreachable' and is run again with the same write id and expectation."""
    from mlplug.training import promote_if_unchanged

    registry = registry_through(proxy, s3_server, attempts=2)
    register(registry, tmp_path, 0.3)
    target = register(registry, tmp_path, 0.6).version
    before = registry.set_alias("toy", 1, expected=None)
    proxy.inject(Fault("lose_response", method="PUT", path_contains="/aliases/champion.json", times=2))
    with pytest.raises(StoreUnavailableError):
        promote_if_unchanged(registry, "toy", target, before, "better", write_id="run-7-promote")
    assert registry.alias("toy").version == target  # it did land
    assert promote_if_unchanged(registry, "toy", target, before, "better", write_id="run-7-promote") == (
        True,
        "better",
    )
    assert [h["version"] for h in registry.alias_history("toy")] == [1, target]
    # Another writer's move is still a conflict, whatever it wrote.
    assert promote_if_unchanged(registry, "toy", 1, before, "stale", write_id="run-8-promote")[0] is False


class RegisterRecorder:
    def __init__(self) -> None:
        self.versions: list[int] = []

    @hookimpl
    def after_register(self, task: str, version: ModelVersion, store: Store) -> None:
        assert store.exists(f"{task}/models/{version.version}/metadata.json")  # committed
        self.versions.append(version.version)


def test_after_register_runs_once_when_a_retry_recognises_the_registration(
    proxy: FaultProxy, s3_server: S3Server, tmp_path: Path, mlplug_plugins, register_plugin
) -> None:
    """The commit landed but every answer was lost, so the first call raised before the hook;
    the step's retry recognises the version and must run the hook, once; later retries of the
    same registration (a step that failed after registering) must not run it again."""
    recorder = RegisterRecorder()
    register_plugin(recorder, "recorder")
    registry = registry_through(proxy, s3_server, attempts=2)
    registry = Registry(registry.store, hook=mlplug_plugins.hook)
    proxy.inject(Fault("lose_response", method="PUT", path_contains="/models/1/metadata.json", times=2))
    with pytest.raises(StoreUnavailableError):
        register(registry, tmp_path, 0.3, registration="flow-run-y-register")
    assert recorder.versions == []
    assert register(registry, tmp_path, 0.3, registration="flow-run-y-register").version == 1
    assert recorder.versions == [1]
    assert register(registry, tmp_path, 0.3, registration="flow-run-y-register").version == 1
    assert recorder.versions == [1]
    # A lost answer that the client's own retry recognises runs it once too.
    proxy.inject(Fault("lose_response", method="PUT", path_contains="/models/2/metadata.json"))
    assert register(registry, tmp_path, 0.6, registration="flow-run-z-register").version == 2
    assert register(registry, tmp_path, 0.6, registration="flow-run-z-register").version == 2
    assert recorder.versions == [1, 2]
