"""The served model and its hot swap when the alias moves.

Requests read :attr:`ModelHolder.current` once and use that immutable :class:`ServedModel`
to the end, so a swap can never mix two versions in one answer. A background thread polls
the alias record; when its etag changes it downloads and loads the new version, checks
that it takes the same requests, warms it with one prediction, and only then replaces the
reference (an atomic assignment). Loading happens entirely off the request path, and a
version that fails to load or changes the request contract is refused, logged and counted
while the old one keeps serving.

The poller survives every exception (a store error, EMFILE, a connection reset in the
middle of a GET): it records the error, backs off and tries again. ``status.confirmed_at``
says when a poll last confirmed that the served version is the one the alias names; the
readiness check compares it with the staleness limit, so a server that cannot see its
store stops taking traffic instead of silently serving an old model.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from mlplug.errors import MlplugError, NotFoundError
from mlplug.registry import ModelVersion, Registry
from mlplug.schema import Schema
from mlplug.scoring import load_version
from mlplug.serving.predict import Predictor
from mlplug.serving.schemas import same_features
from mlplug.task import TaskType

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ServedModel:
    version: ModelVersion
    schema: Schema
    predictor: Predictor
    #: The alias record's etag when this version was loaded ("" for a pinned version).
    etag: str
    loaded_at: float = field(default_factory=time.time)


#: The alias poll's interval grows up to this many times the configured one while it fails.
MAX_BACKOFF_FACTOR = 8


@dataclass
class ReloadStatus:
    last_check: float | None = None
    last_error: str | None = None
    #: When the last error happened (None once a poll succeeds again).
    last_error_at: float | None = None
    #: Alias polls in a row that failed.
    consecutive_failures: int = 0
    #: When a poll last confirmed that the served version is the one the alias names.
    confirmed_at: float = field(default_factory=time.time)
    swaps: int = 0

    def failed(self, message: str) -> None:
        self.last_error = message
        self.last_error_at = time.time()
        self.consecutive_failures += 1

    def confirmed(self) -> None:
        self.last_error = None
        self.last_error_at = None
        self.consecutive_failures = 0
        self.confirmed_at = time.time()


def _is_alias(ref: str) -> bool:
    return not ref.isdigit() and ref != "latest"


class ModelHolder:
    """Holds the served version of ``task`` for model reference ``ref`` (alias or number)."""

    def __init__(
        self,
        task: TaskType,
        registry: Registry,
        ref: str,
        *,
        warm_rows: Sequence[Sequence[Any]] = (),
        on_swap: Callable[[ServedModel], None] | None = None,
    ) -> None:
        self.task = task
        self.registry = registry
        self.ref = ref
        self.follows_alias = _is_alias(ref)
        self.status = ReloadStatus()
        #: Rows predicted once by every newly loaded version before it is swapped in.
        self.warm_rows = [list(r) for r in warm_rows]
        self._on_swap = on_swap
        self._current: ServedModel | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._extra_poll: list[Callable[[], None]] = []
        #: An alias etag whose version was refused (other features): not reloaded again.
        self._refused_etag: str | None = None

    @property
    def current(self) -> ServedModel:
        served = self._current
        if served is None:
            raise RuntimeError("no model loaded")
        return served

    @property
    def loaded(self) -> bool:
        return self._current is not None

    # -- loading -------------------------------------------------------------------------

    def load_initial(self) -> ServedModel:
        """Load the version ``ref`` names now; errors propagate (the server must not start)."""
        if self.follows_alias:
            record = self.registry.alias(self.task.name, self.ref)
            if record is None:
                raise NotFoundError(
                    f"task {self.task.name!r} has no alias {self.ref!r} in {self.registry.store.url}; "
                    "train and promote a model first (`mlplug train`), or serve a version number"
                )
            served = self._load(record.version, record.etag)
        else:
            served = self._load(self.ref, "")
        self._swap(served)
        return served

    def _load(self, version: int | str, etag: str) -> ServedModel:
        loaded = load_version(self.task, self.registry, version)
        predictor = Predictor(loaded.model, loaded.schema, loaded.version)
        if self.warm_rows:
            # The first prediction of a fresh model can be slow (lazy initialisation); pay it
            # here, not on a client's request.
            predictor.warm_up(self.warm_rows)
        return ServedModel(version=loaded.version, schema=loaded.schema, predictor=predictor, etag=etag)

    def _swap(self, served: ServedModel) -> None:
        self._current = served
        log.info(
            "serving %s version %d (%s, ref %s)",
            self.task.name,
            served.version.version,
            served.version.kind,
            self.ref,
        )
        if self._on_swap is not None:
            self._on_swap(served)

    def refresh(self) -> str:
        """Check the alias once; returns "unchanged", "swapped", "incompatible" or "failed"."""
        self.status.last_check = time.time()
        current = self.current
        try:
            record = self.registry.alias(self.task.name, self.ref)
        except Exception as exc:  # any store or OS error: the poller must outlive it
            self.status.failed(f"alias read failed: {_describe(exc)}")
            log.warning("%s: could not read alias %r: %s", self.task.name, self.ref, _describe(exc))
            return "failed"
        if record is None:
            self.status.failed(f"alias {self.ref!r} no longer exists in {self.registry.store.url}")
            log.warning(
                "%s: %s; still serving %d", self.task.name, self.status.last_error, current.version.version
            )
            return "failed"
        if record.etag == current.etag:
            self.status.confirmed()
            return "unchanged"
        if record.etag == self._refused_etag:
            return "unchanged"  # refused before and already reported; still not confirmed
        if record.version == current.version.version:
            # Re-promoted to the same version: nothing to load, remember the new etag.
            self._current = ServedModel(current.version, current.schema, current.predictor, record.etag)
            self.status.confirmed()
            return "unchanged"
        try:
            # Metadata first: a version that changes the request contract is refused before
            # anything is downloaded.
            candidate = self.registry.model(self.task.name, record.version)
            if not same_features(Schema.from_dict(candidate.schema), current.schema):
                self.status.failed(
                    f"version {record.version} takes different features than version "
                    f"{current.version.version}; restart or redeploy to change the request contract"
                )
                log.error("%s: %s", self.task.name, self.status.last_error)
                # Remember the etag so that the refusal is logged once, not on every poll; the
                # error stays, and the served version is not confirmed, so it turns stale.
                self._refused_etag = record.etag
                return "incompatible"
            served = self._load(record.version, record.etag)
        except Exception as exc:  # anything a plugin's loader raises; keep serving the old one
            self.status.failed(f"version {record.version} failed to load: {_describe(exc)}")
            log.exception(
                "%s: version %d failed to load; still serving %d",
                self.task.name,
                record.version,
                current.version.version,
            )
            return "failed"
        self._swap(served)
        self.status.swaps += 1
        self.status.confirmed()
        return "swapped"

    def stale_for(self, now: float | None = None) -> float:
        """Seconds since a poll last confirmed the served version (0 when nothing is followed)."""
        if not self.follows_alias:
            return 0.0
        return max(0.0, (now or time.time()) - self.status.confirmed_at)

    # -- polling -------------------------------------------------------------------------

    def also_poll(self, callback: Callable[[], None]) -> None:
        """Run ``callback`` on every poll too (re-reading API keys from a mounted Secret)."""
        self._extra_poll.append(callback)

    def start(self, interval: float, on_result: Callable[[str], None] | None = None) -> None:
        if interval <= 0 or self._thread is not None:
            return
        if not self.follows_alias and not self._extra_poll:
            return
        self._thread = threading.Thread(
            target=self._poll, args=(interval, on_result), name="mlplug-model-reload", daemon=True
        )
        self._thread.start()

    def _poll(self, interval: float, on_result: Callable[[str], None] | None) -> None:
        """Every ``interval``: the callbacks (API keys), and the alias unless it is backing off.

        Nothing raised here may end the thread: a dead poller would serve the same model and
        keys for the life of the process.
        """
        next_alias_check = time.monotonic() + interval
        while not self._stop.wait(interval):
            for callback in self._extra_poll:
                try:
                    callback()
                except Exception:
                    log.exception("poll callback failed")
            if not self.follows_alias or time.monotonic() < next_alias_check:
                continue
            try:
                result = self.refresh()
            except Exception as exc:  # a bug in refresh itself: report it like a store error
                self.status.failed(f"reload failed: {_describe(exc)}")
                log.exception("%s: alias poll failed", self.task.name)
                result = "failed"
            if on_result is not None and result != "unchanged":
                try:
                    on_result(result)
                except Exception:
                    log.exception("reload result callback failed")
            # Back off while the store fails (up to MAX_BACKOFF_FACTOR x the interval), so a
            # struggling store is not hammered; the API keys are still re-read every interval.
            factor = min(2 ** min(self.status.consecutive_failures, 8), MAX_BACKOFF_FACTOR)
            next_alias_check = time.monotonic() + interval * (factor if result == "failed" else 1)

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None


def _describe(exc: BaseException) -> str:
    """One line naming the exception's type (OSError, ResponseStreamingError) and message."""
    if isinstance(exc, MlplugError):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"
