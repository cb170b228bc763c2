"""A Ray node process on this machine: ``ray start --block`` in a session of its own, with its
own temp directory and free ports, stopped through its process group.

Used to make the machine that runs a flow a (zero-CPU) node of an existing cluster, which Ray
requires of a driver (``ray.init(address=...)`` attaches to a raylet on the same machine), and
by :mod:`mlplug.testing.ray_cluster` to start whole clusters for tests. Every port is a free
one: Ray's fixed defaults (52365 for the dashboard agent, ...) collide with any other Ray on
the machine. Stopping never uses ``ray stop``, which stops every Ray of the user.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from mlplug.processes import free_port

#: What ``ray start`` prints once the node runs.
STARTED = "Ray runtime started."
#: Worker ports a node may use (Ray starts a worker process per trial and per actor).
WORKER_PORTS = 40


@dataclass
class RayNode:
    proc: subprocess.Popen[bytes]
    temp_dir: Path
    log: Path

    def stop(self, grace: float = 5.0) -> None:
        """SIGTERM to the node's process group (``ray start --block`` and everything it
        started), SIGKILL to what is left after ``grace`` seconds."""
        group = self.proc.pid  # a session of its own: the group id is the leader's pid
        with contextlib.suppress(ProcessLookupError):
            os.killpg(group, signal.SIGTERM)
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline and _group_alive(group):
            self.proc.poll()  # reap the leader, or its zombie keeps the group alive
            time.sleep(0.2)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(group, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(10)


def start_node(
    temp_dir: Path,
    role: list[str],
    *,
    cpus: int,
    env: dict[str, str],
    node_ip: str | None = None,
    timeout: float = 90,
) -> RayNode:
    """``ray start --block ROLE...`` (``--head --port P`` or ``--address A``) with ``cpus``
    CPUs and its session under ``temp_dir``; returns once Ray says the node runs."""
    temp_dir.mkdir(parents=True, exist_ok=True)
    log = temp_dir.with_name(temp_dir.name + ".log")
    ray = Path(sys.executable).with_name("ray")
    first_worker_port = free_port()
    command = [
        str(ray), "start", "--block", *role,
        "--num-cpus", str(cpus),
        "--temp-dir", str(temp_dir),
        "--disable-usage-stats",
        "--node-manager-port", str(free_port()),
        "--object-manager-port", str(free_port()),
        "--dashboard-agent-listen-port", str(free_port()),
        "--dashboard-agent-grpc-port", str(free_port()),
        "--runtime-env-agent-port", str(free_port()),
        "--metrics-export-port", str(free_port()),
        "--min-worker-port", str(first_worker_port),
        "--max-worker-port", str(first_worker_port + WORKER_PORTS),
        *(["--node-ip-address", node_ip] if node_ip else []),
    ]  # fmt: skip
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            command, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
    node = RayNode(proc, temp_dir, log)
    deadline = time.monotonic() + timeout
    while STARTED not in log.read_text(errors="replace"):
        if proc.poll() is not None or time.monotonic() > deadline:
            node.stop()
            raise RuntimeError(f"`ray start {' '.join(role)}` did not come up; its output:\n{tail(log)}")
        time.sleep(0.2)
    return node


def tail(log: Path, lines: int = 30) -> str:
    try:
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no output)"


def _group_alive(group: int) -> bool:
    try:
        os.killpg(group, 0)
    except ProcessLookupError:
        return False
    return True
