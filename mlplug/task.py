"""What a task type is: the typed object a plugin registers through ``register_tasks``.

A task type bundles everything task-specific (loading, synthetic data, models, the search
space, metrics, business value, explanations); the shared flows call only these methods.
Subclass :class:`TaskType` and implement the abstract methods.
"""

from __future__ import annotations

import inspect
import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Protocol, runtime_checkable

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict

from mlplug.dataset import Dataset
from mlplug.schema import Schema

#: Called by a model during ``fit`` with (step, validation score of the primary metric).
#: Tuning turns these into Ray Tune reports so that ASHA can stop weak trials early.
ProgressCallback = Callable[[int, float], None]

#: Called by a model during ``fit`` as it works through its steps: (done, total, detail),
#: for example optimiser steps over all epochs and ``"epoch 2/3"``. mlplug shows it on the
#: terminal and as a Prefect progress artifact; call it as often as you like (display is
#: throttled). Optional: mlplug passes it only to a ``fit`` that has a ``work`` parameter.
WorkCallback = Callable[[int, int, str], None]


@runtime_checkable
class Model(Protocol):
    """A trainable model. ``predict_proba`` returns shape (rows, len(schema.classes)).

    ``fit`` may also take ``work: WorkCallback | None = None`` to report how far along it is
    (see :data:`WorkCallback`); models without it are called without it."""

    def fit(
        self, train: Dataset, valid: Dataset | None = None, progress: ProgressCallback | None = None
    ) -> None: ...

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray: ...  # noqa: N803

    def save(self, path: Path) -> None:
        """Write every file the model needs into the existing directory ``path``."""
        ...


@runtime_checkable
class RowModel(Protocol):
    """Optional fast path a :class:`Model` may add for serving: predict from plain rows.

    The server validates each request against the version's schema and hands the model
    rows, not a DataFrame: one list per record holding the feature values in
    ``schema.feature_names`` order, normalised as :meth:`Schema.validate` would (numeric and
    boolean as ``float``, NaN where a nullable number is missing; categorical and text as
    ``str``, ``""`` where missing). Building a DataFrame costs more than predicting one row
    with most models, so a model that can score rows directly should. It must return the
    same probabilities as ``predict_proba`` on the equivalent frame; models without it are
    served through a DataFrame built from the rows.
    """

    def predict_proba_rows(self, rows: Sequence[Sequence[Any]]) -> np.ndarray: ...


@runtime_checkable
class CategoryModel(Protocol):
    """Optional declaration a :class:`Model` may add: ``accepts_category_dtype = True``.

    Validated frames hold categorical columns as ``object`` text (:meth:`Schema.validate`).
    A model that declares this may be handed them as pandas ``category`` dtype instead, with
    the same values as categories (normalised text, ``""`` where missing; unseen values are
    categories like any other): streamed scoring reads dictionary-encoded chunks, so the
    codes are the dictionary's indices and no Python string is made per row, and a library
    with native categorical support reads the codes instead of hashing every row's string.
    Its ``predict_proba`` must return exactly what it returns for the same frame with
    ``object`` columns. Training frames are never converted. Models without it (the
    default) always get ``object`` text.
    """

    accepts_category_dtype: bool


def accepts_category_dtype(model: Model) -> bool:
    """Whether ``model`` declares :class:`CategoryModel` (``accepts_category_dtype = True``)."""
    return getattr(model, "accepts_category_dtype", False) is True


@runtime_checkable
class RefittableModel(Protocol):
    """Optional method a fitted :class:`Model` may add so that it can be fitted again
    without validation data, as mlplug does when it cross-validates candidates and when it
    refits the winner on every non-holdout row.

    ``refit_params(scale)`` returns the parameters (merged over the ones the model was
    created with) that reproduce what fitting with validation data decided, for a training
    set ``scale`` times as large as this fit's: a boosted model whose early stopping kept
    ``n`` iterations returns ``{"iterations": round(n * scale)}``. Models without it are
    fitted again with their own parameters and no validation data.
    """

    def refit_params(self, scale: float) -> Mapping[str, Any]: ...


def refit_params(model: Model, scale: float) -> dict[str, Any]:
    """``model.refit_params(scale)`` for a :class:`RefittableModel`, else nothing."""
    method = getattr(model, "refit_params", None)
    return dict(method(scale)) if callable(method) else {}


