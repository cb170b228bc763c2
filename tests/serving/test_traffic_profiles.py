"""Traffic profiles: the builtin ``profiles`` observer in a real server, and the
``ProfileWriter`` it feeds (flush triggers, versions, store failures, concurrency)."""

from __future__ import annotations

import collections
import logging
import signal
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import pytest

import mlplug
from mlplug.errors import SettingsError
from mlplug.monitoring.features import PREDICTION, SCORE
from mlplug.monitoring.profiles import ProfileWriter, list_profiles, read_merged
from mlplug.monitoring.whylogs_compat import CategoricalSketch, NumericSketch, Profile
from mlplug.plugins import Plugins
from mlplug.registry import Registry
from mlplug.runtime import open_store
from mlplug.serving.app import create_app
from mlplug.serving.config import ServeSettings
from mlplug.serving.observe import TrafficBatch, TrafficTap
from mlplug.settings import get_settings
from mlplug.storage import Store
from mlplug.testing.servers import app_in_thread, mlplug_server
from tests.serving.support import AUTH, FraudStore, fraud_records, register_toy, server_env
from tests.toy_task import ToyTask

TOY = ToyTask("toy")


def toy_batch(values: list[float], version: int = 1, rate: float = 0.25) -> dict:
    """``ProfileWriter.add`` arguments for toy rows, labelled as a 0.5 threshold would."""
    proba = np.tile([1 - rate, rate], (len(values), 1))
    return {
        "version": version,
        "features": ("x",),
        "rows": [[v] for v in values],
        "proba": proba,
        "predictions": ["yes" if rate >= 0.5 else "no"] * len(values),
    }


def toy_writer(store: Store, **options: float) -> ProfileWriter:
    return ProfileWriter(store, TOY, TOY.schema, 0.5, **{"flush_seconds": 3600.0, **options})  # type: ignore[arg-type]


def profiled_rows(
    store: Store, task: str, version: int, exclude: frozenset[str] = frozenset()
) -> tuple[int, int]:
    """Rows in the merged profiles of ``version`` (those not in ``exclude``), and how many."""
    keys = [r.key for r in list_profiles(store, task, version) if r.key not in exclude]
    merged = read_merged(store, keys)
    return (merged.rows() if merged else 0), len(keys)


# -- ProfileWriter --------------------------------------------------------------------


def test_a_writer_flushes_when_max_rows_wait(mlplug_store: Store) -> None:
    writer = toy_writer(mlplug_store, max_rows=10)
    writer.add(**toy_batch([0.0] * 6))
    assert list(writer.written) == []
    writer.add(**toy_batch([1.0] * 6))
    assert len(writer.written) == 1
    assert profiled_rows(mlplug_store, "toy", 1) == (12, 1)
    writer.flush_if_due()  # not due for an hour, and nothing waits
    assert writer.flush() == []  # an empty buffer writes nothing


def test_rows_are_profiled_in_chunks_and_the_flush_adds_the_rest(mlplug_store: Store) -> None:
    writer = toy_writer(mlplug_store, chunk_rows=4)
    writer.add(**toy_batch([1.0, 2.0, 3.0]))
    writer.add(**toy_batch([4.0, 5.0]))  # 5 waiting: one chunk of 5 is profiled, none wait
    buffer = writer._buffers[1]
    assert buffer.tracked == 5 and buffer.rows == []
    writer.add(**toy_batch([6.0]))
    assert buffer.tracked == 5 and len(buffer.rows) == 1  # raw rows stay few
    writer.flush()
    merged = read_merged(mlplug_store, list(writer.written))
    assert merged.rows() == 6
    x = merged.sketch("x", "numeric")
    assert isinstance(x, NumericSketch) and x.mean == pytest.approx(3.5)


