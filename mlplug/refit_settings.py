"""A task's refit settings: what a refit trains on and how, set once by the operator.

They live in the Prefect API as a block of type ``mlplug refit settings`` named after the
task (``mlplug deploy --refit-data ... --refit-trials ...`` writes it; the Prefect UI edits
it under Blocks). Redeploying changes no settings, because deployments do not carry them.
A refit run reads them when it starts; its own ``data``, time window and ``overrides`` apply
on top for that run only. Without saved settings a refit trains on the task's synthetic
generator with drift 1.0: a drill, which the run's log says.
"""

from __future__ import annotations

from typing import Any, ClassVar

from prefect.blocks.core import Block
from pydantic import create_model
from pydantic.fields import FieldInfo

from mlplug.parameters import TrainParameters

#: Where a refit differs from a training run by default: fewer trials, another seed, and
#: synthetic data that has drifted (only used when no data source is set).
REFIT_DEFAULTS: dict[str, Any] = {"trials": 4, "seed": 1, "drift": 1.0}
#: Training parameters that are per run, not settings: where to write, whether to promote.
_PER_RUN = {"store", "promote", "since", "until"}
#: The training parameters that a task's refit settings hold.
SETTINGS_FIELDS = tuple(n for n in TrainParameters.model_fields if n not in _PER_RUN)


def _field(name: str, info: FieldInfo) -> tuple[Any, FieldInfo]:
    if name in REFIT_DEFAULTS:
        info = FieldInfo.merge_field_infos(info, default=REFIT_DEFAULTS[name])
    return info.annotation, info


_RefitFields = create_model(  # the training parameters' declarations, refit defaults
    "_RefitFields",
    __base__=Block,
    **{n: _field(n, TrainParameters.model_fields[n]) for n in SETTINGS_FIELDS},
)


class RefitSettings(_RefitFields):  # type: ignore[misc, valid-type]
    """How ``refit-<task>`` retrains a task when its traffic drifts: the fresh labelled data
    and its loader options, rows of synthetic data when there is none, trials, and the
    margin by which the challenger must beat the champion."""

    _block_type_name: ClassVar[str] = "mlplug refit settings"
    _block_type_slug: ClassVar[str] = "mlplug-refit-settings"
    _description: ClassVar[str] = (
        "What a refit of an mlplug task trains on and how. One block per task, named after it; "
        "read by every refit run of the task."
    )


def block_name(task: str) -> str:
    """Block names take lower-case letters, digits and dashes."""
    return task.replace("_", "-")


def load_refit_settings(task: str) -> RefitSettings | None:
    """The task's saved settings, or ``None`` when none are saved."""
    try:
        return RefitSettings.load(block_name(task))  # type: ignore[return-value]
    except ValueError:  # Prefect: no block document with that name
        return None


def save_refit_settings(task: str, changes: dict[str, Any]) -> tuple[RefitSettings, dict[str, Any]]:
    """Merge ``changes`` into the task's settings and save them; returns the settings and
    the fields whose value changed."""
    current = load_refit_settings(task)
    before = settings_values(current) if current else settings_values(RefitSettings())
    after = {**before, **changes}
    settings = RefitSettings(**after)
    changed = {k: v for k, v in settings_values(settings).items() if before.get(k) != v}
    if current is None or changed:
        settings.save(block_name(task), overwrite=True)
    return settings, changed


def settings_values(settings: RefitSettings) -> dict[str, Any]:
    return {name: getattr(settings, name) for name in SETTINGS_FIELDS}


def refit_parameters(
    settings: RefitSettings | None, *, data: str, since: str, until: str, overrides: dict[str, Any]
) -> TrainParameters:
    """The training parameters of one refit run: defaults, then the saved settings, then
    this run's data, window and overrides."""
    base = settings_values(settings or RefitSettings())
    run = {"data": data} if data else {}
    return TrainParameters(**{**base, **run, "since": since, "until": until, **overrides, "promote": True})
