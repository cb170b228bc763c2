"""How long an S3 call waits for an endpoint that never answers: a fault proxy in front of
moto's server holds the connection and sends nothing (a black hole), for the store and for
the real `mlplug` command."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from pydantic import ValidationError

from mlplug.errors import StoreUnavailableError
from mlplug.settings import Settings
from mlplug.storage.s3 import open_s3
from mlplug.testing.faults import Fault, FaultProxy
from mlplug.testing.servers import S3Server

MLPLUG = str(Path(sys.executable).with_name("mlplug"))
#: The inference server's startup probe in k8s/deployment.yaml: 90 failures, 2 s apart.
STARTUP_PROBE_SECONDS = 180


@pytest.fixture
def proxy(s3_fault_proxy: FaultProxy) -> FaultProxy:
    return s3_fault_proxy


def test_the_default_timeouts_give_up_on_a_silent_endpoint_well_within_the_startup_probe() -> None:
    s = Settings()
    # No retry starts that could end after s3_retry_seconds, and the first attempt fits in it.
    assert s.s3_connect_timeout + s.s3_read_timeout <= s.s3_retry_seconds <= 60 < STARTUP_PROBE_SECONDS


def test_retry_time_shorter_than_one_attempt_is_refused_naming_the_settings() -> None:
    with pytest.raises(ValidationError, match=r"MLPLUG_S3_RETRY_SECONDS \(10\) must be at least"):
        Settings(s3_connect_timeout=5, s3_read_timeout=20, s3_retry_seconds=10)


def test_a_silent_endpoint_fails_a_call_within_the_retry_time(proxy: FaultProxy, s3_server: S3Server) -> None:
    bucket = s3_server.create_bucket(f"silent-{uuid.uuid4().hex[:10]}")
    settings = Settings(
        s3_endpoint_url=proxy.url, s3_connect_timeout=1, s3_read_timeout=1, s3_retry_seconds=5
    )
    store = open_s3(f"s3://{bucket}/store", settings)
    proxy.inject(Fault("stall", method="GET", times=100))
    started = time.monotonic()
    with pytest.raises(StoreUnavailableError) as caught:
        store.get("toy/aliases/champion.json")
    elapsed = time.monotonic() - started
    # Attempt at 0 s (1 s), backoff <= 1 s, attempt (1 s): a third could end after 5 s.
    assert elapsed <= 5
    assert [r.fault for r in proxy.seen] == ["stall", "stall"]
    message = str(caught.value)
    assert proxy.url in message
    assert "MLPLUG_S3_READ_TIMEOUT" in message and "MLPLUG_S3_RETRY_SECONDS" in message


def test_quick_failures_are_still_retried_within_the_budget(proxy: FaultProxy, s3_server: S3Server) -> None:
    bucket = s3_server.create_bucket(f"flaky-{uuid.uuid4().hex[:10]}")
    store = open_s3(f"s3://{bucket}/store", Settings(s3_endpoint_url=proxy.url))
    store.put("k", b"v")
    proxy.inject(Fault("drop_request", method="GET", times=3))
    assert store.get("k") == b"v"  # three resets, the fourth attempt answers


def test_mlplug_models_list_on_a_black_holed_endpoint_fails_in_time_with_one_line(
    proxy: FaultProxy, s3_server: S3Server, tmp_path: Path
) -> None:
    bucket = s3_server.create_bucket(f"hole-{uuid.uuid4().hex[:10]}")
    proxy.blackhole = True
    env = {
        **os.environ,
        **s3_server.env,
        "MLPLUG_HOME": str(tmp_path / "home"),
        "MLPLUG_STORE": f"s3://{bucket}/store",
        "MLPLUG_S3_ENDPOINT_URL": proxy.url,
        "MLPLUG_S3_CONNECT_TIMEOUT": "1",
        "MLPLUG_S3_READ_TIMEOUT": "2",
        "MLPLUG_S3_RETRY_SECONDS": "6",
        "MLPLUG_LOAD_PLUGINS": "fraud",
    }
    started = time.monotonic()
    out = subprocess.run(
        [MLPLUG, "models", "list", "fraud"], capture_output=True, text=True, env=env, timeout=120
    )
    elapsed = time.monotonic() - started
    assert out.returncode == 1
    assert "Traceback" not in out.stderr, out.stderr
    (line,) = out.stderr.strip().splitlines()
    assert line.startswith(f"error: store s3://{bucket}/store at {proxy.url} is unreachable: gave up after")
    assert "MLPLUG_S3_READ_TIMEOUT" in line and "MLPLUG_S3_RETRY_SECONDS" in line
    assert elapsed < 6 + 15  # the retry time plus the command's start-up on a busy machine


def test_an_unusable_timeout_setting_is_one_line_from_the_cli(tmp_path: Path) -> None:
    env = {**os.environ, "MLPLUG_HOME": str(tmp_path / "home"), "MLPLUG_S3_RETRY_SECONDS": "10"}
    out = subprocess.run([MLPLUG, "models", "list", "fraud"], capture_output=True, text=True, env=env)
    assert out.returncode == 1 and "Traceback" not in out.stderr, out.stderr
    assert out.stderr.strip() == (
        "error: invalid settings: MLPLUG_S3_RETRY_SECONDS (10) must be at least "
        "MLPLUG_S3_CONNECT_TIMEOUT + MLPLUG_S3_READ_TIMEOUT (25), the time one attempt may take"
    )
