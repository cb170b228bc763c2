"""Adaptive batching: concurrent ``/predict`` requests scored in one model call.

A transformer's forward pass costs nearly as much for a few rows as for one (the weights
are read once per pass), so a server that answers one request per pass wastes most of a
core under concurrency. The batcher queues validated requests; one worker coroutine takes
what is waiting, up to ``max_rows`` rows, waiting at most ``max_wait`` after the oldest
request arrived for the batch to fill, scores it in one call on its own thread and hands
every request its own rows of the result. While a batch computes the next one gathers, so
under load batches grow by themselves and no request waits for a timer.

A batch waits at most ``max_wait`` after the later of its oldest request's arrival and the
previous batch's answer, and stops waiting sooner once as many requests have arrived since
that answer as the previous batch held. Clients that wait for their answer before sending
again (a pool of connections, a UI) come back together once a batch is answered; once they
all have, waiting longer only adds the wait to each of them, and sending a request left
over from before on its own, before they are back, would make all of them wait behind it.
Counting arrivals since the answer, not requests waiting, keeps such a leftover from standing
in for one of them and leaving the last one behind for a whole batch. So a request that
arrives while the model is idle waits at most ``max_wait`` plus its own batch, and one that
arrives while a batch computes at most that batch more.

Each request learns how long it waited for its model call to start and how long that call
took (:meth:`AdaptiveBatcher.timed`): the server reports both per request in its
``Server-Timing`` header, so a client can tell what batching added to its own latency.

Invalid records never reach the batch: each request is parsed and validated on its own
(its 422 is its own). If a batched call still raises, every request of the batch is scored
again on its own, so a record that breaks the model fails only its request.

Off unless asked for (``MLPLUG_BATCHING=on``) or declared by the task type
(:class:`mlplug.task.AdaptiveBatching`): a model with a fast row path answers one row in
microseconds, and a batch would only make it wait.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from prometheus_client import CollectorRegistry, Histogram

from mlplug.serving.config import ServeSettings
from mlplug.serving.predict import Predictor
from mlplug.task import AdaptiveBatching, TaskType

#: Used when batching is switched on for a task type that declares nothing.
DEFAULT_BATCHING = AdaptiveBatching()
ROW_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)
SECONDS_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


def batching_policy(settings: ServeSettings, task: TaskType) -> AdaptiveBatching | None:
    """The batching this server does: ``off`` none, ``on`` the task's declaration or the
    defaults, ``auto`` the task's declaration (none when it declares none); the
    ``MLPLUG_BATCH_*`` settings override either limit."""
    declared = task.adaptive_batching
    if settings.batching == "off" or (settings.batching == "auto" and declared is None):
        return None
    policy = declared or DEFAULT_BATCHING
    return AdaptiveBatching(
        max_rows=settings.batch_max_rows or policy.max_rows,
        max_wait_ms=policy.max_wait_ms if settings.batch_max_wait_ms is None else settings.batch_max_wait_ms,
    )


@dataclass
class _Request:
    predictor: Predictor
    rows: Sequence[Sequence[Any]]
    answer: asyncio.Future[np.ndarray]
    arrived: float = field(default_factory=time.perf_counter)
    #: When the model call that answered it started, and its seconds.
    started: float = 0.0
    seconds: float = 0.0


class AdaptiveBatcher:
    """Gathers requests into batches of at most ``policy.max_rows`` rows; see the module."""

    def __init__(self, policy: AdaptiveBatching, registry: CollectorRegistry) -> None:
        self.max_rows = policy.max_rows
        self.max_wait = policy.max_wait_ms / 1000.0
        self.rows = Histogram(
            "mlplug_batch_rows",
            "Rows per model call of the adaptive batcher",
            buckets=ROW_BUCKETS,
            registry=registry,
        )
        self.requests = Histogram(
            "mlplug_batch_requests",
            "Requests answered per model call",
            buckets=ROW_BUCKETS,
            registry=registry,
        )
        self.compute = Histogram(
            "mlplug_batch_seconds",
            "Seconds per batched model call",
            buckets=SECONDS_BUCKETS,
            registry=registry,
        )
        self.queued = Histogram(
            "mlplug_batch_queue_seconds",
            "Seconds a request waited for its batch's model call to start",
            buckets=SECONDS_BUCKETS,
            registry=registry,
        )
        # One model call at a time: the next batch gathers while this one computes.
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="mlplug-batch")
        self._pending: deque[_Request] = deque()
        self._pending_rows = 0
        #: Requests answered by the last batch, and the arrival count when it was answered:
        #: once as many more have arrived, the next batch goes without waiting (see the module).
        self._returning = 0
        self._arrivals = 0
        self._arrivals_at_answer = 0
        self._answered_at = 0.0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._arrived: asyncio.Event | None = None
        self._worker: asyncio.Task[None] | None = None

    def takes(self, rows: int) -> bool:
        """Whether a request of ``rows`` rows is batched; one that fills a batch alone is not."""
        return rows < self.max_rows

    async def proba(self, predictor: Predictor, rows: Sequence[Sequence[Any]]) -> np.ndarray:
        """Probabilities of ``rows``, computed in a batch with whatever else is waiting."""
        return (await self.timed(predictor, rows))[0]

    async def timed(
        self, predictor: Predictor, rows: Sequence[Sequence[Any]]
    ) -> tuple[np.ndarray, float, float]:
        """:meth:`proba`, with the seconds the request waited for the model call that
        answered it to start, and that call's seconds."""
        loop = asyncio.get_running_loop()
        if loop is not self._loop or self._worker is None or self._worker.done():
            self._start(loop)
        request = _Request(predictor, rows, loop.create_future())
        self._pending.append(request)
        self._pending_rows += len(rows)
        self._arrivals += 1
        self._arrived.set()  # type: ignore[union-attr]
        proba = await request.answer
        return proba, request.started - request.arrived, request.seconds

    def _start(self, loop: asyncio.AbstractEventLoop) -> None:
        if loop is not self._loop:  # a new event loop (tests start several): fresh state
            self._pending.clear()
            self._pending_rows = 0
            self._returning = self._arrivals = self._arrivals_at_answer = 0
            self._answered_at = 0.0
        self._loop = loop
        self._arrived = asyncio.Event()
        self._worker = loop.create_task(self._run(), name="mlplug-batcher")

    async def _run(self) -> None:
        arrived = self._arrived
        assert arrived is not None
        while True:
            if not self._pending:
                arrived.clear()
                await arrived.wait()
                continue
            # Wait for the batch to fill, at most max_wait after its oldest request came or the
            # model came free, whichever is later (see the module).
            deadline = max(self._pending[0].arrived, self._answered_at) + self.max_wait
            while not self._full():
                remaining = deadline - time.perf_counter()
                if remaining <= 0:
                    break
                arrived.clear()
                try:
                    await asyncio.wait_for(arrived.wait(), remaining)
                except TimeoutError:
                    break
            await self._score(self._take())

    def _full(self) -> bool:
        """Whether the batch goes now: ``max_rows`` rows wait, or as many requests came
        since the previous batch was answered as it held."""
        if self._pending_rows >= self.max_rows:
            return True
        return 0 < self._returning <= self._arrivals - self._arrivals_at_answer

    def _take(self) -> list[_Request]:
        """The oldest requests that fit in one batch and share one model version (a hot swap
        may leave requests for two versions in the queue)."""
        batch = [self._pending.popleft()]
        rows = len(batch[0].rows)
        while self._pending:
            nxt = self._pending[0]
            if nxt.predictor is not batch[0].predictor or rows + len(nxt.rows) > self.max_rows:
                break
            batch.append(self._pending.popleft())
            rows += len(nxt.rows)
        self._pending_rows -= rows
        return batch

    async def _score(self, batch: list[_Request]) -> None:
        loop = asyncio.get_running_loop()
        predictor = batch[0].predictor
        rows = [row for request in batch for row in request.rows]
        started = time.perf_counter()
        for request in batch:
            self.queued.observe(started - request.arrived)
        try:
            proba = await loop.run_in_executor(self._executor, predictor.proba, rows)
        except Exception as exc:
            self._answered(batch)
            if len(batch) == 1:
                _settle(batch[0], error=exc)
                return
            # One record may break the whole call: score each request alone so that only
            # its own request fails (and its timing is that of the call that answered it).
            for request in batch:
                request.started = time.perf_counter()
                try:
                    alone = await loop.run_in_executor(self._executor, predictor.proba, request.rows)
                    request.seconds = time.perf_counter() - request.started
                    _settle(request, alone)
                except Exception as failed:
                    _settle(request, error=failed)
            return
        self._answered(batch)
        seconds = time.perf_counter() - started
        self.compute.observe(seconds)
        for request in batch:
            request.started, request.seconds = started, seconds
        self.rows.observe(len(rows))
        self.requests.observe(len(batch))
        start = 0
        for request in batch:
            _settle(request, proba[start : start + len(request.rows)])
            start += len(request.rows)

    def _answered(self, batch: list[_Request]) -> None:
        self._returning, self._arrivals_at_answer = len(batch), self._arrivals
        self._answered_at = time.perf_counter()

    def close(self) -> None:
        if self._worker is not None and not self._worker.done():
            self._worker.cancel()
        self._executor.shutdown(wait=False, cancel_futures=True)


def _settle(request: _Request, proba: np.ndarray | None = None, error: BaseException | None = None) -> None:
    if request.answer.done():  # the client went away and its request was cancelled
        return
    if error is not None:
        request.answer.set_exception(error)
    else:
        request.answer.set_result(proba)  # type: ignore[arg-type]
