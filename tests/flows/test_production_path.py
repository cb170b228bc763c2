"""The production path as an operator drives it, on a fresh Prefect server: `mlplug deploy`
for everything installed (a pip-installed third-party plugin included), `prefect deploy
--all` from prefect.yaml, and process workers whose only store is moto's S3, running the
third party's train, monitor and (drift-triggered) refit deployments."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest

from mlplug.registry import Registry
from mlplug.settings import Settings
from mlplug.storage.s3 import open_s3
from mlplug.testing.servers import PrefectServer, S3Server, prefect_server
from tests.thirdparty import pip_install

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
def fresh_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrefectServer]:
    with prefect_server(tmp_path_factory.mktemp("fresh-prefect")) as server:
        yield server


@pytest.fixture(scope="module")
def churn_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return pip_install("mlplug-churn", tmp_path_factory.mktemp("site"))


@pytest.fixture(scope="module")
def operator_env(fresh_server: PrefectServer, churn_site: Path) -> dict[str, str]:
    env = {**os.environ, **fresh_server.env, "PYTHONPATH": str(churn_site)}
    for key in ("MLPLUG_LOAD_PLUGINS", "MLPLUG_DISABLE_PLUGINS", "MLPLUG_STORE"):
        env.pop(key, None)
    return env


def run(env: dict[str, str], *args: str, cwd: Path = ROOT, timeout: float = 300) -> str:
    out = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert out.returncode == 0, f"{' '.join(args)} failed:\n{out.stdout[-4000:]}\n{out.stderr[-4000:]}"
    return out.stdout


def api(server: PrefectServer, call: Any) -> Any:
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL, temporary_settings

    async def go() -> Any:
        async with get_client() as client:
            return await call(client)

    with temporary_settings({PREFECT_API_URL: server.api_url}):
        return asyncio.run(go())


def test_mlplug_deploy_creates_what_is_installed_once_and_prefect_deploy_agrees(
    fresh_server: PrefectServer, operator_env: dict[str, str]
) -> None:
    first = run(operator_env, str(BIN / "mlplug"), "deploy")
    assert "work pool mlplug-process: created" in first
    for task in ("fraud", "convqa", "churn"):  # churn: the pip-installed third party
        for flow in ("train", "monitor", "refit", "deploy"):
            assert re.search(rf"^{flow}-{task}: created", first, re.M), first
    assert "refit-churn: created (automation 'refit-churn on drift')" in first

    again = run(operator_env, str(BIN / "mlplug"), "deploy")
    assert not re.search(r": (created|changed)", again), again
    assert again.count(": unchanged") == 1 + 12

    run(operator_env, str(BIN / "prefect"), "--no-prompt", "deploy", "--all")

    deployments = api(fresh_server, lambda c: c.read_deployments())
    names = {d.name: d for d in deployments}
    assert {
        f"{f}-{t}" for f in ("train", "monitor", "refit", "deploy") for t in ("fraud", "convqa", "churn")
    } <= set(names)
    for deployment in deployments:
        assert deployment.work_pool_name == "mlplug-process"
        assert not deployment.pull_steps, deployment.name  # no deploying machine's directory
        assert "MLPLUG_STORE" not in str(deployment.job_variables)
    assert [s.schedule.cron for s in names["monitor-churn"].schedules] == [
        names["monitor-churn"].schedules[0].schedule.cron
    ]
    automations = api(fresh_server, lambda c: c.read_automations())
    by_name = [a.name for a in automations]
    for task in ("fraud", "convqa", "churn"):
        assert by_name.count(f"refit-{task} on drift") == 1, by_name  # prefect deploy replaced, not added
    pools = api(fresh_server, lambda c: c.read_work_pools())
    assert [p.name for p in pools] == ["mlplug-process"]


@pytest.fixture
def bucket_store(s3_server: S3Server, monkeypatch: pytest.MonkeyPatch) -> tuple[str, dict[str, str]]:
    for key, value in s3_server.env.items():  # this process reads the bucket too
        monkeypatch.setenv(key, value)
    bucket = s3_server.create_bucket(f"prod-{uuid.uuid4().hex[:10]}")
    return f"s3://{bucket}/mlplug", s3_server.env


def _run_deployment(env: dict[str, str], name: str, *params: str) -> UUID:
    args = [str(BIN / "prefect"), "deployment", "run", name]
    for p in params:
        args += ["--param", p]
    out = run(env, *args)
    return UUID(re.search(r"UUID:\s*([0-9a-f-]{36})", out).group(1))  # type: ignore[union-attr]


def _worker_once(env: dict[str, str], cwd: Path) -> None:
    """One scheduled run, on a worker started somewhere that is not the checkout."""
    run({**env, "PREFECT_WORKER_PREFETCH_SECONDS": "1"}, str(BIN / "prefect"), "worker", "start",
        "--pool", "mlplug-process", "--run-once", cwd=cwd, timeout=600)  # fmt: skip


def test_a_pip_installed_plugin_trains_monitors_and_refits_on_workers_writing_only_to_s3(
    fresh_server: PrefectServer,
    operator_env: dict[str, str],
    bucket_store: tuple[str, dict[str, str]],
    tmp_path: Path,
) -> None:
    store_url, s3_env = bucket_store
    run(
        operator_env,
        str(BIN / "mlplug"),
        "deploy",
        "--task",
        "churn",
        "--refit-rows",
        "1500",
        "--refit-trials",
        "0",
    )
    home = tmp_path / "worker-home"
    worker_env = {**operator_env, **s3_env, "MLPLUG_STORE": store_url, "MLPLUG_HOME": str(home)}
    workdir = tmp_path / "worker-cwd"
    workdir.mkdir()
    registry = Registry(open_s3(store_url, Settings()))

    # Hourly monitor before the first model: a completed run that says why, not a failure.
    early = _run_deployment(operator_env, "monitor/monitor-churn")
    _worker_once(worker_env, workdir)
    state = api(fresh_server, lambda c: c.read_flow_run(early)).state
    assert state.type.value == "COMPLETED", state
    assert state.message.startswith("no champion yet: train first"), state.message

    trained = _run_deployment(operator_env, "train/train-churn", "rows=2000", "trials=0")
    _worker_once(worker_env, workdir)
    assert api(fresh_server, lambda c: c.read_flow_run(trained)).state.type.value == "COMPLETED"
    assert registry.alias("churn").version == 1

    # A drift drill through the monitor deployment raises the event; the automation starts refit-churn.
    drill = _run_deployment(operator_env, "monitor/monitor-churn", "rows=2000", "drift=1.5", "seed=9")
    _worker_once(worker_env, workdir)
    assert api(fresh_server, lambda c: c.read_flow_run(drill)).state.type.value == "COMPLETED"
    refit = api(fresh_server, lambda c: c.read_deployment_by_name("refit/refit-churn"))
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId

    deadline, runs = time.monotonic() + 60, []
    while not runs and time.monotonic() < deadline:
        runs = api(
            fresh_server,
            lambda c: c.read_flow_runs(
                deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[refit.id]))
            ),
        )
        time.sleep(1)
    assert len(runs) == 1, "the drift event did not start refit-churn"
    assert runs[0].parameters["reason"].startswith("drift:")
    _worker_once(worker_env, workdir)
    assert api(fresh_server, lambda c: c.read_flow_run(runs[0].id)).state.type.value == "COMPLETED"

    challenger = registry.model("churn", 2)
    assert challenger.info["run_kind"] == "refit" and challenger.info["rows"]["holdout"] == 300
    monitored = [k for k in registry.store.list("churn/monitoring/") if k.endswith("drift.json")]
    assert len(monitored) == 1  # the drill; the early run had nothing to compare
    # Everything went to S3 and nothing to a local default store.
    assert not (home / "store").exists()
    assert not (workdir / ".mlplug").exists()
