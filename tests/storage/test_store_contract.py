"""The store contract (:mod:`mlplug.testing.store_contract`) run on ``file://`` and on moto's
S3 server, and what is particular to each backend."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from mlplug.errors import NotFoundError, StoreError, StoreUnavailableError
from mlplug.runtime import open_store
from mlplug.storage import Store
from mlplug.storage.local import LocalStore
from mlplug.storage.s3 import S3Store
from mlplug.testing.servers import S3Server, free_port, moto_s3_server
from mlplug.testing.store_contract import StoreContract, increment
from tests.concurrency import OPEN_STORE, run_together


class TestFileStore(StoreContract):
    @pytest.fixture
    def store(self, mlplug_store: Store) -> Store:
        return mlplug_store


class TestS3Store(StoreContract):
    @pytest.fixture
    def store(self, s3_store: Store) -> Store:
        return s3_store


def test_local_store_hides_leftovers_of_a_crashed_writer(mlplug_store: Store) -> None:
    assert isinstance(mlplug_store, LocalStore)
    mlplug_store.put("d/k", b"v", if_none_match=True)
    (mlplug_store.root / "d" / ".mlplug-tmp-deadbeef").write_bytes(b"half")
    assert list(mlplug_store.list("")) == ["d/k"]
    assert mlplug_store.children("d") == ["k"]
    with pytest.raises(StoreError, match="invalid key"):
        mlplug_store.get("d/.mlplug-tmp-deadbeef")


# -- concurrency: processes on file:// ----------------------------------------------------

CREATE_ONLY_CHILD = (
    OPEN_STORE
    + """
from mlplug.errors import PreconditionFailedError
wait_for_go()
try:
    store.put("race/key", sys.argv[2].encode(), if_none_match=True)
    print("won")
except PreconditionFailedError:
    print("lost")
"""
)


def test_create_only_race_between_processes_has_one_winner(mlplug_store: Store, tmp_path: Path) -> None:
    names = [f"proc-{i}" for i in range(4)]
    results = run_together(CREATE_ONLY_CHILD, [[mlplug_store.url, n] for n in names], tmp_path / "sync")
    assert [r.returncode for r in results] == [0] * len(names), [r.stderr for r in results]
    outcomes = [r.stdout.strip() for r in results]
    assert sorted(outcomes) == ["lost"] * (len(names) - 1) + ["won"]
    assert mlplug_store.get("race/key").decode() == names[outcomes.index("won")]


INCREMENT_CHILD = (
    OPEN_STORE
    + """
from mlplug.errors import PreconditionFailedError
wait_for_go()
for _ in range(int(sys.argv[2])):
    while True:
        data, etag = store.get_with_etag("counter")
        try:
            store.put("counter", str(int(data) + 1).encode(), if_match=etag)
            break
        except PreconditionFailedError:
            pass
"""
)


def test_compare_and_swap_counter_race_between_processes_and_threads(
    mlplug_store: Store, tmp_path: Path
) -> None:
    mlplug_store.put("counter", b"0")
    procs, times = 3, 10
    helper = threading.Thread(target=increment, args=(mlplug_store, "counter", times))
    helper.start()  # the test process competes too
    results = run_together(INCREMENT_CHILD, [[mlplug_store.url, str(times)]] * procs, tmp_path / "sync")
    helper.join(timeout=60)
    assert [r.returncode for r in results] == [0] * procs, [r.stderr for r in results]
    assert int(mlplug_store.get("counter")) == (procs + 1) * times


# -- S3: retries and an unreachable endpoint ----------------------------------------------


def _s3_store_at(endpoint: str, attempts: int, monkeypatch: pytest.MonkeyPatch) -> tuple[S3Store, list[str]]:
    """An ``s3://`` store on ``endpoint`` and the list its HTTP attempts are appended to."""
    for key, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "MLPLUG_S3_ENDPOINT_URL": endpoint,
        "MLPLUG_S3_MAX_ATTEMPTS": str(attempts),
    }.items():
        monkeypatch.setenv(key, value)
    store = open_store("s3://late-bucket/team/store")
    assert isinstance(store, S3Store)
    sent: list[str] = []
    store.client.meta.events.register("before-send.s3", lambda request, **_: sent.append(request.url))
    return store, sent


