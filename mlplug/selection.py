"""Choosing between a run's candidates so that the choice holds on small data, calibrating
the winner, and refitting it on every row that is not held out.

Candidates are the tuned model, the baseline (with a small search over the task's
``baseline_space``) and their blend. They are compared by stratified k-fold
cross-validation on the non-holdout rows when the data are small or the rarest class is
scarce (see :func:`plan_selection` for the threshold), else on the validation part. Every
candidate gets a score per fold, so the record and the report show how sure the choice is.
The winner's out-of-sample predictions choose its calibration
(:mod:`mlplug.calibration`); :func:`refit` then fits the candidates on all non-holdout rows
with their chosen parameters, a boosted model with the iteration count its early stopping
found, scaled to the larger training set (``Model.refit_params``). The holdout stays
untouched for the final comparison with the champion.
"""

from __future__ import annotations

import itertools
import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd

from mlplug.blend import BlendModel, blend_proba
from mlplug.calibration import CalibratedModel, CalibrationChoice, choose_calibration
from mlplug.dataset import Dataset
from mlplug.progress import Progress, artifact_key
from mlplug.task import Metrics, Model, TaskType, build_baseline, fit_model, refit_params
from mlplug.training import Candidate

log = logging.getLogger(__name__)

#: Cross-validate when the non-holdout rows are at most this many ...
CV_MAX_ROWS = 20_000
#: ... or when the validation part would hold fewer rows of the rarest class than this: a
#: choice resting on a few dozen positives is close to a coin flip.
CV_MIN_RARE_VALID = 100
CV_FOLDS = 5
#: ... unless the folds would take longer than this, estimated from the fitted model's own
#: fit time (a transformer fine-tuned five more times): then the validation part decides.
CV_MAX_SECONDS = 180.0
#: Blend weights of the tuned model (the baseline gets the rest) tried for the ensemble.
#: The endpoints 0 and 1 are there implicitly: they are the baseline and the model, which
#: are candidates of their own, and a blend wins only when it is strictly better than both.
BLEND_WEIGHTS = tuple(round(i / 10, 1) for i in range(1, 10))
#: Display and tie-break order: on equal scores the tuned model wins, as it always has,
#: then the baseline; a blend must be strictly better than both.
KIND_ORDER = ("model", "baseline", "blend")
#: Candidates from the simplest to the most complex. With fold scores, the winner is the
#: simplest candidate whose mean is within one standard error of the best mean (the
#: "one-standard-error rule"; the error is that of the paired per-fold differences). Why:
#: a difference smaller than its own noise is not evidence, and the comparison is tilted
#: towards the tuned model, whose configuration was chosen on the validation part, rows
#: that the folds score again; the baseline's grid is a handful of points.
SIMPLICITY = ("baseline", "model", "blend")


@dataclass(frozen=True)
class SelectionPlan:
    #: ``cv`` or ``validation``.
    method: str
    folds: int
    #: How candidates are compared, in words, for the record and the report.
    description: str


def plan_selection(
    train: Dataset, valid: Dataset, split_method: str, fit_seconds: float = 0.0
) -> SelectionPlan:
    """Cross-validation on small data or few rows of the rarest class; the validation part
    otherwise, always for time-ordered splits (shuffled folds would train on the future),
    and when the main model's folds would take longer than :data:`CV_MAX_SECONDS`
    (``fit_seconds`` is what its fit on ``train`` took)."""
    rest = len(train) + len(valid)
    rare_valid = _rarest(valid.y)
    rare_rest = _rarest(np.concatenate([train.y, valid.y]))
    validation = SelectionPlan(
        "validation", 1, f"on the validation part ({len(valid):,} rows, {rare_valid:,} of the rarest class)"
    )
    if split_method != "stratified":
        return validation
    small = rest <= CV_MAX_ROWS or rare_valid < CV_MIN_RARE_VALID
    folds = min(CV_FOLDS, rare_rest)
    if not small or folds < 2:
        return validation
    if fit_seconds * folds > CV_MAX_SECONDS:
        return replace(
            validation,
            description=validation.description
            + f" (cross-validation would refit the model {folds} times, about {fit_seconds * folds:.0f} s)",
        )
    return SelectionPlan(
        "cv",
        folds,
        f"by {folds}-fold stratified cross-validation on the {rest:,} non-holdout rows "
        f"({rare_rest:,} of the rarest class)",
    )


