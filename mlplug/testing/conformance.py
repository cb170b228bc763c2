"""The conformance check a task plugin runs against its own task types.

``check_task(task, workdir)`` exercises the whole contract on a small synthetic sample:
schema and search space, determinism and drift of the generator, the loader on csv,
parquet and jsonl files, fit / predict / save / reload for the model and the baseline,
the serving paths (one-row predictions, ``predict_proba_rows``, a one-row ``explain`` on
unlabelled records as ``/explain`` calls it), metrics, business value and explanations.

It raises ``ConformanceError`` naming the step that failed and what was expected. An
exception raised by the plugin's own code becomes a ``ConformanceError`` too, naming the step
and the method that raised, with the original exception as its cause (``raise ... from``),
so the traceback still leads into the plugin.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from numbers import Integral
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import pandas as pd

from mlplug.dataset import Dataset
from mlplug.errors import DataError
from mlplug.plugins import _TASK_NAME
from mlplug.schema import Role, Schema, text_as_categories
from mlplug.task import (
    BusinessValue,
    Explanation,
    LoadOptions,
    Metrics,
    Model,
    SearchSpace,
    TaskType,
    accepts_category_dtype,
    fit_model,
)

T = TypeVar("T")

#: Rows tried one at a time for the serving-time explanation check.
EXPLAIN_ROWS_TRIED = 5


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


def _call(step: str, what: str, func: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Call plugin code; its exceptions become a ``ConformanceError`` naming ``step`` and
    ``what`` (the method), chained to the original."""
    try:
        return func(*args, **kwargs)
    except ConformanceError:
        raise
    except Exception as exc:
        raise ConformanceError(f"{step}: {what} raised {type(exc).__name__}: {exc}") from exc


def _method(obj: object, name: str) -> str:
    return f"{type(obj).__name__}.{name}()"


def check_task(task: TaskType, workdir: Path, rows: int = 600, seed: int = 7) -> ConformanceReport:
    report = ConformanceReport(task=getattr(task, "name", "?"))
    _check_declaration(task, seed)
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
    """The profiled columns are what ``monitored_columns`` promises, one row per input row
    (also for the one-row batches a server profiles), and a whylogs profile of them can be
    written and read back."""
    from mlplug.monitoring.features import monitored_columns, monitoring_frame
    from mlplug.monitoring.whylogs_compat import Profile

    step = "monitoring"
    what = _method(task, "monitor_features")
    for X in (data.X, data.X.iloc[:1]):  # noqa: N806
        extra = _call(step, what, task.monitor_features, X)
        _expect(isinstance(extra, pd.DataFrame), step, f"{what} must return a DataFrame")
        _expect(len(extra) == len(X), step, f"{what} gave {len(extra)} rows for {len(X)}")
    proba = np.full((len(data), len(data.schema.classes)), 1 / len(data.schema.classes))
    frame = _call(step, "profiling the monitored columns", monitoring_frame, task, data.schema, data.X, proba)
    promised = [c.name for c in monitored_columns(task, data.schema)]
    _expect(list(frame.columns) == promised, step, f"profiled columns {list(frame.columns)} != {promised}")
    profile = Profile.from_bytes(Profile.of(frame).to_bytes())
    _expect(profile.rows() == len(data), step, f"profile holds {profile.rows()} rows, not {len(data)}")


def _check_declaration(task: TaskType, seed: int) -> None:
    step = "declaration"
    _expect(isinstance(task, TaskType), step, "task must subclass mlplug.task.TaskType")
    _expect(bool(_TASK_NAME.match(getattr(task, "name", ""))), step, f"name must match {_TASK_NAME.pattern}")
    _expect(issubclass(task.options_model, LoadOptions), step, "options_model must subclass LoadOptions")
    _call(step, f"{task.options_model.__name__}() with no options", task.options_model)
    space = _call(step, _method(task, "search_space"), task.search_space)
    _expect(isinstance(space, SearchSpace), step, "search_space() must return a SearchSpace")
    _expect(len(space.params) > 0, step, "search space has no parameters")
    _expect(1 <= space.grace_steps <= space.max_steps, step, "need 1 <= grace_steps <= max_steps")
    for name in ("default_params", "quick_params", "demo_settings"):
        params = _call(step, _method(task, name), getattr(task, name))
        _expect(isinstance(params, dict), step, f"{name}() must return a dict")


