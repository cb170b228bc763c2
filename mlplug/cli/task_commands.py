"""``mlplug train TASK``, ``mlplug refit TASK`` and ``mlplug monitor TASK``.

Each is a group with one command per installed task type, built when it is asked for: the
flow's parameters (:mod:`mlplug.parameters`) and the task type's own loader options are its
options, so ``mlplug train TASK --help`` lists both with their descriptions, and a misspelt
option is refused, with the closest name, before anything starts.
"""

from __future__ import annotations

import difflib
import inspect
import json
from collections.abc import Callable
from typing import Annotated, Any, ClassVar

import click
import typer
from typer.core import TyperGroup

from mlplug.cli.options import build, command, field_parameter, model_parameters, option_name, parse_params
from mlplug.errors import MlplugError
from mlplug.options import parse_options
from mlplug.parameters import MonitorParameters, RefitParameters, TrainParameters
from mlplug.plugins import get_plugins
from mlplug.task import TaskType

_LOADER = "(loader option, with --data) "
_JSON = inspect.Parameter(
    "as_json",
    inspect.Parameter.KEYWORD_ONLY,
    default=False,
    annotation=Annotated[bool, typer.Option("--json", help="Print the run's summary as JSON.")],
)
_PARAM = inspect.Parameter(
    "param",
    inspect.Parameter.KEYWORD_ONLY,
    default=[],
    annotation=Annotated[
        list[str],
        typer.Option(
            help="Pin a model parameter, NAME=VALUE (JSON values allowed); repeatable. Pinned parameters "
            "are not searched when tuning."
        ),
    ],
)


class TaskGroup(TyperGroup):
    """Commands named after the installed task types."""

    command_for: ClassVar[Callable[[TaskType], click.Command]]

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(get_plugins().tasks())

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        tasks = get_plugins().tasks()
        if cmd_name not in tasks:
            return None
        return type(self).command_for(tasks[cmd_name].value)

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        name = args[0] if args else ""
        if name and not name.startswith("-") and self.get_command(ctx, name) is None:
            installed = self.list_commands(ctx)
            close = difflib.get_close_matches(name, installed, n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise typer.BadParameter(
                f"unknown task type {name!r}; installed: {', '.join(installed) or 'none'}.{hint}",
                ctx=ctx,
                param_hint="TASK",
            )
        return super().resolve_command(ctx, args)


def _loader_options(task_type: TaskType, taken: set[str]) -> list[inspect.Parameter]:
    options = []
    for name, info in task_type.options_model.model_fields.items():
        if name in taken:
            raise MlplugError(
                f"task type {task_type.name!r}: loader option {option_name(name)} has the name of an "
                f"mlplug option; rename it in {type(task_type).__module__}"
            )
        options.append(field_parameter(name, info, optional=True, help_prefix=_LOADER))
    return options


def _loader_values(task_type: TaskType, values: dict[str, Any], data: str) -> dict[str, Any]:
    """The loader options the user gave, validated against the task's model now."""
    loader = {n: values.pop(n, None) for n in task_type.options_model.model_fields}
    given = {n: v for n, v in loader.items() if v is not None}
    if given and not data:
        names = ", ".join(option_name(n) for n in given)
        raise MlplugError(f"{names}: loader options apply to --data, and no --data was given")
    if given:
        parse_options(task_type, given)  # fails here, before a server or a flow starts
    return given


def _command(task_type: TaskType, params: list[inspect.Parameter], run: Callable[..., None]) -> Any:
    return command(task_type.name, task_type.description or f"The {task_type.name} task type.", params, run)


def _show(summary: dict[str, Any], as_json: bool, text: Callable[[dict[str, Any]], None]) -> None:
    if as_json:
        typer.echo(json.dumps(summary, indent=2, default=str))
    else:
        text(summary)


# -- train ---------------------------------------------------------------------------------


def train_command(task_type: TaskType) -> click.Command:
    common = model_parameters(TrainParameters, exclude=("options", "params"))
    loader = _loader_options(task_type, {*TrainParameters.model_fields, "param", "json"})

    def run(param: list[str], as_json: bool, **values: Any) -> None:
        from flows.train import train as train_flow
        from mlplug.cli.run import print_summary

        options = _loader_values(task_type, values, values.get("data") or "")
        p = build(TrainParameters, {**values, "options": options, "params": parse_params(param)})
        summary = train_flow(task=task_type.name, **p.model_dump())
        _show(summary, as_json, print_summary)

    return _command(task_type, [*common, *loader, _PARAM, _JSON], run)


class TrainGroup(TaskGroup):
    command_for = staticmethod(train_command)


# -- refit ---------------------------------------------------------------------------------

_SETTINGS_HELP = "the task's refit settings, else the refit default"


def refit_command(task_type: TaskType) -> click.Command:
    from mlplug.refit_settings import SETTINGS_FIELDS

    run_options = model_parameters(RefitParameters, exclude=("overrides", "event_id"))
    settings = [
        field_parameter(n, TrainParameters.model_fields[n], optional=True, default_help=_SETTINGS_HELP)
        for n in SETTINGS_FIELDS
        if n not in ("data", "options", "params")
    ]
    taken = {*RefitParameters.model_fields, *SETTINGS_FIELDS, "param", "json"}
    loader = _loader_options(task_type, taken)

    def run(param: list[str], as_json: bool, **values: Any) -> None:
        from flows.refit import refit as refit_flow
        from mlplug.cli.run import print_summary

        options = _loader_values(task_type, values, values.get("data") or "")
        overrides = {n: values.pop(n) for n in list(values) if n in SETTINGS_FIELDS and values[n] is not None}
        if options:
            overrides["options"] = options
        if param:
            overrides["params"] = parse_params(param)
        p = build(RefitParameters, {**values, "overrides": overrides})
        summary = refit_flow(task=task_type.name, **p.model_dump())
        _show(summary, as_json, print_summary)

    return _command(task_type, [*run_options, *settings, *loader, _PARAM, _JSON], run)


class RefitGroup(TaskGroup):
    command_for = staticmethod(refit_command)


# -- monitor -------------------------------------------------------------------------------


def monitor_command(task_type: TaskType) -> click.Command:
    common = model_parameters(MonitorParameters, exclude=("options",))
    loader = _loader_options(task_type, {*MonitorParameters.model_fields, "json"})

    def run(as_json: bool, **values: Any) -> None:
        from flows.monitor import monitor as monitor_flow

        options = _loader_values(task_type, values, values.get("data") or "")
        p = build(MonitorParameters, {**values, "options": options})
        _show(monitor_flow(task=task_type.name, **p.model_dump()), as_json, _print_monitor)

    return _command(task_type, [*common, *loader, _JSON], run)


def _print_monitor(out: dict[str, Any]) -> None:
    if out.get("version") is None:
        typer.echo(f"{out['task']}: {out['alarm']}")
        return
    seen = out.get("seen_rows")
    answered = f" (of {seen} answered)" if seen is not None and seen != out["rows"] else ""
    typer.echo(f"{out['task']} v{out['version']}: {out['rows']} rows{answered} from {out['source']}")
    for skipped in out.get("skipped_profiles", []):
        typer.secho(f"  skipped profile {skipped['key']}: {skipped['reason']}", fg="yellow")
    typer.secho(f"  {out['decision']}", fg="red" if out["drifted"] else "green")
    typer.echo(f"  {out['alarm']}")
    typer.echo(f"  report: {out['report']}")


class MonitorGroup(TaskGroup):
    command_for = staticmethod(monitor_command)
