"""The main fraud model: CatBoost with native categorical features.

Training watches PR-AUC on the validation set (CatBoost's ``PRAUC``, unweighted so that
trials with different class weights compare fairly), stops early on it, keeps the best
iteration, and reports progress to the caller so that ASHA can stop weak trials.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from catboost import CatBoostClassifier, Pool

from mlplug.dataset import Dataset
from mlplug.errors import DataError
from mlplug.schema import Role, Schema
from mlplug.task import ProgressCallback
from mlplug_fraud.columns import CLASSES
from mlplug_fraud.params import resolve_params
from mlplug_fraud.persistence import write_manifest

if TYPE_CHECKING:
    from mlplug_fraud.fastpath import CompiledTrees

log = logging.getLogger(__name__)

MODEL_FILE = "model.cbm"
#: Rows up to which the compiled trees score faster than CatBoost's own predict.
FAST_PATH_ROWS = 64
#: Categorical columns with more distinct training values than this are not recorded:
#: CatBoost encodes them with target statistics, which the fast path does not evaluate.
MAX_RECORDED_CATEGORIES = 255
# One lock for all models (an attribute would make models unpicklable, and Ray pickles them).
_COMPILE_LOCK = threading.Lock()


class CatBoostFraudModel:
    """``mlplug.task.Model`` backed by a ``CatBoostClassifier``."""

    kind = "catboost"
    #: What :meth:`shap_values` returns, for :class:`mlplug.task.Explanation`.
    explanation_kind = "shap (CatBoost TreeSHAP, log-odds)"
    #: ``mlplug.task.CategoryModel``: CatBoost builds its pool from a pandas ``category``
    #: column's codes (1.5 ms per 250k rows) instead of hashing every row's string (29 ms),
    #: and gives the same probabilities (the hash is of the value, not of the code).
    accepts_category_dtype = True

    def __init__(self, features: Sequence[str], categorical: Sequence[str], params: Mapping[str, Any]):
        self.features = list(features)
        self.categorical = [c for c in self.features if c in set(categorical)]
        self.params = resolve_params(params)
        self._model: CatBoostClassifier | None = None
        #: Training categories per categorical column, kept for the serving fast path.
        self.categories: dict[str, list[str]] = {}
        self._compiled: CompiledTrees | bool | None = False  # False: not built yet

    @classmethod
    def for_schema(cls, schema: Schema, params: Mapping[str, Any]) -> CatBoostFraudModel:
        return cls(schema.feature_names, schema.columns_with(Role.CATEGORICAL), params)

    # -- training ------------------------------------------------------------------------

    def fit(
        self, train: Dataset, valid: Dataset | None = None, progress: ProgressCallback | None = None
    ) -> None:
        """Fit on ``train``; with ``valid``, stop early on its PR-AUC and report progress."""
        _require_both_classes(train, "training")
        p = self.params
        weighted = p["auto_class_weights"] != "None"
        # CatBoost refuses use_weights without weights; skip_train saves a PR-AUC per
        # iteration on the training rows, which nobody reads.
        prauc = "PRAUC:" + ("use_weights=false;" if weighted else "") + "hints=skip_train~true"
        # Early stopping reads eval_metric. PR-AUC over a few dozen validation positives is
        # noise after the first trees, so "Logloss" stops on the smooth training objective
        # instead; PR-AUC is still computed (custom_metric) for the progress reports.
        stopping = p["early_stopping_metric"]
        extra = {} if stopping == "PRAUC" else {"custom_metric": [prauc]}
        model = CatBoostClassifier(
            **extra,
            iterations=p["iterations"],
            learning_rate=p["learning_rate"],
            depth=p["depth"],
            l2_leaf_reg=p["l2_leaf_reg"],
            random_strength=p["random_strength"],
            auto_class_weights=p["auto_class_weights"] if weighted else None,
            one_hot_max_size=p["one_hot_max_size"],
            random_seed=p["random_seed"],
            thread_count=p["thread_count"],
            eval_metric=prauc if stopping == "PRAUC" else "Logloss",
            cat_features=self.categorical,
            verbose=False,
            allow_writing_files=False,  # else CatBoost litters the working directory
            **{k: p[k] for k in ("bagging_temperature", "border_count") if k in p},
        )
        if valid is not None and len(np.unique(valid.y)) < 2:
            # PR-AUC is undefined without both classes, so there is nothing to stop on.
            log.warning(
                "%s: the validation data holds a single class; training all %d iterations "
                "without early stopping or progress reports",
                valid.source,
                p["iterations"],
            )
            valid = None
        self.categories = _recorded_categories(train, self.categorical)
        self._compiled = False
        if valid is None:
            model.fit(self._pool(train))
            self._model = model
            return
        reporter = _ProgressReporter(progress, p["iterations"], p["progress_steps"]) if progress else None
        model.fit(
            self._pool(train),
            eval_set=self._pool(valid),
            early_stopping_rounds=p["early_stopping_rounds"],
            use_best_model=True,
            callbacks=[reporter] if reporter else None,
        )
        if reporter is not None:
            if reporter.error is not None:
                # CatBoost would wrap the callback's exception in its own; raise the original.
                raise reporter.error
            reporter.finish()
        self._model = model

    def _pool(self, data: Dataset) -> Pool:
        return Pool(data.frame[self.features], label=data.y, cat_features=self.categorical)

    # -- inference -----------------------------------------------------------------------

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:  # noqa: N803
        """Probabilities of (legit, fraud), float64, shape (rows, 2)."""
        model = self._fitted()
        if list(X.columns) != self.features:  # skip the copy on the serving fast path
            X = X[self.features]  # noqa: N806
        return model.predict_proba(X)

    def predict_proba_rows(self, rows: Sequence[Sequence[Any]]) -> np.ndarray:
        """Probabilities for plain rows in ``self.features`` order (``mlplug.task.RowModel``).

        A few rows go through the compiled trees (see :mod:`mlplug_fraud.fastpath`), which
        agree with CatBoost to 1e-9 and skip its ~100 us per-call overhead; larger batches
        and models the fast path does not support go to CatBoost, single-threaded for small
        batches where thread start-up would cost more than it saves.
        """
        if len(rows) <= FAST_PATH_ROWS:
            compiled = self._fast_path()
            if compiled is not None:
                return compiled.predict_proba(rows)
        threads = 1 if len(rows) <= 4 * FAST_PATH_ROWS else self.params["thread_count"]
        return self._fitted().predict_proba(
            Pool(list(map(list, rows)), cat_features=self._cat_positions()), thread_count=threads
        )

    def _cat_positions(self) -> list[int]:
        return [self.features.index(c) for c in self.categorical]

    def _fast_path(self) -> CompiledTrees | None:
        if self._compiled is False:
            with _COMPILE_LOCK:
                if self._compiled is False:
                    from mlplug_fraud.fastpath import CompiledTrees

                    self._compiled = CompiledTrees.build(self._fitted(), self.features, self.categories)
        return self._compiled  # type: ignore[return-value]

    def shap_values(self, X: pd.DataFrame) -> np.ndarray:  # noqa: N803
        """Per-row, per-feature SHAP values in log-odds; shape (rows, features)."""
        pool = Pool(X[self.features], cat_features=self.categorical)
        values = self._fitted().get_feature_importance(pool, type="ShapValues")
        return np.asarray(values)[:, :-1]  # the last column is the expected value

    def _fitted(self) -> CatBoostClassifier:
        if self._model is None:
            raise RuntimeError("CatBoostFraudModel is not fitted; call fit() or load() first")
        return self._model

    @property
    def best_iteration(self) -> int | None:
        return self._fitted().get_best_iteration()

    def refit_params(self, scale: float) -> dict[str, Any]:
        """The tree count this fit kept (early stopping's best iteration, or all trees),
        scaled to a training set ``scale`` times as large (``mlplug.task.RefittableModel``)."""
        kept = int(self._fitted().tree_count_)
        return {"iterations": max(1, round(kept * scale))}

    # -- persistence ---------------------------------------------------------------------

    def save(self, path: Path) -> None:
        """Write ``model.cbm`` and ``model.json`` into the existing directory ``path``."""
        model = self._fitted()
        path = Path(path)
        model.save_model(str(path / MODEL_FILE), format="cbm")
        write_manifest(
            path,
            kind=self.kind,
            file=MODEL_FILE,
            features=self.features,
            categorical=self.categorical,
            classes=list(CLASSES),
            params=self.params,
            tree_count=int(model.tree_count_),
            best_iteration=model.get_best_iteration(),
            categories=self.categories,
        )

    @classmethod
    def load(cls, path: Path, manifest: Mapping[str, Any]) -> CatBoostFraudModel:
        self = cls(manifest["features"], manifest["categorical"], manifest["params"])
        model = CatBoostClassifier()
        model.load_model(str(Path(path) / manifest["file"]), format="cbm")
        self._model = model
        # Absent from models saved before the fast path existed: they score with CatBoost.
        self.categories = {k: list(v) for k, v in manifest.get("categories", {}).items()}
        return self


class _ProgressReporter:
    """CatBoost callback: report (step, best validation PR-AUC) at each tenth of the budget.

    Step ``k`` of ``steps`` is reported once ``k / steps`` of the iterations are trained, so
    the last step is ``steps`` whatever the budget. The best score so far is reported, not
    the latest: with ``use_best_model`` the model at that point would be the best
    iteration, and that is what ASHA should compare. For the same reason, when early
    stopping ends training, :meth:`finish` reports the remaining steps with the final
    score: more budget would not change the model, and ASHA's later rungs should count it.
    """

    def __init__(self, progress: ProgressCallback, iterations: int, steps: int) -> None:
        self._progress = progress
        self._iterations = iterations
        self._steps = steps
        self._last_step = 0
        self._best = -math.inf
        self.error: BaseException | None = None

    def after_iteration(self, info: Any) -> bool:
        validation = info.metrics.get("validation", {})
        scores = next((v for k, v in validation.items() if k.startswith("PRAUC")), None)
        if scores and not math.isnan(scores[-1]):
            self._best = max(self._best, float(scores[-1]))
        step = info.iteration * self._steps // self._iterations  # info.iteration is 1-based
        if step <= self._last_step or self._best == -math.inf:
            return True
        self._last_step = step
        try:
            self._progress(step, self._best)
        except BaseException as exc:  # stop training and let fit() raise it
            self.error = exc
            return False
        return True

    def finish(self) -> None:
        if self._best == -math.inf:
            return
        for step in range(self._last_step + 1, self._steps + 1):
            self._last_step = step
            self._progress(step, self._best)


def _recorded_categories(data: Dataset, categorical: Sequence[str]) -> dict[str, list[str]]:
    recorded = {}
    for column in categorical:
        values = pd.unique(data.frame[column].astype(str))
        if len(values) <= MAX_RECORDED_CATEGORIES:
            recorded[column] = sorted(values.tolist())
    return recorded


def _require_both_classes(data: Dataset, role: str) -> None:
    counts = np.bincount(data.y.astype(np.int64), minlength=len(CLASSES))
    if (counts == 0).any():
        only = CLASSES[int(np.argmax(counts))]
        raise DataError(
            f"{data.source}: the {role} data has only {only!r} rows ({len(data)} rows); "
            "the fraud model needs both fraud and legit rows to learn from"
        )
