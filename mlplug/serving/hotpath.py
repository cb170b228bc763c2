"""``POST /predict`` answered at the ASGI level, in front of FastAPI.

A one-row prediction costs tens of microseconds; FastAPI's routing, request object,
dependency solving and exception middleware cost several times that per request.
:class:`PredictLane` takes ``POST /predict`` before FastAPI sees it, runs exactly the same
steps as the documented FastAPI route (both call :func:`answer_predict`), and passes every
other request on. The FastAPI route stays: it defines ``/predict`` in OpenAPI and answers
if the lane is not installed.

Every answer carries a ``Server-Timing`` header (W3C Server Timing) with two metrics in
milliseconds: ``queue``, how long the validated request waited for the model call that
answered it to start (a batch's, or a thread of the pool), and ``model``, how long that call
took. A client subtracts ``model`` from its own latency to see what the server added around
the model (batching, HTTP, parsing); browsers' devtools show the header as is.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from starlette.concurrency import run_in_threadpool

from mlplug.serving.errors import UNAUTHORIZED_BODY
from mlplug.serving.observe import TrafficBatch
from mlplug.serving.schemas import RequestError
from mlplug.serving.state import ServingState

log = logging.getLogger(__name__)

JSON_HEADERS = [(b"content-type", b"application/json")]
UNAUTHORIZED_HEADERS = [*JSON_HEADERS, (b"www-authenticate", b"Bearer")]
INTERNAL_ERROR = b'{"error":"internal server error; the server log has the details"}'
SERVER_TIMING = "server-timing"


def server_timing(queued: float, model: float) -> str:
    """The ``Server-Timing`` value for a request: seconds in, milliseconds out."""
    return f"queue;dur={queued * 1000:.3f}, model;dur={model * 1000:.3f}"


def _timed_call(
    proba: Callable[[Sequence[Sequence[Any]]], np.ndarray], rows: Sequence[Sequence[Any]]
) -> tuple[np.ndarray, float, float]:
    """``proba(rows)`` on a pool thread, with when the call started and its seconds."""
    started = time.perf_counter()
    out = proba(rows)
    return out, started, time.perf_counter() - started


async def answer_predict(state: ServingState, body: bytes) -> tuple[bytes, str]:
    """Validate, predict, record metrics and hand the batch to observers; the JSON answer
    and its ``Server-Timing`` value.

    Raises :class:`RequestError` for a request that cannot be served as sent (422).
    """
    received = time.time()
    parsed = state.contract.parse(body)
    served = state.holder.current  # read once: a swap mid-request must not mix versions
    predictor = served.predictor
    started = time.perf_counter()
    batcher = state.batcher
    if batcher is not None and batcher.takes(len(parsed.rows)):
        proba, queued, model = await batcher.timed(predictor, parsed.rows)
    elif predictor.inline(len(parsed.rows)):
        proba = predictor.proba(parsed.rows)
        queued, model = 0.0, time.perf_counter() - started
    else:
        proba, called, model = await run_in_threadpool(_timed_call, predictor.proba, parsed.rows)
        queued = called - started
    probability, labels = predictor.scores(proba)
    answer = predictor.render(proba, probability, labels, parsed.ids, parsed.batch)
    state.metrics.observe_predictions(predictor.version_number, labels, probability)
    if state.tap.enabled:
        # Observers that sample say first whether they take this request: most requests of a
        # busy server build no batch, read no latency clock and draw no random number.
        names = state.tap.admit(predictor.version_number, len(parsed.rows))
        if names:
            state.tap.put(
                TrafficBatch(
                    task=state.task.name,
                    version=predictor.version_number,
                    features=tuple(served.schema.feature_names),
                    rows=parsed.rows,
                    proba=proba,
                    predictions=labels,
                    received_at=received,
                    latency_seconds=time.perf_counter() - started,
                ),
                names,
            )
    return answer, server_timing(queued, model)


class PredictLane:
    """ASGI middleware: ``POST /predict`` here, everything else to ``app``."""

    def __init__(self, app: Any, state: ServingState, path: str = "/predict") -> None:
        self.app = app
        self.state = state
        self.path = path

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["path"] != self.path or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        if not self.state.keys.allows(scope["headers"]):
            await _send(send, 401, UNAUTHORIZED_BODY, UNAUTHORIZED_HEADERS)
            return
        chunks = []
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return  # the client left; nobody to answer
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        try:
            answer, timing = await answer_predict(self.state, b"".join(chunks))
        except RequestError as exc:
            await _send(send, 422, exc.to_json(), JSON_HEADERS)
            return
        except Exception:
            log.exception("POST %s failed", self.path)
            await _send(send, 500, INTERNAL_ERROR, JSON_HEADERS)
            return
        await _send(send, 200, answer, [*JSON_HEADERS, (b"server-timing", timing.encode())])


async def _send(send: Any, status: int, body: bytes, headers: list[tuple[bytes, bytes]]) -> None:
    headers = [*headers, (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
