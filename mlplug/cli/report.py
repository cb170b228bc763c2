"""``mlplug report`` (regenerate a version's HTML report from the store) and
``mlplug doctor`` (environment checks)."""

from __future__ import annotations

import json
import platform
import sys
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING

import typer

import mlplug
from mlplug.plugins import get_plugins
from mlplug.registry import Registry
from mlplug.runtime import open_registry
from mlplug.settings import get_settings
from mlplug.task import TaskType

if TYPE_CHECKING:
    from mlplug.reporting import ReportContext


def report(
    task: str = typer.Argument(..., help="Task type, e.g. one listed by `mlplug tasks`."),
    version: str = typer.Option("latest", help="Version number, alias (champion) or 'latest'."),
    out: Path | None = typer.Option(
        None, help="Where to write the HTML (default: under MLPLUG_HOME/reports)."
    ),
    kind: str | None = typer.Option(
        None, help="Report kind: train, refit or monitor (default: as recorded)."
    ),
    store: str | None = typer.Option(None, help="Store URL (default: MLPLUG_STORE)."),
) -> None:
    """Regenerate the HTML report of a model version from what the store holds."""
    from mlplug.reporting import ReportContext, build_report

    plugins = get_plugins()
    task_type = plugins.task(task)
    registry = open_registry(store)
    if kind == "monitor":
        ctx = _monitor_context(registry, task_type, version)
    else:
        ctx = ReportContext.from_store(registry, task_type, version, kind=kind, plugins=plugins)
    assert ctx.version is not None  # both resolve a committed version
    result = build_report(ctx, plugins)
    suffix = "-monitor" if kind == "monitor" else ""
    path = out or get_settings().home / "reports" / f"{task}-v{ctx.version.version}{suffix}.html"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(result.html, encoding="utf-8")
    size = len(result.html.encode()) / 1024
    typer.echo(f"{result.title}: {len(result.sections)} sections in {result.seconds:.1f} s, {size:,.0f} KB")
    for failed in result.failed:
        typer.secho(f"  section {failed.name!r} failed: {failed.error}", fg="yellow", err=True)
    typer.echo(f"written to {path}")


def _monitor_context(registry: Registry, task_type: TaskType, version: str) -> ReportContext:
    """The latest stored monitor result of the version, as a monitor report's context."""
    from mlplug.errors import MlplugError
    from mlplug.monitoring.check import history
    from mlplug.reporting import ReportContext

    mv = registry.model(task_type.name, version)
    results = [r for r in history(registry, task_type.name) if r.version == mv.version]
    if not results:
        raise MlplugError(
            f"{task_type.name} v{mv.version} has no monitor results in the store; run `mlplug monitor "
            f"{task_type.name} --version {mv.version}` first"
        )
    return ReportContext.for_monitoring(task_type=task_type, version=mv, drift=results[-1], registry=registry)


def doctor(
    index: bool = typer.Option(True, help="Look for outdated packages on the package index."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Check this environment: Python, OS, key packages, plugins, pip check, outdated packages.

    Exits with status 1 when pip check finds broken requirements.
    """
    from mlplug.environment import snapshot
    from mlplug.reporting import doctor as checks
    from mlplug.reporting import format as fmt

    plugins = get_plugins()
    infos = plugins.infos()
    env = snapshot()
    keys = checks.key_packages(infos, env["packages"])
    pip = checks.pip_check()
    outdated = checks.outdated_packages() if index else None
    if as_json:
        payload = {
            "environment": {k: v for k, v in env.items() if k != "packages"},
            "key_packages": [asdict(k) for k in keys],
            "plugins": [asdict(i) for i in infos],
            "skipped_plugins": [asdict(s) for s in plugins.skipped],
            "pip_check": asdict(pip),
            "outdated": asdict(outdated) if outdated else None,
        }
        typer.echo(json.dumps(payload, indent=2, default=list))
    else:
        echo = typer.echo
        echo(f"mlplug {mlplug.__version__}")
        echo(f"Python    {sys.version.split()[0]} ({platform.python_implementation()}) at {sys.executable}")
        echo(f"platform  {env['platform']} ({env['machine']})")
        echo(f"CPUs      {env['cpu_count']}, memory {fmt.size_bytes(env['memory_bytes'])}")
        echo(f"git       {env['git_commit'] or 'not in a git checkout'}")
        echo("")
        echo("key packages (requirements of mlplug and its plugins):")
        for k in keys:
            flag = "" if k.satisfied else f"   <- {'missing' if k.installed is None else 'needs ' + k.spec}"
            users = ", ".join(k.needed_by)
            echo(f"  {k.name:<24} {k.installed or '-':<14} {k.spec or 'any':<18} {users}{flag}")
        echo("")
        echo("plugins:")
        for info in infos:
            source = "builtin" if info.builtin else f"{info.distribution or '?'} {info.version or ''}".strip()
            tasks = f"  tasks: {', '.join(info.tasks)}" if info.tasks else ""
            echo(f"  {info.name} ({source}){tasks}")
        for skipped in plugins.skipped:
            typer.secho(f"  skipped {skipped.name}: {skipped.reason}", fg="yellow")
        echo("")
        if pip.error:
            typer.secho(f"pip check: could not run ({pip.error})", fg="yellow")
        elif pip.ok:
            echo("pip check: no broken requirements")
        else:
            typer.secho(f"pip check: {len(pip.problems)} conflict(s)", fg="red")
            for line in pip.problems:
                echo(f"  {line}")
        if outdated is None:
            echo("outdated packages: not checked (--no-index)")
        elif not outdated.reachable:
            typer.secho(f"outdated packages: not checked, {outdated.message}", fg="yellow")
        else:
            echo(f"outdated packages: {outdated.message}")
            for o in outdated.packages:
                echo(f"  {o.name:<24} {o.version:<14} -> {o.latest}")
    if not pip.ok and not pip.error:
        raise typer.Exit(1)