def test_rows_that_cannot_be_profiled_are_left_out_not_raised(mlplug_store: Store, caplog) -> None:
    writer = toy_writer(mlplug_store, chunk_rows=2)
    bad = toy_batch([1.0, 2.0])
    bad["features"] = ("not_x",)  # a schema change the writer does not know: x is missing
    with caplog.at_level(logging.ERROR):
        writer.add(**bad)
    assert "could not profile 2 rows of traffic" in caplog.text
    writer.add(**toy_batch([3.0, 4.0], version=2))
    writer.flush()
    assert profiled_rows(mlplug_store, "toy", 2) == (2, 1) and profiled_rows(mlplug_store, "toy", 1) == (0, 0)


def test_a_version_with_other_columns_is_profiled_with_its_own_schema(mlplug_store: Store, caplog) -> None:
    from mlplug.schema import Column, Role, Schema

    columns = (Column("x", Role.NUMERIC), Column("z", Role.NUMERIC))
    wider = Schema(features=columns, target="y", classes=("no", "yes"))
    looked_up: list[int] = []

    def schema_of(version: int) -> Schema:
        looked_up.append(version)
        if version == 3:
            raise OSError("store unreachable")
        return TOY.schema if version == 1 else wider

    writer = ProfileWriter(mlplug_store, TOY, TOY.schema, 0.5, flush_seconds=3600.0, schema_of=schema_of)
    writer.add(**toy_batch([1.0]))
    batch = toy_batch([2.0, 3.0], version=2)
    batch["features"], batch["rows"] = ("x", "z"), [[2.0, 20.0], [3.0, 30.0]]
    writer.add(**batch)
    writer.add(**batch)  # the schema is looked up once per version
    with caplog.at_level(logging.ERROR):
        writer.add(**toy_batch([4.0], version=3))  # falls back to the first schema
    writer.flush()
    assert looked_up == [1, 2, 3]
    assert "schema of version 3 not found" in caplog.text
    v2 = read_merged(mlplug_store, [r.key for r in list_profiles(mlplug_store, "toy", 2)])
    assert v2.rows() == 4 and v2.sketch("z", "numeric").mean == pytest.approx(25.0)
    assert profiled_rows(mlplug_store, "toy", 3) == (1, 1)


def test_a_writer_writes_one_profile_per_version(mlplug_store: Store) -> None:
    writer = toy_writer(mlplug_store)
    writer.add(**toy_batch([0.5, 1.5, 2.5], version=1))
    writer.add(**toy_batch([3.0] * 5, version=2, rate=0.75))
    writer.add(**toy_batch([4.0], version=1))
    keys = writer.flush()
    assert sorted(k.split("/")[2] for k in keys) == ["1", "2"]
    assert profiled_rows(mlplug_store, "toy", 1) == (4, 1)
    assert profiled_rows(mlplug_store, "toy", 2) == (5, 1)
    v2 = read_merged(mlplug_store, [list_profiles(mlplug_store, "toy", 2)[0].key])
    assert v2 is not None
    labels = v2.sketch(PREDICTION, "categorical")
    assert isinstance(labels, CategoricalSketch) and labels.counts == {"yes": 5.0}
    x = v2.sketch("x", "numeric")
    assert isinstance(x, NumericSketch) and x.quantiles([0.5]) == [3.0]


class FailingStore:
    """A store whose writes fail, as an unreachable S3 does."""

    def __init__(self, inner: Store) -> None:
        self.inner = inner
        self.attempts = 0

    def put(self, key: str, data: bytes, **kwargs: object) -> str:
        self.attempts += 1
        raise OSError("store unreachable")

    def __getattr__(self, name: str) -> object:
        return getattr(self.inner, name)


