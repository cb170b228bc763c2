"""The steps of a monitor run: find the traffic of a window, compare it with the version's
reference profile, and keep the result in the store (``drift.json`` and ``report.html`` in
the run's folder of :func:`mlplug.layout.monitor_run`).

Traffic comes from the profiles servers and ``mlplug predict`` wrote for the version, or from
a table of recent inputs given by URL (scored by the version now), or from the task's
synthetic generator (a drift drill).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np

from mlplug import layout
from mlplug.dataset import Dataset
from mlplug.errors import MlplugError, NotFoundError
from mlplug.monitoring.drift import DriftResult, DriftThresholds, compare
from mlplug.monitoring.features import monitored_columns, monitoring_frame
from mlplug.monitoring.profiles import SkippedProfile, list_profiles, merge_valid
from mlplug.monitoring.whylogs_compat import Profile, ProfileError
from mlplug.progress import Progress, artifact_key
from mlplug.registry import ModelVersion, Registry
from mlplug.schema import Schema
from mlplug.task import Model, TaskType


@dataclass(frozen=True)
class Traffic:
    profile: Profile
    #: How many profiles were merged (1 for a table or a drill).
    profiles: int
    start: datetime
    end: datetime
    source: str
    #: Profiles of the window left out (unreadable, or of another schema), with the reason.
    skipped: tuple[SkippedProfile, ...] = ()

    @property
    def seen_rows(self) -> int:
        """Rows answered in the window; ``profile.rows()`` of them were profiled."""
        return self.profile.seen_rows()


def reference(registry: Registry, version: ModelVersion) -> Profile:
    key = layout.model_file(version.task, version.version, layout.REFERENCE_PROFILE)
    try:
        return Profile.from_bytes(registry.artifact(version.task, version.version, layout.REFERENCE_PROFILE))
    except NotFoundError:
        raise MlplugError(
            f"{version.task} v{version.version} has no reference profile ({registry.store.uri(key)}): "
            "it was registered before monitoring existed; train a new version to monitor it"
        ) from None
    except ProfileError as exc:
        raise MlplugError(
            f"{version.task} v{version.version}: the reference profile {registry.store.uri(key)} is damaged "
            f"({exc}); train a new version to monitor it"
        ) from None


def stored_traffic(
    task_type: TaskType,
    registry: Registry,
    version: ModelVersion,
    hours: float,
    now: datetime | None = None,
) -> Traffic:
    """Merge the version's traffic profiles flushed in the last ``hours`` hours that are
    readable and hold the version's monitored columns; the others are skipped and named in
    ``Traffic.skipped``."""
    if hours <= 0:
        raise MlplugError(f"hours must be positive, got {hours}")
    end = now or datetime.now(UTC)
    start = end - timedelta(hours=hours)
    refs = list_profiles(registry.store, version.task, version.version, since=start, until=end)
    title = f"merging {version.task} v{version.version} traffic profiles"
    columns = monitored_columns(task_type, Schema.from_dict(version.schema))
    with Progress(title, artifact_key(version.task, "profiles"), "profiles") as shown:
        merged = merge_valid(registry.store, [r.key for r in refs], columns, progress=shown.update)
    where = registry.store.uri(layout.profiles(version.task, version.version))
    source = f"{len(merged.merged)} profiles in {where}"
    if merged.skipped:
        source += f" ({len(merged.skipped)} of {len(refs)} skipped)"
    profile = merged.profile or Profile.empty()
    return Traffic(profile, len(merged.merged), start, end, source, tuple(merged.skipped))


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
        seen_rows=traffic.seen_rows,
        skipped_profiles=traffic.skipped,
    )


def save_result(registry: Registry, result: DriftResult) -> str:
    """Write ``drift.json`` create-only; returns the run's prefix."""
    prefix = layout.monitor_run(result.task, result.version, result.created_at)
    data = json.dumps(result.to_dict(), indent=2, allow_nan=False).encode()
    registry.store.put(f"{prefix}/{layout.DRIFT}", data, if_none_match=True)
    return prefix


def save_report(registry: Registry, prefix: str, html: str) -> None:
    registry.store.put(f"{prefix}/{layout.REPORT}", html.encode(), if_none_match=True)


def history(registry: Registry, task: str, since: datetime | None = None) -> list[DriftResult]:
    """Monitor results of ``task`` (stored from ``since`` on), oldest first."""
    results = []
    for key in sorted(registry.store.list(layout.monitoring(task))):
        if not key.endswith(f"/{layout.DRIFT}"):
            continue
        if since is not None and layout.monitor_run_time(key) < since:
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
