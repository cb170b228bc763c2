"""The record of a training or refit run: what it trained on, which candidates it compared
and how, what it registered, how that compares with the champion, and why it was or was not
promoted.

The train and refit flows build one :class:`TrainingRecord`; it writes itself into the
version's artifacts (:meth:`TrainingRecord.artifacts`, :meth:`TrainingRecord.info`) and
reads itself back (:meth:`TrainingRecord.from_store`). Reports, ``mlplug report``,
``mlplug models show`` and monitoring read this object, never the JSON files by key.

Stored as (file names in :mod:`mlplug.layout`)::

    evaluation.json       every candidate's parameters, validation and holdout metrics; the
                          champion's metrics on the same holdout
    business_value.json   the registered model's value, and the champion's on the same rows
    explanation.json      attributions of the registered model
    trials.json           the tuning trials
    metadata.json "info"  run kind, trigger, data, split, choice, decision, timings
"""

from __future__ import annotations

import ast
import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from mlplug import layout
from mlplug.calibration import CalibrationChoice
from mlplug.errors import NotFoundError
from mlplug.registry import ModelVersion, Registry
from mlplug.task import BusinessValue, Explanation, Metrics
from mlplug.tuning import Trial, TuneResult

#: The business value basis when the champion was scored on this run's holdout.
SAME_ROWS = "on the same holdout rows"


@dataclass(frozen=True)
class CandidateResult:
    """One candidate of a run (``model``, ``baseline``, ...), as it was chosen and scored."""

    kind: str
    params: dict[str, Any]
    #: Scores on the data used to choose between candidates.
    validation: Metrics
    #: Scores on the final holdout; ``None`` where a record predates holdout scoring.
    holdout: Metrics | None = None
    #: Primary-metric score per cross-validation fold (one for a validation split; empty in
    #: records that predate selection by folds).
    folds: tuple[float, ...] = ()
    #: For a searched candidate (the baseline): each configuration tried, as
    #: ``{"params", "mean", "spread"}``.
    searched: tuple[dict[str, Any], ...] = ()


@dataclass(frozen=True)
class ChampionComparison:
    """The champion when the run started, scored on the run's holdout where it could be."""

    version: int
    #: ``None`` when the champion could not be scored on this data (see ``note``).
    metrics: Metrics | None
    value: BusinessValue | None
    note: str
    #: On which rows ``value`` was measured.
    value_basis: str = SAME_ROWS
    #: The registered model's metrics on the rows the champion was compared on, when those
    #: are not the whole holdout (the champion was fitted on some holdout rows).
    challenger: Metrics | None = None


