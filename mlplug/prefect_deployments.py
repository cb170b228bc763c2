"""What ``mlplug deploy`` writes to the Prefect API, for every installed task type: the work
pool, the ``train-``, ``monitor-`` (hourly), ``refit-`` (on ``mlplug.drift.detected``) and
``deploy-`` deployments, the refit automation, and the task's refit settings.

:func:`plan` says what the deployments should be, from the installed task types alone;
:func:`apply` makes the API match, creating what is missing, changing what differs and
leaving the rest; :func:`prefect_yaml` writes the same deployments for ``prefect deploy``.

Deployments carry no store URL and no working directory: the store is the operator's (the
worker's ``MLPLUG_STORE``, or the pool's job variables, see :mod:`mlplug.runtime`), and the
flows are imported from the installed ``flows`` package (entrypoints such as
``flows.train.train``), wherever the worker runs.
"""

from __future__ import annotations

import copy
import zlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from mlplug.errors import MlplugError
from mlplug.task import TaskType

DRIFT_EVENT = "mlplug.drift.detected"
#: Set in the pools mlplug creates, so that no flow run reaches a hub or sends telemetry.
OFFLINE_ENV = {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "WHYLOGS_NO_ANALYTICS": "True",
    "RAY_USAGE_STATS_ENABLED": "0",
    "DO_NOT_TRACK": "1",
}
#: What a refit trigger passes to the refit flow: why it runs, and what a custom event may
#: carry for this run (fresh data, a time window). Prefect renders a one-expression template
#: through ``tojson``, where a missing key fails the action ("InvalidJinja"): hence ``get``.
#: A bare ``event.id`` (a UUID) fails the same way: hence ``| string``.
REFIT_TRIGGER_PARAMETERS = {
    "reason": "{{ event.payload.get('decision', '') }}",
    "event_id": "{{ event.id | string }}",
    "data": "{{ event.payload.get('data', '') }}",
    "since": "{{ event.payload.get('since', '') }}",
    "until": "{{ event.payload.get('until', '') }}",
}


def model_resource_id(task: str) -> str:
    """The Prefect resource id of a task's model: drift events name it, triggers match it."""
    return f"mlplug.model.{task}"


def monitor_minute(task: str) -> int:
    """Minute of the hour a task's monitor runs: stable per task, spread over the hour."""
    return 2 + zlib.crc32(task.encode()) % 55


@dataclass(frozen=True)
class DeploymentPlan:
    """One deployment as mlplug wants it."""

    name: str
    flow_name: str
    entrypoint: str
    task: str
    description: str
    parameters: dict[str, Any]
    tags: list[str]
    #: The flow's parameter schema, with the task's loader options where it has ``options``.
    parameter_schema: dict[str, Any]
    cron: str | None = None
    trigger: dict[str, Any] | None = None
    job_variables: dict[str, Any] = field(default_factory=dict)


_FLOWS = {
    "train": ("flows.train.train", "Train {task} and promote the new model if it beats the champion."),
    "monitor": (
        "flows.monitor.monitor",
        "Hourly: score drift of the {task} champion's recent traffic; on drift emit "
        f"{DRIFT_EVENT}, which starts refit-{{task}}.",
    ),
    "refit": (
        "flows.refit.refit",
        "Refit {task} with its refit settings when its traffic drifts; promote only if it beats the "
        "champion on the same holdout rows.",
    ),
    "deploy": (
        "flows.deploy.deploy",
        "Serve the {task} champion on Kubernetes (or render the manifests into the store).",
    ),
}


def plan(tasks: Mapping[str, TaskType], *, image: str = "") -> list[DeploymentPlan]:
    """The four deployments of every task type in ``tasks``."""
    from prefect.utilities.importtools import import_object

    plans = []
    for name, task_type in sorted(tasks.items()):
        for flow_name, (entrypoint, description) in _FLOWS.items():
            flow = import_object(entrypoint)
            trigger = None
            if flow_name == "refit":
                trigger = {
                    "name": refit_automation_name(name),
                    "description": (
                        f"When monitor-{name} finds that the {name} champion's traffic drifted "
                        f"({DRIFT_EVENT} for {model_resource_id(name)}), start refit-{name}: a "
                        "challenger trained with the task's refit settings, promoted only if it "
                        "beats the champion."
                    ),
                    "enabled": True,
                    "match": {"prefect.resource.id": model_resource_id(name)},
                    "expect": [DRIFT_EVENT],
                    "parameters": dict(REFIT_TRIGGER_PARAMETERS),
                }
            plans.append(
                DeploymentPlan(
                    name=f"{flow_name}-{name}",
                    flow_name=flow.name,
                    entrypoint=entrypoint,
                    task=name,
                    description=description.format(task=name),
                    parameters={"task": name},
                    tags=["mlplug", flow_name, name],
                    parameter_schema=_schema_for(flow, task_type),
                    cron=f"{monitor_minute(name)} * * * *" if flow_name == "monitor" else None,
                    trigger=trigger,
                    job_variables={"image": image} if image else {},
                )
            )
    return plans


