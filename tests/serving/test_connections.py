"""Limits for clients that have not authenticated, against the real server (uvicorn + httptools):
header size and count (431), idle and slow connections (closed, 408), clients that never read
their answers (closed), the connection cap (an idle keep-alive connection makes room, else 503
with a body) and the file-descriptor limit. See mlplug/serving/connections.py."""

from __future__ import annotations

import contextlib
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
WRITE_TIMEOUT = 2.0
RECORD = fraud_records(1)[0]


def serve_with_limits(
    fraud_store: FraudStore, factory: pytest.TempPathFactory, name: str, **limits: float
) -> Iterator[RunningServer]:
    """A fraud server without hot reload and with ``limits`` (``keepalive_timeout=1`` sets
    MLPLUG_KEEPALIVE_TIMEOUT)."""
    state = factory.mktemp(name)
    env = {f"MLPLUG_{key.upper()}": str(value) for key, value in limits.items()}
    with mlplug_server(
        "fraud", state, env=server_env(fraud_store, state / "home", MLPLUG_RELOAD_INTERVAL="0", **env)
    ) as running:
        yield running


@pytest.fixture(scope="module")
def limited(fraud_store: FraudStore, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    yield from serve_with_limits(
        fraud_store,
        tmp_path_factory,
        "limited",
        keepalive_timeout=KEEPALIVE,
        request_timeout=REQUEST_TIMEOUT,
        write_timeout=WRITE_TIMEOUT,
    )


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


def predict_head_and_body() -> tuple[bytes, bytes]:
    """A one-record /predict request, as the head and the body to send apart."""
    body = orjson.dumps(RECORD)
    head = (
        f"POST /predict HTTP/1.1\r\nHost: x\r\nX-API-Key: {API_KEY}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode()
    return head, body


def test_a_slow_body_gets_408(limited: RunningServer) -> None:
    head, body = predict_head_and_body()
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


def metric(server: RunningServer, name: str) -> float:
    """One sample of the server's /metrics (0 when absent)."""
    text = httpx.get(f"{server.url}/metrics", timeout=10).text
    for line in text.splitlines():
        if line.startswith(f"{name} "):
            return float(line.split()[-1])
    return 0.0


WRITE_TIMEOUT_CLOSES = 'mlplug_connections_closed_total{reason="write_timeout"}'


def test_a_client_that_never_reads_its_answers_is_closed_and_others_are_served(
    limited: RunningServer,
) -> None:
    """Pipelined requests with large answers, never read: once the kernel's socket buffers are
    full the server's write buffer passes its high-water mark and stays there; after
    MLPLUG_WRITE_TIMEOUT the connection is closed (its buffer and request task freed), while
    another client is served throughout."""
    before = metric(limited, WRITE_TIMEOUT_CLOSES)
    answer_size = len(httpx.get(f"{limited.url}/openapi.json", timeout=10).content)
    # Enough answers to fill the server's socket send buffer (it grows up to tcp_wmem's
    # maximum) and then the transport's buffer beyond its high-water mark.
    send_buffer_max = int(Path("/proc/sys/net/ipv4/tcp_wmem").read_text().split()[2])
    count = (2 * send_buffer_max + (1 << 20)) // answer_size + 1
    request = b"GET /openapi.json HTTP/1.1\r\nHost: x\r\n\r\n"
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # a small window: fills at once
    sock.connect(address(limited))
    started = time.monotonic()

    def pipeline() -> None:
        with contextlib.suppress(OSError):  # closed by the server: what we want
            sock.sendall(request * count)

    sender = threading.Thread(target=pipeline, daemon=True)
    sender.start()
    latencies = []
    closed_at = None
    try:
        with httpx.Client(headers=AUTH, timeout=30) as client:
            while time.monotonic() - started < WRITE_TIMEOUT + 8:
                sent = time.perf_counter()
                assert client.post(f"{limited.url}/predict", json=RECORD).status_code == 200
                latencies.append(time.perf_counter() - sent)
                if metric(limited, WRITE_TIMEOUT_CLOSES) > before:
                    closed_at = time.monotonic()
                    break
                time.sleep(0.1)
        assert closed_at is not None, "the connection that never reads was not closed"
        # The client sees its connection end (a reset, or EOF after what was already sent).
        _, ended = read_until_closed(sock, timeout=5)
    finally:
        sock.close()
    sender.join(10)
    assert closed_at - started < WRITE_TIMEOUT + 4
    assert ended - started < WRITE_TIMEOUT + 8
    assert latencies and max(latencies) < 1.0, f"slowest prediction {max(latencies):.2f} s"
    assert "MLPLUG_WRITE_TIMEOUT" in limited.log.read_text()


CAP = 4


@pytest.fixture(scope="module")
def capped(fraud_store: FraudStore, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    yield from serve_with_limits(
        fraud_store, tmp_path_factory, "capped", max_connections=CAP, keepalive_timeout=60, request_timeout=60
    )


HEALTHZ = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"


def answer(sock: socket.socket, request: bytes = HEALTHZ) -> int:
    """Send ``request`` on a keep-alive connection and read its whole answer; the status."""
    sock.sendall(request)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed before an answer")
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lengths = [line.split(b":", 1)[1] for line in head.split(b"\r\n") if b"content-length:" in line.lower()]
    length = int(lengths[0])
    while len(body) < length:
        body += sock.recv(65536)
    return int(head.split(b" ", 2)[1])


def connections_closed_for_newcomers(server: RunningServer) -> float:
    return metric(server, 'mlplug_connections_closed_total{reason="idle_for_newcomer"}')


def test_at_the_cap_the_longest_idle_keep_alive_connection_makes_room(capped: RunningServer) -> None:
    before = connections_closed_for_newcomers(capped)
    idle = []
    try:
        for _ in range(CAP):  # every slot held by a keep-alive connection between requests
            sock = socket.create_connection(address(capped), timeout=10)
            assert answer(sock) == 200
            idle.append(sock)
            time.sleep(0.05)  # an order the server sees
        newcomer = socket.create_connection(address(capped), timeout=10)
        idle.append(newcomer)
        assert answer(newcomer) == 200
        data, _ = read_until_closed(idle[0], timeout=5)
        assert data == b"", "the longest idle connection is closed without an answer"
        for sock in idle[1:]:  # the others are untouched and keep serving
            assert answer(sock) == 200
    finally:
        for sock in idle:
            sock.close()
    time.sleep(0.5)
    assert connections_closed_for_newcomers(capped) == before + 1


def test_at_the_cap_with_every_connection_mid_request_a_new_one_gets_503(capped: RunningServer) -> None:
    head, body = predict_head_and_body()
    busy = []
    try:
        for _ in range(CAP):  # each has sent a request's head, its body still to come
            sock = socket.create_connection(address(capped), timeout=10)
            assert answer(sock) == 200  # a keep-alive connection ...
            sock.sendall(head)  # ... now mid-request
            busy.append(sock)
        time.sleep(0.3)
        with socket.create_connection(address(capped), timeout=10) as refused:
            data, _ = read_until_closed(refused, timeout=5)
        status, answer_body = status_and_body(data)
        assert status == 503 and "MLPLUG_MAX_CONNECTIONS" in answer_body["error"]
        for sock in busy:  # every request in progress is still answered
            assert answer(sock, body) == 200
    finally:
        for sock in busy:
            sock.close()
