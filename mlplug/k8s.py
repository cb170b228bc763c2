"""Kubernetes manifests for serving one task's model, and applying them.

:func:`serving_manifests` renders a ConfigMap (task, model reference, store URL), a
Deployment, a Service, a HorizontalPodAutoscaler and a PodDisruptionBudget from a typed
:class:`ServingSpec`; :func:`api_key_secret_example` renders the Secret the Deployment
mounts. The kustomize base in ``k8s/`` is this module's output for one spec (a test keeps
them equal), so the two cannot drift. Nothing here talks to a cluster except
:func:`apply_manifests`, which imports the Kubernetes client only when called.

Why the Deployment looks as it does:

- The Secret with API keys is mounted as files, not environment variables, so a rotated key
  reaches running pods (the server re-reads the directory on every poll).
- ``preStop: sleep`` keeps the pod serving while the endpoints controller removes it from
  the Service; only then does SIGTERM start the drain. ``terminationGracePeriodSeconds``
  covers the sleep plus the server's own drain timeout plus a margin.
- A startup probe gives model loading time before liveness may restart the container.
- No ``replicas`` field: the HPA owns the count, and re-applying must not reset it.
- ``maxUnavailable: 0`` rolls pods one at a time without losing capacity; the PDB lets
  node drains take one pod at a time whatever the replica count.
- The ConfigMap's hash is a pod annotation, so changing the model reference rolls pods.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator

import mlplug
from mlplug.errors import MlplugError

API_KEYS_DIR = "/etc/mlplug/api-keys"
STATE_DIR = "/var/lib/mlplug"
CONTAINER_PORT = 8000
RUN_AS = 10001  # the image's unprivileged user
FIELD_MANAGER = "mlplug-deploy"
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


def default_image() -> str:
    return f"mlplug:{mlplug.__version__}"


class ServingSpec(BaseModel):
    """Everything that varies between deployments of the inference server."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    task: str = Field(pattern=r"^[a-z][a-z0-9_-]*$")
    #: Alias to follow (``champion``), or a version number to pin.
    model: str = "champion"
    #: Store URL the pods read models from (``s3://...``); a ``file://`` URL only works on a
    #: volume every pod mounts.
    store: str
    image: str = Field(default_factory=default_image)
    image_pull_policy: Literal["IfNotPresent", "Always", "Never"] = "IfNotPresent"
    #: Object name prefix; default ``mlplug-serve-<task>``.
    name: str | None = None
    namespace: str | None = None
    min_replicas: int = Field(default=2, ge=1, le=1000)
    max_replicas: int = Field(default=10, ge=1, le=1000)
    cpu_target_percent: int = Field(default=70, ge=10, le=100)
    cpu_request: str = "500m"
    cpu_limit: str = "1"
    memory_request: str = "768Mi"
    memory_limit: str = "1536Mi"
    service_type: Literal["ClusterIP", "NodePort", "LoadBalancer"] = "ClusterIP"
    service_port: int = Field(default=80, ge=1, le=65535)
    #: Secret holding the API keys (one key per data item); default ``<name>-api-keys``.
    api_keys_secret: str | None = None
    #: Optional Secret with store credentials (AWS_ACCESS_KEY_ID, ...), loaded with envFrom.
    store_credentials_secret: str = "mlplug-store-credentials"
    reload_interval: float = Field(default=30.0, ge=0)
    graceful_timeout: int = Field(default=20, ge=0, le=600)
    pre_stop_seconds: int = Field(default=5, ge=0, le=120)
    #: Extra environment for the server (MLPLUG_MAX_BATCH, ...), added to the ConfigMap.
    env: dict[str, str] = Field(default_factory=dict)

    @field_validator("model")
    @classmethod
    def _model_ref(cls, value: str) -> str:
        if not re.match(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", value):
            raise ValueError(f"model must be an alias or a version number, got {value!r}")
        return value

    @property
    def app_name(self) -> str:
        name = self.name or f"mlplug-serve-{self.task.replace('_', '-')}"
        if not _DNS_LABEL.match(name) or len(name) > 50:
            raise ValueError(
                f"name {name!r} is not a valid Kubernetes name (DNS label, at most 50 characters)"
            )
        return name

    @property
    def secret_name(self) -> str:
        return self.api_keys_secret or f"{self.app_name}-api-keys"


def _labels(spec: ServingSpec) -> dict[str, str]:
    return {
        "app.kubernetes.io/name": "mlplug-serve",
        "app.kubernetes.io/instance": spec.app_name,
        "app.kubernetes.io/component": "inference",
        "app.kubernetes.io/part-of": "mlplug",
        "mlplug.io/task": spec.task,
    }


def _selector(spec: ServingSpec) -> dict[str, str]:
    return {"app.kubernetes.io/name": "mlplug-serve", "app.kubernetes.io/instance": spec.app_name}


def _metadata(spec: ServingSpec, name: str) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "labels": _labels(spec)}
    if spec.namespace:
        meta["namespace"] = spec.namespace
    return meta


