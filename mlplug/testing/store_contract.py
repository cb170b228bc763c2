"""The store contract as a test suite that any store backend can run: the guarantees the
registry relies on (atomic objects, create-only and compare-and-swap writes, listing,
errors that name the URL), including races between threads.

In a backend's tests::

    import pytest
    from mlplug.testing.store_contract import StoreContract

    class TestMyStore(StoreContract):
        @pytest.fixture
        def store(self, tmp_path):
            return MyStore(...)  # an empty store for each test

mlplug's own ``file://`` and ``s3://`` backends run it (``tests/storage``).
"""

from __future__ import annotations

import random
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from mlplug.errors import NotFoundError, PreconditionFailedError, StoreError
from mlplug.storage.base import Store


def in_threads(workers: int, work: Callable[[int], Any]) -> list[Any]:
    """Run ``work(i)`` in threads released together; results or exceptions, in order."""
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


def increment(store: Store, key: str, times: int) -> int:
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


class StoreContract:
    """The contract's tests; subclass it and provide a ``store`` fixture (an empty store)."""

    @pytest.fixture
    def store(self) -> Store:
        raise NotImplementedError("provide a `store` fixture returning an empty store of your backend")

    def test_put_get_and_etag(self, store: Store) -> None:
        etag = store.put("a/b/obj.bin", b"hello")
        assert store.get("a/b/obj.bin") == b"hello"
        assert store.get_with_etag("a/b/obj.bin") == (b"hello", etag)
        assert store.uri("a/b/obj.bin") == f"{store.url}/a/b/obj.bin"

    def test_overwrite_replaces_content_and_etag(self, store: Store) -> None:
        first = store.put("k", b"one")
        second = store.put("k", b"two")
        assert second != first
        assert store.get_with_etag("k") == (b"two", second)

    def test_create_only_refuses_an_existing_key(self, store: Store) -> None:
        store.put("v/1", b"first", if_none_match=True)
        with pytest.raises(PreconditionFailedError, match="v/1"):
            store.put("v/1", b"second", if_none_match=True)
        assert store.get("v/1") == b"first"

    def test_create_only_put_file_refuses_an_existing_key(self, store: Store, tmp_path: Path) -> None:
        src = tmp_path / "src.txt"
        src.write_bytes(b"file")
        store.put_file("f", src, if_none_match=True)
        with pytest.raises(PreconditionFailedError):
            store.put_file("f", src, if_none_match=True)

    def test_compare_and_swap(self, store: Store) -> None:
        first = store.put("alias", b"v1")
        second = store.put("alias", b"v2", if_match=first)
        assert store.get_with_etag("alias") == (b"v2", second)
        with pytest.raises(PreconditionFailedError, match="alias"):
            store.put("alias", b"v3", if_match=first)  # stale etag
        assert store.get("alias") == b"v2"

    def test_compare_and_swap_on_a_missing_key_fails(self, store: Store) -> None:
        etag = store.put("gone", b"x")
        store.delete("gone")
        with pytest.raises(PreconditionFailedError, match="gone"):
            store.put("gone", b"y", if_match=etag)
        assert not store.exists("gone")

    def test_put_file_get_file_round_trip_of_a_multi_megabyte_file(
        self, store: Store, tmp_path: Path
    ) -> None:
        data = random.Random(7).randbytes(5 * 1024 * 1024 + 123)
        src = tmp_path / "big.bin"
        src.write_bytes(data)
        etag = store.put_file("models/big.bin", src, if_none_match=True)
        dest = store.get_file("models/big.bin", tmp_path / "out" / "deep" / "big.bin")
        assert dest == tmp_path / "out" / "deep" / "big.bin"
        assert dest.read_bytes() == data
        assert store.get_with_etag("models/big.bin")[1] == etag

    def test_list_is_recursive_and_isolated_by_prefix(self, store: Store) -> None:
        keys = ["a/x", "a/b/y", "a/b/c/z", "ab/w", "top"]
        for key in keys:
            store.put(key, key.encode())
        assert sorted(store.list("a")) == ["a/b/c/z", "a/b/y", "a/x"]
        assert sorted(store.list("a/")) == ["a/b/c/z", "a/b/y", "a/x"]
        assert sorted(store.list("a/b")) == ["a/b/c/z", "a/b/y"]
        assert sorted(store.list("ab")) == ["ab/w"]
        assert sorted(store.list("")) == sorted(keys)
        assert list(store.list("nothing/here")) == []
        assert list(store.list("top")) == []  # a key is not a prefix of itself

    def test_list_shows_no_temp_or_lock_objects(self, store: Store) -> None:
        store.put("m/1/.claim", b"c", if_none_match=True)
        etag = store.put("m/alias.json", b"1", if_none_match=True)
        store.put("m/alias.json", b"2", if_match=etag)
        with pytest.raises(PreconditionFailedError):
            store.put("m/1/.claim", b"again", if_none_match=True)
        assert sorted(store.list("")) == ["m/1/.claim", "m/alias.json"]
        assert store.children("") == ["m"]

    def test_children(self, store: Store) -> None:
        for key in [
            "t/models/1/metadata.json",
            "t/models/1/model/w.bin",
            "t/models/2/.claim",
            "t/aliases/c.json",
        ]:
            store.put(key, b"x")
        assert store.children("t") == ["aliases", "models"]
        assert store.children("t/models") == ["1", "2"]
        assert store.children("t/models/1/") == ["metadata.json", "model"]
        assert store.children("") == ["t"]
        assert store.children("missing") == []

    def test_exists_and_delete(self, store: Store) -> None:
        store.put("dir/key", b"x")
        assert store.exists("dir/key")
        assert not store.exists("dir")  # a prefix is not an object
        assert not store.exists("dir/other")
        store.delete("dir/key")
        assert not store.exists("dir/key")
        store.delete("dir/key")  # deleting a missing key is not an error
        assert list(store.list("dir")) == []

    @pytest.mark.parametrize(
        "read",
        [
            lambda s, tmp: s.get("no/such/key"),
            lambda s, tmp: s.get_with_etag("no/such/key"),
            lambda s, tmp: s.get_file("no/such/key", tmp / "out"),
        ],
        ids=["get", "get_with_etag", "get_file"],
    )
    def test_missing_key_raises_not_found_naming_the_url(self, store: Store, tmp_path: Path, read) -> None:
        with pytest.raises(NotFoundError) as info:
            read(store, tmp_path)
        assert store.uri("no/such/key") in str(info.value)
        assert not (tmp_path / "out").exists()

    @pytest.mark.parametrize("key", ["..", "../escape", "a/../b", "a/./b", "", "/"])
    def test_invalid_keys_are_rejected(self, store: Store, key: str) -> None:
        with pytest.raises(StoreError, match="invalid key"):
            store.put(key, b"x")
        with pytest.raises(StoreError, match="invalid key"):
            store.get(key)
        with pytest.raises(StoreError, match="invalid key"):
            store.exists(key)

    def test_list_rejects_a_prefix_that_leaves_the_store(self, store: Store) -> None:
        with pytest.raises(StoreError, match="invalid key"):
            list(store.list("../"))

    # -- concurrency: threads on both backends -------------------------------------------------

    def test_create_only_race_between_threads_has_one_winner(self, store: Store) -> None:
        workers = 8
        for round_ in range(3):
            key = f"race/{round_}"
            results = in_threads(
                workers, lambda i, key=key: store.put(key, f"writer {i}".encode(), if_none_match=True)
            )
            winners = [i for i, r in enumerate(results) if isinstance(r, str)]
            losers = [r for r in results if isinstance(r, PreconditionFailedError)]
            assert len(winners) == 1, results
            assert len(losers) == workers - 1, results
            assert store.get(key) == f"writer {winners[0]}".encode()

    def test_compare_and_swap_counter_race_between_threads_loses_no_update(self, store: Store) -> None:
        workers, times = 6, 5
        store.put("counter", b"0")
        results = in_threads(workers, lambda i: increment(store, "counter", times))
        assert all(isinstance(r, int) for r in results), results
        assert int(store.get("counter")) == workers * times
