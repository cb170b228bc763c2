"""The steps of a monitor run: find the traffic of a window, compare it with the version's
reference profile, and keep the result in the store.

::

    <task>/monitoring/<UTC time>-v<version>/drift.json  report.html

Traffic comes from the profiles servers and ``mlplug predict`` wrote for the version, or from
a table of recent inputs given by URL (scored by the version now), or from the task's
synthetic generator (a drift drill).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np

from mlplug.dataset import Dataset
from mlplug.errors import MlplugError, NotFoundError
from mlplug.monitoring.drift import DriftResult, DriftThresholds, compare
from mlplug.monitoring.features import monitored_columns, monitoring_frame
from mlplug.monitoring.profiles import REFERENCE_FILE, list_profiles, read_merged
from mlplug.monitoring.whylogs_compat import Profile
from mlplug.registry import ModelVersion, Registry
from mlplug.schema import Schema
from mlplug.task import Model, TaskType

DRIFT_FILE = "drift.json"
REPORT_FILE = "report.html"
_RUN_TIME = "%Y%m%dT%H%M%SZ"


@dataclass(frozen=True)
class Traffic:
    profile: Profile
    #: How many profiles were merged (1 for a table or a drill).
    profiles: int
    start: datetime
    end: datetime
    source: str


def reference(registry: Registry, version: ModelVersion) -> Profile:
    key = f"{version.task}/models/{version.version}/{REFERENCE_FILE}"
    try:
        return Profile.from_bytes(registry.store.get(key))
    except NotFoundError:
        raise MlplugError(
            f"{version.task} v{version.version} has no reference profile ({registry.store.uri(key)}): "
            "it was registered before monitoring existed; train a new version to monitor it"
        ) from None


def stored_traffic(
    registry: Registry, version: ModelVersion, hours: float, now: datetime | None = None
) -> Traffic:
    """Merge the version's traffic profiles flushed in the last ``hours`` hours."""
    if hours <= 0:
        raise MlplugError(f"hours must be positive, got {hours}")
    end = now or datetime.now(UTC)
    start = end - timedelta(hours=hours)
    refs = list_profiles(registry.store, version.task, version.version, since=start, until=end)
    merged = read_merged(registry.store, [r.key for r in refs])
    where = registry.store.uri(f"{version.task}/profiles/{version.version}/")
    return Traffic(merged or Profile.empty(), len(refs), start, end, f"{len(refs)} profiles in {where}")


def scored_traffic(task_type: TaskType, version: ModelVersion, model: Model, data: Dataset) -> Traffic:
    """Profile rows of recent inputs as the server would have seen them: scored by ``model``."""
    schema = Schema.from_dict(version.schema)
    X = data.frame[schema.feature_names]  # noqa: N806
    proba = np.asarray(model.predict_proba(X), dtype=float)
    frame = monitoring_frame(task_type, schema, X, proba, threshold=version.threshold)
    now = datetime.now(UTC)
    return Traffic(Profile.of(frame), 1, now, now, data.source)


def check(
    task_type: TaskType,
    version: ModelVersion,
    reference_profile: Profile,
    traffic: Traffic,
    thresholds: DriftThresholds,
) -> DriftResult:
    return compare(
        task=version.task,
        version=version.version,
        columns=monitored_columns(task_type, Schema.from_dict(version.schema)),
        reference=reference_profile,
        current=traffic.profile,
        profiles=traffic.profiles,
        window=(traffic.start, traffic.end),
        thresholds=thresholds,
    )


def result_prefix(result: DriftResult) -> str:
    at = datetime.fromisoformat(result.created_at).astimezone(UTC).strftime(_RUN_TIME)
    return f"{result.task}/monitoring/{at}-v{result.version}"


def save_result(registry: Registry, result: DriftResult) -> str:
    """Write ``drift.json`` create-only; returns the run's prefix."""
    prefix = result_prefix(result)
    data = json.dumps(result.to_dict(), indent=2, allow_nan=False).encode()
    registry.store.put(f"{prefix}/{DRIFT_FILE}", data, if_none_match=True)
    return prefix


def save_report(registry: Registry, prefix: str, html: str) -> None:
    registry.store.put(f"{prefix}/{REPORT_FILE}", html.encode(), if_none_match=True)


def history(registry: Registry, task: str, since: datetime | None = None) -> list[DriftResult]:
    """Monitor results of ``task`` (stored from ``since`` on), oldest first."""
    results = []
    for key in sorted(registry.store.list(f"{task}/monitoring/")):
        if not key.endswith(f"/{DRIFT_FILE}"):
            continue
        stamp = key.split("/")[-2].split("-v")[0]
        if since is not None and datetime.strptime(stamp, _RUN_TIME).replace(tzinfo=UTC) < since:
            continue
        results.append(DriftResult.from_dict(json.loads(registry.store.get(key))))
    return results


def recent_alarm(registry: Registry, result: DriftResult, cooldown_hours: float) -> DriftResult | None:
    """An earlier run that found drift for the same version within ``cooldown_hours``: a
    refit it triggered is probably still running or has failed to beat the champion, and
    starting another one each hour would only pile up runs."""
    if cooldown_hours <= 0:
        return None
    since = datetime.fromisoformat(result.created_at) - timedelta(hours=cooldown_hours)
    earlier = [r for r in history(registry, result.task, since) if r.version == result.version and r.drifted]
    return earlier[-1] if earlier else None
