"""The whole loop against a real Prefect server: a champion, drifted traffic, the monitor
flow's ``mlplug.drift.detected`` event, the automation that prefect.yaml's ``refit-fraud``
trigger creates, and the refit run it starts, executed by a process worker."""

from __future__ import annotations

import asyncio
import os
import time

import pytest
from fraud_support import FAST_PARAMS, prefect_cli, run_worker_once

from flows.monitor import monitor
from flows.train import train
from mlplug.refit_settings import save_refit_settings
from mlplug.runtime import open_registry

pytestmark = pytest.mark.slow


async def _deployment(name: str):
    from prefect.client.orchestration import get_client

    async with get_client() as client:
        return await client.read_deployment_by_name(name)


async def _runs(deployment_id):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId

    async with get_client() as client:
        return await client.read_flow_runs(
            deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[deployment_id]))
        )


async def _run(run_id):
    from prefect.client.orchestration import get_client

    async with get_client() as client:
        return await client.read_flow_run(run_id)


def test_drift_event_triggers_a_refit_that_registers_a_challenger(
    prefect_api, mlplug_store, tmp_path
) -> None:
    env = {
        **os.environ,
        **prefect_api.env,
        "MLPLUG_STORE": os.environ["MLPLUG_STORE"],
        "MLPLUG_HOME": str(tmp_path / "worker-home"),
        "MLPLUG_LOAD_PLUGINS": "fraud",
    }
    prefect_cli(env, "work-pool", "create", "mlplug-process", "--type", "process", "--overwrite")
    prefect_cli(env, "--no-prompt", "deploy", "--name", "refit-fraud")
    deployment = asyncio.run(_deployment("refit/refit-fraud"))
    assert deployment.parameters["task"] == "fraud"
    # What an operator does once: the refit settings, small enough for a test.
    save_refit_settings("fraud", {"rows": 4000, "trials": 0, "params": FAST_PARAMS, "drift": 1.0})

    first = train(task="fraud", trials=0, rows=4000, seed=3, params=FAST_PARAMS)
    registry = open_registry()
    assert first["version"] == 1 and registry.alias("fraud").version == 1

    calm = monitor(task="fraud", rows=2000, seed=4, drift=0.0)
    assert calm["drifted"] is False and calm["event"] is None, calm
    alarm = monitor(task="fraud", rows=2000, seed=5, drift=1.0)
    assert alarm["drifted"] is True and alarm["event"], alarm

    deadline = time.monotonic() + 90
    while not (runs := asyncio.run(_runs(deployment.id))) and time.monotonic() < deadline:
        time.sleep(1)
    assert len(runs) == 1, "the drift event did not start refit-fraud"
    run = runs[0]
    assert run.parameters["reason"] == alarm["decision"]
    assert run.parameters["event_id"] == alarm["event"]

    worker = run_worker_once(env)
    assert worker.returncode == 0, worker.stdout[-3000:] + worker.stderr[-3000:]
    finished = asyncio.run(_run(run.id))
    assert finished.state.type.value == "COMPLETED", worker.stdout[-3000:] + worker.stderr[-3000:]

    challenger = registry.model("fraud", 2)
    assert challenger.info["run_kind"] == "refit"
    assert alarm["decision"] in challenger.info["trigger"] and alarm["event"] in challenger.info["trigger"]
    report = registry.artifact("fraud", 2, "report.html").decode()
    assert "refit report" in report
    # Promoted or not, the comparison on the same holdout is recorded and the alias agrees.
    decision = challenger.info["decision"]
    beats = " beats the champion's " in decision
    assert beats or " does not beat the champion's " in decision, decision
    assert registry.alias("fraud").version == (2 if beats else 1)
