"""``mlplug models list|show|promote`` and ``mlplug datasets list``."""

from __future__ import annotations

import json
from dataclasses import asdict

import typer

from mlplug.cli.table import render_table
from mlplug.plugins import get_plugins
from mlplug.registry import CHAMPION
from mlplug.runtime import open_registry

app = typer.Typer(help="Model versions and aliases in the store.", no_args_is_help=True)
datasets_app = typer.Typer(help="Versioned data sets in the store.", no_args_is_help=True)

STORE = typer.Option(None, "--store", help="Store URL (default: MLPLUG_STORE).")


def _known(task: str) -> str:
    get_plugins().task(task)  # unknown names fail here with the installed list
    return task


@app.command("list")
def list_models(task: str, store: str | None = STORE) -> None:
    """List committed versions of TASK, marking the champion."""
    registry = open_registry(store)
    champion = registry.alias(_known(task))
    versions = registry.versions(task)
    if not versions:
        typer.echo(f"no model versions of {task} in {registry.store.url}")
        return
    header = ("version", "created", "kind", "metric", "score", "dataset", "")
    rows = [
        (
            str(mv.version),
            mv.created_at,
            mv.kind,
            mv.primary_metric,
            f"{mv.score:.4f}",
            mv.dataset_hash[:12],
            "<- champion" if champion and champion.version == mv.version else "",
        )
        for mv in versions
    ]
    for line in render_table(header, rows, right=(0, 4)):
        typer.echo(line)


@app.command("show")
def show_model(
    task: str,
    version: str = typer.Argument(CHAMPION, help="Version number, alias, or 'latest'."),
    store: str | None = STORE,
) -> None:
    """Print one version's metadata as JSON."""
    mv = open_registry(store).model(_known(task), version)
    typer.echo(json.dumps(asdict(mv), indent=2, default=str))


@app.command("promote")
def promote(
    task: str,
    version: int,
    alias: str = typer.Option(CHAMPION, help="Alias to move."),
    reason: str = typer.Option("manual promotion", help="Recorded with the alias."),
    store: str | None = STORE,
) -> None:
    """Move an alias (default: champion) to VERSION."""
    record = open_registry(store).promote(_known(task), version, alias=alias, reason=reason)
    prev = f" (was {record.previous})" if record.previous is not None else ""
    typer.echo(f"{task}: {alias} -> version {record.version}{prev}")


@datasets_app.command("list")
def list_datasets(task: str, store: str | None = STORE) -> None:
    """List the data set versions stored for TASK."""
    registry = open_registry(store)
    for ref in registry.datasets(_known(task)):
        typer.echo(f"{ref.hash[:12]}  {ref.rows:>9} rows  {ref.created_at}  {ref.source}")
