"""Everything a report section may look at, gathered once per report.

Three ways to build it: :meth:`ReportContext.from_training` from the objects a training or
refit run holds in memory (the flow, before registering, so the report is stored with the
version), :meth:`ReportContext.from_store` from what the store holds for a committed
version (``mlplug report``), and :meth:`ReportContext.for_monitoring` from a monitor run's
drift result. The first two give the same fields; an artifact that an older version lacks
leaves its field empty and adds a line to ``notes``.
"""

from __future__ import annotations

import ast
import io
import json
import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import pandas as pd

from mlplug.dataset import Dataset
from mlplug.errors import NotFoundError
from mlplug.registry import ModelVersion, Registry
from mlplug.schema import Schema
from mlplug.task import BusinessValue, Explanation, Metrics, TaskType

if TYPE_CHECKING:
    from mlplug.monitoring.drift import DriftResult
    from mlplug.plugins import PluginInfo, Plugins
    from mlplug.reporting.doctor import PipCheck
    from mlplug.training import Candidate, ChampionScore, Split
    from mlplug.tuning import TuneResult

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
    #: Kind of the registered candidate (``model`` or ``baseline``) and its parameters.
    candidate_kind: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    dataset: Dataset | None = None
    dataset_hash: str | None = None
    #: Rows per part: ``train``, ``valid``, ``holdout``; and how the split was made.
    split_rows: dict[str, int] = field(default_factory=dict)
    split_method: str | None = None
    #: Holdout metrics of the registered candidate, the other candidate and the champion
    #: (scored on the same holdout rows).
    holdout: Metrics | None = None
    other: Metrics | None = None
    other_kind: str | None = None
    champion: Metrics | None = None
    champion_version: int | None = None
    #: Validation metrics per candidate kind.
    validation: dict[str, Metrics] = field(default_factory=dict)
    #: Ray Tune trials as plain dicts (:class:`mlplug.tuning.Trial` fields).
    trials: list[dict[str, Any]] = field(default_factory=list)
    tuning_seconds: float | None = None
    business_value: BusinessValue | None = None
    #: The champion's value model result, and on which rows it was measured.
    champion_value: BusinessValue | None = None
    champion_value_basis: str = ""
    explanation: Explanation | None = None
    #: :func:`mlplug.environment.snapshot` of the training run, and where it comes from.
    environment: dict[str, Any] = field(default_factory=dict)
    environment_source: str = ""
    #: True when the report is rebuilt after the run (``from_store``): the environment
    #: section then compares the recorded environment with the current one.
    regenerated: bool = False
    pip_check: PipCheck | None = None
    plugins: list[PluginInfo] = field(default_factory=list)
    #: Committed versions of the task before this one, oldest first.
    history: list[ModelVersion] = field(default_factory=list)
    #: Version the ``champion`` alias pointed to when the context was built.
    current_champion: int | None = None
    #: Holdout predictions: ``y`` and ``<who>:<class>`` probability columns.
    predictions: pd.DataFrame | None = None
    selection: str | None = None
    #: Train and refit: the promotion decision. Monitor: what the run did about the drift.
    decision: str | None = None
    #: Refit: why the run happened (the drift decision that triggered it, the event id).
    trigger: str | None = None
    #: Monitor: the comparison of the version's live traffic with its reference profile.
    drift: DriftResult | None = None
    created_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))
    #: Problems met while gathering inputs, shown at the top of the report.
    notes: list[str] = field(default_factory=list)

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
    def from_training(
        cls,
        *,
        task_type: TaskType,
        dataset: Dataset,
        split: Split,
        registered: Candidate,
        other: Candidate,
        holdout_metrics: Metrics,
        other_metrics: Metrics,
        champion: ChampionScore,
        business_value: BusinessValue,
        explanation: Explanation | None,
        tuned: TuneResult | None,
        predictions: pd.DataFrame | bytes | None,
        registry: Registry | None = None,
        dataset_hash: str | None = None,
        selection: str | None = None,
        decision: str | None = None,
        kind: str = "train",
        trigger: str | None = None,
        pip_check: PipCheck | None = None,
        plugins: Plugins | None = None,
    ) -> ReportContext:
        """The context of a run that is about to register ``registered``.

        ``predictions`` is the frame (or the Parquet bytes) of
        :func:`mlplug.training.predictions_table`. With ``registry`` the report compares
        with the task's earlier versions. ``kind`` is ``train`` or ``refit``; ``trigger``
        says why a refit ran. ``pip_check`` defaults to running ``pip check``; ``plugins``
        (whose versions the report lists) to the process-wide manager.
        """
        notes: list[str] = []
        champion_value, basis = None, ""
        if champion.proba is not None and champion.metrics is not None:
            # Same rows, same value model: the only fair money comparison with the champion.
            try:
                champion_value = task_type.business_value(split.holdout, champion.proba, champion.metrics)
                basis = "on the same holdout rows"
            except Exception as exc:  # the report must not fail the run
                log.warning("business value of the champion failed: %s", exc)
                notes.append(f"the champion's business value could not be computed: {exc}")
        if isinstance(predictions, bytes):
            predictions = pd.read_parquet(io.BytesIO(predictions))
        return cls(
            task=task_type.name,
            task_type=task_type,
            kind=kind,
            candidate_kind=registered.kind,
            params=dict(registered.params),
            dataset=dataset,
            dataset_hash=dataset_hash,
            split_rows={"train": len(split.train), "valid": len(split.valid), "holdout": len(split.holdout)},
            split_method=split.method,
            holdout=holdout_metrics,
            other=other_metrics,
            other_kind=other.kind,
            champion=champion.metrics,
            champion_version=champion.version.version if champion.version else None,
            validation={registered.kind: registered.valid_metrics, other.kind: other.valid_metrics},
            trials=[asdict(t) for t in tuned.trials] if tuned else [],
            tuning_seconds=tuned.seconds if tuned else None,
            business_value=business_value,
            champion_value=champion_value,
            champion_value_basis=basis,
            explanation=explanation,
            **_environment_now(kind),
            **_tooling(pip_check, plugins),
            **_lineage(registry, task_type.name),
            predictions=predictions,
            selection=selection,
            decision=decision,
            trigger=trigger,
            notes=notes,
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
        :meth:`from_training`.
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
            candidate_kind=version.kind if version else None,
            dataset_hash=version.dataset_hash if version else None,
            drift=drift,
            decision=decision,
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
        """Rebuild the context of a committed version from the store.

        ``version`` is a :class:`ModelVersion`, a number, an alias or ``latest``. ``kind``
        defaults to the version's ``info["report_kind"]`` or ``info["run_kind"]`` (what the
        flow recorded), else ``train``. ``pip check`` runs now, in this environment, and the
        report says so.
        """
        task = task_type.name
        mv = version if isinstance(version, ModelVersion) else registry.model(task, version)
        notes: list[str] = []

        def artifact(name: str) -> bytes | None:
            if name not in mv.files:
                notes.append(f"{name} is not stored with version {mv.version}")
                return None
            try:
                return registry.artifact(task, mv.version, name)
            except NotFoundError:
                notes.append(f"{name} is listed but missing in the store")
                return None

        def load_json(name: str) -> Any:
            raw = artifact(name)
            if raw is None:
                return None
            try:
                return json.loads(raw)
            except ValueError as exc:
                notes.append(f"{name} is not valid JSON: {exc}")
                return None

        dataset = None
        try:
            dataset = registry.load_dataset(task, mv.dataset_hash)
        except NotFoundError:
            notes.append(f"dataset {mv.dataset_hash[:12]} is not in the store")

        evaluation = load_json("evaluation.json") or {}
        holdout = _metrics(evaluation.get("holdout")) or mv.as_metrics()
        other_raw = evaluation.get("other_candidate") or {}
        validation = {k: m for k, v in (evaluation.get("validation") or {}).items() if (m := _metrics(v))}

        value_raw = load_json("business_value.json")
        value = _business_value(value_raw)
        champion_at = mv.info.get("champion_at_training")
        champion_value, basis = None, ""
        if isinstance(value_raw, dict) and _business_value(value_raw.get("champion")):
            champion_value, basis = _business_value(value_raw.get("champion")), "on the same holdout rows"
        elif champion_at is not None:
            # Not recorded on the same rows: fall back to what the champion reported at its own
            # training, and say so, because the two holdouts differ.
            try:
                older = registry.model(task, champion_at)
                champion_value = _business_value(older.info.get("business_value"))
                basis = f"as measured when v{older.version} was trained (a different holdout)"
            except NotFoundError:
                pass

        trials_raw = load_json("trials.json") or {}
        env = load_json("env.json") or {}
        raw_predictions = artifact("predictions.parquet")
        predictions = pd.read_parquet(io.BytesIO(raw_predictions)) if raw_predictions else None
        rows = mv.info.get("rows") or {}
        recorded_kind = mv.info.get("report_kind") or mv.info.get("run_kind") or "train"
        return cls(
            task=task,
            task_type=task_type,
            kind=kind or str(recorded_kind),
            version=mv,
            candidate_kind=mv.kind,
            params=dict(mv.params),
            dataset=dataset,
            dataset_hash=mv.dataset_hash,
            split_rows={k: int(v) for k, v in rows.items()},
            split_method=mv.info.get("split"),
            holdout=holdout,
            other=_metrics(other_raw),
            other_kind=other_raw.get("kind"),
            champion=_metrics(evaluation.get("champion")),
            champion_version=champion_at,
            validation=validation,
            trials=list(trials_raw.get("trials") or []),
            tuning_seconds=trials_raw.get("seconds"),
            business_value=value,
            champion_value=champion_value,
            champion_value_basis=basis,
            explanation=_explanation(load_json("explanation.json"), notes),
            environment=env,
            environment_source=f"recorded when version {mv.version} was trained (env.json)",
            regenerated=True,
            **_tooling(pip_check, plugins),
            **_lineage(registry, task, before=mv.version),
            predictions=predictions,
            selection=mv.info.get("selection"),
            decision=mv.info.get("decision"),
            trigger=mv.info.get("trigger"),
            created_at=mv.created_at,
            notes=notes,
        )


def _environment_now(kind: str) -> dict[str, Any]:
    """The running process's environment snapshot, for a context built during its run."""
    from mlplug.environment import snapshot

    run = _RUN_WORDS.get(kind, kind)
    return {"environment": snapshot(), "environment_source": f"recorded during this {run} run"}


def _tooling(pip_check: PipCheck | None, plugins: Plugins | None) -> dict[str, Any]:
    """``pip check`` (run now unless given) and the plugins of this process: every report
    lists them as they are where it is built."""
    from mlplug.plugins import get_plugins
    from mlplug.reporting.doctor import pip_check as run_pip_check

    return {"pip_check": pip_check or run_pip_check(), "plugins": (plugins or get_plugins()).infos()}


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


def _metrics(data: Any) -> Metrics | None:
    if not isinstance(data, dict) or "values" not in data or "primary" not in data:
        return None
    return Metrics(
        values={k: float(v) for k, v in data["values"].items() if isinstance(v, int | float)},
        primary=data["primary"],
        higher_is_better=bool(data.get("higher_is_better", True)),
        threshold=data.get("threshold"),
        details=dict(data.get("details") or {}),
    )


def _business_value(data: Any) -> BusinessValue | None:
    if not isinstance(data, dict) or "value" not in data:
        return None
    return BusinessValue(
        value=float(data["value"]),
        unit=str(data.get("unit", "")),
        no_model_value=float(data.get("no_model_value", 0.0)),
        summary=str(data.get("summary", "")),
        details={k: v for k, v in (data.get("details") or {}).items() if isinstance(v, int | float)},
    )


def _explanation(data: Any, notes: list[str]) -> Explanation | None:
    """An Explanation from its JSON form, or from the ``repr`` string that flows before the
    report existed wrote (``json.dumps`` fell back to ``str`` on the dataclass)."""
    if isinstance(data, str) and data.startswith("Explanation("):
        try:
            call = ast.parse(data, mode="eval").body
            if isinstance(call, ast.Call):
                data = {kw.arg: ast.literal_eval(kw.value) for kw in call.keywords if kw.arg}
        except (SyntaxError, ValueError):
            notes.append("explanation.json holds an unreadable text form")
            return None
    if not isinstance(data, dict) or "global_importance" not in data:
        return None
    return Explanation(
        kind=str(data.get("kind", "")),
        global_importance={str(k): float(v) for k, v in data["global_importance"].items()},
        per_row=[dict(r) for r in data.get("per_row") or []],
    )
