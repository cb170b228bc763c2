"""The train flow against a real Prefect server, with a toy task (no Ray: trials=0).

The fraud plugin's tests run the same flow with Ray Tune, on file:// and S3, and as a
deployment.
"""

from __future__ import annotations

import json

import pytest

import mlplug
from flows.train import train
from mlplug.errors import DataError, UnknownTaskError
from mlplug.runtime import open_registry
from tests.toy_task import ToyTask


class ExplodingTask(ToyTask):
    """Fails after fitting and evaluating, just before registration."""

    def explain(self, model, data, rows=100):
        raise RuntimeError("explainer crashed")


class Toys:
    @mlplug.hookimpl
    def register_tasks(self, register):
        register(ToyTask("toy"))
        register(ExplodingTask("exploding"))


@pytest.fixture
def toys(register_plugin, prefect_api, mlplug_store):
    register_plugin(Toys(), "toys")
    return open_registry()


def test_first_run_registers_and_promotes_then_equal_model_does_not(toys) -> None:
    first = train(task="toy", trials=0, rows=400, seed=1)
    assert first["version"] == 1 and first["promoted"]
    assert first["reason"] == "first model of this task"
    assert toys.alias("toy").version == 1
    mv = toys.model("toy", 1)
    assert mv.dataset_hash == first["dataset"]
    assert mv.info["rows"] == {"train": 256, "valid": 64, "holdout": 80}
    assert set(mv.files) >= {"model/rate.txt", "evaluation.json", "trials.json", "env.json"}
    evaluation = json.loads(toys.artifact("toy", 1, "evaluation.json"))
    assert evaluation["champion"] is None

    second = train(task="toy", trials=0, rows=400, seed=1)  # same data: same score
    assert second["version"] == 2 and not second["promoted"]
    assert "does not beat the champion" in second["reason"]
    assert second["dataset"] == first["dataset"]  # content-addressed: one dataset version
    assert len(toys.datasets("toy")) == 1
    assert toys.alias("toy").version == 1


def test_failed_run_registers_nothing_and_keeps_the_champion(toys) -> None:
    train(task="toy", trials=0, rows=300)
    with pytest.raises(RuntimeError, match="explainer crashed"):
        train(task="exploding", trials=0, rows=300)
    assert toys.versions("exploding") == []
    assert toys.alias("exploding") is None
    assert toys.alias("toy").version == 1


def test_promote_false_registers_without_moving_the_alias(toys) -> None:
    summary = train(task="toy", trials=0, rows=300, promote=False)
    assert summary["version"] == 1 and not summary["promoted"]
    assert "promotion disabled" in summary["reason"]
    assert toys.alias("toy") is None


def test_unknown_task_and_bad_options_fail_before_anything_is_written(toys) -> None:
    with pytest.raises(UnknownTaskError, match="installed task types: exploding, toy"):
        train(task="nope", trials=0)
    with pytest.raises(DataError, match="invalid options for task 'toy'"):
        train(task="toy", data="file:///nowhere.csv", options={"bogus": 1}, trials=0)
    assert toys.store.children("") == []


def test_flow_run_is_recorded_on_the_prefect_server(toys, prefect_api) -> None:
    import asyncio

    from prefect.client.orchestration import get_client

    train(task="toy", trials=0, rows=300)

    async def runs():
        async with get_client() as client:
            return await client.read_flow_runs()

    names = {(r.name, r.state.type.value) for r in asyncio.run(runs())}
    assert any(state == "COMPLETED" for _, state in names)

    async def artifacts():
        # Filter on the server: an unfiltered read returns one page, in id (random) order.
        from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

        wanted = ["toy-metrics", "toy-train-report", "toy-train-report-link"]
        async with get_client() as client:
            return await client.read_artifacts(
                artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=wanted))
            )

    keys = {a.key for a in asyncio.run(artifacts())}
    assert {"toy-metrics", "toy-train-report", "toy-train-report-link"} <= keys


def test_pinned_params_reach_the_model(toys) -> None:
    summary = train(task="toy", trials=0, rows=300, params={"rate": 0.25, "extra": "x"})
    assert summary["kind"] == "model"  # ties go to the main model
    assert toys.model("toy", summary["version"]).params == {"rate": 0.25, "extra": "x"}


def test_every_step_is_a_task_run_and_the_record_keeps_its_time(toys) -> None:
    summary = train(task="toy", trials=0, rows=300)
    steps = [
        "load",
        "version",
        "split",
        "tune",
        "fit",
        "select",
        "refit",
        "evaluate",
        "final fit",
        "explain",
        "report",
        "register",
        "promote",
    ]
    assert list(summary["timings"]) == steps
    assert summary["store"].startswith(toys.store.url)
    stored = toys.model("toy", summary["version"]).info["timings"]
    assert set(stored) == set(steps[: steps.index("report")])  # the steps before the report and the version
    assert summary["candidates"].keys() == {"model", "baseline", "blend"}


def test_a_run_inside_kubernetes_refuses_a_local_store_before_anything_is_written(
    toys, monkeypatch: pytest.MonkeyPatch
) -> None:
    from prefect.client.orchestration import get_client

    from mlplug.errors import StoreError

    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.0.0.1")
    state = train(task="toy", trials=0, rows=300, return_state=True)
    assert state.is_failed()
    assert state.message.startswith("this run is inside a Kubernetes pod but its store is file://")
    assert "MLPLUG_STORE" in state.message and "MLPLUG_ALLOW_LOCAL_STORE" in state.message
    with pytest.raises(StoreError, match="inside a Kubernetes pod"):
        state.result()
    assert toys.store.children("") == []

    async def message() -> str:
        async with get_client() as client:
            run = await client.read_flow_run(state.state_details.flow_run_id)
            return run.state.message

    import asyncio

    assert asyncio.run(message()) == state.message  # what the UI shows
    monkeypatch.setenv("MLPLUG_ALLOW_LOCAL_STORE", "true")  # a volume every pod mounts
    assert train(task="toy", trials=0, rows=300)["version"] == 1


def test_without_a_champion_alias_the_latest_version_is_the_one_to_beat(toys) -> None:
    train(task="toy", trials=0, rows=400, seed=1)
    toys.store.delete("toy/aliases/champion.json")
    second = train(task="toy", trials=0, rows=400, seed=1)  # same data, same score
    assert not second["promoted"]
    assert "does not beat the latest version's (v1; the task has no champion alias)" in second["reason"]
    assert toys.alias("toy") is None
