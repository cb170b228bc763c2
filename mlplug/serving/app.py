"""The app factory: it only assembles the parts of :mod:`mlplug.serving`.

``create_app(settings)`` loads the model version from the store right away (an app whose
model cannot be loaded must not start), builds the request contract from that version's
schema, and returns a FastAPI app usable by any ASGI server. ``create_app_from_env`` is the
same with settings from the environment, for ``uvicorn --factory`` and several workers.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import orjson
from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

import mlplug
from mlplug.errors import MlplugError
from mlplug.plugins import Plugins, get_plugins
from mlplug.registry import Registry
from mlplug.runtime import open_registry
from mlplug.serving.auth import SECURITY_SCHEMES, ApiKeys
from mlplug.serving.batching import AdaptiveBatcher, batching_policy
from mlplug.serving.config import ServeSettings, get_serve_settings
from mlplug.serving.docs import add_docs
from mlplug.serving.errors import install_error_handlers
from mlplug.serving.hotpath import PredictLane
from mlplug.serving.lifecycle import Lifecycle
from mlplug.serving.limits import BodyLimitMiddleware
from mlplug.serving.metrics import MetricsMiddleware, ServingMetrics
from mlplug.serving.model_holder import ModelHolder, ServedModel
from mlplug.serving.observe import ServingContext, TrafficTap, create_observers
from mlplug.serving.routes import add_routes
from mlplug.serving.schemas import build_contract, component_schemas, example_record
from mlplug.serving.state import ServingState
from mlplug.task import TaskType

log = logging.getLogger(__name__)

_TELEMETRY_OFF = {"tracing": False, "metrics": False, "logs": False, "operation_spans": False}


def create_app(
    settings: ServeSettings | None = None,
    *,
    plugins: Plugins | None = None,
    registry: Registry | None = None,
) -> FastAPI:
    settings = settings or get_serve_settings()
    if not settings.task:
        raise MlplugError("no task to serve: pass one (`mlplug serve TASK`) or set MLPLUG_TASK")
    plugins = plugins or get_plugins()
    task = plugins.task(settings.task)
    keys = ApiKeys.from_settings(settings)  # before loading: a config error should fail fast
    registry = registry or open_registry(settings.store or None)
    metrics = ServingMetrics(task.name)

    def on_swap(served: ServedModel) -> None:
        metrics.set_model(served.version.version, served.version.kind, settings.model)

    holder = ModelHolder(task, registry, settings.model, on_swap=on_swap)
    served = holder.load_initial()
    # The loaded version's schema is the request contract for the life of this process;
    # the example (and warm-up rows) come from the task's generator when it fits.
    example = example_record(served.schema, _synthetic_row(task))
    contract = build_contract(
        served.schema,
        max_batch=settings.max_batch,
        max_explain_rows=settings.max_explain_rows,
        example=example,
    )
    if example:
        holder.warm_rows = contract.parse(orjson.dumps(example)).rows
        served.predictor.warm_up(holder.warm_rows)
    context = ServingContext(task.name, task, served.version, served.schema, registry.store)
    factories = {name: reg.value for name, reg in plugins.traffic_observers().items()}
    tap = TrafficTap(create_observers(factories, context), metrics, maxsize=settings.observe_queue)
    lifecycle = Lifecycle(on_change=lambda ready: metrics.ready.set(1 if ready else 0))
    policy = batching_policy(settings, task)
    batcher = AdaptiveBatcher(policy, metrics.registry) if policy else None
    if policy:
        log.info("adaptive batching: up to %d rows per call, %g ms wait", policy.max_rows, policy.max_wait_ms)
    state = ServingState(settings, task, holder, contract, keys, metrics, tap, lifecycle, batcher)
    holder.also_poll(keys.reload)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        lifecycle.install_signal_handlers()
        tap.start()
        holder.start(
            settings.reload_interval,
            on_result=lambda outcome: metrics.reloads.labels(task.name, outcome).inc(),
        )
        metrics.ready.set(1)
        try:
            yield
        finally:
            lifecycle.start_draining("shutdown")
            holder.stop()
            tap.close()
            if batcher is not None:
                batcher.close()
            lifecycle.restore_signal_handlers()

    app = FastAPI(
        title=f"mlplug: {task.name}",
        description=(
            f"{task.description or task.name}. Serving model {settings.model!r} "
            f"(version {served.version.version} at start). POST /predict with one record or "
            '{"records": [...]}; every field is listed under the Record schema.'
        ),
        version=mlplug.__version__,
        lifespan=lifespan,
        # FastAPI's OpenTelemetry hooks look up providers on every request; Prometheus
        # covers metrics, so they are opt-in (MLPLUG_OTEL=true).
        telemetry=None if settings.otel else _TELEMETRY_OFF,
        docs_url=None,  # served by add_docs from the package: FastAPI's pages need a CDN
        redoc_url=None,
    )
    app.state.serving = state
    add_routes(app, state)
    add_docs(app)
    install_error_handlers(app)
    # Added innermost first: the predict lane sits behind the body cap, and metrics wrap both,
    # so that 413s are counted too.
    app.add_middleware(PredictLane, state=state)
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes)
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    _document(app, contract_models=[contract.record, contract.predict_batch, contract.explain_batch])
    return app


def create_app_from_env() -> FastAPI:
    """``uvicorn --factory mlplug.serving.app:create_app_from_env`` (settings from MLPLUG_*)."""
    from mlplug.serving.server import freeze_startup_heap

    app = create_app(get_serve_settings())
    freeze_startup_heap()
    return app


def _synthetic_row(task: TaskType) -> dict[str, Any] | None:
    try:
        data = task.synthesize(1, seed=0)
        return data.frame.iloc[0].to_dict()
    except Exception as exc:  # an example is a convenience; a generator that fails is not fatal
        log.info("no request example for %s: synthesize(1) failed: %s", task.name, exc)
        return None


def _document(app: FastAPI, contract_models: list[Any]) -> None:
    """OpenAPI with the request models (read by hand in the routes) and the auth schemes."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        spec = get_openapi(
            title=app.title, version=app.version, description=app.description, routes=app.routes
        )
        components = spec.setdefault("components", {})
        components.setdefault("schemas", {}).update(component_schemas(contract_models))
        components["securitySchemes"] = SECURITY_SCHEMES
        app.openapi_schema = spec
        return spec

    app.openapi = openapi  # type: ignore[method-assign]
