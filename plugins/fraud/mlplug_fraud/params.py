"""CatBoost hyperparameters: defaults, the names accepted, and their validation.

Kept apart from the model so that listing defaults or the search space never imports
CatBoost.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

#: Progress reports per fit; the search space's ``max_steps``. Step ``k`` means ``k/10`` of
#: the iteration budget has been trained.
PROGRESS_STEPS = 10

#: Used when tuning is off, and for anything a tuned configuration leaves out.
DEFAULT_PARAMS: dict[str, Any] = {
    "iterations": 600,
    "learning_rate": 0.08,
    "depth": 6,
    "l2_leaf_reg": 3.0,
    "random_strength": 1.0,
    # "None" (a string) rather than None so that it can be a ray.tune.choice option.
    "auto_class_weights": "None",
    # Categories with up to this many values are one-hot encoded inside CatBoost, which is
    # several times faster than its target statistics for a column like merchant_category.
    "one_hot_max_size": 16,
    "early_stopping_rounds": 50,
    # What early stopping watches on the validation rows: "Logloss" or "PRAUC".
    "early_stopping_metric": "Logloss",
    "random_seed": 0,
}
#: A tiny fit for smoke tests, the conformance check and demos (overlaid on the defaults).
QUICK_PARAMS: dict[str, Any] = {"iterations": 60, "learning_rate": 0.2, "early_stopping_rounds": 20}
#: Extra names accepted; they steer the run, not the model's quality. mlplug's tuner adds
#: ``seed`` to every configuration; it means ``random_seed``.
RUN_PARAMS = frozenset({"thread_count", "progress_steps", "seed"})
#: Other CatBoost options that may be tuned or set.
OPTIONAL_PARAMS = frozenset({"bagging_temperature", "border_count"})
CLASS_WEIGHTS = ("None", "SqrtBalanced", "Balanced")
STOPPING_METRICS = ("Logloss", "PRAUC")


def resolve_params(params: Mapping[str, Any]) -> dict[str, Any]:
    """Defaults overlaid with ``params``, as plain JSON-able Python values.

    Unknown names raise ``ValueError``: a typo in a parameter must not silently train the
    default model.
    """
    allowed = DEFAULT_PARAMS.keys() | RUN_PARAMS | OPTIONAL_PARAMS
    unknown = sorted(set(params) - allowed)
    if unknown:
        raise ValueError(f"unknown fraud model parameter(s) {unknown}; known: {sorted(allowed)}")
    merged = {**DEFAULT_PARAMS, **params}
    seed = merged.pop("seed", None)
    if seed is not None and "random_seed" not in params:
        merged["random_seed"] = seed
    merged.setdefault("thread_count", default_thread_count())
    merged.setdefault("progress_steps", PROGRESS_STEPS)
    weights = merged["auto_class_weights"]
    merged["auto_class_weights"] = "None" if weights is None else str(weights)
    if merged["auto_class_weights"] not in CLASS_WEIGHTS:
        raise ValueError(f"auto_class_weights must be one of {list(CLASS_WEIGHTS)}, got {weights!r}")
    # Ray Tune hands out numpy scalars; the saved model's JSON needs plain numbers.
    out = {k: v.item() if hasattr(v, "item") else v for k, v in merged.items()}
    for name in ("iterations", "depth", "one_hot_max_size", "early_stopping_rounds", "random_seed",
                 "thread_count", "progress_steps", "border_count"):  # fmt: skip
        if name in out:
            out[name] = int(out[name])
    if out["early_stopping_metric"] not in STOPPING_METRICS:
        got = out["early_stopping_metric"]
        raise ValueError(f"early_stopping_metric must be one of {list(STOPPING_METRICS)}, got {got!r}")
    if out["iterations"] < 1 or out["progress_steps"] < 1:
        raise ValueError("iterations and progress_steps must be at least 1")
    return out


def default_thread_count() -> int:
    """Threads for one fit: Ray sets ``OMP_NUM_THREADS`` to a trial's CPUs, so honour it."""
    omp = os.environ.get("OMP_NUM_THREADS", "")
    if omp.isdigit() and int(omp) > 0:
        return int(omp)
    return max(1, min(2, os.cpu_count() or 1))
