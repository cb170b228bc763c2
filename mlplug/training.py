"""The steps of a training run, independent of Prefect: split, fit, evaluate, gate.

``flows/train.py`` wraps these in Prefect tasks and composes them; tests call them directly.
What a run finds is kept in a :class:`mlplug.record.TrainingRecord`.
"""

from __future__ import annotations

import io
import logging
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mlplug import layout
from mlplug import row_fingerprints as fingerprints
from mlplug.dataset import Dataset
from mlplug.errors import AliasConflictError, DataError
from mlplug.progress import Progress, artifact_key
from mlplug.record import SAME_ROWS, CandidateResult, ChampionComparison, business_value_of
from mlplug.registry import AliasRecord, ModelVersion, Registry
from mlplug.stored_model import load_model
from mlplug.task import BusinessValue, Metrics, Model, TaskType, fit_model

log = logging.getLogger(__name__)


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
    kind: str  # "model", "baseline" or "blend"
    model: Model
    params: dict[str, Any]
    #: Metrics on the predictions used to choose (validation, or out-of-fold in CV).
    valid_metrics: Metrics
    #: Primary-metric score per cross-validation fold (one for a validation split).
    folds: tuple[float, ...] = ()
    #: For a searched candidate: every configuration tried, with its mean score and spread.
    searched: tuple[dict[str, Any], ...] = ()
    #: Seconds its fit took.
    seconds: float = 0.0


def fit_candidate(
    task: TaskType, kind: str, train: Dataset, valid: Dataset, params: dict[str, Any]
) -> Candidate:
    model = task.create_model(train.schema, params) if kind == "model" else task.create_baseline(train.schema)
    started = time.perf_counter()
    with Progress(f"fitting the {task.name} {kind}", artifact_key(task.name, kind, "fit"), "steps") as shown:
        fit_model(model, train, valid, work=shown.update)
    seconds = time.perf_counter() - started
    metrics = task.evaluate(valid, model.predict_proba(valid.X))
    return Candidate(kind, model, dict(params) if kind == "model" else {}, metrics, seconds=seconds)


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
    """The version a new model must beat, scored on the run's holdout rows (those it was
    not fitted on)."""

    #: ``None`` when the task has no committed version at all.
    version: ModelVersion | None
    #: On ``rows`` of the holdout; ``None`` when it could not be compared (see ``note``).
    metrics: Metrics | None
    #: On every holdout row, for the predictions table; ``None`` when not scored here.
    proba: np.ndarray | None
    note: str
    #: False when the task has versions but no champion alias (deleted): the latest version
    #: stands in for it.
    is_champion: bool = True
    #: The holdout rows it is compared on, when not all of them: those it was not fitted on.
    rows: np.ndarray | None = None
    #: Its business value when it was not scored here (its own run's, on the same rows).
    value: BusinessValue | None = None

    @property
    def whose(self) -> str:
        """How a decision names it, possessive: "the champion's"."""
        if self.is_champion or self.version is None:
            return "the champion's"
        return f"the latest version's (v{self.version.version}; the task has no champion alias)"


#: Fewest holdout rows a champion that saw some of them is compared on.
MIN_UNSEEN_ROWS = 30


