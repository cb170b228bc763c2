"""``mlplug monitor`` and ``mlplug refit``: the monitor and refit flows from a shell."""

from __future__ import annotations

import json

import typer

from mlplug.cli.run import extra_options, parse_params, print_summary
from mlplug.plugins import get_plugins


def monitor(
    ctx: typer.Context,
    task: str = typer.Argument(..., help="Task type."),
    version: str = typer.Option("champion", help="Version number or alias to monitor."),
    hours: float = typer.Option(24.0, help="Window of stored traffic profiles, in hours."),
    data: str | None = typer.Option(None, help="Recent inputs to check instead (path, file://, s3://)."),
    rows: int = typer.Option(0, help="Drift drill: this many synthetic rows instead of traffic."),
    seed: int = typer.Option(0, help="Seed of the drill's synthetic rows."),
    drift: float = typer.Option(0.0, help="Drift of the drill's synthetic rows, 0..1."),
    column_threshold: float = typer.Option(0.1, help="Hellinger distance at which a column drifts."),
    share_threshold: float = typer.Option(0.25, help="Share of input columns that must drift."),
    min_rows: int = typer.Option(500, help="Fewer rows of traffic give no decision."),
    emit: bool = typer.Option(True, help="Emit mlplug.drift.detected on drift."),
    cooldown_hours: float = typer.Option(6.0, help="No new event within this many hours of the last."),
    store: str | None = typer.Option(None, help="Store URL (default: MLPLUG_STORE)."),
    as_json: bool = typer.Option(False, "--json", help="Print the run summary as JSON."),
) -> None:
    """Compare TASK's recent traffic with its reference profile and report drift. Loader
    options for --data go after, as for `mlplug train`."""
    from flows.monitor import monitor as monitor_flow

    get_plugins().task(task)
    out = monitor_flow(
        task=task,
        version=version,
        hours=hours,
        data=data,
        options=extra_options(ctx.args),
        rows=rows,
        seed=seed,
        drift=drift,
        column_threshold=column_threshold,
        share_threshold=share_threshold,
        min_rows=min_rows,
        emit=emit,
        cooldown_hours=cooldown_hours,
        store=store,
    )
    if as_json:
        typer.echo(json.dumps(out, indent=2, default=str))
        return
    typer.echo(f"{out['task']} v{out['version']}: {out['rows']} rows from {out['source']}")
    typer.secho(f"  {out['decision']}", fg="red" if out["drifted"] else "green")
    typer.echo(f"  {out['alarm']}")
    typer.echo(f"  report: {out['report']}")


def refit(
    ctx: typer.Context,
    task: str = typer.Argument(..., help="Task type."),
    data: str | None = typer.Option(None, help="Fresh labelled data (path or URL). Default: synthetic."),
    trials: int = typer.Option(4, help="Ray Tune trials; 0 uses default parameters."),
    param: list[str] = typer.Option([], "--param", help="Pin a model parameter, NAME=VALUE; repeatable."),
    rows: int = typer.Option(20_000, help="Rows of synthetic data when --data is not given."),
    seed: int = typer.Option(1),
    drift: float = typer.Option(0.0, help="Drift of the synthetic data, 0..1."),
    reason: str = typer.Option("", help="Why the refit runs; recorded with the version and report."),
    cpus: int | None = typer.Option(None, help="CPUs for tuning (default: all)."),
    store: str | None = typer.Option(None, help="Store URL (default: MLPLUG_STORE)."),
    as_json: bool = typer.Option(False, "--json", help="Print the run summary as JSON."),
) -> None:
    """Train a challenger for TASK on fresh data; promote it only if it beats the champion."""
    from flows.refit import refit as refit_flow

    get_plugins().task(task)
    summary = refit_flow(
        task=task,
        data=data,
        options=extra_options(ctx.args),
        params=parse_params(param),
        trials=trials,
        rows=rows,
        seed=seed,
        drift=drift,
        reason=reason,
        cpus=cpus,
        store=store,
    )
    if as_json:
        typer.echo(json.dumps(summary, indent=2, default=str))
        return
    print_summary(summary)
