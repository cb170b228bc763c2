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
from pathlib import Path

import kubernetes_validate
import pytest
import yaml
from typer.testing import CliRunner

import mlplug
from mlplug import k8s
from mlplug.cli import app as cli
from mlplug.k8s import ServingSpec, api_key_secret_example, serving_manifests
from tests.toy_task import ToyTask

ROOT = Path(__file__).resolve().parents[1]
K8S_VERSION = "1.37.0"
#: The spec k8s/ is rendered from (docs/operations.md shows the command).
BASE_ARGS = ["k8s", "render", "fraud", "--name", "mlplug-serve", "--store", "s3://mlplug-models/prod",
             "--image", "mlplug:0.1.0", "--no-check-task"]  # fmt: skip


def validate(documents: list[dict]) -> None:
    for doc in documents:
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)


def load_all(text: str) -> list[dict]:
    return [d for d in yaml.safe_load_all(text) if d]


def kustomize(path: Path) -> list[dict]:
    """``kubectl kustomize`` when kubectl is installed (it is on this machine image), else a
    minimal Python rendering of a plain ``resources:`` list (no transformers), said so in the
    assertion message."""
    kubectl = shutil.which("kubectl")
    if kubectl:
        out = subprocess.run([kubectl, "kustomize", str(path)], capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stderr
        return load_all(out.stdout)
    spec = yaml.safe_load((path / "kustomization.yaml").read_text())
    assert set(spec) <= {"apiVersion", "kind", "resources"}, (
        "no kubectl: only plain resource lists can be checked"
    )
    return [d for name in spec["resources"] for d in load_all((path / name).read_text())]


@pytest.fixture
def spec() -> ServingSpec:
    return ServingSpec(task="toy_task", model="7", store="s3://bucket/prefix", namespace="ml")


def test_rendered_manifests_are_valid_kubernetes(spec: ServingSpec) -> None:
    documents = serving_manifests(spec)
    assert [d["kind"] for d in documents] == [
        "ConfigMap", "Deployment", "Service", "HorizontalPodAutoscaler", "PodDisruptionBudget"
    ]  # fmt: skip
    validate([*documents, api_key_secret_example(spec)])


def test_what_the_deployment_promises(spec: ServingSpec) -> None:
    config, deployment, service, hpa, pdb = serving_manifests(spec)
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
    assert all(d["metadata"]["namespace"] == "ml" for d in (config, deployment, service, hpa, pdb))


def test_changing_the_model_reference_rolls_the_pods(spec: ServingSpec) -> None:
    def annotations(model: str) -> dict:
        return serving_manifests(spec.model_copy(update={"model": model}))[1]["spec"]["template"]["metadata"][
            "annotations"
        ]

    assert annotations("7")["mlplug.io/config-hash"] != annotations("8")["mlplug.io/config-hash"]


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


@pytest.mark.parametrize("path", ["k8s", "k8s/worker"])
def test_kustomize_renders_valid_objects(path: str) -> None:
    documents = kustomize(ROOT / path)
    assert documents
    validate(documents)


def test_the_base_and_the_worker_cover_the_whole_deployment() -> None:
    kinds = {d["kind"] for d in kustomize(ROOT / "k8s")}
    assert kinds == {"ConfigMap", "Deployment", "Service", "HorizontalPodAutoscaler", "PodDisruptionBudget"}
    worker = kustomize(ROOT / "k8s/worker")
    assert {d["kind"] for d in worker} >= {"Deployment", "ServiceAccount", "Role", "RoleBinding"}
    validate(load_all((ROOT / "k8s/secret.example.yaml").read_text()))
    (deployment,) = [d for d in worker if d["kind"] == "Deployment"]
    args = deployment["spec"]["template"]["spec"]["containers"][0]["args"]
    assert args[:4] == ["--pool", "mlplug-kubernetes", "--type", "kubernetes"]
    runner = {d["metadata"]["name"] for d in worker if d["kind"] == "ServiceAccount"}
    template = json.loads((ROOT / "deployments/kubernetes-base-job-template.json").read_text())
    assert template["variables"]["properties"]["service_account_name"]["default"] in runner


def test_the_overlay_example_in_the_docs_renders(tmp_path: Path) -> None:
    docs = (ROOT / "docs/operations.md").read_text()
    block = re.search(r"```yaml\n(# deploy/convqa/kustomization\.yaml\n.*?)```", docs, re.S)
    assert block, "docs/operations.md lost its overlay example"
    overlay = tmp_path / "deploy" / "convqa"
    overlay.mkdir(parents=True)
    base = os.path.relpath(ROOT / "k8s", overlay)
    (overlay / "kustomization.yaml").write_text(block.group(1).replace("../../k8s", base))
    if not shutil.which("kubectl"):
        pytest.fail("kubectl is needed to render overlays (Debian package kubernetes-client)")
    documents = kustomize(overlay)
    validate(documents)
    config = next(d for d in documents if d["kind"] == "ConfigMap")
    assert config["data"]["MLPLUG_TASK"] == "convqa"
    selectors = {
        json.dumps(d["spec"]["selector"], sort_keys=True) for d in documents if d["kind"] == "Service"
    }
    assert "mlplug-serve-convqa" in selectors.pop()


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


def test_prefect_yaml_deploys_every_first_party_task() -> None:
    config = yaml.safe_load((ROOT / "prefect.yaml").read_text())
    deployments = {d["name"]: d for d in config["deployments"]}
    for task in ("fraud", "convqa"):
        assert deployments[f"train-{task}"]["entrypoint"] == "flows/train.py:train"
        deploy = deployments[f"deploy-{task}"]
        assert deploy["entrypoint"] == "flows/deploy.py:deploy"
        assert deploy["work_pool"]["name"] == "mlplug-kubernetes"
        assert deploy["parameters"] == {**deploy["parameters"], "task": task, "version": "champion"}
