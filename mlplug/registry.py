"""Versioned datasets, immutable model versions and aliases that move with compare-and-swap.

Keys come from :mod:`mlplug.layout`. A model version becomes visible only when its
``metadata.json`` is written, last and create-only; a registration that dies before that
leaves nothing a reader can see. Version numbers are claimed with a create-only ``.claim``
object, so concurrent registrations get distinct numbers.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import logging
import os
import socket
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from mlplug import layout
from mlplug.dataset import Dataset
from mlplug.environment import snapshot
from mlplug.errors import (
    AliasConflictError,
    CorruptFileError,
    NotFoundError,
    PreconditionFailedError,
    StoreError,
)
from mlplug.schema import Schema
from mlplug.storage.base import Store
from mlplug.task import Metrics

log = logging.getLogger(__name__)

CHAMPION = "champion"


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _json(data: Any) -> bytes:
    return json.dumps(data, indent=2, sort_keys=True, default=str).encode()


@dataclass(frozen=True)
class DatasetRef:
    task: str
    hash: str
    rows: int
    source: str
    created_at: str
    schema: dict[str, Any]

    @property
    def short(self) -> str:
        return self.hash[:12]


@dataclass(frozen=True)
class ModelVersion:
    task: str
    version: int
    created_at: str
    kind: str
    params: dict[str, Any]
    metrics: dict[str, float]
    primary_metric: str
    higher_is_better: bool
    threshold: float | None
    dataset_hash: str
    schema: dict[str, Any]
    files: list[str]
    info: dict[str, Any] = field(default_factory=dict)
    #: sha256 of every file (``model/...`` and artifacts) as registered; empty for versions
    #: registered before mlplug recorded them.
    checksums: dict[str, str] = field(default_factory=dict)
    #: The name of the registration that committed it (see ``Registry.register_model``).
    registration: str = ""

    @property
    def score(self) -> float:
        return self.metrics[self.primary_metric]

    def as_metrics(self) -> Metrics:
        return Metrics(
            values=dict(self.metrics),
            primary=self.primary_metric,
            higher_is_better=self.higher_is_better,
            threshold=self.threshold,
        )


@dataclass(frozen=True)
class AliasRecord:
    alias: str
    version: int
    updated_at: str
    previous: int | None
    reason: str
    #: Unique per move: a writer whose response was lost recognises its own write by it.
    write_id: str = ""
    #: Store etag of the alias object when read; pass back to move it with CAS.
    etag: str = ""


class Registry:
    """Datasets, model versions and aliases of all tasks in one store."""

    def __init__(self, store: Store, hook: Any | None = None) -> None:
        self.store = store
        self._hook = hook

    # -- datasets ------------------------------------------------------------------------

    def put_dataset(self, task: str, dataset: Dataset) -> DatasetRef:
        """Store a validated data set once per content hash and return its reference."""
        digest = dataset.content_hash()
        try:
            return self.dataset(task, digest)
        except NotFoundError:
            pass
        buffer = io.BytesIO()
        dataset.frame.to_parquet(buffer, index=False)
        # Same hash, same bytes: if a concurrent writer got there first, its copy serves.
        with contextlib.suppress(PreconditionFailedError):
            self.store.put(
                layout.dataset(task, digest, layout.DATASET_DATA), buffer.getvalue(), if_none_match=True
            )
        ref = DatasetRef(
            task=task,
            hash=digest,
            rows=len(dataset),
            source=dataset.source,
            created_at=_now(),
            schema=dataset.schema.to_dict(),
        )
        try:
            self.store.put(
                layout.dataset(task, digest, layout.DATASET_MANIFEST), _json(asdict(ref)), if_none_match=True
            )
        except PreconditionFailedError:
            return self.dataset(task, digest)
        return ref

    def dataset(self, task: str, digest: str) -> DatasetRef:
        data = json.loads(self.store.get(layout.dataset(task, digest, layout.DATASET_MANIFEST)))
        return DatasetRef(**data)

    def load_dataset(self, task: str, digest: str) -> Dataset:
        ref = self.dataset(task, digest)
        frame = pd.read_parquet(io.BytesIO(self.store.get(layout.dataset(task, digest, layout.DATASET_DATA))))
        # pandas 3 reads text back as its "str" dtype; validated frames hold text as object,
        # and both the models and the content hash see the difference.
        text = [c for c in frame.columns if isinstance(frame[c].dtype, pd.StringDtype)]
        frame = frame.astype(dict.fromkeys(text, object))
        return Dataset(frame, Schema.from_dict(ref.schema), source=f"dataset {digest[:12]}")

    def datasets(self, task: str) -> list[DatasetRef]:
        refs = [
            self.dataset(task, key.split("/")[-2])
            for key in self.store.list(layout.datasets(task))
            if key.endswith(f"/{layout.DATASET_MANIFEST}")
        ]
        return sorted(refs, key=lambda r: r.created_at)

    # -- model versions ------------------------------------------------------------------

    def register_model(
        self,
        task: str,
        model_dir: Path,
        *,
        kind: str,
        params: Mapping[str, Any],
        metrics: Metrics,
        dataset_hash: str,
        schema: Schema,
        artifacts: Mapping[str, bytes] | None = None,
        info: Mapping[str, Any] | None = None,
        registration: str = "",
    ) -> ModelVersion:
        """Upload ``model_dir`` and artifacts as a new immutable version and commit it.

        ``registration`` names this registration (the train flow passes its flow run id): a
        second call with the same name, such as a retry after an error whose write had in
        fact landed, returns the version the first one committed instead of a second one."""
        clashes = [n for n in artifacts or {} if n in layout.RESERVED or layout.is_model_file(n)]
        if clashes:
            raise ValueError(f"artifact names {clashes} are reserved by the registry")
        registration = registration or uuid.uuid4().hex
        done = self._registered(task, registration)
        if done is not None:
            self._notify_registered(done, registration)
            return done
        version = self._claim_version(task, registration)
        self.store.put(layout.registration(task, registration), _json({"version": version}))
        files, checksums = [], {}
        for path in sorted(p for p in model_dir.rglob("*") if p.is_file()):
            name = layout.model_entry(path.relative_to(model_dir).as_posix())
            checksums[name] = sha256_file(path)
            self._create(layout.model_file(task, version, name), path, checksums[name])
            files.append(name)
        for name, data in sorted({layout.ENVIRONMENT: _json(snapshot()), **(artifacts or {})}.items()):
            checksums[name] = hashlib.sha256(data).hexdigest()
            self._create(layout.model_file(task, version, name), data, checksums[name])
            files.append(name)
        mv = ModelVersion(
            task=task,
            version=version,
            created_at=_now(),
            kind=kind,
            params=dict(params),
            metrics={k: float(v) for k, v in metrics.values.items()},
            primary_metric=metrics.primary,
            higher_is_better=metrics.higher_is_better,
            threshold=metrics.threshold,
            dataset_hash=dataset_hash,
            schema=schema.to_dict(),
            files=files,
            info=dict(info or {}),
            checksums=checksums,
            registration=registration,
        )
        # The commit point: until this object exists the version is invisible.
        try:
            self.store.put(
                layout.model_file(task, version, layout.METADATA), _json(asdict(mv)), if_none_match=True
            )
        except PreconditionFailedError:
            if self.model(task, version).registration != registration:  # not our own lost response
                raise
        self._notify_registered(mv, registration)
        return mv

    def _notify_registered(self, mv: ModelVersion, registration: str) -> None:
        """Run the ``after_register`` hooks once per version. A retry that finds its version
        committed (the commit's answer was lost and the step failed before the hooks) runs
        them, unless the attempt that committed got as far as running them; the marker is
        written after the hooks, so only a crash between the two can run them twice."""
        if self._hook is None:
            return
        marker = layout.registration_notified(mv.task, registration)
        if self.store.exists(marker):
            return
        self._call_hook("after_register", task=mv.task, version=mv, store=self.store)
        try:
            self.store.put(marker, _json({"version": mv.version, "at": _now()}), if_none_match=True)
        except PreconditionFailedError:
            pass  # written by this write, retried by the client after a lost answer
        except StoreError as exc:  # the version is committed: do not fail its registration
            log.warning("v%d of %s: could not record that after_register ran: %s", mv.version, mv.task, exc)

    def _registered(self, task: str, registration: str) -> ModelVersion | None:
        """The version a registration of that name committed, if one did."""
        try:
            claimed = json.loads(self.store.get(layout.registration(task, registration)))["version"]
            mv = self.model(task, int(claimed))
        except NotFoundError:
            return None
        return mv if mv.registration == registration else None

    def _create(self, key: str, content: bytes | Path, sha256: str) -> None:
        """Create-only write of a key only this writer creates (a file of a version it
        claimed, a history entry). A key that already holds the same bytes is this write,
        retried by the client after its response was lost; anything else is an error."""
        try:
            if isinstance(content, Path):
                self.store.put_file(key, content, if_none_match=True)
            else:
                self.store.put(key, content, if_none_match=True)
        except PreconditionFailedError:
            if hashlib.sha256(self.store.get(key)).hexdigest() != sha256:
                raise

    def _claim_version(self, task: str, registration: str) -> int:
        # The claim names its registration and is unique, so a retried claim whose first
        # response was lost finds its own bytes rather than skipping to the next number.
        claim = _json(
            {
                "host": socket.gethostname(),
                "pid": os.getpid(),
                "at": _now(),
                "registration": registration,
                "claim": uuid.uuid4().hex,
            }
        )
        version = max(self._claimed(task), default=0) + 1
        while True:
            key = layout.model_file(task, version, layout.CLAIM)
            try:
                self.store.put(key, claim, if_none_match=True)
                return version
            except PreconditionFailedError:
                if self.store.get(key) == claim:
                    return version
                version += 1

    def _claimed(self, task: str) -> Iterator[int]:
        for key in self.store.list(layout.models(task)):
            found = layout.model_version_of(key)
            if found is not None:
                yield found[0]

    def versions(self, task: str) -> list[ModelVersion]:
        """Committed versions, oldest first."""
        # Only <task>/models/<n>/metadata.json commits a version; a model file that happens
        # to be called metadata.json (model/metadata.json) must not.
        found = (layout.model_version_of(key) for key in self.store.list(layout.models(task)))
        numbers = sorted(f[0] for f in found if f is not None and f[1] == layout.METADATA)
        return [self.model(task, n) for n in numbers]

    def model(self, task: str, version: int | str) -> ModelVersion:
        """A committed version by number, or by alias name (``champion``) or ``latest``."""
        # isdecimal() and isdigit() accept other scripts' digits ("²", "٣"); int() does not.
        if isinstance(version, str) and not (version.isascii() and version.isdigit()):
            return self._by_name(task, version)
        try:
            data = json.loads(self.store.get(layout.model_file(task, int(version), layout.METADATA)))
        except NotFoundError:
            known = [v.version for v in self.versions(task)]
            raise NotFoundError(
                f"task {task!r} has no model version {version} in {self.store.url}; "
                f"versions: {known or 'none'}"
            ) from None
        return ModelVersion(**data)

    def _by_name(self, task: str, name: str) -> ModelVersion:
        if name == "latest":
            found = self.versions(task)
            if not found:
                raise NotFoundError(f"task {task!r} has no model versions in {self.store.url}")
            return found[-1]
        if not layout.is_alias_name(name):
            raise NotFoundError(
                f"task {task!r} has no version or alias {name!r} in {self.store.url}; expected a "
                f"version number, 'latest' or an alias ({', '.join(self.aliases(task)) or 'none yet'})"
            )
        record = self.alias(task, name)
        if record is None:
            raise NotFoundError(f"task {task!r} has no alias {name!r} in {self.store.url}")
        return self.model(task, record.version)

    def download_model(self, task: str, version: int | str, dest: Path) -> Path:
        """Copy a version's ``model/`` files into ``dest`` and return it; each file is checked
        against its recorded sha256 (a file that fails is removed and named in the error)."""
        mv = self.model(task, version)  # resolves "champion" and "latest" to a number
        for name in mv.files:
            if layout.is_model_file(name):
                target = dest / layout.model_path(name)
                self.store.get_file(layout.model_file(task, mv.version, name), target)
                try:
                    self.verify(mv, name, sha256_file(target))
                except CorruptFileError:
                    target.unlink(missing_ok=True)
                    raise
        return dest

    def artifact(self, task: str, version: int, name: str) -> bytes:
        """An artifact of a committed version, checked against its recorded sha256."""
        data = self.store.get(layout.model_file(task, version, name))
        self.verify(self.model(task, version), name, hashlib.sha256(data).hexdigest())
        return data

    def verify(self, mv: ModelVersion, name: str, sha256: str) -> None:
        """Raise ``CorruptFileError`` unless ``sha256`` is what ``mv`` recorded for ``name``
        (versions registered before checksums were recorded pass)."""
        expected = mv.checksums.get(name)
        if expected is not None and expected != sha256:
            where = self.store.uri(layout.model_file(mv.task, mv.version, name))
            raise CorruptFileError(
                f"{mv.task} v{mv.version}: {name} is corrupt ({where} has sha256 {sha256[:12]}…, "
                f"{expected[:12]}… was recorded at registration)"
            )

    # -- aliases -------------------------------------------------------------------------

    def aliases(self, task: str) -> list[str]:
        """Names of the task's aliases that exist."""
        return [
            key.rsplit("/", 1)[-1].removesuffix(".json")
            for key in self.store.children(layout.aliases(task))
            if key.endswith(".json")
        ]

    def alias(self, task: str, alias: str = CHAMPION) -> AliasRecord | None:
        try:
            data, etag = self.store.get_with_etag(layout.alias(task, alias))
        except NotFoundError:
            return None
        return AliasRecord(**{**json.loads(data), "etag": etag})

    def set_alias(
        self,
        task: str,
        version: int,
        *,
        expected: AliasRecord | None,
        alias: str = CHAMPION,
        reason: str = "",
        write_id: str = "",
    ) -> AliasRecord:
        """Move ``alias`` to ``version`` if it still is as ``expected`` (``None``: absent).

        Raises ``AliasConflictError`` when another writer moved it first; the caller
        decides whether to re-read and retry. ``write_id`` names this move (default: a new
        random id); a repeated call with the same id and expectation, such as a retry after
        the store was unreachable, recognises a move that landed and returns it, history
        entry included, instead of reporting a conflict.
        """
        if expected is not None and not expected.etag:
            # Without an etag the write would be unconditional and could lose a promotion.
            raise ValueError(f"alias {alias!r}: expected record has no etag; read it with alias()")
        mv = self.model(task, version)  # only committed versions can be promoted
        record = AliasRecord(
            alias=alias,
            version=mv.version,
            updated_at=_now(),
            previous=expected.version if expected else None,
            reason=reason,
            write_id=write_id or uuid.uuid4().hex,
        )
        body = {k: v for k, v in asdict(record).items() if k != "etag"}
        key = layout.alias(task, alias)
        try:
            if expected is None:
                etag = self.store.put(key, _json(body), if_none_match=True)
            else:
                etag = self.store.put(key, _json(body), if_match=expected.etag)
        except PreconditionFailedError:
            # A lost response makes the client retry a write that landed; the retry then
            # fails its own condition. The write id tells that apart from another writer.
            current = self.alias(task, alias)
            if current is None or current.write_id != record.write_id or current.version != mv.version:
                raise AliasConflictError(
                    f"alias {alias!r} of task {task!r} moved while promoting version {version}"
                ) from None
            # The record that landed (its time names the history entry), not this attempt's.
            body = {k: v for k, v in asdict(current).items() if k != "etag"}
            etag = current.etag
        suffix = hashlib.sha256(body["write_id"].encode()).hexdigest()[:8]
        history = layout.alias_history_entry(task, alias, body["updated_at"], version, suffix)
        entry = _json(body)
        self._create(history, entry, hashlib.sha256(entry).hexdigest())
        record = AliasRecord(**{**body, "etag": etag})
        self._call_hook(
            "after_promote", task=task, alias=alias, version=mv, previous=expected, store=self.store
        )
        return record

    def promote(
        self, task: str, version: int, *, alias: str = CHAMPION, reason: str = "", attempts: int = 5
    ) -> AliasRecord:
        """Move ``alias`` to ``version`` whatever it points to now, safely under races."""
        for _ in range(attempts):
            current = self.alias(task, alias)
            try:
                return self.set_alias(task, version, expected=current, alias=alias, reason=reason)
            except AliasConflictError:
                continue
        raise AliasConflictError(f"alias {alias!r} of task {task!r} kept moving; gave up")

    def alias_history(self, task: str, alias: str = CHAMPION) -> list[dict[str, Any]]:
        keys = sorted(self.store.list(layout.alias_history(task, alias)))
        return [json.loads(self.store.get(k)) for k in keys]

    def _call_hook(self, name: str, **kwargs: Any) -> None:
        if self._hook is None:
            return
        try:
            getattr(self._hook, name)(**kwargs)
        except Exception:  # a plugin's side effect must not undo a committed write
            log.exception("mlplug hook %s failed", name)