def test_a_failing_store_is_logged_and_never_raised(mlplug_store: Store, caplog) -> None:
    store = FailingStore(mlplug_store)
    writer = toy_writer(store, max_rows=3)  # type: ignore[arg-type]
    with caplog.at_level(logging.ERROR, logger="mlplug.monitoring.profiles"):
        writer.add(**toy_batch([1.0, 2.0, 3.0]))  # the flush that max_rows triggers fails
        writer.add(**toy_batch([4.0]))
        assert writer.flush() == []
    assert store.attempts == 2
    assert caplog.text.count("could not write a traffic profile") == 2
    assert "store unreachable" in caplog.text
    assert list(mlplug_store.list("toy/profiles/")) == []


def test_concurrent_adds_and_flushes_lose_no_rows(mlplug_store: Store) -> None:
    writer = toy_writer(mlplug_store)
    Profile.empty()  # import whylogs first, or the first flush outlasts all the adds
    batches, per_batch = 400, 5
    adding = threading.Event()
    adding.set()

    def add() -> None:
        try:
            for i in range(batches):
                writer.add(**toy_batch([float(i)] * per_batch))
                if i % 100 == 99:  # make sure flushes land while adds are still to come
                    seen, deadline = flushes, time.monotonic() + 10
                    while flushes == seen and time.monotonic() < deadline:
                        time.sleep(0.001)
        finally:
            adding.clear()

    flushes = 0

    def flush() -> None:
        nonlocal flushes
        while adding.is_set():
            writer.flush()
            flushes += 1

    threads = [threading.Thread(target=add), threading.Thread(target=flush)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    writer.flush()
    rows, profiles = profiled_rows(mlplug_store, "toy", 1)
    assert rows == batches * per_batch
    assert profiles > 1 and flushes > 1  # the flushes really interleaved with the adds
    assert profiles == len(writer.written)


# -- the builtin observer, in this process ----------------------------------------------


class Toys:
    @mlplug.hookimpl
    def register_tasks(self, register):  # type: ignore[no-untyped-def]
        register(ToyTask("toy"))


@pytest.fixture
def toy_store(register_plugin, mlplug_store: Store) -> Registry:
    register_plugin(Toys(), "toys")
    registry = Registry(mlplug_store)
    registry.promote("toy", register_toy(registry, rate=0.25).version)
    return registry


def _serve_toy(values: list[float]) -> None:
    app = create_app(ServeSettings(task="toy", insecure=True, reload_interval=0))
    with app_in_thread(app) as url, httpx.Client() as client:
        for value in values:
            assert client.post(f"{url}/predict", json={"x": value}).status_code == 200


def test_the_profiles_observer_is_a_builtin(mlplug_plugins: Plugins) -> None:
    observers = mlplug_plugins.traffic_observers()
    assert observers["profiles"].plugin == "mlplug.builtin.traffic_profiles"


def test_a_server_writes_the_traffic_it_answered_at_shutdown(toy_store: Registry, monkeypatch) -> None:
    # 25 requests within a fraction of a second are a burst above the default rate (20 rows/s),
    # which the sampler thins: profile every row where the test counts them.
    monkeypatch.setenv("MLPLUG_PROFILE_RATE", "0")
    _serve_toy([float(i) for i in range(25)])
    assert profiled_rows(toy_store.store, "toy", 1) == (25, 1)


def test_monitoring_off_writes_no_profiles(toy_store: Registry, monkeypatch) -> None:
    monkeypatch.setenv("MLPLUG_MONITORING", "false")
    _serve_toy([float(i) for i in range(25)])
    assert list(toy_store.store.list("toy/profiles/")) == []


def sampling_tap(observer: object) -> TrafficTap:
    """A tap in front of one observer, drained by :func:`drain` (no thread: deterministic)."""
    from mlplug.serving.metrics import ServingMetrics

    return TrafficTap({"profiles": observer}, ServingMetrics("toy"))  # type: ignore[dict-item]


def drain(tap: TrafficTap) -> None:
    """What the tap's thread does each interval: hand over queued batches and skipped rows."""
    tap._stop.set()
    tap._drain()
    tap._stop.clear()


def offer(tap: TrafficTap, value: float) -> None:
    batch = TrafficBatch(task="toy", **toy_batch([value]), received_at=0.0, latency_seconds=0.0)
    tap.offer(batch.version, len(batch.rows), lambda: batch)


def test_a_sample_of_requests_is_profiled(mlplug_store: Store) -> None:
    from mlplug.builtin.traffic_profiles import ProfileObserver
    from mlplug.monitoring.sampling import AdaptiveSampler

    observer = ProfileObserver(toy_writer(mlplug_store), sampler=AdaptiveSampler(0, 0.25, seed=3))
    tap = sampling_tap(observer)
    for i in range(2000):
        offer(tap, float(i % 7))
    assert 400 < len(tap._buffer) < 600  # only admitted requests are queued
    drain(tap)
    observer.close()
    rows, _ = profiled_rows(mlplug_store, "toy", 1)
    assert 400 < rows < 600  # 500 expected; binomial sd 19


def test_each_profile_records_the_rows_its_sample_was_drawn_from(mlplug_store: Store) -> None:
    from mlplug.builtin.traffic_profiles import ProfileObserver
    from mlplug.monitoring.sampling import AdaptiveSampler

    clock = [0.0]
    sampler = AdaptiveSampler(100, seed=5, clock=lambda: clock[0])
    observer = ProfileObserver(toy_writer(mlplug_store), sampler=sampler)
    tap = sampling_tap(observer)
    for i in range(3000):  # 1,000 one-row requests a second for 3 s, above the 100 rows/s
        clock[0] = i / 1000
        offer(tap, float(i))
        if i in (1499, 2999):
            drain(tap)
            observer.writer.flush()  # two profiles, each with its own counts
    observer.close()
    keys = [r.key for r in list_profiles(mlplug_store, "toy", 1)]
    profiles = [Profile.from_bytes(mlplug_store.get(k)) for k in keys]
    assert len(profiles) == 2 and [p.seen_rows() for p in profiles] == [1500, 1500]
    kept = sum(p.rows() for p in profiles)
    assert 100 + 200 < kept < 100 + 400  # the first 100 rows in full, then about 100 a second
    merged = read_merged(mlplug_store, keys)
    assert merged.seen_rows() == 3000 and merged.rows() == kept


class _EveryThird:
    """Takes one request in three: asked once per kept request, it leaves out the next two."""

    def __init__(self) -> None:
        self.asked: list[tuple[int, int]] = []
        self.batches: list[TrafficBatch] = []
        self.skips: collections.Counter[int] = collections.Counter()

    def admit(self, rows: int, passed: int) -> tuple[bool, int]:
        self.asked.append((rows, passed))
        return True, 2

    def skipped(self, version: int, rows: int) -> None:
        self.skips[version] += rows

    def observe(self, batch: TrafficBatch) -> None:
        self.batches.append(batch)

    def close(self) -> None:
        pass


def test_the_tap_asks_a_sampling_observer_only_when_its_gap_is_over() -> None:
    observer = _EveryThird()
    tap = sampling_tap(observer)
    for i in range(9):  # requests of 1, 2, 3, ... rows; versions 1 and 2 alternate
        batch = TrafficBatch(
            task="toy", **toy_batch([0.0] * (i + 1), version=1 + i % 2), received_at=0.0, latency_seconds=0.0
        )
        tap.offer(batch.version, len(batch.rows), lambda batch=batch: batch)
    drain(tap)
    # Asked about requests 1, 4 and 7, each time with the rows left out since the last question.
    assert observer.asked == [(1, 0), (4, 2 + 3), (7, 5 + 6)]
    assert [len(b.rows) for b in observer.batches] == [1, 4, 7]
    # Left out: requests 2, 3, 5, 6, 8, 9 with their rows, per version that answered them.
    assert observer.skips == {2: 2 + 6 + 8, 1: 3 + 5 + 9}


class _Broken(_EveryThird):
    def admit(self, rows: int, passed: int) -> tuple[bool, int]:
        raise RuntimeError("bug in a sampling observer")


def test_an_admit_that_raises_leaves_the_request_out_and_is_counted(caplog) -> None:
    observer = _Broken()
    tap = sampling_tap(observer)
    for value in (1.0, 2.0):
        batch = TrafficBatch(task="toy", **toy_batch([value]), received_at=0.0, latency_seconds=0.0)
        assert tap.admit(batch.version, len(batch.rows)) == ()
    drain(tap)
    assert observer.batches == [] and observer.skips == {1: 2}
    assert tap._metrics.observer_errors.labels("profiles")._value.get() == 2
    assert "failed" in caplog.text


def test_the_sample_share_is_validated(monkeypatch) -> None:
    monkeypatch.setenv("MLPLUG_PROFILE_SAMPLE", "0")
    with pytest.raises(SettingsError, match="MLPLUG_PROFILE_SAMPLE"):
        get_settings()


def test_the_profile_rate_is_validated(monkeypatch) -> None:
    assert get_settings().profile_rate == 20.0
    monkeypatch.setenv("MLPLUG_PROFILE_RATE", "-5")
    with pytest.raises(SettingsError, match="MLPLUG_PROFILE_RATE"):
        get_settings()


def test_the_timer_flushes_when_traffic_stops(mlplug_store: Store) -> None:
    from mlplug.builtin.traffic_profiles import ProfileObserver

    observer = ProfileObserver(toy_writer(mlplug_store, flush_seconds=0.2))
    batch = TrafficBatch(task="toy", **toy_batch([1.0, 2.0]), received_at=time.time(), latency_seconds=0.0)
    observer.observe(batch)
    deadline = time.monotonic() + 20
    while not observer.writer.written and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(observer.writer.written) == 1  # written by the timer, before close
    observer.observe(batch)
    observer.close()
    assert profiled_rows(mlplug_store, "toy", 1) == (4, 2)
    assert observer._timer is not None and not observer._timer.is_alive()


def _wakeups(thread: threading.Thread) -> int:
    """Context switches of ``thread`` so far: a thread blocked without a timeout makes none."""
    status = Path(f"/proc/self/task/{thread.native_id}/status").read_text()
    return sum(int(line.split()[1]) for line in status.splitlines() if "ctxt_switches" in line)


def _idle_wakeups(thread: threading.Thread, seconds: float) -> int:
    time.sleep(0.3)  # let it finish what it was doing and fall asleep
    before = _wakeups(thread)
    time.sleep(seconds)
    return _wakeups(thread) - before


needs_proc = pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="needs Linux /proc")


