"""A fault-injecting HTTP proxy on loopback, for tests of what mlplug does when the network fails.

Put it between a client and a real server (moto's S3 server, an mlplug server) and tell it
which requests to hurt::

    with FaultProxy(s3_server.endpoint_url) as proxy:
        proxy.inject(Fault("lose_response", method="PUT", path_contains="/aliases/"))
        ...  # the client's endpoint is proxy.url

The proxy understands HTTP/1.1 well enough to act per request on a keep-alive connection
(Content-Length and chunked bodies, ``Expect: 100-continue``, HEAD), which is what a fault in
the middle of a boto3 session needs; it is test support, not a general-purpose proxy.

Kinds of fault, each for the next ``times`` matching requests:

``lose_response``
    the request reaches the server and is processed; the client's connection is closed
    before any byte of the answer (a response lost on the way back).
``reset_mid_body``
    the server's answer starts (status, headers, half the body), then the connection is reset.
``truncate_body``
    as ``reset_mid_body``, but the connection is closed cleanly (FIN): a short body.
``drop_request``
    the connection is closed without forwarding: the server never sees the request.
``stall``
    the request is never answered (a black hole) until the proxy closes.

``blackhole = True`` stalls every new connection without reading it (an endpoint that
accepts TCP and never answers).
"""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
from dataclasses import dataclass, field
from typing import Literal
from urllib.parse import urlsplit

from mlplug.processes import LOOPBACK

FaultKind = Literal["lose_response", "reset_mid_body", "truncate_body", "drop_request", "stall"]
_NO_BODY_STATUSES = {204, 304}
_MAX_HEAD = 1 << 20


@dataclass
class Fault:
    kind: FaultKind
    #: HTTP method to match (any when None).
    method: str | None = None
    #: Substring of the request target (path and query) to match.
    path_contains: str = ""
    #: How many matching requests it hurts.
    times: int = 1
    #: How many it has hurt so far.
    hits: int = 0

    def matches(self, method: str, target: str) -> bool:
        return (
            self.hits < self.times
            and (self.method is None or self.method == method)
            and self.path_contains in target
        )


@dataclass(frozen=True)
class SeenRequest:
    method: str
    target: str
    fault: FaultKind | None


class _ClosedError(Exception):
    """The peer closed the connection."""


@dataclass
class _Reader:
    """Buffered reads from a socket, by line-delimited head or exact length."""

    sock: socket.socket
    buffer: bytearray = field(default_factory=bytearray)

    def _fill(self) -> None:
        chunk = self.sock.recv(65536)
        if not chunk:
            raise _ClosedError
        self.buffer += chunk

    def head(self) -> bytes:
        while (end := self.buffer.find(b"\r\n\r\n")) < 0:
            if len(self.buffer) > _MAX_HEAD:
                raise _ClosedError
            self._fill()
        head = bytes(self.buffer[: end + 4])
        del self.buffer[: end + 4]
        return head

    def exactly(self, size: int) -> bytes:
        while len(self.buffer) < size:
            self._fill()
        data = bytes(self.buffer[:size])
        del self.buffer[:size]
        return data

    def line(self) -> bytes:
        while (end := self.buffer.find(b"\r\n")) < 0:
            self._fill()
        data = bytes(self.buffer[: end + 2])
        del self.buffer[: end + 2]
        return data

    def body(self, headers: dict[str, str]) -> bytes:
        if headers.get("transfer-encoding", "").lower() == "chunked":
            out = bytearray()
            while True:
                size_line = self.line()
                out += size_line
                size = int(size_line.split(b";")[0].strip(), 16)
                if size == 0:
                    while (trailer := self.line()) != b"\r\n":
                        out += trailer
                    return bytes(out + b"\r\n")
                out += self.exactly(size + 2)
        return self.exactly(int(headers.get("content-length", "0")))


def _parse_head(head: bytes) -> tuple[str, dict[str, str]]:
    lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        if ":" in line:
            name, value = line.split(":", 1)
            headers[name.strip().lower()] = value.strip()
    return lines[0], headers


