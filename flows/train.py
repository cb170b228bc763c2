"""The ``train`` flow: data in, a tuned, evaluated, versioned (and maybe promoted) model out.

:func:`train_run` is its table of contents: one Prefect task per step, so the UI shows each
with its own timing; the work is in :mod:`mlplug.training` and the objects it returns. The
``refit`` flow runs the same steps. Nothing here knows a task type.
"""

from __future__ import annotations

import contextvars
import functools
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.runtime import flow_run

from mlplug import layout, selection, training
from mlplug import row_fingerprints as fingerprints
from mlplug.dataset import Dataset
from mlplug.explaining import explain_model
from mlplug.flowrun import STORE_RETRIES, fails_cleanly, open_run_registry
from mlplug.monitoring.profiles import reference_profile
from mlplug.options import parse_options
from mlplug.parameters import TrainParameters, flow_parameters
from mlplug.plugins import get_plugins
from mlplug.record import TrainingRecord
from mlplug.registry import AliasRecord, DatasetRef, ModelVersion, Registry
from mlplug.reporting import Report, ReportContext, build_report, publish_artifacts
from mlplug.settings import get_settings
from mlplug.stored_model import save_model
from mlplug.task import Explanation, TaskType
from mlplug.tuning import TuneResult, tune_task

F = TypeVar("F", bound=Callable[..., Any])

#: Seconds per step of the running training run (each step's own work, as its task ran it).
_timings: contextvars.ContextVar[dict[str, float]] = contextvars.ContextVar("mlplug_timings")


def step(name: str, **options: Any) -> Callable[[F], F]:
    """A training step: a Prefect task named for the UI, whose time the run's record keeps."""

    def decorate(fn: F) -> F:
        @functools.wraps(fn)
        def timed(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                timings = _timings.get(None)
                if timings is not None:
                    timings[name] = timings.get(name, 0.0) + time.perf_counter() - started

        return task(name=name, cache_policy=NO_CACHE, **options)(timed)  # type: ignore[return-value]

    return decorate


@step("load")
def load_data(task_type: TaskType, p: TrainParameters) -> Dataset:
    if p.data:
        dataset = task_type.load(p.data, parse_options(task_type, p.options))
    else:
        dataset = task_type.synthesize(p.rows, seed=p.seed, drift=p.drift)
    return dataset.window(p.since, p.until)


@step("version", **STORE_RETRIES)
def version_dataset(registry: Registry, task_name: str, dataset: Dataset) -> DatasetRef:
    return registry.put_dataset(task_name, dataset)


@step("split")
def split(dataset: Dataset, p: TrainParameters) -> training.Split:
    return training.split(dataset, holdout=p.holdout, seed=p.seed)


@step("tune", log_prints=False)  # Ray Tune prints progress tables
def tune(task_type: TaskType, parts: training.Split, p: TrainParameters) -> TuneResult | None:
    if p.trials <= 0:
        return None
    scratch = get_settings().home / "ray"
    scratch.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=scratch) as workdir:
        return tune_task(
            task_type,
            parts.train,
            parts.valid,
            trials=p.trials,
            workdir=Path(workdir),
            seed=p.seed,
            cpus=p.cpus or None,
            fixed=p.params,
        )


@step("fit")
def fit_model(
    task_type: TaskType, parts: training.Split, tuned: TuneResult | None, p: TrainParameters
) -> training.Candidate:
    chosen = dict(tuned.best_params) if tuned else {**task_type.default_params(), **p.params}
    return training.fit_candidate(task_type, "model", parts.train, parts.valid, chosen)


@step("select")
def select(
    task_type: TaskType, parts: training.Split, fitted: training.Candidate, p: TrainParameters
) -> selection.Selection:
    return selection.select(
        task_type,
        parts.train,
        parts.valid,
        parts.method,
        fitted.model,
        fitted.params,
        seed=p.seed,
        fit_seconds=fitted.seconds,
    )


@step("refit")
def refit(
    task_type: TaskType,
    parts: training.Split,
    chosen: selection.Selection,
    fitted: training.Candidate,
    p: TrainParameters,
) -> list[training.Candidate]:
    if not p.refit_on_all_rows:
        get_run_logger().info(
            "refit_on_all_rows is off: registering the fits that selection validated (%d training rows)",
            len(parts.train),
        )
    more = [parts.valid] if p.refit_on_all_rows else []
    return selection.refit(task_type, parts.train, more, chosen, fitted.model)


@step("evaluate", **STORE_RETRIES)
def evaluate(
    task_type: TaskType,
    registry: Registry,
    parts: training.Split,
    candidates: list[training.Candidate],
    chosen: selection.Selection,
    champion: AliasRecord | None,
    p: TrainParameters,
) -> training.Evaluation:
    return training.evaluate(
        task_type,
        registry,
        parts.holdout,
        candidates,
        champion,
        p.min_delta,
        chosen=(chosen.winner, chosen.reason),
    )


