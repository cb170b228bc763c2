"""Work-pool base job templates, proved with the worker's own code and the Kubernetes schema.

No cluster here: instead, a real Prefect server holds a Kubernetes pool created from
``mlplug.workpools.base_job_template`` and one deployment of each kind (train, monitor, refit,
deploy) with the job variables a deployment carries; prefect-kubernetes'
``KubernetesWorkerJobConfiguration.resolve_for_flow_run`` (what ``KubernetesWorker`` calls
before it creates a Job) renders the Job for a flow run of each, and the Job is validated
against the Kubernetes 1.37 schema with unknown fields as errors (kubernetes-validate, strict).
"""

from __future__ import annotations

import asyncio
import copy
import json
import re
import uuid
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import WorkPoolCreate
from prefect.exceptions import PrefectHTTPStatusError
from prefect_kubernetes.worker import KubernetesWorkerJobConfiguration
from pydantic import ValidationError
from typer.testing import CliRunner

from mlplug import image, workpools
from mlplug.cli import app as cli
from mlplug.errors import MlplugError

ROOT = Path(__file__).resolve().parents[1]
K8S_VERSION = "1.37.0"
IMAGE = "registry.example.com/mlplug:1.2.3"
STORE = "s3://mlplug-models/prod"
#: What a deployment of each kind carries (flows/<kind>.py, job variables of the kind).
DEPLOYMENTS = {
    "train": {"env": {"MLPLUG_STORE": STORE}, "image": IMAGE, "cpu_limit": "4", "memory_limit": "8Gi"},
    "monitor": {"env": {"MLPLUG_STORE": STORE}, "image": IMAGE},
    "refit": {"env": {"MLPLUG_STORE": STORE, "MLPLUG_RAY_ADDRESS": "ray-head:6379"}, "image": IMAGE},
    "deploy": {"env": {"MLPLUG_STORE": STORE}, "image": IMAGE, "namespace": "ml"},
}


def strict(document: dict[str, Any]) -> None:
    kubernetes_validate.validate(document, K8S_VERSION, strict=True)


def run(coro: Any) -> Any:
    return asyncio.run(coro)


async def rendered_jobs(
    pool_template: dict[str, Any], deployments: dict[str, dict[str, Any]]
) -> dict[str, tuple[dict[str, Any], Any]]:
    """Per deployment kind: the Job manifest the worker would create, and the flow run."""
    pool_name = f"mlplug-kubernetes-{uuid.uuid4().hex[:8]}"
    jobs = {}
    async with get_client() as client:
        await client.create_work_pool(
            WorkPoolCreate(name=pool_name, type="kubernetes", base_job_template=pool_template)
        )
        pool = await client.read_work_pool(pool_name)
        for kind, job_variables in deployments.items():
            flow_id = await client.create_flow_from_name(kind)
            deployment_id = await client.create_deployment(
                flow_id=flow_id,
                name=f"{kind}-toy-{pool_name}",
                entrypoint=f"flows/{kind}.py:{kind}",
                work_pool_name=pool_name,
                job_variables=copy.deepcopy(job_variables),
                parameters={"task": "toy"},
                pull_steps=[
                    {"prefect.deployments.steps.set_working_directory": {"directory": image.IMAGE_CODE_DIR}}
                ],
            )
            flow_run = await client.create_flow_run_from_deployment(deployment_id)
            deployment = await client.read_deployment(deployment_id)
            configuration = await KubernetesWorkerJobConfiguration.resolve_for_flow_run(
                flow_run,
                client=client,
                work_pool=pool,
                worker_name="mlplug-test-worker",
                deployment=deployment,
            )
            jobs[kind] = (configuration.job_manifest, flow_run)
        await client.delete_work_pool(pool_name)
    return jobs


