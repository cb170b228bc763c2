"""Connection handling for unauthenticated clients and for the drain: uvicorn's httptools
protocol with limits that uvicorn does not enforce for it.

uvicorn's httptools protocol (the fast one) reads request headers without any size limit
(httptools joins a header value's pieces with ``+=``, so one 100 MB header costs gigabytes
of copying), never times out a connection that has not sent a complete request, accepts
connections until the process runs out of file descriptors, and on shutdown closes idle
keep-alive connections at once, dropping a request that was already on its way. This
protocol, per connection:

* at ``max_connections`` open, closes the idle keep-alive connection that has waited longest
  for its next request to admit a new one, and answers 503 with a JSON body only when every
  connection has a request in progress (or has not sent its first one yet);
* closes a connection whose client does not read its answers: one whose transport stays
  paused for writing (its buffer above the high-water mark) for ``write_timeout`` seconds is
  aborted, which frees its buffer and the request task waiting on it;
* closes a connection that sends no request for ``keepalive_timeout`` seconds (fresh or
  between requests), and answers 408 when a request's head and body do not arrive within
  ``request_timeout`` seconds of its first byte (slowloris);
* answers 431 when the request line and headers pass ``max_header_bytes`` or ``max_headers``,
  counting bytes *before* they reach the parser, so a huge header is never buffered;
* on shutdown (SIGTERM) keeps an idle keep-alive connection open for the rest of its
  keep-alive window, answers a request that arrives in it, and marks the last response of
  every connection ``Connection: close``; a request is either answered or never read.

Refusals are written, then the write side is shut down and what the client still sends is
read and dropped for a moment (a "lingering close"), so that the client reads the answer
instead of a connection reset.
"""

from __future__ import annotations

import asyncio
import logging
import resource
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, ClassVar

import httptools
import orjson
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from mlplug.serving.config import ServeSettings, get_serve_settings
from mlplug.serving.connection_stats import CONNECTION_STATS

log = logging.getLogger(__name__)

#: File descriptors kept free for everything but client connections (store, logs, threads).
RESERVED_FDS = 128
#: Refused connections that may linger at once; more are closed straight away.
MAX_LINGERING = 64
#: How long, and for how many bytes, a refused connection is read and dropped before closing.
LINGER_SECONDS = 2.0
LINGER_BYTES = 1 << 20
#: Seconds between log lines about refused connections.
REFUSAL_LOG_INTERVAL = 10.0


@dataclass(frozen=True)
class ConnectionLimits:
    max_connections: int
    max_header_bytes: int
    max_headers: int
    keepalive_timeout: float
    request_timeout: float
    write_timeout: float

    @classmethod
    def from_settings(cls, settings: ServeSettings) -> ConnectionLimits:
        return cls(
            max_connections=usable_connections(settings.max_connections),
            max_header_bytes=settings.max_header_bytes,
            max_headers=settings.max_headers,
            keepalive_timeout=settings.keepalive_timeout,
            request_timeout=settings.request_timeout,
            write_timeout=settings.write_timeout,
        )