def fit_model(
    model: Model,
    train: Dataset,
    valid: Dataset | None = None,
    *,
    progress: ProgressCallback | None = None,
    work: WorkCallback | None = None,
) -> None:
    """``model.fit(train, valid, progress=...)``, with ``work=`` too when ``fit`` accepts it,
    so models written before the argument existed keep working."""
    kwargs: dict[str, Any] = {"progress": progress}
    if work is not None and _accepts(model.fit, "work"):
        kwargs["work"] = work
    model.fit(train, valid, **kwargs)


def _accepts(func: Callable[..., Any], name: str) -> bool:
    try:
        parameters = inspect.signature(func).parameters
    except (TypeError, ValueError):  # builtins and some C extensions have no signature
        return False
    return name in parameters or any(p.kind is p.VAR_KEYWORD for p in parameters.values())


class LoadOptions(BaseModel):
    """Options for a task's loader. Tasks subclass this to add their own fields; the CLI
    turns ``--some-option VALUE`` into the field ``some_option``."""

    model_config = ConfigDict(extra="forbid")


@dataclass(frozen=True)
class SearchSpace:
    """A Ray Tune parameter space plus the resource ASHA allocates.

    ``params`` maps names to ``ray.tune`` samplers or constants. ``max_steps`` is the most
    progress steps a trial may report; ``grace_steps`` the fewest before ASHA may stop it.
    ``start_points`` are configurations tried first, before anything is sampled (Ray Tune's
    ``points_to_evaluate``): each maps some of ``params``' names to values inside their
    ranges, the rest is sampled. Put the library's defaults first, so a search can only
    find something better on validation than the model a user would get untuned. With
    fewer trials than points, the first points are tried.
    """

    params: Mapping[str, Any]
    max_steps: int = 10
    grace_steps: int = 1
    start_points: Sequence[Mapping[str, Any]] = ()

    def __post_init__(self) -> None:
        for point in self.start_points:
            unknown = sorted(set(point) - set(self.params))
            if unknown:
                raise ValueError(
                    f"a start point names {unknown}, which the search space does not have; "
                    f"known: {sorted(self.params)}"
                )


@dataclass(frozen=True)
class Metrics:
    """Scores on one data set. ``primary`` names the value used to pick and promote."""

    values: dict[str, float]
    primary: str
    higher_is_better: bool = True
    #: Decision threshold chosen for the binary case, if any.
    threshold: float | None = None
    #: Non-scalar results: curves, confusion matrix, per-class tables.
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def score(self) -> float:
        return self.values[self.primary]

    def beats(self, other: Metrics | None, min_delta: float = 0.0) -> bool:
        """True when this is better than ``other`` on the primary metric by ``min_delta``.

        A NaN score never beats anything, and anything scored beats a NaN score, so a
        champion that cannot be scored on the new data can still be replaced."""
        if not math.isfinite(self.score):
            return False
        if other is None or not math.isfinite(other.values.get(other.primary, math.nan)):
            return True
        diff = self.score - other.values[other.primary]
        return diff > min_delta if self.higher_is_better else -diff > min_delta


@dataclass(frozen=True)
class BusinessValue:
    """A task's value model, in the task's own unit (currency, hours, ...)."""

    value: float
    unit: str
    #: Value without any model (the status quo) in the same unit.
    no_model_value: float
    summary: str
    details: dict[str, float] = field(default_factory=dict)

    @property
    def gain(self) -> float:
        return self.value - self.no_model_value


@dataclass(frozen=True)
class Explanation:
    """Feature or token attributions. ``per_row`` holds one mapping per explained row."""

    kind: str
    global_importance: dict[str, float]
    per_row: list[dict[str, float]] = field(default_factory=list)


@dataclass(frozen=True)
class AdaptiveBatching:
    """How a task type's server gathers concurrent ``/predict`` requests into one model call.

    Declare it (``TaskType.adaptive_batching``) when one call on many rows costs far less
    than as many calls on one row, as with a neural network's forward pass. The server then
    queues requests and scores up to ``max_rows`` rows at once, waiting at most
    ``max_wait_ms`` after the oldest request for the batch to fill. Operators may override
    both (``MLPLUG_BATCH_MAX_ROWS``, ``MLPLUG_BATCH_MAX_WAIT_MS``) or switch it off
    (``MLPLUG_BATCHING=off``)."""

    max_rows: int = 32
    max_wait_ms: float = 5.0

    def __post_init__(self) -> None:
        if self.max_rows < 1 or self.max_wait_ms < 0:
            raise ValueError(f"AdaptiveBatching needs max_rows >= 1 and max_wait_ms >= 0, got {self}")


