"""The ``deploy`` flow: serve a task's model version on Kubernetes.

It renders the manifests (:mod:`mlplug.k8s`) for a task and a model reference, applies them
through the Kubernetes API when a cluster is configured (a pod's service account or a
kubeconfig), and always records them in the store (``<task>/deployments/<version>/
manifests.yaml``) and as a Prefect artifact, saying where. Nothing here knows a task type.
"""

from __future__ import annotations

from typing import Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE

from mlplug import k8s, layout
from mlplug.errors import MlplugError
from mlplug.flowrun import STORE_RETRIES, fails_cleanly, open_run_registry
from mlplug.parameters import DeployParameters, flow_parameters
from mlplug.plugins import get_plugins
from mlplug.registry import ModelVersion, Registry


@task(cache_policy=NO_CACHE, **STORE_RETRIES)
def resolve(registry: Registry, task_name: str, version: str) -> ModelVersion:
    """The committed version that ``version`` (an alias or a number) names now."""
    return registry.model(task_name, version)


@task(cache_policy=NO_CACHE)
def render(spec: k8s.ServingSpec) -> list[dict[str, Any]]:
    return k8s.serving_manifests(spec)


@task(cache_policy=NO_CACHE, **STORE_RETRIES)
def record(registry: Registry, task_name: str, version: int, text: str) -> str:
    """Write the manifests next to the model version's other deployment records."""
    key = layout.deployment_manifests(task_name, version)
    registry.store.put(key, text.encode("utf-8"))
    return registry.store.uri(key)


@task(cache_policy=NO_CACHE)
def apply(documents: list[dict[str, Any]], namespace: str) -> list[str]:
    return k8s.apply_manifests(documents, namespace=namespace)


@flow(name="deploy", log_prints=True)
@fails_cleanly
@flow_parameters(DeployParameters)
def deploy(task: str, **parameters: Any) -> dict[str, Any]:
    """Deploy the inference server of a task type on Kubernetes (ConfigMap, Deployment,
    Service, HorizontalPodAutoscaler, PodDisruptionBudget), always recording the manifests in
    the store and applying them when a cluster is configured."""
    p = DeployParameters(**parameters)
    log = get_run_logger()
    get_plugins().task(task)  # an unknown task fails here, naming the installed ones
    registry = open_run_registry(p.store)
    resolved = resolve(registry, task, p.version)
    fields: dict[str, Any] = {
        "task": task,
        "model": p.version,
        "store": p.serve_store or registry.store.url,
        "min_replicas": p.replicas,
        "max_replicas": p.max_replicas,
        "namespace": p.namespace,
    }
    if p.image:
        fields["image"] = p.image
    spec = k8s.ServingSpec(**fields)
    if spec.store.startswith("file://"):
        log.warning(
            "pods read models from %s, a local directory: mount it on every node or use s3://", spec.store
        )
    documents = render(spec)
    header = f"mlplug deploy: task {task}, model {p.version} (version {resolved.version} when deployed)"
    text = k8s.to_yaml(documents, header)
    uri = record(registry, task, resolved.version, text)

    cluster = k8s.cluster_configured()
    if p.apply_to_cluster and not cluster:
        raise MlplugError(
            "apply_to_cluster=True but no cluster is configured (no service account, no kubeconfig)"
        )
    applied: list[str] = []
    if cluster if p.apply_to_cluster is None else p.apply_to_cluster:
        applied = apply(documents, p.namespace)
        where = f"applied to namespace {p.namespace!r}: {', '.join(applied)}; manifests recorded at {uri}"
    else:
        where = f"no cluster configured: manifests written to {uri} (apply with `kubectl apply -f`)"
    log.info("%s", where)

    objects = "\n".join(f"| {d['kind']} | `{d['metadata']['name']}` |" for d in documents)
    create_markdown_artifact(
        key=f"deploy-{task.replace('_', '-')}",
        markdown=(
            f"# Deploy {task}: model {p.version} (version {resolved.version})\n\n{where}\n\n"
            f"| kind | name |\n|---|---|\n{objects}\n\n```yaml\n{text}```\n"
        ),
        description=f"Kubernetes manifests for {task} version {resolved.version}",
    )
    return {
        "task": task,
        "model": p.version,
        "version": resolved.version,
        "namespace": p.namespace,
        "applied": applied,
        "manifests": uri,
        "message": where,
    }
