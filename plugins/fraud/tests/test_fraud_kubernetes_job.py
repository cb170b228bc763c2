"""A fraud training run executed the way the Kubernetes work pool's Job runs it.

The Job is rendered by prefect-kubernetes' own code from the pool's base job template for a
real flow run of a train deployment; its container then runs here in a pod sandbox
(``mlplug.testing.pod_sandbox``): read-only root filesystem, only the Job's emptyDir volumes
writable, as uid 10001, with only the Job's environment and the store credentials an
``envFrom`` Secret would add. No cluster and no image build here, so the code comes from this
checkout instead of the image's /app (the deployment's pull step points at it).
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
from fraud_support import ROOT
from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import WorkPoolCreate
from prefect_kubernetes.worker import KubernetesWorkerJobConfiguration

from mlplug.image import HOME_DIR, STATE_DIR
from mlplug.registry import Registry
from mlplug.runtime import open_store
from mlplug.testing import pod_sandbox
from mlplug.workpools import base_job_template

UNAVAILABLE = pod_sandbox.unavailable()
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(UNAVAILABLE is not None, reason=f"no pod sandbox: {UNAVAILABLE}"),
]


async def flow_run_job(store: str, s3_endpoint: str) -> tuple[dict[str, Any], Any]:
    pool = f"mlplug-kubernetes-{uuid.uuid4().hex[:8]}"
    async with get_client() as client:
        await client.create_work_pool(
            WorkPoolCreate(name=pool, type="kubernetes", base_job_template=base_job_template("kubernetes"))
        )
        deployment_id = await client.create_deployment(
            flow_id=await client.create_flow_from_name("train"),
            name=f"train-fraud-{pool}",
            entrypoint="flows/train.py:train",
            work_pool_name=pool,
            job_variables={"env": {"MLPLUG_STORE": store, "MLPLUG_S3_ENDPOINT_URL": s3_endpoint}},
            parameters={"task": "fraud", "rows": 3000, "trials": 2, "cpus": 1},
            pull_steps=[{"prefect.deployments.steps.set_working_directory": {"directory": str(ROOT)}}],
        )
        flow_run = await client.create_flow_run_from_deployment(deployment_id)
        configuration = await KubernetesWorkerJobConfiguration.resolve_for_flow_run(
            flow_run,
            client=client,
            work_pool=await client.read_work_pool(pool),
            worker_name="mlplug-test-worker",
            deployment=await client.read_deployment(deployment_id),
        )
        return configuration.job_manifest, flow_run.id


async def flow_run_state(flow_run_id: Any) -> str:
    async with get_client() as client:
        return (await client.read_flow_run(flow_run_id)).state.type.value


def test_train_runs_in_the_job_the_kubernetes_pool_renders(prefect_api, s3_server, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    bucket = s3_server.create_bucket(f"mlplug-{uuid.uuid4().hex[:12]}")
    store = f"s3://{bucket}/prod"
    job, flow_run_id = asyncio.run(flow_run_job(store, s3_server.env["MLPLUG_S3_ENDPOINT_URL"]))
    credentials = {k: v for k, v in s3_server.env.items() if k.startswith("AWS_")}  # the envFrom Secret

    pod = pod_sandbox.run_like_pod(job, workdir=ROOT, env_from=credentials, timeout=600)

    assert pod.returncode == 0, pod.output[-6000:]
    assert asyncio.run(flow_run_state(flow_run_id)) == "COMPLETED", pod.output[-6000:]
    for key, value in s3_server.env.items():
        monkeypatch.setenv(key, value)
    registry = Registry(open_store(store))
    assert [v.version for v in registry.versions("fraud")] == [1]
    # Where the run wrote: Ray's token in HOME; Prefect, Ray's session and Ray Tune in
    # MLPLUG_HOME; the model went to the store, not to the pod's disk.
    assert ".ray/auth_token" in pod.written[HOME_DIR]
    assert any(path.startswith("ray/") for path in pod.written[STATE_DIR]), pod.written
    assert "prefect" in pod.written[STATE_DIR] and "store" not in pod.written[STATE_DIR]
