"""The store contract, run on ``file://`` and on moto's S3 server (``any_store``)."""

from __future__ import annotations

import random
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from mlplug.errors import NotFoundError, PreconditionFailedError, StoreError
from mlplug.storage import Store
from mlplug.storage.local import LocalStore
from tests.processes import OPEN_STORE, run_together


def race(workers: int, work: Callable[[int], Any]) -> list[Any]:
    """Run ``work(i)`` in threads that start together; results (or exceptions) in order."""
    barrier = threading.Barrier(workers)
    results: list[Any] = [None] * workers

    def run(i: int) -> None:
        barrier.wait()
        try:
            results[i] = work(i)
        except Exception as exc:
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return results


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
    for key in ["t/models/1/metadata.json", "t/models/1/model/w.bin", "t/models/2/.claim", "t/aliases/c.json"]:
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
        results = race(workers, lambda i, key=key: any_store.put(key, f"writer {i}".encode(), if_none_match=True))
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
    results = race(workers, lambda i: _increment(any_store, "counter", times))
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
