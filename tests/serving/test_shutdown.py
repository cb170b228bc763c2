"""SIGTERM with requests in flight: readiness goes false, every in-flight request is answered,
new connections are refused, keep-alive connections end with ``Connection: close`` without
losing a request, and the process exits 0."""

from __future__ import annotations

import select
import signal
import socket
import threading
import time
from dataclasses import dataclass
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


KEEP_ALIVE_CLIENTS = 16


@dataclass
class KeepAliveClient:
    """One keep-alive connection sending /predict back to back, and how it ended."""

    sent: int = 0
    answered: int = 0
    #: A request was sent and the connection ended before its answer (the bug).
    unanswered: int = 0
    #: The last answer said ``Connection: close`` and the server then closed.
    saw_connection_close: bool = False
    #: The server had closed the connection before the next request was written.
    closed_before_send: bool = False
    error: str = ""


def _read_answer(sock: socket.socket, buffer: bytearray) -> tuple[int, dict[bytes, bytes]] | None:
    """Status and headers of one response (its body consumed), or None if the connection ended."""
    while (end := buffer.find(b"\r\n\r\n")) < 0:
        chunk = sock.recv(65536)
        if not chunk:
            return None
        buffer += chunk
    head = bytes(buffer[:end]).split(b"\r\n")
    del buffer[: end + 4]
    headers = dict(line.lower().split(b": ", 1) for line in head[1:])
    size = int(headers.get(b"content-length", b"0"))
    while len(buffer) < size:
        chunk = sock.recv(65536)
        if not chunk:
            return None
        buffer += chunk
    del buffer[:size]
    return int(head[0].split(b" ")[1]), headers


def _closed_by_server(sock: socket.socket) -> bool:
    readable, _, _ = select.select([sock], [], [], 0)
    return bool(readable) and sock.recv(1, socket.MSG_PEEK) == b""


def _keep_sending(host: str, port: int, request: bytes, client: KeepAliveClient) -> None:
    try:
        with socket.create_connection((host, port), timeout=30) as sock:
            buffer = bytearray()
            while True:
                if _closed_by_server(sock):
                    client.closed_before_send = True
                    return
                sock.sendall(request)
                client.sent += 1
                try:
                    answer = _read_answer(sock, buffer)
                except OSError as exc:
                    answer, client.error = None, repr(exc)
                if answer is None:
                    client.unanswered += 1
                    return
                status, headers = answer
                if status != 200:
                    client.error = f"status {status}"
                    return
                client.answered += 1
                if headers.get(b"connection") == b"close":
                    client.saw_connection_close = _read_answer(sock, buffer) is None and not buffer
                    return
    except OSError as exc:  # a reset instead of a clean close, or a send into a dead socket
        client.error = repr(exc)


def test_sigterm_answers_every_request_sent_on_keep_alive_connections(
    fraud_store: FraudStore, tmp_path: Path
) -> None:
    """Clients send back to back on 16 keep-alive connections through SIGTERM. Every request
    written is answered (and counted by the server's access log), and every connection ends
    cleanly: its last answer carries ``Connection: close``, or the server closed it before
    the client wrote another request. Server-processed == client-answered, so no request was
    processed and then lost, or lost before being read."""
    env = server_env(fraud_store, tmp_path / "home", MLPLUG_RELOAD_INTERVAL="0")
    body = orjson.dumps(fraud_records(1)[0])
    with mlplug_server("fraud", tmp_path, env=env, args=("--access-log",)) as server:
        host, port = server.url.removeprefix("http://").split(":")
        request = (
            f"POST /predict HTTP/1.1\r\nHost: {host}\r\nX-API-Key: {API_KEY}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        ).encode() + body
        clients = [KeepAliveClient() for _ in range(KEEP_ALIVE_CLIENTS)]
        threads = [
            threading.Thread(target=_keep_sending, args=(host, int(port), request, c), daemon=True)
            for c in clients
        ]
        for thread in threads:
            thread.start()
        time.sleep(1.5)
        server.proc.send_signal(signal.SIGTERM)
        for thread in threads:
            thread.join(60)
        assert server.proc.wait(timeout=60) == 0
        log = server.log.read_text()
    processed = log.count('"POST /predict HTTP/1.1" 200')
    assert not any(thread.is_alive() for thread in threads)
    assert [c.error for c in clients if c.error] == []
    assert sum(c.unanswered for c in clients) == 0, [c.unanswered for c in clients]
    assert all(c.saw_connection_close or c.closed_before_send for c in clients), clients
    assert any(c.saw_connection_close for c in clients)
    assert sum(c.answered for c in clients) == sum(c.sent for c in clients) == processed
    assert "Traceback" not in log
