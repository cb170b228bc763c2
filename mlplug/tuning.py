"""Hyperparameter search with Ray Tune and the ASHA scheduler, for any task type.

Each trial builds the task's model from a sampled config and fits it; the model's
``progress(step, score)`` callback becomes a ``ray.tune.report`` so that ASHA can stop weak
trials after ``grace_steps`` reports. Scores are "higher is better".

Trials may run on other machines (``MLPLUG_RAY_ADDRESS``): the task and its data reach them
through Ray's object store (``tune.with_parameters``), never as a path on the driver's disk,
and each trial records the node it ran on. Configurations are drawn from ``seed``, so the
same run samples the same trials locally and on a cluster.
"""

from __future__ import annotations

import logging
import math
import os
import re
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from mlplug.dataset import Dataset
from mlplug.errors import RayClusterError
from mlplug.progress import Progress, artifact_key
from mlplug.ray_runtime import ray_session
from mlplug.settings import get_settings
from mlplug.task import TaskType

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Trial:
    trial_id: str
    params: dict[str, Any]
    score: float | None
    steps: int
    seconds: float
    stopped_early: bool
    error: str | None = None
    #: Ray's id of the node the trial ran on (hex), and that node's host name.
    node_id: str | None = None
    host: str | None = None

    @property
    def node(self) -> str | None:
        return node_label(self.host, self.node_id)


def node_label(host: str | None, node_id: str | None) -> str | None:
    """A Ray node as a person tells nodes apart: host name and the start of Ray's id (two
    nodes on one machine share the host name)."""
    if not node_id:
        return host
    return f"{host or '?'} ({node_id[:8]})"


@dataclass(frozen=True)
class TuneResult:
    best_params: dict[str, Any]
    best_score: float | None
    trials: list[Trial] = field(default_factory=list)
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _trainable(config: dict[str, Any], task: TaskType, train: Dataset, valid: Dataset) -> None:
    import ray
    from ray import tune

    reported = False
    node_id = ray.get_runtime_context().get_node_id()

    def progress(step: int, score: float) -> None:
        nonlocal reported
        reported = True
        tune.report({"score": float(score), "step": int(step), NODE_ID: node_id})

    model = task.create_model(train.schema, config)
    model.fit(train, valid, progress=progress)
    if not reported:  # a model without progress reports still gets one final score
        metrics = task.evaluate(valid, model.predict_proba(valid.X))
        score = metrics.score if metrics.higher_is_better else -metrics.score
        tune.report({"score": float(score), "step": 1, NODE_ID: node_id})


#: How a trial's error says that a module is not installed where it ran.
_MISSING_MODULE = re.compile(r"No module named '[\w.]+'")
#: The metric each trial reports with the Ray node it runs on.
NODE_ID = "node_id"


