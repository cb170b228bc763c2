"""A small, fast HTTP load generator: ``mlplug loadtest``.

It keeps ``concurrency`` HTTP/1.1 keep-alive connections, each with one request in flight,
and reports throughput, latency percentiles and errors. Requests are pre-encoded bytes and
responses are parsed by a minimal asyncio protocol (status line, ``Content-Length`` or
chunked body), on uvloop when installed: one core generates several times the load that a
Python web server can answer on one core, so the figures are the server's, not the
client's. A generic client such as httpx spends more per request than the server it
measures.

Every run is bounded: it stops issuing requests at the deadline or after ``max_requests``,
and a request that takes longer than ``timeout`` is counted as an error and its connection
closed. With ``rate``, requests are scheduled at that total rate and latency is measured
from the scheduled time, so a stalled server shows up as latency (no coordinated omission).

When answers carry a ``Server-Timing`` header (W3C Server Timing; ``mlplug serve`` sends
``queue`` and ``model``), the durations it names are kept per request, and with a ``model``
metric so is each request's latency minus its model call: the time spent outside the model
(queueing for a batch, HTTP, parsing, the client). Percentiles of the difference per request
say what a server adds around its model, which percentiles of latency and of model time
taken apart cannot (the slowest requests need not be those with the slowest model calls).
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import ssl
import time
from array import array
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import numpy as np

MAX_CONCURRENCY = 1_000
MAX_DURATION = 3_600.0
#: The ``Server-Timing`` metric that names the model call (what ``mlplug serve`` sends).
MODEL_METRIC = "model"
NAN = float("nan")


class LoadTestError(ValueError):
    pass


@dataclass(frozen=True)
class LoadTestConfig:
    url: str
    concurrency: int = 8
    duration: float = 10.0
    #: Total requests per second over all connections; ``None``: as fast as answers come.
    rate: float | None = None
    max_requests: int = 10_000_000
    #: Request bodies, sent in turn; none means GET.
    bodies: Sequence[bytes] = ()
    headers: dict[str, str] = field(default_factory=dict)
    timeout: float = 10.0
    #: Seconds of load before measuring starts (connection set-up, caches, JIT-like warm-up).
    warmup: float = 0.0

    def check(self) -> None:
        if not 1 <= self.concurrency <= MAX_CONCURRENCY:
            raise LoadTestError(f"concurrency must be 1..{MAX_CONCURRENCY}, got {self.concurrency}")
        if not 0 < self.duration <= MAX_DURATION:
            raise LoadTestError(f"duration must be in (0, {MAX_DURATION:.0f}] seconds, got {self.duration}")
        if self.rate is not None and not 0 < self.rate <= 1e6:
            raise LoadTestError(f"rate must be in (0, 1e6] requests/s, got {self.rate}")
        if self.max_requests < 1:
            raise LoadTestError("max_requests must be at least 1")
        if not 0 < self.timeout <= 600:
            raise LoadTestError("timeout must be in (0, 600] seconds")
        if not 0 <= self.warmup <= 600:
            raise LoadTestError("warmup must be in [0, 600] seconds")
        parts = urlsplit(self.url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise LoadTestError(f"URL must be http:// or https:// with a host, got {self.url!r}")


@dataclass
class LoadTestResult:
    url: str
    concurrency: int
    duration: float
    requests: int
    ok: int
    errors: dict[str, int]
    latencies_ms: np.ndarray
    #: ``Server-Timing`` durations by metric name, one per entry of ``latencies_ms`` (NaN
    #: where that answer did not name the metric).
    server_timing_ms: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def outside_model_ms(self) -> np.ndarray:
        """Per request that reported its model call: latency minus that call."""
        model = self.server_timing_ms.get(MODEL_METRIC)
        if model is None:
            return np.empty(0)
        known = ~np.isnan(model)
        return self.latencies_ms[known] - model[known]

    @property
    def error_count(self) -> int:
        return sum(self.errors.values())

    @property
    def throughput(self) -> float:
        """Successful (2xx) responses per second."""
        return self.ok / self.duration if self.duration > 0 else 0.0

    def percentile(self, q: float) -> float:
        return float(np.percentile(self.latencies_ms, q)) if len(self.latencies_ms) else float("nan")

    def to_dict(self) -> dict[str, Any]:
        lat = self.latencies_ms
        return {
            "url": self.url,
            "concurrency": self.concurrency,
            "duration_s": round(self.duration, 3),
            "requests": self.requests,
            "ok": self.ok,
            "errors": self.error_count,
            "error_kinds": dict(self.errors),
            "throughput_rps": round(self.throughput, 1),
            "latency_ms": {
                "mean": round(float(lat.mean()), 3) if len(lat) else None,
                "p50": round(self.percentile(50), 3),
                "p95": round(self.percentile(95), 3),
                "p99": round(self.percentile(99), 3),
                "max": round(float(lat.max()), 3) if len(lat) else None,
            },
            "server_timing_ms": {name: _stats(ms) for name, ms in self.server_timing_ms.items()},
            "outside_model_ms": _stats(self.outside_model_ms),
        }

    def summary(self) -> str:
        lines = [
            f"{self.url}: {self.requests} requests in {self.duration:.1f} s, concurrency {self.concurrency}",
            f"  throughput  {self.throughput:,.1f} ok/s   errors {self.error_count}",
        ]
        if len(self.latencies_ms):
            lines.append(
                f"  latency ms  p50 {self.percentile(50):.2f}  p95 {self.percentile(95):.2f}  "
                f"p99 {self.percentile(99):.2f}  max {float(self.latencies_ms.max()):.2f}"
            )
        outside = self.outside_model_ms
        described = [(f"server {name}", ms) for name, ms in self.server_timing_ms.items()]
        if len(outside):
            described.append(("outside model", outside))
        for label, ms in described:
            stats = _stats(ms)
            if stats is not None:
                lines.append(
                    f"  {label + ' ms':<22}p50 {stats['p50']:.2f}  p95 {stats['p95']:.2f}  "
                    f"p99 {stats['p99']:.2f}  max {stats['max']:.2f}  ({stats['count']} answers)"
                )
        for kind, count in sorted(self.errors.items()):
            lines.append(f"  error: {kind} x{count}")
        return "\n".join(lines)


def _stats(ms: np.ndarray) -> dict[str, Any] | None:
    """Count, mean and percentiles of the known (not NaN) values; None without any."""
    known = ms[~np.isnan(ms)]
    if not len(known):
        return None
    p50, p95, p99 = np.percentile(known, (50, 95, 99))
    return {
        "count": len(known),
        "mean": round(float(known.mean()), 3),
        "p50": round(float(p50), 3),
        "p95": round(float(p95), 3),
        "p99": round(float(p99), 3),
        "max": round(float(known.max()), 3),
    }


def parse_server_timing(value: str) -> dict[str, float]:
    """Durations in milliseconds by metric name of a ``Server-Timing`` value
    (``queue;dur=0.3, model;desc="batch";dur=369.2``). A metric without a valid duration is
    left out; of a repeated name, the first valid duration counts."""
    found: dict[str, float] = {}
    for metric in value.split(","):
        name, *params = metric.split(";")
        name = name.strip()
        for param in params:
            key, _, number = param.partition("=")
            if key.strip().lower() == "dur":
                with contextlib.suppress(ValueError):  # a malformed duration names nothing
                    found.setdefault(name, float(number.strip().strip('"')))
                break
    return found


class _ClosedError(Exception):
    pass


class _Connection(asyncio.Protocol):
    """One keep-alive connection with at most one request in flight."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.timed_out = False
        self.started = 0.0
        self._waiter: asyncio.Future[int] | None = None
        self._buffer = bytearray()
        self._status = 0
        self._remaining = -1  # body bytes still expected; -1 while reading headers
        self._chunked = False
        self._close_after = False
        #: The last answer's ``Server-Timing`` value(s), unparsed.
        self.timing: bytes | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_exception(_ClosedError("connection closed"))

    @property
    def waiting(self) -> bool:
        return self._waiter is not None and not self._waiter.done()

    def request(self, payload: bytes) -> asyncio.Future[int]:
        assert self.transport is not None
        self._waiter = asyncio.get_running_loop().create_future()
        self._buffer.clear()
        self._remaining = -1
        self.timing = None
        self.started = time.perf_counter()
        self.transport.write(payload)
        return self._waiter

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        if self._remaining < 0:
            end = self._buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            self._parse_head(bytes(self._buffer[:end]))
            del self._buffer[: end + 4]
        if self._chunked:
            self._read_chunks()
        elif len(self._buffer) >= self._remaining:
            self._finish()

    def _parse_head(self, head: bytes) -> None:
        lines = head.split(b"\r\n")
        self._status = int(lines[0].split(b" ", 2)[1])
        self._chunked = False
        self._close_after = False
        self._remaining = 0
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                self._remaining = int(value)
            elif name == b"transfer-encoding" and b"chunked" in value.lower():
                self._chunked = True
            elif name == b"connection" and value.strip().lower() == b"close":
                self._close_after = True
            elif name == b"server-timing":  # may come in several headers: one list
                value = value.strip()
                self.timing = value if self.timing is None else self.timing + b", " + value

    def _read_chunks(self) -> None:
        # Consume complete chunks; the body is done at the zero-size chunk and its CRLF.
        while True:
            end = self._buffer.find(b"\r\n")
            if end < 0:
                return
            size = int(bytes(self._buffer[:end]).split(b";")[0], 16)
            if size == 0:  # last chunk: "0\r\n", optional trailers, then an empty line
                if self._buffer.find(b"\r\n\r\n", end) >= 0:
                    self._finish()
                return
            if len(self._buffer) < end + 2 + size + 2:
                return
            del self._buffer[: end + 2 + size + 2]

    def _finish(self) -> None:
        waiter, self._waiter = self._waiter, None
        if self._close_after and self.transport is not None:
            self.transport.close()
            self.closed = True
        if waiter is not None and not waiter.done():
            waiter.set_result(self._status)

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()


