"""The Ray Tune search space of the CatBoost model.

The ASHA resource is progress steps within a fixed iteration budget: every trial trains up
to ``iterations`` trees and reports its best validation PR-AUC ``PROGRESS_STEPS`` times, so
``max_steps`` equals ``PROGRESS_STEPS``. The number of trees that is kept is chosen by early
stopping on the validation set rather than tuned.
"""

from __future__ import annotations

from typing import Any

from mlplug.task import SearchSpace
from mlplug_fraud.params import CLASS_WEIGHTS, DEFAULT_PARAMS, PROGRESS_STEPS, QUICK_PARAMS

#: ASHA may stop a trial after 20% of its budget, not before: the first trees of a slow
#: learning rate say little about where it ends.
GRACE_STEPS = 2
#: The first trial: CatBoost's own defaults (depth 6, L2 3, random strength 1, no class
#: weights, one-hot encoding up to 2 values), which often beat a configuration picked on a
#: noisy validation split. CatBoost chooses its learning rate per data set (0.01-0.06 for
#: 300-10,000 rows and 1,000 trees); 0.03 stands in for it, since early stopping then sets
#: the number of trees.
CATBOOST_DEFAULTS: dict[str, Any] = {
    "learning_rate": 0.03,
    "depth": 6,
    "l2_leaf_reg": 3.0,
    "random_strength": 1.0,
    "auto_class_weights": "None",
    "one_hot_max_size": 2,
}


def search_space() -> SearchSpace:
    from ray import tune  # imported here: Ray is heavy and only tuning needs it

    params: dict[str, Any] = {
        "iterations": DEFAULT_PARAMS["iterations"],
        "early_stopping_rounds": DEFAULT_PARAMS["early_stopping_rounds"],
        "learning_rate": tune.loguniform(0.02, 0.3),
        "depth": tune.randint(4, 9),  # 4..8
        "l2_leaf_reg": tune.loguniform(1.0, 30.0),
        "random_strength": tune.uniform(0.0, 2.0),
        "auto_class_weights": tune.choice(list(CLASS_WEIGHTS)),
        "one_hot_max_size": tune.choice([2, 16]),
    }
    return SearchSpace(
        params=params, max_steps=PROGRESS_STEPS, grace_steps=GRACE_STEPS, start_points=[CATBOOST_DEFAULTS]
    )


def default_params() -> dict[str, Any]:
    """What a run without tuning trains with."""
    return dict(DEFAULT_PARAMS)


def quick_params() -> dict[str, Any]:
    """A fit of a second or two, for smoke tests and the conformance check."""
    return {**DEFAULT_PARAMS, **QUICK_PARAMS}
