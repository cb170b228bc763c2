"""The seam for observing served traffic off the request path.

Plugins contribute observers through the ``register_traffic_observers`` hook (a monitoring
plugin tracks every request into whylogs profiles from here). The request handler only
appends a :class:`TrafficBatch` to a bounded buffer and returns; one background thread hands
the batches to the observers in rounds (one every 100 ms while traffic comes, none without
it). A slow or failing observer therefore never delays or fails a prediction: when the
buffer is full, batches are dropped and counted.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np

if TYPE_CHECKING:
    from mlplug.registry import ModelVersion
    from mlplug.schema import Schema
    from mlplug.serving.metrics import ServingMetrics
    from mlplug.storage.base import Store
    from mlplug.task import TaskType

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ServingContext:
    """What an observer factory learns about the server it is asked to join."""

    task: str
    task_type: TaskType
    #: The version loaded at start; batches carry the version that answered them, which
    #: changes when the alias moves.
    version: ModelVersion
    schema: Schema
    store: Store


@dataclass(frozen=True)
class TrafficBatch:
    """One answered /predict request."""

    task: str
    version: int
    #: Feature names, the order of the values in each row.
    features: tuple[str, ...]
    #: Validated rows, normalised as ``Schema.validate`` would (see ``mlplug.task.RowModel``).
    rows: list[list[Any]]
    #: Shape (rows, classes), columns in ``schema.classes`` order.
    proba: np.ndarray
    predictions: list[str]
    #: Unix time when the request arrived, and how long predicting it took.
    received_at: float
    latency_seconds: float


class SamplingObserver(Protocol):
    """An observer that sees a sample: the tap asks ``admit`` on the request path (it must
    be cheap: no I/O, no lock), builds and queues the batch only for observers that admit
    it, and reports the rows of the others through ``skipped`` on the observer thread.

    ``admit(rows, passed)`` answers for a request of ``rows`` rows, ``passed`` being the rows
    of the requests left out since the last call: whether this request is observed, and how
    many of the following requests the tap leaves out without asking (0: ask about the next
    one). A sampled-out request thus costs the tap a countdown and a counter, no call."""

    def admit(self, rows: int, passed: int) -> tuple[bool, int]: ...

    def skipped(self, version: int, rows: int) -> None: ...


@runtime_checkable
class TrafficObserver(Protocol):
    def observe(self, batch: TrafficBatch) -> None:
        """Called on the observer thread for every batch, in arrival order."""
        ...

    def close(self) -> None:
        """Called once at shutdown, after the queue has drained: flush what is buffered."""
        ...


#: ``factory(context)`` returns an observer for this server, or ``None`` to stay out.
TrafficObserverFactory = Callable[[ServingContext], "TrafficObserver | None"]


class _Gate:
    """The tap's countdown in front of one sampling observer (request path only)."""

    __slots__ = ("admit", "name", "passed", "skip", "skipped")

    def __init__(self, name: str, admit: Callable[[int, int], tuple[bool, int]]) -> None:
        self.name = name
        self.admit = admit
        #: Requests still to leave out without asking, and their rows so far.
        self.skip = 0
        self.passed = 0
        #: Rows left out per version: running totals, read as a copy by the observer thread
        #: (a C-level dict copy, atomic under the GIL).
        self.skipped: dict[int, int] = {}


