"""The parameters of mlplug's flows, declared once.

Each flow's parameters are one pydantic model here: its fields are the flow's keyword
parameters (type, default, constraints), and each field's description is what the Prefect
UI's run form, the flow's docstring (``Args:``, which Prefect reads) and ``mlplug ... --help``
show. :func:`flow_parameters` gives a flow function the model's signature and docstring;
:mod:`mlplug.cli.options` turns the same fields into command-line options; ``mlplug deploy``
writes deployments whose parameters validate against them.
"""

from __future__ import annotations

import inspect
import textwrap
from collections.abc import Callable, Mapping
from typing import Annotated, Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field

F = TypeVar("F", bound=Callable[..., Any])

TASK_HELP = "The task type: a name `mlplug tasks` lists (one per installed plugin's task type)."


class Parameters(BaseModel):
    """Base of the flows' parameter models: unknown names are errors, not ignored."""

    model_config = ConfigDict(extra="forbid")


class TrainParameters(Parameters):
    """How a model is trained, evaluated and promoted (the ``train`` flow; ``refit`` runs it
    with the task's refit settings)."""

    data: str = Field(
        "",
        description="Labelled data to train on: a path or URL (file://, s3://) of a CSV, Parquet or "
        "JSONL file. Empty: the task type's synthetic generator (`rows`, `seed`, `drift`).",
    )
    options: dict[str, Any] = Field(
        {},
        description='Loader options of the task type for `data`, e.g. {"target": "churned"}; '
        "`mlplug tasks TASK` lists them.",
    )
    params: dict[str, Any] = Field(
        {},
        description='Model parameters to pin, e.g. {"depth": 6}; pinned parameters are not searched '
        "when tuning.",
    )
    trials: int = Field(8, ge=0, description="Ray Tune trials; 0 fits the task type's default parameters.")
    rows: int = Field(20_000, ge=1, description="Rows of synthetic data when `data` is empty.")
    seed: int = Field(0, description="Seed of the split, the tuning and the synthetic data.")
    drift: float = Field(
        0.0, ge=0, description="Drift of the synthetic data: 0 none, 1 strong (more is stronger still)."
    )
    since: str = Field(
        "",
        description="Keep only rows whose time column is at or after this ISO time, e.g. "
        "2026-11-01T00:00. Empty: from the first row.",
    )
    until: str = Field(
        "", description="Keep only rows whose time column is before this ISO time. Empty: to the last row."
    )
    holdout: float = Field(
        0.2, gt=0, lt=1, description="Share of the rows kept out of training for the final comparison."
    )
    min_delta: float = Field(
        0.0,
        ge=0,
        description="Margin on the primary metric by which a new model must beat the champion, on the "
        "same holdout rows, to be promoted.",
    )
    refit_on_all_rows: bool = Field(
        True,
        description="Fit the chosen candidate again on the training and validation rows together before "
        "registering it. Off: register the fit that selection validated (trained on the training rows "
        "only), which saves a second fit of a costly model.",
    )
    refit_with_holdout: bool = Field(
        True,
        description="After the comparison with the champion, fit the registered candidate once more on "
        "every row, the holdout included, so that the version learns from all the data the run was "
        "given. Its holdout figures and the promotion decision are those of the fit that was compared "
        "(the same configuration without the holdout rows). Off: register the fit that was compared. "
        "Applies only with refit_on_all_rows on.",
    )
    promote: bool = Field(True, description="Promote the new model to champion when it beats the champion.")
    cpus: int = Field(
        0, ge=0, description="CPUs for tuning; 0: all of this machine's (or the Ray cluster's)."
    )
    store: str = Field(
        "",
        description="Store URL for this run only (file:///dir, s3://bucket/prefix). Empty: the store "
        "the worker is configured with (MLPLUG_STORE).",
    )


class RefitParameters(Parameters):
    """A refit run: why it runs, and what it changes for this run only. Everything else comes
    from the task's refit settings (block ``mlplug refit settings``, named after the task)."""

    reason: str = Field("", description="Why the refit runs; a drift trigger passes the monitor's decision.")
    event_id: str = Field("", description="The event that started the run, when a trigger did.")
    data: str = Field(
        "",
        description="Fresh labelled data for this run only (path or URL). Empty: the data source of the "
        "task's refit settings.",
    )
    since: str = Field("", description="Train only on rows at or after this ISO time (needs a time column).")
    until: str = Field("", description="Train only on rows before this ISO time (needs a time column).")
    overrides: dict[str, Any] = Field(
        {},
        description='Refit settings for this run only, e.g. {"trials": 8, "rows": 50000}; the task\'s '
        "settings block keeps the lasting ones.",
    )


