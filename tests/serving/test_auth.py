"""Auth over real HTTP: missing, wrong and right keys in both headers; open health and metrics;
keys from a mounted Secret directory; refusing to start without keys unless --insecure."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from mlplug.cli import app as cli
from mlplug.serving.auth import ApiKeys, AuthConfigError
from mlplug.serving.config import ServeSettings
from mlplug.testing.servers import RunningServer
from tests.serving.support import API_KEY, fraud_records

RECORD = fraud_records(1)[0]
PROTECTED = [("POST", "/predict"), ("POST", "/explain"), ("GET", "/model")]


@pytest.mark.parametrize(("method", "path"), PROTECTED)
@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"X-API-Key": "wrong-key-0123456789abcdef"},
        {"Authorization": "Bearer wrong-key-0123456789abcdef"},
        {"Authorization": f"Basic {API_KEY}"},
        {"Authorization": f"Bearer {API_KEY}x"},
        {"X-API-Key": API_KEY[:-1]},
    ],
    ids=["missing", "wrong-x-api-key", "wrong-bearer", "basic-scheme", "longer", "prefix"],
)
def test_missing_or_wrong_key_is_401(server: RunningServer, method: str, path: str, headers: dict) -> None:
    response = httpx.request(
        method, server.url + path, json=RECORD if method == "POST" else None, headers=headers
    )
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert "API key" in response.json()["error"]


@pytest.mark.parametrize("headers", [{"Authorization": f"Bearer {API_KEY}"}, {"X-API-Key": API_KEY}])
@pytest.mark.parametrize(("method", "path"), PROTECTED)
def test_right_key_in_either_header_is_accepted(
    server: RunningServer, method: str, path: str, headers: dict
) -> None:
    response = httpx.request(
        method, server.url + path, json=RECORD if method == "POST" else None, headers=headers
    )
    assert response.status_code == 200, response.text


@pytest.mark.parametrize("path", ["/healthz", "/readyz", "/metrics", "/openapi.json"])
def test_health_metrics_and_docs_are_open(server: RunningServer, path: str) -> None:
    assert httpx.get(server.url + path).status_code == 200


def test_keys_never_reach_the_log(server: RunningServer) -> None:
    httpx.post(server.url + "/predict", json=RECORD, headers={"X-API-Key": API_KEY})
    httpx.post(server.url + "/predict", json=RECORD, headers={"X-API-Key": "wrong-key-0123456789abcdef"})
    text = server.log.read_text()
    assert "authentication on: 1 API key(s)" in text
    assert API_KEY not in text and "wrong-key-0123456789abcdef" not in text


def test_keys_from_a_mounted_secret_directory(tmp_path: Path) -> None:
    # What the kubelet mounts: one file per key, symlinked through a ..data directory.
    data = tmp_path / "..2026_01_01"
    data.mkdir()
    (data / "client-a").write_text("key-a-0123456789abcdef\n")
    (data / "client-b").write_text("key-b-0123456789abcdef")
    (tmp_path / "..data").symlink_to(data.name)
    for name in ("client-a", "client-b"):
        (tmp_path / name).symlink_to(Path("..data") / name)
    keys = ApiKeys.from_settings(ServeSettings(api_keys_file=tmp_path))
    assert len(keys) == 2 and keys.enabled
    assert keys.allows([(b"x-api-key", b"key-b-0123456789abcdef")])
    assert keys.allows([(b"authorization", b"Bearer key-a-0123456789abcdef")])
    assert not keys.allows([(b"x-api-key", b"key-c-0123456789abcdef")])

    # A rotated Secret: the kubelet swaps ..data; the next poll sees the new key.
    (data / "client-b").write_text("key-rotated-0123456789")
    keys.reload()
    assert keys.allows([(b"x-api-key", b"key-rotated-0123456789")])
    assert not keys.allows([(b"x-api-key", b"key-b-0123456789abcdef")])


@pytest.mark.parametrize("bad", ["replace-me", "changeme", "k3y-too-brief"])
def test_placeholder_and_short_keys_are_refused(bad: str) -> None:
    with pytest.raises(AuthConfigError, match="API key #1") as err:
        ApiKeys.from_settings(ServeSettings(api_keys=bad))
    assert bad not in str(err.value)


def test_no_keys_needs_insecure(caplog: pytest.LogCaptureFixture) -> None:
    with pytest.raises(AuthConfigError, match="--insecure"):
        ApiKeys.from_settings(ServeSettings())
    with caplog.at_level(logging.WARNING, logger="mlplug.serving.auth"):
        keys = ApiKeys.from_settings(ServeSettings(insecure=True))
    assert not keys.enabled and keys.allows([])
    assert "WITHOUT authentication" in caplog.text


def test_serve_without_keys_fails_before_starting(
    fraud_store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in [k for k in os.environ if k.startswith("MLPLUG_API_KEYS")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("MLPLUG_STORE", fraud_store.url)
    result = CliRunner().invoke(cli, ["serve", "fraud", "--port", "1"])
    assert isinstance(result.exception, AuthConfigError), result.output
    assert "--insecure" in str(result.exception)
