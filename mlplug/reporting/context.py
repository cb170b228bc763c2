"""Everything a report section may look at, gathered once per report.

A training or refit report reads the run's :class:`~mlplug.record.TrainingRecord`:
:meth:`ReportContext.for_training` takes it from the flow (before registering, so the
report is stored with the version) and :meth:`ReportContext.from_store` reads it back for a
committed version (``mlplug report``). :meth:`ReportContext.for_monitoring` takes a monitor
run's drift result. The properties below expose the record's parts under the names report
sections use; a part that an older version lacks is empty and adds a line to ``notes``.
"""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import pandas as pd

from mlplug import layout
from mlplug.dataset import Dataset
from mlplug.errors import NotFoundError
from mlplug.record import TrainingRecord, read_artifact
from mlplug.registry import ModelVersion, Registry
from mlplug.schema import Schema
from mlplug.task import BusinessValue, Explanation, Metrics, TaskType

if TYPE_CHECKING:
    from mlplug.monitoring.drift import DriftResult
    from mlplug.plugins import PluginInfo, Plugins
    from mlplug.reporting.doctor import PipCheck

log = logging.getLogger(__name__)

#: How the environment section names the run that recorded its snapshot.
_RUN_WORDS = {"train": "training", "refit": "refit", "monitor": "monitoring"}


