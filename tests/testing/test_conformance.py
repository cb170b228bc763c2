"""The conformance check: a conformant task passes; each broken rule fails with a
``ConformanceError`` that names the step and the method, and keeps the plugin's own
exception as its cause."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from mlplug.dataset import Dataset
from mlplug.task import Explanation
from mlplug.testing import ConformanceError, check_task
from tests.testing.linear_task import LinearModel, LinearTask

ROWS = 300


def test_a_conformant_task_passes(tmp_path: Path) -> None:
    report = check_task(LinearTask(), tmp_path, rows=ROWS)
    assert report.steps == ["declaration", "synthetic data", "loader", "monitoring", "model", "baseline"]
    assert report.metrics["model.accuracy"] > 0.6


def _fails(task: LinearTask, tmp_path: Path) -> ConformanceError:
    with pytest.raises(ConformanceError) as caught:
        check_task(task, tmp_path, rows=ROWS)
    return caught.value


class OneRowIndexError(LinearModel):
    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:  # noqa: N803
        if len(X) == 1:
            np.zeros(3)[0, 1]  # a plugin bug: indexing a 1-d array as 2-d
        return super().predict_proba(X)


def test_a_plugin_exception_becomes_a_conformance_error_naming_step_and_method(tmp_path: Path) -> None:
    class Task(LinearTask):
        def create_model(self, schema, params):
            return OneRowIndexError(params.get("c", 1.0))

    error = _fails(Task(), tmp_path)
    assert str(error).startswith("model: OneRowIndexError.predict_proba() on 1 row(s) raised IndexError:")
    assert "too many indices for array" in str(error)
    assert isinstance(error.__cause__, IndexError)


def test_explanations_that_take_references_from_the_data_fail_on_one_row(tmp_path: Path) -> None:
    class Task(LinearTask):
        def explain(self, model, data, rows=100):
            X = data.X.iloc[:rows].to_numpy()  # noqa: N806
            per_row = (X - X.mean(axis=0)) * model.weights  # the mean of one row is that row
            return Explanation(
                kind="contributions",
                global_importance={"a": float(np.abs(per_row[:, 0]).mean()), "b": 0.0},
                per_row=[{"a": float(r[0]), "b": float(r[1])} for r in per_row],
            )

    error = str(_fails(Task(), tmp_path))
    assert error.startswith("model: Task.explain() on one unlabelled row (as POST /explain calls it)")
    assert "only zero attributions" in error and "from the fitted model" in error


def test_explain_that_reads_labels_fails_as_the_server_would(tmp_path: Path) -> None:
    class Task(LinearTask):
        def explain(self, model, data, rows=100):
            data.y  # noqa: B018 - the server's records carry no label
            return super().explain(model, data, rows)

    error = _fails(Task(), tmp_path)
    assert "explain() on one unlabelled row (as POST /explain calls it) raised KeyError" in str(error)
    assert isinstance(error.__cause__, KeyError)


def test_a_serving_fast_path_that_disagrees_fails(tmp_path: Path) -> None:
    class Rows(LinearModel):
        def predict_proba_rows(self, rows: list[list[Any]]) -> np.ndarray:
            return np.tile([0.5, 0.5], (len(rows), 1))

    class Task(LinearTask):
        def create_model(self, schema, params):
            return Rows(params.get("c", 1.0))

    assert "predict_proba_rows() (the serving fast path) disagrees with predict_proba" in str(
        _fails(Task(), tmp_path)
    )


class _ByShop:
    """Scores one categorical column: P(yes) 0.9 for "a", 0.1 otherwise (unseen or "")."""

    def __init__(self, accepts: bool, codes: bool) -> None:
        self.accepts_category_dtype = accepts
        self.codes = codes  # a wrong model: reads category codes as if they were the values

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:  # noqa: N803
        shop = X["shop"]
        if self.codes and isinstance(shop.dtype, pd.CategoricalDtype):
            yes = np.where(shop.cat.codes.to_numpy() == 0, 0.9, 0.1)
        else:
            yes = np.where(shop.to_numpy(dtype=object) == "a", 0.9, 0.1)
        return np.column_stack([1 - yes, yes])


def test_a_model_that_accepts_categories_must_score_them_as_text() -> None:
    from mlplug.schema import Column, Role, Schema
    from mlplug.testing import conformance

    schema = Schema(features=(Column("shop", Role.CATEGORICAL),), target="y", classes=("no", "yes"))
    X = pd.DataFrame({"shop": ["b", "a", "a", "c"]}, dtype=object)  # noqa: N806
    conformance._check_categories(_ByShop(accepts=True, codes=False), X, schema, "model")
    conformance._check_categories(_ByShop(accepts=False, codes=True), X, schema, "model")  # not asked
    with pytest.raises(ConformanceError, match="as pandas category differs from the same rows as text"):
        conformance._check_categories(_ByShop(accepts=True, codes=True), X, schema, "model")


def test_more_progress_reports_than_max_steps_fail(tmp_path: Path) -> None:
    class Chatty(LinearModel):
        def fit(self, train: Dataset, valid: Dataset | None = None, progress: Any = None) -> None:
            super().fit(train, valid)
            for step in range(1, 4):
                progress(step, 0.5)

    class Task(LinearTask):
        def create_model(self, schema, params):
            return Chatty(params.get("c", 1.0))

    error = str(_fails(Task(), tmp_path))
    assert "reported progress 3 times" in error and "max_steps is 1" in error


def test_create_model_must_accept_a_point_of_the_search_space(tmp_path: Path) -> None:
    class Task(LinearTask):
        def create_model(self, schema, params):
            unknown = set(params) - {"c"}
            if unknown:
                raise ValueError(f"unknown parameters {sorted(unknown)}")
            return LinearModel(params["c"])

    error = _fails(Task(), tmp_path)
    assert "with a point of the search space" in str(error)
    assert "unknown parameters ['seed']" in str(error)


def test_a_loader_must_report_a_missing_file_as_data_error(tmp_path: Path) -> None:
    class Task(LinearTask):
        def load(self, url, options):
            if "does-not-exist" in url:
                raise FileNotFoundError(url)
            return super().load(url, options)

    error = _fails(Task(), tmp_path)
    assert "on a missing file must raise mlplug.errors.DataError" in str(error)
    assert "not FileNotFoundError" in str(error)
