"""Prometheus metrics of one server: requests, latency, errors, predictions, the model version.

Each app gets its own ``CollectorRegistry`` (several apps in one test process must not
share counters). Request metrics are taken by a pure ASGI middleware that caches its
labelled children, so a request costs two dictionary look-ups and three increments.
Prediction scores go into a histogram that takes a whole batch at once: observing a 1,000
row batch value by value would cost more than predicting it.
"""

from __future__ import annotations

import bisect
import threading
import time
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, ProcessCollector
from prometheus_client.core import HistogramMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

from mlplug.serving.connection_stats import CONNECTION_STATS

if TYPE_CHECKING:
    from mlplug.serving.model_holder import ReloadStatus

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
SCORE_BUCKETS = (*(round(0.05 * i, 2) for i in range(1, 20)), 1.0)
CONTENT_TYPE = CONTENT_TYPE_LATEST

#: Routes that get their own label; anything else is "other", so that scanners probing
#: random paths cannot blow up the number of series.
ROUTES = ("/predict", "/explain", "/model", "/healthz", "/readyz", "/metrics", "/docs", "/openapi.json")
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
ERROR_REASONS = {
    400: "bad_request",
    401: "unauthorized",
    404: "not_found",
    405: "method_not_allowed",
    413: "too_large",
    422: "invalid",
    429: "busy",
    503: "unavailable",
}


class ScoreHistogram:
    """A histogram that observes arrays in one step, exposed as ``<name>`` with a label."""

    def __init__(self, name: str, documentation: str, buckets: Sequence[float], label: str) -> None:
        self.name = name
        self.documentation = documentation
        self.buckets = list(buckets)
        self.label = label
        self._lock = threading.Lock()
        self._series: dict[str, tuple[np.ndarray, list[float]]] = {}

    def observe_many(self, label_value: str, values: Sequence[float]) -> None:
        with self._lock:
            counts, total = self._series.setdefault(
                label_value, (np.zeros(len(self.buckets) + 1, dtype=np.int64), [0.0])
            )
            if len(values) == 1:  # the common single-row request: skip numpy's set-up cost
                counts[bisect.bisect_left(self.buckets, values[0])] += 1
                total[0] += values[0]
            else:
                array = np.asarray(values, dtype=np.float64)
                np.add.at(counts, np.searchsorted(self.buckets, array, side="left"), 1)
                total[0] += float(array.sum())

    def collect(self) -> Iterable[HistogramMetricFamily]:
        family = HistogramMetricFamily(self.name, self.documentation, labels=[self.label])
        with self._lock:
            snapshot = {k: (c.copy(), t[0]) for k, (c, t) in self._series.items()}
        for value, (counts, total) in sorted(snapshot.items()):
            cumulative = np.cumsum(counts).tolist()
            bounds = [str(b) for b in self.buckets] + ["+Inf"]
            family.add_metric([value], list(zip(bounds, cumulative, strict=True)), total)
        yield family


