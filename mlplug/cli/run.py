"""``mlplug predict``, ``mlplug demo`` and the summary a training run prints."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from mlplug.errors import MlplugError
from mlplug.plugins import get_plugins
from mlplug.runtime import open_registry
from mlplug.score_stream import DEFAULT_CHUNK_ROWS, DEFAULT_PROFILE_ROWS
from mlplug.settings import get_settings


def print_summary(summary: dict[str, Any]) -> None:
    metrics = ", ".join(f"{k} {v:.4f}" for k, v in summary["metrics"].items())
    typer.echo(f"{summary['task']}: version {summary['version']} ({summary['kind']}) registered")
    typer.echo(f"  holdout: {metrics}")
    if summary.get("selection"):
        typer.echo(f"  chosen: {summary['selection']}")
    if summary.get("calibration"):
        typer.echo(f"  calibration: {summary['calibration']}")
    if summary.get("holdout_refit"):
        typer.echo(
            f"  fitted on: all {summary['fit_rows']:,} rows, the holdout included, after the comparison "
            "(holdout figures are the compared fit's)"
        )
    elif summary.get("fit_rows"):
        typer.echo(f"  fitted on: {summary['fit_rows']:,} rows")
    typer.echo(f"  {'promoted to champion' if summary['promoted'] else 'not promoted'}: {summary['reason']}")
    typer.echo(f"  business value: {summary['business_value']}")
    typer.echo(f"  artifacts: {summary['store']}")
    typer.echo(f"  report: {summary['report']}")


def predict(
    task: str,
    data: str = typer.Option(..., help="Rows to score (path, file://, s3://)."),
    out: Path = typer.Option(..., help="Output file: .csv, .parquet or .jsonl."),
    model: str = typer.Option("champion", help="'champion', another alias, 'latest' or a version."),
    store: str | None = typer.Option(None, help="Store URL (default: MLPLUG_STORE)."),
    profile: bool = typer.Option(
        True, help="Write a whylogs profile of the scored rows to the store (MLPLUG_MONITORING=false: never)."
    ),
    chunk_rows: int = typer.Option(
        DEFAULT_CHUNK_ROWS,
        min=1,
        help="Rows read, scored and written at a time (memory stays flat in the file size).",
    ),
    profile_rows: int = typer.Option(
        DEFAULT_PROFILE_ROWS, min=1, help="Most rows in the profile: a uniform sample of the scored rows."
    ),
) -> None:
    """Score a table with a registered model: one probability per input row, ids kept.
    The file is read, scored and written in chunks, so it may be larger than memory; the
    output appears only when every row is scored. A uniform sample of the scored rows is
    profiled as traffic of the version used, for drift monitoring."""
    from mlplug.score_stream import score_file
    from mlplug.scoring import load_version, write_profile

    task_type = get_plugins().task(task)
    registry = open_registry(store)
    loaded = load_version(task_type, registry, model)
    profiling = profile and get_settings().monitoring
    result = score_file(
        loaded, data, out, chunk_rows=chunk_rows, profile_rows=profile_rows if profiling else 0
    )
    typer.echo(f"{task} v{loaded.version.version}: scored {result.rows} rows -> {out}")
    if result.sample is None:
        return
    try:
        key = write_profile(task_type, loaded, result.sample, registry.store, seen_rows=result.rows)
    except Exception as exc:  # the scores are written; a missing profile only thins monitoring
        typer.secho(f"warning: no profile of the scored rows written: {exc}", fg="yellow", err=True)
        return
    typer.echo(f"  profile: {registry.store.uri(key)} ({len(result.sample.features)} of {result.rows} rows)")


def demo(
    trials: int | None = typer.Option(None, help="Override each task's demo trial count."),
    only: list[str] = typer.Option([], "--task", help="Limit to these task types."),
    serve: bool = typer.Option(True, help="Then serve each champion briefly and load-test it."),
    load_seconds: float = typer.Option(3.0, min=0.5, max=60.0, help="Seconds of load per served task."),
    monitor: bool = typer.Option(True, help="Then run a drift drill and a refit for each task."),
) -> None:
    """Train every installed task type on its synthetic data with demo-sized settings, serve
    each champion on 127.0.0.1 and run a short load test against it, then check it for drift
    on calm and on drifted synthetic traffic and refit it on the drifted data."""
    from flows.train import train as train_flow

    tasks = get_plugins().tasks()
    names = only or sorted(tasks)
    if not names:
        raise MlplugError("no task types installed; `pip install` a plugin (see `mlplug plugins`)")
    trial_override = {} if trials is None else {"trials": trials}
    for name in names:
        settings = {**get_plugins().task(name).demo_settings(), **trial_override}
        typer.secho(f"== {name}: training on synthetic data ({settings})", bold=True)
        summary = train_flow(task=name, **settings)
        print_summary(summary)
    if serve:
        for name in names:
            _serve_and_load(name, load_seconds)
    if monitor:
        for name in names:
            _drift_drill(name, {**get_plugins().task(name).demo_settings(), **trial_override})


def _drift_drill(task: str, settings: dict[str, Any]) -> None:
    """Monitor the champion on calm, then on drifted synthetic traffic, and refit on drifted
    data. In production the drift event starts ``refit-<task>`` through its Prefect trigger;
    the demo has no deployments, so it runs the refit itself."""
    from flows.monitor import monitor as monitor_flow
    from flows.refit import refit as refit_flow

    rows = max(600, min(5000, int(settings.get("rows", 5000)) // 2))
    for label, drift in (("calm", 0.0), ("drifted", 1.0)):
        typer.secho(f"== {task}: drift check on {rows} rows of {label} synthetic traffic", bold=True)
        out = monitor_flow(task=task, rows=rows, seed=101, drift=drift, emit=False)
        typer.secho(f"  {out['decision']}", fg="red" if out["drifted"] else "green")
        typer.echo(f"  report: {out['report']}")
    typer.secho(f"== {task}: refit on drifted data", bold=True)
    summary = refit_flow(task=task, reason=out["decision"], overrides={**settings, "drift": 1.0, "seed": 102})
    print_summary(summary)


def _serve_and_load(task: str, seconds: float) -> None:
    """``mlplug serve`` the champion with a one-off API key, load it, stop it (always)."""
    import secrets
    import tempfile

    from mlplug.loadtest import LoadTestConfig, run_load_test, task_bodies
    from mlplug.processes import mlplug_server

    key = secrets.token_urlsafe(24)
    typer.secho(f"== {task}: serving the champion and loading it for {seconds:g} s", bold=True)
    with (
        tempfile.TemporaryDirectory(prefix="mlplug-demo-serve-") as tmp,
        mlplug_server(
            task, Path(tmp), env={"MLPLUG_API_KEYS": key}, args=("--log-level", "warning")
        ) as server,
    ):
        config = LoadTestConfig(
            url=f"{server.url}/predict",
            concurrency=4,
            duration=seconds,
            warmup=0.5,
            bodies=task_bodies(task, count=64),
            headers={"Authorization": f"Bearer {key}"},
        )
        typer.echo(run_load_test(config).summary())
