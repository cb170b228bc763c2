"""Real servers on loopback for tests and local runs: moto's S3, a Prefect API, and
mlplug's own inference server (as a child process, or an app in a thread of this process).

Each server runs as a child process with its state in a directory the caller owns, and is
stopped (terminate, then kill) when its context exits.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from mlplug.processes import (  # noqa: F401 - re-exported for tests and plugin authors
    LOOPBACK,
    OFFLINE_ENV,
    RunningServer,
    free_port,
    mlplug_server,
    stop,
    wait_http,
)


@dataclass(frozen=True)
class S3Server:
    endpoint_url: str
    #: Environment for boto3 clients (dummy credentials: moto accepts any).
    env: dict[str, str]

    def client(self):  # type: ignore[no-untyped-def]
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint_url,
            region_name=self.env["AWS_DEFAULT_REGION"],
            aws_access_key_id=self.env["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=self.env["AWS_SECRET_ACCESS_KEY"],
        )

    def create_bucket(self, name: str) -> str:
        self.client().create_bucket(Bucket=name)
        return name


@contextlib.contextmanager
def moto_s3_server(state_dir: Path, port: int | None = None) -> Iterator[S3Server]:
    """moto's S3 server over HTTP on 127.0.0.1 (a real server, not an in-process mock)."""
    port = port or free_port()
    state_dir.mkdir(parents=True, exist_ok=True)
    log = state_dir / "moto.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", LOOPBACK, "-p", str(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, **OFFLINE_ENV},
        )
    endpoint = f"http://{LOOPBACK}:{port}"
    try:
        wait_http(f"{endpoint}/moto-api/", proc, timeout=30, log=log)
        yield S3Server(
            endpoint_url=endpoint,
            env={
                "AWS_ACCESS_KEY_ID": "testing",
                "AWS_SECRET_ACCESS_KEY": "testing",
                "AWS_DEFAULT_REGION": "us-east-1",
                "MLPLUG_S3_ENDPOINT_URL": endpoint,
            },
        )
    finally:
        stop(proc)


@dataclass(frozen=True)
class PrefectServer:
    api_url: str
    home: Path
    #: Environment for clients and workers talking to this server.
    env: dict[str, str]


def prefect_env(home: Path, api_url: str | None = None) -> dict[str, str]:
    env = {
        **OFFLINE_ENV,
        "PREFECT_HOME": str(home),
        "PREFECT_API_DATABASE_CONNECTION_URL": f"sqlite+aiosqlite:///{home / 'prefect.db'}",
        "PREFECT_SERVER_UI_ENABLED": "false",
        "PREFECT_LOGGING_LEVEL": "WARNING",
    }
    if api_url:
        env["PREFECT_API_URL"] = api_url
    return env


@contextlib.contextmanager
def prefect_server(home: Path, port: int | None = None, timeout: float = 120) -> Iterator[PrefectServer]:
    """``prefect server start`` on 127.0.0.1 with SQLite under ``home``."""
    port = port or free_port()
    home.mkdir(parents=True, exist_ok=True)
    log = home / "server.log"
    env = {**os.environ, **prefect_env(home)}
    env.pop("PREFECT_API_URL", None)  # the server must not try to reach another API
    prefect = Path(sys.executable).with_name("prefect")
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [str(prefect), "server", "start", "--host", LOOPBACK, "--port", str(port), "--no-ui"],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
    api_url = f"http://{LOOPBACK}:{port}/api"
    try:
        wait_http(f"{api_url}/health", proc, timeout=timeout, log=log)
        yield PrefectServer(api_url=api_url, home=home, env=prefect_env(home, api_url))
    finally:
        stop(proc, grace=20)


@contextlib.contextmanager
def app_in_thread(app: object, port: int | None = None, timeout: float = 30) -> Iterator[str]:
    """Serve an ASGI app with uvicorn in a thread of this process, on 127.0.0.1.

    Unlike a child process, the app sees this process's plugin manager, so plugins that a
    test registers take part. Yields the base URL; the server shuts down when the block exits.
    """
    import threading

    import uvicorn

    port = port or free_port()
    server = uvicorn.Server(uvicorn.Config(app, host=LOOPBACK, port=port, log_level="warning", lifespan="on"))  # type: ignore[arg-type]
    thread = threading.Thread(target=server.run, name=f"uvicorn-{port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            raise RuntimeError(f"app on port {port} did not start")
        time.sleep(0.02)
    try:
        yield f"http://{LOOPBACK}:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout)