def _without_expect(head: bytes) -> bytes:
    lines = head.split(b"\r\n")
    return b"\r\n".join(line for line in lines if not line.lower().startswith(b"expect:"))


def _reset(sock: socket.socket) -> None:
    """Close with RST rather than FIN: a connection reset, as a dropped NAT entry gives."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


class FaultProxy:
    """HTTP proxy on 127.0.0.1 in front of ``upstream`` (``http://host:port``)."""

    def __init__(self, upstream: str) -> None:
        parts = urlsplit(upstream)
        self.upstream = (parts.hostname or LOOPBACK, parts.port or 80)
        self.blackhole = False
        self.faults: list[Fault] = []
        self.seen: list[SeenRequest] = []
        self._lock = threading.Lock()
        self._closing = threading.Event()
        self._sockets: set[socket.socket] = set()
        self._listener = socket.create_server((LOOPBACK, 0))
        self.port = self._listener.getsockname()[1]
        self.url = f"http://{LOOPBACK}:{self.port}"
        self._thread = threading.Thread(target=self._accept, name="fault-proxy", daemon=True)
        self._thread.start()

    def inject(self, fault: Fault) -> Fault:
        with self._lock:
            self.faults.append(fault)
        return fault

    def clear(self) -> None:
        with self._lock:
            self.faults.clear()
        self.blackhole = False

    def close(self) -> None:
        self._closing.set()
        self._listener.close()
        with self._lock:
            for sock in list(self._sockets):
                _reset(sock)
            self._sockets.clear()

    def __enter__(self) -> FaultProxy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _track(self, sock: socket.socket) -> socket.socket:
        with self._lock:
            self._sockets.add(sock)
        return sock

    def _take_fault(self, method: str, target: str) -> Fault | None:
        with self._lock:
            for fault in self.faults:
                if fault.matches(method, target):
                    fault.hits += 1
                    return fault
        return None

    def _accept(self) -> None:
        while not self._closing.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            self._track(client)
            if self.blackhole:
                continue  # held open, never read: closed with the proxy
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        upstream: socket.socket | None = None
        try:
            from_client = _Reader(client)
            while True:
                head = from_client.head()
                request_line, headers = _parse_head(head)
                method, target = request_line.split(" ")[:2]
                if headers.get("expect", "").lower() == "100-continue":
                    client.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
                    head = _without_expect(head)
                body = from_client.body(headers)
                fault = self._take_fault(method, target)
                with self._lock:
                    self.seen.append(SeenRequest(method, target, fault.kind if fault else None))
                if fault and fault.kind == "drop_request":
                    _reset(client)
                    return
                if fault and fault.kind == "stall":
                    self._closing.wait()
                    return
                if upstream is None:
                    upstream = self._track(socket.create_connection(self.upstream))
                    from_upstream = _Reader(upstream)
                upstream.sendall(head + body)
                response_head = from_upstream.head()
                status_line, response_headers = _parse_head(response_head)
                status = int(status_line.split(" ")[1])
                no_body = method == "HEAD" or status in _NO_BODY_STATUSES or status < 200
                response_body = b"" if no_body else from_upstream.body(response_headers)
                if fault and fault.kind == "lose_response":
                    _reset(client)
                    return
                if fault and fault.kind in ("reset_mid_body", "truncate_body"):
                    client.sendall(response_head + response_body[: len(response_body) // 2])
                    if fault.kind == "reset_mid_body":
                        _reset(client)
                    return  # the finally clause closes the client cleanly
                client.sendall(response_head + response_body)
                if (
                    "close"
                    in (headers.get("connection", "") + response_headers.get("connection", "")).lower()
                ):
                    return
        except (_ClosedError, OSError, ValueError, IndexError):
            return
        finally:
            for sock in (client, upstream):
                if sock is not None:
                    with self._lock:
                        self._sockets.discard(sock)
                    with contextlib.suppress(OSError):
                        sock.close()