@pytest.fixture(scope="module")
def jobs(prefect_server) -> dict[str, tuple[dict[str, Any], Any]]:  # type: ignore[no-untyped-def]
    mp = pytest.MonkeyPatch()
    from prefect.settings import PREFECT_API_URL, temporary_settings

    try:
        for key, value in prefect_server.env.items():
            mp.setenv(key, value)
        with temporary_settings({PREFECT_API_URL: prefect_server.api_url}):
            return run(rendered_jobs(workpools.base_job_template("kubernetes"), DEPLOYMENTS))
    finally:
        mp.undo()


@pytest.mark.parametrize("kind", DEPLOYMENTS)
def test_the_job_a_worker_creates_is_valid_kubernetes(jobs, kind: str) -> None:  # type: ignore[no-untyped-def]
    job, _ = jobs[kind]
    # The two pod fields prefect-kubernetes insists on are the only ones Kubernetes does not know;
    # the API server drops them (docs in mlplug/workpools.py).
    with pytest.raises(kubernetes_validate.ValidationError) as unknown:
        strict(job)
    assert list(unknown.value.path) == ["spec", "template", "spec"]
    assert unknown.value.validator == "additionalProperties"
    assert set(unknown.value.instance) - set(unknown.value.schema["properties"]) == set(
        workpools.WORKER_ONLY_POD_FIELDS
    )
    strict(workpools.without_worker_only_fields(job))


@pytest.mark.parametrize("kind", DEPLOYMENTS)
def test_what_the_flow_run_job_promises(jobs, kind: str) -> None:  # type: ignore[no-untyped-def]
    job, flow_run = jobs[kind]
    spec = job["spec"]
    pod = spec["template"]["spec"]
    (container,) = pod["containers"]
    env = {e["name"]: e.get("value") for e in container["env"]}

    assert container["image"] == IMAGE  # the deployment's job variable
    assert container["args"] == ["prefect", "flow-run", "execute"]
    assert env["PREFECT__FLOW_RUN_ID"] == str(flow_run.id)
    assert env["MLPLUG_STORE"] == STORE
    assert container["workingDir"] == image.IMAGE_CODE_DIR

    resources = container["resources"]
    assert set(resources["requests"]) == set(resources["limits"]) == {"cpu", "memory"}
    if kind == "train":
        assert resources["limits"] == {"cpu": "4", "memory": "8Gi"}
        assert resources["requests"] == {"cpu": "1", "memory": "2Gi"}  # pool defaults

    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == image.RUN_AS
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    security = container["securityContext"]
    assert security["allowPrivilegeEscalation"] is False
    assert security["readOnlyRootFilesystem"] is True
    assert security["capabilities"] == {"drop": ["ALL"]}

    # Every place a flow run writes is a volume, and the environment points there.
    volumes = {v["name"]: v for v in pod["volumes"]}
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    assert set(mounts) == {"/tmp", "/dev/shm", image.STATE_DIR, image.HOME_DIR}
    assert all("emptyDir" in volumes[name] for name in mounts.values())
    assert volumes[mounts["/dev/shm"]]["emptyDir"]["medium"] == "Memory"
    assert env["MLPLUG_HOME"] == image.STATE_DIR and env["HOME"] == image.HOME_DIR
    assert env["PREFECT_HOME"].startswith(image.STATE_DIR + "/")

    assert container["envFrom"] == [{"secretRef": {"name": "mlplug-store-credentials", "optional": True}}]
    assert pod["serviceAccountName"] == "mlplug-flow-runner"
    assert spec["backoffLimit"] == 0 and env["PREFECT_FLOW_RUN_EXECUTE_SIGTERM_BEHAVIOR"] == "reschedule"
    assert spec["ttlSecondsAfterFinished"] == 86400 and spec["activeDeadlineSeconds"] == 21600
    assert job["metadata"]["namespace"] == ("ml" if kind == "deploy" else "default")
    assert job["metadata"]["labels"]["prefect.io/flow-run-id"] == str(flow_run.id)


