"""Shared fixtures: small synthetic data sets and models trained once per session."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from mlplug_convqa import ConvQATask

from mlplug.dataset import Dataset
from mlplug.task import Model, fit_model


@pytest.fixture(scope="session", autouse=True)
def _offline() -> Iterator[None]:
    """No hub downloads from tests, whatever the calling shell says; restored afterwards."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HF_HUB_OFFLINE", "1")
        mp.setenv("TRANSFORMERS_OFFLINE", "1")
        yield


@pytest.fixture(scope="session")
def tiny_params(task: ConvQATask) -> dict[str, object]:
    """The task's quick params: a tiny from-scratch transformer that trains in seconds."""
    return {**task.quick_params(), "num_threads": 1}


@pytest.fixture(scope="session")
def task() -> ConvQATask:
    return ConvQATask()


@pytest.fixture(scope="session")
def train_data(task: ConvQATask) -> Dataset:
    return task.synthesize(240, seed=11)


@pytest.fixture(scope="session")
def holdout(task: ConvQATask) -> Dataset:
    return task.synthesize(80, seed=12)


@dataclass
class Fitted:
    model: Model
    #: (step, validation macro-F1) pairs the model reported while fitting
    progress: list[tuple[int, float]]
    #: (done, total, detail) work reports, from models whose fit takes ``work``
    work: list[tuple[int, int, str]]


def fit(model: Model, train: Dataset, valid: Dataset | None) -> Fitted:
    calls: list[tuple[int, float]] = []
    work: list[tuple[int, int, str]] = []
    fit_model(
        model,
        train,
        valid,
        progress=lambda step, score: calls.append((step, score)),
        work=lambda done, total, detail: work.append((done, total, detail)),
    )
    return Fitted(model, calls, work)


@pytest.fixture(scope="session")
def tiny(task: ConvQATask, tiny_params: dict[str, object], train_data: Dataset, holdout: Dataset) -> Fitted:
    return fit(task.create_model(train_data.schema, tiny_params), train_data, holdout)


@pytest.fixture(scope="session")
def baseline(task: ConvQATask, train_data: Dataset, holdout: Dataset) -> Fitted:
    return fit(task.create_baseline(train_data.schema), train_data, holdout)