def score_champion(
    task: TaskType, registry: Registry, champion: AliasRecord | None, holdout: Dataset
) -> ChampionScore:
    """Score the current champion on this run's holdout, so both are compared on the same
    rows. Without a champion alias but with versions (the alias was deleted), the latest
    version is the one to beat: a first-model promotion would silently replace them all.

    Holdout rows the champion was fitted on (its ``fitted_rows``) are left out of the
    comparison: on them it would look better than it is. When it was fitted on all of them
    because they are its own holdout, refitted with it after its comparison, the figures of
    the fit it was compared with, on these same rows, stand in for it."""
    if champion is not None:
        mv = registry.model(task.name, champion.version)
        is_champion, who = True, f"champion v{mv.version}"
    else:
        versions = registry.versions(task.name)
        if not versions:
            return ChampionScore(None, None, None, "no champion yet")
        mv, is_champion = versions[-1], False
        who = f"latest version v{mv.version} (no champion alias)"
    needed = [c["name"] for c in mv.schema["features"]]
    missing = [c for c in needed if c not in holdout.frame.columns]
    if missing:
        return ChampionScore(
            mv, None, None, f"{who} needs columns {missing} that this data lacks", is_champion
        )
    with tempfile.TemporaryDirectory(prefix="mlplug-champion-") as tmp:
        model = load_model(task, registry.download_model(task.name, mv.version, Path(tmp)))
        proba = np.asarray(model.predict_proba(holdout.frame[needed]))
    known = _fitted_on(registry, mv, holdout)
    if known is None or not known[1].any():
        return ChampionScore(
            mv,
            task.evaluate(holdout, proba, threshold=mv.threshold),
            proba,
            f"{who} scored on the same holdout",
            is_champion,
        )
    holdout_rows, seen = known
    n, unseen = len(holdout), int((~seen).sum())
    if (
        seen.all()
        and mv.info.get("holdout_refit")
        and mv.info.get("holdout_rows") == fingerprints.digest(holdout_rows)
    ):
        return ChampionScore(
            mv,
            mv.as_metrics(),
            proba,
            f"{who} was fitted on these holdout rows after its own run compared it on them (same rows): "
            "the figures of the fit it was compared with stand in for it",
            is_champion,
            value=business_value_of(mv.info.get("business_value")),
        )
    if unseen < MIN_UNSEEN_ROWS:
        return ChampionScore(
            mv,
            None,
            proba,
            f"{who} was fitted on {n - unseen:,} of the {n:,} holdout rows, which leaves {unseen} "
            f"(fewer than {MIN_UNSEEN_ROWS}) to compare on",
            is_champion,
        )
    rows = ~seen
    return ChampionScore(
        mv,
        task.evaluate(holdout.subset(rows), proba[rows], threshold=mv.threshold),
        proba,
        f"{who} scored on the {unseen:,} of the {n:,} holdout rows it was not fitted on",
        is_champion,
        rows=rows,
    )


def _fitted_on(
    registry: Registry, mv: ModelVersion, holdout: Dataset
) -> tuple[np.ndarray, np.ndarray] | None:
    """The holdout's row fingerprints under ``mv``'s schema, and which of those rows ``mv``
    was fitted on; ``None`` when it does not say (older versions, or a target this data
    lacks)."""
    if layout.FITTED_ROWS not in mv.files or mv.schema.get("target") not in holdout.frame.columns:
        return None
    rows = fingerprints.row_fingerprints(holdout.frame, fingerprints.row_columns(mv.schema))
    fitted = fingerprints.load(registry.artifact(mv.task, mv.version, layout.FITTED_ROWS))
    return rows, fingerprints.seen(rows, fitted)


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


def decide(candidate: Metrics, champion: ChampionScore, min_delta: float) -> PromotionDecision:
    name = candidate.primary
    if champion.version is None:
        return PromotionDecision(True, "first model of this task")
    if champion.metrics is None:
        return PromotionDecision(False, f"not compared: {champion.note}; promote by hand if intended")
    other = champion.metrics
    if candidate.beats(other, min_delta):
        return PromotionDecision(
            True, f"{name} {candidate.score:.4f} beats {champion.whose} {other.score:.4f} on the holdout"
        )
    return PromotionDecision(
        False,
        f"{name} {candidate.score:.4f} does not beat {champion.whose} {other.score:.4f} "
        f"by more than {min_delta}",
    )


