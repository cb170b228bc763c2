"""The conformance check a task plugin runs against its own task types.

``check_task(task, workdir)`` exercises the whole contract on a small synthetic sample:
schema and search space, determinism and drift of the generator, the loader on csv,
parquet and jsonl files, fit / predict / save / reload for the model and the baseline,
metrics, business value and explanations. It raises ``ConformanceError`` naming the first
step that failed and what was expected.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mlplug.dataset import Dataset
from mlplug.errors import DataError
from mlplug.plugins import _TASK_NAME
from mlplug.task import BusinessValue, Explanation, LoadOptions, Metrics, SearchSpace, TaskType


class ConformanceError(AssertionError):
    pass


@dataclass
class ConformanceReport:
    task: str
    steps: list[str] = field(default_factory=list)
    metrics: dict[str, float] = field(default_factory=dict)


def _expect(condition: bool, step: str, message: str) -> None:
    if not condition:
        raise ConformanceError(f"{step}: {message}")


def check_task(task: TaskType, workdir: Path, rows: int = 600, seed: int = 7) -> ConformanceReport:
    report = ConformanceReport(task=getattr(task, "name", "?"))
    _check_declaration(task)
    report.steps.append("declaration")
    data = _check_generator(task, rows, seed)
    report.steps.append("synthetic data")
    _check_loader(task, data, workdir)
    report.steps.append("loader")
    _check_monitoring(task, data)
    report.steps.append("monitoring")
    train, valid = _split(data, seed)
    for kind in ("model", "baseline"):
        metrics = _check_model(task, kind, train, valid, workdir / kind)
        report.metrics[f"{kind}.{metrics.primary}"] = metrics.score
        report.steps.append(kind)
    return report


def _check_monitoring(task: TaskType, data: Dataset) -> None:
    """The profiled columns are what ``monitored_columns`` promises, one row per input row,
    and a whylogs profile of them can be written and read back."""
    from mlplug.monitoring.features import monitored_columns, monitoring_frame
    from mlplug.monitoring.whylogs_compat import Profile

    step = "monitoring"
    extra = task.monitor_features(data.X)
    _expect(isinstance(extra, pd.DataFrame), step, "monitor_features() must return a DataFrame")
    _expect(len(extra) == len(data), step, f"monitor_features() gave {len(extra)} rows for {len(data)}")
    proba = np.full((len(data), len(data.schema.classes)), 1 / len(data.schema.classes))
    frame = monitoring_frame(task, data.schema, data.X, proba)
    promised = [c.name for c in monitored_columns(task, data.schema)]
    _expect(list(frame.columns) == promised, step, f"profiled columns {list(frame.columns)} != {promised}")
    profile = Profile.from_bytes(Profile.of(frame).to_bytes())
    _expect(profile.rows() == len(data), step, f"profile holds {profile.rows()} rows, not {len(data)}")


def _check_declaration(task: TaskType) -> None:
    step = "declaration"
    _expect(isinstance(task, TaskType), step, "task must subclass mlplug.task.TaskType")
    _expect(bool(_TASK_NAME.match(getattr(task, "name", ""))), step, f"name must match {_TASK_NAME.pattern}")
    _expect(issubclass(task.options_model, LoadOptions), step, "options_model must subclass LoadOptions")
    space = task.search_space()
    _expect(isinstance(space, SearchSpace), step, "search_space() must return a SearchSpace")
    _expect(len(space.params) > 0, step, "search space has no parameters")
    _expect(1 <= space.grace_steps <= space.max_steps, step, "need 1 <= grace_steps <= max_steps")
    for name in ("default_params", "quick_params"):
        params = getattr(task, name)()
        _expect(isinstance(params, dict), step, f"{name}() must return a dict")


def _check_generator(task: TaskType, rows: int, seed: int) -> Dataset:
    step = "synthetic data"
    data = task.synthesize(rows, seed=seed)
    _expect(isinstance(data, Dataset), step, "synthesize() must return a Dataset")
    _expect(len(data) == rows, step, f"asked for {rows} rows, got {len(data)}")
    again = task.synthesize(rows, seed=seed)
    _expect(data.frame.equals(again.frame), step, "the same seed must give the same data")
    drifted = task.synthesize(rows, seed=seed, drift=1.0)
    _expect(not data.frame.equals(drifted.frame), step, "drift=1.0 must change the data")
    validated = data.schema.validate(data.frame, source=step)
    _expect(
        list(validated.columns[: len(data.schema.features)]) == data.schema.feature_names,
        step,
        "frame must already be normalised by Schema.validate",
    )
    classes_seen = set(np.unique(data.y))
    _expect(len(classes_seen) >= 2, step, f"need at least two classes in {rows} rows")
    return data


def _check_loader(task: TaskType, data: Dataset, workdir: Path) -> None:
    step = "loader"
    workdir.mkdir(parents=True, exist_ok=True)
    frame = data.frame.copy()
    frame[data.schema.target] = [data.schema.classes[i] for i in data.y]
    paths = {
        "csv": workdir / "sample.csv",
        "parquet": workdir / "sample.parquet",
        "jsonl": workdir / "sample.jsonl",
    }
    frame.to_csv(paths["csv"], index=False)
    frame.to_parquet(paths["parquet"], index=False)
    frame.to_json(paths["jsonl"], orient="records", lines=True, date_format="iso")
    options = _options_for(task, data)
    for fmt, path in paths.items():
        loaded = task.load(path.as_uri(), options)
        _expect(len(loaded) == len(data), step, f"{fmt}: read {len(loaded)} rows, wrote {len(data)}")
        _expect(
            set(data.schema.feature_names) <= set(loaded.frame.columns),
            step,
            f"{fmt}: loaded frame lacks feature columns",
        )
        _expect(bool((loaded.y == data.y).all()), step, f"{fmt}: labels changed on the round trip")
    missing = workdir / "does-not-exist.csv"
    try:
        task.load(missing.as_uri(), options)
    except DataError as exc:
        _expect("does-not-exist.csv" in str(exc), step, f"error for a missing file must name it: {exc}")
    else:
        raise ConformanceError(f"{step}: loading a missing file must raise DataError")


def _options_for(task: TaskType, data: Dataset) -> LoadOptions:
    """Options naming the synthetic schema's columns, for fields the options model has."""
    schema = data.schema
    candidates: dict[str, Any] = {
        "target": schema.target,
        "label_col": schema.target,
        "id_col": schema.id_column,
        "time_col": schema.time_column,
    }
    text = [c.name for c in schema.features if c.role.value == "text"]
    if text:
        candidates["text_col"] = text[0]
    fields = task.options_model.model_fields
    return task.options_model(**{k: v for k, v in candidates.items() if k in fields and v is not None})


