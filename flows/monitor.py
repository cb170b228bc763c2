"""The ``monitor`` flow: compare a version's recent traffic with its reference profile,
store a drift report, and raise the ``mlplug.drift.detected`` event when the data drifted.

A deployment trigger (prefect.yaml, ``refit-<task>``) turns that event into a refit run.
Nothing here knows a task type.
"""

from __future__ import annotations

from typing import Any

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE

from mlplug.monitoring import check
from mlplug.monitoring.drift import DriftResult, DriftThresholds
from mlplug.options import parse_options
from mlplug.plugins import get_plugins
from mlplug.registry import ModelVersion, Registry, open_registry
from mlplug.reporting import REPORT_FILE, ReportContext, build_report, publish_artifacts
from mlplug.scoring import load_version
from mlplug.task import TaskType

DRIFT_EVENT = "mlplug.drift.detected"
STORAGE_RETRIES = {"retries": 3, "retry_delay_seconds": [1, 4, 10]}


def model_resource(task_name: str, version: int | None = None) -> dict[str, str]:
    """The Prefect resource of a task's model; triggers match on its id."""
    resource = {
        "prefect.resource.id": f"mlplug.model.{task_name}",
        "prefect.resource.name": f"{task_name} model",
    }
    if version is not None:
        resource["mlplug.version"] = str(version)
    return resource


@task(cache_policy=NO_CACHE, **STORAGE_RETRIES)
def gather_traffic(
    task_type: TaskType,
    registry: Registry,
    version: ModelVersion,
    hours: float,
    data: str | None,
    options: dict[str, Any] | None,
    rows: int,
    seed: int,
    drift: float,
) -> check.Traffic:
    if not data and rows <= 0:
        return check.stored_traffic(registry, version, hours)
    loaded = load_version(task_type, registry, version.version)
    if data:
        dataset = task_type.load(data, parse_options(task_type, options))
    else:
        dataset = task_type.synthesize(rows, seed=seed, drift=drift)
    return check.scored_traffic(task_type, version, loaded.model, dataset)


@task(cache_policy=NO_CACHE, **STORAGE_RETRIES)
def save_result(registry: Registry, result: DriftResult) -> str:
    return check.save_result(registry, result)


@task(cache_policy=NO_CACHE, **STORAGE_RETRIES)
def save_report(registry: Registry, prefix: str, html: str) -> None:
    check.save_report(registry, prefix, html)


@flow(name="monitor", log_prints=True)
def monitor(
    task: str,
    version: str = "champion",
    hours: float = 24.0,
    data: str | None = None,
    options: dict[str, Any] | None = None,
    rows: int = 0,
    seed: int = 0,
    drift: float = 0.0,
    column_threshold: float = 0.1,
    share_threshold: float = 0.25,
    min_rows: int = 500,
    emit: bool = True,
    cooldown_hours: float = 6.0,
    store: str | None = None,
) -> dict[str, Any]:
    """Compare the traffic ``version`` (default: the champion) answered in the last ``hours``
    hours with its reference profile. ``data`` (a URL of recent inputs) or ``rows`` (the
    task's synthetic generator with ``seed`` and ``drift``: a drift drill) replace the stored
    traffic. A column drifts when its Hellinger distance reaches ``column_threshold``; the data
    drifts when ``share_threshold`` of the input columns do, or the model's outputs do. Then,
    unless ``emit`` is false or an earlier run raised the alarm for this version less than
    ``cooldown_hours`` ago, the flow emits ``mlplug.drift.detected``."""
    log = get_run_logger()
    task_type = get_plugins().task(task)
    registry = open_registry(store)
    thresholds = DriftThresholds(
        possible=min(0.07, column_threshold), drift=column_threshold, share=share_threshold, min_rows=min_rows
    )
    mv = registry.model(task, version)
    reference = check.reference(registry, mv)
    traffic = gather_traffic(task_type, registry, mv, hours, data, options, rows, seed, drift)
    log.info("%s v%d: %d rows of traffic from %s", task, mv.version, traffic.profile.rows(), traffic.source)
    result = check.check(task_type, mv, reference, traffic, thresholds)
    log.info("%s v%d: %s", task, mv.version, result.decision)
    earlier = check.recent_alarm(registry, result, cooldown_hours) if result.drifted else None
    # drift.json first: it is what the next run's cooldown reads, and what the event links to.
    prefix = save_result(registry, result)
    report_uri = registry.store.uri(f"{prefix}/{REPORT_FILE}")

    event_id, alarm = None, "no drift: nothing to do"
    if not result.drifted and result.current_rows < thresholds.min_rows:
        alarm = "no decision: too little traffic; nothing to do"
    elif result.drifted and not emit:
        alarm = "drift found; emitting events is switched off for this run"
    elif earlier is not None:
        alarm = (
            f"drift found; no new event: the run of {earlier.created_at} already raised the alarm "
            f"for v{mv.version} (cooldown {cooldown_hours:g} h)"
        )
    elif result.drifted:
        event_id = emit_drift_event(result, report_uri)
        alarm = (
            f"emitted {DRIFT_EVENT} ({event_id}): a refit-{task} deployment trigger starts a refit"
            if event_id
            else "drift found; no Prefect API to emit the event to"
        )
    log.info("%s", alarm)

    context = ReportContext.for_monitoring(
        task_type=task_type, version=mv, drift=result, registry=registry, decision=alarm
    )
    report = build_report(context)
    save_report(registry, prefix, report.html)
    publish_artifacts(report, key=task.replace("_", "-"), link=report_uri)
    return {
        "task": task,
        "version": mv.version,
        "drifted": result.drifted,
        "decision": result.decision,
        "share": round(result.share, 4),
        "rows": result.current_rows,
        "profiles": result.profiles,
        "source": traffic.source,
        "drifted_columns": [c.name for c in result.drifted_inputs],
        "report": report_uri,
        "result": registry.store.uri(f"{prefix}/{check.DRIFT_FILE}"),
        "event": event_id,
        "alarm": alarm,
    }


def emit_drift_event(result: DriftResult, report_uri: str) -> str | None:
    """Emit ``mlplug.drift.detected`` for the task's model; returns the event id."""
    from prefect.events import emit_event

    event = emit_event(
        event=DRIFT_EVENT,
        resource=model_resource(result.task, result.version),
        # Strings where a triggered flow takes strings: templated parameters keep JSON types.
        payload={
            "task": result.task,
            "version": str(result.version),
            "decision": result.decision,
            "share": f"{result.share:.2f}",
            "drifted_columns": ",".join(c.name for c in result.drifted_inputs),
            "report": report_uri,
        },
    )
    if event is None:
        get_run_logger().warning("drift detected but no event was emitted (no Prefect API or events client)")
        return None
    get_run_logger().info("emitted %s (%s)", DRIFT_EVENT, event.id)
    return str(event.id)