@dataclass(frozen=True)
class TrainingRecord:
    task: str
    #: ``train`` or ``refit``.
    run_kind: str
    data_source: str
    dataset_hash: str
    split_method: str
    #: Rows per part: ``train``, ``valid``, ``holdout``.
    rows: dict[str, int]
    candidates: tuple[CandidateResult, ...]
    #: Kind of the candidate that is registered.
    registered_kind: str
    #: Why that candidate, in a sentence.
    selection: str
    #: The promotion decision, in a sentence.
    decision: str
    business_value: BusinessValue | None = None
    champion: ChampionComparison | None = None
    explanation: Explanation | None = None
    tuning: TuneResult | None = None
    #: Why a refit ran (the drift decision, the event).
    trigger: str | None = None
    #: Seconds per step of the run.
    timings: dict[str, float] = field(default_factory=dict)
    #: How candidates were compared, in words (cross-validation or the validation part).
    selection_method: str = ""
    #: The calibration tried on the winner's out-of-sample predictions and what was kept.
    calibration: CalibrationChoice | None = None
    #: Rows the registered model was fitted on (every non-holdout row after the refit, every
    #: row when the holdout was added after the champion comparison).
    refit_rows: int | None = None
    #: Whether the registered model was fitted again with the holdout rows after the
    #: comparison (its holdout figures are then those of the fit that was compared).
    holdout_refit: bool = False
    #: The digest of the holdout's rows (:func:`mlplug.row_fingerprints.digest`): a later run
    #: on the same rows can use this run's holdout figures for the fit that was compared.
    holdout_rows: str = ""

    @property
    def registered(self) -> CandidateResult:
        return next(c for c in self.candidates if c.kind == self.registered_kind)

    @property
    def others(self) -> list[CandidateResult]:
        return [c for c in self.candidates if c.kind != self.registered_kind]

    # -- writing ---------------------------------------------------------------------------

    def artifacts(self) -> dict[str, bytes]:
        """The record's files, stored with the version it registers."""
        champion = self.champion
        return {
            layout.EVALUATION: dumps(
                {
                    "registered": self.registered_kind,
                    "selection_method": self.selection_method,
                    "candidates": [asdict(c) for c in self.candidates],
                    "calibration": self.calibration.to_dict() if self.calibration else None,
                    "champion": {
                        "version": champion.version,
                        "metrics": asdict(champion.metrics) if champion.metrics else None,
                        "note": champion.note,
                        "value_basis": champion.value_basis,
                        "challenger": asdict(champion.challenger) if champion.challenger else None,
                    }
                    if champion
                    else None,
                }
            ),
            layout.BUSINESS_VALUE: dumps(
                {
                    **(value_json(self.business_value) if self.business_value else {}),
                    "champion": value_json(champion.value) if champion and champion.value else None,
                }
            ),
            layout.EXPLANATION: dumps(asdict(self.explanation) if self.explanation else None),
            layout.TRIALS: dumps(self.tuning.to_dict() if self.tuning else {"trials": []}),
        }

    def info(self) -> dict[str, Any]:
        """What ``metadata.json`` keeps of the run, readable without opening other files."""
        return {
            "run_kind": self.run_kind,
            "trigger": self.trigger,
            "data_source": self.data_source,
            "split": self.split_method,
            "rows": dict(self.rows),
            "selection": self.selection,
            "selection_method": self.selection_method,
            "refit_rows": self.refit_rows,
            "holdout_refit": self.holdout_refit,
            "holdout_rows": self.holdout_rows,
            "calibration": self.calibration.method if self.calibration else None,
            "decision": self.decision,
            "champion_at_training": self.champion.version if self.champion else None,
            "business_value": value_json(self.business_value) if self.business_value else None,
            "timings": {k: round(v, 3) for k, v in self.timings.items()},
        }

    # -- reading ---------------------------------------------------------------------------

    @classmethod
    def from_store(cls, registry: Registry, version: ModelVersion) -> tuple[TrainingRecord, list[str]]:
        """The record of a committed version, and notes on whatever it lacks (versions
        registered by older mlplug releases lack some files or keys)."""
        notes: list[str] = []
        info = version.info
        evaluation = _read_json(registry, version, layout.EVALUATION, notes) or {}
        candidates = _candidates(evaluation, version)
        value_raw = _read_json(registry, version, layout.BUSINESS_VALUE, notes)
        trials_raw = _read_json(registry, version, layout.TRIALS, notes) or {}
        record = cls(
            task=version.task,
            run_kind=str(info.get("report_kind") or info.get("run_kind") or "train"),
            data_source=str(info.get("data_source", "")),
            dataset_hash=version.dataset_hash,
            split_method=str(info.get("split", "")),
            rows={k: int(v) for k, v in (info.get("rows") or {}).items()},
            candidates=candidates,
            registered_kind=version.kind,
            selection=str(info.get("selection", "")),
            decision=str(info.get("decision", "")),
            business_value=business_value_of(value_raw),
            champion=_champion(registry, version, evaluation, value_raw),
            explanation=explanation_of(_read_json(registry, version, layout.EXPLANATION, notes), notes),
            tuning=_tuning(trials_raw),
            trigger=info.get("trigger"),
            timings={k: float(v) for k, v in (info.get("timings") or {}).items()},
            selection_method=str(evaluation.get("selection_method") or info.get("selection_method") or ""),
            calibration=CalibrationChoice.from_dict(evaluation.get("calibration")),
            refit_rows=int(info["refit_rows"]) if isinstance(info.get("refit_rows"), int) else None,
            holdout_refit=bool(info.get("holdout_refit", False)),
            holdout_rows=str(info.get("holdout_rows") or ""),
        )
        return record, notes


def read_artifact(registry: Registry, version: ModelVersion, name: str, notes: list[str]) -> bytes | None:
    """A stored artifact of ``version``, or ``None`` with a line in ``notes`` saying why."""
    if name not in version.files:
        notes.append(f"{name} is not stored with version {version.version}")
        return None
    try:
        return registry.artifact(version.task, version.version, name)
    except NotFoundError:
        notes.append(f"{name} is listed but missing in the store")
        return None


def _read_json(registry: Registry, version: ModelVersion, name: str, notes: list[str]) -> Any:
    raw = read_artifact(registry, version, name, notes)
    if raw is None:
        return None
    try:
        return json.loads(raw)
    except ValueError as exc:
        notes.append(f"{name} is not valid JSON: {exc}")
        return None


