"""The endpoints. Predict and explain read and write bytes themselves: the body is validated
by the contract's pydantic models, the answer serialised by orjson, and FastAPI's own body
and response handling (which would validate twice and go through ``jsonable_encoder``) is
bypassed; the models still document both in OpenAPI. ``POST /predict`` is normally answered
even earlier, by :class:`mlplug.serving.hotpath.PredictLane`.
"""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import Response
from pydantic import BaseModel, RootModel, create_model
from starlette.concurrency import run_in_threadpool

from mlplug.dataset import Dataset
from mlplug.explaining import explain_model
from mlplug.serving.auth import SECURITY_REQUIREMENT
from mlplug.serving.errors import json_error, unauthorized
from mlplug.serving.hotpath import SERVER_TIMING, answer_predict
from mlplug.serving.metrics import CONTENT_TYPE
from mlplug.serving.model_holder import ServedModel
from mlplug.serving.predict import render_explanation
from mlplug.serving.schemas import ErrorResponse, openapi_body
from mlplug.serving.state import ServingState

JSON = "application/json"


class FeatureInfo(BaseModel):
    name: str
    role: str
    nullable: bool
    description: str


class ModelInfo(BaseModel):
    task: str
    ref: str
    version: int
    kind: str
    created_at: str
    classes: list[str]
    features: list[FeatureInfo]
    primary_metric: str
    metrics: dict[str, float | None]
    threshold: float | None
    dataset_hash: str
    params: dict[str, Any]
    loaded_at: float
    follows_alias: bool
    last_reload_check: float | None
    last_reload_error: str | None
    last_reload_error_at: float | None
    #: When a poll last confirmed that this is the version the alias names.
    confirmed_at: float
    api_keys_loaded_at: float
    api_keys_error: str | None


class Health(BaseModel):
    status: str


class Readiness(BaseModel):
    status: str
    version: int | None = None
    #: Why the server is not ready ("stale": the store or the key file cannot be read).
    reason: str | None = None


def _errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    text = {
        401: "missing or wrong API key",
        413: "request body too large",
        422: "invalid request: the detail names each field and the expected type",
        429: "too many concurrent explanations; retry shortly",
    }
    return {code: {"model": ErrorResponse, "description": text[code]} for code in codes}


def _model_info(state: ServingState, served: ServedModel) -> bytes:
    v = served.version
    info = ModelInfo(
        task=state.task.name,
        ref=state.holder.ref,
        version=v.version,
        kind=v.kind,
        created_at=v.created_at,
        classes=list(served.schema.classes),
        features=[
            FeatureInfo(name=c.name, role=c.role.value, nullable=c.nullable, description=c.description)
            for c in served.schema.features
        ],
        primary_metric=v.primary_metric,
        metrics={k: (x if x == x and abs(x) != float("inf") else None) for k, x in v.metrics.items()},
        threshold=v.threshold,
        dataset_hash=v.dataset_hash,
        params=v.params,
        loaded_at=served.loaded_at,
        follows_alias=state.holder.follows_alias,
        last_reload_check=state.holder.status.last_check,
        last_reload_error=state.holder.status.last_error,
        last_reload_error_at=state.holder.status.last_error_at,
        confirmed_at=state.holder.status.confirmed_at,
        api_keys_loaded_at=state.keys.loaded_at,
        api_keys_error=state.keys.last_error,
    )
    return orjson.dumps(info.model_dump(mode="json"))


def add_routes(router: APIRouter | FastAPI, state: ServingState) -> None:
    """Add the endpoints to ``router`` (the app itself on the fast path: FastAPI checks an
    included router's routes on every request)."""
    contract = state.contract
    keys = state.keys
    holder = state.holder
    metrics = state.metrics
    predict_answer = create_model(
        "PredictAnswer",
        __base__=RootModel[contract.single_response | contract.batch_response],  # type: ignore[name-defined]
    )
    auth = {"security": SECURITY_REQUIREMENT}

    @router.post(
        "/predict",
        summary='Predict one record, or a batch as {"records": [...]}',
        response_model=None,
        responses={200: {"model": predict_answer, "description": "predictions"}, **_errors(401, 413, 422)},
        openapi_extra={**openapi_body(contract.record, contract.predict_batch), **auth},
    )
    async def predict(request: Request) -> Response:
        # Normally answered by hotpath.PredictLane before FastAPI; same steps either way.
        if not keys.allows(request.scope["headers"]):
            return unauthorized()
        answer, timing = await answer_predict(state, await request.body())
        return Response(answer, media_type=JSON, headers={SERVER_TIMING: timing})

    @router.post(
        "/explain",
        summary="Feature attributions for one record or a small batch (slow; not for every request)",
        response_model=None,
        responses={200: {"model": contract.explanation}, **_errors(401, 413, 422, 429)},
        openapi_extra={**openapi_body(contract.record, contract.explain_batch), **auth},
    )
    async def explain(request: Request) -> Response:
        if not keys.allows(request.scope["headers"]):
            return unauthorized()
        parsed = contract.parse(await request.body(), explain=True)
        if not state.explain_slots.acquire(blocking=False):
            return json_error(
                429, "too many concurrent explanations; retry shortly", headers={"Retry-After": "1"}
            )
        try:
            served = holder.current
            return Response(await run_in_threadpool(_explain, state, served, parsed.rows), media_type=JSON)
        finally:
            state.explain_slots.release()

    @router.get(
        "/model",
        summary="The served model version: task, version, metrics, threshold, training data hash",
        response_model=None,
        responses={200: {"model": ModelInfo}, **_errors(401)},
        openapi_extra=auth,
    )
    async def model(request: Request) -> Response:
        if not keys.allows(request.scope["headers"]):
            return unauthorized()
        return Response(_model_info(state, holder.current), media_type=JSON)

    @router.get("/healthz", summary="Liveness: the process answers", response_model=Health)
    async def healthz() -> Response:
        return Response(b'{"status":"ok"}', media_type=JSON)

    @router.get(
        "/readyz",
        summary="Readiness: a model is loaded, neither it nor the API keys are stale, not draining",
        response_model=Readiness,
        responses={503: {"model": Readiness, "description": "draining, stale or no model"}},
    )
    async def readyz() -> Response:
        stale = state.staleness()
        if state.ready:
            payload = {"status": "ready", "version": holder.current.version.version}
            return Response(orjson.dumps(payload), media_type=JSON)
        payload = {"status": "draining" if state.lifecycle.draining else "stale" if stale else "loading"}
        if stale and not state.lifecycle.draining:
            payload["reason"] = stale
        return Response(orjson.dumps(payload), status_code=503, media_type=JSON)

    @router.get(
        "/metrics",
        summary="Prometheus metrics",
        response_class=Response,
        responses={
            200: {"content": {"text/plain": {"schema": {"type": "string"}}}, "description": "metrics"}
        },
    )
    async def prometheus() -> Response:
        metrics.ready.set(1 if state.ready else 0)
        metrics.set_freshness(holder.status, holder.stale_for(), keys.stale_for(), keys.last_error)
        return Response(metrics.exposition(), media_type=CONTENT_TYPE)


def _explain(state: ServingState, served: ServedModel, rows: list[list[Any]]) -> bytes:
    frame = served.predictor.frame(rows)
    data = Dataset(frame, served.schema, source="explain request")
    explanation = explain_model(state.task, served.predictor.model, data, rows=len(rows))
    return render_explanation(served.version.version, explanation)
