"""Joining an existing Ray cluster: a real two-node cluster with token authentication on
this machine (the ``ray_cluster`` fixture); every way of getting the address or the token
wrong fails at once with one line that says what to set."""

from __future__ import annotations

import os
import time
from pathlib import Path

import psutil
import pytest

from mlplug.errors import RayClusterError
from mlplug.processes import free_port
from mlplug.ray_join import check_cluster
from mlplug.ray_runtime import ray_session
from mlplug.testing.ray_cluster import RayCluster

pytestmark = pytest.mark.slow


@pytest.fixture
def joined(ray_cluster: RayCluster, monkeypatch: pytest.MonkeyPatch) -> RayCluster:
    monkeypatch.delenv("RAY_AUTH_TOKEN_PATH", raising=False)
    for key, value in ray_cluster.env.items():
        monkeypatch.setenv(key, value)
    return ray_cluster


def _fails_fast(address: str, *expected: str) -> str:
    started = time.monotonic()
    with pytest.raises(RayClusterError) as caught:
        check_cluster(address)
    message = str(caught.value)
    assert time.monotonic() - started < 15, "a bad address or token must not wait on Ray's retries"
    assert "\n" not in message, message
    for part in expected:
        assert part in message, message
    return message


def test_the_session_joins_without_cpus_and_sees_both_nodes(joined: RayCluster) -> None:
    # A local Ray first: it leaves its own token cached in this process, which must not be
    # what the cluster is sent.
    with ray_session(address=None, cpus=1) as local:
        assert local.address is None and local.cpus == 1
    with ray_session(address=joined.address, cpus=7) as session:
        import ray

        assert session.cpus == 2  # the cluster's CPUs, not the local count
        alive = [n for n in ray.nodes() if n["Alive"]]
        # This machine joined as a third node, with no CPU for trials, and drives from it.
        assert sorted(n["Resources"].get("CPU", 0) for n in alive) == [0, 1, 1]
        mine = ray.get_runtime_context().get_node_id()
        driver_node = next(n for n in alive if n["NodeID"] == mine)
        assert "CPU" not in driver_node["Resources"]
        scratch = Path(os.environ["MLPLUG_HOME"]).resolve() / "ray"
        assert Path(driver_node["ObjectStoreSocketName"]).resolve().is_relative_to(scratch)
    assert not _processes_naming(f"driver-{os.getpid()}"), "the driver's node is stopped"
    assert joined.node_ids() == {n["NodeID"] for n in alive if n["NodeID"] != mine}


def test_without_a_driver_node_the_session_attaches_to_a_node_of_this_machine(
    joined: RayCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLPLUG_RAY_DRIVER_NODE", "false")
    with ray_session(address=joined.address, cpus=1):
        import ray

        assert len([n for n in ray.nodes() if n["Alive"]]) == 2


def _processes_naming(text: str) -> list[int]:
    found = []
    for proc in psutil.process_iter(["pid", "cmdline"]):
        if any(text in part for part in proc.info["cmdline"] or []):
            found.append(proc.info["pid"])
    return found


def test_a_wrong_token_is_named_with_where_it_came_from(joined: RayCluster, monkeypatch) -> None:
    monkeypatch.setenv("RAY_AUTH_TOKEN", "0" * 64)
    _fails_fast(joined.address, "refused this driver's token", "RAY_AUTH_TOKEN", "ray get-auth-token")


def test_no_token_mode_says_to_set_it(joined: RayCluster, monkeypatch) -> None:
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    _fails_fast(joined.address, "sent no token", "RAY_AUTH_MODE=token", "RAY_AUTH_TOKEN")


def test_an_unreadable_token_file_is_named(joined: RayCluster, monkeypatch, tmp_path: Path) -> None:
    monkeypatch.delenv("RAY_AUTH_TOKEN")
    monkeypatch.setenv("RAY_AUTH_TOKEN_PATH", str(tmp_path / "missing-token"))
    _fails_fast(joined.address, "has no token", "missing-token", "cannot be read", "RAY_AUTH_TOKEN")


def test_no_token_anywhere_is_named(joined: RayCluster, monkeypatch, tmp_path: Path) -> None:
    monkeypatch.delenv("RAY_AUTH_TOKEN")
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.ray/auth_token
    _fails_fast(joined.address, "has no token", ".ray/auth_token", "RAY_AUTH_TOKEN")


def test_an_address_nobody_listens_on_fails_at_once() -> None:
    address = f"127.0.0.1:{free_port()}"
    _fails_fast(address, "cannot reach the Ray cluster", "MLPLUG_RAY_ADDRESS", "ray start --head")


@pytest.mark.parametrize("address", ["ray-head", "ray-head:port", ":6379"])
def test_a_malformed_address_says_what_is_expected(address: str) -> None:
    with pytest.raises(RayClusterError, match="expected host:port"):
        check_cluster(address)


def test_a_ray_client_address_is_refused_with_the_alternative() -> None:
    with pytest.raises(RayClusterError, match="GCS address host:port"):
        check_cluster("ray://ray-head:10001")
