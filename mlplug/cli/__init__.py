"""The ``mlplug`` command. This module only assembles the sub-commands."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import MutableMapping

import typer

from mlplug.cli import deploy, k8s, models, plugins, report, run, scaffold, serve, task_commands
from mlplug.errors import MlplugError
from mlplug.settings import get_settings

app = typer.Typer(
    name="mlplug",
    help="End-to-end ML pipelines with task types as plugins.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


@app.callback()
def _main(
    debug: bool = typer.Option(
        False,
        "--debug",
        help="Tracebacks for expected errors too, and debug logs.",
        envvar="MLPLUG_DEBUG",
    ),
) -> None:
    if debug:
        os.environ["MLPLUG_DEBUG"] = "true"
        os.environ["PREFECT_LOGGING_LEVEL"] = "DEBUG"
        logging.getLogger().setLevel(logging.DEBUG)


def _task_group(group: type[task_commands.TaskGroup], help_text: str) -> typer.Typer:
    return typer.Typer(cls=group, help=help_text, no_args_is_help=True)


app.command("plugins")(plugins.list_plugins)
app.command("tasks")(plugins.list_tasks)
app.add_typer(
    _task_group(
        task_commands.TrainGroup,
        "Train a task type: tune, fit, register the better of model and baseline, promote it if it "
        "beats the champion. `mlplug train TASK --help` lists the task's loader options.",
    ),
    name="train",
)
app.command("predict")(run.predict)
app.command("demo")(run.demo)
app.add_typer(
    _task_group(
        task_commands.MonitorGroup,
        "Compare a task's recent traffic with its champion's reference profile and report drift.",
    ),
    name="monitor",
)
app.add_typer(
    _task_group(
        task_commands.RefitGroup,
        "Train a challenger on fresh data with the task's refit settings; promote it only if it "
        "beats the champion.",
    ),
    name="refit",
)
app.command("deploy")(deploy.deploy)
app.command("report")(report.report)
app.command("doctor")(report.doctor)
app.command("serve")(serve.serve)
app.command("new-plugin")(scaffold.new_plugin_command)
app.command("loadtest")(serve.loadtest)
app.add_typer(models.app, name="models")
app.add_typer(models.datasets_app, name="datasets")
app.add_typer(k8s.app, name="k8s")


def keep_embedded_prefect_under_home(environ: MutableMapping[str, str]) -> None:
    """Without PREFECT_API_URL in the environment, Prefect may start a temporary local server
    for a run; its SQLite database then goes to ``<MLPLUG_HOME>/prefect/`` with the rest of
    mlplug's state, not to ``~/.prefect``. A database URL set in the environment wins; a
    Prefect profile that names an API server means no temporary server, so no database."""
    chosen = ("PREFECT_SERVER_DATABASE_CONNECTION_URL", "PREFECT_API_DATABASE_CONNECTION_URL")
    if environ.get("PREFECT_API_URL") or any(name in environ for name in chosen):
        return
    folder = get_settings().home / "prefect"
    folder.mkdir(parents=True, exist_ok=True)
    environ["PREFECT_SERVER_DATABASE_CONNECTION_URL"] = f"sqlite+aiosqlite:///{folder / 'prefect.db'}"


def main() -> None:
    # Without PREFECT_API_URL, Prefect starts a temporary local API; on a busy laptop it can
    # take longer than Prefect's 20 s default to come up.
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        keep_embedded_prefect_under_home(os.environ)  # reads the settings: a bad one fails here
        app()
    except MlplugError as exc:
        if os.environ.get("MLPLUG_DEBUG", "").lower() in ("1", "true", "yes"):
            raise
        typer.secho(f"error: {exc}", fg="red", err=True)
        sys.exit(1)