@dataclass(kw_only=True)
class ReportContext:
    """Inputs of a report. Every field but ``task`` and ``task_type`` may be empty."""

    task: str
    task_type: TaskType
    #: ``train``, ``refit`` or ``monitor``: which sections apply.
    kind: str = "train"
    #: The committed version; ``None`` while the train flow builds the report it stores.
    version: ModelVersion | None = None
    #: Train and refit: what the run did and found.
    record: TrainingRecord | None = None
    dataset: Dataset | None = None
    #: Holdout predictions: ``y`` and ``<who>:<class>`` probability columns.
    predictions: pd.DataFrame | None = None
    #: Monitor: the comparison of the version's live traffic with its reference profile.
    drift: DriftResult | None = None
    #: Monitor: what the run did about the drift (train and refit: the record's decision).
    monitor_decision: str | None = None
    #: :func:`mlplug.environment.snapshot` of the run, and where it comes from.
    environment: dict[str, Any] = field(default_factory=dict)
    environment_source: str = ""
    #: True when the report is rebuilt after the run (``from_store``): the environment
    #: section then compares the recorded environment with the current one.
    regenerated: bool = False
    #: ``pip check`` of this environment; ``None``: run it when the report needs it.
    pip_check: PipCheck | None = None
    plugins: list[PluginInfo] = field(default_factory=list)
    #: Committed versions of the task before this one, oldest first.
    history: list[ModelVersion] = field(default_factory=list)
    #: Version the ``champion`` alias pointed to when the context was built.
    current_champion: int | None = None
    created_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))
    #: Problems met while gathering inputs, shown at the top of the report.
    notes: list[str] = field(default_factory=list)

    # -- the record's parts, as sections read them -------------------------------------------

    @property
    def candidate_kind(self) -> str | None:
        if self.record is not None:
            return self.record.registered_kind
        return self.version.kind if self.version else None

    @property
    def params(self) -> dict[str, Any]:
        return dict(self.record.registered.params) if self.record else {}

    @property
    def dataset_hash(self) -> str | None:
        if self.record is not None:
            return self.record.dataset_hash
        return self.version.dataset_hash if self.version else None

    @property
    def split_rows(self) -> dict[str, int]:
        return dict(self.record.rows) if self.record else {}

    @property
    def split_method(self) -> str | None:
        return self.record.split_method if self.record else None

    @property
    def holdout(self) -> Metrics | None:
        """Holdout metrics of the registered candidate."""
        return self.record.registered.holdout if self.record else None

    @property
    def other(self) -> Metrics | None:
        """Holdout metrics of the best candidate that was not registered."""
        others = self.record.others if self.record else []
        return others[0].holdout if others else None

    @property
    def other_kind(self) -> str | None:
        others = self.record.others if self.record else []
        return others[0].kind if others else None

    @property
    def validation(self) -> dict[str, Metrics]:
        """Validation metrics per candidate kind."""
        return {c.kind: c.validation for c in self.record.candidates} if self.record else {}

    @property
    def champion(self) -> Metrics | None:
        """The champion's metrics on the same holdout rows."""
        return self.record.champion.metrics if self.record and self.record.champion else None

    @property
    def champion_version(self) -> int | None:
        return self.record.champion.version if self.record and self.record.champion else None

    @property
    def champion_value(self) -> BusinessValue | None:
        return self.record.champion.value if self.record and self.record.champion else None

    @property
    def champion_subset(self) -> tuple[str, Metrics] | None:
        """When the champion was compared on part of the holdout only (it was fitted on the
        rest): on which rows, and the registered model's metrics on them."""
        champ = self.record.champion if self.record else None
        if champ is None or champ.challenger is None:
            return None
        return champ.value_basis, champ.challenger

    @property
    def champion_value_basis(self) -> str:
        return self.record.champion.value_basis if self.record and self.record.champion else ""

    @property
    def trials(self) -> list[dict[str, Any]]:
        """Ray Tune trials as plain dicts (:class:`mlplug.tuning.Trial` fields)."""
        tuning = self.record.tuning if self.record else None
        return [asdict(t) for t in tuning.trials] if tuning else []

    @property
    def tuning_seconds(self) -> float | None:
        tuning = self.record.tuning if self.record else None
        return tuning.seconds if tuning else None

    @property
    def business_value(self) -> BusinessValue | None:
        return self.record.business_value if self.record else None

    @property
    def explanation(self) -> Explanation | None:
        return self.record.explanation if self.record else None

    @property
    def selection(self) -> str | None:
        return self.record.selection if self.record else None

    @property
    def decision(self) -> str | None:
        """Train and refit: the promotion decision. Monitor: what the run did about the drift."""
        return self.record.decision if self.record else self.monitor_decision

    @property
    def trigger(self) -> str | None:
        """Refit: why the run happened (the drift decision that triggered it, the event id)."""
        return self.record.trigger if self.record else None

    # -- derived facts ---------------------------------------------------------------------

    @property
    def schema(self) -> Schema | None:
        if self.dataset is not None:
            return self.dataset.schema
        if self.version is not None:
            return Schema.from_dict(self.version.schema)
        return None

    @property
    def classes(self) -> tuple[str, ...]:
        schema = self.schema
        return schema.classes if schema else ()

    @property
    def threshold(self) -> float | None:
        if self.holdout is not None and self.holdout.threshold is not None:
            return self.holdout.threshold
        return self.version.threshold if self.version else None

    @property
    def title(self) -> str:
        what = {"train": "training report", "refit": "refit report", "monitor": "monitoring report"}
        name = f"{self.task} v{self.version.version}" if self.version else self.task
        return f"{name} — {what.get(self.kind, self.kind + ' report')}"

    # -- constructors ----------------------------------------------------------------------

    @classmethod
    def for_training(
        cls,
        *,
        task_type: TaskType,
        record: TrainingRecord,
        dataset: Dataset | None = None,
        predictions: pd.DataFrame | bytes | None = None,
        registry: Registry | None = None,
        pip_check: PipCheck | None = None,
        plugins: Plugins | None = None,
    ) -> ReportContext:
        """The context of a run that is about to register the record's candidate.

        ``predictions`` is the frame (or the Parquet bytes) of
        :func:`mlplug.training.predictions_table`. With ``registry`` the report compares
        with the task's earlier versions. ``pip_check`` defaults to running ``pip check``
        when the environment section renders; ``plugins`` (whose versions the report lists)
        to the process-wide manager.
        """
        if isinstance(predictions, bytes):
            predictions = pd.read_parquet(io.BytesIO(predictions))
        return cls(
            task=task_type.name,
            task_type=task_type,
            kind=record.run_kind,
            record=record,
            dataset=dataset,
            predictions=predictions,
            **_environment_now(record.run_kind),
            **_tooling(pip_check, plugins),
            **_lineage(registry, task_type.name),
        )

    @classmethod
    def for_monitoring(
        cls,
        *,
        task_type: TaskType,
        version: ModelVersion | None,
        drift: DriftResult,
        registry: Registry | None = None,
        decision: str | None = None,
        notes: Sequence[str] = (),
        pip_check: PipCheck | None = None,
        plugins: Plugins | None = None,
    ) -> ReportContext:
        """The context of a monitor run that compared ``version``'s traffic with its
        reference profile and got ``drift``.

        ``decision`` says what the run did about it (a refit event raised, nothing);
        ``notes`` are problems met while gathering the traffic. With ``registry`` the
        report knows the task's champion and earlier versions. The environment is that of
        the running process; ``pip_check`` and ``plugins`` default as for
        :meth:`for_training`.
        """
        notes = list(notes)
        if drift.task != task_type.name:
            notes.append(f"the drift result is of task {drift.task!r}, not {task_type.name!r}")
        if version is not None and drift.version != version.version:
            notes.append(f"the drift result compares v{drift.version}, not the reported v{version.version}")
        return cls(
            task=task_type.name,
            task_type=task_type,
            kind="monitor",
            version=version,
            drift=drift,
            monitor_decision=decision,
            **_environment_now("monitor"),
            **_tooling(pip_check, plugins),
            **_lineage(registry, task_type.name, before=version.version if version else None),
            created_at=drift.created_at,
            notes=notes,
        )

    @classmethod
    def from_store(
        cls,
        registry: Registry,
        task_type: TaskType,
        version: ModelVersion | int | str = "latest",
        *,
        kind: str | None = None,
        pip_check: PipCheck | None = None,
        plugins: Plugins | None = None,
    ) -> ReportContext:
        """Rebuild the context of a committed version from its record in the store.

        ``version`` is a :class:`ModelVersion`, a number, an alias or ``latest``. ``kind``
        defaults to the recorded run kind. ``pip check`` runs now, in this environment, and
        the report says so.
        """
        task = task_type.name
        mv = version if isinstance(version, ModelVersion) else registry.model(task, version)
        record, notes = TrainingRecord.from_store(registry, mv)
        dataset = None
        try:
            dataset = registry.load_dataset(task, mv.dataset_hash)
        except NotFoundError:
            notes.append(f"dataset {mv.dataset_hash[:12]} is not in the store")
        predictions = read_artifact(registry, mv, layout.PREDICTIONS, notes)
        env = read_artifact(registry, mv, layout.ENVIRONMENT, notes)
        return cls(
            task=task,
            task_type=task_type,
            kind=kind or record.run_kind,
            version=mv,
            record=record,
            dataset=dataset,
            predictions=pd.read_parquet(io.BytesIO(predictions)) if predictions else None,
            environment=json.loads(env) if env else {},
            environment_source=f"recorded when version {mv.version} was trained ({layout.ENVIRONMENT})",
            regenerated=True,
            **_tooling(pip_check, plugins),
            **_lineage(registry, task, before=mv.version),
            created_at=mv.created_at,
            notes=notes,
        )


def _environment_now(kind: str) -> dict[str, Any]:
    """The running process's environment snapshot, for a context built during its run."""
    from mlplug.environment import snapshot

    run = _RUN_WORDS.get(kind, kind)
    return {"environment": snapshot(), "environment_source": f"recorded during this {run} run"}


def _tooling(pip_check: PipCheck | None, plugins: Plugins | None) -> dict[str, Any]:
    """``pip check`` (when given; else the environment section runs it) and the plugins of
    this process: every report lists them as they are where it is built."""
    from mlplug.plugins import get_plugins

    return {"pip_check": pip_check, "plugins": (plugins or get_plugins()).infos()}


def _lineage(registry: Registry | None, task: str, before: int | None = None) -> dict[str, Any]:
    """The task's committed versions (those before ``before``, if given) and its champion."""
    if registry is None:
        return {"history": [], "current_champion": None}
    alias = registry.alias(task)
    versions = registry.versions(task)
    return {
        "history": [v for v in versions if before is None or v.version < before],
        "current_champion": alias.version if alias else None,
    }
