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
import itertools
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
#: The node's own components, each given a free port.
COMPONENT_PORT_OPTIONS = (
    "--node-manager-port",
    "--object-manager-port",
    "--dashboard-agent-listen-port",
    "--dashboard-agent-grpc-port",
    "--runtime-env-agent-port",
    "--metrics-export-port",
)


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


def _distinct_free_ports(count: int) -> list[int]:
    ports: list[int] = []
    while len(ports) < count:
        port = free_port()
        if port not in ports:
            ports.append(port)
    return ports


def _ports_in(role: list[str]) -> set[int]:
    """The ports a role names (``--port P``, ``--address HOST:P``)."""
    found: set[int] = set()
    for option, value in itertools.pairwise(role):
        text = value.rsplit(":", 1)[-1] if option == "--address" else value
        if option in ("--port", "--address") and text.isdigit():
            found.add(int(text))
    return found


def _worker_range(taken: set[int], attempts: int = 200) -> int:
    """The first of ``WORKER_PORTS + 1`` consecutive worker ports that holds none of
    ``taken``: Ray refuses to start a node whose worker range covers one of its own
    component ports (free ports drawn one by one fall inside a 40-port range now and then)."""
    for _ in range(attempts):
        first = free_port()
        last = first + WORKER_PORTS
        if last <= 65535 and not any(first <= port <= last for port in taken):
            return first
    raise RuntimeError(f"found no {WORKER_PORTS + 1} worker ports clear of {sorted(taken)}")


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
    options = COMPONENT_PORT_OPTIONS
    ports = _distinct_free_ports(len(options))
    first_worker_port = _worker_range(taken={*ports, *_ports_in(role)})
    command = [
        str(ray), "start", "--block", *role,
        "--num-cpus", str(cpus),
        "--temp-dir", str(temp_dir),
        "--disable-usage-stats",
        *[arg for option, port in zip(options, ports, strict=True) for arg in (option, str(port))],
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
