"""The hot-reload poller against store failures that are not mlplug's own: an OSError reading
the alias on file:// and a connection reset in the middle of an S3 GET (through a fault proxy in
front of moto's server). The poller must survive, report the error in /model, /metrics and the
log, keep re-reading the API keys, turn readiness false once the model is older than the
staleness limit, and pick up the next promotion once the store answers again."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from mlplug.registry import Registry
from mlplug.runtime import open_store
from mlplug.storage.base import Store
from mlplug.testing.faults import Fault, FaultProxy
from mlplug.testing.servers import RunningServer, S3Server, mlplug_server
from tests.serving.support import AUTH, FraudStore, fraud_records, server_env

POLL = 0.2
STALENESS = 3.0
#: A second key, in the key directory, that the tests revoke.
OTHER_KEY = "serving-tests-other-key-9876543210"
RECORD = fraud_records(1)[0]


def wait_for(what: str, check: Callable[[], Any], timeout: float = 15.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if result := check():
            return result
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")


def model_info(server: RunningServer) -> dict:
    return httpx.get(f"{server.url}/model", headers=AUTH, timeout=5).json()


def predict_status(server: RunningServer, key: str) -> int:
    return httpx.post(f"{server.url}/predict", json=RECORD, headers={"X-API-Key": key}, timeout=5).status_code


def key_dir(tmp_path: Path) -> Path:
    keys = tmp_path / "keys"
    keys.mkdir()
    (keys / "other").write_text(OTHER_KEY)
    return keys


def check_survives_and_recovers(
    server: RunningServer,
    keys: Path,
    store_url: str,
    promote_to: int,
    error_names: tuple[str, ...],
    repair: Callable[[], None],
) -> None:
    """Shared by both stores: the alias reads are failing when this is called."""
    info = wait_for(
        "the reload error in /model", lambda: (i := model_info(server))["last_reload_error"] and i
    )
    assert any(name in info["last_reload_error"] for name in error_names), info["last_reload_error"]
    metrics = httpx.get(f"{server.url}/metrics").text
    assert 'mlplug_model_reloads_total{outcome="failed",task="fraud"}' in metrics
    failing = [line for line in metrics.splitlines() if line.startswith("mlplug_model_reload_failing{")]
    assert failing and float(failing[0].split()[-1]) >= 1, failing
    assert "could not read alias" in server.log.read_text()

    # The poller is alive: a revoked key stops working within about one poll.
    assert predict_status(server, OTHER_KEY) == 200
    (keys / "other").unlink()
    revoked = time.monotonic()
    wait_for("the revoked key to be refused", lambda: predict_status(server, OTHER_KEY) == 401, timeout=5)
    assert time.monotonic() - revoked < 3 * POLL + 0.5

    # Older than the staleness limit: not ready, and /readyz says why.
    ready = wait_for(
        "readiness to turn false",
        lambda: (r := httpx.get(f"{server.url}/readyz")).status_code == 503 and r.json(),
        timeout=STALENESS + 10,
    )
    assert ready["status"] == "stale" and "MLPLUG_MAX_STALENESS" in ready["reason"], ready
    assert predict_status(server, OTHER_KEY) == 401  # still polled while stale

    # The store answers again: the next promotion is served and the server is ready again.
    repair()
    Registry(open_store(store_url)).promote("fraud", promote_to, reason="reload failure test")
    wait_for("the promoted version", lambda: model_info(server)["version"] == promote_to, timeout=20)
    wait_for("readiness", lambda: httpx.get(f"{server.url}/readyz").status_code == 200, timeout=5)
    assert model_info(server)["last_reload_error"] is None


def test_poller_survives_an_os_error_reading_the_alias(private_store: FraudStore, tmp_path: Path) -> None:
    keys = key_dir(tmp_path)
    env = server_env(
        private_store,
        tmp_path / "home",
        MLPLUG_RELOAD_INTERVAL=str(POLL),
        MLPLUG_MAX_STALENESS=str(STALENESS),
        MLPLUG_API_KEYS_FILE=str(keys),
    )
    alias = private_store.path / "fraud" / "aliases" / "champion.json"
    saved = alias.read_bytes()

    def repair() -> None:
        alias.unlink()
        alias.write_bytes(saved)

    with mlplug_server("fraud", tmp_path, env=env) as server:
        # An OSError that the store does not translate (ELOOP here; EMFILE in the field).
        alias.unlink()
        os.symlink(alias, alias)
        check_survives_and_recovers(
            server,
            keys,
            private_store.url,
            private_store.baseline.version,
            ("OSError", "symbolic links"),
            repair,
        )


def _copy_store(source: Path, target: Store) -> None:
    for path in sorted(source.rglob("*")):
        relative = path.relative_to(source).as_posix()
        if path.is_file() and not any(part.startswith(".mlplug-") for part in relative.split("/")):
            target.put(relative, path.read_bytes())


def test_poller_survives_a_reset_in_the_middle_of_an_s3_get(
    fraud_store: FraudStore,
    s3_server: S3Server,
    s3_store: Store,
    tmp_path: Path,
) -> None:
    _copy_store(fraud_store.path, s3_store)
    keys = key_dir(tmp_path)
    with FaultProxy(s3_server.endpoint_url) as proxy:
        env = {
            **server_env(fraud_store, tmp_path / "home"),
            **s3_server.env,
            "MLPLUG_STORE": s3_store.url,
            "MLPLUG_S3_ENDPOINT_URL": proxy.url,
            "MLPLUG_RELOAD_INTERVAL": str(POLL),
            "MLPLUG_MAX_STALENESS": str(STALENESS),
            "MLPLUG_API_KEYS_FILE": str(keys),
        }
        with mlplug_server("fraud", tmp_path, env=env) as server:
            fault = proxy.inject(
                Fault("reset_mid_body", method="GET", path_contains="aliases/champion.json", times=10_000)
            )
            wait_for("a reset alias read", lambda: fault.hits >= 1)

            def heal() -> None:
                fault.times = fault.hits  # the network is healthy again

            check_survives_and_recovers(
                server,
                keys,
                s3_store.url,
                fraud_store.baseline.version,
                ("ResponseStreamingError", "Connection broken", "reset"),
                heal,
            )


def test_staleness_limit_must_span_two_polls() -> None:
    from mlplug.serving.config import get_serve_settings

    with pytest.raises(ValueError, match="MLPLUG_MAX_STALENESS"):
        get_serve_settings(reload_interval=30, max_staleness=45)
    assert get_serve_settings(reload_interval=30, max_staleness=0).staleness_limit is None
    assert get_serve_settings(reload_interval=0, max_staleness=300).staleness_limit is None
    assert get_serve_settings(reload_interval=30, max_staleness=60).staleness_limit == 60


def test_an_unreadable_key_file_keeps_the_keys_and_makes_them_stale(tmp_path: Path) -> None:
    from mlplug.serving.auth import ApiKeys
    from mlplug.serving.config import ServeSettings

    keys_file = tmp_path / "keys"
    keys_file.write_text(OTHER_KEY)
    keys = ApiKeys.from_settings(ServeSettings(api_keys_file=keys_file))
    header = [(b"x-api-key", OTHER_KEY.encode())]
    keys_file.write_bytes(b"\xff\xfe not text")  # UnicodeDecodeError, not an OSError
    loaded = keys.loaded_at
    keys.reload()
    assert keys.allows(header) and keys.loaded_at == loaded
    assert keys.last_error and "UnicodeDecodeError" in keys.last_error and str(keys_file) in keys.last_error
    assert keys.stale_for(now=loaded + 100) == pytest.approx(100)
    keys_file.write_text("serving-tests-new-key-0123456789")
    keys.reload()
    assert not keys.allows(header) and keys.last_error is None and keys.stale_for() < 1