@dataclass(frozen=True)
class Scored:
    """A candidate as selection saw it."""

    kind: str
    #: What the task's factory gets (for ``blend``: the weight and the members' parameters).
    params: dict[str, Any]
    #: Primary-metric score per fold (one for a validation split).
    folds: tuple[float, ...]
    #: Out-of-sample probabilities, aligned with :attr:`Selection.data`.
    proba: np.ndarray
    #: Metrics on all out-of-sample predictions (the threshold is chosen here).
    metrics: Metrics
    #: For a searched candidate: every configuration tried with its mean score and spread.
    searched: tuple[dict[str, Any], ...] = ()

    @property
    def mean(self) -> float:
        return float(np.mean(self.folds)) if self.folds else math.nan

    @property
    def spread(self) -> float:
        return float(np.std(self.folds)) if len(self.folds) > 1 else math.nan


@dataclass(frozen=True)
class Selection:
    plan: SelectionPlan
    candidates: tuple[Scored, ...]
    winner: str
    #: Why the winner, in a sentence.
    reason: str
    calibration: CalibrationChoice
    #: The rows the out-of-sample predictions are for (the non-holdout rows, or validation).
    data: Dataset = field(repr=False)

    def get(self, kind: str) -> Scored:
        return next(c for c in self.candidates if c.kind == kind)