def refit_automation_name(task: str) -> str:
    return f"refit-{task} on drift"


def _schema_for(flow: Any, task_type: TaskType) -> dict[str, Any]:
    """The flow's parameter schema, with ``task`` fixed to this task type and ``options``
    typed by the task's loader options (so the UI form lists them, described)."""
    from prefect.utilities.callables import parameter_schema

    schema = parameter_schema(flow).model_dump(exclude_unset=True)
    properties = schema.setdefault("properties", {})
    if "task" in properties:
        properties["task"] = {**properties["task"], "enum": [task_type.name], "default": task_type.name}
    if "options" in properties:
        options = task_type.options_model.model_json_schema()
        definitions = options.pop("$defs", {})
        if definitions:
            schema.setdefault("definitions", {}).update(definitions)
        properties["options"] = {
            **options,
            "title": "options",
            "description": properties["options"].get("description", ""),
            "default": {},
            "position": properties["options"].get("position"),
        }
    return _refs_to_definitions(schema)


def _refs_to_definitions(schema: Any) -> Any:
    """Prefect's parameter schemas keep shared types under ``definitions``."""
    if isinstance(schema, dict):
        return {
            k: (v.replace("#/$defs/", "#/definitions/") if k == "$ref" and isinstance(v, str) else
                _refs_to_definitions(v))
            for k, v in schema.items()
        }  # fmt: skip
    if isinstance(schema, list):
        return [_refs_to_definitions(v) for v in schema]
    return schema


# -- applying ------------------------------------------------------------------------------


@dataclass
class Outcome:
    what: str
    #: ``created``, ``changed`` or ``unchanged``.
    action: str
    detail: str = ""

    def __str__(self) -> str:
        return f"{self.what}: {self.action}" + (f" ({self.detail})" if self.detail else "")


def base_job_template(pool_type: str, store: str = "", image: str = "") -> dict[str, Any]:
    """The base job template of a pool mlplug creates (:mod:`mlplug.workpools`), with the
    offline switches (and the store, when given) in every flow run's default environment
    and, for Kubernetes, the image."""
    from mlplug.workpools import base_job_template as template

    defaults: dict[str, Any] = {"env": {**OFFLINE_ENV, **({"MLPLUG_STORE": store} if store else {})}}
    if image and pool_type == "kubernetes":
        defaults["image"] = image
    return template(pool_type, defaults)


def ensure_pool(client: Any, pool_type: str, name: str, store: str = "", image: str = "") -> Outcome:
    """Create the work pool if missing; set its default store if ``store`` is given."""
    from prefect.client.schemas.actions import WorkPoolCreate, WorkPoolUpdate
    from prefect.exceptions import ObjectNotFound

    try:
        pool = client.read_work_pool(name)
    except ObjectNotFound:
        client.create_work_pool(
            WorkPoolCreate(
                name=name,
                type=pool_type,
                base_job_template=base_job_template(pool_type, store, image),
                description=f"mlplug flow runs ({pool_type} worker)",
            )
        )
        return Outcome(
            f"work pool {name}", "created", f"type {pool_type}" + (f", store {store}" if store else "")
        )
    if pool.type != pool_type:
        raise MlplugError(f"work pool {name!r} exists with type {pool.type!r}, not {pool_type!r}")
    if not store:
        return Outcome(f"work pool {name}", "unchanged")
    template = copy.deepcopy(pool.base_job_template)
    env = template.setdefault("variables", {}).setdefault("properties", {}).setdefault("env", {})
    before = (env.get("default") or {}).get("MLPLUG_STORE")
    if before == store:
        return Outcome(f"work pool {name}", "unchanged")
    env["default"] = {**(env.get("default") or {}), "MLPLUG_STORE": store}
    client.update_work_pool(name, WorkPoolUpdate(base_job_template=template))
    return Outcome(f"work pool {name}", "changed", f"store {before or '(worker environment)'} -> {store}")


def apply(plans: Iterable[DeploymentPlan], pool: str) -> list[Outcome]:
    """Make the deployments and their automations match ``plans``; report what changed."""
    from prefect.client.orchestration import get_client

    outcomes = []
    with get_client(sync_client=True) as client:
        for p in plans:
            existing = _existing(client, p)
            differences = _differences(client, p, pool, existing)
            if existing is not None and not differences:
                outcomes.append(Outcome(p.name, "unchanged"))
                continue
            _runner_deployment(p, pool).apply()
            if existing is None:
                outcomes.append(Outcome(p.name, "created", _features(p)))
            else:
                outcomes.append(Outcome(p.name, "changed", ", ".join(differences)))
    return outcomes


def _features(p: DeploymentPlan) -> str:
    if p.cron:
        return f"schedule {p.cron} UTC"
    if p.trigger:
        return f"automation {p.trigger['name']!r}"
    return ""


def _existing(client: Any, p: DeploymentPlan) -> Any:
    from prefect.exceptions import ObjectNotFound

    try:
        return client.read_deployment_by_name(f"{p.flow_name}/{p.name}")
    except ObjectNotFound:
        return None


