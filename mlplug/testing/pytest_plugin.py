"""pytest fixtures for mlplug and plugin authors (loaded through the ``pytest11`` entry point).

- ``mlplug_plugins``: a fresh plugin manager with only the builtin plugins, installed as
  the process-wide one for the test.
- ``register_plugin``: ``register_plugin(obj, name=None)`` adds a plugin to that manager for
  this test only.
- ``mlplug_store``: a fresh ``file://`` store (``MLPLUG_STORE`` set for the test).
- ``s3_server``: moto's S3 server on 127.0.0.1, one per session.
- ``s3_store``: a fresh bucket on that server, with ``MLPLUG_STORE`` and credentials set.
- ``prefect_server``: ``prefect server start`` on 127.0.0.1 with SQLite, one per session.
- ``prefect_api``: points this test's Prefect client at that server.
- ``ray_cluster``: a real two-node Ray cluster on this machine (1 CPU per node, token
  authentication), one per session; ``ray_cluster.env`` joins it (``MLPLUG_RAY_ADDRESS``,
  ``RAY_AUTH_MODE``, ``RAY_AUTH_TOKEN``).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from mlplug.plugins import Plugins, new_plugins, use_plugins
from mlplug.storage import Store
from mlplug.testing.ray_cluster import RayCluster
from mlplug.testing.ray_cluster import ray_cluster as _ray_cluster
from mlplug.testing.servers import PrefectServer, S3Server, moto_s3_server
from mlplug.testing.servers import prefect_server as _prefect


@pytest.fixture
def mlplug_plugins(monkeypatch: pytest.MonkeyPatch) -> Iterator[Plugins]:
    monkeypatch.delenv("MLPLUG_LOAD_PLUGINS", raising=False)
    monkeypatch.delenv("MLPLUG_DISABLE_PLUGINS", raising=False)
    plugins = new_plugins(load_entry_points=False)
    with use_plugins(plugins):
        yield plugins


@pytest.fixture
def register_plugin(mlplug_plugins: Plugins) -> Iterator[Callable[..., str]]:
    added: list[str] = []

    def register(plugin: object, name: str | None = None) -> str:
        registered = mlplug_plugins.add(plugin, name)
        if registered is None:
            reason = mlplug_plugins.skipped[-1].reason if mlplug_plugins.skipped else "rejected"
            raise ValueError(f"plugin {name or plugin!r} was not registered: {reason}")
        added.append(registered)
        return registered

    try:
        yield register
    finally:
        for name in reversed(added):
            if mlplug_plugins.pm.has_plugin(name):
                mlplug_plugins.remove(name)


@pytest.fixture
def mlplug_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Store:
    from mlplug.runtime import open_store

    url = (tmp_path / "store").as_uri()
    monkeypatch.setenv("MLPLUG_STORE", url)
    monkeypatch.setenv("MLPLUG_HOME", str(tmp_path / "home"))
    return open_store(url)


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    with moto_s3_server(tmp_path_factory.mktemp("moto")) as server:
        yield server


@pytest.fixture
def s3_store(s3_server: S3Server, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Store:
    from mlplug.runtime import open_store

    for key, value in s3_server.env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("MLPLUG_HOME", str(tmp_path / "home"))
    bucket = s3_server.create_bucket(f"mlplug-{uuid.uuid4().hex[:12]}")
    url = f"s3://{bucket}/store"
    monkeypatch.setenv("MLPLUG_STORE", url)
    return open_store(url)


@pytest.fixture(params=["file", "s3"])
def any_store(request: pytest.FixtureRequest) -> Store:
    """Runs a test once on a ``file://`` store and once on moto's S3 server."""
    return request.getfixturevalue("mlplug_store" if request.param == "file" else "s3_store")


@pytest.fixture(scope="session")
def prefect_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrefectServer]:
    with _prefect(tmp_path_factory.mktemp("prefect")) as server:
        yield server
        # Send buffered run logs while the server is still up, not at interpreter exit.
        from prefect.logging.handlers import APILogWorker

        APILogWorker.drain_all(timeout=5)


@pytest.fixture
def prefect_api(prefect_server: PrefectServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[PrefectServer]:
    from prefect.settings import PREFECT_API_URL, PREFECT_HOME, temporary_settings

    for key, value in prefect_server.env.items():
        monkeypatch.setenv(key, value)
    with temporary_settings({PREFECT_API_URL: prefect_server.api_url, PREFECT_HOME: prefect_server.home}):
        yield prefect_server


@pytest.fixture(scope="session")
def ray_cluster() -> Iterator[RayCluster]:
    with _ray_cluster(nodes=2, cpus_per_node=1) as cluster:
        yield cluster
