"""The steps of a training run, independent of Prefect: split, fit, compare, register, gate.

``flows/train.py`` wraps these in Prefect tasks; tests call them directly.
"""

from __future__ import annotations

import io
import json
import logging
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mlplug.dataset import Dataset
from mlplug.errors import AliasConflictError, DataError
from mlplug.registry import AliasRecord, ModelVersion, Registry
from mlplug.task import BusinessValue, Metrics, Model, TaskType

log = logging.getLogger(__name__)


@dataclass
class Timings:
    """Seconds spent in each piece of work, to tell compute from orchestration."""

    seconds: dict[str, float] = field(default_factory=dict)

    @contextmanager
    def measure(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - start


@dataclass(frozen=True)
class Split:
    train: Dataset
    valid: Dataset
    holdout: Dataset
    method: str


def split(data: Dataset, holdout: float = 0.2, valid: float = 0.2, seed: int = 0) -> Split:
    """Time-ordered when the schema has a time column present in the data; else stratified.

    ``holdout`` is the share kept for the final comparison, ``valid`` the share of the rest
    used for tuning, early stopping and choosing between model and baseline.
    """
    if not 0 < holdout < 1 or not 0 < valid < 1:
        raise DataError(f"holdout and valid shares must be in (0, 1), got {holdout} and {valid}")
    time_col = data.schema.time_column
    if time_col and time_col in data.frame.columns:
        order = np.argsort(data.frame[time_col].to_numpy(), kind="stable")
        n_hold = max(1, round(len(order) * holdout))
        rest, hold = order[:-n_hold], order[-n_hold:]
        n_valid = max(1, round(len(rest) * valid))
        parts = (rest[:-n_valid], rest[-n_valid:], hold)
        method = f"time-ordered on {time_col!r}"
    else:
        from sklearn.model_selection import train_test_split

        index = np.arange(len(data))
        y = data.y
        try:
            rest, hold = train_test_split(index, test_size=holdout, random_state=seed, stratify=y)
            fit, val = train_test_split(rest, test_size=valid, random_state=seed, stratify=y[rest])
        except ValueError as exc:  # a class too small to appear in every part
            counts = dict(zip(*np.unique(y, return_counts=True), strict=True))
            named = {data.schema.classes[int(k)]: int(v) for k, v in counts.items()}
            raise DataError(
                f"{data.source}: cannot split {len(data)} rows into train/valid/holdout with every "
                f"class in each part; rows per class: {named} ({exc})"
            ) from exc
        parts = (fit, val, hold)
        method = "stratified"
    train, valid_ds, hold_ds = (data.subset(np.sort(p)) for p in parts)
    for name, part in (("train", train), ("valid", valid_ds), ("holdout", hold_ds)):
        if len(np.unique(part.y)) < 2:
            raise DataError(
                f"{data.source}: the {name} part ({method}) holds a single class; "
                "more rows or more positive examples are needed"
            )
    return Split(train, valid_ds, hold_ds, method)


@dataclass(frozen=True)
class Candidate:
    kind: str  # "model" or "baseline"
    model: Model
    params: dict[str, Any]
    valid_metrics: Metrics


def fit_candidate(
    task: TaskType, kind: str, train: Dataset, valid: Dataset, params: dict[str, Any]
) -> Candidate:
    model = task.create_model(train.schema, params) if kind == "model" else task.create_baseline(train.schema)
    model.fit(train, valid)
    metrics = task.evaluate(valid, model.predict_proba(valid.X))
    return Candidate(kind, model, dict(params) if kind == "model" else {}, metrics)


def choose(model: Candidate, baseline: Candidate) -> tuple[Candidate, str]:
    """The better of the two on validation, and a sentence saying why."""
    m, b = model.valid_metrics, baseline.valid_metrics
    name = m.primary
    if baseline.valid_metrics.beats(model.valid_metrics):
        return baseline, (
            f"the baseline won on validation ({name} {b.score:.4f} vs {m.score:.4f} for the main "
            "model), so the baseline is registered"
        )
    return model, f"the main model won on validation ({name} {m.score:.4f} vs baseline {b.score:.4f})"


@dataclass(frozen=True)
class ChampionScore:
    version: ModelVersion | None
    metrics: Metrics | None
    proba: np.ndarray | None
    note: str


def score_champion(
    task: TaskType, registry: Registry, champion: AliasRecord | None, holdout: Dataset
) -> ChampionScore:
    """Score the current champion on this run's holdout, so both are compared on the same
    rows."""
    if champion is None:
        return ChampionScore(None, None, None, "no champion yet")
    mv = registry.model(task.name, champion.version)
    needed = [c["name"] for c in mv.schema["features"]]
    missing = [c for c in needed if c not in holdout.frame.columns]
    if missing:
        return ChampionScore(
            mv, None, None, f"champion v{mv.version} needs columns {missing} that this data lacks"
        )
    with tempfile.TemporaryDirectory(prefix="mlplug-champion-") as tmp:
        model = task.load_model(registry.download_model(task.name, mv.version, Path(tmp)))
        proba = np.asarray(model.predict_proba(holdout.frame[needed]))
    return ChampionScore(
        mv,
        task.evaluate(holdout, proba, threshold=mv.threshold),
        proba,
        f"champion v{mv.version} scored on the same holdout",
    )


def predictions_table(holdout: Dataset, probas: dict[str, np.ndarray | None]) -> bytes:
    """Holdout labels and each candidate's probabilities, as Parquet, for reports."""
    import pandas as pd

    frame = pd.DataFrame({"y": holdout.y})
    for who, proba in probas.items():
        if proba is None:
            continue
        for i, label in enumerate(holdout.schema.classes):
            frame[f"{who}:{label}"] = proba[:, i]
    buffer = io.BytesIO()
    frame.to_parquet(buffer, index=False)
    return buffer.getvalue()


@dataclass(frozen=True)
class PromotionDecision:
    promote: bool
    reason: str


def decide(
    candidate: Metrics, champion: Metrics | None, champion_note: str, min_delta: float
) -> PromotionDecision:
    name = candidate.primary
    if champion is None:
        if champion_note == "no champion yet":
            return PromotionDecision(True, "first model of this task")
        return PromotionDecision(False, f"not compared: {champion_note}; promote by hand if intended")
    if candidate.beats(champion, min_delta):
        return PromotionDecision(
            True, f"{name} {candidate.score:.4f} beats the champion's {champion.score:.4f} on the holdout"
        )
    return PromotionDecision(
        False,
        f"{name} {candidate.score:.4f} does not beat the champion's {champion.score:.4f} "
        f"by more than {min_delta}",
    )


def promote_if_unchanged(
    registry: Registry, task: str, version: int, expected: AliasRecord | None, reason: str
) -> tuple[bool, str]:
    """Move the champion only if it is still the one we compared against."""
    try:
        registry.set_alias(task, version, expected=expected, reason=reason)
    except AliasConflictError:
        return False, "the champion changed during this run; not promoted (re-run to compare again)"
    return True, reason


def metrics_json(metrics: Metrics) -> dict[str, Any]:
    return asdict(metrics)


def value_json(value: BusinessValue) -> dict[str, Any]:
    return {**asdict(value), "gain": value.gain}


def dumps(data: Any) -> bytes:
    return json.dumps(data, indent=2, default=_default).encode()


def _default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return str(value)