def _differences(client: Any, p: DeploymentPlan, pool: str, existing: Any) -> list[str]:
    if existing is None:
        return ["new"]
    found = []
    checks = {
        "entrypoint": (existing.entrypoint, p.entrypoint),
        "work pool": (existing.work_pool_name, pool),
        "parameters": (existing.parameters, p.parameters),
        "description": (existing.description, p.description),
        "tags": (sorted(existing.tags), sorted(p.tags)),
        "job variables": (existing.job_variables or {}, p.job_variables),
        "pull steps": (existing.pull_steps or [], []),
        "parameter schema": (existing.parameter_openapi_schema, p.parameter_schema),
        "schedule": (sorted(_crons(existing)), [p.cron] if p.cron else []),
    }
    found = [name for name, (have, want) in checks.items() if have != want]
    if _automations(client, existing.id) != ([_automation_summary(p.trigger)] if p.trigger else []):
        found.append("automation")
    return found


def _crons(deployment: Any) -> list[str]:
    return [getattr(s.schedule, "cron", str(s.schedule)) for s in deployment.schedules or []]


def _automation_summary(trigger: Mapping[str, Any]) -> tuple[Any, ...]:
    return (
        trigger["name"],
        trigger["description"],
        tuple(sorted(trigger["expect"])),
        tuple(sorted(trigger["match"].items())),
        tuple(sorted(trigger["parameters"].items())),
    )


def _automations(client: Any, deployment_id: Any) -> list[tuple[Any, ...]]:
    owned = client.read_resource_related_automations(f"prefect.deployment.{deployment_id}")
    summaries = []
    for automation in owned:
        trigger = automation.trigger
        parameters = next((a.parameters or {} for a in automation.actions if hasattr(a, "parameters")), {})
        match = {k: v for k, v in (trigger.match or {}).items()}
        summaries.append(
            (
                automation.name,
                automation.description,
                tuple(sorted(trigger.expect or ())),
                tuple(sorted((k, v if isinstance(v, str) else v[0] if len(v) == 1 else tuple(v))
                             for k, v in match.items())),
                tuple(sorted(parameters.items())),
            )
        )  # fmt: skip
    return summaries


def _runner_deployment(p: DeploymentPlan, pool: str) -> Any:
    from prefect.client.schemas.actions import DeploymentScheduleCreate
    from prefect.client.schemas.schedules import CronSchedule
    from prefect.deployments.runner import RunnerDeployment
    from prefect.events.schemas.deployment_triggers import DeploymentEventTrigger
    from prefect.types.entrypoint import EntrypointType
    from prefect.utilities.callables import ParameterSchema

    deployment = RunnerDeployment(
        name=p.name,
        flow_name=p.flow_name,
        entrypoint=p.entrypoint,
        description=p.description,
        tags=p.tags,
        parameters=p.parameters,
        work_pool_name=pool,
        job_variables=dict(p.job_variables),
        schedules=[DeploymentScheduleCreate(schedule=CronSchedule(cron=p.cron, timezone="UTC"), active=True)]
        if p.cron
        else [],
        triggers=[DeploymentEventTrigger(**p.trigger)] if p.trigger else [],
        enforce_parameter_schema=True,
    )
    deployment._entrypoint_type = EntrypointType.MODULE_PATH
    deployment._parameter_openapi_schema = ParameterSchema(**p.parameter_schema)
    return deployment


# -- prefect.yaml --------------------------------------------------------------------------


def prefect_yaml(plans: Iterable[DeploymentPlan], pool: str) -> str:
    """``plans`` as a prefect.yaml that ``prefect --no-prompt deploy --all`` applies."""
    from importlib.metadata import version

    import yaml

    deployments = []
    for p in plans:
        entry: dict[str, Any] = {
            "name": p.name,
            "entrypoint": p.entrypoint,
            "description": p.description,
            "tags": p.tags,
            "parameters": p.parameters,
            "work_pool": {"name": pool, **({"job_variables": p.job_variables} if p.job_variables else {})},
        }
        if p.cron:
            entry["schedules"] = [{"cron": p.cron, "timezone": "UTC", "active": True}]
        if p.trigger:
            entry["triggers"] = [{"type": "event", **p.trigger}]
        deployments.append(entry)
    header = (
        "# Prefect deployments of mlplug, written by `mlplug deploy --prefect-yaml prefect.yaml` from\n"
        "# the installed task types; `mlplug deploy` applies the same deployments directly (and\n"
        "# covers any task type installed later). Apply this file with\n"
        "#   prefect --no-prompt deploy --all\n"
        "# on a server where the work pool exists (`mlplug deploy` creates it). Flows are imported\n"
        "# from the installed `flows` package, so there are no pull steps, and no deployment carries\n"
        "# a store: runs use the worker's MLPLUG_STORE (docs/operations.md).\n"
    )
    body = {"name": "mlplug", "prefect-version": version("prefect"), "pull": [], "deployments": deployments}
    return header + yaml.safe_dump(body, sort_keys=False, width=100)
