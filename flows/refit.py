"""The ``refit`` flow: train a challenger on fresh data and promote it only if it beats the
champion on the same recent holdout, saying why or why not.

``refit-<task>`` deployments start it when the monitor flow emits ``mlplug.drift.detected``
for the task; it also runs on demand. It runs the train flow's steps with the task's refit
settings (:mod:`mlplug.refit_settings`) and a refit report that records what triggered it.
"""

from __future__ import annotations

from typing import Any

from prefect import flow, get_run_logger

from flows.train import train_run
from mlplug.flowrun import fails_cleanly
from mlplug.parameters import RefitParameters, flow_parameters
from mlplug.plugins import get_plugins
from mlplug.refit_settings import block_name, load_refit_settings, refit_parameters


@flow(name="refit", log_prints=True)
@fails_cleanly
@flow_parameters(RefitParameters)
def refit(task: str, **parameters: Any) -> dict[str, Any]:
    """Refit a task type on fresh data with its refit settings, and promote the challenger
    only if it beats the champion on the same holdout rows."""
    run = RefitParameters(**parameters)
    get_plugins().task(task)  # an unknown task fails before the settings are read
    log = get_run_logger()
    settings = load_refit_settings(task)
    p = refit_parameters(settings, data=run.data, since=run.since, until=run.until, overrides=run.overrides)
    source = p.data or f"synthetic data ({p.rows} rows, drift {p.drift:g}): a drill"
    where = f"settings block {block_name(task)!r}" if settings else "defaults (no refit settings saved)"
    log.info("refit settings from %s: data %s, %d trials, min_delta %g", where, source, p.trials, p.min_delta)
    trigger = run.reason or "refit requested"
    if run.event_id:
        trigger += f" (event {run.event_id})"
    log.info("refit of %s: %s", task, trigger)
    return train_run(task, p, kind="refit", trigger=trigger)