def _encode_requests(config: LoadTestConfig) -> list[bytes]:
    parts = urlsplit(config.url)
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    host = parts.netloc
    headers = {"Host": host, "User-Agent": "mlplug-loadtest", **config.headers}
    if not config.bodies:
        head = f"GET {path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
        return [head.encode("latin-1")]
    out = []
    for body in config.bodies:
        all_headers = {**headers, "Content-Type": "application/json", "Content-Length": str(len(body))}
        head = f"POST {path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in all_headers.items()) + "\r\n"
        out.append(head.encode("latin-1") + body)
    return out


async def _run(config: LoadTestConfig) -> LoadTestResult:
    loop = asyncio.get_running_loop()
    parts = urlsplit(config.url)
    tls = ssl.create_default_context() if parts.scheme == "https" else None
    port = parts.port or (443 if tls else 80)
    payloads = _encode_requests(config)
    latencies = array("d")
    timings: dict[str, array[float]] = {}  # Server-Timing durations, aligned with latencies
    errors: dict[str, int] = {}
    counts = {"issued": 0, "ok": 0, "measured": 0}
    start = time.perf_counter()
    measure_from = start + config.warmup
    deadline = measure_from + config.duration
    connections: list[_Connection] = []

    def error(kind: str, when: float) -> None:
        if when >= measure_from:
            errors[kind] = errors.get(kind, 0) + 1

    async def connect() -> _Connection:
        _, conn = await loop.create_connection(_Connection, parts.hostname, port, ssl=tls)
        connections.append(conn)
        return conn

    async def worker(index: int) -> None:
        conn: _Connection | None = None
        turn = index
        while counts["issued"] < config.max_requests:
            if config.rate is not None:
                scheduled = start + counts["issued"] / config.rate
                if scheduled >= deadline:
                    return
                counts["issued"] += 1
                delay = scheduled - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
            else:
                scheduled = time.perf_counter()
                if scheduled >= deadline:
                    return
                counts["issued"] += 1
            try:
                if conn is None or conn.closed:
                    conn = await connect()
                status = await conn.request(payloads[turn % len(payloads)])
            except (OSError, _ClosedError) as exc:
                error("timeout" if conn is not None and conn.timed_out else _describe(exc), scheduled)
                conn = None
                await asyncio.sleep(0.01)  # a refused connection must not become a busy loop
                continue
            finally:
                turn += config.concurrency
            done = time.perf_counter()
            if scheduled < measure_from:
                continue
            counts["measured"] += 1
            if 200 <= status < 300:
                counts["ok"] += 1
                latencies.append((done - scheduled) * 1000.0)
                if conn.timing is not None or timings:
                    record_timing(conn.timing)
            else:
                error(f"HTTP {status}", scheduled)

    def record_timing(value: bytes | None) -> None:
        measured = len(latencies)
        for name, ms in (parse_server_timing(value.decode("latin-1")) if value else {}).items():
            column = timings.get(name)
            if column is None:  # first seen now: NaN for the answers before
                column = timings[name] = array("d", [NAN]) * (measured - 1)
            column.append(ms)
        for column in timings.values():
            if len(column) < measured:
                column.append(NAN)

    async def watchdog() -> None:
        # One timer for all connections instead of one per request.
        while True:
            await asyncio.sleep(min(0.25, config.timeout / 4))
            now = time.perf_counter()
            for conn in connections:
                if not conn.closed and conn.waiting and now - conn.started > config.timeout:
                    conn.timed_out = True
                    conn.abort()

    guard = asyncio.create_task(watchdog())
    try:
        await asyncio.gather(*(worker(i) for i in range(config.concurrency)))
    finally:
        guard.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await guard
        for conn in connections:
            if conn.transport is not None and not conn.closed:
                conn.transport.close()
    elapsed = min(time.perf_counter(), deadline) - measure_from
    return LoadTestResult(
        url=config.url,
        concurrency=config.concurrency,
        duration=max(elapsed, 1e-9),
        requests=counts["measured"] + sum(v for k, v in errors.items() if not k.startswith("HTTP")),
        ok=counts["ok"],
        errors=errors,
        latencies_ms=np.frombuffer(latencies, dtype=np.float64).copy(),
        server_timing_ms={name: np.frombuffer(ms, dtype=np.float64).copy() for name, ms in timings.items()},
    )