def _split(data: Dataset, seed: int) -> tuple[Dataset, Dataset]:
    order = np.random.default_rng(seed).permutation(len(data))
    cut = int(len(order) * 0.75)
    return data.subset(order[:cut]), data.subset(order[cut:])


def _check_model(task: TaskType, kind: str, train: Dataset, valid: Dataset, workdir: Path) -> Metrics:
    step = kind
    if kind == "model":
        model = task.create_model(train.schema, task.quick_params())
    else:
        model = task.create_baseline(train.schema)
    progress: list[tuple[int, float]] = []
    model.fit(train, valid, progress=lambda s, v: progress.append((s, v)))
    proba = np.asarray(model.predict_proba(valid.X))
    shape = (len(valid), len(valid.schema.classes))
    _expect(proba.shape == shape, step, f"predict_proba shape {proba.shape}, expected {shape}")
    _expect(bool(np.isfinite(proba).all()), step, "predict_proba returned NaN or inf")
    _expect(bool(np.allclose(proba.sum(axis=1), 1.0, atol=1e-5)), step, "probabilities must sum to 1")
    single = np.asarray(model.predict_proba(valid.X.iloc[:1]))
    _expect(np.allclose(single, proba[:1], atol=1e-5), step, "one-row predictions differ from batch ones")
    workdir.mkdir(parents=True, exist_ok=True)
    model.save(workdir)
    reloaded = task.load_model(workdir)
    again = np.asarray(reloaded.predict_proba(valid.X))
    _expect(np.allclose(again, proba, atol=1e-5), step, "reloaded model predicts differently")
    metrics = task.evaluate(valid, proba)
    fixed = task.evaluate(valid, proba, threshold=metrics.threshold)
    _expect(fixed.threshold == metrics.threshold, step, "evaluate() must apply a given threshold")
    _expect(
        isinstance(metrics, Metrics) and metrics.primary in metrics.values,
        step,
        "evaluate() must return Metrics whose primary metric is in values",
    )
    value = task.business_value(valid, proba, metrics)
    _expect(isinstance(value, BusinessValue), step, "business_value() must return BusinessValue")
    explanation = task.explain(model, valid, rows=5)
    _expect(
        isinstance(explanation, Explanation) and explanation.global_importance,
        step,
        "explain() must return an Explanation with global importance",
    )
    return metrics