@step("final fit")
def final_fit(
    task_type: TaskType,
    parts: training.Split,
    chosen: selection.Selection,
    fitted: training.Candidate,
    evaluation: training.Evaluation,
    p: TrainParameters,
) -> training.Candidate:
    """The registered candidate fitted once more on every row, the holdout included: after
    the comparison with the champion, the holdout has done its work, and a careful analyst
    would not leave a fifth of the data out of the model they ship."""
    winner = evaluation.winner
    if not (p.refit_on_all_rows and p.refit_with_holdout):
        return winner
    more = [parts.valid, parts.holdout]
    [final] = selection.refit(task_type, parts.train, more, chosen, fitted.model, kinds=(winner.kind,))
    get_run_logger().info(
        "%s fitted again on all %d rows, the holdout included (its holdout figures are the compared fit's)",
        winner.kind,
        len(parts.train) + len(parts.valid) + len(parts.holdout),
    )
    return final


@step("explain")
def explain(task_type: TaskType, winner: training.Candidate, parts: training.Split) -> Explanation:
    return explain_model(task_type, winner.model, parts.holdout, rows=200)


@step("report")
def report(
    task_type: TaskType, record: TrainingRecord, dataset: Dataset, predictions: bytes, registry: Registry
) -> Report:
    context = ReportContext.for_training(
        task_type=task_type, record=record, dataset=dataset, predictions=predictions, registry=registry
    )
    return build_report(context)  # a failing section is an error box, not a raise


@step("register", **STORE_RETRIES)
def register(
    registry: Registry,
    task_type: TaskType,
    winner: training.Candidate,
    record: TrainingRecord,
    parts: training.Split,
    artifacts: dict[str, bytes],
) -> ModelVersion:
    with tempfile.TemporaryDirectory(prefix="mlplug-model-") as tmp:
        save_model(winner.model, Path(tmp))
        return registry.register_model(
            task_type.name,
            Path(tmp),
            kind=winner.kind,
            params=winner.params,
            metrics=record.registered.holdout or winner.valid_metrics,
            dataset_hash=record.dataset_hash,
            schema=parts.train.schema,
            artifacts={**record.artifacts(), **artifacts},
            info=record.info(),
            # One version per flow run, even when a retry repeats a registration that landed.
            registration=_run_name("register"),
        )


@step("promote", **STORE_RETRIES)
def promote(
    registry: Registry,
    version: ModelVersion,
    champion: AliasRecord | None,
    decision: training.PromotionDecision,
    p: TrainParameters,
) -> tuple[bool, str]:
    if not p.promote:
        return False, f"promotion disabled for this run ({decision.reason})"
    if not decision.promote:
        return False, decision.reason
    return training.promote_if_unchanged(
        registry, version.task, version.version, champion, decision.reason, write_id=_run_name("promote")
    )


def _run_name(what: str) -> str:
    """A name for this flow run's one registration or promotion, the same in every retry of
    its step (empty outside a flow run: the registry then makes one up)."""
    return f"flow-run-{flow_run.id}-{what}" if flow_run.id else ""


@flow(name="train", log_prints=True)
@fails_cleanly
@flow_parameters(TrainParameters)
def train(task: str, **parameters: Any) -> dict[str, Any]:
    """Train a task type: load (or generate) data, version it, tune, fit the model and the
    baseline, register the better one with its report, and promote it to champion if it
    beats the champion on the same holdout rows."""
    return train_run(task, TrainParameters(**parameters))


