"""One fraud store and one server per session; tests that move the alias or stop a server
start their own (see test_hot_reload.py and test_shutdown.py)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from mlplug.testing.servers import RunningServer, mlplug_server
from tests.serving.support import FraudStore, build_fraud_store, server_env

#: Small limits so that the limit tests stay cheap.
MAX_BODY_BYTES = 65_536
MAX_BATCH = 100
MAX_EXPLAIN_ROWS = 5


@pytest.fixture(scope="session")
def fraud_store(tmp_path_factory: pytest.TempPathFactory) -> FraudStore:
    return build_fraud_store(tmp_path_factory.mktemp("fraud-store") / "store")


@pytest.fixture
def private_store(fraud_store: FraudStore, tmp_path: Path) -> FraudStore:
    """A copy of the session store that a test may change (promote, add versions)."""
    path = tmp_path / "store"
    shutil.copytree(fraud_store.path, path)
    return FraudStore(path.as_uri(), path, fraud_store.catboost, fraud_store.baseline)


@pytest.fixture(scope="session")
def server(fraud_store: FraudStore, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    state = tmp_path_factory.mktemp("server")
    env = server_env(
        fraud_store,
        state / "home",
        MLPLUG_MAX_BODY_BYTES=str(MAX_BODY_BYTES),
        MLPLUG_MAX_BATCH=str(MAX_BATCH),
        MLPLUG_MAX_EXPLAIN_ROWS=str(MAX_EXPLAIN_ROWS),
        MLPLUG_RELOAD_INTERVAL="0",
    )
    with mlplug_server("fraud", state, env=env) as running:
        yield running
