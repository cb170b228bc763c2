"""`prefect deployment run 'train/train-fraud'` against a real Prefect server, executed by a
process worker, exactly as prefect.yaml defines it."""

from __future__ import annotations

import asyncio
import os
import re
from pathlib import Path
from uuid import UUID

import pytest
from fraud_support import prefect_cli, run_worker_once

from mlplug.registry import Registry
from mlplug.storage.local import LocalStore

pytestmark = pytest.mark.slow


def test_train_fraud_deployment_runs_on_a_process_worker(prefect_server, tmp_path: Path) -> None:
    store = tmp_path / "store"
    env = {
        **os.environ,
        **prefect_server.env,
        "MLPLUG_STORE": store.as_uri(),
        "MLPLUG_HOME": str(tmp_path / "home"),
        "MLPLUG_LOAD_PLUGINS": "fraud",
    }
    prefect_cli(env, "work-pool", "create", "mlplug-process", "--type", "process", "--overwrite")
    prefect_cli(env, "--no-prompt", "deploy", "--name", "train-fraud")
    out = prefect_cli(
        env,
        "deployment", "run", "train/train-fraud",
        "--param", "rows=3000", "--param", "trials=2", "--param", "cpus=2",
    )  # fmt: skip
    run_id = UUID(re.search(r"UUID:\s*([0-9a-f-]{36})", out).group(1))

    worker = run_worker_once(env)
    assert worker.returncode == 0, worker.stdout + worker.stderr

    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL, temporary_settings

    async def state():
        async with get_client() as client:
            run = await client.read_flow_run(run_id)
            return run.state.type.value, run.parameters

    with temporary_settings({PREFECT_API_URL: prefect_server.api_url}):
        state_type, params = asyncio.run(state())
    assert state_type == "COMPLETED", worker.stdout[-3000:] + worker.stderr[-3000:]
    assert params["task"] == "fraud" and params["rows"] == 3000

    registry = Registry(LocalStore(store))
    assert [v.version for v in registry.versions("fraud")] == [1]
    assert registry.alias("fraud").version == 1