def test_pool_defaults_set_what_deployments_leave_out(prefect_api) -> None:  # type: ignore[no-untyped-def]
    template = workpools.base_job_template(
        "kubernetes",
        {"image": IMAGE, "namespace": "ml", "store_credentials_secret": "s3-creds", "backoff_limit": 2},
    )
    job, _ = run(rendered_jobs(template, {"monitor": {"env": {"MLPLUG_STORE": STORE}}}))["monitor"]
    (container,) = job["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert container["image"] == IMAGE and job["metadata"]["namespace"] == "ml"
    assert container["envFrom"][0]["secretRef"]["name"] == "s3-creds"
    # With retries left to Kubernetes, prefect-kubernetes hands an evicted run back to it.
    assert (
        job["spec"]["backoffLimit"] == 2 and env["PREFECT_FLOW_RUN_EXECUTE_SIGTERM_BEHAVIOR"] == "relinquish"
    )
    strict(workpools.without_worker_only_fields(job))


def configuration(template: dict[str, Any], values: dict[str, Any] | None = None) -> Any:
    async def build() -> Any:
        async with get_client() as client:
            return await KubernetesWorkerJobConfiguration.from_template_and_values(
                template, values or {}, client=client
            )

    return run(build())


def broken(edit: str) -> dict[str, Any]:
    template = workpools.base_job_template("kubernetes")
    pod = template["job_configuration"]["job_manifest"]["spec"]["template"]["spec"]
    if edit == "completions-2":
        pod["completions"] = 2
    elif edit == "completions-on-the-job":  # where Kubernetes reads it; the worker does not
        template["job_configuration"]["job_manifest"]["spec"]["completions"] = 2
        del pod["completions"]
    elif edit == "no-restart-policy":
        del pod["restartPolicy"]
    elif edit == "renamed-container":
        pod["containers"][0]["name"] = "flow"
    return template


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        ("completions-2", "/spec/template/spec/completions must have value 1"),
        ("completions-on-the-job", "missing required attributes at the following paths: "
                                   "/spec/template/spec/completions"),
        ("no-restart-policy", "missing required attributes at the following paths: "
                              "/spec/template/spec/restartPolicy"),
        ("renamed-container", "/spec/template/spec/containers/0/name must have value 'prefect-job'"),
    ],
)  # fmt: skip
def test_the_worker_refuses_a_broken_template(prefect_api, edit: str, message: str) -> None:  # type: ignore[no-untyped-def]
    configuration(workpools.base_job_template("kubernetes"))  # the unbroken one passes
    with pytest.raises(ValidationError, match=re.escape(message)):
        configuration(broken(edit))


def test_strict_validation_catches_what_the_worker_lets_through(prefect_api) -> None:  # type: ignore[no-untyped-def]
    template = workpools.base_job_template("kubernetes")
    spec = template["job_configuration"]["job_manifest"]["spec"]
    spec["ttlSecondAfterFinished"] = spec.pop("ttlSecondsAfterFinished")  # a typo
    job, _ = run(rendered_jobs(template, {"train": DEPLOYMENTS["train"]}))["train"]
    with pytest.raises(kubernetes_validate.ValidationError, match="ttlSecondAfterFinished"):
        strict(workpools.without_worker_only_fields(job))


def test_the_server_refuses_a_template_with_an_undeclared_variable(prefect_api) -> None:  # type: ignore[no-untyped-def]
    template = workpools.base_job_template("kubernetes")
    template["variables"]["properties"].pop("cpu_limit")

    async def create() -> None:
        async with get_client() as client:
            await client.create_work_pool(
                WorkPoolCreate(
                    name=f"broken-{uuid.uuid4().hex[:8]}", type="kubernetes", base_job_template=template
                )
            )

    with pytest.raises(PrefectHTTPStatusError, match="cpu_limit"):
        run(create())


