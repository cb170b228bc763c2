"""Child processes on loopback that commands start and stop: mlplug's own inference server
(``mlplug demo`` loads one), and the polling and stopping they share with the test servers of
:mod:`mlplug.testing.servers`.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

LOOPBACK = "127.0.0.1"

#: Environment every child gets: no telemetry, no hub downloads.
OFFLINE_ENV = {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "WHYLOGS_NO_ANALYTICS": "True",
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "RAY_USAGE_STATS_ENABLED": "0",
    "DO_NOT_TRACK": "1",
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((LOOPBACK, 0))
        return sock.getsockname()[1]


def wait_http(url: str, proc: subprocess.Popen[bytes], timeout: float, log: Path) -> None:
    """Poll ``url`` until it answers 2xx; fail with the server's log if it dies or stalls."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}:\n{_tail(log)}")
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                if 200 <= resp.status < 300:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.2)
    raise TimeoutError(f"{url} not ready after {timeout:.0f}s:\n{_tail(log)}")


def _tail(log: Path, lines: int = 40) -> str:
    try:
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _limit_open_files(count: int) -> None:
    import resource

    resource.setrlimit(resource.RLIMIT_NOFILE, (count, count))


def stop(proc: subprocess.Popen[bytes], grace: float = 10.0) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@dataclass(frozen=True)
class RunningServer:
    url: str
    proc: subprocess.Popen[bytes]
    log: Path


@contextlib.contextmanager
def mlplug_server(
    task: str,
    state_dir: Path,
    *,
    env: dict[str, str] | None = None,
    args: tuple[str, ...] = (),
    port: int | None = None,
    timeout: float = 90,
    open_files: int | None = None,
) -> Iterator[RunningServer]:
    """``mlplug serve TASK`` on 127.0.0.1 as a child process, ready when it yields.

    ``env`` adds to the current environment (``MLPLUG_STORE``, ``MLPLUG_API_KEYS``, ...).
    ``open_files`` sets the child's file-descriptor limit (soft and hard), as a container's
    would. The server gets SIGTERM when the block exits, and is killed if it does not stop.
    """
    port = port or free_port()
    state_dir.mkdir(parents=True, exist_ok=True)
    log = state_dir / f"serve-{port}.log"
    mlplug = Path(sys.executable).with_name("mlplug")
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [str(mlplug), "serve", task, "--host", LOOPBACK, "--port", str(port), *args],
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, **OFFLINE_ENV, **(env or {})},
            preexec_fn=None if open_files is None else lambda: _limit_open_files(open_files),
        )
    url = f"http://{LOOPBACK}:{port}"
    try:
        wait_http(f"{url}/readyz", proc, timeout=timeout, log=log)
        yield RunningServer(url=url, proc=proc, log=log)
    finally:
        stop(proc, grace=30)
