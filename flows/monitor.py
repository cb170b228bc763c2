"""The ``monitor`` flow: compare a version's recent traffic with its reference profile,
store a drift report, and raise the ``mlplug.drift.detected`` event when the data drifted.

A deployment trigger (``refit-<task>``) turns that event into a refit run. Nothing here
knows a task type.
"""

from __future__ import annotations

from typing import Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE
from prefect.states import Completed, State

from mlplug import layout
from mlplug.flowrun import STORE_RETRIES, fails_cleanly, open_run_registry
from mlplug.monitoring import check
from mlplug.monitoring.drift import DriftResult, DriftThresholds
from mlplug.options import parse_options
from mlplug.parameters import MonitorParameters, flow_parameters
from mlplug.plugins import get_plugins
from mlplug.registry import ModelVersion, Registry
from mlplug.reporting import ReportContext, build_report, publish_artifacts
from mlplug.scoring import load_version
from mlplug.task import TaskType

DRIFT_EVENT = "mlplug.drift.detected"


def model_resource(task_name: str, version: int | None = None) -> dict[str, str]:
    """The Prefect resource of a task's model; triggers match on its id."""
    resource = {
        "prefect.resource.id": f"mlplug.model.{task_name}",
        "prefect.resource.name": f"{task_name} model",
    }
    if version is not None:
        resource["mlplug.version"] = str(version)
    return resource


@task(cache_policy=NO_CACHE, **STORE_RETRIES)
def gather_traffic(
    task_type: TaskType, registry: Registry, version: ModelVersion, p: MonitorParameters
) -> check.Traffic:
    if not p.data and p.rows <= 0:
        return check.stored_traffic(task_type, registry, version, p.hours)
    loaded = load_version(task_type, registry, version.version)
    if p.data:
        dataset = task_type.load(p.data, parse_options(task_type, p.options))
    else:
        dataset = task_type.synthesize(p.rows, seed=p.seed, drift=p.drift)
    return check.scored_traffic(task_type, version, loaded.model, dataset)


@task(cache_policy=NO_CACHE, **STORE_RETRIES)
def save_result(registry: Registry, result: DriftResult) -> str:
    return check.save_result(registry, result)


@task(cache_policy=NO_CACHE, **STORE_RETRIES)
def save_report(registry: Registry, prefix: str, html: str) -> None:
    check.save_report(registry, prefix, html)