class _Recorder:
    def __init__(self) -> None:
        self.batches: list[TrafficBatch] = []

    def observe(self, batch: TrafficBatch) -> None:
        self.batches.append(batch)

    def close(self) -> None:
        pass


@needs_proc
def test_the_observer_thread_sleeps_while_no_traffic_comes() -> None:
    from mlplug.serving.metrics import ServingMetrics

    recorder = _Recorder()
    tap = TrafficTap({"recorder": recorder}, ServingMetrics("toy"), interval=0.01)
    tap.start()
    try:
        thread = tap._thread
        assert thread is not None
        assert _idle_wakeups(thread, 0.5) == 0  # polling every 10 ms would wake it ~50 times
        for value in (1.0, 2.0):
            batch = TrafficBatch(task="toy", **toy_batch([value]), received_at=0.0, latency_seconds=0.0)
            tap.offer(batch.version, 1, lambda batch=batch: batch)
        deadline = time.monotonic() + 10
        while len(recorder.batches) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert [b.rows for b in recorder.batches] == [[[1.0]], [[2.0]]]  # a request wakes it
        assert _idle_wakeups(thread, 0.5) == 0  # and it sleeps again once traffic stops
    finally:
        tap.close()


@needs_proc
def test_the_flush_timer_sleeps_once_the_window_is_written(mlplug_store: Store) -> None:
    from mlplug.builtin.traffic_profiles import ProfileObserver

    observer = ProfileObserver(toy_writer(mlplug_store, flush_seconds=0.2))
    observer.observe(TrafficBatch(task="toy", **toy_batch([1.0]), received_at=0.0, latency_seconds=0.0))
    deadline = time.monotonic() + 20
    while not observer.writer.written and time.monotonic() < deadline:
        time.sleep(0.05)
    try:
        assert observer._timer is not None and len(observer.writer.written) == 1
        assert _idle_wakeups(observer._timer, 1.5) == 0  # a 1 s tick would wake it
    finally:
        observer.close()
    assert len(observer.writer.written) == 1  # nothing was left to write at close


