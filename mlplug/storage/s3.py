"""``s3://bucket/prefix`` store on S3 or an S3-compatible server.

Create-only writes use ``IfNoneMatch="*"`` and compare-and-swap uses ``IfMatch=<etag>``,
so the same guarantees hold across machines without a lock service. Transient errors
(throttling, 5xx, dropped connections) are retried by botocore's ``standard`` mode with
exponential backoff, within a time budget (:class:`RetryBudget`); a store that stays
unreachable raises ``StoreUnavailableError`` naming the URL, the endpoint and the settings
that set how long to wait.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.client import HTTPException
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from mlplug.errors import NotFoundError, PreconditionFailedError, StoreError, StoreUnavailableError
from mlplug.settings import Settings
from mlplug.storage.base import Store

_PRECONDITION_CODES = {"PreconditionFailed", "412", "ConditionalRequestConflict", "409"}
_NOT_FOUND_CODES = {"NoSuchKey", "404", "NotFound"}


class S3Store(Store):
    def __init__(self, bucket: str, prefix: str, client: Any, endpoint: str | None = None) -> None:
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.client = client
        self.endpoint = endpoint
        self.url = f"s3://{bucket}/{self.prefix}" if self.prefix else f"s3://{bucket}"

    def _key(self, key: str) -> str:
        key = key.strip("/")
        if not key or any(p in (".", "..") for p in key.split("/")):
            raise StoreError(f"store {self.url}: invalid key {key!r}")
        return f"{self.prefix}/{key}" if self.prefix else key

    def _call(self, key: str, method: str, **kwargs: Any) -> Any:
        """One S3 call with errors translated into the store's error types."""
        from botocore.exceptions import BotoCoreError, ClientError, HTTPClientError
        from botocore.exceptions import ConnectionError as EndpointError

        started = time.monotonic()
        try:
            return getattr(self.client, method)(**kwargs)
        except ClientError as exc:
            err = exc.response.get("Error", {})
            code = str(err.get("Code", ""))
            status = str(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", ""))
            # NoSuchBucket is a 404 too; it must not read as "this key does not exist".
            if code == "NoSuchBucket":
                raise StoreError(f"store {self.url}: bucket {self.bucket!r} does not exist") from None
            if "IfMatch" in kwargs and (code in _NOT_FOUND_CODES or status == "404"):
                # If-Match on a key that is gone: the same lost condition as on file://.
                raise PreconditionFailedError(f"{self.uri(key)} no longer exists") from None
            if code in _NOT_FOUND_CODES or status == "404":
                raise NotFoundError(f"{self.uri(key)} does not exist") from None
            if code in _PRECONDITION_CODES or status in ("412", "409"):
                raise PreconditionFailedError(f"{self.uri(key)}: conditional write lost ({code})") from None
            raise StoreError(
                f"store {self.url}: {method} {key!r} failed: {code} {err.get('Message', '')}"
            ) from exc
        except (EndpointError, HTTPClientError) as exc:  # refused, reset or timed out
            where = f" at {self.endpoint}" if self.endpoint else ""
            raise StoreUnavailableError(
                f"store {self.url}{where} is unreachable: gave up after {time.monotonic() - started:.0f} s "
                f"({exc}); MLPLUG_S3_CONNECT_TIMEOUT, MLPLUG_S3_READ_TIMEOUT and "
                "MLPLUG_S3_RETRY_SECONDS set how long to wait"
            ) from exc
        except BotoCoreError as exc:  # e.g. no credentials: retrying would not help
            raise StoreError(f"store {self.url}: {method} {key!r} failed: {exc}") from exc

    def get(self, key: str) -> bytes:
        return self.get_with_etag(key)[0]

    def get_with_etag(self, key: str) -> tuple[bytes, str]:
        started = time.monotonic()
        resp = self._call(key, "get_object", Bucket=self.bucket, Key=self._key(key))
        with self._reading_body(key, started):
            return resp["Body"].read(), resp["ETag"]

    @contextmanager
    def _reading_body(self, key: str, started: float) -> Iterator[None]:
        """Translate a connection that breaks while an answer's body is read.

        botocore's retries end when the call returns its response; the body is read after
        that, so a reset, a short body or a stalled read there surfaces as botocore's or
        urllib3's own exception (``ResponseStreamingError``, ``IncompleteReadError``,
        ``ReadTimeoutError``, ``ProtocolError``). It is the same transient failure as a reset
        during the call, so it becomes the same :class:`StoreUnavailableError` that the
        flows' retry policy retries.
        """
        from botocore.exceptions import HTTPClientError, IncompleteReadError
        from urllib3.exceptions import HTTPError as URLLib3Error

        try:
            yield
        except (HTTPClientError, IncompleteReadError, URLLib3Error, HTTPException, ConnectionError) as exc:
            where = f" at {self.endpoint}" if self.endpoint else ""
            raise StoreUnavailableError(
                f"store {self.url}{where}: the connection broke while reading {self.uri(key)} after "
                f"{time.monotonic() - started:.0f} s ({type(exc).__name__}: {exc})"
            ) from exc

    def put(self, key: str, data: bytes, *, if_none_match: bool = False, if_match: str | None = None) -> str:
        return self._put(key, data, if_none_match=if_none_match, if_match=if_match)

    def put_file(self, key: str, path: Path, *, if_none_match: bool = False) -> str:
        # A single PUT (up to 5 GB) keeps the create-only condition atomic; model
        # artifacts are far below that.
        with open(path, "rb") as body:
            return self._put(key, body, if_none_match=if_none_match, if_match=None)

    def _put(self, key: str, body: Any, *, if_none_match: bool, if_match: str | None) -> str:
        kwargs: dict[str, Any] = {"Bucket": self.bucket, "Key": self._key(key), "Body": body}
        if if_none_match:
            kwargs["IfNoneMatch"] = "*"
        if if_match:
            kwargs["IfMatch"] = if_match
        return self._call(key, "put_object", **kwargs)["ETag"]

    def get_file(self, key: str, dest: Path) -> Path:
        started = time.monotonic()
        resp = self._call(key, "get_object", Bucket=self.bucket, Key=self._key(key))
        dest.parent.mkdir(parents=True, exist_ok=True)
        try:
            with open(dest, "wb") as out, self._reading_body(key, started):
                for chunk in resp["Body"].iter_chunks(1 << 20):
                    out.write(chunk)
        except BaseException:
            dest.unlink(missing_ok=True)  # never leave a partial file where a whole one belongs
            raise
        return dest

    def exists(self, key: str) -> bool:
        try:
            self._call(key, "head_object", Bucket=self.bucket, Key=self._key(key))
        except NotFoundError:
            return False
        return True

    def list(self, prefix: str) -> Iterator[str]:
        full = self._key(prefix) if prefix.strip("/") else self.prefix
        full = f"{full}/" if full else ""
        strip = len(self.prefix) + 1 if self.prefix else 0
        token: str | None = None
        while True:
            kwargs: dict[str, Any] = {"Bucket": self.bucket, "Prefix": full}
            if token:
                kwargs["ContinuationToken"] = token
            page = self._call(prefix, "list_objects_v2", **kwargs)
            for obj in page.get("Contents", []):
                yield obj["Key"][strip:]
            if not page.get("IsTruncated"):
                return
            token = page["NextContinuationToken"]

    def delete(self, key: str) -> None:
        self._call(key, "delete_object", Bucket=self.bucket, Key=self._key(key))

    def link(self, key: str, expires_seconds: int) -> str:
        """A presigned HTTPS GET of ``key``, valid ``expires_seconds`` (signing is local: no
        request is made, so the object need not exist yet)."""
        return self.client.generate_presigned_url(
            "get_object", Params={"Bucket": self.bucket, "Key": self._key(key)}, ExpiresIn=expires_seconds
        )


class RetryBudget:
    """Caps the time one S3 call spends in botocore's retries: a retry is refused when it
    could end after ``seconds`` from the call's start, counting its backoff (botocore's
    standard mode waits at most ``min(2 ** (attempt - 1), 20)`` s) and a full attempt
    (connect and read timeouts). botocore itself only counts attempts."""

    _STARTED = "mlplug_started"

    def __init__(self, seconds: float, attempt_seconds: float) -> None:
        self.seconds = seconds
        self.attempt_seconds = attempt_seconds

    def install(self, client: Any) -> None:
        events = client.meta.events
        events.register("before-call.s3", self._start)
        # First: a refusal (False) must win over the retry handler's delay.
        events.register_first("needs-retry.s3", self._allow)

    def _start(self, context: dict[str, Any], **_: Any) -> None:
        context[self._STARTED] = time.monotonic()

    def _allow(self, attempts: int, request_dict: dict[str, Any], **_: Any) -> bool | None:
        started = request_dict.get("context", {}).get(self._STARTED)
        if started is None:
            return None
        backoff = min(2.0 ** (attempts - 1), 20.0)
        if time.monotonic() - started + backoff + self.attempt_seconds > self.seconds:
            return False  # no retry: the caller gets the last error now
        return None  # botocore's own retry policy decides


def make_s3_client(settings: Settings) -> Any:
    """A boto3 S3 client: credentials from a prefect-aws block or the default chain;
    timeouts and retries from the ``s3_*`` settings."""
    import boto3
    from botocore.config import Config

    # botocore's "max_attempts" counts retries after the first try; the setting counts tries.
    config = Config(
        retries={"total_max_attempts": settings.s3_max_attempts, "mode": "standard"},
        connect_timeout=settings.s3_connect_timeout,
        read_timeout=settings.s3_read_timeout,
        # Presigned report links: SigV4, which every region accepts (boto3 may sign v2).
        signature_version="s3v4",
    )
    if settings.aws_credentials_block:
        from prefect_aws import AwsCredentials

        session = AwsCredentials.load(settings.aws_credentials_block).get_boto3_session()
    else:
        session = boto3.session.Session()
    client = session.client("s3", endpoint_url=settings.s3_endpoint_url or None, config=config)
    attempt = settings.s3_connect_timeout + settings.s3_read_timeout
    RetryBudget(settings.s3_retry_seconds, attempt).install(client)
    return client


def open_s3(url: str, settings: Settings) -> S3Store:
    parsed = urlparse(url)
    if not parsed.netloc:
        raise StoreError(f"store URL {url!r}: expected s3://bucket[/prefix]")
    return S3Store(parsed.netloc, parsed.path, make_s3_client(settings), settings.s3_endpoint_url)
