"""``mlplug new-plugin``."""

from __future__ import annotations

from pathlib import Path

import typer

from mlplug.scaffold import KINDS, PluginNames, new_plugin


def new_plugin_command(
    name: str = typer.Argument(..., help="Task name of the new plugin, e.g. churn (also its entry point)."),
    kind: str = typer.Option("tabular", help=f"What the task classifies: {' or '.join(KINDS)}."),
    directory: Path | None = typer.Option(None, "--dir", help="Where to write it (default: ./mlplug-NAME)."),
) -> None:
    """Write a complete task plugin: pyproject with the entry point, task type, synthetic data
    with a drift knob, loader, model and baseline, search space, metrics, business value,
    explanations, a report section, tests (mlplug's conformance check) and a README."""
    target = new_plugin(name, kind, directory)
    names = PluginNames.of(name)
    typer.echo(f"wrote {target} ({kind} task {name!r}, import package {names.module}). Next:")
    typer.echo(f"  pip install -e {target}        # mlplug finds it through its entry point")
    typer.echo(f"  cd {target} && pytest          # mlplug's conformance check and the plugin's tests")
    typer.echo(f"  mlplug train {name} --trials 4")
