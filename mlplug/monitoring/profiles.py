"""Profiles in the store: each version's ``reference.profile`` (its holdout inputs and
outputs) and one ``<task>/profiles/<version>/<UTC time>-<writer>.profile`` per flush of live
traffic (keys from :mod:`mlplug.layout`).

A profile's key starts with the UTC time of its flush, so a monitor run selects a window by
listing keys, without reading any profile it does not need. Writes are create-only: two
writers never overwrite each other, and a reader never sees half a profile.
"""

from __future__ import annotations

import itertools
import logging
import os
import socket
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

import numpy as np
import pandas as pd

from mlplug import layout
from mlplug.errors import StoreError
from mlplug.monitoring.features import MonitoredColumn, monitoring_frame
from mlplug.monitoring.whylogs_compat import Profile, ProfileBuilder, ProfileError
from mlplug.schema import Schema
from mlplug.storage.base import Store
from mlplug.task import TaskType

log = logging.getLogger(__name__)

#: The value types whylogs may see in a column of each kind (see ``features.py``: numeric
#: columns are floats, or a plugin's integers; categorical ones strings).
_TYPES = {"numeric": {"integral", "fractional"}, "categorical": {"string"}}


@dataclass(frozen=True)
class ProfileRef:
    key: str
    at: datetime


@dataclass(frozen=True)
class SkippedProfile:
    """A profile of the window that was left out of the merge, and why."""

    key: str
    reason: str


@dataclass(frozen=True)
class MergedProfiles:
    #: ``None`` when no profile could be used.
    profile: Profile | None
    #: Keys of the profiles merged, oldest first.
    merged: list[str]
    skipped: list[SkippedProfile]


def list_profiles(
    store: Store, task: str, version: int, since: datetime | None = None, until: datetime | None = None
) -> list[ProfileRef]:
    """Profiles of ``version`` flushed in ``[since, until)``, oldest first."""
    refs = []
    for key in store.list(layout.profiles(task, version)):
        at = layout.profile_time(key)
        if at is None:
            log.warning("ignoring %s: not a profile name mlplug writes", key)
            continue
        if (since is None or at >= since) and (until is None or at < until):
            refs.append(ProfileRef(key, at))
    return sorted(refs, key=lambda r: r.at)


def read_merged(
    store: Store, keys: Sequence[str], progress: Callable[[int, int], None] | None = None
) -> Profile | None:
    """The profiles at ``keys`` merged into one; ``progress(done, total)`` after each.
    Raises on the first unreadable profile; :func:`merge_valid` skips it instead."""
    merged: Profile | None = None
    for done, key in enumerate(keys, start=1):
        profile = Profile.from_bytes(store.get(key))
        merged = profile if merged is None else merged.merge(profile)
        if progress is not None:
            progress(done, len(keys))
    return merged


def merge_valid(
    store: Store,
    keys: Sequence[str],
    columns: Sequence[MonitoredColumn],
    progress: Callable[[int, int], None] | None = None,
) -> MergedProfiles:
    """Merge the profiles at ``keys`` that are readable and hold exactly ``columns`` (the
    version's monitored columns, each with values of its kind); skip and log the others.

    One damaged file must not blind a whole window, and a profile of another schema (a
    writer that fell back to another version's columns, a file copied from elsewhere) must
    not be merged: its columns would read as drift. A store that cannot be read at all still
    raises, so the run retries or fails rather than reporting an empty window.
    """
    merged: Profile | None = None
    used: list[str] = []
    skipped: list[SkippedProfile] = []
    for done, key in enumerate(keys, start=1):
        try:
            profile = Profile.from_bytes(store.get(key))
        except ProfileError as exc:
            skipped.append(SkippedProfile(key, str(exc)))
        except StoreError:
            raise
        else:
            problem = schema_problem(profile, columns)
            if problem is not None:
                skipped.append(SkippedProfile(key, problem))
            else:
                merged = profile if merged is None else merged.merge(profile)
                used.append(key)
        if skipped and skipped[-1].key == key:
            log.warning("skipped traffic profile %s: %s", store.uri(key), skipped[-1].reason)
        if progress is not None:
            progress(done, len(keys))
    return MergedProfiles(merged, used, skipped)