def _check_generator(task: TaskType, rows: int, seed: int) -> Dataset:
    step = "synthetic data"
    what = _method(task, "synthesize")
    data = _call(step, what, task.synthesize, rows, seed=seed)
    _expect(isinstance(data, Dataset), step, "synthesize() must return a Dataset")
    _expect(len(data) == rows, step, f"asked for {rows} rows, got {len(data)}")
    again = _call(step, what, task.synthesize, rows, seed=seed)
    _expect(data.frame.equals(again.frame), step, "the same seed must give the same data")
    drifted = _call(step, f"{what} with drift=1.0", task.synthesize, rows, seed=seed, drift=1.0)
    _expect(not data.frame.equals(drifted.frame), step, "drift=1.0 must change the data")
    validated = _call(step, "Schema.validate on the synthetic frame", data.schema.validate, data.frame, step)
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
    options = _call(step, f"{task.options_model.__name__}(...)", _options_for, task, data)
    what = _method(task, "load")
    for fmt, path in paths.items():
        loaded = _call(step, f"{what} on a {fmt} file", task.load, path.as_uri(), options)
        _expect(isinstance(loaded, Dataset), step, f"{what} must return a Dataset")
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
    except Exception as exc:
        raise ConformanceError(
            f"{step}: {what} on a missing file must raise mlplug.errors.DataError naming it, "
            f"not {type(exc).__name__}: {exc}"
        ) from exc
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
    space = task.search_space()
    if kind == "model":
        _check_search_point(task, train, space, step)
        model = _call(
            step, _method(task, "create_model"), task.create_model, train.schema, task.quick_params()
        )
    else:
        model = _call(step, _method(task, "create_baseline"), task.create_baseline, train.schema)
    progress: list[tuple[int, float]] = []
    work: list[tuple[int, int, str]] = []
    _call(
        step,
        _method(model, "fit"),
        fit_model,
        model,
        train,
        valid,
        progress=lambda s, v: progress.append((s, v)),
        work=lambda done, total, detail="": work.append((done, total, detail)),
    )
    _check_progress(progress, space if kind == "model" else None, step)
    _check_work(work, step)
    X = valid.X  # noqa: N806
    before = X.copy()
    proba = _predict(model, X, step)
    _expect(
        X.equals(before), step, f"{_method(model, 'predict_proba')} must not change the frame it is given"
    )
    shape = (len(valid), len(valid.schema.classes))
    _expect(proba.shape == shape, step, f"predict_proba shape {proba.shape}, expected {shape}")
    _expect(bool(np.isfinite(proba).all()), step, "predict_proba returned NaN or inf")
    _expect(bool((proba >= 0).all() and (proba <= 1).all()), step, "probabilities must lie in [0, 1]")
    _expect(bool(np.allclose(proba.sum(axis=1), 1.0, atol=1e-5)), step, "probabilities must sum to 1")
    single = _predict(model, X.iloc[:1], step)
    _expect(np.allclose(single, proba[:1], atol=1e-5), step, "one-row predictions differ from batch ones")
    _check_rows(model, X, proba, step)
    _check_categories(model, X, valid.schema, step)
    workdir.mkdir(parents=True, exist_ok=True)
    _call(step, _method(model, "save"), model.save, workdir)
    reloaded = _call(step, _method(task, "load_model"), task.load_model, workdir)
    again = _predict(reloaded, X, step)
    _expect(np.allclose(again, proba, atol=1e-5), step, "reloaded model predicts differently")
    metrics = _check_metrics(task, valid, proba, step)
    value = _call(step, _method(task, "business_value"), task.business_value, valid, proba, metrics)
    _expect(isinstance(value, BusinessValue), step, "business_value() must return BusinessValue")
    _expect(
        _finite(value.value) and _finite(value.no_model_value),
        step,
        f"business value must be finite: value={value.value!r}, no_model_value={value.no_model_value!r}",
    )
    _check_explain(task, model, valid, step)
    _check_serving_explain(task, reloaded, valid, step)
    return metrics


def _predict(model: Model, X: pd.DataFrame, step: str) -> np.ndarray:  # noqa: N803
    return np.asarray(
        _call(step, f"{_method(model, 'predict_proba')} on {len(X)} row(s)", model.predict_proba, X)
    )


