"""Limits for clients that have not authenticated, against the real server (uvicorn + httptools):
header size and count (431), idle and slow connections (closed, 408), the connection cap (503
with a body) and the file-descriptor limit. See mlplug/serving/connections.py."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson
import pytest

from mlplug.testing.servers import RunningServer, mlplug_server
from tests.serving.support import API_KEY, AUTH, FraudStore, fraud_records, server_env

KEEPALIVE = 1.0
REQUEST_TIMEOUT = 2.0
RECORD = fraud_records(1)[0]


@pytest.fixture(scope="module")
def limited(fraud_store: FraudStore, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    state = tmp_path_factory.mktemp("limited")
    env = server_env(
        fraud_store,
        state / "home",
        MLPLUG_RELOAD_INTERVAL="0",
        MLPLUG_KEEPALIVE_TIMEOUT=str(KEEPALIVE),
        MLPLUG_REQUEST_TIMEOUT=str(REQUEST_TIMEOUT),
    )
    with mlplug_server("fraud", state, env=env) as running:
        yield running


def address(server: RunningServer) -> tuple[str, int]:
    host, port = server.url.removeprefix("http://").split(":")
    return host, int(port)


def rss_mb(server: RunningServer) -> float:
    for line in Path(f"/proc/{server.proc.pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def read_until_closed(sock: socket.socket, timeout: float) -> tuple[bytes, float]:
    """Everything the server sends until it closes, and when it closed (monotonic)."""
    sock.settimeout(timeout)
    data = b""
    try:
        while chunk := sock.recv(65536):
            data += chunk
    except ConnectionResetError:
        pass
    return data, time.monotonic()


def status_and_body(response: bytes) -> tuple[int, dict]:
    head, _, body = response.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), orjson.loads(body)


def test_large_headers_are_431_naming_the_limit(limited: RunningServer) -> None:
    response = httpx.get(f"{limited.url}/healthz", headers={"X-Big": "a" * 20_000}, timeout=10)
    assert response.status_code == 431
    assert "MLPLUG_MAX_HEADER_BYTES" in response.json()["error"]
    assert response.headers["connection"] == "close"
    assert httpx.get(f"{limited.url}/healthz", headers={"X-Big": "a" * 8_000}).status_code == 200


def test_too_many_headers_are_431_naming_the_limit(limited: RunningServer) -> None:
    many = {f"X-H{i}": "1" for i in range(101)}
    response = httpx.get(f"{limited.url}/healthz", headers=many, timeout=10)
    assert response.status_code == 431 and "MLPLUG_MAX_HEADERS" in response.json()["error"]
    fewer = {f"X-H{i}": "1" for i in range(90)}
    assert httpx.get(f"{limited.url}/healthz", headers=fewer).status_code == 200


def test_a_113_mb_header_is_not_buffered_and_does_not_slow_predictions(limited: RunningServer) -> None:
    """Four attackers, one after another for 3 s, each sending one 113 MB header."""
    before = rss_mb(limited)
    most_read = 0
    attacking = threading.Event()
    attacking.set()

    def huge_header() -> None:
        nonlocal most_read
        chunk = b"a" * (1 << 20)
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:
            sent = 0
            with socket.create_connection(address(limited), timeout=10) as sock:
                sock.sendall(b"GET /model HTTP/1.1\r\nHost: x\r\nX-Big: ")
                try:
                    for _ in range(113):
                        sock.sendall(chunk)
                        sent += len(chunk)
                except OSError:
                    pass  # the server stopped reading: what we want
            most_read = max(most_read, sent)
        attacking.clear()

    attackers = [threading.Thread(target=huge_header, daemon=True) for _ in range(4)]
    for attacker in attackers:
        attacker.start()
    latencies = []
    with httpx.Client(headers=AUTH, timeout=30) as client:
        while attacking.is_set():
            started = time.perf_counter()
            assert client.post(f"{limited.url}/predict", json=RECORD).status_code == 200
            latencies.append(time.perf_counter() - started)
    for attacker in attackers:
        attacker.join(30)
    grown = rss_mb(limited) - before
    assert most_read < 32 << 20, f"the server read {most_read >> 20} MB of one header"
    assert grown < 50, f"RSS grew by {grown:.0f} MB"
    assert len(latencies) >= 10 and max(latencies) < 1.0, (
        f"{len(latencies)} predictions, slowest {max(latencies, default=0):.2f} s"
    )


def test_an_idle_connection_is_closed_after_the_keepalive_timeout(limited: RunningServer) -> None:
    with socket.create_connection(address(limited)) as sock:
        opened = time.monotonic()
        data, closed = read_until_closed(sock, timeout=KEEPALIVE + 5)
    assert data == b"" and closed - opened < KEEPALIVE + 1.5


def trickle(server: RunningServer, head: bytes, pieces: Iterator[bytes]) -> tuple[int, dict, float]:
    """Send ``head``, then one piece every 0.3 s; the answer and how long until the close."""
    with socket.create_connection(address(server)) as sock:
        started = time.monotonic()
        sock.sendall(head)
        try:
            for piece in pieces:
                if time.monotonic() - started > REQUEST_TIMEOUT + 3:
                    break
                sock.sendall(piece)
                time.sleep(0.3)
        except OSError:
            pass  # the server closed: what we want
        data, closed = read_until_closed(sock, timeout=5)
    return *status_and_body(data), closed - started


def test_slow_headers_get_408(limited: RunningServer) -> None:
    # One header line every 0.3 s: never complete, always "active" (slowloris).
    lines = (b"X-Slow-%d: 1\r\n" % i for i in range(1000))
    status, body, elapsed = trickle(limited, b"GET /healthz HTTP/1.1\r\nHost: x\r\n", lines)
    assert status == 408 and "MLPLUG_REQUEST_TIMEOUT" in body["error"]
    assert elapsed < REQUEST_TIMEOUT + 4


def test_a_slow_body_gets_408(limited: RunningServer) -> None:
    body = orjson.dumps(RECORD)
    head = (
        f"POST /predict HTTP/1.1\r\nHost: x\r\nX-API-Key: {API_KEY}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode()
    status, answer, elapsed = trickle(limited, head, (bytes([b]) for b in body[:-1]))
    assert status == 408 and "MLPLUG_REQUEST_TIMEOUT" in answer["error"]
    assert elapsed < REQUEST_TIMEOUT + 4
    assert httpx.post(f"{limited.url}/predict", json=RECORD, headers=AUTH).status_code == 200


def test_connections_beyond_the_cap_get_503_and_never_exhaust_file_descriptors(
    fraud_store: FraudStore, tmp_path: Path
) -> None:
    """The server may open 1024 files (a container's limit); 3,000 clients connect and stay idle.
    The cap is lowered to fit the limit, the connections beyond it are answered 503 with a
    body, the idle ones are closed after the keep-alive timeout, and then requests are served.
    """
    env = server_env(fraud_store, tmp_path / "home", MLPLUG_RELOAD_INTERVAL="0", MLPLUG_KEEPALIVE_TIMEOUT="3")
    with mlplug_server("fraud", tmp_path, env=env, open_files=1024) as server:
        clients = []
        try:
            for _ in range(3000):
                clients.append(socket.create_connection(address(server), timeout=10))
            refused, closed_idle = [], 0
            for sock in clients:
                data, _ = read_until_closed(sock, timeout=10)
                if data:
                    refused.append(status_and_body(data))
                else:
                    closed_idle += 1
        finally:
            for sock in clients:
                sock.close()
        response = httpx.post(f"{server.url}/predict", json=RECORD, headers=AUTH, timeout=10)
        log = server.log.read_text()
    assert response.status_code == 200
    assert refused and all(status == 503 for status, _ in refused)
    assert "MLPLUG_MAX_CONNECTIONS" in refused[0][1]["error"]
    assert 0 < closed_idle < 1024 and closed_idle + len(refused) == 3000
    assert "file-descriptor limit" in log and "Too many open files" not in log


def test_worker_processes_enforce_the_same_limits(fraud_store: FraudStore, tmp_path: Path) -> None:
    """``--workers 2``: uvicorn spawns the workers and each builds the protocol from MLPLUG_*."""
    env = server_env(fraud_store, tmp_path / "home", MLPLUG_RELOAD_INTERVAL="0", MLPLUG_MAX_HEADERS="20")
    with mlplug_server("fraud", tmp_path, env=env, args=("--workers", "2")) as server:
        many = {f"X-H{i}": "1" for i in range(25)}
        response = httpx.get(f"{server.url}/healthz", headers=many, timeout=10)
        assert response.status_code == 431 and "more than 20" in response.json()["error"]
        assert httpx.post(f"{server.url}/predict", json=RECORD, headers=AUTH).status_code == 200