def test_the_server_refuses_a_deployment_with_a_bad_job_variable(prefect_api) -> None:  # type: ignore[no-untyped-def]
    pool_name = f"mlplug-kubernetes-{uuid.uuid4().hex[:8]}"

    async def deploy(job_variables: dict[str, Any]) -> None:
        async with get_client() as client:
            flow_id = await client.create_flow_from_name("train")
            await client.create_deployment(
                flow_id=flow_id,
                name=f"train-{uuid.uuid4().hex[:8]}",
                work_pool_name=pool_name,
                job_variables=job_variables,
            )

    async def create_pool() -> None:
        async with get_client() as client:
            await client.create_work_pool(
                WorkPoolCreate(
                    name=pool_name,
                    type="kubernetes",
                    base_job_template=workpools.base_job_template("kubernetes"),
                )
            )

    run(create_pool())
    run(deploy({"cpu_limit": "2"}))
    with pytest.raises(PrefectHTTPStatusError, match="backoff_limit"):
        run(deploy({"backoff_limit": -1}))
    with pytest.raises(PrefectHTTPStatusError, match="cpu_limits"):
        run(deploy({"cpu_limits": "2"}))  # a typo would otherwise be ignored


def test_defaults_are_checked() -> None:
    template = workpools.base_job_template(
        "kubernetes", {"image": IMAGE, "cpu_limit": "3", "env": {"MLPLUG_STORE": STORE}}
    )
    properties = template["variables"]["properties"]
    assert properties["image"]["default"] == IMAGE and properties["cpu_limit"]["default"] == "3"
    assert properties["env"]["default"] == {**workpools.VOLUME_ENV, "MLPLUG_STORE": STORE}
    with pytest.raises(MlplugError, match="cpu_limits"):
        workpools.base_job_template("kubernetes", {"cpu_limits": "3"})
    with pytest.raises(MlplugError, match="backoff_limit"):
        workpools.base_job_template("kubernetes", {"backoff_limit": -1})
    with pytest.raises(MlplugError, match="unknown process work-pool variable"):
        workpools.base_job_template("process", {"image": IMAGE})
    with pytest.raises(MlplugError, match="unknown work-pool type 'docker'"):
        workpools.base_job_template("docker")
    process = workpools.base_job_template("process", {"working_dir": "/srv/mlplug"})
    assert process["variables"]["properties"]["working_dir"]["default"] == "/srv/mlplug"


@pytest.mark.parametrize("pool_type", workpools.POOL_TYPES)
def test_the_committed_templates_are_what_mlplug_renders(pool_type: str) -> None:
    committed = ROOT / f"deployments/{pool_type}-base-job-template.json"
    result = CliRunner().invoke(cli, ["k8s", "job-template", "--type", pool_type])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output) == workpools.base_job_template(pool_type)
    assert committed.read_text() == result.output, (
        f"{committed.relative_to(ROOT)} is stale: run "
        f"`mlplug k8s job-template --type {pool_type} > {committed.relative_to(ROOT)}`"
    )


def dockerfile_final_stage() -> list[tuple[str, str]]:
    text = (ROOT / "Dockerfile").read_text()
    joined = re.sub(r"\\\n\s*", " ", text)
    instructions = [
        (m.group(1).upper(), m.group(2).strip())
        for m in re.finditer(r"^(\w+)\s+(.*)$", joined, re.M)
        if not m.group(0).startswith("#")
    ]
    last_from = max(i for i, (op, _) in enumerate(instructions) if op == "FROM")
    return instructions[last_from:]