def train_run(
    task: str, p: TrainParameters, *, kind: str = "train", trigger: str | None = None
) -> dict[str, Any]:
    """The steps of the train and refit flows; ``kind`` names the report (``train`` or
    ``refit``) and ``trigger`` says why a refit ran. Call it inside a flow run."""
    log = get_run_logger()
    timings: dict[str, float] = {}
    token = _timings.set(timings)
    try:
        task_type = get_plugins().task(task)
        registry = open_run_registry(p.store)
        dataset = load_data(task_type, p)
        ref = version_dataset(registry, task, dataset)
        log.info("dataset %s: %d rows from %s", ref.short, ref.rows, dataset.source)
        parts = split(dataset, p)
        champion = registry.alias(task)  # read once; promotion is a CAS against this record
        tuned = tune(task_type, parts, p)
        fitted = fit_model(task_type, parts, tuned, p)
        chosen = select(task_type, parts, fitted, p)
        candidates = refit(task_type, parts, chosen, fitted, p)
        evaluation = evaluate(task_type, registry, parts, candidates, chosen, champion, p)
        log.info(evaluation.selection)
        registered = final_fit(task_type, parts, chosen, fitted, evaluation, p)
        explanation = explain(task_type, registered, parts)
        record = TrainingRecord(
            task=task,
            run_kind=kind,
            data_source=dataset.source,
            dataset_hash=ref.hash,
            split_method=parts.method,
            rows={"train": len(parts.train), "valid": len(parts.valid), "holdout": len(parts.holdout)},
            candidates=evaluation.results,
            registered_kind=evaluation.winner.kind,
            selection=evaluation.selection,
            decision=evaluation.decision.reason,
            business_value=evaluation.business_value,
            champion=evaluation.comparison(),
            explanation=explanation,
            tuning=tuned,
            trigger=trigger,
            timings=dict(timings),  # the steps before registration
            selection_method=chosen.plan.description,
            calibration=chosen.calibration,
            refit_rows=sum(len(d) for d in _fitted_parts(parts, p)),
            holdout_refit=registered is not evaluation.winner,
            holdout_rows=fingerprints.digest(
                fingerprints.row_fingerprints(parts.holdout.frame, _row_columns(parts))
            ),
        )
        artifacts = _run_artifacts(task_type, parts, evaluation, registered, p)
        rendered = report(task_type, record, dataset, artifacts[layout.PREDICTIONS], registry)
        artifacts[layout.REPORT] = rendered.html.encode("utf-8")
        version = register(registry, task_type, registered, record, parts, artifacts)
        promoted, reason = promote(registry, version, champion, evaluation.decision, p)
    finally:
        _timings.reset(token)
    report_key = layout.model_file(task, version.version, layout.REPORT)
    publish_artifacts(rendered, key=task.replace("_", "-"), store=registry.store, report_key=report_key)
    link = registry.store.uri(report_key)
    log.info("%s v%d registered; %s", task, version.version, reason)
    return _summary(record, version, promoted, reason, registry, link, timings)


def _fitted_parts(parts: training.Split, p: TrainParameters) -> list[Dataset]:
    """The parts whose rows the registered model is fitted on."""
    if not p.refit_on_all_rows:
        return [parts.train]
    return [parts.train, parts.valid, *([parts.holdout] if p.refit_with_holdout else [])]


def _row_columns(parts: training.Split) -> list[str]:
    return fingerprints.row_columns(parts.train.schema.to_dict())


def _fitted_rows(parts: training.Split, p: TrainParameters) -> np.ndarray:
    return fingerprints.fingerprints((d.frame for d in _fitted_parts(parts, p)), _row_columns(parts))


def _run_artifacts(
    task_type: TaskType,
    parts: training.Split,
    evaluation: training.Evaluation,
    registered: training.Candidate,
    p: TrainParameters,
) -> dict[str, bytes]:
    """The version's files beside its record: the rows it was fitted on, the monitoring
    reference and the holdout predictions of every candidate and the champion, for reports.
    The reference holds the registered model's own outputs, since live traffic is compared
    with what this model says; the predictions table the compared fits', as the holdout
    figures are theirs."""
    winner = evaluation.winner
    outputs = evaluation.probas[winner.kind]
    if registered is not winner:
        outputs = np.asarray(registered.model.predict_proba(parts.holdout.X))
    return {
        layout.FITTED_ROWS: fingerprints.dump(_fitted_rows(parts, p)),
        layout.REFERENCE_PROFILE: reference_profile(
            task_type,
            parts.holdout.schema,
            parts.holdout.X,
            outputs,
            winner.valid_metrics.threshold,
        ),
        layout.PREDICTIONS: training.predictions_table(
            parts.holdout,
            {
                "registered": evaluation.probas[winner.kind],
                **{kind: proba for kind, proba in evaluation.probas.items() if kind != winner.kind},
                "champion": evaluation.champion.proba,
            },
        ),
    }


def _summary(
    record: TrainingRecord,
    version: ModelVersion,
    promoted: bool,
    reason: str,
    registry: Registry,
    report_link: str,
    timings: dict[str, float],
) -> dict[str, Any]:
    holdout = record.registered.holdout
    assert holdout is not None
    champion = record.champion
    return {
        "task": record.task,
        "run_kind": record.run_kind,
        "trigger": record.trigger,
        "version": version.version,
        "kind": record.registered_kind,
        "promoted": promoted,
        "reason": reason,
        "selection": record.selection,
        "selection_method": record.selection_method,
        "fit_rows": record.refit_rows,
        "holdout_refit": record.holdout_refit,
        "calibration": record.calibration.reason if record.calibration else "",
        "folds": {c.kind: list(c.folds) for c in record.candidates if c.folds},
        "primary_metric": holdout.primary,
        "metrics": holdout.values,
        "candidates": {c.kind: c.holdout.values for c in record.candidates if c.holdout},
        "champion_metrics": champion.metrics.values if champion and champion.metrics else None,
        "business_value": record.business_value.summary if record.business_value else "",
        "dataset": record.dataset_hash,
        "store": registry.store.uri(layout.model_version(record.task, version.version)),
        "trials": len(record.tuning.trials) if record.tuning else 0,
        "timings": timings,
        "report": report_link,
    }
