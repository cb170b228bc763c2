"""``mlplug plugins`` and ``mlplug tasks``."""

from __future__ import annotations

import json

import typer

from mlplug.plugins import get_plugins
from mlplug.tuning import describe_space_value


def list_plugins(as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """List discovered plugins: distribution, version, task types and hooks."""
    plugins = get_plugins()
    infos = plugins.infos()
    if as_json:
        payload = {
            "plugins": [i.__dict__ for i in infos],
            "skipped": [s.__dict__ for s in plugins.skipped],
        }
        typer.echo(json.dumps(payload, indent=2, default=list))
        return
    for info in infos:
        dist = "builtin" if info.builtin else f"{info.distribution or '?'} {info.version or ''}".strip()
        typer.echo(f"{info.name}  ({dist})")
        typer.echo(f"  tasks: {', '.join(info.tasks) or '-'}")
        typer.echo(f"  hooks: {', '.join(info.hooks) or '-'}")
    for skipped in plugins.skipped:
        typer.secho(f"skipped {skipped.name}: {skipped.reason}", fg="yellow", err=True)


def list_tasks(
    task: str | None = typer.Argument(None, help="Show this task type's loader options and parameters."),
) -> None:
    """List installed task types and the plugin that provides each, or describe one."""
    if task is None:
        for name, reg in sorted(get_plugins().tasks().items()):
            doc = reg.value.description or ""
            typer.echo(f"{name}  [{reg.plugin}]  {doc}".rstrip())
        return
    plugins = get_plugins()
    task_type = plugins.task(task)
    typer.echo(f"{task}  [{plugins.tasks()[task].plugin}]  {task_type.description}".rstrip())
    typer.echo("\nloader options (with --data; in a deployment's `options` parameter):")
    for name, info in task_type.options_model.model_fields.items():
        default = (
            "required" if info.is_required() else f"default {info.get_default(call_default_factory=True)!r}"
        )
        typer.echo(f"  --{name.replace('_', '-'):<18} {info.description or ''} ({default})")
    if not task_type.options_model.model_fields:
        typer.echo("  (none)")
    typer.echo("\nmodel parameters searched when tuning (pin one with --param NAME=VALUE):")
    for name, value in task_type.search_space().params.items():
        typer.echo(f"  {name:<22} {describe_space_value(value)}")