def test_the_image_is_what_the_job_and_the_server_assume() -> None:
    stage = dockerfile_final_stage()
    workdirs = [arg for op, arg in stage if op == "WORKDIR"]
    assert workdirs == [image.IMAGE_CODE_DIR]
    copies = [arg.split() for op, arg in stage if op == "COPY" and "--from" not in arg]
    assert ["flows", "./flows"] in copies  # entrypoints flows/<kind>.py resolve in IMAGE_CODE_DIR
    env = dict(re.findall(r"(\w+)=(\S+)", " ".join(arg for op, arg in stage if op == "ENV")))
    assert env["MLPLUG_HOME"] == image.STATE_DIR and env["PREFECT_HOME"] == image.PREFECT_HOME
    assert [arg for op, arg in stage if op == "USER"] == [f"{image.RUN_AS}:{image.RUN_AS}"]
    run_lines = " ".join(arg for op, arg in stage if op == "RUN")
    assert f"--uid {image.RUN_AS}" in run_lines and f"--home-dir {image.HOME_DIR}" in run_lines
    # The image has the Kubernetes worker and client at the pinned versions.
    assert re.search(r"pip install -c constraints\.txt .*\"\.\[k8s\]\"", (ROOT / "Dockerfile").read_text())


def test_job_template_cli_sets_defaults_and_names_bad_ones() -> None:
    result = CliRunner().invoke(
        cli, ["k8s", "job-template", "--image", IMAGE, "--set", "backoff_limit=2", "--set", "namespace=ml"]
    )
    assert result.exit_code == 0, result.output
    properties = json.loads(result.output)["variables"]["properties"]
    assert properties["image"]["default"] == IMAGE
    assert properties["backoff_limit"]["default"] == 2 and properties["namespace"]["default"] == "ml"
    for bad, message in [
        ("cpu_limits=3", "cpu_limits: Extra inputs"),
        ("backoff_limit", "expected NAME=VALUE"),
    ]:
        result = CliRunner().invoke(cli, ["k8s", "job-template", "--set", bad])
        assert result.exit_code != 0 and message in str(result.exception)


def test_the_deployments_mlplug_deploy_writes_run_as_valid_jobs(prefect_api, register_plugin) -> None:  # type: ignore[no-untyped-def]
    """`mlplug deploy --pool-type kubernetes --image ... --store ...`: each of a task's four
    deployments becomes, for a worker, a strictly valid Job with that image and store."""
    from prefect.client.orchestration import get_client as client_for

    import mlplug
    from mlplug import prefect_deployments as pd
    from tests.toy_task import ToyTask

    class Toys:
        @mlplug.hookimpl
        def register_tasks(self, register):  # type: ignore[no-untyped-def]
            register(ToyTask("toy"))

    register_plugin(Toys(), "toys")
    pool_name = f"mlplug-kubernetes-{uuid.uuid4().hex[:8]}"
    with client_for(sync_client=True) as client:
        assert pd.ensure_pool(client, "kubernetes", pool_name, STORE, IMAGE).action == "created"
    plans = pd.plan({"toy": ToyTask("toy")})
    assert {o.action for o in pd.apply(plans, pool_name)} == {"created"}

    async def jobs() -> list[tuple[Any, dict[str, Any]]]:
        found = []
        async with get_client() as client:
            pool = await client.read_work_pool(pool_name)
            for p in plans:
                deployment = await client.read_deployment_by_name(f"{p.flow_name}/{p.name}")
                flow_run = await client.create_flow_run_from_deployment(deployment.id)
                configuration = await KubernetesWorkerJobConfiguration.resolve_for_flow_run(
                    flow_run, client=client, work_pool=pool, worker_name="w", deployment=deployment
                )
                found.append((deployment, configuration.job_manifest))
            await client.delete_work_pool(pool_name)
        return found

    for deployment, job in run(jobs()):
        assert deployment.entrypoint.startswith("flows.") and not deployment.pull_steps
        strict(workpools.without_worker_only_fields(job))
        (container,) = job["spec"]["template"]["spec"]["containers"]
        env = {e["name"]: e.get("value") for e in container["env"]}
        assert container["image"] == IMAGE and env["MLPLUG_STORE"] == STORE
        assert env["HF_HUB_OFFLINE"] == "1" and env["MLPLUG_HOME"] == image.STATE_DIR
