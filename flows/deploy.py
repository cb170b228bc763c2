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

from mlplug import k8s
from mlplug.errors import MlplugError
from mlplug.plugins import get_plugins
from mlplug.registry import ModelVersion, Registry, open_registry

STORAGE_RETRIES = {"retries": 3, "retry_delay_seconds": [1, 4, 10]}


@task(cache_policy=NO_CACHE, **STORAGE_RETRIES)
def resolve(registry: Registry, task_name: str, version: str) -> ModelVersion:
    """The committed version that ``version`` (an alias or a number) names now."""
    return registry.model(task_name, version)


@task(cache_policy=NO_CACHE)
def render(spec: k8s.ServingSpec) -> list[dict[str, Any]]:
    return k8s.serving_manifests(spec)


@task(cache_policy=NO_CACHE, **STORAGE_RETRIES)
def record(registry: Registry, task_name: str, version: int, text: str) -> str:
    """Write the manifests next to the model version's other deployment records."""
    key = f"{task_name}/deployments/{version}/manifests.yaml"
    registry.store.put(key, text.encode("utf-8"))
    return registry.store.uri(key)


@task(cache_policy=NO_CACHE)
def apply(documents: list[dict[str, Any]], namespace: str) -> list[str]:
    return k8s.apply_manifests(documents, namespace=namespace)


@flow(name="deploy", log_prints=True)
def deploy(
    task: str,
    version: str = "champion",
    image: str | None = None,
    replicas: int = 2,
    max_replicas: int = 10,
    namespace: str = "default",
    serve_store: str | None = None,
    apply_to_cluster: bool | None = None,
    store: str | None = None,
) -> dict[str, Any]:
    """Deploy the inference server for ``task`` serving ``version``: an alias (``champion``,
    followed as it moves) or a version number (pinned). ``serve_store`` is the store URL the
    pods read (default: the flow's store). ``apply_to_cluster``: ``None`` applies when a
    cluster is configured, ``True`` requires one, ``False`` only renders and records."""
    log = get_run_logger()
    get_plugins().task(task)  # an unknown task fails here, naming the installed ones
    registry = open_registry(store)
    resolved = resolve(registry, task, version)
    fields: dict[str, Any] = {
        "task": task,
        "model": version,
        "store": serve_store or registry.store.url,
        "min_replicas": replicas,
        "max_replicas": max_replicas,
        "namespace": namespace,
    }
    if image:
        fields["image"] = image
    spec = k8s.ServingSpec(**fields)
    if spec.store.startswith("file://"):
        log.warning(
            "pods read models from %s, a local directory: mount it on every node or use s3://", spec.store
        )
    documents = render(spec)
    header = f"mlplug deploy: task {task}, model {version} (version {resolved.version} when deployed)"
    text = k8s.to_yaml(documents, header)
    uri = record(registry, task, resolved.version, text)

    cluster = k8s.cluster_configured()
    if apply_to_cluster and not cluster:
        raise MlplugError(
            "apply_to_cluster=True but no cluster is configured (no service account, no kubeconfig)"
        )
    applied: list[str] = []
    if cluster if apply_to_cluster is None else apply_to_cluster:
        applied = apply(documents, namespace)
        where = f"applied to namespace {namespace!r}: {', '.join(applied)}; manifests recorded at {uri}"
    else:
        where = f"no cluster configured: manifests written to {uri} (apply with `kubectl apply -f`)"
    log.info("%s", where)

    objects = "\n".join(f"| {d['kind']} | `{d['metadata']['name']}` |" for d in documents)
    create_markdown_artifact(
        key=f"deploy-{task.replace('_', '-')}",
        markdown=(
            f"# Deploy {task}: model {version} (version {resolved.version})\n\n{where}\n\n"
            f"| kind | name |\n|---|---|\n{objects}\n\n```yaml\n{text}```\n"
        ),
        description=f"Kubernetes manifests for {task} version {resolved.version}",
    )
    return {
        "task": task,
        "model": version,
        "version": resolved.version,
        "namespace": namespace,
        "applied": applied,
        "manifests": uri,
        "message": where,
    }
