"""The ``refit`` flow: train a challenger on fresh data and promote it only if it beats the
champion on the same recent holdout, saying why or why not.

prefect.yaml starts it (``refit-<task>``) when the monitor flow emits
``mlplug.drift.detected`` for the task; it also runs on demand. It is the train flow with a
refit report that records what triggered it.
"""

from __future__ import annotations

from typing import Any

from prefect import flow, get_run_logger

from flows.train import train_and_register


@flow(name="refit", log_prints=True)
def refit(
    task: str,
    data: str | None = None,
    options: dict[str, Any] | None = None,
    params: dict[str, Any] | None = None,
    trials: int = 4,
    rows: int = 20_000,
    seed: int = 1,
    drift: float = 0.0,
    holdout: float = 0.2,
    min_delta: float = 0.0,
    cpus: int | None = None,
    store: str | None = None,
    reason: str = "",
    event_id: str = "",
) -> dict[str, Any]:
    """Refit ``task`` on ``data`` (a URL of fresh labelled data; empty: the synthetic
    generator with ``rows``, ``seed`` and ``drift``). ``reason`` and ``event_id`` record what
    triggered the run (the drift decision and the event, when a trigger started it)."""
    trigger = reason or "refit requested"
    if event_id:
        trigger += f" (event {event_id})"
    get_run_logger().info("refit of %s: %s", task, trigger)
    return train_and_register(
        task=task,
        data=data,
        options=options,
        params=params,
        trials=trials,
        rows=rows,
        seed=seed,
        drift=drift,
        holdout=holdout,
        min_delta=min_delta,
        promote=True,
        cpus=cpus,
        store=store,
        kind="refit",
        trigger=trigger,
    )