def tune_task(
    task: TaskType,
    train: Dataset,
    valid: Dataset,
    *,
    trials: int,
    workdir: Path,
    seed: int = 0,
    cpus: int | None = None,
    ray_address: str | None = None,
    fixed: dict[str, Any] | None = None,
) -> TuneResult:
    """Run ``trials`` ASHA trials over the task's search space; return every trial.

    ``cpus`` sizes a local Ray; on a cluster (``ray_address``, else ``MLPLUG_RAY_ADDRESS``)
    as many trials run at once as the cluster has CPUs. ``fixed`` pins parameters to given
    values (they are not searched)."""
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler
    from ray.tune.search.basic_variant import BasicVariantGenerator

    space = task.search_space()
    cpus = cpus or os.cpu_count() or 1
    started = time.perf_counter()
    address = ray_address or get_settings().ray_address or None
    shown = Progress(f"tuning {task.name}", artifact_key(task.name, "tuning"), "trials")
    with ray_session(address=address, cpus=cpus) as session, shown:
        trainable = tune.with_resources(
            tune.with_parameters(_trainable, task=task, train=train, valid=valid), {"cpu": 1}
        )
        scheduler = ASHAScheduler(
            time_attr="training_iteration",
            max_t=space.max_steps,
            grace_period=space.grace_steps,
            reduction_factor=3,
        )
        params = {**space.params, **(fixed or {})}
        params.setdefault("seed", seed)
        # The first trials start from the task's start points; what the user fixed still wins.
        points = [{**point, **(fixed or {})} for point in space.start_points[:trials]]
        tuner = tune.Tuner(
            trainable,
            param_space=params,
            tune_config=tune.TuneConfig(
                metric="score",
                mode="max",
                num_samples=trials,
                scheduler=scheduler,
                # Seeded; it also caps concurrency (Tune ignores max_concurrent_trials with it).
                search_alg=BasicVariantGenerator(
                    points_to_evaluate=points, random_state=seed, max_concurrent=session.cpus
                ),
            ),
            run_config=tune.RunConfig(
                name="tune",
                storage_path=str(workdir.resolve()),
                verbose=0,
                log_to_file=True,
                callbacks=[trial_progress(shown, trials)],
            ),
        )
        grid = tuner.fit()
    records = [_trial(r, space.max_steps) for r in grid]
    scored = [t for t in records if t.score is not None and math.isfinite(t.score)]
    if not scored:
        errors = "; ".join(t.error or "no score" for t in records)[:2000]
        missing = _MISSING_MODULE.search(errors)
        if address and missing:
            # A Ray node has its own Python environment: the usual cause on a new cluster.
            raise RayClusterError(
                f"every tuning trial failed on the Ray cluster at {address}: {missing.group(0)} on "
                f"its nodes; install mlplug and the {task.name} task's plugin there, the versions "
                "this machine runs"
            )
        raise RuntimeError(f"all {len(records)} tuning trials failed: {errors}")
    best = max(scored, key=lambda t: t.score or -math.inf)
    return TuneResult(
        best_params=best.params,
        best_score=best.score,
        trials=records,
        seconds=time.perf_counter() - started,
    )


def trial_progress(shown: Progress, trials: int) -> Any:
    """A Ray Tune callback that shows trials done out of ``trials`` and the best score so far."""
    from ray.tune import Callback

    class TrialProgress(Callback):
        def __init__(self) -> None:
            self.done = 0
            self.best: float | None = None

        def on_trial_result(
            self, iteration: int, trials: list[Any], trial: Any, result: dict, **info: Any
        ) -> None:
            score = result.get("score")
            if (
                isinstance(score, int | float)
                and math.isfinite(score)
                and (self.best is None or score > self.best)
            ):
                self.best = float(score)
                self._show()

        def on_trial_complete(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
            self.done += 1
            self._show()

        def on_trial_error(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
            self.done += 1
            self._show()

        def _show(self) -> None:
            best = f"best validation score {self.best:.4f}" if self.best is not None else ""
            shown.update(self.done, trials, best)

    return TrialProgress()


def _trial(result: Any, max_steps: int) -> Trial:
    metrics = result.metrics or {}
    steps = int(metrics.get("training_iteration", 0) or 0)
    frame = result.metrics_dataframe
    score = None
    if frame is not None and "score" in frame:
        score = float(frame["score"].max())
    error = f"{type(result.error).__name__}: {result.error}" if result.error else None
    return Trial(
        trial_id=str(metrics.get("trial_id", "")),
        params={k: _plain(v) for k, v in (result.config or {}).items()},
        score=score,
        steps=steps,
        seconds=float(metrics.get("time_total_s", 0.0) or 0.0),
        stopped_early=error is None and steps < max_steps,
        error=error,
        node_id=_last(frame, NODE_ID),
        host=metrics.get("hostname") or None,
    )


def _last(frame: Any, column: str) -> str | None:
    if frame is None or column not in frame or frame[column].dropna().empty:
        return None
    return str(frame[column].dropna().iloc[-1])


def describe_space_value(value: Any) -> str:
    """A search-space entry as a person reads it: ``float in [0.01, 0.3], log scale``."""
    if hasattr(value, "categories"):
        return "one of " + ", ".join(map(str, value.categories))
    if hasattr(value, "lower") and hasattr(value, "upper"):
        kind = "integer" if type(value).__name__ == "Integer" else "float"
        log = ", log scale" if "Log" in type(value.get_sampler()).__name__ else ""
        return f"{kind} in [{value.lower}, {value.upper}]{log}"
    return repr(value)


def _plain(value: Any) -> Any:
    if hasattr(value, "item"):
        return value.item()
    return value
