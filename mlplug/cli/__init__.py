"""The ``mlplug`` command. This module only assembles the sub-commands."""

from __future__ import annotations

import logging
import os
import sys

import typer

from mlplug.cli import k8s, models, monitor, plugins, report, run, serve
from mlplug.errors import MlplugError

app = typer.Typer(
    name="mlplug",
    help="End-to-end ML pipelines with task types as plugins.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.command("plugins")(plugins.list_plugins)
app.command("tasks")(plugins.list_tasks)
app.command("train", context_settings=run.EXTRA)(run.train)
app.command("predict")(run.predict)
app.command("demo")(run.demo)
app.command("monitor", context_settings=run.EXTRA)(monitor.monitor)
app.command("refit", context_settings=run.EXTRA)(monitor.refit)
app.command("report")(report.report)
app.command("doctor")(report.doctor)
app.command("serve")(serve.serve)
app.command("loadtest")(serve.loadtest)
app.add_typer(models.app, name="models")
app.add_typer(models.datasets_app, name="datasets")
app.add_typer(k8s.app, name="k8s")


def main() -> None:
    # Without PREFECT_API_URL, Prefect starts a temporary local API; on a busy laptop it can
    # take longer than Prefect's 20 s default to come up.
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        app()
    except MlplugError as exc:
        typer.secho(f"error: {exc}", fg="red", err=True)
        sys.exit(1)