@pytest.mark.usefixtures("mlplug_plugins")
def test_unreachable_s3_store_fails_fast_naming_url_and_endpoint(monkeypatch: pytest.MonkeyPatch) -> None:
    endpoint = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    store, sent = _s3_store_at(endpoint, 2, monkeypatch)
    started = time.monotonic()
    with pytest.raises(StoreUnavailableError) as info:
        store.get("models/1/metadata.json")
    assert time.monotonic() - started < 5
    assert "s3://late-bucket/team/store" in str(info.value)
    assert endpoint in str(info.value)
    assert len(sent) == 2  # MLPLUG_S3_MAX_ATTEMPTS counts attempts, not retries
    with pytest.raises(StoreUnavailableError):
        list(store.list("models"))


def test_missing_bucket_is_named_not_mistaken_for_a_missing_key(s3_store: Store) -> None:
    # s3_store puts the moto endpoint and credentials in the environment.
    store = open_store("s3://no-such-bucket-here/store")
    for call in (lambda: store.get("k"), lambda: list(store.list("")), lambda: store.put("k", b"x")):
        with pytest.raises(StoreError, match="bucket 'no-such-bucket-here' does not exist") as info:
            call()
        assert not isinstance(info.value, NotFoundError)


@pytest.mark.usefixtures("mlplug_plugins")
def test_missing_credentials_are_not_reported_as_an_outage(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(key, raising=False)
    for key, value in {
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none"),
        "AWS_CONFIG_FILE": str(tmp_path / "none"),
        "AWS_EC2_METADATA_DISABLED": "true",  # no metadata-service lookups
        "AWS_DEFAULT_REGION": "us-east-1",
        "MLPLUG_S3_ENDPOINT_URL": f"http://127.0.0.1:{free_port()}",
    }.items():
        monkeypatch.setenv(key, value)
    store = open_store("s3://some-bucket/store")
    with pytest.raises(StoreError, match="credentials") as info:
        store.get("k")
    assert not isinstance(info.value, StoreUnavailableError)


@pytest.mark.usefixtures("mlplug_plugins")
def test_s3_call_survives_a_server_that_comes_up_late(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    port = free_port()
    store, sent = _s3_store_at(f"http://127.0.0.1:{port}", 10, monkeypatch)
    servers: list[S3Server] = []
    stop = threading.Event()

    def start_late() -> None:
        time.sleep(1.0)
        with moto_s3_server(tmp_path / "late-moto", port=port) as server:
            servers.append(server)
            stop.wait(60)

    starter = threading.Thread(target=start_late)
    started = time.monotonic()
    starter.start()
    try:
        # head_object answers 404 for a bucket that does not exist yet: a real answer.
        assert store.exists("models/1/metadata.json") is False
        assert time.monotonic() - started >= 1.0
        assert servers, "the call returned before the server was up"
        assert len(sent) >= 2  # the first attempt was refused and retried
        servers[0].create_bucket("late-bucket")
        etag = store.put("models/1/metadata.json", b"{}", if_none_match=True)
        assert store.get_with_etag("models/1/metadata.json") == (b"{}", etag)
    finally:
        stop.set()
        starter.join(timeout=30)


@pytest.mark.parametrize("url", ["file:relative", "file:relative/dir", "file://host/dir"])
def test_a_file_store_url_without_an_absolute_path_is_refused(
    url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(StoreError, match=r"a file store needs an absolute path, as in file:///absolute/path"):
        open_store(url)
    assert list(tmp_path.iterdir()) == []  # nothing created in the current directory
