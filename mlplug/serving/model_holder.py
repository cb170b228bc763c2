"""The served model and its hot swap when the alias moves.

Requests read :attr:`ModelHolder.current` once and use that immutable :class:`ServedModel`
to the end, so a swap can never mix two versions in one answer. A background thread polls
the alias record; when its etag changes it downloads and loads the new version, checks
that it takes the same requests, warms it with one prediction, and only then replaces the
reference (an atomic assignment). Loading happens entirely off the request path, and a
version that fails to load or changes the request contract is refused, logged and counted
while the old one keeps serving.
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


@dataclass
class ReloadStatus:
    last_check: float | None = None
    last_error: str | None = None
    swaps: int = 0


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
        except MlplugError as exc:
            self.status.last_error = f"alias read failed: {exc}"
            log.warning("%s: could not read alias %r: %s", self.task.name, self.ref, exc)
            return "failed"
        if record is None or record.etag == current.etag:
            return "unchanged"
        if record.version == current.version.version:
            # Re-promoted to the same version: nothing to load, remember the new etag.
            self._current = ServedModel(current.version, current.schema, current.predictor, record.etag)
            return "unchanged"
        try:
            # Metadata first: a version that changes the request contract is refused before
            # anything is downloaded.
            candidate = self.registry.model(self.task.name, record.version)
            if not same_features(Schema.from_dict(candidate.schema), current.schema):
                self.status.last_error = (
                    f"version {record.version} takes different features than version "
                    f"{current.version.version}; restart or redeploy to change the request contract"
                )
                log.error("%s: %s", self.task.name, self.status.last_error)
                # Remember the etag so that the refusal is logged once, not on every poll.
                self._current = ServedModel(current.version, current.schema, current.predictor, record.etag)
                return "incompatible"
            served = self._load(record.version, record.etag)
        except Exception as exc:  # anything a plugin's loader raises; keep serving the old one
            self.status.last_error = f"version {record.version} failed to load: {exc}"
            log.exception(
                "%s: version %d failed to load; still serving %d",
                self.task.name,
                record.version,
                current.version.version,
            )
            return "failed"
        self._swap(served)
        self.status.swaps += 1
        self.status.last_error = None
        return "swapped"

    # -- polling -------------------------------------------------------------------------

    def also_poll(self, callback: Callable[[], None]) -> None:
        """Run ``callback`` on every poll too (re-reading API keys from a mounted Secret)."""
        self._extra_poll.append(callback)

    def start(self, interval: float, on_result: Callable[[str], None] | None = None) -> None:
        if interval <= 0 or self._thread is not None:
            return
        if not self.follows_alias and not self._extra_poll:
            return

        def poll() -> None:
            while not self._stop.wait(interval):
                for callback in self._extra_poll:
                    try:
                        callback()
                    except Exception:
                        log.exception("poll callback failed")
                if self.follows_alias:
                    result = self.refresh()
                    if on_result is not None and result != "unchanged":
                        on_result(result)

        self._thread = threading.Thread(target=poll, name="mlplug-model-reload", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
