"""Load a registered model version and score tables with it (batch prediction).

Versions are immutable, so a downloaded version is kept under ``<home>/cache``
(:mod:`mlplug.model_cache`) and reused once verified.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from mlplug.errors import MlplugError, ModelLoadError
from mlplug.model_cache import local_copy
from mlplug.registry import ModelVersion, Registry
from mlplug.schema import Schema
from mlplug.storage.base import Store
from mlplug.stored_model import load_model
from mlplug.task import Model, TaskType

#: The output column of predicted labels (few distinct values).
LABEL_COLUMN = "prediction"


@dataclass(frozen=True)
class ScoredTable:
    """What scoring a table produced: the validated features the model saw, its
    probabilities (columns in ``schema.classes`` order) and one output row per input row."""

    features: pd.DataFrame
    proba: np.ndarray
    output: pd.DataFrame


@dataclass(frozen=True)
class LoadedModel:
    version: ModelVersion
    model: Model
    schema: Schema

    def score(self, frame: pd.DataFrame, source: str) -> ScoredTable:
        """Validate raw input rows and score them."""
        clean = self.schema.validate(frame, source, require_target=False)
        features = clean[self.schema.feature_names]
        proba = np.asarray(self.model.predict_proba(features), dtype=np.float64)
        return ScoredTable(
            features, proba, prediction_frame(self.schema, proba, self.version.threshold, frame)
        )

    def predict_frame(self, frame: pd.DataFrame, source: str) -> pd.DataFrame:
        """Validate raw input rows and return one output row per input row."""
        return self.score(frame, source).output


def prediction_frame(
    schema: Schema, proba: np.ndarray, threshold: float | None, raw: pd.DataFrame | None = None
) -> pd.DataFrame:
    ids = None
    if raw is not None and schema.id_column and schema.id_column in raw.columns:
        from mlplug.table_stream import arrow_values

        ids = arrow_values(raw[schema.id_column].to_numpy())
    return prediction_batch(schema, proba, threshold, ids).to_pandas()


def prediction_batch(
    schema: Schema, proba: np.ndarray, threshold: float | None, ids: pa.Array | None = None
) -> pa.RecordBatch:
    """The output rows of scored rows: the id column when given, then ``probability`` and
    ``prediction`` (binary) or ``prediction``, ``probability`` and ``proba_<label>`` per
    class. Built in Arrow: labels are taken from the class names without a Python call per
    row, and a streamed file is written from it directly."""
    columns: dict[str, pa.Array] = {}
    if ids is not None and schema.id_column:
        columns[schema.id_column] = ids
    picks = schema.predicted_indices(proba, threshold)
    labels = pc.take(pa.array(list(schema.classes), type=pa.string()), pa.array(picks))
    if schema.is_binary:
        columns["probability"] = pa.array(proba[:, 1])
        columns[LABEL_COLUMN] = labels
    else:
        columns[LABEL_COLUMN] = labels
        columns["probability"] = pa.array(proba[np.arange(len(proba)), picks])
        for i, label in enumerate(schema.classes):
            columns[f"proba_{label}"] = pa.array(proba[:, i])
    return pa.RecordBatch.from_pydict(columns)


def load_version(task: TaskType, registry: Registry, ref: str | int = "champion") -> LoadedModel:
    version = registry.model(task.name, ref)
    path = local_copy(registry, version)
    try:
        model = load_model(task, path)
    except MlplugError:
        raise
    except Exception as exc:  # the plugin's loader: say which version, keep the cause
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise ModelLoadError(
            f"{task.name} v{version.version}: its model files ({path}) did not load: "
            f"{type(exc).__name__}: {first}"
        ) from exc
    return LoadedModel(version, model, Schema.from_dict(version.schema))


def write_profile(
    task: TaskType, loaded: LoadedModel, scored: ScoredTable, store: Store, seen_rows: int | None = None
) -> str:
    """Profile a scored table as traffic of the version that scored it, as a server's flush
    would (create-only, under ``<task>/profiles/<version>/``); the key written. The labels
    profiled are the ones written to the output. ``seen_rows``: the rows scored, when the
    table is a sample of them (recorded, so that monitoring reports rows seen and profiled)."""
    # Imported here: the server imports this module and profiles through its own observer.
    from mlplug import layout
    from mlplug.monitoring.features import monitoring_frame
    from mlplug.monitoring.profiles import writer_id
    from mlplug.monitoring.whylogs_compat import Profile

    frame = monitoring_frame(
        task, loaded.schema, scored.features, scored.proba, predictions=scored.output["prediction"].tolist()
    )
    key = layout.profile(task.name, loaded.version.version, datetime.now(UTC), f"predict_{writer_id()}")
    profile = Profile.of(frame)
    if seen_rows is not None:
        profile = profile.with_counts(profile.out_of_range(recorded_only=True), seen_rows)
    store.put(key, profile.to_bytes(), if_none_match=True)
    return key
