"""Base job templates of mlplug's work pools: what a Prefect worker starts for each flow run.

:func:`base_job_template` returns the template to create a pool with (``prefect work-pool
create --base-job-template FILE`` or ``PrefectClient.create_work_pool``), so a pip-installed
mlplug can create its pools without a checkout. ``deployments/<type>-base-job-template.json``
are rendered copies (``mlplug k8s job-template``), kept equal to this module by a test.

The Kubernetes template turns a flow run into a Job that runs the mlplug image
(:mod:`mlplug.image`) hardened the way the serving Deployment is:

- The image, its pull policy, requests and limits, the namespace, the service account, the
  Secret with store credentials, the retry and deadline settings are variables with defaults,
  so a deployment's ``job_variables`` (or the pool's defaults) choose them; nothing site-specific
  is written into the Job itself.
- Non-root (the image's user), no privilege escalation, no capabilities, the runtime's seccomp
  profile, and a read-only root filesystem. A flow run writes only to emptyDir volumes:
  ``/tmp`` (Ray's session directory and spilled objects, matplotlib's cache), ``MLPLUG_HOME``
  (Ray Tune trial directories, scratch; ``PREFECT_HOME`` is inside it), ``HOME`` (Ray's token
  file ``~/.ray/auth_token``, library caches) and ``/dev/shm`` (Ray's object store; memory-backed,
  so it counts against the memory limit, which also bounds it).
- Store credentials: an optional ``envFrom`` Secret (``AWS_ACCESS_KEY_ID``, ...), or none and a
  ServiceAccount bound to a cloud role (IRSA: annotate the ServiceAccount, see
  ``k8s/worker/serviceaccounts.yaml``).
- ``backoffLimit`` 0: a failed flow run is Prefect's to retry, not Kubernetes'; with 0,
  prefect-kubernetes also reschedules a run whose pod is evicted. ``activeDeadlineSeconds``
  stops a run that hangs; ``ttlSecondsAfterFinished`` removes finished Jobs.
- The Job starts in :data:`~mlplug.image.IMAGE_CODE_DIR`, where the image has ``flows/``.

``parallelism: 1`` and ``completions: 1`` sit in the *pod* spec, where prefect-kubernetes'
``KubernetesWorkerJobConfiguration`` requires them (its default template has them there too);
the pod schema has no such fields and the API server drops them (unknown fields are dropped
with a warning unless a client asks for strict field validation, which the worker does not).
Kubernetes' own defaults for a Job without them are the same, one pod run to completion once.
Moved to the Job spec, the worker's check passes only by a coincidence of its JSON-patch diff
(equal values count as "moved"), and ``completions: 2`` there fails with a misleading message.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from mlplug.errors import MlplugError
from mlplug.image import (
    HOME_DIR,
    IMAGE_CODE_DIR,
    PREFECT_HOME,
    STATE_DIR,
    container_security_context,
    default_image,
    pod_security_context,
)

POOL_TYPES = ("process", "kubernetes")
#: Pool names prefect.yaml and k8s/worker/ refer to.
POOL_NAMES = {"process": "mlplug-process", "kubernetes": "mlplug-kubernetes"}
#: The container prefect-kubernetes looks for (it fills the command and environment of the
#: first container, and its check requires this name).
CONTAINER_NAME = "prefect-job"
#: Fields prefect-kubernetes requires in the pod spec although Kubernetes has none there.
WORKER_ONLY_POD_FIELDS = ("parallelism", "completions")
#: Writable volumes of a flow-run pod: name -> (mount path, emptyDir source).
FLOW_RUN_VOLUMES: dict[str, tuple[str, dict[str, Any]]] = {
    "tmp": ("/tmp", {"sizeLimit": "4Gi"}),
    "state": (STATE_DIR, {"sizeLimit": "{{ scratch_size_limit }}"}),
    "home": (HOME_DIR, {"sizeLimit": "1Gi"}),
    "shm": ("/dev/shm", {"medium": "Memory"}),
}


#: Environment that points the flow run at its writable volumes. It is the pool's default
#: ``env`` rather than part of the Job, because the worker passes its own Prefect settings
#: (``PREFECT_HOME`` of the worker's machine, ...) to the Job and only ``env`` overrides them.
VOLUME_ENV = {"MLPLUG_HOME": STATE_DIR, "PREFECT_HOME": PREFECT_HOME, "HOME": HOME_DIR}


class KubernetesJobVariables(BaseModel):
    """Variables of the mlplug Kubernetes work pool.

    A deployment sets them in ``job_variables``; the pool's defaults apply otherwise. Set the
    store for flow runs in ``env`` (``MLPLUG_STORE``) and its credentials in the Secret named by
    ``store_credentials_secret`` or through the service account's cloud role.
    """

    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(
        default=None, description="Name given to the Job (default: the flow run's name)."
    )
    env: dict[str, str | None] = Field(
        default_factory=lambda: dict(VOLUME_ENV),
        title="Environment Variables",
        description="Environment of the flow run, e.g. MLPLUG_STORE (s3://bucket/prefix). A deployment's "
        "env adds to these defaults.",
    )
    labels: dict[str, str] = Field(default_factory=dict, description="Labels of the Job and its pod.")
    annotations: dict[str, str] = Field(
        default_factory=dict, description="Annotations of the Job and its pod."
    )
    command: str | None = Field(
        default=None,
        description="Command of the flow-run container; leave empty for the worker's own.",
    )
    namespace: str = Field(default="default", description="Namespace to create Jobs in.")
    image: str = Field(
        default_factory=default_image,
        description="Image that runs the flow: the mlplug image with the task plugins installed.",
    )
    image_pull_policy: Literal["IfNotPresent", "Always", "Never"] = Field(
        default="IfNotPresent", description="Pull policy of the flow-run image."
    )
    service_account_name: str = Field(
        default="mlplug-flow-runner",
        description="Service account of flow-run pods; bind a cloud role to it (IRSA) for store access.",
    )
    store_credentials_secret: str = Field(
        default="mlplug-store-credentials",
        description="Secret loaded into the flow run's environment when it exists (AWS_ACCESS_KEY_ID, ...).",
    )
    cpu_request: str = Field(default="1", title="CPU Request", description="CPU request, e.g. 500m or 2.")
    cpu_limit: str = Field(default="2", title="CPU Limit", description="CPU limit.")
    memory_request: str = Field(default="2Gi", title="Memory Request", description="Memory request.")
    memory_limit: str = Field(
        default="4Gi",
        title="Memory Limit",
        description="Memory limit; Ray's object store in /dev/shm counts against it.",
    )
    scratch_size_limit: str = Field(
        default="8Gi", description=f"Size limit of the scratch volume at {STATE_DIR} (MLPLUG_HOME)."
    )
    backoff_limit: int = Field(
        default=0,
        ge=0,
        description="Pod retries by Kubernetes; 0 leaves retries to Prefect and reschedules evicted runs.",
    )
    active_deadline_seconds: int = Field(
        default=21600, ge=1, description="Seconds after which Kubernetes stops a run that has not finished."
    )
    finished_job_ttl: int = Field(
        default=86400, ge=0, title="Finished Job TTL", description="Seconds a finished Job is kept."
    )
    job_watch_timeout_seconds: int | None = Field(
        default=None, description="Seconds to wait for each Job event; empty waits indefinitely."
    )
    pod_watch_timeout_seconds: int = Field(
        default=300, description="Seconds to wait for the pod to start (the image pull included)."
    )
    stream_output: bool = Field(default=True, description="Stream the flow run's output to the worker's log.")


def _placeholder(name: str) -> str:
    return "{{ " + name + " }}"


def kubernetes_job_manifest() -> dict[str, Any]:
    """The Job a worker creates per flow run, with ``{{ variable }}`` placeholders."""
    container = {
        "name": CONTAINER_NAME,
        "image": _placeholder("image"),
        "imagePullPolicy": _placeholder("image_pull_policy"),
        "args": _placeholder("command"),
        "workingDir": IMAGE_CODE_DIR,
        "env": _placeholder("env"),
        "envFrom": [{"secretRef": {"name": _placeholder("store_credentials_secret"), "optional": True}}],
        "resources": {
            "requests": {"cpu": _placeholder("cpu_request"), "memory": _placeholder("memory_request")},
            "limits": {"cpu": _placeholder("cpu_limit"), "memory": _placeholder("memory_limit")},
        },
        "securityContext": container_security_context(),
        "volumeMounts": [{"name": name, "mountPath": path} for name, (path, _) in FLOW_RUN_VOLUMES.items()],
    }
    pod_spec = {
        **dict.fromkeys(WORKER_ONLY_POD_FIELDS, 1),
        "restartPolicy": "Never",
        "serviceAccountName": _placeholder("service_account_name"),
        "securityContext": pod_security_context(),
        "containers": [container],
        "volumes": [
            {"name": name, "emptyDir": dict(source)} for name, (_, source) in FLOW_RUN_VOLUMES.items()
        ],
    }
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "annotations": _placeholder("annotations"),
            "labels": _placeholder("labels"),
            "namespace": _placeholder("namespace"),
            "generateName": _placeholder("name") + "-",
        },
        "spec": {
            "backoffLimit": _placeholder("backoff_limit"),
            "activeDeadlineSeconds": _placeholder("active_deadline_seconds"),
            "ttlSecondsAfterFinished": _placeholder("finished_job_ttl"),
            "template": {"spec": pod_spec},
        },
    }


def _kubernetes_template(defaults: Mapping[str, Any]) -> dict[str, Any]:
    if isinstance(defaults.get("env"), Mapping):  # add to the volume paths, as a deployment's env does
        defaults = {**defaults, "env": {**VOLUME_ENV, **defaults["env"]}}
    try:
        variables = KubernetesJobVariables(**defaults)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        known = ", ".join(KubernetesJobVariables.model_fields)
        raise MlplugError(f"invalid Kubernetes work-pool defaults ({problems}); variables: {known}") from exc
    schema = KubernetesJobVariables.model_json_schema()
    for field, value in variables.model_dump(mode="json").items():
        schema["properties"][field]["default"] = value
    job_configuration = {
        key: _placeholder(key) for key in ("command", "env", "labels", "annotations", "name", "namespace")
    }
    job_configuration["job_manifest"] = kubernetes_job_manifest()
    for key in ("job_watch_timeout_seconds", "pod_watch_timeout_seconds", "stream_output"):
        job_configuration[key] = _placeholder(key)
    return {"job_configuration": job_configuration, "variables": schema}


def _process_template(defaults: Mapping[str, Any]) -> dict[str, Any]:
    # Prefect's own: a process pool's runs inherit the worker's environment and installation,
    # which is where mlplug's settings (MLPLUG_STORE, ...) belong.
    from prefect.workers.process import ProcessWorker

    template = ProcessWorker.get_default_base_job_template()
    properties = template["variables"]["properties"]
    unknown = sorted(set(defaults) - set(properties))
    if unknown:
        raise MlplugError(
            f"unknown process work-pool variable(s) {', '.join(unknown)}; known: {', '.join(properties)}"
        )
    for key, value in defaults.items():
        properties[key]["default"] = value
    return template


def base_job_template(pool_type: str, defaults: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The base job template of a ``process`` or ``kubernetes`` work pool.

    ``defaults`` replaces variable defaults, e.g. ``{"image": "registry.example.com/mlplug:0.1.0",
    "namespace": "ml"}`` for a Kubernetes pool; unknown names or bad values raise
    :class:`~mlplug.errors.MlplugError` naming them.
    """
    if pool_type == "kubernetes":
        return _kubernetes_template(defaults or {})
    if pool_type == "process":
        return _process_template(defaults or {})
    raise MlplugError(f"unknown work-pool type {pool_type!r}; expected one of {', '.join(POOL_TYPES)}")


def without_worker_only_fields(job: dict[str, Any]) -> dict[str, Any]:
    """``job`` as the API server stores it: without the pod fields only prefect-kubernetes reads."""
    job = copy.deepcopy(job)
    pod_spec = job["spec"]["template"]["spec"]
    for field in WORKER_ONLY_POD_FIELDS:
        pod_spec.pop(field, None)
    return job