def _describe(exc: BaseException) -> str:
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, _ClosedError):
        return "connection closed"
    return type(exc).__name__


def run_load_test(config: LoadTestConfig) -> LoadTestResult:
    """Run the load test on a fresh event loop (uvloop when installed) and return its result."""
    config.check()
    factory = None
    if importlib.util.find_spec("uvloop") is not None:
        import uvloop

        factory = uvloop.new_event_loop
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(_run(config))


def task_bodies(task_name: str, count: int = 256, batch: int = 1, seed: int = 0) -> list[bytes]:
    """``count`` request bodies of ``batch`` synthetic records each, from the task's generator."""
    import orjson

    from mlplug.plugins import get_plugins
    from mlplug.serving.schemas import example_record

    task = get_plugins().task(task_name)
    data = task.synthesize(count * batch, seed=seed)
    records = [example_record(data.schema, row) for row in data.frame.to_dict(orient="records")]
    usable = [r for r in records if r is not None]
    if not usable:
        raise LoadTestError(f"task {task_name!r}: its synthetic rows cannot be turned into requests")
    if batch == 1:
        return [orjson.dumps(r) for r in usable]
    return [orjson.dumps({"records": usable[i : i + batch]}) for i in range(0, len(usable), batch)]


def read_bodies(path: str) -> list[bytes]:
    """A ``.json`` file is one body; a ``.jsonl`` file is one body per line, sent in turn."""
    from pathlib import Path

    text = Path(path).read_bytes()
    if path.endswith((".jsonl", ".ndjson")):
        bodies = [line for line in text.splitlines() if line.strip()]
    else:
        bodies = [text]
    if not bodies:
        raise LoadTestError(f"{path}: no request bodies")
    return bodies
