"""The store contract, run on ``file://`` and on moto's S3 server (``any_store``)."""

from __future__ import annotations

import random
import threading
import time
from pathlib import Path

import pytest

from mlplug.errors import NotFoundError, PreconditionFailedError, StoreError, StoreUnavailableError
from mlplug.storage import Store, open_store
from mlplug.storage.local import LocalStore
from mlplug.storage.s3 import S3Store
from mlplug.testing.servers import S3Server, free_port, moto_s3_server
from tests.concurrency import OPEN_STORE, in_threads, run_together

# -- single writer -----------------------------------------------------------------------


def test_put_get_and_etag(any_store: Store) -> None:
    etag = any_store.put("a/b/obj.bin", b"hello")
    assert any_store.get("a/b/obj.bin") == b"hello"
    assert any_store.get_with_etag("a/b/obj.bin") == (b"hello", etag)
    assert any_store.uri("a/b/obj.bin") == f"{any_store.url}/a/b/obj.bin"


def test_overwrite_replaces_content_and_etag(any_store: Store) -> None:
    first = any_store.put("k", b"one")
    second = any_store.put("k", b"two")
    assert second != first
    assert any_store.get_with_etag("k") == (b"two", second)


def test_create_only_refuses_an_existing_key(any_store: Store) -> None:
    any_store.put("v/1", b"first", if_none_match=True)
    with pytest.raises(PreconditionFailedError, match="v/1"):
        any_store.put("v/1", b"second", if_none_match=True)
    assert any_store.get("v/1") == b"first"


def test_create_only_put_file_refuses_an_existing_key(any_store: Store, tmp_path: Path) -> None:
    src = tmp_path / "src.txt"
    src.write_bytes(b"file")
    any_store.put_file("f", src, if_none_match=True)
    with pytest.raises(PreconditionFailedError):
        any_store.put_file("f", src, if_none_match=True)


def test_compare_and_swap(any_store: Store) -> None:
    first = any_store.put("alias", b"v1")
    second = any_store.put("alias", b"v2", if_match=first)
    assert any_store.get_with_etag("alias") == (b"v2", second)
    with pytest.raises(PreconditionFailedError, match="alias"):
        any_store.put("alias", b"v3", if_match=first)  # stale etag
    assert any_store.get("alias") == b"v2"


def test_compare_and_swap_on_a_missing_key_fails(any_store: Store) -> None:
    etag = any_store.put("gone", b"x")
    any_store.delete("gone")
    with pytest.raises(PreconditionFailedError, match="gone"):
        any_store.put("gone", b"y", if_match=etag)
    assert not any_store.exists("gone")


def test_put_file_get_file_round_trip_of_a_multi_megabyte_file(any_store: Store, tmp_path: Path) -> None:
    data = random.Random(7).randbytes(5 * 1024 * 1024 + 123)
    src = tmp_path / "big.bin"
    src.write_bytes(data)
    etag = any_store.put_file("models/big.bin", src, if_none_match=True)
    dest = any_store.get_file("models/big.bin", tmp_path / "out" / "deep" / "big.bin")
    assert dest == tmp_path / "out" / "deep" / "big.bin"
    assert dest.read_bytes() == data
    assert any_store.get_with_etag("models/big.bin")[1] == etag


def test_list_is_recursive_and_isolated_by_prefix(any_store: Store) -> None:
    keys = ["a/x", "a/b/y", "a/b/c/z", "ab/w", "top"]
    for key in keys:
        any_store.put(key, key.encode())
    assert sorted(any_store.list("a")) == ["a/b/c/z", "a/b/y", "a/x"]
    assert sorted(any_store.list("a/")) == ["a/b/c/z", "a/b/y", "a/x"]
    assert sorted(any_store.list("a/b")) == ["a/b/c/z", "a/b/y"]
    assert sorted(any_store.list("ab")) == ["ab/w"]
    assert sorted(any_store.list("")) == sorted(keys)
    assert list(any_store.list("nothing/here")) == []
    assert list(any_store.list("top")) == []  # a key is not a prefix of itself


def test_list_shows_no_temp_or_lock_objects(any_store: Store) -> None:
    any_store.put("m/1/.claim", b"c", if_none_match=True)
    etag = any_store.put("m/alias.json", b"1", if_none_match=True)
    any_store.put("m/alias.json", b"2", if_match=etag)
    with pytest.raises(PreconditionFailedError):
        any_store.put("m/1/.claim", b"again", if_none_match=True)
    assert sorted(any_store.list("")) == ["m/1/.claim", "m/alias.json"]
    assert any_store.children("") == ["m"]


