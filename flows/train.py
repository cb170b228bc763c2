"""The ``train`` flow: data in, a tuned, evaluated, versioned (and maybe promoted) model out.

It composes steps from :mod:`mlplug.training`; nothing here knows a task type.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE

from mlplug import training
from mlplug.dataset import Dataset
from mlplug.monitoring.profiles import REFERENCE_FILE, reference_profile
from mlplug.options import parse_options
from mlplug.plugins import get_plugins
from mlplug.registry import DatasetRef, ModelVersion, Registry, open_registry
from mlplug.reporting import REPORT_FILE, ReportContext, build_report, publish_artifacts
from mlplug.settings import get_settings
from mlplug.task import TaskType
from mlplug.tuning import TuneResult, tune_task

STORAGE_RETRIES = {"retries": 3, "retry_delay_seconds": [1, 4, 10]}


@task(cache_policy=NO_CACHE)
def load_data(
    task_type: TaskType, data: str | None, options: dict[str, Any] | None, rows: int, seed: int, drift: float
) -> Dataset:
    if data:
        return task_type.load(data, parse_options(task_type, options))
    return task_type.synthesize(rows, seed=seed, drift=drift)


@task(cache_policy=NO_CACHE, **STORAGE_RETRIES)
def version_dataset(registry: Registry, task_name: str, dataset: Dataset) -> DatasetRef:
    return registry.put_dataset(task_name, dataset)


@task(cache_policy=NO_CACHE, log_prints=False)  # Ray Tune prints progress tables
def tune(
    task_type: TaskType,
    parts: training.Split,
    trials: int,
    seed: int,
    cpus: int | None,
    fixed: dict[str, Any] | None,
) -> TuneResult | None:
    if trials <= 0:
        return None
    scratch = get_settings().home / "ray"
    scratch.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=scratch) as workdir:
        return tune_task(
            task_type,
            parts.train,
            parts.valid,
            trials=trials,
            workdir=Path(workdir),
            seed=seed,
            cpus=cpus,
            fixed=fixed,
        )


@task(cache_policy=NO_CACHE)
def fit(task_type: TaskType, kind: str, parts: training.Split, params: dict[str, Any]) -> training.Candidate:
    return training.fit_candidate(task_type, kind, parts.train, parts.valid, params)


@task(cache_policy=NO_CACHE, **STORAGE_RETRIES)
def register(
    registry: Registry,
    task_type: TaskType,
    winner: training.Candidate,
    dataset: DatasetRef,
    parts: training.Split,
    artifacts: dict[str, bytes],
    info: dict[str, Any],
) -> ModelVersion:
    with tempfile.TemporaryDirectory(prefix="mlplug-model-") as tmp:
        winner.model.save(Path(tmp))
        return registry.register_model(
            task_type.name,
            Path(tmp),
            kind=winner.kind,
            params=winner.params,
            metrics=info["holdout_metrics"],
            dataset_hash=dataset.hash,
            schema=parts.train.schema,
            artifacts=artifacts,
            info={k: v for k, v in info.items() if k != "holdout_metrics"},
        )


@flow(name="train", log_prints=True)
def train(
    task: str,
    data: str | None = None,
    options: dict[str, Any] | None = None,
    params: dict[str, Any] | None = None,
    trials: int = 8,
    rows: int = 20_000,
    seed: int = 0,
    drift: float = 0.0,
    holdout: float = 0.2,
    min_delta: float = 0.0,
    promote: bool = True,
    cpus: int | None = None,
    store: str | None = None,
) -> dict[str, Any]:
    """Train ``task`` on ``data`` (a URL; empty: the task's synthetic generator with ``rows``,
    ``seed`` and ``drift``), tune with ``trials`` Ray Tune trials (0: default parameters;
    ``params`` pins some parameters, e.g. a smaller pretrained model, in both cases),
    register the better of model and baseline, and promote it to champion if it beats the
    current champion on the same holdout by more than ``min_delta``."""
    return train_and_register(
        task=task,
        data=data,
        options=options,
        params=params,
        trials=trials,
        rows=rows,
        seed=seed,
        drift=drift,
        holdout=holdout,
        min_delta=min_delta,
        promote=promote,
        cpus=cpus,
        store=store,
    )


def train_and_register(
    task: str,
    data: str | None = None,
    options: dict[str, Any] | None = None,
    params: dict[str, Any] | None = None,
    trials: int = 8,
    rows: int = 20_000,
    seed: int = 0,
    drift: float = 0.0,
    holdout: float = 0.2,
    min_delta: float = 0.0,
    promote: bool = True,
    cpus: int | None = None,
    store: str | None = None,
    kind: str = "train",
    trigger: str | None = None,
) -> dict[str, Any]:
    """The body of the train and refit flows; ``kind`` names the report (``train`` or
    ``refit``) and ``trigger`` says why a refit ran. Call it inside a flow run."""
    log = get_run_logger()
    started = time.perf_counter()
    timings = training.Timings()
    task_type = get_plugins().task(task)
    registry = open_registry(store)

    with timings.measure("load"):
        dataset = load_data(task_type, data, options, rows, seed, drift)
    with timings.measure("version"):
        ref = version_dataset(registry, task, dataset)
    log.info("dataset %s: %d rows from %s", ref.short, ref.rows, dataset.source)
    with timings.measure("split"):
        parts = training.split(dataset, holdout=holdout, seed=seed)
    champion = registry.alias(task)  # read once; promotion is a CAS against this record

    with timings.measure("tune"):
        tuned = tune(task_type, parts, trials, seed, cpus, params)
    chosen = dict(tuned.best_params) if tuned else {**task_type.default_params(), **(params or {})}
    with timings.measure("fit"):
        model = fit(task_type, "model", parts, chosen)
        baseline = fit(task_type, "baseline", parts, {})
    winner, choice = training.choose(model, baseline)
    log.info(choice)

    with timings.measure("evaluate"):
        holdout_proba = winner.model.predict_proba(parts.holdout.X)
        holdout_metrics = task_type.evaluate(
            parts.holdout, holdout_proba, threshold=winner.valid_metrics.threshold
        )
        other = baseline if winner is model else model
        other_proba = other.model.predict_proba(parts.holdout.X)
        other_metrics = task_type.evaluate(
            parts.holdout, other_proba, threshold=other.valid_metrics.threshold
        )
        value = task_type.business_value(parts.holdout, holdout_proba, holdout_metrics)
        champ = training.score_champion(task_type, registry, champion, parts.holdout)
        champ_value = (
            task_type.business_value(parts.holdout, champ.proba, champ.metrics)
            if champ.proba is not None and champ.metrics is not None
            else None
        )
    champ_version, champ_metrics = champ.version, champ.metrics
    with timings.measure("explain"):
        explanation = task_type.explain(winner.model, parts.holdout, rows=200)
    decision = training.decide(holdout_metrics, champ_metrics, champ.note, min_delta)

    info = {
        "holdout_metrics": holdout_metrics,
        "selection": choice,
        "split": parts.method,
        "rows": {"train": len(parts.train), "valid": len(parts.valid), "holdout": len(parts.holdout)},
        "data_source": dataset.source,
        "business_value": training.value_json(value),
        "champion_at_training": champ_version.version if champ_version else None,
        "decision": decision.reason,
        "run_kind": kind,
        "trigger": trigger,
    }
    artifacts = {
        "evaluation.json": training.dumps(
            {
                "holdout": training.metrics_json(holdout_metrics),
                "other_candidate": {"kind": other.kind, **training.metrics_json(other_metrics)},
                "champion": training.metrics_json(champ_metrics) if champ_metrics else None,
                "validation": {
                    "model": training.metrics_json(model.valid_metrics),
                    "baseline": training.metrics_json(baseline.valid_metrics),
                },
            }
        ),
        "business_value.json": training.dumps(
            {
                **training.value_json(value),
                "champion": training.value_json(champ_value) if champ_value else None,
            }
        ),
        "explanation.json": training.dumps(asdict(explanation)),
        "trials.json": training.dumps(tuned.to_dict() if tuned else {"trials": []}),
        REFERENCE_FILE: reference_profile(
            task_type, parts.holdout.schema, parts.holdout.X, holdout_proba, winner.valid_metrics.threshold
        ),
        "predictions.parquet": training.predictions_table(
            parts.holdout, {"registered": holdout_proba, other.kind: other_proba, "champion": champ.proba}
        ),
    }
    with timings.measure("report"):
        report_context = ReportContext.from_training(
            task_type=task_type,
            dataset=dataset,
            split=parts,
            registered=winner,
            other=other,
            holdout_metrics=holdout_metrics,
            other_metrics=other_metrics,
            champion=champ,
            business_value=value,
            explanation=explanation,
            tuned=tuned,
            predictions=artifacts["predictions.parquet"],
            registry=registry,
            dataset_hash=ref.hash,
            selection=choice,
            decision=decision.reason,
            kind=kind,
            trigger=trigger,
        )
        report = build_report(report_context)  # a failing section is an error box, not a raise
    artifacts[REPORT_FILE] = report.html.encode("utf-8")
    with timings.measure("register"):
        version = register(registry, task_type, winner, ref, parts, artifacts, info)

    promoted, reason = False, decision.reason
    if promote and decision.promote:
        promoted, reason = training.promote_if_unchanged(registry, task, version.version, champion, reason)
    elif not promote:
        reason = f"promotion disabled for this run ({decision.reason})"
    timings.seconds["total"] = time.perf_counter() - started

    summary = {
        "task": task,
        "run_kind": kind,
        "trigger": trigger,
        "version": version.version,
        "kind": winner.kind,
        "promoted": promoted,
        "reason": reason,
        "selection": choice,
        "primary_metric": holdout_metrics.primary,
        "metrics": holdout_metrics.values,
        "baseline_metrics": (baseline if winner is model else model).valid_metrics.values,
        "champion_metrics": champ_metrics.values if champ_metrics else None,
        "business_value": value.summary,
        "dataset": ref.hash,
        "store": registry.store.uri(f"{task}/models/{version.version}"),
        "trials": len(tuned.trials) if tuned else 0,
        "timings": timings.seconds,
    }
    report_uri = registry.store.uri(f"{task}/models/{version.version}/{REPORT_FILE}")
    summary["report"] = report_uri
    publish_artifacts(report, key=task.replace("_", "-"), link=report_uri)
    log.info("%s v%d registered; %s", task, version.version, reason)
    return summary