def _check_search_point(task: TaskType, train: Dataset, space: SearchSpace, step: str) -> None:
    """``create_model`` accepts a point of the search space plus ``seed``, as a Ray Tune
    trial passes it; a misspelt parameter name fails here instead of in every trial."""
    fallback = task.quick_params()
    point: dict[str, Any] = {}
    for name, value in space.params.items():
        drawn = _sample(value)
        if drawn is not _UNSAMPLED:
            point[name] = drawn
        elif name in fallback:
            point[name] = fallback[name]
    point.setdefault("seed", 0)
    what = f"{_method(task, 'create_model')} with a point of the search space {point}"
    _call(step, what, task.create_model, train.schema, point)


_UNSAMPLED = object()


def _sample(value: Any) -> Any:
    """One value of a ``ray.tune`` sampler (``tune.uniform``, ``tune.choice``, ...), a grid
    search's first value, or a constant as it is. Samplers that need the rest of the config
    (``tune.sample_from``) give ``_UNSAMPLED``."""
    if isinstance(value, dict) and set(value) == {"grid_search"}:
        return value["grid_search"][0]
    sample = getattr(value, "sample", None)
    if not callable(sample):
        return value
    try:
        return sample(random_state=np.random.default_rng(0))
    except Exception:  # a function of other parameters: nothing to draw on its own
        return _UNSAMPLED


def _check_progress(progress: list[tuple[int, float]], space: SearchSpace | None, step: str) -> None:
    """Progress reports become Ray Tune reports: finite scores, increasing steps, and no more
    reports than ``max_steps`` (ASHA stops a trial at ``max_steps`` reports, mid-fit)."""
    steps = [s for s, _ in progress]
    bad = [v for _, v in progress if not _finite(v)]
    _expect(not bad, step, f"fit() reported non-finite progress scores {bad[:3]}")
    increasing = steps == sorted(steps) and len(set(steps)) == len(steps)
    _expect(increasing, step, f"fit() must report increasing steps, got {steps[:10]}")
    if space is not None:
        _expect(
            len(progress) <= space.max_steps,
            step,
            f"fit() reported progress {len(progress)} times with quick_params(); search_space().max_steps "
            f"is {space.max_steps}, and ASHA stops a trial after max_steps reports",
        )


def _check_work(work: list[tuple[int, int, str]], step: str) -> None:
    """Work reports (``fit(..., work=...)``, shown as progress): 0 <= done <= total, and done
    never goes back."""
    whole = all(isinstance(d, Integral) and isinstance(t, Integral) for d, t, _ in work)
    bad = [(d, t) for d, t, _ in work if not 0 <= d <= t]
    _expect(whole, step, f"fit() must report work as whole numbers (done, total), got {work[:3]}")
    _expect(not bad, step, f"fit() reported work (done, total) outside 0 <= done <= total: {bad[:3]}")
    done = [d for d, _, _ in work]
    _expect(done == sorted(done), step, f"fit() reported work going back: {done[:10]}")


def _check_rows(model: Model, X: pd.DataFrame, proba: np.ndarray, step: str) -> None:  # noqa: N803
    """The serving fast path (``RowModel.predict_proba_rows``) must agree with ``predict_proba``
    on the same records, given as the server gives them: plain rows in feature order."""
    rows_method = getattr(model, "predict_proba_rows", None)
    if not callable(rows_method):
        return
    rows = X.astype(object).to_numpy().tolist()
    what = f"{_method(model, 'predict_proba_rows')} (the serving fast path)"
    out = np.asarray(_call(step, what, rows_method, rows))
    _expect(out.shape == proba.shape, step, f"{what} gave shape {out.shape}, predict_proba {proba.shape}")
    _expect(bool(np.allclose(out, proba, atol=1e-6)), step, f"{what} disagrees with predict_proba")
    one = np.asarray(_call(step, f"{what} on one row", rows_method, rows[:1]))
    _expect(
        bool(np.allclose(one, proba[:1], atol=1e-6)), step, f"{what} on one row disagrees with predict_proba"
    )