class ServingMetrics:
    def __init__(self, task: str) -> None:
        self.task = task
        self.registry = CollectorRegistry(auto_describe=True)
        reg = self.registry
        self.requests = Counter(
            "mlplug_requests",
            "HTTP requests by route, method and status",
            ["route", "method", "status"],
            registry=reg,
        )
        self.latency = Histogram(
            "mlplug_request_duration_seconds",
            "Time from request to the end of the response, by route",
            ["route"],
            buckets=LATENCY_BUCKETS,
            registry=reg,
        )
        self.errors = Counter(
            "mlplug_request_errors",
            "Requests answered with an error, by route and reason",
            ["route", "reason"],
            registry=reg,
        )
        self.predictions = Counter(
            "mlplug_predictions",
            "Predicted rows by task, model version and label",
            ["task", "version", "label"],
            registry=reg,
        )
        self.scores = ScoreHistogram(
            "mlplug_prediction_score",
            "Distribution of the reported probability (P(positive) for binary tasks)",
            SCORE_BUCKETS,
            "task",
        )
        reg.register(self.scores)  # type: ignore[arg-type]
        self.model_info = Gauge(
            "mlplug_model_info",
            "The served model version (value 1)",
            ["task", "version", "kind", "ref"],
            registry=reg,
        )
        self.model_version = Gauge(
            "mlplug_model_version", "Version number being served", ["task"], registry=reg
        )
        self.model_loaded = Gauge(
            "mlplug_model_loaded_timestamp_seconds",
            "When the served version was loaded",
            ["task"],
            registry=reg,
        )
        self.reloads = Counter(
            "mlplug_model_reloads",
            "Alias polls that found a new version, by outcome",
            ["task", "outcome"],
            registry=reg,
        )
        self.reload_failing = Gauge(
            "mlplug_model_reload_failing",
            "Alias polls in a row that failed (0 while the poller sees the store)",
            ["task"],
            registry=reg,
        )
        self.reload_error_time = Gauge(
            "mlplug_model_reload_last_error_timestamp_seconds",
            "When the last alias poll failed (0 once one succeeds); the log says why",
            ["task"],
            registry=reg,
        )
        self.model_staleness = Gauge(
            "mlplug_model_staleness_seconds",
            "Seconds since a poll confirmed the served version is the alias's",
            ["task"],
            registry=reg,
        )
        self.keys_staleness = Gauge(
            "mlplug_api_keys_staleness_seconds",
            "Seconds since the API key file was last read",
            registry=reg,
        )
        self.keys_reload_failing = Gauge(
            "mlplug_api_keys_reload_failing", "1 while the API key file cannot be read", registry=reg
        )
        self.ready = Gauge("mlplug_ready", "1 while the server takes traffic, 0 while draining", registry=reg)
        self.observer_dropped = Counter(
            "mlplug_observer_dropped", "Traffic batches dropped because observers fell behind", registry=reg
        )
        self.observer_errors = Counter(
            "mlplug_observer_errors", "Traffic observer calls that raised", ["observer"], registry=reg
        )
        reg.register(CONNECTION_STATS)  # type: ignore[arg-type]
        ProcessCollector(registry=reg)
        self._request_children: dict[tuple[str, str, int], tuple[Any, Any, Any]] = {}
        self._prediction_children: dict[tuple[int, str], Any] = {}
        self._info_labels: tuple[str, ...] | None = None

    def request_children(self, route: str, method: str, status: int) -> tuple[Any, Any, Any]:
        """(request counter, latency histogram, error counter or None) for these labels."""
        key = (route, method, status)
        children = self._request_children.get(key)
        if children is None:
            error = None
            if status >= 400:
                reason = ERROR_REASONS.get(status, "server_error" if status >= 500 else "client_error")
                error = self.errors.labels(route, reason)
            children = (self.requests.labels(route, method, str(status)), self.latency.labels(route), error)
            self._request_children[key] = children
        return children

    def observe_predictions(self, version: int, labels: Sequence[str], scores: Sequence[float]) -> None:
        counts: dict[str, int] = {}
        for label in labels:
            counts[label] = counts.get(label, 0) + 1
        for label, n in counts.items():
            key = (version, label)
            child = self._prediction_children.get(key)
            if child is None:
                child = self._prediction_children[key] = self.predictions.labels(
                    self.task, str(version), label
                )
            child.inc(n)
        self.scores.observe_many(self.task, scores)

    def set_model(self, version: int, kind: str, ref: str) -> None:
        labels = (self.task, str(version), kind, ref)
        if self._info_labels is not None and self._info_labels != labels:
            self.model_info.remove(*self._info_labels)
        self._info_labels = labels
        self.model_info.labels(*labels).set(1)
        self.model_version.labels(self.task).set(version)
        self.model_loaded.labels(self.task).set(time.time())

    def set_freshness(
        self, status: ReloadStatus, model_staleness: float, keys_staleness: float, keys_error: str | None
    ) -> None:
        """Reload health, set at scrape time from the holder's ``ReloadStatus`` and the keys."""
        self.reload_failing.labels(self.task).set(status.consecutive_failures)
        self.reload_error_time.labels(self.task).set(status.last_error_at or 0)
        self.model_staleness.labels(self.task).set(model_staleness)
        self.keys_staleness.set(keys_staleness)
        self.keys_reload_failing.set(1 if keys_error else 0)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


class MetricsMiddleware:
    """Counts every HTTP request and times it to the last byte of the response."""

    def __init__(self, app: Any, metrics: ServingMetrics) -> None:
        self.app = app
        self.metrics = metrics
        self.routes = frozenset(ROUTES)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # what the client sees if the app dies before answering

        async def timed_send(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, timed_send)
        finally:
            path = scope["path"]
            route = path if path in self.routes else "other"
            method = scope["method"] if scope["method"] in METHODS else "other"
            count, latency, error = self.metrics.request_children(route, method, status)
            count.inc()
            latency.observe(time.perf_counter() - started)
            if error is not None:
                error.inc()
