"""Long work reports progress through a real Prefect server: Ray Tune trials in the train
flow and profile merges in the monitor flow each end with a progress artifact at 100 %, the
terminal gets a few lines, and the run's logs stay short (progress never goes to the logs).
Ray's own notices (token auth, Tune's tables and TensorBoard hint) are not printed, and Ray's
session directory is under MLPLUG_HOME."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import mlplug
from flows.monitor import monitor
from flows.train import train
from mlplug.monitoring.profiles import ProfileWriter
from mlplug.runtime import open_registry
from mlplug.schema import Schema
from tests.testing.linear_task import LinearTask

pytestmark = pytest.mark.slow

#: Log lines a small train run writes to its flow run (about 10 today), with room to grow;
#: one per trial or per step would exceed it.
LOG_BUDGET = 40
RAY_NOISE = (
    "Token authentication is enabled",
    "TensorBoard",
    "View detailed results",
    "Configuration for experiment",
)


class Linear:
    @mlplug.hookimpl
    def register_tasks(self, register):
        register(LinearTask())


@pytest.fixture
def linear(register_plugin, prefect_api, mlplug_store):
    register_plugin(Linear(), "linear")
    return open_registry()


def _artifact(key: str) -> Any:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    async def read() -> list[Any]:
        async with get_client() as client:
            return await client.read_artifacts(
                artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[key]))
            )

    found = asyncio.run(read())
    assert len(found) == 1, [a.key for a in found]
    return found[0]


def _logs(flow_run_id: Any) -> list[str]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId
    from prefect.logging.handlers import APILogWorker

    APILogWorker.drain_all(timeout=10)

    async def read() -> list[Any]:
        async with get_client() as client:
            return await client.read_logs(
                log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run_id]))
            )

    return [entry.message for entry in asyncio.run(read())]


def test_tuning_progress_reaches_100_percent_without_flooding(linear, capfd, caplog) -> None:
    home = Path(os.environ["MLPLUG_HOME"])
    train(task="linear", trials=3, rows=600, seed=1)
    out, err = capfd.readouterr()

    artifact = _artifact("linear-tuning")
    assert artifact.type == "progress" and artifact.data == 100.0
    assert "3/3 trials" in artifact.description and "best validation score" in artifact.description
    logs = _logs(artifact.flow_run_id)
    assert 0 < len(logs) <= LOG_BUDGET, logs
    assert not any("trials" in line for line in logs)

    shown = [line for line in err.splitlines() if line.startswith("tuning linear:")]
    assert 1 <= len(shown) <= 4 and shown[-1].startswith("tuning linear: 100% (3/3 trials"), err
    for noise in RAY_NOISE:
        assert noise not in out + err + caplog.text, noise
    assert list((home / "ray").glob("session_*/logs")), "Ray's session directory is not under MLPLUG_HOME"


def test_profile_merges_report_progress(linear) -> None:
    version = train(task="linear", trials=0, rows=600, seed=1)["version"]
    mv = linear.model("linear", version)
    task = LinearTask()
    writer = ProfileWriter(linear.store, task, Schema.from_dict(mv.schema), mv.threshold)
    for seed in (11, 12, 13):
        data = task.synthesize(200, seed=seed)
        writer.add(version, ["a", "b"], data.X.values.tolist(), np.tile([0.5, 0.5], (200, 1)), ["no"] * 200)
        writer.flush()

    out = monitor(task="linear", hours=1, min_rows=100)
    assert out["profiles"] == 3
    artifact = _artifact("linear-profiles")
    assert artifact.type == "progress" and artifact.data == 100.0
    assert artifact.description == "merging linear v1 traffic profiles: 100% (3/3 profiles)"
