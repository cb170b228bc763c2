"""Adaptive batching over real HTTP: concurrent requests are scored in shared model calls,
each answered with its own rows (equal to the unbatched server's answers), a malformed record
fails alone, /metrics shows the batch sizes, and each answer's Server-Timing header says how
long it waited for its model call and how long that call took."""

from __future__ import annotations

import asyncio
import re
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from prometheus_client import CollectorRegistry

from mlplug.loadtest import parse_server_timing
from mlplug.serving.batching import DEFAULT_BATCHING, AdaptiveBatcher, batching_policy
from mlplug.serving.config import get_serve_settings
from mlplug.task import AdaptiveBatching
from mlplug.testing.servers import RunningServer, mlplug_server
from tests.serving.support import AUTH, FraudStore, fraud_records, server_env

#: Long enough that requests sent together always meet in one batch on a loaded machine.
MAX_WAIT_MS = 300


@pytest.fixture(scope="module")
def batched(fraud_store: FraudStore, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """The fraud champion with batching switched on (fraud declares none: it has a row fast path)."""
    state = tmp_path_factory.mktemp("batched")
    env = server_env(
        fraud_store,
        state / "home",
        MLPLUG_BATCHING="on",
        MLPLUG_BATCH_MAX_ROWS="64",
        MLPLUG_BATCH_MAX_WAIT_MS=str(MAX_WAIT_MS),
        MLPLUG_RELOAD_INTERVAL="0",
    )
    with mlplug_server("fraud", state, env=env) as running:
        yield running


async def _post_all(url: str, bodies: Sequence[Any]) -> list[httpx.Response]:
    async with httpx.AsyncClient(headers=AUTH, timeout=60) as client:
        return await asyncio.gather(*(client.post(f"{url}/predict", json=body) for body in bodies))


def _batch_stats(server: RunningServer) -> tuple[float, float]:
    """(model calls, rows) the batcher has made so far, from /metrics."""
    text = httpx.get(f"{server.url}/metrics", timeout=30).text
    count = re.search(r"^mlplug_batch_rows_count (\S+)$", text, re.M)
    total = re.search(r"^mlplug_batch_rows_sum (\S+)$", text, re.M)
    assert count and total, "no mlplug_batch_rows histogram in /metrics"
    return float(count.group(1)), float(total.group(1))


def test_batched_answers_equal_unbatched_row_for_row(batched: RunningServer, server: RunningServer) -> None:
    records = fraud_records(40, seed=21)
    calls_before, rows_before = _batch_stats(batched)
    answers = asyncio.run(_post_all(batched.url, records))
    calls, rows = _batch_stats(batched)
    assert [a.status_code for a in answers] == [200] * 40
    assert rows - rows_before == 40
    assert calls - calls_before < 40, "concurrent requests were not batched"

    # The session server has no batching (the default for fraud): one request at a time.
    assert "mlplug_batch_rows" not in httpx.get(f"{server.url}/metrics", timeout=30).text
    for record, answer in zip(records, answers, strict=True):
        alone = httpx.post(f"{server.url}/predict", json=record, headers=AUTH, timeout=30).json()
        got = answer.json()
        assert got["prediction"] == alone["prediction"]
        assert got["probability"] == pytest.approx(alone["probability"], abs=1e-9)
        assert got["model_version"] == alone["model_version"]


def test_a_malformed_record_fails_alone(batched: RunningServer, server: RunningServer) -> None:
    records = fraud_records(12, seed=22)
    bodies: list[Any] = [*records[:6], {**records[6], "hour": "late"}, *records[7:]]
    _, rows_before = _batch_stats(batched)
    answers = asyncio.run(_post_all(batched.url, bodies))
    assert [a.status_code for a in answers] == [200] * 6 + [422] + [200] * 5
    detail = answers[6].json()
    assert "hour" in str(detail), detail
    _, rows = _batch_stats(batched)
    assert rows - rows_before == 11  # the malformed record never reached the model
    for record, answer in zip(records[:6] + records[7:], answers[:6] + answers[7:], strict=True):
        alone = httpx.post(f"{server.url}/predict", json=record, headers=AUTH, timeout=30).json()
        assert answer.json()["probability"] == pytest.approx(alone["probability"], abs=1e-9)


class _Poisoned:
    """A predictor whose model raises on any call that holds the row ``[-1.0]``."""

    calls: list[int]

    def __init__(self) -> None:
        self.calls = []

    def proba(self, rows: Sequence[Sequence[float]]) -> np.ndarray:
        self.calls.append(len(rows))
        if any(row[0] == -1.0 for row in rows):
            raise ValueError("the model cannot score -1")
        return np.array([[1 - row[0], row[0]] for row in rows])


def test_a_record_that_breaks_the_model_fails_only_its_request() -> None:
    batcher = AdaptiveBatcher(AdaptiveBatching(max_rows=16, max_wait_ms=200), CollectorRegistry())
    predictor = _Poisoned()

    async def run() -> list[Any]:
        rows = [[[0.1]], [[0.2], [0.3]], [[-1.0]], [[0.4]]]
        return await asyncio.gather(*(batcher.proba(predictor, r) for r in rows), return_exceptions=True)  # type: ignore[arg-type]

    try:
        first, second, poisoned, last = asyncio.run(run())
    finally:
        batcher.close()
    assert predictor.calls[0] == 5  # one call for all four requests, then each alone
    assert predictor.calls[1:] == [1, 2, 1, 1]
    assert isinstance(poisoned, ValueError)
    assert np.allclose(first, [[0.9, 0.1]]) and np.allclose(second, [[0.8, 0.2], [0.7, 0.3]])
    assert np.allclose(last, [[0.6, 0.4]])


def test_batches_hold_at_most_max_rows_and_one_request_is_never_split() -> None:
    batcher = AdaptiveBatcher(AdaptiveBatching(max_rows=4, max_wait_ms=200), CollectorRegistry())
    predictor = _Poisoned()

    async def run() -> list[np.ndarray]:
        sizes = [1, 3, 2, 2, 1]
        return await asyncio.gather(*(batcher.proba(predictor, [[0.5]] * n) for n in sizes))  # type: ignore[arg-type]

    try:
        answers = asyncio.run(run())
    finally:
        batcher.close()
    assert [len(a) for a in answers] == [1, 3, 2, 2, 1]
    assert predictor.calls == [4, 4, 1]
    assert batcher.takes(3) and not batcher.takes(4)  # a request that fills a batch goes alone


class _Held(_Poisoned):
    """A predictor whose first call waits until ``release`` is set (a batch still computing)."""

    def __init__(self) -> None:
        super().__init__()
        self.started = threading.Event()
        self.release = threading.Event()

    def proba(self, rows: Sequence[Sequence[float]]) -> np.ndarray:
        if not self.calls:
            self.started.set()
            self.release.wait(30)
        return super().proba(rows)


def test_a_batch_goes_once_the_clients_of_the_last_one_are_back() -> None:
    """Four clients that send again once answered: after the first batch, each batch goes as
    soon as all are back, without waiting out ``max_wait``; a fifth client whose request
    arrived while the first batch computed waits for them instead of going alone (all four
    would then wait behind it) or standing in for one of them (which would then wait a whole
    batch)."""
    batcher = AdaptiveBatcher(AdaptiveBatching(max_rows=8, max_wait_ms=60_000), CollectorRegistry())
    predictor = _Held()

    async def client(first: list[list[float]]) -> list[np.ndarray]:
        answers = [await batcher.proba(predictor, first)]  # type: ignore[arg-type]
        for _ in range(2):
            answers.append(await batcher.proba(predictor, [[0.5]]))  # type: ignore[arg-type]
        return answers

    async def late_client() -> list[np.ndarray]:
        while not predictor.started.is_set():  # until the first batch computes
            await asyncio.sleep(0.001)
        first = asyncio.ensure_future(batcher.proba(predictor, [[0.25]]))  # type: ignore[arg-type]
        await asyncio.sleep(0.01)  # queued while the first batch still computes
        predictor.release.set()
        return [await first, await batcher.proba(predictor, [[0.25]])]  # type: ignore[arg-type]

    async def run() -> list[Any]:
        # Two rows each: the first batch fills max_rows and goes; the max_wait of a minute
        # would fail the test by its timeout if any later batch waited for it.
        clients = [client([[0.5], [0.5]]) for _ in range(4)]
        return await asyncio.wait_for(asyncio.gather(*clients, late_client()), 30)

    try:
        *answers, late = asyncio.run(run())
    finally:
        batcher.close()
    # The late request joined the clients' second batch (not a batch of its own), and all
    # five came back for the third.
    assert predictor.calls == [8, 5, 5]
    assert all(np.allclose(a, [[0.75, 0.25]]) for a in late)
    assert [len(a) for a in answers[0]] == [2, 1, 1] and len(answers) == 4


def _server_timing(answer: httpx.Response) -> dict[str, float]:
    """The answer's queue and model milliseconds, checked against the client's own latency."""
    assert answer.status_code == 200, answer.text
    timing = parse_server_timing(answer.headers["server-timing"])
    assert set(timing) == {"queue", "model"}, answer.headers["server-timing"]
    assert timing["queue"] >= 0 and timing["model"] > 0
    # Both happen while the client waits for the answer.
    assert timing["queue"] + timing["model"] <= answer.elapsed.total_seconds() * 1000
    return timing


def test_answers_say_how_long_they_queued_and_their_model_call_took(
    batched: RunningServer, server: RunningServer
) -> None:
    records = fraud_records(24, seed=23)
    calls_before, _ = _batch_stats(batched)
    timings = [_server_timing(a) for a in asyncio.run(_post_all(batched.url, records))]
    calls, _ = _batch_stats(batched)
    # Requests answered by one batch report that batch's call: as many distinct model
    # durations as calls at most.
    assert len({t["model"] for t in timings}) <= calls - calls_before < len(records)

    # Unbatched: a fast model's row is scored on the event loop as soon as it is parsed; a
    # large batch (more rows than a batch holds, or than the loop scores inline) on a pool
    # thread, and its queue is the wait for that thread.
    alone = httpx.post(f"{server.url}/predict", json=records[0], headers=AUTH, timeout=30)
    assert _server_timing(alone)["queue"] == 0
    big = {"records": fraud_records(80, seed=24)}
    for url in (server.url, batched.url):
        _server_timing(httpx.post(f"{url}/predict", json=big, headers=AUTH, timeout=30))

    # Errors are not timed.
    bad = httpx.post(f"{batched.url}/predict", json={**records[0], "hour": "late"}, headers=AUTH, timeout=30)
    assert bad.status_code == 422 and "server-timing" not in bad.headers


def test_which_servers_batch(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from mlplug_convqa import ConvQATask
    from mlplug_fraud import FraudTask

    def policy(**settings: object) -> AdaptiveBatching | None:
        return batching_policy(get_serve_settings(**settings), task)

    task: Any = ConvQATask()  # declares batching: on by default
    assert policy() == ConvQATask.adaptive_batching is not None
    assert policy(batching="off") is None
    assert policy(batch_max_rows=8, batch_max_wait_ms=0) == AdaptiveBatching(max_rows=8, max_wait_ms=0)
    task = FraudTask()  # a row fast path, nothing declared: off unless switched on
    assert policy() is None
    assert policy(batching="on") == DEFAULT_BATCHING
