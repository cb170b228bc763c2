"""The fault proxy does what its docstring promises, against moto's real S3 server."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError, ConnectionClosedError, ReadTimeoutError, ResponseStreamingError
from urllib3.exceptions import ProtocolError

from mlplug.testing.faults import Fault, FaultProxy
from mlplug.testing.servers import S3Server


@pytest.fixture
def proxy(s3_server: S3Server) -> Iterator[FaultProxy]:
    with FaultProxy(s3_server.endpoint_url) as running:
        yield running


def _client(s3_server: S3Server, url: str, read_timeout: float = 10):  # type: ignore[no-untyped-def]
    return boto3.client(
        "s3",
        endpoint_url=url,
        region_name=s3_server.env["AWS_DEFAULT_REGION"],
        aws_access_key_id=s3_server.env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=s3_server.env["AWS_SECRET_ACCESS_KEY"],
        # One attempt: the test sees each fault instead of botocore's retry hiding it.
        config=Config(
            retries={"total_max_attempts": 1, "mode": "standard"},
            read_timeout=read_timeout,
            connect_timeout=2,
        ),
    )


@pytest.fixture
def bucket(s3_server: S3Server) -> str:
    return s3_server.create_bucket(f"faults-{uuid.uuid4().hex[:10]}")


def test_passes_requests_through_unchanged(s3_server: S3Server, proxy: FaultProxy, bucket: str) -> None:
    client = _client(s3_server, proxy.url)
    big = b"x" * (2 << 20)  # large enough for botocore's Expect: 100-continue
    client.put_object(Bucket=bucket, Key="big", Body=big)
    client.put_object(Bucket=bucket, Key="small", Body=b"hello")
    assert client.get_object(Bucket=bucket, Key="big")["Body"].read() == big
    assert client.head_object(Bucket=bucket, Key="small")["ContentLength"] == 5
    assert [(r.method, r.fault) for r in proxy.seen] == [
        ("PUT", None),
        ("PUT", None),
        ("GET", None),
        ("HEAD", None),
    ]


def test_lost_response_means_the_server_did_the_write(
    s3_server: S3Server, proxy: FaultProxy, bucket: str
) -> None:
    fault = proxy.inject(Fault("lose_response", method="PUT", path_contains="/lost"))
    with pytest.raises((ConnectionClosedError, ProtocolError)):
        _client(s3_server, proxy.url).put_object(Bucket=bucket, Key="lost", Body=b"written")
    assert fault.hits == 1
    direct = _client(s3_server, s3_server.endpoint_url)
    assert direct.get_object(Bucket=bucket, Key="lost")["Body"].read() == b"written"


def test_dropped_request_never_reaches_the_server(
    s3_server: S3Server, proxy: FaultProxy, bucket: str
) -> None:
    proxy.inject(Fault("drop_request", method="PUT"))
    with pytest.raises((ConnectionClosedError, ProtocolError)):
        _client(s3_server, proxy.url).put_object(Bucket=bucket, Key="dropped", Body=b"never")
    with pytest.raises(ClientError):
        _client(s3_server, s3_server.endpoint_url).head_object(Bucket=bucket, Key="dropped")


def test_reset_mid_body_breaks_the_download(s3_server: S3Server, proxy: FaultProxy, bucket: str) -> None:
    client = _client(s3_server, proxy.url)
    client.put_object(Bucket=bucket, Key="model.bin", Body=b"y" * 100_000)
    proxy.inject(Fault("reset_mid_body", method="GET", path_contains="model.bin"))
    with pytest.raises((ResponseStreamingError, ProtocolError, ConnectionClosedError)):
        client.get_object(Bucket=bucket, Key="model.bin")["Body"].read()
    # Only the next matching request is hurt.
    assert len(client.get_object(Bucket=bucket, Key="model.bin")["Body"].read()) == 100_000


def test_blackhole_accepts_and_never_answers(s3_server: S3Server, proxy: FaultProxy, bucket: str) -> None:
    proxy.blackhole = True
    with pytest.raises(ReadTimeoutError):
        _client(s3_server, proxy.url, read_timeout=0.5).head_bucket(Bucket=bucket)
