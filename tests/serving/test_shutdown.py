"""SIGTERM with requests in flight: readiness goes false, every in-flight request is answered,
new connections are refused, and the process exits 0."""

from __future__ import annotations

import signal
import socket
import time
from pathlib import Path

import orjson
import pytest

from mlplug.testing.servers import mlplug_server
from tests.serving.support import API_KEY, FraudStore, fraud_records, server_env

IN_FLIGHT = 4


def _read_response(sock: socket.socket) -> tuple[int, dict]:
    data = b""
    while chunk := sock.recv(65536):  # the server closes the connection after answering
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), orjson.loads(body)


def test_sigterm_finishes_in_flight_requests_and_exits_0(fraud_store: FraudStore, tmp_path: Path) -> None:
    env = server_env(fraud_store, tmp_path / "home")
    body = orjson.dumps({"records": fraud_records(20)})
    half = len(body) // 2
    with mlplug_server("fraud", tmp_path, env=env) as server:
        host, port = server.url.removeprefix("http://").split(":")
        head = (
            f"POST /predict HTTP/1.1\r\nHost: {host}\r\nX-API-Key: {API_KEY}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        ).encode()
        # Requests in flight: headers and half of each body sent, the rest still to come.
        clients = [socket.create_connection((host, int(port)), timeout=30) for _ in range(IN_FLIGHT)]
        try:
            for sock in clients:
                sock.sendall(head + body[:half])
            time.sleep(0.3)
            server.proc.send_signal(signal.SIGTERM)
            time.sleep(0.5)
            with pytest.raises(OSError):  # draining: no new connections
                socket.create_connection((host, int(port)), timeout=2).close()
            for sock in clients:
                sock.sendall(body[half:])
            answers = [_read_response(sock) for sock in clients]
        finally:
            for sock in clients:
                sock.close()
        assert server.proc.wait(timeout=30) == 0
        log = server.log.read_text()
    assert [status for status, _ in answers] == [200] * IN_FLIGHT
    assert all(len(answer["predictions"]) == 20 for _, answer in answers)
    assert "draining (SIGTERM)" in log
    assert "Traceback" not in log