class TrafficTap:
    """A bounded buffer in front of the observers, emptied by one daemon thread.

    The request path only appends to a deque (atomic under the GIL, no lock) and wakes the
    thread only when it sleeps; the awake thread empties the buffer every ``interval``
    seconds and goes back to sleep when a round finds nothing. A ``queue.Queue`` would
    notify the thread on every request, and that wake-up and the GIL hand-off it causes cost
    more than a one-row prediction; a thread that polls on a timer costs its wake-ups on an
    idle server too. Each round takes the GIL from the event loop, so rounds are spaced by
    ``interval`` (100 ms: ten a second under load), not by how often batches come.
    """

    def __init__(
        self,
        observers: Mapping[str, TrafficObserver],
        metrics: ServingMetrics,
        maxsize: int = 10_000,
        interval: float = 0.1,
    ) -> None:
        self.observers = dict(observers)
        self.enabled = bool(self.observers)
        self._metrics = metrics
        self._maxsize = maxsize
        self._interval = interval
        self._buffer: deque[tuple[TrafficBatch, tuple[str, ...]]] = deque()
        #: Observers that sample (``admit``/``skipped``) sit behind a gate; the others see
        #: every request.
        self._gates = tuple(
            _Gate(name, o.admit)  # type: ignore[attr-defined]
            for name, o in self.observers.items()
            if callable(getattr(o, "admit", None))
        )
        sampling = {gate.name for gate in self._gates}
        self._everything = tuple(name for name in self.observers if name not in sampling)
        self._all = tuple(self.observers)
        self._reported: dict[tuple[str, int], int] = {}
        #: True while the thread sleeps until traffic comes; the request path then sets
        #: ``_wake`` (once: it clears the flag first), otherwise it does nothing more.
        self._asleep = False
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_error_log: dict[str, float] = {}

    def submit(self, batch: TrafficBatch) -> None:
        """Never blocks: a full buffer drops the batch and counts it."""
        self._enqueue(batch, self._all)

    def admit(self, version: int, rows: int) -> tuple[str, ...]:
        """The request path's call for each answered request of ``rows`` rows: the names of
        the observers that take it (empty: build no batch). Pass the batch to :meth:`put`.

        A sampling observer is asked only when its countdown runs out; until then a request
        is one decrement and one counter."""
        names = self._everything
        for gate in self._gates:
            if gate.skip:
                gate.skip -= 1
                gate.passed += rows
                kept = False
            else:
                try:
                    kept, gate.skip = gate.admit(rows, gate.passed)
                except Exception:
                    kept = False
                    self._failed(gate.name)
                gate.passed = 0
            if kept:
                names += (gate.name,)
            else:
                skipped = gate.skipped
                skipped[version] = skipped.get(version, 0) + rows
        if not names and self._asleep:
            self._wake_thread()  # skipped rows are reported by the thread
        return names

    def put(self, batch: TrafficBatch, names: tuple[str, ...]) -> None:
        """Queue ``batch`` for the observers :meth:`admit` named (never blocks)."""
        self._enqueue(batch, names)

    def offer(self, version: int, rows: int, make: Callable[[], TrafficBatch]) -> None:
        """:meth:`admit`, then ``make()`` and :meth:`put` when an observer takes the request."""
        names = self.admit(version, rows)
        if names:
            self._enqueue(make(), names)

    def _enqueue(self, batch: TrafficBatch, names: tuple[str, ...]) -> None:
        if len(self._buffer) >= self._maxsize:
            self._metrics.observer_dropped.inc()
            return
        self._buffer.append((batch, names))
        if self._asleep:
            self._wake_thread()

    def _wake_thread(self) -> None:
        self._asleep = False
        self._wake.set()

    def start(self) -> None:
        if self.enabled and self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._drain, name="mlplug-traffic-observers", daemon=True)
            self._thread.start()

    def close(self, timeout: float = 10.0) -> None:
        """Let the thread empty the buffer and report skipped rows (up to ``timeout``
        seconds), then close observers."""
        if self._thread is not None:
            self._stop.set()
            self._wake.set()
            self._thread.join(timeout)
            if self._thread.is_alive():
                log.warning(
                    "traffic observers did not drain within %.0f s; %d batches lost",
                    timeout,
                    len(self._buffer),
                )
            self._thread = None
        for name, observer in self.observers.items():
            try:
                observer.close()
            except Exception:
                log.exception("traffic observer %r failed to close", name)

    def _drain(self) -> None:
        """Rounds every ``interval`` while traffic comes; asleep (no timeout) without it."""
        while True:
            stopping = self._stop.wait(self._interval)
            found = self._round()
            if stopping:
                return
            if found:
                continue
            # Nothing came during the last interval: sleep until a request (or close) wakes
            # us. The flag is set before the buffer and the stop are checked again, so a
            # request that appended after the round either sees it (and wakes us) or is seen
            # here; the loop's next wait returns at once when stopping.
            self._wake.clear()
            self._asleep = True
            if self._buffer or self._unreported() or self._stop.is_set():
                self._asleep = False
                continue
            self._wake.wait()

    def _round(self) -> bool:
        """Hand queued batches and skipped rows to the observers; whether there were any."""
        found = False
        while self._buffer:
            found = True
            self._dispatch(*self._buffer.popleft())
        return self._report_skipped() or found

    def _unreported(self) -> bool:
        return any(
            total != self._reported.get((gate.name, version), 0)
            for gate in self._gates
            for version, total in dict(gate.skipped).items()
        )

    def _report_skipped(self) -> bool:
        found = False
        for gate in self._gates:
            for version, total in dict(gate.skipped).items():
                key = (gate.name, version)
                rows = total - self._reported.get(key, 0)
                if rows:
                    found = True
                    self._reported[key] = total
                    self._call(gate.name, "skipped", version, rows)
        return found

    def _dispatch(self, batch: TrafficBatch, names: tuple[str, ...]) -> None:
        for name in names:
            self._call(name, "observe", batch)

    def _call(self, name: str, method: str, *args: Any) -> None:
        try:
            getattr(self.observers[name], method)(*args)
        except Exception:
            self._failed(name)

    def _failed(self, name: str) -> None:
        self._metrics.observer_errors.labels(name).inc()
        now = time.monotonic()
        if now - self._last_error_log.get(name, -1e9) > 60:  # one log line a minute
            self._last_error_log[name] = now
            log.exception("traffic observer %r failed (logged at most once a minute)", name)


def create_observers(
    factories: Mapping[str, TrafficObserverFactory], context: ServingContext
) -> dict[str, TrafficObserver]:
    """Ask every registered factory for an observer; one that fails is logged and left out."""
    observers: dict[str, TrafficObserver] = {}
    for name, factory in factories.items():
        try:
            observer = factory(context)
        except Exception:
            log.exception("traffic observer %r could not be created; serving without it", name)
            continue
        if observer is None:
            continue
        if not isinstance(observer, TrafficObserver):
            log.error(
                "traffic observer %r: factory returned %s, not a TrafficObserver",
                name,
                type(observer).__name__,
            )
            continue
        observers[name] = observer
    if observers:
        log.info("traffic observers: %s", ", ".join(sorted(observers)))
    return observers
