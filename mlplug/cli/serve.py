"""``mlplug serve`` (the inference server) and ``mlplug loadtest`` (its stress test)."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from mlplug.errors import MlplugError


def serve(
    task: str = typer.Argument(..., envvar="MLPLUG_TASK", help="Task type to serve (default: MLPLUG_TASK)."),
    model: str = typer.Option(
        "champion", envvar="MLPLUG_MODEL", help="Alias to follow (champion), 'latest' or a version number."
    ),
    host: str = typer.Option("127.0.0.1", help="Interface to bind; 0.0.0.0 inside a container."),
    port: int = typer.Option(8000, min=1, max=65535),
    workers: int = typer.Option(1, min=1, max=64, help="Worker processes (prefer replicas in Kubernetes)."),
    insecure: bool = typer.Option(
        False,
        "--insecure",
        help="Serve without API keys (otherwise MLPLUG_API_KEYS or MLPLUG_API_KEYS_FILE).",
    ),
    store: str | None = typer.Option(None, help="Store URL (default: MLPLUG_STORE)."),
    reload_interval: float | None = typer.Option(
        None, min=0.0, help="Seconds between alias polls; 0 disables hot reload (default 30)."
    ),
    log_level: str = typer.Option("info", help="debug, info, warning or error."),
    access_log: bool = typer.Option(False, "--access-log", help="Log every request (costs throughput)."),
) -> None:
    """Serve TASK's model over HTTP: /predict, /explain, /model, /healthz, /readyz, /metrics.

    API keys come from the environment or a mounted Secret, never from the command line
    (where every user of the machine could read them).
    """
    from mlplug.plugins import get_plugins
    from mlplug.serving.config import get_serve_settings
    from mlplug.serving.server import run_server

    get_plugins().task(task)  # an unknown task fails here, listing the installed ones
    overrides: dict[str, object] = {"task": task, "model": model}
    if insecure:
        overrides["insecure"] = True
    if store:
        overrides["store"] = store
    if reload_interval is not None:
        overrides["reload_interval"] = reload_interval
    settings = get_serve_settings(**overrides)
    run_server(
        settings, host=host, port=port, workers=workers, log_level=log_level.lower(), access_log=access_log
    )


def loadtest(
    url: str = typer.Argument(..., help="Endpoint, e.g. http://127.0.0.1:8000/predict"),
    concurrency: int = typer.Option(8, min=1, max=1000, help="Connections, each with one request in flight."),
    duration: float = typer.Option(10.0, min=0.1, max=3600.0, help="Seconds of measured load."),
    rate: float | None = typer.Option(None, min=0.1, help="Total requests/s (default: as fast as answered)."),
    requests: int = typer.Option(10_000_000, min=1, help="Stop after this many requests in any case."),
    api_key: str | None = typer.Option(
        None,
        envvar="MLPLUG_API_KEY",
        help="Sent as Authorization: Bearer (prefer the MLPLUG_API_KEY variable).",
    ),
    body: Path | None = typer.Option(None, help="JSON body (.json) or bodies, one per line (.jsonl)."),
    task: str | None = typer.Option(None, help="Send synthetic records of this task type instead of --body."),
    batch: int = typer.Option(1, min=1, max=10_000, help="Records per request with --task."),
    warmup: float = typer.Option(1.0, min=0.0, max=600.0, help="Seconds of unmeasured load first."),
    timeout: float = typer.Option(10.0, min=0.1, max=600.0, help="A slower answer counts as an error."),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Load URL for a bounded time; report throughput, p50/p95/p99 latency and errors.

    Without --body or --task it sends GET requests. Exits with status 1 when any request failed.
    """
    from mlplug.loadtest import LoadTestConfig, read_bodies, run_load_test, task_bodies

    if body is not None and task is not None:
        raise MlplugError("give --body or --task, not both")
    bodies = read_bodies(str(body)) if body else task_bodies(task, batch=batch) if task else []
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    config = LoadTestConfig(
        url=url,
        concurrency=concurrency,
        duration=duration,
        rate=rate,
        max_requests=requests,
        bodies=bodies,
        headers=headers,
        timeout=timeout,
        warmup=warmup,
    )
    try:
        result = run_load_test(config)
    except ValueError as exc:
        raise MlplugError(str(exc)) from exc
    typer.echo(json.dumps(result.to_dict(), indent=2) if as_json else result.summary())
    if result.error_count:
        raise typer.Exit(1)