def usable_connections(requested: int) -> int:
    """``requested``, or fewer if the process's file-descriptor limit cannot hold them.

    The soft limit is raised to the hard one first (as nginx's worker_rlimit_nofile does);
    a cap above what the process can open would turn refusals back into failed accepts.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    needed = requested + MAX_LINGERING + RESERVED_FDS
    if soft != resource.RLIM_INFINITY and soft < needed:
        target = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):
            pass
    if soft == resource.RLIM_INFINITY or soft >= needed:
        return requested
    usable = max(1, soft - MAX_LINGERING - RESERVED_FDS)
    log.warning(
        "MLPLUG_MAX_CONNECTIONS=%d does not fit the file-descriptor limit (%d): capping "
        "connections at %d; raise the limit (ulimit -n) to allow more",
        requested,
        soft,
        usable,
    )
    return usable


def _refusal(status: int, reason: bytes, message: str, extra: bytes = b"") -> bytes:
    body = orjson.dumps({"error": message})
    return (
        b"HTTP/1.1 %d %s\r\ncontent-type: application/json\r\ncontent-length: %d\r\n"
        b"connection: close\r\n%s\r\n" % (status, reason, len(body), extra) + body
    )


class LogThrottle:
    """At most one log line per :data:`REFUSAL_LOG_INTERVAL` for an event that can come in
    floods (thousands of refused connections a second), counting the events in between."""

    def __init__(self) -> None:
        self.unlogged = 0
        self.logged_at = float("-inf")

    def due(self, now: float) -> int:
        """Count one event; how many to report now, or 0 while the interval runs."""
        self.unlogged += 1
        if now - self.logged_at < REFUSAL_LOG_INTERVAL:
            return 0
        count, self.unlogged, self.logged_at = self.unlogged, 0, now
        return count


class _RequestRefusedError(Exception):
    """Raised inside a parser callback to stop parsing a request that will be refused."""


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with the limits above. ``limits`` comes from
    :func:`guarded_protocol`, or from the environment (``MLPLUG_*``) in worker processes."""

    limits: ClassVar[ConnectionLimits | None] = None
    #: Idle keep-alive connections (served a request, waiting for the next), longest
    #: waiting first; :func:`guarded_protocol` gives each server its own.
    idle: ClassVar[OrderedDict[GuardedHttpToolsProtocol, None]] = OrderedDict()
    #: Refused connections currently lingering (one event loop per process).
    lingering: ClassVar[int] = 0
    refusals: ClassVar[LogThrottle] = LogThrottle()
    write_timeouts: ClassVar[LogThrottle] = LogThrottle()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        cls = type(self)
        if cls.limits is None:
            cls.limits = ConnectionLimits.from_settings(get_serve_settings())
        self.guard: ConnectionLimits = cls.limits
        self.timeout_keep_alive = self.guard.keepalive_timeout
        #: Requests whose body was read to the end on this connection.
        self._completed = 0
        self._head_bytes = 0
        self._reading_head = True
        self._headers_done = False
        self._request_timer: asyncio.TimerHandle | None = None
        self._refusal: bytes | None = None
        self._closing_refused = False
        self._linger_timer: asyncio.TimerHandle | None = None
        self._dropped = 0
        self._draining = False
        self._counted = False
        self._write_timer: asyncio.TimerHandle | None = None

    # -- connections -------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        if len(self.connections) >= self.guard.max_connections and not self._close_an_idle_connection():
            self.transport = transport
            CONNECTION_STATS.refused += 1
            self._log_refusal()
            message = (
                f"server busy: {self.guard.max_connections} connections are open "
                "(MLPLUG_MAX_CONNECTIONS); retry shortly"
            )
            self._refuse(_refusal(503, b"Service Unavailable", message, b"retry-after: 1\r\n"))
            return
        super().connection_made(transport)
        self._counted = True
        CONNECTION_STATS.open += 1
        self._arm_idle_timer()

    def _close_an_idle_connection(self) -> bool:
        """Make room at the cap: close the keep-alive connection that has waited longest for
        its next request. A connection with a request in progress, or one that has not sent
        its first request yet (a client that just connected is about to), is never closed
        for a newcomer: else a flood of connections would cut every client off before its
        request. Closing an idle keep-alive connection is what its timeout would do anyway."""
        while self.idle:
            oldest, _ = self.idle.popitem(last=False)
            if oldest.transport.is_closing() or oldest.flow.write_paused:
                continue
            oldest.transport.close()
            CONNECTION_STATS.closed_for_newcomer += 1
            return True
        return False

    def _log_refusal(self) -> None:
        if count := self.refusals.due(self.loop.time()):
            log.warning(
                "refused %d connection(s): %d open (MLPLUG_MAX_CONNECTIONS=%d)",
                count,
                len(self.connections),
                self.guard.max_connections,
            )

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_request_timer()
        self._cancel_write_timer()
        self.idle.pop(self, None)
        if self._counted:
            self._counted = False
            CONNECTION_STATS.open -= 1
        if self._linger_timer is not None:
            self._linger_timer.cancel()
            self._linger_timer = None
            type(self).lingering -= 1
        super().connection_lost(exc)

    def _arm_idle_timer(self) -> None:
        self._unset_keepalive_if_required()
        self.timeout_keep_alive_task = self.loop.call_later(
            self.guard.keepalive_timeout, self.timeout_keep_alive_handler
        )

    # -- reading -----------------------------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        if self._closing_refused:
            self._drop(len(data))
            return
        if self._reading_head:
            room = self.guard.max_header_bytes - self._head_bytes
            if len(data) > room:
                # Feed only what the limit allows: the rest is body, the next request, or
                # the part of an oversized head that must never be buffered.
                self._head_bytes += max(room, 0)
                completed = self._completed
                if room > 0 and not self._feed(data[:room]):
                    return
                if self._completed == completed and self._reading_head and not self._headers_done:
                    self._refuse(
                        _refusal(
                            431,
                            b"Request Header Fields Too Large",
                            f"request line and headers are larger than {self.guard.max_header_bytes} "
                            "bytes (MLPLUG_MAX_HEADER_BYTES)",
                        ),
                        dropped=len(data) - max(room, 0),
                    )
                    return
                self.data_received(data[room:])
                return
            self._head_bytes += len(data)
        self._feed(data)

    def _feed(self, data: bytes) -> bool:
        """The body of uvicorn's ``data_received``, with refusals raised by callbacks."""
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            if self._refusal is not None:
                self._refuse(self._refusal)
                return False
            self.logger.warning("Invalid HTTP request received.")
            self.send_400_response("Invalid HTTP request received.")
            return False
        except httptools.HttpParserUpgrade:
            if self._should_upgrade():
                self.handle_websocket_upgrade()
            else:
                self._unsupported_upgrade_warning()
            return False
        return not self.transport.is_closing()

    # -- parser callbacks --------------------------------------------------------------------

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self.idle.pop(self, None)
        self._headers_done = False
        # A request has started: the idle timer stops, the request's own deadline starts.
        self._unset_keepalive_if_required()
        self._cancel_request_timer()
        self._request_timer = self.loop.call_later(self.guard.request_timeout, self._request_timed_out)

    def on_headers_complete(self) -> None:
        self._reading_head = False
        self._headers_done = True
        # Counted here rather than per header (a Python call per header costs throughput):
        # the head is already capped in bytes, so parsing the excess costs little.
        if len(self.headers) > self.guard.max_headers:
            self._refusal = _refusal(
                431,
                b"Request Header Fields Too Large",
                f"more than {self.guard.max_headers} request headers (MLPLUG_MAX_HEADERS)",
            )
            raise _RequestRefusedError  # stops the parser; _feed answers the refusal
        super().on_headers_complete()
        if self._draining and self.cycle is not None:
            self.cycle.keep_alive = False  # the answer carries Connection: close

    def on_message_complete(self) -> None:
        self._cancel_request_timer()
        # What follows on this connection is the next request's head.
        self._reading_head = True
        self._head_bytes = 0
        self._completed += 1
        super().on_message_complete()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if self.timeout_keep_alive_task is not None:  # no pipelined request: waiting for one
            self.idle[self] = None

    # -- writing -----------------------------------------------------------------------------

    def pause_writing(self) -> None:
        super().pause_writing()
        if self._write_timer is None:
            self._write_timer = self.loop.call_later(self.guard.write_timeout, self._write_timed_out)

    def resume_writing(self) -> None:
        super().resume_writing()
        self._cancel_write_timer()

    def _cancel_write_timer(self) -> None:
        if self._write_timer is not None:
            self._write_timer.cancel()
            self._write_timer = None

    def _write_timed_out(self) -> None:
        """The client has not read its answers for ``write_timeout``: abort the connection.
        ``close`` would wait for the buffer to drain, which is what never happens; ``abort``
        drops it, and ``connection_lost`` wakes the request task waiting to write."""
        self._write_timer = None
        CONNECTION_STATS.closed_write_timeout += 1
        if count := self.write_timeouts.due(self.loop.time()):
            log.warning(
                "closed %d connection(s) whose client did not read its answers for %g s "
                "(MLPLUG_WRITE_TIMEOUT; this one with %d bytes unsent)",
                count,
                self.guard.write_timeout,
                self.transport.get_write_buffer_size(),
            )
        self.transport.abort()

    # -- deadlines ---------------------------------------------------------------------------

    def _cancel_request_timer(self) -> None:
        if self._request_timer is not None:
            self._request_timer.cancel()
            self._request_timer = None

    def _request_timed_out(self) -> None:
        self._request_timer = None
        if self.transport.is_closing():
            return
        cycle = self.cycle if self._headers_done else None
        if cycle is not None and cycle.response_started:
            self.transport.close()  # answered already (413 say); stop reading the rest
            return
        if cycle is not None:
            # The app waits for the rest of the body: it sees a disconnect, and any answer
            # it still sends goes nowhere.
            cycle.disconnected = True
            cycle.message_event.set()
        self._refuse(
            _refusal(
                408,
                b"Request Timeout",
                f"the request did not arrive within {self.guard.request_timeout:g} s "
                "(MLPLUG_REQUEST_TIMEOUT)",
            )
        )

    # -- refusing and draining ---------------------------------------------------------------

    def _refuse(self, response: bytes, dropped: int = 0) -> None:
        """Answer ``response`` and close after a short lingering read (see the module doc)."""
        self._cancel_request_timer()
        self._unset_keepalive_if_required()
        if self.cycle is not None and not self.cycle.response_complete and self._headers_done is False:
            # A pipelined request's answer is still being written: an interleaved refusal
            # would corrupt it, so only close.
            self.transport.close()
            return
        self._closing_refused = True
        self.transport.write(response)
        cls = type(self)
        if cls.lingering >= MAX_LINGERING or not self.transport.can_write_eof():
            self.transport.close()
            return
        self.transport.write_eof()
        cls.lingering += 1
        self._linger_timer = self.loop.call_later(LINGER_SECONDS, self._end_linger)
        self._drop(dropped)

    def _drop(self, size: int) -> None:
        self._dropped += size
        if self._dropped > LINGER_BYTES:
            self._end_linger()

    def _end_linger(self) -> None:
        if self._linger_timer is not None:
            self._linger_timer.cancel()
            self._linger_timer = None
            type(self).lingering -= 1
        self.transport.close()

    def shutdown(self) -> None:
        """The server is draining: stop keep-alive without dropping a request in transit.

        uvicorn closes an idle connection here at once, which loses a request the client
        sent a moment before. Instead, the connection's keep-alive window runs out as usual
        (a request arriving in it is answered with ``Connection: close``); a connection
        with a request in progress answers it with ``Connection: close`` and then closes.
        """
        self._draining = True
        if self._closing_refused:
            return
        if self.cycle is not None and not self.cycle.response_complete:
            self.cycle.keep_alive = False
        elif self.timeout_keep_alive_task is None and self._reading_head and self._head_bytes == 0:
            self._arm_idle_timer()


def guarded_protocol(settings: ServeSettings) -> type[GuardedHttpToolsProtocol]:
    """The protocol class for one server, with the limits from ``settings``."""
    limits = ConnectionLimits.from_settings(settings)
    return type("MlplugHttpProtocol", (GuardedHttpToolsProtocol,), {"limits": limits, "idle": OrderedDict()})


#: For ``uvicorn.run(..., http=...)`` with several workers: limits from the environment.
PROTOCOL_FROM_ENV = f"{__name__}:GuardedHttpToolsProtocol"