def config_map(spec: ServingSpec) -> dict[str, Any]:
    data = {
        "MLPLUG_TASK": spec.task,
        "MLPLUG_MODEL": spec.model,
        "MLPLUG_STORE": spec.store,
        "MLPLUG_API_KEYS_FILE": API_KEYS_DIR,
        "MLPLUG_HOME": STATE_DIR,
        "MLPLUG_RELOAD_INTERVAL": _number(spec.reload_interval),
        "MLPLUG_GRACEFUL_TIMEOUT": str(spec.graceful_timeout),
        **spec.env,
    }
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": _metadata(spec, f"{spec.app_name}-config"),
        "data": data,
    }


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def deployment(spec: ServingSpec, config: dict[str, Any]) -> dict[str, Any]:
    config_hash = hashlib.sha256(json.dumps(config["data"], sort_keys=True).encode()).hexdigest()[:16]
    probe = {"port": "http", "scheme": "HTTP"}
    container = {
        "name": "server",
        "image": spec.image,
        "imagePullPolicy": spec.image_pull_policy,
        "command": ["mlplug"],
        "args": ["serve", "--host", "0.0.0.0", "--port", str(CONTAINER_PORT)],
        "ports": [{"name": "http", "containerPort": CONTAINER_PORT, "protocol": "TCP"}],
        "envFrom": [
            {"configMapRef": {"name": config["metadata"]["name"]}},
            {"secretRef": {"name": spec.store_credentials_secret, "optional": True}},
        ],
        "resources": {
            "requests": {"cpu": spec.cpu_request, "memory": spec.memory_request},
            "limits": {"cpu": spec.cpu_limit, "memory": spec.memory_limit},
        },
        "startupProbe": {
            "httpGet": {"path": "/healthz", **probe},
            "periodSeconds": 2,
            "failureThreshold": 90,
        },
        "livenessProbe": {
            "httpGet": {"path": "/healthz", **probe},
            "periodSeconds": 10,
            "timeoutSeconds": 2,
            "failureThreshold": 3,
        },
        "readinessProbe": {
            "httpGet": {"path": "/readyz", **probe},
            "periodSeconds": 5,
            "timeoutSeconds": 2,
            "failureThreshold": 2,
        },
        "lifecycle": {"preStop": {"exec": {"command": ["sleep", str(spec.pre_stop_seconds)]}}},
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"]},
        },
        "volumeMounts": [
            {"name": "api-keys", "mountPath": API_KEYS_DIR, "readOnly": True},
            {"name": "state", "mountPath": STATE_DIR},
            {"name": "tmp", "mountPath": "/tmp"},
        ],
    }
    pod = {
        "metadata": {
            "labels": _labels(spec),
            "annotations": {
                "prometheus.io/scrape": "true",
                "prometheus.io/port": str(CONTAINER_PORT),
                "prometheus.io/path": "/metrics",
                "mlplug.io/model": spec.model,
                "mlplug.io/config-hash": config_hash,
            },
        },
        "spec": {
            "terminationGracePeriodSeconds": spec.pre_stop_seconds + spec.graceful_timeout + 10,
            "securityContext": {
                "runAsNonRoot": True,
                "runAsUser": RUN_AS,
                "runAsGroup": RUN_AS,
                "fsGroup": RUN_AS,
                "seccompProfile": {"type": "RuntimeDefault"},
            },
            "topologySpreadConstraints": [
                {
                    "maxSkew": 1,
                    "topologyKey": "kubernetes.io/hostname",
                    "whenUnsatisfiable": "ScheduleAnyway",
                    "labelSelector": {"matchLabels": _selector(spec)},
                }
            ],
            "containers": [container],
            "volumes": [
                {"name": "api-keys", "secret": {"secretName": spec.secret_name, "defaultMode": 0o440}},
                {"name": "state", "emptyDir": {"sizeLimit": "2Gi"}},
                {"name": "tmp", "emptyDir": {"sizeLimit": "256Mi"}},
            ],
        },
    }
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _metadata(spec, spec.app_name),
        "spec": {
            "revisionHistoryLimit": 5,
            "selector": {"matchLabels": _selector(spec)},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
            "template": pod,
        },
    }


def service(spec: ServingSpec) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _metadata(spec, spec.app_name),
        "spec": {
            "type": spec.service_type,
            "selector": _selector(spec),
            "ports": [{"name": "http", "port": spec.service_port, "targetPort": "http", "protocol": "TCP"}],
        },
    }