def schema_problem(profile: Profile, columns: Sequence[MonitoredColumn]) -> str | None:
    """Why ``profile`` does not hold ``columns`` (missing, extra or of another type), or
    ``None`` when it does."""
    expected = {c.name: c.kind for c in columns}
    present = set(profile.columns)
    missing = [name for name in expected if name not in present]
    extra = sorted(present - set(expected))
    wrong = []
    for name in (n for n in expected if n in present):
        types = {t for t, n in profile.column_types(name).items() if n}
        if types - _TYPES[expected[name]]:
            wrong.append(f"{name} ({'/'.join(sorted(types))}, expected {expected[name]})")
    problems = []
    if missing:
        problems.append(f"missing columns {', '.join(missing)}")
    if extra:
        problems.append(f"columns the version does not have: {', '.join(extra)}")
    if wrong:
        problems.append(f"columns of another type: {', '.join(wrong)}")
    return f"another schema: {'; '.join(problems)}" if problems else None


def writer_id() -> str:
    """Unique per process: host, pid and a random suffix (pods reuse pids)."""
    host = socket.gethostname().replace("-", "_")[:40] or "host"
    return f"{host}_{os.getpid()}_{uuid.uuid4().hex[:6]}"


def reference_profile(
    task_type: TaskType,
    schema: Schema,
    X: pd.DataFrame,  # noqa: N803
    proba: np.ndarray,
    threshold: float | None,
) -> bytes:
    """The profile a version's live traffic is compared with: its holdout inputs and outputs."""
    return Profile.of(monitoring_frame(task_type, schema, X, proba, threshold=threshold)).to_bytes()


