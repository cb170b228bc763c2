"""Memory over time of this process and its children, and its peak within each step of a
flow run (the steps' start and end as the Prefect server recorded them).

Memory is the sum of the processes' PSS (proportional set size: a page shared by several
processes counts once in total), read from ``/proc/<pid>/smaps_rollup``; where that is not
readable, RSS. Summing RSS would count Ray's shared-memory object store once per worker that
maps it.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

import psutil


def _pss(proc: psutil.Process) -> int:
    try:
        with open(f"/proc/{proc.pid}/smaps_rollup") as rollup:
            for line in rollup:
                if line.startswith("Pss:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return proc.memory_info().rss


@dataclass
class MemoryTimeline:
    """Samples ``(unix time, bytes)`` of this process tree every ``interval`` seconds, in a
    thread, leaving out the trees rooted at ``exclude`` (servers the benchmark started)."""

    interval: float = 0.25
    exclude: set[int] = field(default_factory=set)
    samples: list[tuple[float, int]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="memory-timeline")

    def _tree(self) -> Iterable[psutil.Process]:
        me = psutil.Process()
        skip: set[int] = set()
        for pid in self.exclude:
            with contextlib.suppress(psutil.Error):
                root = psutil.Process(pid)
                skip |= {pid, *(c.pid for c in root.children(recursive=True))}
        return [p for p in [me, *me.children(recursive=True)] if p.pid not in skip]

    def _run(self) -> None:
        while not self._stop.is_set():
            total = 0
            for proc in self._tree():
                with contextlib.suppress(psutil.Error):  # a child may exit between calls
                    total += _pss(proc)
            self.samples.append((time.time(), total))
            self._stop.wait(self.interval)

    def __enter__(self) -> MemoryTimeline:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    @property
    def peak_gib(self) -> float:
        return max((b for _, b in self.samples), default=0) / 2**30

    def peak_between(self, start: float, end: float) -> float:
        """GiB at the highest sample in ``[start, end]``, or the sample nearest to it for a
        step shorter than the sampling interval."""
        inside = [b for t, b in self.samples if start <= t <= end]
        if not inside and self.samples:
            inside = [min(self.samples, key=lambda s: abs(s[0] - (start + end) / 2))[1]]
        return max(inside, default=0) / 2**30


def step_intervals(flow_run_id: str) -> dict[str, tuple[float, float]]:
    """``{step name: (start, end)}`` in unix time, from the task runs of a flow run (the step
    is the task run's name without Prefect's ``-<n>`` suffix)."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    with get_client(sync_client=True) as client:
        runs = client.read_task_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])), limit=200
        )
    intervals: dict[str, tuple[float, float]] = {}
    for run in runs:
        if run.start_time is None or run.end_time is None:
            continue
        name = run.name.rsplit("-", 1)[0]
        start, end = _unix(run.start_time), _unix(run.end_time)
        if name in intervals:  # a step run twice (retries): its whole span
            start, end = min(start, intervals[name][0]), max(end, intervals[name][1])
        intervals[name] = (start, end)
    return intervals


def _unix(moment: datetime) -> float:
    return moment.timestamp()