def test_local_store_hides_leftovers_of_a_crashed_writer(mlplug_store: Store) -> None:
    assert isinstance(mlplug_store, LocalStore)
    mlplug_store.put("d/k", b"v", if_none_match=True)
    (mlplug_store.root / "d" / ".mlplug-tmp-deadbeef").write_bytes(b"half")
    assert list(mlplug_store.list("")) == ["d/k"]
    assert mlplug_store.children("d") == ["k"]
    with pytest.raises(StoreError, match="invalid key"):
        mlplug_store.get("d/.mlplug-tmp-deadbeef")


def test_children(any_store: Store) -> None:
    for key in [
        "t/models/1/metadata.json",
        "t/models/1/model/w.bin",
        "t/models/2/.claim",
        "t/aliases/c.json",
    ]:
        any_store.put(key, b"x")
    assert any_store.children("t") == ["aliases", "models"]
    assert any_store.children("t/models") == ["1", "2"]
    assert any_store.children("t/models/1/") == ["metadata.json", "model"]
    assert any_store.children("") == ["t"]
    assert any_store.children("missing") == []


def test_exists_and_delete(any_store: Store) -> None:
    any_store.put("dir/key", b"x")
    assert any_store.exists("dir/key")
    assert not any_store.exists("dir")  # a prefix is not an object
    assert not any_store.exists("dir/other")
    any_store.delete("dir/key")
    assert not any_store.exists("dir/key")
    any_store.delete("dir/key")  # deleting a missing key is not an error
    assert list(any_store.list("dir")) == []


@pytest.mark.parametrize(
    "read",
    [
        lambda s, tmp: s.get("no/such/key"),
        lambda s, tmp: s.get_with_etag("no/such/key"),
        lambda s, tmp: s.get_file("no/such/key", tmp / "out"),
    ],
    ids=["get", "get_with_etag", "get_file"],
)
def test_missing_key_raises_not_found_naming_the_url(any_store: Store, tmp_path: Path, read) -> None:
    with pytest.raises(NotFoundError) as info:
        read(any_store, tmp_path)
    assert any_store.uri("no/such/key") in str(info.value)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("key", ["..", "../escape", "a/../b", "a/./b", "", "/"])
def test_invalid_keys_are_rejected(any_store: Store, key: str) -> None:
    with pytest.raises(StoreError, match="invalid key"):
        any_store.put(key, b"x")
    with pytest.raises(StoreError, match="invalid key"):
        any_store.get(key)
    with pytest.raises(StoreError, match="invalid key"):
        any_store.exists(key)


def test_list_rejects_a_prefix_that_leaves_the_store(any_store: Store) -> None:
    with pytest.raises(StoreError, match="invalid key"):
        list(any_store.list("../"))


# -- concurrency: threads on both backends -------------------------------------------------


def test_create_only_race_between_threads_has_one_winner(any_store: Store) -> None:
    workers = 8
    for round_ in range(3):
        key = f"race/{round_}"
        results = in_threads(
            workers, lambda i, key=key: any_store.put(key, f"writer {i}".encode(), if_none_match=True)
        )
        winners = [i for i, r in enumerate(results) if isinstance(r, str)]
        losers = [r for r in results if isinstance(r, PreconditionFailedError)]
        assert len(winners) == 1, results
        assert len(losers) == workers - 1, results
        assert any_store.get(key) == f"writer {winners[0]}".encode()


def _increment(store: Store, key: str, times: int) -> int:
    """Read-modify-write ``times`` increments with compare-and-swap; return the conflicts."""
    conflicts = 0
    for _ in range(times):
        while True:
            data, etag = store.get_with_etag(key)
            try:
                store.put(key, str(int(data) + 1).encode(), if_match=etag)
                break
            except PreconditionFailedError:
                conflicts += 1
    return conflicts


def test_compare_and_swap_counter_race_between_threads_loses_no_update(any_store: Store) -> None:
    workers, times = 6, 5
    any_store.put("counter", b"0")
    results = in_threads(workers, lambda i: _increment(any_store, "counter", times))
    assert all(isinstance(r, int) for r in results), results
    assert int(any_store.get("counter")) == workers * times


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
    helper = threading.Thread(target=_increment, args=(mlplug_store, "counter", times))
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
