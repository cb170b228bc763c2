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
from mlplug.registry import open_registry
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
        async with get_client() as client:
            return await client.read_artifacts()

    keys = {a.key for a in asyncio.run(artifacts())}
    assert {"toy-metrics", "toy-train-report", "toy-train-report-link"} <= keys


def test_pinned_params_reach_the_model(toys) -> None:
    summary = train(task="toy", trials=0, rows=300, params={"rate": 0.25, "extra": "x"})
    assert summary["kind"] == "model"  # ties go to the main model
    assert toys.model("toy", summary["version"]).params == {"rate": 0.25, "extra": "x"}
