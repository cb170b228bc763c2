"""The reference model: TF-IDF over word 1-2-grams and character 3-5-grams, then
multinomial logistic regression. Robust, fast, and blind to word order beyond bigrams."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from mlplug.dataset import Dataset
from mlplug.schema import Schema
from mlplug.task import ProgressCallback
from mlplug_convqa.loader import texts_of
from mlplug_convqa.metrics import macro_f1
from mlplug_convqa.saved import ConvQAModelError, manifest_schema, read_manifest, write_manifest

if TYPE_CHECKING:
    from sklearn.pipeline import Pipeline

KIND = "baseline"
PIPELINE_FILE = "baseline.joblib"
DEFAULT_C = 10.0


class TfidfBaseline:
    """Implements :class:`mlplug.task.Model`. ``C`` is the inverse regularisation strength."""

    kind = KIND

    def __init__(self, schema: Schema, params: Mapping[str, Any] | None = None) -> None:
        params = dict(params or {})
        unknown = sorted(set(params) - {"C"})
        if unknown:
            raise ConvQAModelError(f"unknown baseline parameter(s) {unknown}; known: ['C']")
        c = float(params.get("C", DEFAULT_C))
        if not c > 0:
            raise ConvQAModelError(f"baseline parameter C must be > 0, got {c}")
        self.schema = schema
        self.params: dict[str, Any] = {"C": c}
        self.pipeline: Pipeline | None = None

    @staticmethod
    def _make_pipeline(c: float) -> Pipeline:
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import FeatureUnion, Pipeline

        features = FeatureUnion(
            [
                ("word", TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True)),
                (
                    "char",
                    TfidfVectorizer(
                        analyzer="char_wb",
                        ngram_range=(3, 5),
                        min_df=2,
                        sublinear_tf=True,
                        max_features=60000,
                    ),
                ),
            ]
        )
        return Pipeline([("tfidf", features), ("logreg", LogisticRegression(C=c, max_iter=3000))])

    def fit(
        self, train: Dataset, valid: Dataset | None = None, progress: ProgressCallback | None = None
    ) -> None:
        pipeline = self._make_pipeline(self.params["C"])
        pipeline.fit(texts_of(train.X, self.schema), np.asarray(train.y, dtype=np.int64))
        self.pipeline = pipeline
        if progress is not None:
            scored = valid if valid is not None and len(valid) else train
            pred = self.predict_proba(scored.X).argmax(axis=1)
            progress(1, macro_f1(np.asarray(scored.y), pred, len(self.schema.classes)))

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:  # noqa: N803
        return self._proba(texts_of(X, self.schema))

    def predict_proba_rows(self, rows: Sequence[Sequence[Any]]) -> np.ndarray:
        """Serving fast path (:class:`mlplug.task.RowModel`): rows hold the transcript as
        their one feature value."""
        return self._proba(["" if row[0] is None else str(row[0]) for row in rows])

    def _proba(self, texts: list[str]) -> np.ndarray:
        pipeline = self._require_fitted()
        raw = pipeline.predict_proba(texts)
        # Classes absent from the training data get probability 0, keeping schema order.
        out = np.zeros((len(texts), len(self.schema.classes)), dtype=np.float64)
        out[:, pipeline.classes_.astype(np.int64)] = raw
        return out

    def save(self, path: Path) -> None:
        import joblib

        pipeline = self._require_fitted()
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        joblib.dump(pipeline, path / PIPELINE_FILE)
        write_manifest(path, KIND, self.schema, self.params)

    @classmethod
    def load(cls, path: Path) -> TfidfBaseline:
        import joblib

        data = read_manifest(path)
        if data["kind"] != KIND:
            raise ConvQAModelError(f"{path}: holds a {data['kind']} model, not a {KIND}")
        model = cls(manifest_schema(data), data["params"])
        try:
            model.pipeline = joblib.load(Path(path) / PIPELINE_FILE)
        except (OSError, ValueError, EOFError) as exc:
            raise ConvQAModelError(f"{path}: cannot load {PIPELINE_FILE}: {exc}") from exc
        return model

    def _require_fitted(self) -> Pipeline:
        if self.pipeline is None:
            raise RuntimeError("the convqa baseline is not fitted; call fit() or load a saved model first")
        return self.pipeline