class MonitorParameters(Parameters):
    """Which traffic a monitor run compares with a version's reference profile, and when
    it raises the drift event."""

    version: str = Field("champion", description="The version to monitor: an alias (champion) or a number.")
    hours: float = Field(24.0, gt=0, description="Window of stored traffic profiles, in hours up to now.")
    data: str = Field(
        "",
        description="A table of recent inputs to check instead of the stored traffic (path or URL).",
    )
    options: dict[str, Any] = Field({}, description="Loader options of the task type for `data`.")
    rows: int = Field(0, ge=0, description="Drift drill: this many synthetic rows instead of traffic.")
    seed: int = Field(0, description="Seed of the drill's synthetic rows.")
    drift: float = Field(0.0, ge=0, description="Drift of the drill's synthetic rows: 0 none, 1 strong.")
    column_threshold: float = Field(
        0.1, gt=0, le=1, description="Hellinger distance at which a column counts as drifted."
    )
    share_threshold: float = Field(
        0.25, gt=0, le=1, description="Share of the input columns that must drift for the data to drift."
    )
    min_rows: int = Field(500, ge=1, description="Fewer rows of traffic than this give no decision.")
    emit: bool = Field(True, description="Emit the mlplug.drift.detected event when the data drifted.")
    cooldown_hours: float = Field(
        6.0, ge=0, description="No second drift event for the same version within this many hours."
    )
    store: str = Field("", description="Store URL for this run only. Empty: the worker's MLPLUG_STORE.")


class DeployParameters(Parameters):
    """What the deploy flow serves on Kubernetes, and where."""

    version: str = Field(
        "champion",
        description="The model to serve: an alias (champion, followed as it moves) or a version number "
        "(pinned).",
    )
    image: str = Field("", description="Server image. Empty: the image mlplug's manifests default to.")
    replicas: int = Field(2, ge=1, description="Fewest replicas the autoscaler keeps.")
    max_replicas: int = Field(10, ge=1, description="Most replicas the autoscaler starts.")
    namespace: str = Field("default", description="Kubernetes namespace of the server's objects.")
    serve_store: str = Field(
        "", description="Store URL the server pods read. Empty: the store this flow run uses."
    )
    apply_to_cluster: bool | None = Field(
        None,
        description="Apply the manifests: empty applies when a cluster is configured, true requires "
        "one, false only renders and records them.",
    )
    store: str = Field("", description="Store URL for this run only. Empty: the worker's MLPLUG_STORE.")


def flow_parameters(
    model: type[Parameters], *, leading: Mapping[str, tuple[Any, str]] | None = None
) -> Callable[[F], F]:
    """Give ``fn(<leading>, **parameters)`` the signature of ``model``'s fields and an
    ``Args:`` section describing them, so Prefect validates, documents and shows them.

    ``leading`` maps the names of ``fn``'s own parameters before ``**parameters`` to their
    annotation and description (they are required)."""
    leading = dict(leading or {"task": (str, TASK_HELP)})

    def decorate(fn: F) -> F:
        params = [
            inspect.Parameter(name, inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=annotation)
            for name, (annotation, _) in leading.items()
        ]
        for name, info in model.model_fields.items():
            annotation = Annotated[(info.annotation, *info.metadata)] if info.metadata else info.annotation
            params.append(
                inspect.Parameter(
                    name, inspect.Parameter.POSITIONAL_OR_KEYWORD, default=info.default, annotation=annotation
                )
            )
        fn.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
            params, return_annotation=inspect.signature(fn).return_annotation
        )
        described = {name: help for name, (_, help) in leading.items()}
        described.update({name: info.description or "" for name, info in model.model_fields.items()})
        fn.__doc__ = _with_args(fn.__doc__ or "", described)
        return fn

    return decorate


def _with_args(doc: str, described: Mapping[str, str]) -> str:
    """``doc`` followed by a Google-style ``Args:`` section (what Prefect's UI reads)."""
    lines = [inspect.cleandoc(doc), "", "Args:"]
    for name, text in described.items():
        wrapped = textwrap.wrap(f"{name}: {text}", width=96, subsequent_indent="        ")
        lines.extend(f"    {line}" for line in wrapped)
    return "\n".join(lines) + "\n"
