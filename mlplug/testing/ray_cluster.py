"""A real multi-node Ray cluster on this machine, for tests and benchmarks of tuning on an
existing cluster (``MLPLUG_RAY_ADDRESS``).

Each node is a ``ray start --block`` process in its own session, with its own temp
directory and its own ports (free ones, so parallel runs and other Ray users on the machine
are not touched), and token authentication as Ray 2.60 starts clusters: ``RAY_AUTH_MODE=token``
and a fresh ``RAY_AUTH_TOKEN`` for every node and for the driver (:attr:`RayCluster.env`).
Stopping sends SIGTERM, then SIGKILL, to each node's process group only: never ``ray stop``,
which would stop every Ray on the machine.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from mlplug.processes import LOOPBACK, OFFLINE_ENV, free_port

#: What ``ray start`` prints once the node runs.
_STARTED = "Ray runtime started."
#: Worker ports each node may use (Ray starts a worker process per trial and per actor).
_WORKER_PORTS = 40


@dataclass
class RayNode:
    proc: subprocess.Popen[bytes]
    temp_dir: Path
    log: Path


@dataclass
class RayCluster:
    #: ``host:port`` of the head's GCS, what ``MLPLUG_RAY_ADDRESS`` is set to.
    address: str
    #: The cluster's authentication token.
    token: str
    nodes: list[RayNode] = field(default_factory=list)

    @property
    def env(self) -> dict[str, str]:
        """What a driver needs to join: the address and the token."""
        return {"MLPLUG_RAY_ADDRESS": self.address, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": self.token}

    def node_ids(self) -> set[str]:
        """Ray's ids of the cluster's live nodes, asked by a driver of its own (a separate
        process, so this one's Ray state is not touched)."""
        code = (
            f"import ray; ray.init(address={self.address!r}, include_dashboard=False, "
            "log_to_driver=False); "
            "print(' '.join(n['NodeID'] for n in ray.nodes() if n['Alive'])); ray.shutdown()"
        )
        env = {**os.environ, **OFFLINE_ENV, **self.env}
        env.pop("RAY_AUTH_TOKEN_PATH", None)
        out = subprocess.run(
            [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120, check=True
        )
        return set(out.stdout.split())


@contextlib.contextmanager
def ray_cluster(nodes: int = 2, cpus_per_node: int = 1, timeout: float = 90) -> Iterator[RayCluster]:
    """A head node and ``nodes - 1`` worker nodes, each with ``cpus_per_node`` CPUs and its
    own temp directory; everything started here is stopped and removed on exit."""
    # Short: Ray's socket paths under the temp dir must fit in 107 bytes.
    root = Path(tempfile.mkdtemp(prefix="mlr-", dir="/tmp"))
    cluster = RayCluster(address=f"{LOOPBACK}:{free_port()}", token=secrets.token_hex(32))
    env = {**os.environ, **OFFLINE_ENV, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": cluster.token}
    env.pop("RAY_AUTH_TOKEN_PATH", None)
    try:
        port = cluster.address.rsplit(":", 1)[1]
        head = ["--head", "--port", port, "--include-dashboard", "false"]
        cluster.nodes.append(_start_node(root / "head", head, cpus_per_node, env, timeout))
        for i in range(1, nodes):
            joined = ["--address", cluster.address]
            cluster.nodes.append(_start_node(root / f"node{i}", joined, cpus_per_node, env, timeout))
        yield cluster
    finally:
        for node in reversed(cluster.nodes):
            _stop_node(node)
        shutil.rmtree(root, ignore_errors=True)


def _start_node(temp_dir: Path, role: list[str], cpus: int, env: dict[str, str], timeout: float) -> RayNode:
    temp_dir.mkdir(parents=True)
    log = temp_dir.with_suffix(".log")
    ray = Path(sys.executable).with_name("ray")
    first_worker_port = free_port()
    command = [
        str(ray), "start", "--block", *role,
        "--node-ip-address", LOOPBACK,
        "--num-cpus", str(cpus),
        "--temp-dir", str(temp_dir),
        "--disable-usage-stats",
        # Every port this node listens on, free ones: Ray's fixed defaults (52365, ...)
        # would collide between two nodes on one machine and with other Ray users.
        "--node-manager-port", str(free_port()),
        "--object-manager-port", str(free_port()),
        "--dashboard-agent-listen-port", str(free_port()),
        "--dashboard-agent-grpc-port", str(free_port()),
        "--runtime-env-agent-port", str(free_port()),
        "--metrics-export-port", str(free_port()),
        "--min-worker-port", str(first_worker_port),
        "--max-worker-port", str(first_worker_port + _WORKER_PORTS),
    ]  # fmt: skip
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            command, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
    node = RayNode(proc, temp_dir, log)
    deadline = time.monotonic() + timeout
    while _STARTED not in log.read_text(errors="replace"):
        if proc.poll() is not None or time.monotonic() > deadline:
            _stop_node(node)
            tail = "\n".join(log.read_text(errors="replace").splitlines()[-30:])
            raise RuntimeError(f"ray start ({' '.join(role)}) did not come up:\n{tail}")
        time.sleep(0.2)
    return node


def _stop_node(node: RayNode, grace: float = 5.0) -> None:
    """SIGTERM to the node's process group (``ray start --block`` and everything it
    started), SIGKILL to what is left after ``grace`` seconds."""
    group = node.proc.pid  # start_new_session: the group id is the leader's pid
    with contextlib.suppress(ProcessLookupError):
        os.killpg(group, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and _group_alive(group):
        node.proc.poll()  # reap the leader, or its zombie keeps the group alive
        time.sleep(0.2)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(group, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        node.proc.wait(10)


def _group_alive(group: int) -> bool:
    try:
        os.killpg(group, 0)
    except ProcessLookupError:
        return False
    return True