def _candidates(evaluation: Mapping[str, Any], version: ModelVersion) -> tuple[CandidateResult, ...]:
    if isinstance(evaluation.get("candidates"), list):
        found = [
            CandidateResult(
                kind=str(c["kind"]),
                params=dict(c.get("params") or {}),
                validation=metrics_of(c.get("validation")) or _no_metrics(version),
                holdout=metrics_of(c.get("holdout")),
                folds=tuple(float(f) for f in c.get("folds") or ()),
                searched=tuple(x for x in c.get("searched") or () if isinstance(x, dict)),
            )
            for c in evaluation["candidates"]
            if isinstance(c, dict) and "kind" in c
        ]
        if any(c.kind == version.kind for c in found):
            return tuple(found)
    # Versions registered before the record existed kept the registered candidate's holdout,
    # the "other_candidate" and a "validation" mapping per kind.
    validation = evaluation.get("validation") or {}
    registered = CandidateResult(
        kind=version.kind,
        params=dict(version.params),
        validation=metrics_of(validation.get(version.kind)) or _no_metrics(version),
        holdout=metrics_of(evaluation.get("holdout")) or version.as_metrics(),
    )
    other_raw = evaluation.get("other_candidate") or {}
    if not other_raw.get("kind"):
        return (registered,)
    other = CandidateResult(
        kind=str(other_raw["kind"]),
        params={},
        validation=metrics_of(validation.get(other_raw["kind"])) or _no_metrics(version),
        holdout=metrics_of(other_raw),
    )
    return (registered, other)


def _no_metrics(version: ModelVersion) -> Metrics:
    return Metrics({}, version.primary_metric, version.higher_is_better)


def _champion(
    registry: Registry, version: ModelVersion, evaluation: Mapping[str, Any], value_raw: Any
) -> ChampionComparison | None:
    at = version.info.get("champion_at_training")
    if at is None:
        return None
    raw = evaluation.get("champion")
    challenger = None
    if isinstance(raw, dict) and "metrics" in raw:  # the record's own form
        metrics, note = metrics_of(raw.get("metrics")), str(raw.get("note", ""))
        challenger = metrics_of(raw.get("challenger"))
    else:  # older versions stored the champion's metrics directly
        metrics, note = metrics_of(raw), ""
    value = business_value_of(value_raw.get("champion")) if isinstance(value_raw, dict) else None
    basis = str(raw.get("value_basis") or SAME_ROWS) if isinstance(raw, dict) else SAME_ROWS
    if value is None:
        # Not recorded on the same rows: fall back to what the champion reported at its own
        # training, and say so, because the two holdouts differ.
        try:
            older = registry.model(version.task, int(at))
        except NotFoundError:
            older = None
        value = business_value_of(older.info.get("business_value")) if older else None
        basis = f"as measured when v{at} was trained (a different holdout)"
    return ChampionComparison(int(at), metrics, value, note, basis, challenger)


def _tuning(data: Mapping[str, Any]) -> TuneResult | None:
    trials = [Trial(**t) for t in data.get("trials") or [] if isinstance(t, dict)]
    if not trials:
        return None
    return TuneResult(
        best_params=dict(data.get("best_params") or {}),
        best_score=data.get("best_score"),
        trials=trials,
        seconds=float(data.get("seconds") or 0.0),
    )


# -- JSON forms of the task types' result objects ------------------------------------------


def metrics_of(data: Any) -> Metrics | None:
    if not isinstance(data, dict) or "values" not in data or "primary" not in data:
        return None
    return Metrics(
        values={k: float(v) for k, v in data["values"].items() if isinstance(v, int | float)},
        primary=data["primary"],
        higher_is_better=bool(data.get("higher_is_better", True)),
        threshold=data.get("threshold"),
        details=dict(data.get("details") or {}),
    )


def value_json(value: BusinessValue) -> dict[str, Any]:
    return {**asdict(value), "gain": value.gain}


def business_value_of(data: Any) -> BusinessValue | None:
    if not isinstance(data, dict) or "value" not in data:
        return None
    return BusinessValue(
        value=float(data["value"]),
        unit=str(data.get("unit", "")),
        no_model_value=float(data.get("no_model_value", 0.0)),
        summary=str(data.get("summary", "")),
        details={k: v for k, v in (data.get("details") or {}).items() if isinstance(v, int | float)},
    )


def explanation_of(data: Any, notes: list[str]) -> Explanation | None:
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


def dumps(data: Any) -> bytes:
    """JSON for the store, with numpy values as plain numbers."""
    return json.dumps(data, indent=2, default=_default).encode()


def _default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return str(value)
