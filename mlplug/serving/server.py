"""Run the app under uvicorn: the event loop and HTTP parser that make it fast, the
connection limits of :mod:`mlplug.serving.connections`, a graceful drain on SIGTERM, and exit
status 0 after a drain.

uvicorn re-raises the signal it drained for once it is done, so that the process dies "by
the signal". A server that finished every request after SIGTERM shut down as asked; a
no-op handler installed underneath uvicorn's takes that re-raised signal, and the process
exits normally.
"""

from __future__ import annotations

import gc
import importlib.util
import logging
import os
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from mlplug.serving.auth import ApiKeys
from mlplug.serving.config import ServeSettings

log = logging.getLogger(__name__)

FACTORY = "mlplug.serving.app:create_app_from_env"


def _fastest(preferred: str, module: str, fallback: str) -> str:
    return preferred if importlib.util.find_spec(module) is not None else fallback


def uvicorn_options(
    settings: ServeSettings, *, log_level: str = "info", access_log: bool = False, workers: int = 1
) -> dict[str, Any]:
    from mlplug.serving.connections import PROTOCOL_FROM_ENV, guarded_protocol  # imports uvicorn

    return {
        "loop": _fastest("uvloop", "uvloop", "asyncio"),
        # httptools with header, connection and time limits, and a drain that loses nothing;
        # worker processes build the same from the MLPLUG_* environment.
        "http": guarded_protocol(settings) if workers <= 1 else PROTOCOL_FROM_ENV,
        "timeout_keep_alive": settings.keepalive_timeout,
        "lifespan": "on",
        "log_level": log_level,
        # An access log line costs about as much as a prediction; Prometheus counts requests.
        "access_log": access_log,
        "timeout_graceful_shutdown": int(settings.graceful_timeout),
        "server_header": False,
        # Client addresses are not used; skip rewriting them from X-Forwarded-* on every request.
        "proxy_headers": False,
    }


@contextmanager
def _drain_is_success() -> Iterator[None]:
    previous = {sig: signal.signal(sig, lambda *_: None) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def run_server(
    settings: ServeSettings,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    workers: int = 1,
    log_level: str = "info",
    access_log: bool = False,
) -> None:
    import uvicorn

    logging.getLogger("mlplug").setLevel(log_level.upper())
    options = uvicorn_options(settings, log_level=log_level, access_log=access_log, workers=workers)
    if workers <= 1:
        from mlplug.serving.app import create_app

        app = create_app(settings)  # load the model before binding the port: fail fast
        freeze_startup_heap()
        server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, **options))
        with _drain_is_success():
            server.run()
        return
    # Several processes: each worker builds its own app from the environment.
    ApiKeys.from_settings(settings)  # refuse a bad key configuration before forking
    os.environ.update(_environment(settings))
    log.warning(
        "%d workers: each keeps its own metrics, so /metrics shows the worker that answered; "
        "in Kubernetes prefer one worker per pod and more replicas",
        workers,
    )
    uvicorn.run(FACTORY, factory=True, host=host, port=port, workers=workers, **options)


def freeze_startup_heap() -> None:
    """Move everything loaded so far (the model, its libraries, whylogs) out of the garbage
    collector's reach: these objects live as long as the process, and every full collection
    would walk them again (tens of milliseconds each, a pause every request in flight
    waits for). Objects created later, a reloaded version's included, are collected as usual."""
    gc.collect()
    gc.freeze()


def _environment(settings: ServeSettings) -> dict[str, str]:
    """The settings as MLPLUG_* variables for worker processes (keys stay as they came)."""
    out = {}
    for name, value in settings.model_dump(exclude={"api_keys"}).items():
        if value is None:
            continue
        out[f"MLPLUG_{name.upper()}"] = str(value).lower() if isinstance(value, bool) else str(value)
    secret = settings.api_keys.get_secret_value()
    if secret:
        out["MLPLUG_API_KEYS"] = secret
    return out
