"""Promoting another version while clients hammer /predict: no request fails, and every client
moves from the old version to the new one exactly once."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import httpx

from mlplug.registry import Registry
from mlplug.runtime import open_store
from mlplug.testing.servers import mlplug_server
from tests.serving.support import AUTH, FraudStore, fraud_records, server_env

CLIENTS = 4


def test_promotion_swaps_the_model_without_failing_a_request(
    private_store: FraudStore, tmp_path: Path
) -> None:
    old, new = private_store.catboost, private_store.baseline
    env = server_env(private_store, tmp_path / "home", MLPLUG_RELOAD_INTERVAL="0.2")
    records = fraud_records(64)
    seen: list[list[int]] = [[] for _ in range(CLIENTS)]
    failures: list[str] = []
    stop = threading.Event()

    def hammer(client_id: int) -> None:
        with httpx.Client(headers=AUTH, timeout=10) as client:
            n = 0
            while not stop.is_set():
                body = records[n % len(records)] if n % 3 else {"records": records[: 1 + n % 20]}
                try:
                    response = client.post(f"{server.url}/predict", json=body)
                except httpx.HTTPError as exc:
                    failures.append(repr(exc))
                else:
                    if response.status_code == 200:
                        seen[client_id].append(response.json()["model_version"])
                    else:
                        failures.append(f"{response.status_code}: {response.text[:200]}")
                n += 1

    with mlplug_server("fraud", tmp_path, env=env) as server:
        threads = [threading.Thread(target=hammer, args=(i,)) for i in range(CLIENTS)]
        try:
            for thread in threads:
                thread.start()
            time.sleep(0.5)
            Registry(open_store(private_store.url)).promote("fraud", new.version, reason="hot reload test")
            deadline = time.monotonic() + 20
            while not all(s and s[-1] == new.version for s in seen) and time.monotonic() < deadline:
                time.sleep(0.1)
            time.sleep(0.3)  # keep serving a little on the new version
        finally:
            stop.set()
            for thread in threads:
                thread.join(30)
        info = httpx.get(f"{server.url}/model", headers=AUTH).json()
        metrics = httpx.get(f"{server.url}/metrics").text

    assert not failures, failures[:5]
    for versions in seen:
        assert versions[0] == old.version and versions[-1] == new.version
        switch = versions.index(new.version)
        assert set(versions[:switch]) == {old.version} and set(versions[switch:]) == {new.version}
    assert info["version"] == new.version and info["kind"] == "baseline"
    assert 'mlplug_model_reloads_total{outcome="swapped",task="fraud"} 1.0' in metrics
    assert (
        f'mlplug_model_info{{kind="baseline",ref="champion",task="fraud",version="{new.version}"}} 1.0'
        in metrics
    )
    assert f'version="{old.version}"' not in metrics.split("mlplug_model_info")[1].split("\n# ")[0]
