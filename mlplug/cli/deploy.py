"""``mlplug deploy``: the Prefect deployments of every installed task type, in one command."""

from __future__ import annotations

from pathlib import Path

import typer

from mlplug.cli.options import build, parse_params
from mlplug.errors import MlplugError
from mlplug.plugins import get_plugins


def deploy(
    task: list[str] = typer.Option(
        [], "--task", help="Only these task types (repeatable). Default: all installed."
    ),
    pool_type: str = typer.Option("process", help="Work pool type: process or kubernetes."),
    pool: str = typer.Option("", help="Work pool name. Default: mlplug-<pool type>."),
    image: str = typer.Option("", help="Image of the flow-run containers (kubernetes pools)."),
    store: str = typer.Option(
        "",
        help="Store URL every flow run of the pool uses (set in the pool's job variables). Default: "
        "each worker's MLPLUG_STORE.",
    ),
    refit_data: str | None = typer.Option(None, help="Refit settings: fresh labelled data (path or URL)."),
    refit_option: list[str] = typer.Option(
        [], help="Refit settings: a loader option for the data, NAME=VALUE (repeatable)."
    ),
    refit_rows: int | None = typer.Option(None, help="Refit settings: rows of synthetic data without data."),
    refit_trials: int | None = typer.Option(None, help="Refit settings: Ray Tune trials."),
    refit_min_delta: float | None = typer.Option(
        None, help="Refit settings: margin by which a challenger must beat the champion."
    ),
    prefect_yaml: Path | None = typer.Option(
        None, "--prefect-yaml", help="Write the deployments to this prefect.yaml instead of applying them."
    ),
) -> None:
    """Create or update, for every installed task type, the train, monitor (hourly), refit (on
    drift) and deploy deployments, their work pool and the refit automation. Running it
    again changes nothing that is already as it should be; it says what it changed."""
    from mlplug import prefect_deployments as pd
    from mlplug.options import parse_options
    from mlplug.workpools import POOL_NAMES

    if pool_type not in POOL_NAMES:
        raise MlplugError(f"--pool-type {pool_type!r}: expected one of {', '.join(POOL_NAMES)}")
    if image and pool_type != "kubernetes":
        raise MlplugError(
            "--image applies to kubernetes pools; a process pool runs what its worker has installed"
        )
    plugins = get_plugins()
    installed = plugins.tasks()
    chosen = (
        {name: plugins.task(name) for name in task} if task else {n: r.value for n, r in installed.items()}
    )
    if not chosen:
        raise MlplugError("no task types installed; `pip install` a task plugin first (see `mlplug plugins`)")
    name = pool or POOL_NAMES[pool_type]
    plans = pd.plan(chosen, image=image)
    if prefect_yaml is not None:
        prefect_yaml.write_text(pd.prefect_yaml(plans, name))
        typer.echo(f"wrote {len(plans)} deployments of {', '.join(sorted(chosen))} to {prefect_yaml}")
        return

    settings: dict[str, object] = {
        k: v
        for k, v in {
            "data": refit_data,
            "rows": refit_rows,
            "trials": refit_trials,
            "min_delta": refit_min_delta,
        }.items()
        if v is not None
    }
    if refit_option:
        settings["options"] = parse_params(refit_option)
    if settings and len(chosen) != 1:
        raise MlplugError("refit settings belong to one task type: give exactly one --task with --refit-*")

    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        outcomes = [pd.ensure_pool(client, pool_type, name, store, image)]
    outcomes += pd.apply(plans, name)
    for outcome in outcomes:
        typer.echo(str(outcome))
    if settings:
        from mlplug.parameters import TrainParameters
        from mlplug.refit_settings import block_name, save_refit_settings

        (only,) = chosen.values()
        build(TrainParameters, settings)  # each setting checked and named before anything is saved
        if "options" in settings:
            parse_options(only, settings["options"])  # type: ignore[arg-type]
        _, changed = save_refit_settings(only.name, settings)
        detail = ", ".join(f"{k} {v!r}" for k, v in changed.items()) or "unchanged"
        typer.echo(f"refit settings {block_name(only.name)!r} (block type mlplug-refit-settings): {detail}")
    typer.echo(f"start a worker: prefect worker start --pool {name}")