def autoscaler(spec: ServingSpec) -> dict[str, Any]:
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": _metadata(spec, spec.app_name),
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": spec.app_name},
            "minReplicas": spec.min_replicas,
            "maxReplicas": max(spec.max_replicas, spec.min_replicas),
            "metrics": [
                {
                    "type": "Resource",
                    "resource": {
                        "name": "cpu",
                        "target": {"type": "Utilization", "averageUtilization": spec.cpu_target_percent},
                    },
                }
            ],
            "behavior": {
                # Scale up at once on load; scale down slowly so a lull does not drop capacity
                # that the next burst needs (pods take seconds to load a model).
                "scaleUp": {
                    "stabilizationWindowSeconds": 0,
                    "policies": [{"type": "Percent", "value": 100, "periodSeconds": 30}],
                },
                "scaleDown": {
                    "stabilizationWindowSeconds": 300,
                    "policies": [{"type": "Pods", "value": 1, "periodSeconds": 60}],
                },
            },
        },
    }


def disruption_budget(spec: ServingSpec) -> dict[str, Any]:
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": _metadata(spec, spec.app_name),
        "spec": {"maxUnavailable": 1, "selector": {"matchLabels": _selector(spec)}},
    }


def serving_manifests(spec: ServingSpec) -> list[dict[str, Any]]:
    """ConfigMap, Deployment, Service, HPA and PDB, in the order to apply them."""
    if spec.max_replicas < spec.min_replicas:
        raise ValueError(f"max_replicas {spec.max_replicas} is below min_replicas {spec.min_replicas}")
    config = config_map(spec)
    return [config, deployment(spec, config), service(spec), autoscaler(spec), disruption_budget(spec)]


def api_key_secret_example(spec: ServingSpec) -> dict[str, Any]:
    """The Secret the Deployment mounts, with placeholder keys the server refuses to use."""
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": _metadata(spec, spec.secret_name),
        "type": "Opaque",
        "stringData": {"client-a": "replace-me", "client-b": "replace-me"},
    }


def to_yaml(documents: Iterable[dict[str, Any]], header: str = "") -> str:
    body = yaml.safe_dump_all(list(documents), sort_keys=False, default_flow_style=False, width=100)
    lines = "".join(f"# {line}\n" if line else "#\n" for line in header.splitlines())
    return lines + body


#: File name per kind when a render is written as a kustomize base.
BASE_FILES = {
    "ConfigMap": "configmap.yaml",
    "Deployment": "deployment.yaml",
    "Service": "service.yaml",
    "HorizontalPodAutoscaler": "hpa.yaml",
    "PodDisruptionBudget": "pdb.yaml",
}


def write_base(spec: ServingSpec, directory: Path, header: str) -> list[Path]:
    """One file per object (plus ``secret.example.yaml``), as ``k8s/`` holds them."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for doc in serving_manifests(spec):
        path = directory / BASE_FILES[doc["kind"]]
        path.write_text(to_yaml([doc], header))
        written.append(path)
    secret = directory / "secret.example.yaml"
    secret.write_text(to_yaml([api_key_secret_example(spec)], header))
    written.append(secret)
    return written


# -- applying ---------------------------------------------------------------------------------


def cluster_configured() -> bool:
    """True inside a pod (service account) or when a kubeconfig file exists."""
    if os.environ.get("KUBERNETES_SERVICE_HOST"):
        return True
    paths = os.environ.get("KUBECONFIG", str(Path.home() / ".kube" / "config"))
    return any(Path(p).is_file() for p in paths.split(os.pathsep) if p)


def dynamic_client() -> Any:
    """A Kubernetes dynamic client from the pod's service account or the kubeconfig."""
    try:
        from kubernetes import client, config, dynamic
    except ImportError as exc:
        raise MlplugError(
            "applying manifests needs the Kubernetes client: pip install 'mlplug[k8s]'"
        ) from exc
    try:
        config.load_incluster_config()
    except config.ConfigException:
        config.load_kube_config()
    return dynamic.DynamicClient(client.ApiClient())


def apply_manifests(
    documents: Sequence[dict[str, Any]], *, namespace: str = "default", client: Any | None = None
) -> list[str]:
    """Server-side apply each document (create or update, idempotent); returns what was applied.

    ``client`` is a ``kubernetes.dynamic.DynamicClient`` (made from the environment when
    omitted); server-side apply lets the API server merge fields, so re-running a deploy
    never fights the HPA or other controllers over fields this module does not set.
    """
    client = client or dynamic_client()
    applied = []
    for doc in documents:
        resource = client.resources.get(api_version=doc["apiVersion"], kind=doc["kind"])
        ns = doc["metadata"].get("namespace", namespace)
        client.server_side_apply(
            resource,
            body=doc,
            name=doc["metadata"]["name"],
            namespace=ns,
            field_manager=FIELD_MANAGER,
            force_conflicts=True,
        )
        applied.append(f"{doc['kind']}/{doc['metadata']['name']} in {ns}")
    return applied