class ProfileWriter:
    """Buffers scored rows per model version and writes one profile per flush.

    Rows arrive one request at a time and are profiled in chunks of ``chunk_rows``, in one
    vectorised whylogs call each, into a running profile per version: logging each request
    on its own costs milliseconds, and holding a whole window of raw rows makes every
    garbage collection of the server walk them. A flush (when ``flush_seconds`` have passed,
    ``max_rows`` rows are waiting, and at ``close``) profiles the rest and writes the
    profile. Thread-safe: ``add`` runs on the observer thread, the timer on its own.
    """

    def __init__(
        self,
        store: Store,
        task_type: TaskType,
        schema: Schema,
        threshold: float | None,
        *,
        flush_seconds: float = 60.0,
        max_rows: int = 50_000,
        chunk_rows: int = 2_000,
        schema_of: Callable[[int], Schema] | None = None,
    ) -> None:
        self.store = store
        self.task_type = task_type
        #: The schema of rows whose version ``schema_of`` does not resolve.
        self.schema = schema
        #: Finds a version's schema: after a hot reload the new version may read other columns.
        self._schema_of = schema_of
        self._schemas: dict[int, Schema] = {}
        self.threshold = threshold
        self.flush_seconds = flush_seconds
        self.max_rows = max_rows
        self.chunk_rows = chunk_rows
        self.writer = writer_id()
        #: The most recent keys written (a long-lived server writes ~1,440 a day).
        self.written: deque[str] = deque(maxlen=1000)
        self._sequence = itertools.count()
        self._lock = threading.Lock()
        self._buffers: dict[int, _Buffer] = {}
        self._last_flush = time.monotonic()
        #: When the first row after the last flush came (``None``: none since).
        self._window_started: float | None = None

    def add(
        self,
        version: int,
        features: Sequence[str],
        rows: list[list],
        proba: np.ndarray,
        predictions: Sequence[str],
    ) -> None:
        with self._lock:
            if self._window_started is None:
                self._window_started = time.monotonic()
            buffer = self._buffers.get(version)
            if buffer is None:
                buffer = self._buffers[version] = _Buffer(tuple(features), self._schema(version))
            buffer.rows.extend(rows)
            buffer.proba.append(np.asarray(proba, dtype=float))
            buffer.predictions.extend(predictions)
            buffer.seen += len(rows)
            if len(buffer.rows) >= self.chunk_rows:
                self._track(buffer)
            full = sum(b.total for b in self._buffers.values()) >= self.max_rows
        if full:
            self.flush()

    def skip(self, version: int, rows: int) -> None:
        """Count ``rows`` answered by ``version`` that were not sampled for profiling: each
        profile records how many rows its profiled ones were drawn from."""
        with self._lock:
            if self._window_started is None:
                self._window_started = time.monotonic()
            buffer = self._buffers.get(version)
            if buffer is None:
                schema = self._schema(version)
                buffer = self._buffers[version] = _Buffer(tuple(schema.feature_names), schema)
            buffer.seen += rows
            buffer.sampled_out += rows

    def _schema(self, version: int) -> Schema:
        if self._schema_of is None:
            return self.schema
        if version not in self._schemas:
            try:
                self._schemas[version] = self._schema_of(version)
            except Exception:  # an unreadable store must not stop profiling
                log.exception("schema of version %d not found; profiling with the first one", version)
                return self.schema
        return self._schemas[version]

    def seconds_to_flush(self) -> float:
        """Seconds until the current window is due: ``flush_seconds`` after its first row (a
        window starts with its traffic), or after the last flush while no row came since."""
        with self._lock:
            started = self._last_flush if self._window_started is None else self._window_started
        return max(0.0, started + self.flush_seconds - time.monotonic())

    def flush_if_due(self) -> None:
        if self.seconds_to_flush() <= 0:
            self.flush()

    def flush(self) -> list[str]:
        """Write what is buffered; a failed write keeps nothing and is logged, not raised."""
        with self._lock:
            buffers, self._buffers = self._buffers, {}
            self._last_flush = time.monotonic()
            self._window_started = None
        keys = []
        for version, buffer in buffers.items():
            self._track(buffer)
            if not buffer.tracked and not buffer.sampled_out:
                continue
            try:
                keys.append(self._write(version, buffer))
            except Exception:
                log.exception("could not write a traffic profile of %d rows", buffer.tracked)
        self.written.extend(keys)
        return keys

    def _track(self, buffer: _Buffer) -> None:
        """Profile the buffer's pending rows into its running profile and drop them."""
        if not buffer.rows:
            return
        rows, proba, predictions = buffer.rows, buffer.proba, buffer.predictions
        buffer.rows, buffer.proba, buffer.predictions = [], [], []
        try:
            X = pd.DataFrame(rows, columns=list(buffer.features))  # noqa: N806
            frame = monitoring_frame(self.task_type, buffer.schema, X, np.concatenate(proba), predictions)
            if buffer.profile is None:
                buffer.profile = ProfileBuilder()
            buffer.profile.track(frame)
            buffer.tracked += len(frame)
        except Exception:
            log.exception("could not profile %d rows of traffic; they are left out", len(rows))

    def _write(self, version: int, buffer: _Buffer) -> str:
        # A window whose rows were all sampled out still writes how many there were.
        profile = buffer.profile or ProfileBuilder()
        # The sequence number keeps two flushes in the same microsecond apart.
        writer = f"{self.writer}_{next(self._sequence)}"
        key = layout.profile(self.task_type.name, version, datetime.now(UTC), writer)
        self.store.put(key, profile.build(seen_rows=buffer.seen).to_bytes(), if_none_match=True)
        log.info("wrote traffic profile %s (%d rows, of %d answered)", key, buffer.tracked, buffer.seen)
        return key


@dataclass
class _Buffer:
    features: tuple[str, ...]
    schema: Schema
    rows: list[list] = field(default_factory=list)
    proba: list[np.ndarray] = field(default_factory=list)
    predictions: list[str] = field(default_factory=list)
    profile: ProfileBuilder | None = None
    tracked: int = 0
    #: Rows answered, profiled or sampled out.
    seen: int = 0
    sampled_out: int = 0

    @property
    def total(self) -> int:
        return self.tracked + len(self.rows)