def select(
    task: TaskType,
    train: Dataset,
    valid: Dataset,
    split_method: str,
    fitted_model: Model,
    model_params: dict[str, Any],
    seed: int = 0,
    fit_seconds: float = 0.0,
) -> Selection:
    """Score the tuned model (``fitted_model``, fitted on ``train`` with ``valid`` for early
    stopping, in ``fit_seconds``), the baseline configurations and their blend; choose;
    choose a calibration."""
    plan = plan_selection(train, valid, split_method, fit_seconds)
    if plan.method == "cv":
        data = concat(train, valid)
        folds = _folds(data, plan.folds, seed)
        # Fold models are fitted without validation data, as the refit will be: with what
        # the fitted model's early stopping found, scaled to a fold's training rows.
        scale = (len(data) - len(data) // plan.folds) / len(train)
        fold_params = {**model_params, **refit_params(fitted_model, scale)}

        def run(kind: str, params: dict[str, Any]) -> tuple[np.ndarray, tuple[float, ...]]:
            return _cross_validate(task, data, folds, kind, params)

        with Progress(
            f"cross-validating {task.name} candidates", artifact_key(task.name, "cv"), "fits"
        ) as shown:
            total = plan.folds * (1 + len(baseline_grid(task)))
            done = 0

            def counted(kind: str, params: dict[str, Any]) -> tuple[np.ndarray, tuple[float, ...]]:
                nonlocal done
                out = run(kind, params)
                done += plan.folds
                shown.update(done, total, kind)
                return out

            model_proba, model_folds = counted("model", fold_params)
            baseline = _search_baseline(task, data, counted)
    else:
        data = valid
        folds = [(np.arange(0), np.arange(len(valid)))]
        model_proba = np.asarray(fitted_model.predict_proba(valid.X), dtype=np.float64)
        model_folds = (task.evaluate(valid, model_proba).score,)

        def fit_on_train(kind: str, params: dict[str, Any]) -> tuple[np.ndarray, tuple[float, ...]]:
            model = build_baseline(task, train.schema, params)
            fit_model(model, train, valid)
            proba = np.asarray(model.predict_proba(valid.X), dtype=np.float64)
            return proba, (task.evaluate(valid, proba).score,)

        baseline = _search_baseline(task, data, fit_on_train)
    model = Scored("model", dict(model_params), model_folds, model_proba, task.evaluate(data, model_proba))
    candidates = [model, baseline]
    blend = _blend(task, data, folds, model, baseline)
    if blend is not None:
        candidates.append(blend)
    higher = model.metrics.higher_is_better
    ranked = sorted(
        candidates,
        key=lambda c: (-c.mean if higher else c.mean, KIND_ORDER.index(c.kind)),
    )
    winner, within = _simplest_within_noise(ranked, higher)
    reason = _reason(plan, winner, ranked, model.metrics.primary, within)
    where = (
        f"the out-of-fold predictions of {plan.folds}-fold cross-validation"
        if plan.method == "cv"
        else "the validation part"
    )
    calibration = choose_calibration(
        data.y,
        winner.proba[:, 1] if winner.proba.shape[1] == 2 else winner.proba,
        where=where,
        seed=seed,
        classes=winner.proba.shape[1],
    )
    if calibration.calibrator is not None:
        calibrated = _calibrated(winner.proba, calibration)
        winner = Scored(
            winner.kind, winner.params, winner.folds, calibrated,
            task.evaluate(data, calibrated), winner.searched,
        )  # fmt: skip
        candidates = [winner if c.kind == winner.kind else c for c in candidates]
    return Selection(plan, tuple(candidates), winner.kind, reason, calibration, data)


def _calibrated(proba: np.ndarray, calibration: CalibrationChoice) -> np.ndarray:
    assert calibration.calibrator is not None
    positive = calibration.calibrator.apply(proba[:, 1])
    return np.column_stack([1.0 - positive, positive])


def _simplest_within_noise(ranked: list[Scored], higher: bool) -> tuple[Scored, str]:
    """The best-ranked candidate, or a simpler one whose mean is within one standard error
    of the best (see :data:`SIMPLICITY`); and, when a simpler one won so, a clause saying why."""
    best = ranked[0]
    sign = 1.0 if higher else -1.0
    for candidate in sorted(ranked[1:], key=lambda c: SIMPLICITY.index(c.kind)):
        if SIMPLICITY.index(candidate.kind) >= SIMPLICITY.index(best.kind):
            break
        if len(best.folds) < 2 or len(candidate.folds) != len(best.folds):
            break
        gaps = sign * (np.asarray(best.folds) - np.asarray(candidate.folds))
        error = float(np.std(gaps, ddof=1) / math.sqrt(len(gaps)))
        # An exact tie keeps the ranking's order (KIND_ORDER: the model), as it always has.
        if 0 < float(np.mean(gaps)) <= error:
            return candidate, (
                f"; the {best.kind}'s lead of {float(np.mean(gaps)):.4f} is within one standard error "
                f"({error:.4f}) of the per-fold differences, so the simpler {candidate.kind} is kept"
            )
    return best, ""


def _reason(plan: SelectionPlan, winner: Scored, ranked: list[Scored], metric: str, within: str = "") -> str:
    def show(c: Scored) -> str:
        spread = f" ± {c.spread:.4f}" if math.isfinite(c.spread) else ""
        return f"{c.kind} {c.mean:.4f}{spread}"

    others = ", ".join(show(c) for c in ranked if c is not winner)
    return f"the {winner.kind} won {plan.description}: mean {metric} {show(winner)} vs {others}{within}"


def baseline_grid(task: TaskType) -> list[dict[str, Any]]:
    """Every configuration of the task's ``baseline_space`` (one empty one without it)."""
    space = task.baseline_space()
    if not space:
        return [{}]
    names = list(space)
    return [dict(zip(names, values, strict=True)) for values in itertools.product(*(space[n] for n in names))]


def _search_baseline(
    task: TaskType,
    data: Dataset,
    run: Callable[[str, dict[str, Any]], tuple[np.ndarray, tuple[float, ...]]],
) -> Scored:
    tried: list[tuple[dict[str, Any], np.ndarray, tuple[float, ...]]] = []
    for params in baseline_grid(task):
        proba, folds = run("baseline", params)
        tried.append((params, proba, folds))
    first = task.evaluate(data, tried[0][1])
    sign = 1.0 if first.higher_is_better else -1.0
    # max() keeps the first of equal scores: the task lists its preferred configuration first.
    params, proba, folds = max(tried, key=lambda t: sign * float(np.mean(t[2])))
    searched = tuple(
        {"params": p, "mean": float(np.mean(f)), "spread": float(np.std(f)) if len(f) > 1 else None}
        for p, _, f in tried
    )
    return Scored(
        "baseline", params, folds, proba, task.evaluate(data, proba), searched if len(tried) > 1 else ()
    )


def _blend(
    task: TaskType, data: Dataset, folds: list[tuple[np.ndarray, np.ndarray]], model: Scored, baseline: Scored
) -> Scored | None:
    """The model-baseline blend (geometric, see :mod:`mlplug.blend`). In CV each fold is
    scored with the weight chosen on the other folds' predictions, so the weight's choice
    does not flatter its own score."""

    def score(weight: float, rows: np.ndarray) -> float:
        proba = blend_proba([model.proba[rows], baseline.proba[rows]], [weight, 1 - weight])
        return task.evaluate(data.subset(rows), proba).score

    sign = 1.0 if model.metrics.higher_is_better else -1.0
    everything = np.arange(len(data))
    scores = []
    for _, test in folds:
        others = np.setdiff1d(everything, test) if len(folds) > 1 else test
        weight = max(BLEND_WEIGHTS, key=lambda w: sign * score(w, others))
        scores.append(score(weight, test))
    weight = max(BLEND_WEIGHTS, key=lambda w: sign * score(w, everything))
    proba = blend_proba([model.proba, baseline.proba], [weight, 1 - weight])
    params = {"weight": weight, "model": dict(model.params), "baseline": dict(baseline.params)}
    return Scored("blend", params, tuple(scores), proba, task.evaluate(data, proba))


def _folds(data: Dataset, k: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    from sklearn.model_selection import StratifiedKFold

    return list(
        StratifiedKFold(n_splits=k, shuffle=True, random_state=seed).split(np.zeros(len(data)), data.y)
    )


def _cross_validate(
    task: TaskType,
    data: Dataset,
    folds: list[tuple[np.ndarray, np.ndarray]],
    kind: str,
    params: dict[str, Any],
) -> tuple[np.ndarray, tuple[float, ...]]:
    """Out-of-fold probabilities and per-fold scores of one configuration. Each fold's model
    is fitted without validation data: with the parameters it will be refitted with."""
    proba = np.zeros((len(data), len(data.schema.classes)))
    for fit_rows, test_rows in folds:
        model = _build(task, data, kind, params)
        fit_model(model, data.subset(fit_rows), None)
        proba[test_rows] = np.asarray(model.predict_proba(data.subset(test_rows).X), dtype=np.float64)
    return proba, _fold_scores(task, data, folds, proba)


def _fold_scores(
    task: TaskType, data: Dataset, folds: list[tuple[np.ndarray, np.ndarray]], proba: np.ndarray
) -> tuple[float, ...]:
    return tuple(task.evaluate(data.subset(test), proba[test]).score for _, test in folds)


def _build(task: TaskType, data: Dataset, kind: str, params: dict[str, Any]) -> Model:
    if kind == "model":
        return task.create_model(data.schema, params)
    return build_baseline(task, data.schema, params)


# -- refit ----------------------------------------------------------------------------------


def refit(
    task: TaskType,
    train: Dataset,
    more: Sequence[Dataset],
    selection: Selection,
    fitted_model: Model,
    *,
    kinds: Sequence[str] | None = None,
) -> list[Candidate]:
    """Fit the candidates on the training rows and the parts in ``more`` (the validation part;
    after the champion comparison, the holdout too) with their chosen parameters, the winner wrapped
    in its calibration; each carries its selection scores. The tuned model's iteration count
    (or whatever its ``refit_params`` says) is scaled from its training rows to all of them.
    The tuned model is refitted only when a candidate asked for uses it (it may be costly);
    otherwise its figures are those of ``fitted_model``. ``kinds``: only these candidates
    (the final fit makes only the registered one); default every candidate, the tuned model
    refitted when the winner uses it.

    With no ``more`` (the run's ``refit_on_all_rows`` off) nothing is fitted again but the
    baseline with its chosen parameters, on the training rows as the tuned model was: the
    candidates are the fits that selection validated."""
    data = concat(train, *more) if more else train
    scale = len(data) / len(train)
    wanted = [k for k in KIND_ORDER if kinds is None or k in kinds]
    needs_model = set(kinds or (selection.winner,)) & {"model", "blend"}
    needs_baseline = {"baseline", "blend"} & set(wanted)
    baseline_params = selection.get("baseline").params
    baseline: Model | None = None
    with Progress(f"refitting the {task.name} candidates", artifact_key(task.name, "refit"), "fits") as shown:
        if more and needs_model:
            model_params = {**selection.get("model").params, **refit_params(fitted_model, scale)}
            model = task.create_model(data.schema, model_params)
            fit_model(model, data, None, work=shown.update)
        else:
            model, model_params = fitted_model, dict(selection.get("model").params)
        if needs_baseline:
            baseline = build_baseline(task, data.schema, baseline_params)
            fit_model(baseline, data, None)
    models: dict[str, tuple[Model, dict[str, Any]]] = {"model": (model, model_params)}
    if baseline is not None:
        models["baseline"] = (baseline, dict(baseline_params))
        if any(c.kind == "blend" for c in selection.candidates):
            weight = float(selection.get("blend").params["weight"])
            models["blend"] = (
                BlendModel([model, baseline], [weight, 1 - weight], ["model", "baseline"]),  # type: ignore[arg-type]
                {"weight": weight, "model": model_params, "baseline": dict(baseline_params)},
            )
    calibrator = selection.calibration.calibrator
    out = []
    for kind in wanted:
        if kind not in models:
            continue
        fitted, params = models[kind]
        if kind == selection.winner and calibrator is not None:
            fitted = CalibratedModel(fitted, calibrator)  # type: ignore[assignment]
        scored = selection.get(kind)
        out.append(Candidate(kind, fitted, params, scored.metrics, scored.folds, scored.searched))
    return out


def concat(*parts: Dataset) -> Dataset:
    frame = pd.concat([p.frame for p in parts], ignore_index=True)
    return Dataset(frame, parts[0].schema, parts[0].source)


def _rarest(y: np.ndarray) -> int:
    _, counts = np.unique(y, return_counts=True)
    return int(counts.min()) if len(counts) > 1 else 0


def fold_table(candidates: Sequence[Scored]) -> list[dict[str, Any]]:
    """One row per candidate: fold scores, mean and spread (for logs and benchmarks)."""
    return [{"kind": c.kind, "folds": list(c.folds), "mean": c.mean, "spread": c.spread} for c in candidates]
