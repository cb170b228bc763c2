"""Builtin plugin: every server profiles the traffic it answers into the store.

The ``profiles`` traffic observer feeds each answered ``/predict`` batch into a
:class:`~mlplug.monitoring.profiles.ProfileWriter`, which writes one whylogs profile per
model version every ``MLPLUG_PROFILE_FLUSH_SECONDS`` (sooner once
``MLPLUG_PROFILE_MAX_ROWS`` rows wait) and at shutdown, under
``<task>/profiles/<version>/``. Above ``MLPLUG_PROFILE_RATE`` rows per second it profiles a
uniform sample (:mod:`mlplug.monitoring.sampling`) and counts the rest as seen.
``MLPLUG_MONITORING=false`` keeps it out of the server.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

from mlplug import hookimpl
from mlplug.settings import get_settings

if TYPE_CHECKING:
    from mlplug.monitoring.profiles import ProfileWriter
    from mlplug.monitoring.sampling import AdaptiveSampler
    from mlplug.serving.observe import ServingContext, TrafficBatch, TrafficObserverFactory

log = logging.getLogger(__name__)

#: Seconds ``close`` waits for a timer flush in progress.
CLOSE_WAIT_SECONDS = 30.0


@hookimpl
def register_traffic_observers(register: Callable[[str, TrafficObserverFactory], None]) -> None:
    register("profiles", profile_observer)


def profile_observer(context: ServingContext) -> ProfileObserver | None:
    """The observer for one server, or ``None`` when monitoring is switched off."""
    settings = get_settings()
    if not settings.monitoring:
        log.info("traffic profiles off (MLPLUG_MONITORING=false)")
        return None
    # Imported here: loading plugins must not pull in the monitoring package.
    from mlplug.monitoring.profiles import ProfileWriter
    from mlplug.monitoring.sampling import AdaptiveSampler
    from mlplug.monitoring.whylogs_compat import preload
    from mlplug.registry import Registry
    from mlplug.schema import Schema

    # Load whylogs now, before the server reports ready: imported by the first flush, it
    # competes with live requests for the GIL and the core, and slows them for seconds.
    preload()
    registry = Registry(context.store)

    def schema_of(version: int) -> Schema:
        # A hot reload may serve a version with other columns; its schema is in the store.
        return Schema.from_dict(registry.model(context.task, version).schema)

    writer = ProfileWriter(
        context.store,
        context.task_type,
        context.schema,
        context.version.threshold,
        flush_seconds=settings.profile_flush_seconds,
        max_rows=settings.profile_max_rows,
        schema_of=schema_of,
    )
    sampler = AdaptiveSampler(settings.profile_rate, settings.profile_sample)
    log.info(
        "traffic profiles: every request up to %g rows/s, a uniform sample above (share %g)",
        settings.profile_rate,
        settings.profile_sample,
    )
    return ProfileObserver(writer, sampler=sampler)


class ProfileObserver:
    """A :class:`~mlplug.serving.observe.TrafficObserver` that buffers batches in a writer.

    ``observe`` only appends (profiling happens in chunks and at flush); a daemon timer
    flushes the writer ``flush_seconds`` after the first rows of a window came, so the last
    rows are written even when traffic stops. The timer sleeps without a timeout while
    nothing is buffered: an idle server has no wake-ups, and one that never gets traffic, or
    an app that is never started, has no thread.
    """

    def __init__(self, writer: ProfileWriter, sampler: AdaptiveSampler | None = None) -> None:
        from mlplug.monitoring.sampling import AdaptiveSampler

        self.writer = writer
        #: Without one, every request is profiled.
        self.sampler = sampler or AdaptiveSampler(rate=0)
        self._stop = threading.Event()
        #: Set when rows (profiled or sampled out) wait for a flush.
        self._buffered = threading.Event()
        self._timer: threading.Thread | None = None

    def observe(self, batch: TrafficBatch) -> None:
        self.writer.add(batch.version, batch.features, batch.rows, batch.proba, batch.predictions)
        self._rows_waiting()

    def admit(self, rows: int, passed: int) -> tuple[bool, int]:
        """Asked by the tap on the request path: whether this request is profiled, and how
        many requests to leave out before asking again (``passed``: their rows so far)."""
        return self.sampler.admit(rows, passed)

    def skipped(self, version: int, rows: int) -> None:
        """Rows the sampler left out, counted so each profile says what it was drawn from."""
        self.writer.skip(version, rows)
        self._rows_waiting()

    def _rows_waiting(self) -> None:
        # Only the tap's thread calls this, so the timer is started once.
        if self._timer is None and not self._stop.is_set():
            self._timer = threading.Thread(target=self._run, name="mlplug-profile-flush", daemon=True)
            self._timer.start()
        if not self._buffered.is_set():
            self._buffered.set()

    def close(self) -> None:
        self._stop.set()
        self._buffered.set()
        if self._timer is not None:
            # Let a flush in progress finish; the writer is thread-safe, so a stuck store
            # only delays shutdown by this much before the final flush.
            self._timer.join(CLOSE_WAIT_SECONDS)
        self.writer.flush()

    def _run(self) -> None:
        # close() sets the stop before waking us: checked after every clear of the event.
        while not self._stop.is_set():
            self._buffered.wait()
            # Re-read after each wait: a flush at MLPLUG_PROFILE_MAX_ROWS starts a new window.
            while (due_in := self.writer.seconds_to_flush()) > 0:
                if self._stop.wait(due_in):
                    return  # close() writes what is buffered
            if self._stop.is_set():
                return
            # Cleared before the flush: rows added while it writes set it again.
            self._buffered.clear()
            try:
                self.writer.flush()
            except Exception:  # flush logs store errors; anything else must not end the timer
                log.exception("traffic profile flush failed")
