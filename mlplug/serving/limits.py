"""The request body cap, as a pure ASGI middleware (no per-request objects beyond a closure).

A declared ``Content-Length`` over the cap is refused before a byte of the body is read; a
body without one (chunked) is counted as it streams and refused as soon as it passes the
cap, so no request can make the server buffer more than the cap.
"""

from __future__ import annotations

from typing import Any

import orjson

Scope = dict[str, Any]
Message = dict[str, Any]


class BodyTooLargeError(Exception):
    pass


def _too_large(limit: int) -> tuple[Message, Message]:
    body = orjson.dumps({"error": f"request body is larger than {limit} bytes (MLPLUG_MAX_BODY_BYTES)"})
    start = {
        "type": "http.response.start",
        "status": 413,
        "headers": [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"connection", b"close"),
        ],
    }
    return start, {"type": "http.response.body", "body": body}


class BodyLimitMiddleware:
    def __init__(self, app: Any, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.max_bytes
        for name, value in scope["headers"]:
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = -1  # uvicorn rejects malformed lengths before we get here
                if declared > limit:
                    await _reply_too_large(send, limit)
                    return
                break

        received = 0
        started = False

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLargeError
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except BodyTooLargeError:
            if started:  # the app answered without reading the whole body: nothing to fix
                raise
            await _reply_too_large(send, limit)


async def _reply_too_large(send: Any, limit: int) -> None:
    start, body = _too_large(limit)
    await send(start)
    await send(body)
