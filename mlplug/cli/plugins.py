"""``mlplug plugins`` and ``mlplug tasks``."""

from __future__ import annotations

import json

import typer

from mlplug.plugins import get_plugins


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


def list_tasks() -> None:
    """List installed task types and the plugin that provides each."""
    for name, reg in sorted(get_plugins().tasks().items()):
        doc = reg.value.description or ""
        typer.echo(f"{name}  [{reg.plugin}]  {doc}".rstrip())
