"""Kubernetes manifests, validated without a cluster: every rendered object against the
Kubernetes 1.37 schema (kubernetes-validate, strict: unknown fields fail), the kustomize base
in k8s/ equal to what mlplug.k8s renders, `kubectl kustomize` over the base, the worker and
the overlay example in docs/operations.md, and applying through a stand-in for the Kubernetes
dynamic client. The work-pool job templates are tests/test_workpools.py's."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import uuid
from pathlib import Path

import kubernetes_validate
import pytest
import yaml
from typer.testing import CliRunner

import mlplug
from mlplug import image, k8s, workpools
from mlplug.cli import app as cli
from mlplug.k8s import ServingSpec, api_key_secret_example, serving_manifests
from tests.toy_task import ToyTask

ROOT = Path(__file__).resolve().parents[1]
K8S_VERSION = "1.37.0"
KINDS = ["Deployment", "Service", "HorizontalPodAutoscaler", "PodDisruptionBudget", "NetworkPolicy"]
#: The spec k8s/ is rendered from (docs/operations.md shows the command).
BASE_ARGS = ["k8s", "render", "fraud", "--name", "mlplug-serve", "--store", "s3://mlplug-models/prod",
             "--image", "mlplug:0.1.0", "--no-check-task"]  # fmt: skip


def validate(documents: list[dict]) -> None:
    for doc in documents:
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)


def load_all(text: str) -> list[dict]:
    return [d for d in yaml.safe_load_all(text) if d]


def kustomize(path: Path) -> list[dict]:
    """``kubectl kustomize`` (kubectl is part of this machine image: Debian package kubectl)."""
    kubectl = shutil.which("kubectl")
    if not kubectl:
        pytest.fail("kubectl is needed to render kustomizations (Debian package kubectl)")
    out = subprocess.run([kubectl, "kustomize", str(path)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return load_all(out.stdout)


def operator_base(tmp_path: Path, **settings: str) -> Path:
    """A copy of k8s/ as an operator has it: serving.env made from the example, then ``settings``."""
    base = tmp_path / "k8s"
    shutil.copytree(ROOT / "k8s", base, ignore=shutil.ignore_patterns("worker", k8s.SITE_ENV_FILE))
    lines = (base / f"{k8s.SITE_ENV_FILE}.example").read_text().splitlines()
    values = dict(line.split("=", 1) for line in lines if line and not line.startswith("#"))
    values.update(settings)
    (base / k8s.SITE_ENV_FILE).write_text("".join(f"{k}={v}\n" for k, v in values.items()))
    return base


@pytest.fixture
def spec() -> ServingSpec:
    return ServingSpec(task="toy_task", model="7", store="s3://bucket/prefix", namespace="ml")


def test_rendered_manifests_are_valid_kubernetes(spec: ServingSpec) -> None:
    documents = serving_manifests(spec)
    assert [d["kind"] for d in documents] == ["ConfigMap", *KINDS]
    validate([*documents, api_key_secret_example(spec)])


def test_what_the_deployment_promises(spec: ServingSpec) -> None:
    config, deployment, service, hpa, pdb, policy = serving_manifests(spec)
    assert config["data"]["MLPLUG_TASK"] == "toy_task" and config["data"]["MLPLUG_MODEL"] == "7"
    assert config["data"]["MLPLUG_STORE"] == "s3://bucket/prefix"
    assert deployment["metadata"]["name"] == "mlplug-serve-toy-task"  # a DNS name, from a task name
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["resources"]["requests"] and container["resources"]["limits"]
    assert {"configMapRef": {"name": config["metadata"]["name"]}} in container["envFrom"]
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["startupProbe"]["httpGet"]["path"] == "/healthz"
    pre_stop = int(container["lifecycle"]["preStop"]["exec"]["command"][1])
    drain = int(config["data"]["MLPLUG_GRACEFUL_TIMEOUT"])
    assert pod["terminationGracePeriodSeconds"] > pre_stop + drain  # long enough to drain
    assert "replicas" not in deployment["spec"]  # the HPA owns the count
    assert deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    assert mounts[config["data"]["MLPLUG_API_KEYS_FILE"]] == "api-keys"
    assert pod["securityContext"]["runAsNonRoot"] and container["securityContext"]["readOnlyRootFilesystem"]
    assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert pod["automountServiceAccountToken"] is False  # the server never calls the Kubernetes API
    writable = {m["mountPath"] for m in container["volumeMounts"] if not m.get("readOnly")}
    assert writable == {"/tmp", config["data"]["MLPLUG_HOME"], "/home/mlplug"}
    selector = deployment["spec"]["selector"]["matchLabels"]
    assert service["spec"]["selector"] == selector == pdb["spec"]["selector"]["matchLabels"]
    assert (
        hpa["apiVersion"] == "autoscaling/v2"
        and hpa["spec"]["scaleTargetRef"]["name"] == deployment["metadata"]["name"]
    )
    assert hpa["spec"]["metrics"][0]["resource"]["target"] == {
        "type": "Utilization",
        "averageUtilization": 70,
    }
    assert all(d["metadata"]["namespace"] == "ml" for d in (config, deployment, service, hpa, pdb, policy))

    # Only labelled clients reach the serving port; the pods reach only DNS and the store.
    assert policy["spec"]["podSelector"]["matchLabels"] == selector
    assert policy["spec"]["policyTypes"] == ["Ingress", "Egress"]
    (ingress,) = policy["spec"]["ingress"]
    assert ingress["ports"] == [{"port": container["ports"][0]["containerPort"], "protocol": "TCP"}]
    client = {"matchExpressions": [{"key": k8s.CLIENT_LABEL, "operator": "In", "values": ["true"]}]}
    assert ingress["from"] == [{"podSelector": client}, {"namespaceSelector": client}]
    dns, store = policy["spec"]["egress"]
    assert {p["port"] for p in dns["ports"]} == {53}
    assert store["ports"] == [{"port": 443, "protocol": "TCP"}]
    assert store["to"][0]["ipBlock"]["except"] == [k8s.METADATA_CIDR]


@pytest.mark.parametrize("change", [{"model": "8"}, {"store": "s3://other/prefix"}, {"reload_interval": 5.0}])
def test_changing_the_config_rolls_the_pods(spec: ServingSpec, change: dict) -> None:
    def config_hash(spec: ServingSpec) -> str:
        pod = serving_manifests(spec)[1]["spec"]["template"]
        return pod["metadata"]["annotations"]["mlplug.io/config-hash"]

    assert config_hash(spec) == config_hash(spec.model_copy())
    assert config_hash(spec) != config_hash(spec.model_copy(update=change))


@pytest.mark.parametrize(
    "bad",
    [
        {"task": "Bad Task"},
        {"model": "champion; rm -rf"},
        {"min_replicas": 0},
        {"name": "UPPER"},
        {"unknown": 1},
    ],
)
def test_invalid_specs_are_refused(bad: dict) -> None:
    with pytest.raises(ValueError):
        serving_manifests(ServingSpec(**{"task": "fraud", "store": "s3://b/p", **bad}))


def test_the_kustomize_base_is_what_mlplug_renders(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, [*BASE_ARGS, "--out-dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    for rendered in sorted(tmp_path.iterdir()):
        committed = ROOT / "k8s" / rendered.name
        assert committed.read_text() == rendered.read_text(), (
            f"k8s/{rendered.name} is stale: run `mlplug {' '.join(BASE_ARGS)} --out-dir k8s`"
        )


def test_kustomize_renders_valid_objects(tmp_path: Path) -> None:
    for path in (operator_base(tmp_path), ROOT / "k8s/worker"):
        documents = kustomize(path)
        assert documents
        validate(documents)


def test_the_base_takes_the_image_and_the_store_from_the_operator(tmp_path: Path) -> None:
    for name in k8s.BASE_FILES.values():  # nothing site-specific in the objects themselves
        text = (ROOT / "k8s" / name).read_text()
        assert "s3://" not in text and "MLPLUG_STORE" not in text and "image: mlplug:" not in text, name
    missing = subprocess.run(["kubectl", "kustomize", str(ROOT / "k8s")], capture_output=True, text=True)
    assert missing.returncode != 0 and "serving.env" in missing.stderr  # no silent default store

    def rendered(store: str, image: str | None = None) -> tuple[dict, dict]:
        base = operator_base(tmp_path / uuid.uuid4().hex, MLPLUG_STORE=store)
        if image:  # what `kustomize edit set image mlplug=...` writes
            kustomization = yaml.safe_load((base / "kustomization.yaml").read_text())
            kustomization["images"] = [{"name": k8s.BASE_IMAGE_NAME, **k8s.split_image(image)}]
            (base / "kustomization.yaml").write_text(yaml.safe_dump(kustomization))
        documents = kustomize(base)
        validate(documents)
        config = next(d for d in documents if d["kind"] == "ConfigMap")
        deployment = next(d for d in documents if d["kind"] == "Deployment")
        return config, deployment

    config_a, deployment_a = rendered("s3://bucket-a/prod")
    config_b, deployment_b = rendered("s3://bucket-b/prod", image="registry.example.com:5000/mlplug:2.0.1")
    assert config_a["data"]["MLPLUG_STORE"] == "s3://bucket-a/prod"
    assert config_b["data"]["MLPLUG_STORE"] == "s3://bucket-b/prod"
    # The generated name carries a hash of the data, and the pods refer to it: a new store
    # is a new ConfigMap and a rollout.
    assert config_a["metadata"]["name"] != config_b["metadata"]["name"]
    for config, deployment in ((config_a, deployment_a), (config_b, deployment_b)):
        (container,) = deployment["spec"]["template"]["spec"]["containers"]
        assert {"configMapRef": {"name": config["metadata"]["name"]}} in container["envFrom"]
    assert deployment_a["spec"]["template"]["spec"]["containers"][0]["image"] == "mlplug:0.1.0"
    assert deployment_b["spec"]["template"]["spec"]["containers"][0]["image"] == (
        "registry.example.com:5000/mlplug:2.0.1"
    )


#: Limits issue 15 asks every serving ConfigMap to carry explicitly.
LIMITS = {
    "MLPLUG_MAX_STALENESS", "MLPLUG_MAX_CONNECTIONS", "MLPLUG_KEEPALIVE_TIMEOUT", "MLPLUG_REQUEST_TIMEOUT",
    "MLPLUG_WRITE_TIMEOUT", "MLPLUG_MAX_HEADER_BYTES", "MLPLUG_MAX_HEADERS", "MLPLUG_S3_CONNECT_TIMEOUT",
    "MLPLUG_S3_READ_TIMEOUT", "MLPLUG_S3_RETRY_SECONDS", "MLPLUG_PROFILE_RATE",
}  # fmt: skip


def test_every_setting_in_the_config_map_is_a_real_one_and_the_limits_are_the_defaults(
    tmp_path: Path, spec: ServingSpec, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mlplug.serving.config import ServeSettings, get_serve_settings
    from mlplug.settings import Settings, get_settings

    fields = {**Settings.model_fields, **ServeSettings.model_fields}
    known = {f"MLPLUG_{name.upper()}" for name in fields}
    (base_config,) = [d for d in kustomize(operator_base(tmp_path)) if d["kind"] == "ConfigMap"]
    docs = (ROOT / "docs/operations.md").read_text()
    for data in (base_config["data"], k8s.config_map(spec)["data"]):
        assert {key for key in data if key.startswith("MLPLUG_")} - known == set()
        assert set(data) >= LIMITS
        for key in LIMITS:
            assert float(data[key]) == fields[key.removeprefix("MLPLUG_").lower()].default, key
            assert f"`{key}`" in docs, f"docs/operations.md does not name {key}"
        # The values are usable together, as the server and the store read them.
        for key, value in data.items():
            monkeypatch.setenv(key, value)
        get_settings()
        get_serve_settings()
    limits_file = (ROOT / "k8s" / k8s.LIMITS_ENV_FILE).read_text()
    for key in LIMITS:  # each with its comment right above it
        assert re.search(rf"^# .*\n(# .*\n)*{key}=", limits_file, re.M), key


@pytest.mark.parametrize(
    ("reference", "fields"),
    [
        ("mlplug:0.1.0", {"newName": "mlplug", "newTag": "0.1.0"}),
        ("registry:5000/team/mlplug", {"newName": "registry:5000/team/mlplug"}),
        ("registry:5000/mlplug:1", {"newName": "registry:5000/mlplug", "newTag": "1"}),
        ("mlplug@sha256:abc", {"newName": "mlplug", "digest": "sha256:abc"}),
    ],
)
def test_image_references_split_for_kustomize(reference: str, fields: dict) -> None:
    assert k8s.split_image(reference) == fields


def test_the_base_and_the_worker_cover_the_whole_deployment(tmp_path: Path) -> None:
    kinds = {d["kind"] for d in kustomize(operator_base(tmp_path))}
    assert kinds == {"ConfigMap", *KINDS}
    worker = kustomize(ROOT / "k8s/worker")
    assert {d["kind"] for d in worker} >= {"Deployment", "ServiceAccount", "Role", "RoleBinding"}
    validate(load_all((ROOT / "k8s/secret.example.yaml").read_text()))
    (deployment,) = [d for d in worker if d["kind"] == "Deployment"]
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["args"][:4] == ["--pool", workpools.POOL_NAMES["kubernetes"], "--type", "kubernetes"]
    runner = {d["metadata"]["name"] for d in worker if d["kind"] == "ServiceAccount"}
    template = json.loads((ROOT / "deployments/kubernetes-base-job-template.json").read_text())
    assert template["variables"]["properties"]["service_account_name"]["default"] in runner
    # The worker runs as hardened as the pods it starts.
    assert pod["securityContext"] == image.pod_security_context()
    assert container["securityContext"] == image.container_security_context()
    volumes = {v["name"]: v for v in pod["volumes"]}
    writable = {m["mountPath"] for m in container["volumeMounts"] if "emptyDir" in volumes[m["name"]]}
    assert writable == {"/tmp", image.STATE_DIR, image.HOME_DIR}
    assert container["image"] == image.default_image()  # kustomize `images:`, not the object

    # The flow runs' Role may apply every kind the deploy flow renders, and no more.
    (deployer,) = [d for d in worker if d["kind"] == "Role" and d["metadata"]["name"] == "mlplug-deployer"]
    granted = {(group, resource) for rule in deployer["rules"] for group in rule["apiGroups"]
               for resource in rule["resources"]}  # fmt: skip
    rendered = {
        (doc["apiVersion"].rpartition("/")[0], re.sub("y$", "ie", doc["kind"].lower()) + "s")
        for doc in serving_manifests(ServingSpec(task="fraud", store="s3://b/p"))
    }
    assert granted == rendered


def test_the_overlay_example_in_the_docs_renders(tmp_path: Path) -> None:
    docs = (ROOT / "docs/operations.md").read_text()
    block = re.search(r"```yaml\n(# deploy/convqa/kustomization\.yaml\n.*?)```", docs, re.S)
    assert block, "docs/operations.md lost its overlay example"
    overlay = tmp_path / "deploy" / "convqa"
    overlay.mkdir(parents=True)
    base = os.path.relpath(operator_base(tmp_path), overlay)
    (overlay / "kustomization.yaml").write_text(block.group(1).replace("../../k8s", base))
    documents = kustomize(overlay)
    validate(documents)
    config = next(d for d in documents if d["kind"] == "ConfigMap")
    assert config["data"]["MLPLUG_TASK"] == "convqa"
    assert config["data"]["MLPLUG_STORE"]  # from the base's serving.env: one store for every task
    deployment = next(d for d in documents if d["kind"] == "Deployment")
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert {"configMapRef": {"name": config["metadata"]["name"]}} in container["envFrom"]
    assert container["image"].startswith("registry.example.com/")
    selectors = {
        json.dumps(d["spec"]["selector"], sort_keys=True) for d in documents if d["kind"] == "Service"
    }
    assert "mlplug-serve-convqa" in selectors.pop()
    # The overlay's selector labels reach the policy's own pods, not its DNS and client peers.
    policy = next(d for d in documents if d["kind"] == "NetworkPolicy")
    assert policy["spec"]["podSelector"]["matchLabels"] == deployment["spec"]["selector"]["matchLabels"]
    dns = policy["spec"]["egress"][0]["to"][0]["podSelector"]
    assert dns == {"matchExpressions": [{"key": "k8s-app", "operator": "In", "values": ["kube-dns"]}]}


def test_cli_render_prints_valid_manifests(register_plugin, monkeypatch: pytest.MonkeyPatch) -> None:
    class Toys:
        @mlplug.hookimpl
        def register_tasks(self, register):  # type: ignore[no-untyped-def]
            register(ToyTask("toy"))

    register_plugin(Toys(), "toys")
    monkeypatch.setenv("MLPLUG_STORE", "s3://models/prod")
    args = ["k8s", "render", "toy", "--version", "3", "--replicas", "3", "--image", "registry.local/mlplug:1"]
    result = CliRunner().invoke(cli, [*args, "--namespace", "ml", "--with-secret"])
    assert result.exit_code == 0, result.output
    documents = load_all(result.output)
    validate(documents)
    assert [d["kind"] for d in documents][-1] == "Secret"
    assert (
        documents[0]["data"]["MLPLUG_MODEL"] == "3"
        and documents[0]["data"]["MLPLUG_STORE"] == "s3://models/prod"
    )
    assert documents[3]["spec"]["minReplicas"] == 3
    assert documents[1]["spec"]["template"]["spec"]["containers"][0]["image"] == "registry.local/mlplug:1"
    volumes = {v["name"]: v for v in documents[1]["spec"]["template"]["spec"]["volumes"]}
    assert volumes["api-keys"]["secret"]["secretName"] == documents[-1]["metadata"]["name"]

    def config_hash(*extra: str) -> str:
        out = CliRunner().invoke(cli, [*args, *extra])
        assert out.exit_code == 0, out.output
        deployment = next(d for d in load_all(out.output) if d["kind"] == "Deployment")
        return deployment["spec"]["template"]["metadata"]["annotations"]["mlplug.io/config-hash"]

    assert config_hash() == config_hash("--store", "s3://models/prod")
    assert config_hash() != config_hash("--store", "s3://models/staging")
    minio = load_all(CliRunner().invoke(cli, [*args, "--store-port", "9000"]).output)[-1]
    assert minio["kind"] == "NetworkPolicy" and minio["spec"]["egress"][1]["ports"][0]["port"] == 9000

    unknown = CliRunner().invoke(cli, ["k8s", "render", "nope"])
    assert unknown.exit_code != 0 and "unknown task type 'nope'" in str(unknown.exception)


class FakeDynamicClient:
    """Records server-side applies the way kubernetes.dynamic.DynamicClient takes them."""

    def __init__(self) -> None:
        self.calls: list[dict] = []
        self.resources = self

    def get(self, api_version: str, kind: str) -> tuple[str, str]:
        return (api_version, kind)

    def server_side_apply(
        self, resource, body=None, name=None, namespace=None, force_conflicts=None, **kwargs
    ):  # type: ignore[no-untyped-def]
        self.calls.append(
            {"resource": resource, "name": name, "namespace": namespace, "force": force_conflicts, **kwargs}
        )


def test_apply_uses_server_side_apply(spec: ServingSpec) -> None:
    client = FakeDynamicClient()
    applied = k8s.apply_manifests(serving_manifests(spec), namespace="default", client=client)
    assert applied[0] == "ConfigMap/mlplug-serve-toy-task-config in ml"
    assert [c["resource"] for c in client.calls][1] == ("apps/v1", "Deployment")
    assert all(
        c["field_manager"] == k8s.FIELD_MANAGER and c["force"] and c["namespace"] == "ml"
        for c in client.calls
    )


def test_cluster_detection(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "missing"))
    assert not k8s.cluster_configured()
    (tmp_path / "config").write_text("apiVersion: v1\nkind: Config\n")
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "config"))
    assert k8s.cluster_configured()
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "missing"))
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.0.0.1")
    assert k8s.cluster_configured()