def _check_categories(model: Model, X: pd.DataFrame, schema: Schema, step: str) -> None:  # noqa: N803
    """A model that accepts categorical columns as pandas ``category`` (``CategoryModel``)
    must predict exactly what it predicts from text, also for a value it never saw and a
    missing one (``""``)."""
    columns = schema.columns_with(Role.CATEGORICAL)
    if not columns or not accepts_category_dtype(model):
        return
    text = X.copy()
    text.loc[text.index[0], columns] = "\x00never seen"
    text.loc[text.index[-1], columns] = ""
    what = f"{_method(model, 'predict_proba')} with categorical columns as pandas category"
    expected = _predict(model, text, step)
    got = np.asarray(_call(step, what, model.predict_proba, text_as_categories(text, columns)))
    _expect(
        got.shape == expected.shape and bool(np.array_equal(got, expected)),
        step,
        f"{what} differs from the same rows as text (accepts_category_dtype promises the same)",
    )


def _check_metrics(task: TaskType, valid: Dataset, proba: np.ndarray, step: str) -> Metrics:
    what = _method(task, "evaluate")
    metrics = _call(step, what, task.evaluate, valid, proba)
    _expect(
        isinstance(metrics, Metrics) and metrics.primary in metrics.values,
        step,
        "evaluate() must return Metrics whose primary metric is in values",
    )
    _expect(_finite(metrics.score), step, f"primary metric {metrics.primary!r} is {metrics.score!r}")
    not_numbers = [k for k, v in metrics.values.items() if not isinstance(v, int | float | np.number)]
    _expect(not not_numbers, step, f"metric values must be numbers; not numbers: {not_numbers}")
    if metrics.threshold is not None:
        _expect(_finite(metrics.threshold), step, f"threshold {metrics.threshold!r} must be a finite number")
    fixed = _call(
        step, f"{what} with a given threshold", task.evaluate, valid, proba, threshold=metrics.threshold
    )
    _expect(fixed.threshold == metrics.threshold, step, "evaluate() must apply a given threshold")
    return metrics


def _check_explain(task: TaskType, model: Model, valid: Dataset, step: str) -> None:
    what = _method(task, "explain")
    explanation = _call(step, what, task.explain, model, valid, rows=5)
    _expect(
        isinstance(explanation, Explanation) and bool(explanation.global_importance),
        step,
        "explain() must return an Explanation with global importance",
    )
    _check_values(explanation, 5, what, step)


def _check_serving_explain(task: TaskType, model: Model, valid: Dataset, step: str) -> None:
    """``/explain`` calls ``explain`` with the records of one request: feature columns only
    (no target), often one row, with a model loaded from the store. Explaining one row must
    work and must not give all-zero attributions for every row tried, which is what happens
    when reference values (means, background rows) are taken from ``data`` instead of from
    the model."""
    what = f"{_method(task, 'explain')} on one unlabelled row (as POST /explain calls it)"
    tried = min(EXPLAIN_ROWS_TRIED, len(valid))
    for i in range(tried):
        one = Dataset(valid.X.iloc[[i]].reset_index(drop=True), valid.schema, "explain request")
        explanation = _call(step, what, task.explain, model, one, rows=1)
        _expect(isinstance(explanation, Explanation), step, f"{what} must return an Explanation")
        _check_values(explanation, 1, what, step)
        values = [*explanation.global_importance.values()]
        values += [v for row in explanation.per_row for v in row.values()]
        if any(v != 0 for v in values):
            return
    raise ConformanceError(
        f"{step}: {what} gave only zero attributions for each of {tried} rows tried. At serve time "
        "`data` holds just the records of one request: take reference values (feature means, "
        "background rows) from the fitted model, saved with it, not from `data`"
    )


def _check_values(explanation: Explanation, rows: int, what: str, step: str) -> None:
    _expect(
        isinstance(explanation.kind, str) and bool(explanation.kind),
        step,
        f"{what}: Explanation.kind is empty",
    )
    _expect(
        len(explanation.per_row) <= rows,
        step,
        f"{what}: per_row holds {len(explanation.per_row)} rows for {rows} asked for",
    )
    for name, mapping in [("global_importance", explanation.global_importance)] + [
        (f"per_row[{i}]", row) for i, row in enumerate(explanation.per_row)
    ]:
        _expect(isinstance(mapping, Mapping), step, f"{what}: {name} must be a mapping of names to numbers")
        bad = {k: v for k, v in mapping.items() if not isinstance(k, str) or not _finite(v)}
        _expect(
            not bad,
            step,
            f"{what}: {name} has non-finite values or non-string keys: {dict(list(bad.items())[:3])}",
        )


def _finite(value: Any) -> bool:
    try:
        return math.isfinite(float(value))
    except (TypeError, ValueError):
        return False
