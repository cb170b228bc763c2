"""Error responses: every error is JSON ``{"error": ..., "detail": [...]}``.

Client mistakes are answered by the handlers for :class:`RequestError` (422) and for
Starlette's HTTP exceptions (404, 405, ...). The catch-all handler turns anything else into
a 500 without internals in the body; it exists for bugs only, and the fuzzing test in
``tests/serving`` checks that no request reaches it.
"""

from __future__ import annotations

import logging

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from mlplug.serving.schemas import RequestError

log = logging.getLogger(__name__)


def json_error(
    status: int, message: str, detail: list[dict] | None = None, headers: dict | None = None
) -> Response:
    body: dict = {"error": message}
    if detail:
        body["detail"] = detail
    return Response(orjson.dumps(body), status_code=status, media_type="application/json", headers=headers)


UNAUTHORIZED_BODY = orjson.dumps(
    {"error": "missing or invalid API key; send Authorization: Bearer <key> or X-API-Key"}
)


def unauthorized() -> Response:
    return Response(
        UNAUTHORIZED_BODY,
        status_code=401,
        media_type="application/json",
        headers={"WWW-Authenticate": "Bearer"},
    )


async def _request_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestError)
    return Response(exc.to_json(), status_code=422, media_type="application/json")


async def _validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    detail = [{"loc": list(e["loc"]), "msg": e["msg"], "type": e["type"]} for e in exc.errors()]
    return json_error(422, "invalid request", detail)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    return json_error(exc.status_code, str(exc.detail), headers=exc.headers)


async def _unexpected(request: Request, exc: Exception) -> Response:
    # Starlette re-raises after this handler, so the server logs the traceback once.
    return json_error(500, "internal server error; the server log has the details")


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(RequestError, _request_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected)
