from __future__ import annotations

import numpy as np
from fraud_support import Splits
from mlplug_fraud import FraudTask
from mlplug_fraud.params import DEFAULT_PARAMS, PROGRESS_STEPS, resolve_params

from mlplug.task import SearchSpace


def test_search_space_is_consistent_with_progress_reporting(task: FraudTask) -> None:
    space = task.search_space()
    assert isinstance(space, SearchSpace)
    assert space.max_steps == PROGRESS_STEPS and 1 <= space.grace_steps < space.max_steps
    tuned = {k for k, v in space.params.items() if hasattr(v, "sample")}
    assert {"depth", "learning_rate", "l2_leaf_reg", "auto_class_weights"} <= tuned
    assert space.params["iterations"] == DEFAULT_PARAMS["iterations"]  # the ASHA budget is fixed


def test_sampled_configurations_train(task: FraudTask, splits: Splits) -> None:
    space = task.search_space()
    np.random.seed(0)  # ray.tune samplers draw from numpy's global generator
    for _ in range(3):
        config = {k: v.sample() if hasattr(v, "sample") else v for k, v in space.params.items()}
        resolved = resolve_params(config)
        assert all(isinstance(v, str | int | float) for v in resolved.values())  # JSON-able
        steps: list[int] = []
        model = task.create_model(splits.train.schema, {**config, "iterations": 20})
        model.fit(splits.train, splits.valid, progress=lambda step, score, seen=steps: seen.append(step))
        assert steps and steps == sorted(steps)
        assert model.predict_proba(splits.test.X.iloc[:5]).shape == (5, 2)


def test_default_params_are_plain_constants(task: FraudTask) -> None:
    params = task.default_params()
    assert params == DEFAULT_PARAMS
    assert all(isinstance(v, str | int | float) for v in params.values())
    assert params is not DEFAULT_PARAMS  # callers may change their copy
