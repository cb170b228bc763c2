"""What the connection handler did, per process, for ``/metrics``.

The handler (:mod:`mlplug.serving.connections`) runs below the app, one event loop per
process; the app's metrics read these numbers when scraped. Kept apart from the handler so
that the metrics need not import uvicorn.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric


@dataclass(eq=False)  # registered in collector registries, which hash it
class ConnectionStats:
    #: Client connections open now.
    open: int = 0
    #: Connections answered 503 because every one of the ``max_connections`` was busy.
    refused: int = 0
    #: Idle keep-alive connections closed to make room for a new one at the cap.
    closed_for_newcomer: int = 0
    #: Connections closed because the client did not read its answers for ``write_timeout``.
    closed_write_timeout: int = 0

    def collect(self) -> Iterable[Metric]:
        yield GaugeMetricFamily("mlplug_connections_open", "Client connections open", value=self.open)
        yield CounterMetricFamily(
            "mlplug_connections_refused",
            "Connections answered 503 at MLPLUG_MAX_CONNECTIONS with no idle connection to close",
            value=self.refused,
        )
        closed = CounterMetricFamily(
            "mlplug_connections_closed",
            "Connections the server closed: an idle keep-alive one to admit a new one at "
            "MLPLUG_MAX_CONNECTIONS (idle_for_newcomer), or one whose client did not read its "
            "answers for MLPLUG_WRITE_TIMEOUT (write_timeout)",
            labels=["reason"],
        )
        closed.add_metric(["idle_for_newcomer"], self.closed_for_newcomer)
        closed.add_metric(["write_timeout"], self.closed_write_timeout)
        yield closed


#: The process's numbers (one event loop per process serves its connections).
CONNECTION_STATS = ConnectionStats()
