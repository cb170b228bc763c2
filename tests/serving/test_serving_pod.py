"""The serving Deployment that `mlplug k8s render` prints, run as its pod would be
(``mlplug.testing.pod_sandbox``): read-only root filesystem, only its emptyDirs writable, the
API-key Secret mounted read-only, uid 10001, exactly its environment (the ConfigMap through
``envFrom``), on its real port in a network of its own. No cluster and no image here: the
code comes from this checkout. The store is a read-only file:// store (the pod's S3 would be
out of the isolated network), so traffic profiling is off."""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

import pytest

from mlplug.image import STATE_DIR
from mlplug.k8s import ServingSpec, serving_manifests
from mlplug.testing import pod_sandbox
from tests.serving.support import API_KEY, build_fraud_store, fraud_records

ROOT = Path(__file__).resolve().parents[2]
UNAVAILABLE = pod_sandbox.unavailable()
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(UNAVAILABLE is not None, reason=f"no pod sandbox: {UNAVAILABLE}"),
]

#: Runs beside the pod: wait for readiness, predict with the mounted key, check auth holds.
PROBE = """
import json, sys, time
import httpx
records, key, port = json.loads(sys.argv[1]), sys.argv[2], sys.argv[3]
base = f"http://127.0.0.1:{port}"
deadline = time.monotonic() + 180
while True:
    try:
        if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
            break
    except httpx.HTTPError:
        pass
    if time.monotonic() > deadline:
        sys.exit("not ready within 180 s")
    time.sleep(0.5)
answer = httpx.post(f"{base}/predict", json={"records": records}, headers={"X-API-Key": key}, timeout=30)
assert answer.status_code == 200, answer.text
assert len(answer.json()["predictions"]) == len(records), answer.text
refused = httpx.post(f"{base}/predict", json={"records": records}, timeout=30)
assert refused.status_code == 401, refused.text
print("probe ok")
"""


def test_the_serving_pod_serves_on_a_read_only_root() -> None:
    # Outside /tmp: the pod's own /tmp volume would hide it.
    outside = Path(tempfile.mkdtemp(dir="/var/tmp", prefix="mlplug-serving-pod-"))
    try:
        os.chmod(outside, 0o755)
        store = build_fraud_store(outside / "store")
        spec = ServingSpec(
            task="fraud", store=store.url, env={"MLPLUG_MONITORING": "false", "MLPLUG_LOAD_PLUGINS": "fraud"}
        )
        config, deployment, *_ = serving_manifests(spec)
        (container,) = deployment["spec"]["template"]["spec"]["containers"]
        port = str(container["ports"][0]["containerPort"])
        probe = [sys.executable, "-c", PROBE, json.dumps(fraud_records(3)), API_KEY, port]

        pod = pod_sandbox.run_like_pod(
            deployment,
            workdir=ROOT,
            env_from=config["data"],
            files={"api-keys": {"client-a": API_KEY}},
            probe=probe,
            isolated_network=True,
            timeout=300,
        )

        assert pod.probe_returncode == 0, pod.output[-6000:]
        assert "probe ok" in pod.output
        assert pod.returncode == 0, pod.output[-6000:]  # drained and stopped on SIGTERM
        assert any(path.startswith("cache") for path in pod.written[STATE_DIR])  # the model cache
    finally:
        shutil.rmtree(outside, ignore_errors=True)