@flow(name="monitor", log_prints=True)
@fails_cleanly
@flow_parameters(MonitorParameters)
def monitor(task: str, **parameters: Any) -> dict[str, Any] | State:
    """Compare the traffic a model version answered in a recent window with its reference
    profile (its holdout), store a drift report, and emit mlplug.drift.detected when the
    data drifted. A column drifts when its Hellinger distance reaches `column_threshold`; the
    data drifts when `share_threshold` of the input columns do, or the model's outputs do."""
    p = MonitorParameters(**parameters)
    log = get_run_logger()
    task_type = get_plugins().task(task)
    registry = open_run_registry(p.store)
    if p.version == "champion" and registry.alias(task) is None:
        return _nothing_to_monitor(task, registry)
    thresholds = DriftThresholds(
        possible=min(0.07, p.column_threshold), drift=p.column_threshold, share=p.share_threshold,
        min_rows=p.min_rows,
    )  # fmt: skip
    mv = registry.model(task, p.version)
    reference = check.reference(registry, mv)
    traffic = gather_traffic(task_type, registry, mv, p)
    log.info(
        "%s v%d: %d rows of traffic profiled (of %d answered) from %s",
        task, mv.version, traffic.profile.rows(), traffic.seen_rows, traffic.source,
    )  # fmt: skip
    for skipped in traffic.skipped:
        log.warning("skipped traffic profile %s: %s", registry.store.uri(skipped.key), skipped.reason)
    result = check.check(task_type, mv, reference, traffic, thresholds)
    log.info("%s v%d: %s", task, mv.version, result.decision)
    earlier = check.recent_alarm(registry, result, p.cooldown_hours) if result.drifted else None
    # drift.json first: it is what the next run's cooldown reads, and what the event links to.
    prefix = save_result(registry, result)
    report_uri = registry.store.uri(f"{prefix}/{layout.REPORT}")

    event_id, alarm = None, "no drift: nothing to do"
    if result.current_rows == 0 and traffic.skipped and not traffic.profiles:
        alarm = (
            f"no usable traffic: all {len(traffic.skipped)} profiles of the last {p.hours:g} h were skipped "
            f"(unreadable or of another schema; see skipped_profiles in {layout.DRIFT}); nothing to compare"
        )
    elif result.current_rows == 0:
        alarm = f"no traffic: no rows in the last {p.hours:g} h ({traffic.source}); nothing to compare"
    elif not result.drifted and result.current_rows < thresholds.min_rows:
        alarm = "no decision: too little traffic; nothing to do"
    elif result.drifted and not p.emit:
        alarm = "drift found; emitting events is switched off for this run"
    elif earlier is not None:
        alarm = (
            f"drift found; no new event: the run of {earlier.created_at} already raised the alarm "
            f"for v{mv.version} (cooldown {p.cooldown_hours:g} h)"
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
    publish_artifacts(
        report, key=task.replace("_", "-"), store=registry.store, report_key=f"{prefix}/{layout.REPORT}"
    )
    return {
        "task": task,
        "version": mv.version,
        "drifted": result.drifted,
        "decision": result.decision,
        "share": round(result.share, 4),
        "rows": result.current_rows,
        "seen_rows": result.seen_rows,
        "profiles": result.profiles,
        "skipped_profiles": [{"key": s.key, "reason": s.reason} for s in result.skipped_profiles],
        "out_of_range": _out_of_range(result),
        "source": traffic.source,
        "drifted_columns": [c.name for c in result.drifted_inputs],
        "report": report_uri,
        "result": registry.store.uri(f"{prefix}/{layout.DRIFT}"),
        "event": event_id,
        "alarm": alarm,
        "store": registry.store.url,
    }


def _out_of_range(result: DriftResult) -> dict[str, dict[str, int]]:
    """Per column, the infinite and extreme values the window's traffic held."""
    return {
        c.name: {"non_finite": c.current_non_finite, "extreme": c.current_extreme}
        for c in result.out_of_range
    }


def _nothing_to_monitor(task: str, registry: Registry) -> State:
    """A task without a champion has nothing to monitor yet: a scheduled run says so and
    completes, rather than failing every hour until the first model is trained."""
    message = f"no champion yet: train first (`mlplug train {task}` or the train-{task} deployment)"
    get_run_logger().info("%s: %s", task, message)
    create_markdown_artifact(
        key=f"{task.replace('_', '-')}-monitor-report",
        markdown=f"# {task}: nothing to monitor\n\n{message}. Store: `{registry.store.url}`\n",
        description=f"{task} monitor run: {message}",
    )
    summary = {"task": task, "version": None, "drifted": False, "decision": message, "alarm": message,
               "rows": 0, "event": None, "store": registry.store.url}  # fmt: skip
    return Completed(message=message, data=summary)


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
            # The traffic window; a refit trigger may pass it on (`since`, `until`).
            "window_start": result.window_start,
            "window_end": result.window_end,
            # Rows answered and profiled; values beyond the profiles' range, per column.
            "rows": str(result.current_rows),
            "seen_rows": str(result.seen_rows),
            "out_of_range": _out_of_range(result),
        },
    )
    if event is None:
        get_run_logger().warning("drift detected but no event was emitted (no Prefect API or events client)")
        return None
    get_run_logger().info("emitted %s (%s)", DRIFT_EVENT, event.id)
    return str(event.id)