class TaskType(ABC):
    """Base class for task types. Class attributes describe it; methods do the work."""

    #: Unique name, used in CLI commands, deployments and store paths. ``[a-z][a-z0-9_-]*``.
    name: ClassVar[str]
    description: ClassVar[str] = ""
    #: The pydantic model for ``load`` options.
    options_model: ClassVar[type[LoadOptions]] = LoadOptions
    #: Set when its models score a batch of rows much faster than the rows one by one: its
    #: servers then batch concurrent requests (see :class:`AdaptiveBatching`). Default: no.
    adaptive_batching: ClassVar[AdaptiveBatching | None] = None

    @abstractmethod
    def load(self, url: str, options: LoadOptions) -> Dataset:
        """Read and validate a data set from ``url`` (``file://``, a path, or ``s3://``;
        csv, parquet or jsonl). Raise ``DataError`` naming the file and the problem."""

    @abstractmethod
    def synthesize(self, rows: int, seed: int = 0, drift: float = 0.0) -> Dataset:
        """Generate ``rows`` rows of realistic synthetic data. ``drift`` in [0, 1] shifts the
        data the way production data drifts; the same seed gives the same data."""

    @abstractmethod
    def create_model(self, schema: Schema, params: Mapping[str, Any]) -> Model:
        """The main model with the given hyperparameters. During tuning ``params`` also
        holds ``seed`` (the run's seed); accept it."""

    @abstractmethod
    def create_baseline(self, schema: Schema) -> Model:
        """A simple, robust reference model.

        A task with a :meth:`baseline_space` also accepts ``params``
        (``create_baseline(self, schema, params=None)``): one configuration of that space."""

    def baseline_space(self) -> dict[str, list[Any]]:
        """A small grid for the baseline: parameter name -> the values to try, the preferred
        value first. mlplug scores every combination the way it compares candidates
        (cross-validation on small data, the validation part otherwise) and keeps the best;
        keep it to a handful of combinations. Default: no search (``{}``)."""
        return {}

    @abstractmethod
    def load_model(self, path: Path) -> Model:
        """Load a model (main or baseline) previously written by ``Model.save``."""

    @abstractmethod
    def search_space(self) -> SearchSpace:
        """Hyperparameter space for Ray Tune."""

    def default_params(self) -> dict[str, Any]:
        """Parameters used when tuning is off. Defaults to constants of the space."""
        return {k: v for k, v in self.search_space().params.items() if _is_constant(v)}

    def quick_params(self) -> dict[str, Any]:
        """Parameters for a tiny, fast fit: smoke tests, the conformance check, demos.
        Defaults to :meth:`default_params`; override when those are slow."""
        return self.default_params()

    def demo_settings(self) -> dict[str, Any]:
        """Arguments for the train flow in ``mlplug demo`` (rows, trials, ...): a run that
        shows the task working in a minute or two on a laptop."""
        return {"rows": 20_000, "trials": 4}

    @abstractmethod
    def evaluate(self, data: Dataset, proba: np.ndarray, threshold: float | None = None) -> Metrics:
        """Score predictions on labelled data. Must set ``primary``.

        Without ``threshold`` a task that uses a decision threshold chooses one on ``data``
        and returns it in ``Metrics.threshold``. The train flow chooses it on validation
        data and passes it back for the holdout, so holdout figures are not optimistic."""

    @abstractmethod
    def business_value(self, data: Dataset, proba: np.ndarray, metrics: Metrics) -> BusinessValue:
        """Translate predictions into the task's business terms."""

    @abstractmethod
    def explain(self, model: Model, data: Dataset, rows: int = 100) -> Explanation:
        """Attributions for up to ``rows`` rows of ``data`` and their global summary."""

    def monitor_features(self, X: pd.DataFrame) -> pd.DataFrame:  # noqa: N803
        """Extra columns to profile for drift monitoring, derived from model inputs ``X``:
        one row per row of ``X``, numbers or strings. The core already profiles every
        feature by its schema role (text through its length in characters, words and lines)
        and the model's outputs. Default: no extra columns."""
        return pd.DataFrame(index=X.index)


def build_baseline(task: TaskType, schema: Schema, params: Mapping[str, Any] | None = None) -> Model:
    """The task's baseline with ``params`` (one configuration of its ``baseline_space``);
    without params it is called as ``create_baseline(schema)``, as older plugins expect."""
    if params:
        return task.create_baseline(schema, dict(params))  # type: ignore[call-arg]
    return task.create_baseline(schema)


def _is_constant(value: Any) -> bool:
    return isinstance(value, str | int | float | bool) or value is None
