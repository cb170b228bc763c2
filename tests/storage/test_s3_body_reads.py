"""A connection that breaks while an S3 answer's body is being read (after botocore's call has
returned, so outside its retries): moto's server behind a fault proxy that sends the status,
the headers and half the body, then resets or closes the connection. Every body read must
fail with the store's transient error (retried by the flow's retry policy), naming the key,
never with botocore's or urllib3's own exception."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

import pytest

from mlplug.errors import StoreUnavailableError
from mlplug.flowrun import _retry_when_transient
from mlplug.settings import Settings
from mlplug.storage.base import Store
from mlplug.storage.s3 import open_s3
from mlplug.testing.faults import Fault, FaultProxy
from mlplug.testing.servers import S3Server

KEY = "toy/models/1/model/weights.bin"
#: Larger than one read chunk, so the break comes while reading, not with the headers.
BODY = bytes(range(256)) * 4096


@pytest.fixture
def store(s3_fault_proxy: FaultProxy, s3_server: S3Server) -> Store:
    bucket = s3_server.create_bucket(f"body-{uuid.uuid4().hex[:10]}")
    settings = Settings(s3_endpoint_url=s3_fault_proxy.url, s3_max_attempts=2, s3_retry_seconds=30)
    store = open_s3(f"s3://{bucket}/store", settings)
    store.put(KEY, BODY)
    return store


READS: dict[str, Callable[[Store, Path], object]] = {
    "get": lambda store, tmp: store.get(KEY),
    "get_with_etag": lambda store, tmp: store.get_with_etag(KEY),
    "get_file": lambda store, tmp: store.get_file(KEY, tmp / "weights.bin"),
}


@pytest.mark.parametrize("kind", ["reset_mid_body", "truncate_body"])
@pytest.mark.parametrize("read", READS)
def test_a_connection_broken_mid_body_is_a_transient_store_error(
    s3_fault_proxy: FaultProxy, store: Store, tmp_path: Path, read: str, kind: str
) -> None:
    fault = s3_fault_proxy.inject(Fault(kind, method="GET", path_contains="weights.bin"))  # type: ignore[arg-type]
    with pytest.raises(StoreUnavailableError) as caught:
        READS[read](store, tmp_path)
    assert fault.hits == 1
    message = str(caught.value)
    assert store.uri(KEY) in message and "while reading" in message
    # The flow's register and promote steps retry this error (Prefect task retries).
    assert _retry_when_transient(None, None, SimpleNamespace(data=caught.value))
    assert not (tmp_path / "weights.bin").exists()  # no partial file left for a cache to trust
    # The next read, on a healthy connection, gets the whole object.
    assert store.get(KEY) == BODY