@dataclass(frozen=True)
class Evaluation:
    """What the holdout says about a run's candidates and the champion."""

    winner: Candidate
    #: Why the winner, in a sentence.
    selection: str
    #: Every candidate with its validation and holdout scores.
    results: tuple[CandidateResult, ...]
    #: Holdout probabilities by candidate kind, and the registered candidate's before
    #: calibration as ``uncalibrated`` when it is calibrated.
    probas: dict[str, np.ndarray]
    champion: ChampionScore
    #: The champion's business value on the same holdout rows.
    champion_value: BusinessValue | None
    business_value: BusinessValue
    decision: PromotionDecision
    #: The registered candidate's metrics on the rows the champion was compared on, when
    #: those are not the whole holdout (it was fitted on some of them).
    compared: Metrics | None = None

    @property
    def holdout(self) -> Metrics:
        """The registered candidate's holdout metrics."""
        return next(r.holdout for r in self.results if r.kind == self.winner.kind and r.holdout)

    def comparison(self) -> ChampionComparison | None:
        """The champion's part of the run's record."""
        champ = self.champion
        if champ.version is None:
            return None
        basis = SAME_ROWS
        if champ.rows is not None:
            basis = f"on the {int(champ.rows.sum()):,} holdout rows it was not fitted on"
        elif champ.value is not None:
            basis = f"as measured in its own run, {SAME_ROWS}"
        return ChampionComparison(
            champ.version.version, champ.metrics, self.champion_value, champ.note, basis, self.compared
        )


def evaluate(
    task: TaskType,
    registry: Registry,
    holdout: Dataset,
    candidates: list[Candidate],
    champion: AliasRecord | None,
    min_delta: float,
    chosen: tuple[str, str] | None = None,
) -> Evaluation:
    """Score each candidate and the champion on the same holdout rows (with the thresholds
    chosen on validation) and decide on promotion. ``chosen`` is the winner's kind and why
    (:mod:`mlplug.selection`); without it the better of model and baseline on validation."""
    if chosen is None:
        winner, selection = choose(*candidates)
    else:
        winner = next(c for c in candidates if c.kind == chosen[0])
        selection = chosen[1]
    probas: dict[str, np.ndarray] = {}
    results = []
    for c in candidates:
        probas[c.kind] = np.asarray(c.model.predict_proba(holdout.X))
        scored = task.evaluate(holdout, probas[c.kind], threshold=c.valid_metrics.threshold)
        results.append(CandidateResult(c.kind, dict(c.params), c.valid_metrics, scored, c.folds, c.searched))
    raw = getattr(winner.model, "raw_proba", None)
    if callable(raw):
        probas["uncalibrated"] = np.asarray(raw(holdout.X), dtype=np.float64)
    registered = next(r.holdout for r in results if r.kind == winner.kind)
    assert registered is not None
    champ = score_champion(task, registry, champion, holdout)
    compared, champ_value = registered, champ.value
    if champ.metrics is not None and champ.rows is not None:
        # Only the rows the champion never saw: the new model is judged there too.
        rows = holdout.subset(champ.rows)
        compared = task.evaluate(
            rows, probas[winner.kind][champ.rows], threshold=winner.valid_metrics.threshold
        )
        assert champ.proba is not None
        champ_value = task.business_value(rows, champ.proba[champ.rows], champ.metrics)
    elif champ.metrics is not None and champ.proba is not None and champ_value is None:
        champ_value = task.business_value(holdout, champ.proba, champ.metrics)
    return Evaluation(
        winner=winner,
        selection=selection,
        results=tuple(results),
        probas=probas,
        champion=champ,
        champion_value=champ_value,
        business_value=task.business_value(holdout, probas[winner.kind], registered),
        decision=decide(compared, champ, min_delta),
        compared=compared if champ.rows is not None else None,
    )


def promote_if_unchanged(
    registry: Registry,
    task: str,
    version: int,
    expected: AliasRecord | None,
    reason: str,
    write_id: str = "",
) -> tuple[bool, str]:
    """Move the champion only if it is still the one we compared against. ``write_id``
    (see :meth:`Registry.set_alias`) lets a retried step recognise a move that landed."""
    try:
        registry.set_alias(task, version, expected=expected, reason=reason, write_id=write_id)
    except AliasConflictError:
        return False, "the champion changed during this run; not promoted (re-run to compare again)"
    return True, reason
