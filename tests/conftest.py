"""Session defaults: offline switches and a private MLPLUG_HOME, so no test touches ~/.mlplug."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from mlplug.testing.faults import FaultProxy
from mlplug.testing.servers import OFFLINE_ENV


@pytest.fixture(autouse=True, scope="session")
def _isolated_environment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    with pytest.MonkeyPatch.context() as mp:
        for key, value in OFFLINE_ENV.items():
            mp.setenv(key, value)
        home = tmp_path_factory.mktemp("mlplug-home")
        mp.setenv("MLPLUG_HOME", str(home))
        mp.delenv("MLPLUG_STORE", raising=False)
        yield


@pytest.fixture
def s3_fault_proxy(s3_server, monkeypatch: pytest.MonkeyPatch) -> Iterator[FaultProxy]:
    """A fault-injecting proxy in front of moto's S3 server, with moto's credentials in the
    environment; point a store at it with ``MLPLUG_S3_ENDPOINT_URL=proxy.url``."""
    for key, value in s3_server.env.items():
        monkeypatch.setenv(key, value)
    with FaultProxy(s3_server.endpoint_url) as running:
        yield running