def test_the_flush_interval_must_be_positive(monkeypatch) -> None:
    monkeypatch.setenv("MLPLUG_PROFILE_FLUSH_SECONDS", "0")
    with pytest.raises(SettingsError, match="MLPLUG_PROFILE_FLUSH_SECONDS"):
        get_settings()
    monkeypatch.setenv("MLPLUG_PROFILE_FLUSH_SECONDS", "0.5")
    assert get_settings().profile_flush_seconds == 0.5


# -- mlplug serve, a real process ----------------------------------------------------------


def test_mlplug_serve_profiles_every_row_it_answers(private_store: FraudStore, tmp_path: Path) -> None:
    store = open_store(private_store.url)
    version = private_store.catboost.version
    # The copy may hold profiles the session server wrote; only this server's count.
    before = frozenset(r.key for r in list_profiles(store, "fraud", version))
    # Light traffic (below MLPLUG_PROFILE_RATE): every row is profiled, none sampled out.
    env = server_env(
        private_store, tmp_path / "home", MLPLUG_PROFILE_FLUSH_SECONDS="0.5", MLPLUG_PROFILE_RATE="100000"
    )
    labels: collections.Counter[str] = collections.Counter()
    with (
        mlplug_server("fraud", tmp_path, env=env) as server,
        httpx.Client(headers=AUTH, timeout=30) as client,
    ):

        def send(records: list[dict]) -> None:
            answer = client.post(f"{server.url}/predict", json={"records": records})
            assert answer.status_code == 200, answer.text
            labels.update(p["prediction"] for p in answer.json()["predictions"])

        for seed in range(3):
            send(fraud_records(100, seed=seed))
        single = client.post(f"{server.url}/predict", json=fraud_records(1, seed=9)[0])
        assert single.status_code == 200, single.text
        labels[single.json()["prediction"]] += 1
        # Traffic stops: the timer writes the buffered rows while the server still runs.
        deadline = time.monotonic() + 30
        while profiled_rows(store, "fraud", version, before)[0] < 301 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert profiled_rows(store, "fraud", version, before)[0] == 301
        send(fraud_records(50, seed=7))
        server.proc.send_signal(signal.SIGTERM)
        assert server.proc.wait(timeout=60) == 0
        log = server.log.read_text()

    rows, profiles = profiled_rows(store, "fraud", version, before)
    assert rows == 351 and profiles >= 2  # the rest was written at shutdown
    keys = [r.key for r in list_profiles(store, "fraud", version) if r.key not in before]
    merged = read_merged(store, keys)
    assert merged is not None
    features = [c["name"] for c in private_store.catboost.schema["features"]]
    assert set(features) | {PREDICTION, SCORE} <= set(merged.columns)
    predicted = merged.sketch(PREDICTION, "categorical")
    assert isinstance(predicted, CategoricalSketch) and predicted.counts == dict(labels)
    score = merged.sketch(SCORE, "numeric")
    assert isinstance(score, NumericSketch) and score.rows == 351 and score.missing == 0
    assert merged.seen_rows() == 351
    assert "wrote traffic profile" in log and "Traceback" not in log
