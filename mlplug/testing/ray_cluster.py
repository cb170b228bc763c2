"""A real multi-node Ray cluster on this machine, for tests and benchmarks of tuning on an
existing cluster (``MLPLUG_RAY_ADDRESS``).

Each node is a ``ray start --block`` process in its own session (:mod:`mlplug.ray_node`),
with its own temp directory and free ports, so parallel runs and other Ray users on the
machine are not touched, and token authentication as Ray 2.60 starts clusters:
``RAY_AUTH_MODE=token`` and a fresh ``RAY_AUTH_TOKEN`` for every node and for the driver
(:attr:`RayCluster.env`). Ray gives the nodes this machine's address even when told
127.0.0.1. Stopping signals each node's process group only, never ``ray stop``.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from mlplug.processes import LOOPBACK, OFFLINE_ENV, free_port
from mlplug.ray_node import RayNode, start_node


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
def ray_cluster(
    nodes: int = 2, cpus_per_node: int = 1, timeout: float = 90, node_env: dict[str, str] | None = None
) -> Iterator[RayCluster]:
    """A head node and ``nodes - 1`` worker nodes, each with ``cpus_per_node`` CPUs and its
    own temp directory; everything started here is stopped and removed on exit. ``node_env``
    adds to the nodes' environment (their Ray workers inherit it), e.g. a ``PYTHONPATH``."""
    # Short: Ray's socket paths under the temp dir must fit in 107 bytes.
    root = Path(tempfile.mkdtemp(prefix="mlr-", dir="/tmp"))
    cluster = RayCluster(address=f"{LOOPBACK}:{free_port()}", token=secrets.token_hex(32))
    env = {**os.environ, **OFFLINE_ENV, **(node_env or {})}
    env.update(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=cluster.token)
    env.pop("RAY_AUTH_TOKEN_PATH", None)
    try:
        port = cluster.address.rsplit(":", 1)[1]
        head = ["--head", "--port", port, "--include-dashboard", "false"]
        roles = [head] + [["--address", cluster.address]] * (nodes - 1)
        for i, role in enumerate(roles):
            node = start_node(
                root / f"node{i}", role, cpus=cpus_per_node, env=env, node_ip=LOOPBACK, timeout=timeout
            )
            cluster.nodes.append(node)
        yield cluster
    finally:
        for node in reversed(cluster.nodes):
            node.stop()
        shutil.rmtree(root, ignore_errors=True)
