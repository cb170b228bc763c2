"""Kubernetes manifests for serving one task's model, and applying them.

:func:`serving_manifests` renders a ConfigMap (task, model reference, store URL), a
Deployment, a Service, a HorizontalPodAutoscaler, a PodDisruptionBudget and a NetworkPolicy
from a typed :class:`ServingSpec`; :func:`api_key_secret_example` renders the Secret the
Deployment mounts. The kustomize base in ``k8s/`` is this module's output for one spec
(:func:`kustomize_base`; a test keeps them equal), so the two cannot drift; in the base the
image is set by kustomize's ``images:`` and the ConfigMap is generated from the operator's
``serving.env`` (store URL, task, model), so neither is written into the base's objects.
Nothing here talks to a cluster except :func:`apply_manifests`, which imports the
Kubernetes client only when called.

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
- The ConfigMap's hash is a pod annotation, so changing the model reference or the store
  rolls pods (in the kustomize base, the generated ConfigMap's name carries the hash).
- The pods run as the image's user with a read-only root filesystem, no service-account
  token (the server never calls the Kubernetes API), and a NetworkPolicy that admits only
  labelled clients to the serving port and lets the pods reach only DNS and the store.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import textwrap
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator

from mlplug.errors import MlplugError
from mlplug.image import HOME_DIR, STATE_DIR, container_security_context, default_image, pod_security_context

API_KEYS_DIR = "/etc/mlplug/api-keys"
CONTAINER_PORT = 8000
FIELD_MANAGER = "mlplug-deploy"
#: Pods (or namespaces) with this label set to "true" may reach the serving port.
CLIENT_LABEL = "mlplug.io/serving-client"
#: The image name the kustomize base's Deployment uses; ``images:`` in its kustomization
#: replaces it with the real reference.
BASE_IMAGE_NAME = "mlplug"
#: ConfigMap keys the operator sets in the base's ``serving.env``; the rest are fixed.
SITE_CONFIG = ("MLPLUG_TASK", "MLPLUG_MODEL", "MLPLUG_STORE")
#: The server's limits, set in every ConfigMap to mlplug's defaults (read from the settings
#: classes, so they cannot drift) so that an operator sees them and tunes them in one place;
#: in the kustomize base they are :data:`LIMITS_ENV_FILE`, each under its line here.
SERVING_LIMITS: dict[str, str] = {
    "MLPLUG_MAX_STALENESS": (
        "seconds without a poll confirming the model (or a read of the API keys) before /readyz "
        "turns 503 and the pod leaves the Service; 0 turns it off, else at least 2 x "
        "MLPLUG_RELOAD_INTERVAL"
    ),
    "MLPLUG_MAX_BODY_BYTES": "largest request body; larger ones get 413",
    "MLPLUG_MAX_HEADER_BYTES": "most bytes in a request line and headers together; more get 431",
    "MLPLUG_MAX_HEADERS": "most header fields in one request; more get 431",
    "MLPLUG_MAX_CONNECTIONS": (
        "open client connections per pod; at the cap the longest idle keep-alive one is closed "
        "for a new one, else 503 (lowered to fit the pod's file-descriptor limit)"
    ),
    "MLPLUG_KEEPALIVE_TIMEOUT": "seconds a connection may wait without sending a request before it is closed",
    "MLPLUG_REQUEST_TIMEOUT": "seconds from a request's first byte to its last; slower ones get 408",
    "MLPLUG_WRITE_TIMEOUT": (
        "seconds a client may leave its answers unread (write buffer full) before its connection is closed"
    ),
    "MLPLUG_S3_CONNECT_TIMEOUT": "seconds to wait for a connection to the S3 endpoint, per attempt",
    "MLPLUG_S3_READ_TIMEOUT": "seconds to wait for the next bytes of an S3 answer, per attempt",
    "MLPLUG_S3_RETRY_SECONDS": (
        "seconds one S3 call may spend in all its attempts; with the timeouts above a silent store "
        "fails well within the startup probe (180 s)"
    ),
    "MLPLUG_PROFILE_RATE": (
        "rows per second profiled in full for drift monitoring; above it a uniform sample of about "
        "this rate; 0 profiles every row"
    ),
}
#: Instance metadata: reachable only by design (IRSA or a Secret carry pod credentials).
METADATA_CIDR = "169.254.169.254/32"
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


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
    #: TCP port the pods reach the store on (443 for S3; 9000 for a MinIO service, ...).
    store_port: int = Field(default=443, ge=1, le=65535)

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
        **limit_defaults(),
        **spec.env,
    }
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": _metadata(spec, f"{spec.app_name}-config"),
        "data": data,
    }


def limit_defaults() -> dict[str, str]:
    """:data:`SERVING_LIMITS` with the values the server uses when they are not set."""
    from mlplug.serving.config import ServeSettings
    from mlplug.settings import Settings

    fields = {**Settings.model_fields, **ServeSettings.model_fields}
    return {name: _number(fields[name.removeprefix("MLPLUG_").lower()].default) for name in SERVING_LIMITS}


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def config_hash(config: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(config["data"], sort_keys=True).encode()).hexdigest()[:16]


def deployment(spec: ServingSpec, config: dict[str, Any]) -> dict[str, Any]:
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
        "securityContext": container_security_context(),
        "volumeMounts": [
            {"name": "api-keys", "mountPath": API_KEYS_DIR, "readOnly": True},
            {"name": "state", "mountPath": STATE_DIR},
            {"name": "tmp", "mountPath": "/tmp"},
            {"name": "home", "mountPath": HOME_DIR},
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
                "mlplug.io/config-hash": config_hash(config),
            },
        },
        "spec": {
            "terminationGracePeriodSeconds": spec.pre_stop_seconds + spec.graceful_timeout + 10,
            "automountServiceAccountToken": False,
            "securityContext": pod_security_context(),
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
                # Library caches under ~/.cache (model loaders of some task types write there).
                {"name": "home", "emptyDir": {"sizeLimit": "256Mi"}},
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


def network_policy(spec: ServingSpec) -> dict[str, Any]:
    """Ingress only to the serving port, only from clients labelled :data:`CLIENT_LABEL`
    (pods in the namespace, or whole namespaces such as the ingress controller's and
    Prometheus'); egress only to cluster DNS and the store's port outside the metadata address.
    The kubelet's probes are not subject to NetworkPolicy.

    Peers are selected with ``matchExpressions``: kustomize adds an overlay's selector labels
    to every ``matchLabels`` of a NetworkPolicy, which would make the DNS pods and the clients
    unmatchable."""

    def having(key: str, value: str) -> dict[str, Any]:
        return {"matchExpressions": [{"key": key, "operator": "In", "values": [value]}]}

    client = having(CLIENT_LABEL, "true")
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": _metadata(spec, spec.app_name),
        "spec": {
            "podSelector": {"matchLabels": _selector(spec)},
            "policyTypes": ["Ingress", "Egress"],
            "ingress": [
                {
                    "from": [{"podSelector": client}, {"namespaceSelector": client}],
                    "ports": [{"port": CONTAINER_PORT, "protocol": "TCP"}],
                }
            ],
            "egress": [
                {
                    "to": [
                        {
                            "namespaceSelector": having("kubernetes.io/metadata.name", "kube-system"),
                            "podSelector": having("k8s-app", "kube-dns"),
                        }
                    ],
                    "ports": [{"port": 53, "protocol": "UDP"}, {"port": 53, "protocol": "TCP"}],
                },
                {
                    "to": [{"ipBlock": {"cidr": "0.0.0.0/0", "except": [METADATA_CIDR]}}],
                    "ports": [{"port": spec.store_port, "protocol": "TCP"}],
                },
            ],
        },
    }


def serving_manifests(spec: ServingSpec) -> list[dict[str, Any]]:
    """ConfigMap, Deployment, Service, HPA, PDB and NetworkPolicy, in the order to apply them."""
    if spec.max_replicas < spec.min_replicas:
        raise ValueError(f"max_replicas {spec.max_replicas} is below min_replicas {spec.min_replicas}")
    config = config_map(spec)
    return [
        config,
        deployment(spec, config),
        service(spec),
        autoscaler(spec),
        disruption_budget(spec),
        network_policy(spec),
    ]


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


#: File name per kind when a render is written as a kustomize base (the ConfigMap is generated).
BASE_FILES = {
    "Deployment": "deployment.yaml",
    "Service": "service.yaml",
    "HorizontalPodAutoscaler": "hpa.yaml",
    "PodDisruptionBudget": "pdb.yaml",
    "NetworkPolicy": "networkpolicy.yaml",
}
#: The operator's settings file the base's ConfigMap is generated from (not in git).
SITE_ENV_FILE = "serving.env"
#: The server's limits in the base, one commented line each (:data:`SERVING_LIMITS`).
LIMITS_ENV_FILE = "limits.env"


def split_image(reference: str) -> dict[str, str]:
    """``registry:5000/mlplug:0.1.0`` -> kustomize ``images:`` fields (``newName``, ``newTag``
    or ``digest``)."""
    name, at, digest = reference.partition("@")
    if at:
        return {"newName": name, "digest": digest}
    repository, colon, tag = name.rpartition(":")
    if colon and "/" not in tag:
        return {"newName": repository, "newTag": tag}
    return {"newName": name}


def kustomize_base(spec: ServingSpec, header: str) -> dict[str, str]:
    """The files of a kustomize base for ``spec``: one per object but the ConfigMap, which
    ``configMapGenerator`` makes from :data:`SITE_ENV_FILE` (task, model, store: the operator's)
    and fixed literals, named with a hash of its data so that pods roll when it changes; the
    image is ``images:``' to set. ``serving.env.example`` shows the settings file."""
    config, *objects = serving_manifests(spec)
    files: dict[str, str] = {}
    for doc in objects:
        if doc["kind"] == "Deployment":
            pod = doc["spec"]["template"]
            for key in ("mlplug.io/config-hash", "mlplug.io/model"):  # the generator's business now
                del pod["metadata"]["annotations"][key]
            pod["spec"]["containers"][0]["image"] = BASE_IMAGE_NAME
        files[BASE_FILES[doc["kind"]]] = to_yaml([doc], header)
    data = config["data"]
    kustomization: dict[str, Any] = {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "resources": list(BASE_FILES.values()),
        "images": [{"name": BASE_IMAGE_NAME, **split_image(spec.image)}],
        "configMapGenerator": [
            {
                "name": config["metadata"]["name"],
                **({"namespace": spec.namespace} if spec.namespace else {}),
                "envs": [SITE_ENV_FILE, LIMITS_ENV_FILE],
                "literals": [
                    f"{k}={v}" for k, v in data.items() if k not in SITE_CONFIG and k not in SERVING_LIMITS
                ],
                "options": {"labels": config["metadata"]["labels"]},
            }
        ],
    }
    usage = (
        f"Before `kubectl apply -k`: copy {SITE_ENV_FILE}.example to {SITE_ENV_FILE} and set the store,\n"
        "task and model there; create the API key Secret (secret.example.yaml, docs/operations.md).\n"
        "The image: `kustomize edit set image mlplug=REGISTRY/mlplug:TAG`, or `images:` in an overlay."
    )
    files["kustomization.yaml"] = to_yaml([kustomization], f"{header}\n{usage}")
    example = "".join(f"{key}={data[key]}\n" for key in SITE_CONFIG)
    comment = "".join(f"# {line}\n" for line in header.splitlines())
    files[f"{SITE_ENV_FILE}.example"] = (
        f"{comment}# Copy to {SITE_ENV_FILE} (not in git) and set: the ConfigMap is generated from it.\n"
        + example
    )
    files[LIMITS_ENV_FILE] = (
        f"{comment}# The inference server's limits at mlplug's defaults, in the ConfigMap with serving.env.\n"
        "# Change one in an overlay (configMapGenerator, behavior: merge; docs/operations.md).\n"
        + "".join(
            "\n" + textwrap.indent(textwrap.fill(SERVING_LIMITS[key], 88), "# ") + f"\n{key}={data[key]}\n"
            for key in SERVING_LIMITS
        )
    )
    files["secret.example.yaml"] = to_yaml([api_key_secret_example(spec)], header)
    return files


def write_base(spec: ServingSpec, directory: Path, header: str) -> list[Path]:
    """Write :func:`kustomize_base` into ``directory``, as ``k8s/`` holds it."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in kustomize_base(spec, header).items():
        path = directory / name
        path.write_text(text)
        written.append(path)
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
